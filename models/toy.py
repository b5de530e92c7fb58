"""Model 1 of Besserve et al. (ICLR 2020, section 3.4): a one-hidden-layer generator whose modules
are known, for checking influence maps and their NMF clustering against the truth.

    from tfcf.models import toy
    model1 = toy.build_model1(num_modules=3, units_per_module=4, image_shape=(16, 16))
    images = model1.model(model1.sample_latent(8, seed=0))      # [8, 16, 16, 1]
    model1.labels      # true module of each of the 12 hidden units; model1.regions: the I_k

The model. Z holds K i.i.d. uniform latent variables (here U(-1, 1)). The hidden layer is K vectors
V_k = S(H_k Z_k), H_k in R^n, S a leaky ReLU (strictly increasing). The output is
Y = sum_k W^k V_k with W^k in R^{m x n}, m = H*W pixels, m > n*K. Within each column of W^k the
coefficients in a pixel set I_k are i.i.d. N(0, 1) and the others are zero; every I_k holds a
pixel no other I_j holds. Proposition 3 of the paper: with probability 1 the K vectors are a
disentangled partition of the hidden layer, and a change of any unit of V_k changes exactly the
pixels of I_k.

As a Keras functional model: `z` (K,) -> `hidden` Dense(K*n, no bias, block-sparse kernel:
kernel[k, k*n:(k+1)*n] = H_k, zero elsewhere) -> `hidden_act` LeakyReLU -> `output_lin`
Dense(m, no bias; row k*n+i is column i of W^k) -> `image` Reshape (H, W, 1), pixels in row-major
order. Hidden unit j belongs to module j // n.

The regions: K vertical stripes. Column boundaries e_k = k*W // K; stripe k covers columns
[e_k, e_(k+1) + overlap) (the last one ends at W), so neighbouring stripes share `overlap` columns
and stripe k owns columns [e_k + overlap, e_(k+1)) (from e_0 for the first) alone.

H_k and the W^k coefficients are Gaussian draws from `numpy.random.default_rng(seed)`, so a seed
gives the same parameters on every backend.
"""

import dataclasses

import numpy as np
import keras
from keras import layers

from tfcf.models._common import positive_int


@dataclasses.dataclass(frozen=True)
class Model1:
    """Model 1 and its ground truth.

    Attributes:
        model: the Keras model z [B, K] -> image [B, H, W, 1].
        labels: int array [K*n], the module of each hidden unit.
        regions: bool array [K, H, W], the pixel sets I_k.
        hidden_weights: float32 [K, n], H_k in row k.
        output_weights: float32 [K, m, n], W^k (zero outside I_k).
        negative_slope: the leaky ReLU's slope for negative inputs.
    """

    model: keras.Model
    labels: np.ndarray
    regions: np.ndarray
    hidden_weights: np.ndarray
    output_weights: np.ndarray
    negative_slope: float

    @property
    def num_modules(self):
        return self.hidden_weights.shape[0]

    def sample_latent(self, num, seed=0):
        """`num` draws of Z, i.i.d. U(-1, 1), float32 [num, K].

            z = model1.sample_latent(64, seed=1)
        """
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
            raise ValueError(f"num must be a positive integer, got {num!r}")
        rng = np.random.default_rng(seed)
        return rng.uniform(-1.0, 1.0, size=(int(num), self.num_modules)).astype(np.float32)


def build_model1(num_modules=3, units_per_module=4, image_shape=(16, 16), overlap=2, seed=0, *,
                 negative_slope=0.2):
    """Model 1 with K = `num_modules` modules of n = `units_per_module` hidden units each.

        model1 = build_model1(num_modules=2, units_per_module=3, image_shape=(8, 8), overlap=1)
        model1.regions.shape     # (2, 8, 8): I_0 columns 0-4, I_1 columns 4-7
        model1.labels            # [0 0 0 1 1 1]

    Args:
        num_modules: K, at least 1.
        units_per_module: n, at least 2 (the paper's n > 1).
        image_shape: (H, W); m = H*W must exceed n*K.
        overlap: columns shared by neighbouring stripes, at least 0; each stripe must keep a
            column of its own.
        seed: seed of the NumPy generator that draws H_k and W^k.
        negative_slope: of the leaky ReLU S; positive, so that S is strictly increasing.

    Returns:
        `Model1`.
    """
    num_modules = positive_int("num_modules", num_modules)
    units_per_module = positive_int("units_per_module", units_per_module)
    if units_per_module < 2:
        raise ValueError(f"units_per_module must be at least 2 (Model 1 has n > 1), "
                         f"got {units_per_module}")
    try:
        height, width = image_shape
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}") from None
    height, width = positive_int("image height", height), positive_int("image width", width)
    num_pixels = height * width
    num_hidden = num_modules * units_per_module
    if num_pixels <= num_hidden:
        raise ValueError(f"Model 1 needs more pixels than hidden units (m > nK): image_shape "
                         f"{(height, width)} has m = {num_pixels}, num_modules * "
                         f"units_per_module = {num_hidden}")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative integer, got {overlap!r}")
    if not isinstance(negative_slope, (int, float)) or not negative_slope > 0:
        raise ValueError(f"negative_slope must be positive (S strictly increasing), "
                         f"got {negative_slope!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")

    regions = _stripes(num_modules, height, width, int(overlap))
    rng = np.random.default_rng(int(seed))
    hidden_weights = rng.standard_normal((num_modules, units_per_module)).astype(np.float32)
    support = regions.reshape(num_modules, num_pixels, 1)
    output_weights = (rng.standard_normal((num_modules, num_pixels, units_per_module))
                      * support).astype(np.float32)

    hidden_kernel = np.zeros((num_modules, num_hidden), np.float32)
    for module in range(num_modules):
        block = slice(module * units_per_module, (module + 1) * units_per_module)
        hidden_kernel[module, block] = hidden_weights[module]
    # Row k*n + i of the output kernel is column i of W^k.
    output_kernel = output_weights.transpose(0, 2, 1).reshape(num_hidden, num_pixels)

    z = keras.Input((num_modules,), name="z")
    hidden = layers.Dense(num_hidden, use_bias=False, name="hidden",
                          kernel_initializer=keras.initializers.Constant(hidden_kernel))(z)
    hidden = layers.LeakyReLU(negative_slope=float(negative_slope), name="hidden_act")(hidden)
    pixels = layers.Dense(num_pixels, use_bias=False, name="output_lin",
                          kernel_initializer=keras.initializers.Constant(output_kernel))(hidden)
    image = layers.Reshape((height, width, 1), name="image")(pixels)
    model = keras.Model(z, image, name="model1")
    # Constant initialisers are exact, but set the arrays explicitly all the same.
    model.get_layer("hidden").set_weights([hidden_kernel])
    model.get_layer("output_lin").set_weights([output_kernel])

    labels = np.repeat(np.arange(num_modules), units_per_module)
    return Model1(model=model, labels=labels, regions=regions, hidden_weights=hidden_weights,
                  output_weights=output_weights, negative_slope=float(negative_slope))


def _stripes(num_modules, height, width, overlap):
    """K vertical stripes, neighbours sharing `overlap` columns, each with columns of its own."""
    if width < num_modules:
        raise ValueError(f"image width {width} cannot hold {num_modules} stripes; "
                         f"valid widths: at least num_modules = {num_modules}")
    edges = [module * width // num_modules for module in range(num_modules + 1)]
    # Stripe k > 0 owns columns [e_k + overlap, e_(k+1)); stripe 0 owns [0, e_1), never empty.
    narrowest = min((edges[k + 1] - edges[k] for k in range(1, num_modules)), default=width)
    if overlap >= narrowest:
        raise ValueError(f"overlap {overlap} leaves a stripe with no column of its own "
                         f"(stripes of width {narrowest}); valid overlaps: 0..{narrowest - 1}")
    regions = np.zeros((num_modules, height, width), bool)
    for module in range(num_modules):
        stop = width if module == num_modules - 1 else edges[module + 1] + overlap
        regions[module, :, edges[module]:stop] = True
    return regions
