"""MobileStyleGAN (FFHQ, 1024 px) from the PyPI package random-face, imported into Keras 3.

    from tfcf.models import mobile_stylegan
    generator = mobile_stylegan.load_generator(truncation=0.7)   # z [B, 512] -> [B, 1024, 1024, 3]
    head, tail = tfcf.split(generator, "LeakyRelu_342")             # 32x32x512, end of layers.2
    small = mobile_stylegan.load_generator(truncation=0.7, output_size=128)   # averaged to 128 px

`pip install --no-deps random-face==2021.7.21.1` ships MobileStyleGAN (Belousov 2021, distilled
from StyleGAN2-FFHQ; Apache-2.0) as two OpenVINO IR graphs, ``MappingNetwork`` (z 512 -> style
512) and ``SynthesisNetwork`` (style 512 -> [1, 3, 1024, 1024]). :mod:`tfcf.openvino_import`
converts them (needs ``pip install openvino`` the first time); the Keras models are cached in
``<tfcf cache>/mobile_stylegan/`` as ``.keras`` files keyed by a hash of the package's .xml/.bin
(written atomically, rebuilt when the files change or the cache cannot be read) and load
afterwards without OpenVINO.

Networks. ``load_mapping()``: z [B, 512] ~ N(0, 1) -> style [B, 512] (pixel norm, 8 x (Dense,
bias, LeakyReLU 0.2, x sqrt 2)). ``load_synthesis()``: style -> image [B, 1024, 1024, 3],
channels-last RGB, in about [-1, 1]: the IR's raw output, not clipped (random-face clips it to
[-1, 1] for display); for 4 untruncated samples 98.8% of the values lie in [-1, 1], the extremes
at -1.65 and 1.41. It matches OpenVINO's float32 CPU inference to 5e-5 (max |difference| over 4
samples at 1024 px); OpenVINO's default on CPUs with bfloat16 (this one) differs from both by up
to 0.86 at single pixels. The style feeds every block through its own modulation layers, so a cut
carries it. ``load_generator(truncation)`` chains them (nested models ``mapping`` and
``synthesis``), with the truncation trick ``mean + truncation * (style - mean)`` towards the mean
style of 4096 mapped samples (the seed ``[0, 999]`` of ``tools/build_faces.py``; random-face uses
an unseeded draw), and optionally averages the image down to ``output_size`` px.

Where to cut (synthesis blocks; names are the IR's op names, see :data:`BLOCKS`): each block
``layers.i`` up-samples by an inverse Haar wavelet transform (grouped transposed convolutions
``ConvTranspose_*``) then runs two modulated depthwise-separable convolutions, each ending in a
``LeakyRelu_*`` (PReLU 0.2). :data:`INTERMEDIATE_LAYER` (32x32x512) and ``LAYER_PAIR`` (32x32 and
64x64, 512 channels each) are the defaults of the figure commands.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import keras
import numpy as np

from tfcf import openvino_layers  # noqa: F401 - registers the layers the cached models use
from tfcf.io import atomic_path, cache_dir

__all__ = ["BLOCKS", "DEFAULT_TRUNCATION", "INTERMEDIATE_LAYER", "LAYER_PAIR", "PACKAGE",
           "PIP_INSTALL", "STYLE_DIM",
           "Truncation", "data_dir", "load_generator", "load_mapping", "load_synthesis",
           "style_mean"]

PACKAGE = "random_face"
PIP_INSTALL = "pip install --no-deps random-face==2021.7.21.1 openvino"
STYLE_DIM = 512
NETWORKS = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork"}
#: Layer-name prefixes: the two IRs share op names (Add_70), which one model cannot hold twice.
PREFIXES = {"mapping": "mapping_", "synthesis": ""}
CONVERTER_VERSION = "2"  # part of the cache key: bump when tfcf.openvino_import changes output
#: block -> (resolution, channels, the two LeakyReLU layers that end its convolutions)
BLOCKS = {
    "conv1": (4, 512, ("LeakyRelu_42",)),
    "layers.0": (8, 512, ("LeakyRelu_109", "LeakyRelu_142")),
    "layers.1": (16, 512, ("LeakyRelu_209", "LeakyRelu_242")),
    "layers.2": (32, 512, ("LeakyRelu_309", "LeakyRelu_342")),
    "layers.3": (64, 512, ("LeakyRelu_409", "LeakyRelu_442")),
    "layers.4": (128, 256, ("LeakyRelu_509", "LeakyRelu_542")),
    "layers.5": (256, 128, ("LeakyRelu_609", "LeakyRelu_642")),
    "layers.6": (512, 64, ("LeakyRelu_709", "LeakyRelu_742")),
}
INTERMEDIATE_LAYER = "LeakyRelu_342"
#: The truncation of ``load_generator`` in the registry (``--model mobile_stylegan``).
DEFAULT_TRUNCATION = 0.7
LAYER_PAIR = ("LeakyRelu_342", "LeakyRelu_442")
_MEAN_SEED = (0, 999)


def data_dir():
    """The folder of the package's IR files, or a FileNotFoundError saying how to install it.

        data_dir() / "SynthesisNetwork.xml"
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"MobileStyleGAN needs the package random-face: {PIP_INSTALL}")
    folder = Path(spec.origin).parent / "data"
    missing = [f"{n}{s}" for n in NETWORKS.values() for s in (".xml", ".bin")
               if not (folder / f"{n}{s}").is_file()]
    if missing:
        raise FileNotFoundError(f"random-face is installed but {folder} lacks {missing}; "
                                f"reinstall it: {PIP_INSTALL}")
    return folder


def _files_digest(network):
    digest = hashlib.sha1(f"{network}|converter {CONVERTER_VERSION}".encode())
    for suffix in (".xml", ".bin"):
        with open(data_dir() / f"{NETWORKS[network]}{suffix}", "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def _cache_path(network):
    return cache_dir() / "mobile_stylegan" / f"{network}-{_files_digest(network)[:16]}.keras"


def _load(network):
    path = _cache_path(network)
    if path.is_file():
        try:
            return keras.saving.load_model(path, compile=False)
        except Exception as error:  # noqa: BLE001 - any unreadable cache is rebuilt
            warnings.warn(f"cached {network} network {path} is unusable ({type(error).__name__}: "
                          f"{str(error)[:200]}); converting the IR again", stacklevel=3)
            path.unlink(missing_ok=True)
    from tfcf.openvino_import import from_openvino

    model = from_openvino(data_dir() / f"{NETWORKS[network]}.xml", name=network,
                          prefix=PREFIXES[network])
    with atomic_path(path) as temporary:
        model.save(temporary)
    return model


def load_mapping():
    """The mapping network: z [B, 512] ~ N(0, 1) -> style [B, 512].

        styles = load_mapping()(np.random.default_rng(0).standard_normal((4, 512)))
    """
    return _load("mapping")


def load_synthesis():
    """The synthesis network: style [B, 512] -> image [B, 1024, 1024, 3] in about [-1, 1].

        synthesis = load_synthesis()
        head, tail = tfcf.split(synthesis, "LeakyRelu_442")       # 64x64x512
    """
    return _load("synthesis")


def style_mean(num_samples=4096, mapping=None):
    """The mean style [1, 512] of ``num_samples`` mapped N(0, 1) samples (seed ``[0, 999]``),
    cached in ``<tfcf cache>/mobile_stylegan/``.

        mean = style_mean()
    """
    from tfcf.cache import cached_arrays

    key = f"mobile_stylegan style mean|{_files_digest('mapping')}|{num_samples}|{_MEAN_SEED}"

    def compute():
        model = mapping if mapping is not None else load_mapping()
        z = np.random.default_rng(list(_MEAN_SEED)).standard_normal((num_samples, STYLE_DIM))
        styles = model.predict(z.astype("float32"), batch_size=512, verbose=0)
        return {"mean": styles.mean(axis=0, keepdims=True).astype("float32")}

    return cached_arrays("mobile_stylegan", key, compute,
                         expect={"mean": ((1, STYLE_DIM), "float32")})["mean"]


@keras.saving.register_keras_serializable(package="tfcf")
class Truncation(keras.layers.Layer):
    """The truncation trick: ``mean + truncation * (style - mean)``, mean a constant weight.

        truncated = Truncation(0.7)(style)            # after layer.set_weights([mean])
    """

    def __init__(self, truncation, dim=STYLE_DIM, **kwargs):
        super().__init__(**kwargs)
        self.truncation = float(truncation)
        self.dim = int(dim)

    def build(self, input_shape):
        self.mean = self.add_weight(name="mean", shape=(self.dim,), initializer="zeros",
                                    trainable=False)

    def call(self, style):
        mean = keras.ops.cast(self.mean, style.dtype)
        return mean + self.truncation * (style - mean)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "truncation": self.truncation, "dim": self.dim}


def load_generator(truncation=None, output_size=None):
    """z [B, 512] ~ N(0, 1) -> image [B, S, S, 3], the mapping and synthesis networks chained.

        generator = load_generator(truncation=0.7)                 # S = 1024
        small = load_generator(truncation=0.7, output_size=128)    # 8x8 blocks averaged

    ``truncation`` None or 1 leaves the style as mapped; below 1 it pulls it towards
    :func:`style_mean` (layer ``truncation``). ``output_size`` (a divisor of 1024) adds an
    ``AveragePooling2D`` named ``downsample`` after the image: what influence maps at 1024 px
    would need in memory (512 maps x 1024 x 1024 x 3 in float64: 13 GB) falls by
    ``(1024 / output_size)**2``; the network still computes every pixel at 1024.
    """
    if output_size is not None and (int(output_size) < 1 or 1024 % int(output_size)):
        raise ValueError(f"output_size must divide 1024 (e.g. 64, 128, 256), got {output_size!r}")
    if truncation is not None and not 0.0 <= float(truncation) <= 1.0:
        raise ValueError(f"truncation must be in [0, 1] (1 or None: none), got {truncation!r}")
    mapping, synthesis = load_mapping(), load_synthesis()
    z = keras.Input((STYLE_DIM,), name="z")
    style = mapping(z)
    if truncation is not None and float(truncation) != 1.0:
        layer = Truncation(truncation, name="truncation")
        style = layer(style)
        layer.set_weights([style_mean(mapping=mapping)[0]])
    image = synthesis(style)
    full = int(image.shape[1])
    if output_size is not None and int(output_size) != full:
        if full % int(output_size):
            raise ValueError(f"output_size {output_size} does not divide the image size {full}")
        image = keras.layers.AveragePooling2D(full // int(output_size), name="downsample")(image)
    suffix = f"_{int(output_size)}px" if output_size else ""
    return keras.Model(z, image, name=f"mobile_stylegan{suffix}")
