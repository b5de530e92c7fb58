"""Builders' shared pieces: seeded initialisers, tensorlayer-style batch norm, argument checks."""

import keras
import numpy as np
from keras import layers

BATCH_NORM_MOMENTUM = 0.9  # tensorlayer's decay
BATCH_NORM_EPSILON = 1e-5


class Initializers:
    """Seeded initialisers, a fresh seed per call so that no two layers draw the same numbers."""

    def __init__(self, seed):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self._rng = np.random.default_rng(int(seed))

    def _next(self):
        return int(self._rng.integers(0, 2**31 - 1))

    def dense(self):
        """Weights ~ N(0, 0.02), zero biases (the originals' w_init and b_init)."""
        return {"kernel_initializer": keras.initializers.RandomNormal(0.0, 0.02, seed=self._next()),
                "bias_initializer": "zeros"}

    def gamma(self):
        """Batch-norm scale ~ N(1, 0.02) (the originals' gamma_init)."""
        return keras.initializers.RandomNormal(1.0, 0.02, seed=self._next())


def batch_norm(x, name, initializers):
    """A tensorlayer BatchNormLayer: decay 0.9, epsilon 1e-5, gamma ~ N(1, 0.02)."""
    return layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON,
                                     gamma_initializer=initializers.gamma(), name=name)(x)


def preset_config(presets, preset):
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(presets)}")
    return presets[preset]


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def channel_widths(name, value, *, min_length):
    try:
        value = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}") from None
    if len(value) < min_length:
        raise ValueError(f"{name} needs at least {min_length} entries, got {value!r}")
    for width in value:
        positive_int(f"each entry of {name}", width)
    return tuple(int(width) for width in value)


def start_size(size, num_halvings):
    factor = 2**num_halvings
    if size % factor:
        raise ValueError(f"image size {size} is not a multiple of 2**{num_halvings} = {factor} "
                         f"(one halving per stride-2 layer); valid sizes: multiples of {factor}")
    return size // factor


def boolean(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def tensorlayer_generator(z_dim, channels, base, strides, kernel_size, initializers, dropout=None):
    """The DCGAN / vae-celebA generator body, named as tensorlayer names it.

    ``g_h0_lin`` (Dense to base*base*channels[0]) -> ``g_h0_reshape`` -> ``g_h0_batch_norm`` ->
    ``g_h0_relu``, then per i: ``g_hi_decon2d`` (``strides[i-1]``) -> ``g_hi_batch_norm`` ->
    ``g_hi_relu``, the last deconvolution followed by ``g_hN_tanh`` instead. ``dropout`` (a
    rate) adds ``g_h{N-1}_dropout`` between the two finest deconvolutions (SDR paper Fig. 12).
    """
    num_deconv = len(channels) - 1
    z = keras.Input((z_dim,), name="g_in")
    x = layers.Dense(base * base * channels[0], name="g_h0_lin", **initializers.dense())(z)
    x = layers.Reshape((base, base, channels[0]), name="g_h0_reshape")(x)
    x = batch_norm(x, "g_h0_batch_norm", initializers)
    x = layers.ReLU(name="g_h0_relu")(x)
    for index in range(1, num_deconv + 1):
        x = layers.Conv2DTranspose(channels[index], kernel_size, strides=strides[index - 1],
                                   padding="same", name=f"g_h{index}_decon2d",
                                   **initializers.dense())(x)
        if index < num_deconv:
            x = batch_norm(x, f"g_h{index}_batch_norm", initializers)
            x = layers.ReLU(name=f"g_h{index}_relu")(x)
            if dropout and index == num_deconv - 1:
                x = layers.Dropout(float(dropout), name=f"g_h{index}_dropout")(x)
    image = layers.Activation("tanh", name=f"g_h{num_deconv}_tanh")(x)
    return keras.Model(z, image, name="generator")
