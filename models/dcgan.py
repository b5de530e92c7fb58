"""DCGAN generator and discriminator as Keras 3 functional models, named as tensorlayer/dcgan.

    from tfcf.models import dcgan
    generator = dcgan.build_generator("tensorlayer")            # z [B, 100] -> image [B, 64, 64, 3]
    hybrid_layer = generator.get_layer(dcgan.INTERMEDIATE_LAYER["tensorlayer"])  # 16x16x128

The architecture is the TF1 tensorlayer 1.x `model.py` of github.com/tensorlayer/dcgan (2017-2018,
before the 2019 port to tensorlayer 2). Its layer names, with "/" written "_" (Keras 3 forbids "/"),
are the Keras layer names here. Activations that tensorlayer fused into a layer (`act=`) are
separate Keras layers named `<block>_relu`, `<block>_lrelu`, `<block>_tanh`.

Presets (`PRESETS`):
- `tensorlayer`: the repository. z 100; generator `g_h0_lin` 4x4x512 -> 8x8x256 -> 16x16x128 ->
  32x32x64 -> 64x64x3; discriminator 64, 128, 256, 512 channels (64 -> 32 -> 16 -> 8 -> 4).
- `paper_celeba`: Table 1 "GAN CelebA" of Besserve et al. (ICLR 2020): z 150, 4 deconvolutions,
  channels (128, 64, 32, 16, 3), activation maps 4, 8, 16, 32 -> 64x64 image. The paper gives no
  discriminator; ours mirrors the generator: 16, 32, 64, 128 channels (64 -> 32 -> 16 -> 8 -> 4).
- `paper_cifar10`: Table 1 "GAN cifar10" of the 2019 draft: z 150, 3 deconvolutions, channels
  (64, 32, 16, 3), maps 4, 8, 16 -> 32x32 image; discriminator 16, 32, 64 (32 -> 16 -> 8 -> 4).

`INTERMEDIATE_LAYER[preset]` names the activation the paper intervenes on ("intermediate level"):
the ReLU after batch norm of the block whose maps are 16x16 for the 64-pixel generators
(`g_h2_relu`) and 8x8 for CIFAR-10 (`g_h1_relu`). It refers to the preset's own widths and depth;
with other `channels` / `output_size`, pick the layer by its shape.

Weights, in `model.weights` order, which is tensorlayer's `all_params` order (the order of the
arrays in its `.npz` checkpoints). Every Dense / Conv2D / Conv2DTranspose has a bias, as
tensorlayer 1.x `DenseLayer`, `Conv2d` and `DeConv2d` do by default (`b_init` constant 0), even
where batch norm follows. With N deconvolutions (N = 4, or 3 for cifar10), channels c0..cN:

  generator       g_h0_lin            Dense kernel (z_dim, s*s*c0), bias    s = output_size / 2**N
                  g_h0_batch_norm     BatchNormalization (c0)
                  g_hi_decon2d        Conv2DTranspose kernel (5, 5, ci, c(i-1)), bias   i = 1..N
                  g_hi_batch_norm     BatchNormalization (ci)                           i = 1..N-1
  discriminator   d_h0_conv2d         Conv2D kernel (5, 5, 3, d0), bias  (no batch norm)
                  d_hi_conv2d         Conv2D kernel (5, 5, d(i-1), di), bias            i = 1..M-1
                  d_hi_batch_norm     BatchNormalization (di)                           i = 1..M-1
                  d_hM_lin_sigmoid    Dense kernel (t*t*d(M-1), 1), bias   t = input_size / 2**M = 4

Layouts equal tensorlayer's: Dense (in, out), Conv2D (kh, kw, in, out), Conv2DTranspose
(kh, kw, out, in). Batch norm: tensorlayer stores [beta, gamma, moving_mean, moving_var], Keras
[gamma, beta, moving_mean, moving_variance]; an importer must swap the first two. Batch norm uses
momentum 0.9 and epsilon 1e-5 (tensorlayer's decay and epsilon defaults).

The discriminator returns LOGITS from `d_hM_lin_sigmoid` (tensorlayer applies the sigmoid in the
graph and also returns the logits; apply the sigmoid in the loss).

Initialisers: weights N(0, 0.02), biases 0, batch-norm gamma N(1, 0.02), beta 0, as the 2017 code
(the October 2018 revision switched weights to Glorot normal; irrelevant once a checkpoint is
loaded). Values are deterministic given `seed` within one Keras backend (TensorFlow and JAX draw
different numbers).
"""

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
    "tensorlayer": {
        "z_dim": 100,
        "generator_channels": (512, 256, 128, 64, 3),
        "output_size": 64,
        "discriminator_channels": (64, 128, 256, 512),
    },
    "paper_celeba": {
        "z_dim": 150,
        "generator_channels": (128, 64, 32, 16, 3),
        "output_size": 64,
        "discriminator_channels": (16, 32, 64, 128),
    },
    "paper_cifar10": {
        "z_dim": 150,
        "generator_channels": (64, 32, 16, 3),
        "output_size": 32,
        "discriminator_channels": (16, 32, 64),
    },
}

INTERMEDIATE_LAYER = {
    "tensorlayer": "g_h2_relu",
    "paper_celeba": "g_h2_relu",
    "paper_cifar10": "g_h1_relu",
}

KERNEL_SIZE = 5
LEAKY_SLOPE = 0.2


def build_generator(preset="tensorlayer", *, z_dim=None, channels=None, output_size=None, seed=0,
                    dropout=None):
    """The DCGAN generator: z -> image in [-1, 1] (tanh), channels-last.

        generator = build_generator("paper_celeba", seed=1)
        images = generator(np.random.default_rng(0).normal(size=(8, 150)), training=False)
        images.shape  # (8, 64, 64, 3)

    Args:
        preset: one of `PRESETS`.
        z_dim: latent size; default the preset's.
        channels: (c0, c1, ..., cN): c0 channels of the reshaped `g_h0_lin` output, then the
            output channels of each of the N stride-2 deconvolutions, cN the image channels.
        output_size: image side; must be a multiple of 2**N. Default the preset's.
        seed: integer seed of the initialisers.
        dropout: a rate for a Dropout layer between the two finest deconvolutions (the SDR
            paper's dropout DCGAN); None for none.

    Returns:
        `keras.Model` named "generator" with input `g_in`; see the module docstring for layers.
    """
    config = preset_config(PRESETS, preset)
    z_dim = positive_int("z_dim", config["z_dim"] if z_dim is None else z_dim)
    channels = channel_widths("channels", config["generator_channels"] if channels is None else channels,
                         min_length=2)
    output_size = positive_int(
        "output_size", config["output_size"] if output_size is None else output_size)
    num_deconv = len(channels) - 1
    base = start_size(output_size, num_deconv)
    initializers = Initializers(seed)

    return tensorlayer_generator(z_dim, channels, base, [2] * num_deconv, KERNEL_SIZE, initializers,
                                 dropout=dropout)


def build_discriminator(preset="tensorlayer", *, channels=None, input_size=None,
                        image_channels=None, seed=0):
    """The DCGAN discriminator: image -> one LOGIT per image (no sigmoid).

        discriminator = build_discriminator("tensorlayer")
        logits = discriminator(images, training=False)      # [B, 1]
        probability = keras.ops.sigmoid(logits)

    Args:
        preset: one of `PRESETS`.
        channels: output channels of the M stride-2 5x5 convolutions `d_h0_conv2d`..; the first
            has no batch norm. Default the preset's.
        input_size: image side; a multiple of 2**M. Default the preset's image size.
        image_channels: channels of the input image; default the preset generator's last channel.
        seed: integer seed of the initialisers.

    Returns:
        `keras.Model` named "discriminator" with input `d_in` and output `d_hM_lin_sigmoid`.
    """
    config = preset_config(PRESETS, preset)
    channels = channel_widths(
        "channels", config["discriminator_channels"] if channels is None else channels,
        min_length=1)
    input_size = positive_int(
        "input_size", config["output_size"] if input_size is None else input_size)
    image_channels = positive_int(
        "image_channels",
        config["generator_channels"][-1] if image_channels is None else image_channels)
    start_size(input_size, len(channels))
    initializers = Initializers(seed)

    image = keras.Input((input_size, input_size, image_channels), name="d_in")
    x = image
    for index, width in enumerate(channels):
        x = layers.Conv2D(width, KERNEL_SIZE, strides=2, padding="same",
                          name=f"d_h{index}_conv2d", **initializers.dense())(x)
        if index > 0:
            x = batch_norm(x, f"d_h{index}_batch_norm", initializers)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"d_h{index}_lrelu")(x)
    last = len(channels)
    x = layers.Flatten(name=f"d_h{last}_flatten")(x)
    logits = layers.Dense(1, name=f"d_h{last}_lin_sigmoid", **initializers.dense())(x)
    return keras.Model(image, logits, name="discriminator")
