"""BEGAN generator and autoencoder discriminator as Keras 3 functional models.

    from tfcf.models import began
    generator = began.build_generator("celeba64")         # z [B, 128] in [-1, 1] -> [B, 64, 64, 3]
    first, second = began.INTERMEDIATE_LAYERS["celeba64"]   # "conv4_a_elu", "conv4_b_elu"

The layer names are those of github.com/Heumi/BEGAN-tensorflow (`src/models/BEGAN.py`, 2017), the
implementation the ICLR 2020 paper (Besserve et al., footnote 4) used. github.com/carpedm20/
BEGAN-tensorflow builds the same generator with slim's automatic names (`G/fully_connected`,
`G/Conv`, `G/Conv_1`, ..., `G/Conv_8`, in the same order as ours) but a different discriminator
encoder (strided convolutions, widths hidden*(i+1)), which is not built here. Its default
`data_format` on GPU is NCHW, where `fc`'s output is reshaped to [c, 8, 8]: a converter of such a
checkpoint must permute `fc`'s columns.

Generator (64 pixels): z -> `fc` Dense(8*8*h) -> `fc_reshape` 8x8xh -> `conv1_a`, `conv1_b` ->
`resize_nn_16` -> `conv3_a`, `conv3_b` -> `resize_nn_32` -> `conv4_a`, `conv4_b` -> `resize_nn_64`
-> `conv5_a`, `conv5_b` -> `conv6_a` (3 channels, no activation, no tanh). Every conv is 3x3,
stride 1, SAME, followed by an ELU layer `<conv>_elu` (except `conv6_a`); resizing is
nearest-neighbour x2 (`UpSampling2D`). At 128 pixels a 16x16 block `conv2_a`, `conv2_b` comes
after `conv1` (Heumi's numbering; it skips `conv2` at 64 pixels). Outputs are in the range of the
training images, which Heumi's code scales as pixel/255 - 0.5 in BGR order.

Discriminator: an autoencoder, image -> reconstruction. Encoder `conv1_enc_a` 3x3 (3 -> h) + ELU,
`conv2_enc_a`, `conv2_enc_b` (h) + ELU, then per halving i = 3, 4, 5 (and 6 at 128 px): a 1x1 conv
`convi_enc_0` to (i-1)*h channels WITHOUT activation, 2x2 average pooling `pooli_enc`, and
`convi_enc_a`, `convi_enc_b` 3x3 + ELU; `enc_fc_flatten` and `enc_fc` Dense(embedding), the code.
The decoder has the generator's structure and names (`fc`, `conv1_a`, ..., `conv6_a`).
Heumi's 64-pixel decoder omits the 8 -> 16 resize (its `conv3` pair runs at 8x8 and the next
resize jumps to 32); `decoder_quirk=True` reproduces that, the default follows the paper.

`skip=True` adds the skip connections of the BEGAN paper (Berthelot et al. 2017, Fig. 1), which the
ICLR paper's BEGAN had: `fc_reshape` (h0, 8x8) is upsampled by nearest neighbour to each later
block's size (`skip_resize_<size>`) and concatenated to that block's input (`skip_concat_<size>`),
so the first conv of every block after `conv1` has 2*h input channels. Default False, as the repos.

`INTERMEDIATE_LAYERS[preset]`: the ICLR paper intervened on "layers 5 and 6" of the BEGAN
generator. Counting its convolutions from the first (conv1_a = 1, conv1_b = 2, then the next
block's two), layers 5 and 6 are the two convolutions of the 32x32 block at both sizes: `conv4_a`,
`conv4_b` at 64 pixels, `conv3_a`, `conv3_b` at 128. The names are those of their ELU layers, the
activations a hybrid swaps channels of.

Weights, in `model.weights` order = the order the original creates its variables. Every conv and
dense layer has a bias (Heumi's `conv2d` and `fc` default `bias=True`, initialised 0; weights
N(0, 0.02)). Layouts: Dense (in, out), Conv2D (3, 3, in, out), as the original's.

  generator      fc (z_dim, 64*h), then each conv of the chain (3, 3, in, h) in the order above,
                 conv6_a (3, 3, h, 3). With skip, the first conv of each later block is
                 (3, 3, 2h, h).
  discriminator  conv1_enc_a, conv2_enc_a, conv2_enc_b, conv3_enc_0 (1, 1, h, 2h), conv3_enc_a,
                 conv3_enc_b, conv4_enc_0, ..., conv5_enc_b (4h; at 128 px on to conv6_enc_b, 5h),
                 enc_fc (8*8*4h or 8*8*5h, embedding),
                 then the decoder as the generator (fc (embedding, 64*h), ...).

Presets (`PRESETS`, Heumi's `began_cmd.txt`): `celeba64`: 64 px, h 64, z 128, embedding 128,
gamma 0.4; `celeba128`: 128 px, h 128, z 64, embedding 64, gamma 0.7. z ~ U(-1, 1).
`celeba64_small` is not the paper's: `celeba64` with h 16, a quarter of the width (16x fewer
convolution FLOPs), the closest BEGAN a 2-core CPU can train (`celeba64` takes about 19 s per
batch-16 step there).
"""

import numpy as np
import keras
from keras import layers

from tfcf.models._common import Initializers, boolean, positive_int, preset_config

PRESETS = {
    "celeba64": {"image_size": 64, "hidden": 64, "z_dim": 128, "embedding": 128, "gamma": 0.4},
    "celeba128": {"image_size": 128, "hidden": 128, "z_dim": 64, "embedding": 64, "gamma": 0.7},
    # Not the paper's: celeba64 at a quarter of its width, trainable on a CPU (16x fewer conv FLOPs).
    "celeba64_small": {"image_size": 64, "hidden": 16, "z_dim": 128, "embedding": 128,
                       "gamma": 0.4},
}

INTERMEDIATE_LAYERS = {
    "celeba64": ("conv4_a_elu", "conv4_b_elu"),
    "celeba128": ("conv3_a_elu", "conv3_b_elu"),
    "celeba64_small": ("conv4_a_elu", "conv4_b_elu"),
}

BASE_SIZE = 8
KERNEL_SIZE = 3


def build_generator(preset="celeba64", *, hidden=None, z_dim=None, skip=False, seed=0):
    """The BEGAN generator: z -> image (no output activation).

        generator = build_generator("celeba64", skip=True)
        z = np.random.default_rng(0).uniform(-1, 1, size=(4, 128)).astype("float32")
        images = generator(z)                          # [4, 64, 64, 3]

    Args:
        preset: one of `PRESETS`.
        hidden: the filter number h of every conv; default the preset's.
        z_dim: latent size; default the preset's.
        skip: add the BEGAN paper's skip connections from the 8x8 `fc` maps (module docstring).
        seed: integer seed of the initialisers.

    Returns:
        `keras.Model` named "generator", input `z`, output of `conv6_a`.
    """
    config = preset_config(PRESETS, preset)
    hidden = positive_int("hidden", config["hidden"] if hidden is None else hidden)
    z_dim = positive_int("z_dim", config["z_dim"] if z_dim is None else z_dim)
    skip = boolean("skip", skip)
    initializers = Initializers(seed)

    z = keras.Input((z_dim,), name="z")
    image = _decoder(z, config["image_size"], hidden, skip, initializers, quirk=False)
    return keras.Model(z, image, name="generator")


def build_discriminator(preset="celeba64", *, hidden=None, embedding=None, skip=False,
                        decoder_quirk=False, seed=0):
    """The BEGAN discriminator, an autoencoder: image -> reconstruction (no output activation).

        discriminator = build_discriminator("celeba64")
        reconstruction = discriminator(images)            # [B, 64, 64, 3]
        loss = keras.ops.mean(keras.ops.abs(images - reconstruction))   # BEGAN's L1 energy

    Args:
        preset: one of `PRESETS`.
        hidden: the filter number h; default the preset's.
        embedding: size of the code `enc_fc`; default the preset's.
        skip: add the skip connections in the decoder, as in `build_generator`.
        decoder_quirk: reproduce Heumi's 64-pixel decoder, which has no 8 -> 16 resize.
        seed: integer seed of the initialisers.

    Returns:
        `keras.Model` named "discriminator", input `image`, output of the decoder's `conv6_a`.
    """
    config = preset_config(PRESETS, preset)
    hidden = positive_int("hidden", config["hidden"] if hidden is None else hidden)
    embedding = positive_int("embedding", config["embedding"] if embedding is None else embedding)
    skip = boolean("skip", skip)
    decoder_quirk = boolean("decoder_quirk", decoder_quirk)
    if decoder_quirk and config["image_size"] != 64:
        raise ValueError(f"decoder_quirk applies to the 64-pixel model only; preset {preset!r} "
                         f"is {config['image_size']} pixels; valid presets for it: celeba64")
    initializers = Initializers(seed)
    size = config["image_size"]

    image = keras.Input((size, size, 3), name="image")
    x = _conv(image, hidden, "conv1_enc_a", initializers)
    x = _conv(x, hidden, "conv2_enc_a", initializers)
    x = _conv(x, hidden, "conv2_enc_b", initializers)
    for index in range(3, 3 + _num_halvings(size)):
        width = (index - 1) * hidden
        x = layers.Conv2D(width, 1, padding="same", name=f"conv{index}_enc_0",
                          **initializers.dense())(x)
        x = layers.AveragePooling2D(2, strides=2, padding="same", name=f"pool{index}_enc")(x)
        x = _conv(x, width, f"conv{index}_enc_a", initializers)
        x = _conv(x, width, f"conv{index}_enc_b", initializers)
    x = layers.Flatten(name="enc_fc_flatten")(x)
    code = layers.Dense(embedding, name="enc_fc", **initializers.dense())(x)
    reconstruction = _decoder(code, size, hidden, skip, initializers, quirk=decoder_quirk)
    return keras.Model(image, reconstruction, name="discriminator")


def _decoder(z, image_size, hidden, skip, initializers, *, quirk):
    """fc -> 8x8 -> conv pairs with nearest-neighbour x2 resizes -> conv6_a (3 channels)."""
    x = layers.Dense(BASE_SIZE * BASE_SIZE * hidden, name="fc", **initializers.dense())(z)
    h0 = layers.Reshape((BASE_SIZE, BASE_SIZE, hidden), name="fc_reshape")(x)
    x = _conv(h0, hidden, "conv1_a", initializers)
    x = _conv(x, hidden, "conv1_b", initializers)
    num_blocks = _num_halvings(image_size)
    size = BASE_SIZE
    for index in range(6 - num_blocks, 6):
        factor = 1 if quirk and index == 3 else 4 if quirk and index == 4 else 2
        if factor > 1:
            size *= factor
            x = layers.UpSampling2D(factor, interpolation="nearest", name=f"resize_nn_{size}")(x)
        if skip:
            upsampled_h0 = layers.UpSampling2D(size // BASE_SIZE, interpolation="nearest",
                                               name=f"skip_resize_{size}")(h0)
            x = layers.Concatenate(name=f"skip_concat_{size}")([x, upsampled_h0])
        x = _conv(x, hidden, f"conv{index}_a", initializers)
        x = _conv(x, hidden, f"conv{index}_b", initializers)
    return layers.Conv2D(3, KERNEL_SIZE, padding="same", name="conv6_a",
                         **initializers.dense())(x)


def _conv(x, width, name, initializers):
    x = layers.Conv2D(width, KERNEL_SIZE, padding="same", name=name, **initializers.dense())(x)
    return layers.ELU(name=f"{name}_elu")(x)


def _num_halvings(image_size):
    return int(np.log2(image_size // BASE_SIZE))
