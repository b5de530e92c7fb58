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
