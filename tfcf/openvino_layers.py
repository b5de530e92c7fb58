"""The few custom Keras layers :mod:`tfcf.openvino_import` needs where no standard layer is exact.

    from tfcf.openvino_layers import ConstantOp
    layer = ConstantOp("add", shape=(4, 4, 1))        # x + a constant held as a weight
    layer.build((None, 4, 4, 8)); layer.set_weights([noise])

Everything else an imported graph holds becomes a standard Keras layer (Conv2D, DepthwiseConv2D,
Conv2DTranspose, Dense, LeakyReLU, PReLU, Add, Multiply, Concatenate, Reshape, Permute,
ZeroPadding2D, Cropping2D). These layers use ``keras.ops`` only (TensorFlow and JAX backends),
hold their constants as non-trainable weights (so ``tfcf.cache.weights_digest`` and
``model.save`` see them) and are registered for serialisation under the package ``tfcf``:
a converted model saved as ``.keras`` loads back with ``keras.saving.load_model`` once this module
is imported (importing it needs no OpenVINO).

- :class:`ConstantOp`: ``x <op> c`` or ``c <op> x`` with a constant ``c`` (bias, noise map,
  scale, exponent); ``op`` in :data:`CONSTANT_OPS`.
- :class:`BatchConstant`: a constant repeated along the batch of a reference tensor (a learned
  input tiled to the batch, as StyleGAN's 4x4 constant).
- :class:`Slice`: ``x[..., start:stop, ...]`` along one axis (one output of a split).
- :class:`Reduce`: mean / sum / max / min over axes.
- :class:`Unary`: element-wise functions without a standard layer (sqrt, exp, abs, clip, ...).
- :class:`Binary`: divide / power / squared difference of two tensors.
- :class:`Take`: ``take(x, indices, axis)`` (a Gather on a tensor).
- :class:`Tile`, :class:`BroadcastTo`: repeat or broadcast the non-batch axes.
- :class:`DepthwiseConvTranspose`: a transposed convolution of each channel by its own kernel
  (a grouped one with one input and one output channel per group: MobileStyleGAN's inverse
  wavelet steps), without the ``channels``-fold multiplications by zero of a block-diagonal
  ``Conv2DTranspose``.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["BatchConstant", "Binary", "BroadcastTo", "CONSTANT_OPS", "ConstantOp",
           "DepthwiseConvTranspose", "Reduce", "Slice", "Take", "Tile", "UNARY_FUNCTIONS",
           "Unary"]

_PACKAGE = "tfcf"

CONSTANT_OPS = ("add", "subtract", "multiply", "divide", "power", "maximum", "minimum",
                "squared_difference")
UNARY_FUNCTIONS = ("sqrt", "exp", "log", "abs", "negative", "clip", "floor", "ceil", "sign",
                   "erf", "softplus")
_REDUCTIONS = ("mean", "sum", "max", "min", "prod")
_BINARY = ("divide", "power", "squared_difference", "subtract", "maximum", "minimum")


def _apply(op, a, b):
    if op == "squared_difference":
        return ops.square(ops.subtract(a, b))
    return getattr(ops, op)(a, b)


def _choice(value, valid, what):
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConstantOp(keras.layers.Layer):
    """``x <op> constant`` (or ``constant <op> x`` with ``constant_first=True``).

        layer = ConstantOp("multiply", shape=(1, 1, 512))     # a per-channel scale
        y = layer(x)                                          # after layer.set_weights([scale])

    ``shape`` is the constant's shape without the batch axis, already in the layout of ``x``
    (it broadcasts against ``x[0]``). The constant is a non-trainable weight named ``constant``.
    """

    def __init__(self, op, shape, constant_first=False, **kwargs):
        super().__init__(**kwargs)
        self.op = _choice(op, CONSTANT_OPS, "constant operation")
        self.constant_shape = tuple(int(d) for d in shape)
        self.constant_first = bool(constant_first)

    def build(self, input_shape):
        self.constant = self.add_weight(name="constant", shape=self.constant_shape,
                                        initializer="zeros", trainable=False)

    def call(self, x):
        constant = ops.cast(self.constant, x.dtype)
        return _apply(self.op, constant, x) if self.constant_first else _apply(self.op, x, constant)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        extra = len(self.constant_shape) - (len(shape) - 1)
        constant = ((1,) * -extra if extra < 0 else ()) + self.constant_shape
        body = [None if (a is None) else max(a, b) for a, b in zip(shape[1:], constant)]
        return (shape[0], *body)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "shape": list(self.constant_shape),
                "constant_first": self.constant_first}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchConstant(keras.layers.Layer):
    """A constant of shape ``shape`` repeated ``batch`` times, the batch of the reference input.

        constant = BatchConstant(shape=(4, 4, 512))(style)     # [B, 4, 4, 512]

    The reference tensor only gives the batch size; its values are not read.
    """

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.constant_shape = tuple(int(d) for d in shape)

    def build(self, input_shape):
        self.constant = self.add_weight(name="constant", shape=self.constant_shape,
                                        initializer="zeros", trainable=False)

    def call(self, reference):
        batch = ops.shape(reference)[0]
        value = ops.expand_dims(ops.convert_to_tensor(self.constant), 0)
        return ops.tile(value, [batch] + [1] * len(self.constant_shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.constant_shape)

    def get_config(self):
        return {**super().get_config(), "shape": list(self.constant_shape)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Slice(keras.layers.Layer):
    """``x[..., start:stop]`` along ``axis`` (not the batch axis).

        first = Slice(axis=-1, start=0, stop=128)(x)          # the first 128 channels
    """

    def __init__(self, axis, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.start, self.stop = int(axis), int(start), int(stop)
        if self.axis == 0:
            raise ValueError("Slice cannot cut the batch axis (axis 0)")

    def call(self, x):
        index = [slice(None)] * len(x.shape)
        index[self.axis] = slice(self.start, self.stop)
        return x[tuple(index)]

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[self.axis] = self.stop - self.start
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "start": self.start,
                "stop": self.stop}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Reduce(keras.layers.Layer):
    """A reduction over ``axes`` (never the batch axis): ``mean``, ``sum``, ``max``, ``min``,
    ``prod``.

        norm = Reduce("mean", axes=[1], keepdims=True)(ops.square(x))
    """

    def __init__(self, reduction, axes, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.reduction = _choice(reduction, _REDUCTIONS, "reduction")
        self.axes = [int(a) for a in axes]
        self.keepdims = bool(keepdims)
        if 0 in self.axes:
            raise ValueError("Reduce cannot reduce the batch axis (axis 0)")

    def call(self, x):
        function = {"mean": ops.mean, "sum": ops.sum, "max": ops.max, "min": ops.min,
                    "prod": ops.prod}[self.reduction]
        return function(x, axis=tuple(self.axes), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        rank = len(input_shape)
        axes = {a % rank for a in self.axes}
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in axes)

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction, "axes": self.axes,
                "keepdims": self.keepdims}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Unary(keras.layers.Layer):
    """An element-wise function without a standard Keras layer (see :data:`UNARY_FUNCTIONS`).

        y = Unary("sqrt")(x);  y = Unary("clip", low=-1.0, high=1.0)(x)
    """

    def __init__(self, function, low=None, high=None, **kwargs):
        super().__init__(**kwargs)
        self.function = _choice(function, UNARY_FUNCTIONS, "function")
        self.low, self.high = low, high

    def call(self, x):
        if self.function == "clip":
            return ops.clip(x, self.low, self.high)
        return getattr(ops, self.function)(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "function": self.function, "low": self.low,
                "high": self.high}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Binary(keras.layers.Layer):
    """``a <op> b`` for two tensors of the same layout, broadcasting (divide, power, ...).

        ratio = Binary("divide")([a, b])
    """

    def __init__(self, op, **kwargs):
        super().__init__(**kwargs)
        self.op = _choice(op, _BINARY, "binary operation")

    def call(self, inputs):
        return _apply(self.op, inputs[0], inputs[1])

    def compute_output_shape(self, input_shape):
        a, b = (list(s) for s in input_shape)
        return tuple(None if (x is None or y is None) else max(x, y) for x, y in zip(a, b))

    def get_config(self):
        return {**super().get_config(), "op": self.op}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Take(keras.layers.Layer):
    """``take(x, indices, axis)`` with constant integer indices (not along the batch axis).

        picked = Take(indices=[2, 0, 1], axis=-1)(x)            # reorder the channels
    """

    def __init__(self, indices, axis, **kwargs):
        super().__init__(**kwargs)
        self.indices = indices if isinstance(indices, int) else [int(i) for i in indices]
        self.axis = int(axis)
        if self.axis == 0:
            raise ValueError("Take cannot gather along the batch axis (axis 0)")

    def call(self, x):
        return ops.take(x, ops.convert_to_tensor(self.indices, dtype="int32"), axis=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = self.axis % len(shape)
        middle = [] if isinstance(self.indices, int) else [len(self.indices)]
        return tuple(shape[:axis] + middle + shape[axis + 1:])

    def get_config(self):
        return {**super().get_config(), "indices": self.indices, "axis": self.axis}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Tile(keras.layers.Layer):
    """Repeat the non-batch axes: ``repeats`` has one entry per non-batch axis.

        wide = Tile(repeats=(1, 1, 4))(x)                       # channels repeated 4 times
    """

    def __init__(self, repeats, **kwargs):
        super().__init__(**kwargs)
        self.repeats = [int(r) for r in repeats]

    def call(self, x):
        return ops.tile(x, [1] + self.repeats)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(None if d is None else d * r
                                         for d, r in zip(input_shape[1:], self.repeats))

    def get_config(self):
        return {**super().get_config(), "repeats": self.repeats}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BroadcastTo(keras.layers.Layer):
    """Broadcast the non-batch axes to ``shape`` (the batch axis is kept).

        full = BroadcastTo(shape=(8, 8, 16))(x)                 # x: [B, 1, 1, 16]
    """

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.target = [int(d) for d in shape]

    def call(self, x):
        return ops.broadcast_to(x, [ops.shape(x)[0]] + self.target)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.target)

    def get_config(self):
        return {**super().get_config(), "shape": self.target}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DepthwiseConvTranspose(keras.layers.Layer):
    """A 'valid' transposed convolution of each channel by its own kernel ``[*kernel_size, C]``
    (channels-last, 1 or 2 spatial axes): output size ``(n - 1) * stride + kernel + output_padding``
    per axis, as ``Conv2DTranspose`` with a diagonal kernel gives, at 1 / C of its cost.

        up = DepthwiseConvTranspose((2, 1), strides=(2, 1))(x)   # rows doubled, per channel

    A kernel as large as its stride (no overlap) is an interleave: each input value times the
    kernel's taps; otherwise zeros are inserted between the inputs and the flipped kernel runs
    as a depthwise convolution.
    """

    def __init__(self, kernel_size, strides, output_padding=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = tuple(int(s) for s in strides)
        count = len(self.kernel_size)
        self.output_padding = tuple(int(p) for p in (output_padding or (0,) * count))
        if count not in (1, 2) or len(self.strides) != count or len(self.output_padding) != count:
            raise ValueError(
                f"DepthwiseConvTranspose needs 1 or 2 spatial axes with one stride and output "
                f"padding each; got kernel {self.kernel_size}, strides {self.strides}, output "
                f"padding {self.output_padding}")

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=self.kernel_size + (int(input_shape[-1]),),
                                      initializer="zeros", name="kernel")

    def call(self, x):
        count = len(self.kernel_size)
        sizes = tuple(int(d) for d in x.shape[1:-1])
        channels = int(x.shape[-1])
        if self.kernel_size == self.strides and not any(self.output_padding):
            # [B, n_1, k_1, (n_2, k_2,) C]: each value times its channel's taps
            expanded = x
            kernel = self.kernel
            for axis in range(count):
                expanded = ops.expand_dims(expanded, 2 + 2 * axis)
                kernel = ops.expand_dims(kernel, 2 * axis)
            y = expanded * kernel
            return ops.reshape(y, (-1,) + tuple(n * k for n, k in zip(sizes, self.kernel_size))
                               + (channels,))
        up = x
        for axis, (size, stride) in enumerate(zip(sizes, self.strides)):
            if stride > 1:   # zeros between the values along this axis
                position = 1 + axis
                up = ops.expand_dims(up, position + 1)
                pad = [(0, 0)] * len(up.shape)
                pad[position + 1] = (0, stride - 1)
                up = ops.pad(up, pad)
                shape = tuple(int(d) for d in up.shape)
                up = ops.reshape(up, (-1,) + shape[1:position] + (size * stride,)
                                 + shape[position + 2:])
                trim = [slice(None)] * len(up.shape)
                trim[position] = slice(0, (size - 1) * stride + 1)
                up = up[tuple(trim)]
        pad = [(0, 0)] + [(k - 1, k - 1 + extra) for k, extra in
                          zip(self.kernel_size, self.output_padding)] + [(0, 0)]
        flipped = ops.flip(self.kernel, axis=tuple(range(count)))
        return ops.depthwise_conv(ops.pad(up, pad), ops.expand_dims(flipped, -1), strides=1,
                                  padding="valid")

    def compute_output_shape(self, input_shape):
        sizes = tuple(None if n is None else (n - 1) * s + k + extra for n, s, k, extra in zip(
            input_shape[1:-1], self.strides, self.kernel_size, self.output_padding))
        return (input_shape[0],) + sizes + (input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "output_padding": list(self.output_padding)}
