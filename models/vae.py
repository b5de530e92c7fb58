"""The beta-VAE of vae-celebA as Keras 3 functional models: encoder and decoder ("generator").

    from tfcf.models import vae
    encoder, decoder = vae.build_encoder("repo"), vae.build_decoder("repo")
    z_mean, z_log_sigma_sq = encoder(images, training=False)   # images [B, 64, 64, 3] in [-1, 1]
    reconstruction = decoder(vae.sample_posterior(z_mean, z_log_sigma_sq, seed=0), training=False)

The architecture is `model_vae.py` of github.com/yzwxx/vae-celebA (2017, TF1 + tensorlayer 1.x).
Its layer names, with "/" written "_" (Keras 3 forbids "/"), are the Keras layer names here;
activations that tensorlayer fused into a layer (`act=`) are separate layers (`<block>_relu`, ...).

What the original computes (and so do we):
- encoder: four 5x5 stride-2 `Conv2d` + `BatchNormLayer` + ReLU blocks `en_h0`..`en_h3`
  (64 -> 32 -> 16 -> 8 -> 4 pixels; 64, 128, 256, 512 channels; batch norm on every block). Two
  heads read the flattened 4x4x512 maps:
  mean: `en_h4_flatten` -> `en_h3_lin_sigmoid` Dense(z) -> `en_out1_batch_norm` (identity act);
  log variance: `en_h5_flatten` -> `en_h4_lin_sigmoid` Dense(z) -> `en_out2_batch_norm` ->
  softplus -> + 1e-6. Despite the "sigmoid" in the names there is no sigmoid. The second output is
  used as the LOG VARIANCE: z = z_mean + sqrt(exp(z_log_sigma_sq)) * eps, KL term
  -0.5 * sum(1 + z_log_sigma_sq - z_mean**2 - exp(z_log_sigma_sq)). Because of the softplus it is
  positive, so the posterior variance is always above 1 (kept as in the original).
- decoder: `g_h0_lin` Dense(8*8*256) -> reshape -> BN -> ReLU -> `g_h1_decon2d` 16x16x256 ->
  `g_h2_decon2d` 32x32x128 -> `g_h3_decon2d` 64x64x32 (5x5 stride 2, BN + ReLU) ->
  `g_h4_decon2d` 5x5 STRIDE 1 64x64x3, no batch norm -> tanh.
- loss: beta * KL + mean squared error (mean over batch, pixels and colours), beta 0.005
  (`PRESETS[...]["beta"]`, `PRESETS[...]["objective"]`; see `tfcf.train.VAE_OBJECTIVES`).

Presets (`PRESETS`):
- `repo`: the repository above, z 128.
- `paper_celeba`: Table 1 "VAE CelebA" of Besserve et al. (ICLR 2020): z 128, decoder 4
  deconvolutions, channels (64, 64, 32, 16, 3), maps (8, 16, 32, 64): `g_h0_lin` 8x8x64 ->
  16x16x64 -> 32x32x32 -> 64x64x16 -> stride-1 64x64x3; beta 0.0005. The paper gives no encoder;
  ours is the repository's at a quarter of its width, (16, 32, 64, 128), the same narrowing as the
  decoder's (256 -> 64).
- `paper_cifar10`: Table 1 "VAE cifar10" of the 2019 draft: z 128, decoder 3 deconvolutions, all
  stride 2, channels (64, 32, 16, 3), maps (4, 8, 16) -> 32x32x3; beta 0.0005; encoder three convs
  (16, 32, 64), the decoder's widths reversed (32 -> 16 -> 8 -> 4).
- `sdr_c32`, `sdr_c64`: the VAE variants of the SDR paper (Besserve et al., Figs. 7-9): 32 or 64
  channels in the last hidden layer, decoder (64, 32, 32|64, 3) on the `paper_cifar10` network;
  the paper's beta 1 or 0.1 is chosen with `tfcf train vae --beta`. The SDR paper does not say how
  its reconstruction term is normalised; these presets use the per-image sum of squared errors
  (`objective` "sse"), under which beta 1 gives recognisable samples.

`INTERMEDIATE_LAYER[preset]` is the activation the paper intervenes on ("intermediate level",
Fig. 7 of the ICLR paper): the ReLU of the decoder block whose maps are 16x16 for 64-pixel
images (`g_h1_relu`) and 8x8 for CIFAR-10 (`g_h1_relu`), for the preset's own depth and sizes.

Weights, in `model.weights` order = tensorlayer's `all_params` order (the array order of its `.npz`
checkpoints: `net_e.npz` holds the encoder's mean-head list followed by the log-variance head's own
layers, `net_g.npz` the decoder). Every Dense / Conv2d / DeConv2d has a bias (tensorlayer 1.x
default, `b_init` constant 0), also where batch norm follows:

  encoder   en_hi_conv2d        Conv2D kernel (5, 5, e(i-1), ei), bias      i = 0..M-1, e(-1) = 3
            en_hi_batch_norm    BatchNormalization (ei)
            en_h3_lin_sigmoid   Dense kernel (4*4*e(M-1), z_dim), bias      mean head
            en_out1_batch_norm  BatchNormalization (z_dim)
            en_h4_lin_sigmoid   Dense kernel (4*4*e(M-1), z_dim), bias      log-variance head
            en_out2_batch_norm  BatchNormalization (z_dim)
  decoder   g_h0_lin            Dense kernel (z_dim, s*s*c0), bias
            g_h0_batch_norm     BatchNormalization (c0)
            g_hi_decon2d        Conv2DTranspose kernel (5, 5, ci, c(i-1)), bias     i = 1..N
            g_hi_batch_norm     BatchNormalization (ci)                             i = 1..N-1

The head names keep the original's ("en_h3_lin_sigmoid" is the mean head even with 3 encoder
blocks). Keras orders `model.layers` by distance to the outputs, so the mean head carries one
pass-through layer, `en_out1_align`, that keeps its layers ahead of the log-variance head's. The
outputs are the layers `z_mean` and `z_log_sigma_sq`.

Layouts equal tensorlayer's: Dense (in, out), Conv2D (kh, kw, in, out), Conv2DTranspose
(kh, kw, out, in). Batch norm: tensorlayer stores [beta, gamma, moving_mean, moving_var], Keras
[gamma, beta, moving_mean, moving_variance]; an importer must swap the first two. Momentum 0.9,
epsilon 1e-5 (tensorlayer's defaults). Initialisers as the original: weights N(0, 0.02), biases 0,
gamma N(1, 0.02), beta 0; deterministic given `seed` within one Keras backend.
"""

import numpy as np
import keras
from keras import layers

from tfcf.models._common import (
    Initializers,
    batch_norm,
    channel_widths,
    positive_int,
    preset_config,
    start_size,
    tensorlayer_generator,
)

PRESETS = {
    "repo": {
        "z_dim": 128,
        "encoder_channels": (64, 128, 256, 512),
        "decoder_channels": (256, 256, 128, 32, 3),
        "last_stride": 1,
        "image_size": 64,
        "beta": 0.005,
        "objective": "mse",
    },
    "paper_celeba": {
        "z_dim": 128,
        "encoder_channels": (16, 32, 64, 128),
        "decoder_channels": (64, 64, 32, 16, 3),
        "last_stride": 1,
        "image_size": 64,
        "beta": 0.0005,
        "objective": "mse",
    },
    "paper_cifar10": {
        "z_dim": 128,
        "encoder_channels": (16, 32, 64),
        "decoder_channels": (64, 32, 16, 3),
        "last_stride": 2,
        "image_size": 32,
        "beta": 0.0005,
        "objective": "mse",
    },
}
# The SDR paper's VAE variants (its Figs. 7-9): only the last hidden layer's width changes, 32 or
# 64 channels, here on the 32-pixel paper_cifar10 network; beta is given at training.
for _width in (32, 64):
    PRESETS[f"sdr_c{_width}"] = {**PRESETS["paper_cifar10"],
                                 "decoder_channels": (64, 32, _width, 3), "beta": 1.0,
                                 "objective": "sse"}

INTERMEDIATE_LAYER = {
    "repo": "g_h1_relu",
    "paper_celeba": "g_h1_relu",
    "paper_cifar10": "g_h1_relu",
    "sdr_c32": "g_h1_relu",
    "sdr_c64": "g_h1_relu",
}

KERNEL_SIZE = 5
LOG_VARIANCE_OFFSET = 1e-6


def build_encoder(preset="repo", *, z_dim=None, channels=None, input_size=None, seed=0):
    """The VAE encoder: image -> [z_mean, z_log_sigma_sq] (the second is a log variance).

        encoder = build_encoder("paper_celeba")
        z_mean, z_log_sigma_sq = encoder(images, training=False)     # [B, 128] each
        z = sample_posterior(z_mean, z_log_sigma_sq, seed=0)

    Args:
        preset: one of `PRESETS`.
        z_dim: latent size; default the preset's.
        channels: output channels of the 5x5 stride-2 conv + BN + ReLU blocks; default the
            preset's encoder channels.
        input_size: image side, a multiple of 2**len(channels); default the preset's.
        seed: integer seed of the initialisers.

    Returns:
        `keras.Model` named "encoder", input `en_in`, outputs `z_mean` and `z_log_sigma_sq`.
    """
    config = preset_config(PRESETS, preset)
    z_dim = positive_int("z_dim", config["z_dim"] if z_dim is None else z_dim)
    channels = channel_widths("channels", config["encoder_channels"] if channels is None else channels,
                         min_length=1)
    input_size = positive_int(
        "input_size", config["image_size"] if input_size is None else input_size)
    start_size(input_size, len(channels))
    initializers = Initializers(seed)

    image = keras.Input((input_size, input_size, config["decoder_channels"][-1]), name="en_in")
    x = image
    for index, width in enumerate(channels):
        x = layers.Conv2D(width, KERNEL_SIZE, strides=2, padding="same",
                          name=f"en_h{index}_conv2d", **initializers.dense())(x)
        x = batch_norm(x, f"en_h{index}_batch_norm", initializers)
        x = layers.ReLU(name=f"en_h{index}_relu")(x)
    features = x

    # Mean head. `en_out1_identity` is tensorlayer's act=tf.identity; `en_out1_align` passes its
    # input through and makes this head one layer longer than the log-variance head, so that
    # Keras (which orders layers by distance to the outputs, ties by output order) lists the
    # mean head's weights first, as the checkpoint does.
    mean = layers.Flatten(name="en_h4_flatten")(features)
    mean = layers.Dense(z_dim, name="en_h3_lin_sigmoid", **initializers.dense())(mean)
    mean = batch_norm(mean, "en_out1_batch_norm", initializers)
    mean = layers.Activation("linear", name="en_out1_identity")(mean)
    mean = layers.Identity(name="en_out1_align")(mean)
    z_mean = layers.Identity(name="z_mean")(mean)

    log_variance = layers.Flatten(name="en_h5_flatten")(features)
    log_variance = layers.Dense(z_dim, name="en_h4_lin_sigmoid",
                                **initializers.dense())(log_variance)
    log_variance = batch_norm(log_variance, "en_out2_batch_norm", initializers)
    log_variance = layers.Activation("softplus", name="en_out2_softplus")(log_variance)
    z_log_sigma_sq = layers.Rescaling(1.0, offset=LOG_VARIANCE_OFFSET,
                                      name="z_log_sigma_sq")(log_variance)
    return keras.Model(image, [z_mean, z_log_sigma_sq], name="encoder")


def build_decoder(preset="repo", *, z_dim=None, channels=None, output_size=None, seed=0):
    """The VAE decoder (the original's "generator"): z -> image in [-1, 1] (tanh).

        decoder = build_decoder("repo")
        images = decoder(np.random.default_rng(0).normal(size=(8, 128)), training=False)
        images.shape  # (8, 64, 64, 3)

    Args:
        preset: one of `PRESETS`.
        z_dim: latent size; default the preset's.
        channels: (c0, c1, ..., cN): channels of the reshaped `g_h0_lin` output, then of each of
            the N 5x5 deconvolutions; cN the image channels. All deconvolutions have stride 2
            except the last of the `repo` and `paper_celeba` presets (stride 1).
        output_size: image side; default the preset's.
        seed: integer seed of the initialisers.

    Returns:
        `keras.Model` named "generator" with input `g_in`; the image comes out of `g_hN_tanh`.
    """
    config = preset_config(PRESETS, preset)
    z_dim = positive_int("z_dim", config["z_dim"] if z_dim is None else z_dim)
    channels = channel_widths("channels", config["decoder_channels"] if channels is None else channels,
                         min_length=2)
    output_size = positive_int(
        "output_size", config["image_size"] if output_size is None else output_size)
    num_deconv = len(channels) - 1
    strides = [2] * num_deconv
    strides[-1] = config["last_stride"]
    base = start_size(output_size, sum(stride == 2 for stride in strides))
    initializers = Initializers(seed)

    return tensorlayer_generator(z_dim, channels, base, strides, KERNEL_SIZE, initializers)


def sample_posterior(z_mean, z_log_sigma_sq, seed=0):
    """z = z_mean + sqrt(exp(z_log_sigma_sq)) * eps, eps ~ N(0, 1), as vae-celebA samples.

        z = sample_posterior(*encoder(images, training=False), seed=3)
    """
    z_mean = np.asarray(z_mean, dtype=np.float32)
    z_log_sigma_sq = np.asarray(z_log_sigma_sq, dtype=np.float32)
    if z_mean.shape != z_log_sigma_sq.shape:
        raise ValueError(f"z_mean has shape {z_mean.shape} but z_log_sigma_sq has shape "
                         f"{z_log_sigma_sq.shape}; they must match")
    noise = np.random.default_rng(seed).standard_normal(z_mean.shape).astype(np.float32)
    return z_mean + np.sqrt(np.exp(z_log_sigma_sq)) * noise
