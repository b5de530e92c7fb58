"""The linear shortcut of :func:`tfcf.influence_maps`: where a hybrid can be formed after a cut,
and the linear layer there as a convolution over taps.

    tfcf.influence.shortcut_layer(generator, "main.8")           # "main.9"
    shortcut = find_shortcut(flat_graph(generator), cut_tensor_id) # Shortcut(swap, op, ...)
    taps = taps_of(shortcut.op.operation, (16, 16))               # Taps: kernel(), apply(), ...

Copying channels commutes with every channel-wise layer (batch norm, elementwise activations,
padding, cropping, up-sampling, reshapes that keep the channel axis), so the hybrid can be formed
at the input of the first layer after the cut that mixes channels (:func:`find_shortcut`). That
layer is linear: :class:`Taps` writes it (Dense, convolution, grouped, depthwise, separable or
transposed convolution, Flatten + Dense) as a stride-s convolution of its padded input, so that a
set of channels' contribution is a contraction over their kernel rows only
(:meth:`Taps.restricted`). One per-sample channel scale may sit on the way (a style modulation
``x * s``, ``s`` [B, 1.., C] computed from the model inputs, followed by linear channel-wise
layers only: :class:`Scale`): a hybrid's difference from its base is then the difference of the
two samples' values without the scale, times the base's scale.
:func:`fast_transposed_call` runs transposed convolutions in the
forms that are fastest here (sub-pixel convolution for oneDNN, matrix product + overlap-add for
XLA).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import keras

from tfcf.graph import flat_graph

__all__ = ["Scale", "Shortcut", "Taps", "conv_padded", "depth_to_space", "fast_transposed_call",
           "find_shortcut", "finish_transposed", "is_elementwise", "mixes_channels",
           "shortcut_layer", "taps_of", "transposed_taps"]


# ----------------------------------------------------------------------------- layout helpers

def conv_padded(x, kernel, pads, strides, dilations):
    """Channels-last convolution (cross-correlation) of ``x`` zero-padded by ``pads``.

    Example::

        y = conv_padded(x, kernel, pads=((1, 1), (1, 1)), strides=(1, 1), dilations=(1, 1))
    """
    if keras.backend.backend() == "tensorflow" and len(pads) == 2:
        import tensorflow as tf   # explicit padding, no padded copy of x

        return tf.nn.conv2d(x, kernel, strides=(1,) + tuple(strides) + (1,),
                            padding=[[0, 0], list(pads[0]), list(pads[1]), [0, 0]],
                            dilations=(1,) + tuple(dilations) + (1,))
    if any(p != (0, 0) for p in pads):
        x = keras.ops.pad(x, [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)])
    return keras.ops.conv(x, kernel, strides=tuple(strides), padding="valid",
                          dilation_rate=tuple(dilations))


def depth_to_space(x, blocks):
    """[B, s_1..s_d, (r_1..r_d, c)] -> [B, s_1*b_1, .., s_d*b_d, c] (TF's DCR order).

    Example::

        depth_to_space(x, (2, 2))        # [B, 16, 16, 4 * 64] -> [B, 32, 32, 64]
    """
    ops = keras.ops
    spatial = tuple(int(d) for d in x.shape[1:-1])
    count = len(blocks)
    channels = int(x.shape[-1]) // math.prod(blocks)
    x = ops.reshape(x, (-1,) + spatial + tuple(blocks) + (channels,))
    order = [0] + [a for i in range(count) for a in (1 + i, 1 + count + i)] + [1 + 2 * count]
    x = ops.transpose(x, order)
    return ops.reshape(x, (-1,) + tuple(s * b for s, b in zip(spatial, blocks)) + (channels,))


# ----------------------------------------------------------------------------- the shortcut

_CHANNEL_MIXING = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D,
                   keras.layers.Conv3D, keras.layers.Conv1DTranspose,
                   keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose,
                   keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
                   keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_ELEMENTWISE = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.LeakyReLU,
                keras.layers.ELU, keras.layers.PReLU, keras.layers.Rescaling,
                keras.layers.Identity, keras.layers.Dropout, keras.layers.Activation)
_SPATIAL = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
            keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
            keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.UpSampling3D)
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
               keras.layers.Conv3DTranspose)


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def _linear_activation(layer):
    activation = getattr(layer, "activation", None)
    return activation is None or getattr(activation, "__name__", None) == "linear"


def is_elementwise(layer, rank):
    """True for a layer that acts on each value alone (or per channel, the same at each pixel).

    Example::

        is_elementwise(keras.layers.ReLU(), rank=4)                  # True
        is_elementwise(keras.layers.Activation("softmax"), rank=4)   # False
    """
    if not isinstance(layer, _ELEMENTWISE):
        return False
    if isinstance(layer, keras.layers.Activation):
        function = layer.activation
        name = getattr(function, "__name__", "")
        try:
            known = keras.activations.get(name) is function
        except (ValueError, TypeError):
            known = False
        return known and name not in ("softmax", "log_softmax")
    if isinstance(layer, keras.layers.BatchNormalization):
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return [a % rank for a in axes] == [rank - 1]
    return True


def _channel_preserving(op, graph):
    """True when channel c of the op's output depends on channel c of its input alone, the same
    way for every channel: copying channels before it or after it is the same."""
    layer = op.operation
    shape_in = graph.specs[op.inputs[0]].shape
    shape_out = graph.specs[op.outputs[0]].shape
    if len(op.outputs) != 1 or shape_in[-1] is None or shape_in[-1] != shape_out[-1]:
        return False
    if is_elementwise(layer, len(shape_in)):
        return True
    if isinstance(layer, _SPATIAL):
        return _channels_last(layer) and getattr(layer, "interpolation", "nearest") in (
            "nearest", "bilinear")
    if isinstance(layer, keras.layers.Reshape):
        return True                        # same last axis: the channel index is kept
    if isinstance(layer, keras.layers.Permute):
        return tuple(layer.dims)[-1] == len(shape_in) - 1
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        return layer.depth_multiplier == 1 and _channels_last(layer) and _linear_activation(
            layer)
    return False


def _mixing(op, graph):
    """True for a linear channel-mixing layer the shortcut can restrict to some input channels."""
    layer = op.operation
    if not isinstance(layer, _CHANNEL_MIXING) or len(op.inputs) != 1 or len(op.outputs) != 1:
        return False
    if not (_channels_last(layer) and _linear_activation(layer)):
        return False
    if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
        return False
    shape = graph.specs[op.inputs[0]].shape
    if any(d is None for d in shape[1:]) or "float32" not in str(
            getattr(layer, "compute_dtype", "float32")):
        return False
    if isinstance(layer, _TRANSPOSED):
        return all(d == 1 for d in layer.dilation_rate)
    if isinstance(layer, keras.layers.Dense):
        return len(shape) >= 2
    return getattr(layer, "padding", "valid") in ("valid", "same", "causal")


def mixes_channels(op, graph):
    """True for a linear layer that mixes channels and that the shortcut can restrict to some
    input channels (dense, convolution, transposed convolution; not a depthwise one).

    Example::

        graph = flat_graph(generator)
        mixes_channels(graph.op_named("main.9"), graph)     # True: a Conv2DTranspose
        mixes_channels(graph.op_named("main.10"), graph)    # False: batch norm
    """
    return _mixing(op, graph) and not _channel_preserving(op, graph)


def _commutes_with_scales(op):
    """True for a channel-preserving layer that is linear (affine): scaling each channel of its
    input scales that channel of its output (less the bias) the same way."""
    layer = op.operation
    if isinstance(layer, (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
                          keras.layers.PReLU)):
        return False
    if isinstance(layer, keras.layers.Activation):
        return _linear_activation(layer)
    return True   # batch norm, rescaling, identity, dropout, padding, cropping, reshapes, depthwise


def _is_multiply(layer):
    return isinstance(layer, keras.layers.Multiply) or (
        type(layer).__name__ == "Multiply" and type(layer).__module__.startswith("keras."))


def _scale_input(op, graph, tid, cut):
    """The other input of ``op`` when ``op`` multiplies ``tid`` by a per-sample, per-channel scale
    ([B, 1.., C], not computed from ``cut``: a style or class modulation), else None."""
    if not _is_multiply(op.operation) or len(op.inputs) != 2 or tid not in op.inputs:
        return None
    if op.inputs[0] == op.inputs[1] or len(op.outputs) != 1:
        return None
    side = op.inputs[1] if op.inputs[0] == tid else op.inputs[0]
    shape, spec = graph.specs[tid].shape, graph.specs[side]
    if (not spec.batched or len(spec.shape) != len(shape) or spec.shape[-1] != shape[-1]
            or any(d != 1 for d in spec.shape[1:-1])
            or graph.specs[op.outputs[0]].shape != shape):
        return None
    ancestors = graph.ancestors_of([side], stop=[cut])
    if side == cut or any(cut in graph.ops[index].inputs for index in ancestors):
        return None
    return side


def _flattens(op, graph):
    """A Flatten (or Reshape to one axis) of a channels-last tensor with static shape."""
    shape = graph.specs[op.inputs[0]].shape
    out = graph.specs[op.outputs[0]].shape
    return (isinstance(op.operation, (keras.layers.Flatten, keras.layers.Reshape))
            and len(out) == 2 and len(shape) > 2 and _channels_last(op.operation)
            and all(d is not None for d in shape[1:]))


@dataclasses.dataclass
class Shortcut:
    """Where the hybrids are formed: channels of ``swap`` copied, then ``op`` (channel mixing).

    Example::

        shortcut = find_shortcut(graph, graph.resolve("main.8")[0])
        graph.name_of(shortcut.op), shortcut.passed                  # ("main.9", ())
    """

    swap: int                 # tensor id: the mixing layer's input (or the Flatten's input)
    op: object                # the graph op of the mixing layer
    flatten: object = None    # the Flatten/Reshape op before a Dense, or None
    passed: tuple = ()        # names of the channel-wise layers between the cut and ``swap``
    scale: object = None      # Scale: a per-sample channel scale on the way, or None


@dataclasses.dataclass
class Scale:
    """A per-sample, per-channel scale between the cut and the mixing layer (``op`` multiplies
    ``before`` by ``side``, shape [B, 1.., C]; only linear channel-wise layers after it). A
    hybrid's value at ``swap`` is then the base's value plus ``side[base]`` times the difference
    of the two samples' values computed without the scale.

    Example::

        shortcut = find_shortcut(graph, graph.resolve("LeakyRelu_409")[0])
        graph.name_of(shortcut.scale.op)                             # "Mul_419" (the style)
    """

    op: object                # the graph op of the multiplication
    before: int               # tensor id: its input from the cut
    side: int                 # tensor id: the scale [B, 1.., C]


def find_shortcut(graph, cut, why=None):
    """The channel-mixing layer reached from tensor ``cut`` through channel-wise layers only:
    a :class:`Shortcut`, or None. ``why``: a list that receives where and why the walk stopped.

    Example::

        graph = flat_graph(generator)
        shortcut = find_shortcut(graph, graph.resolve("main.7")[0])  # through ReLU main.8
        reasons, graph = [], flat_graph(mobile_stylegan.load_synthesis())
        find_shortcut(graph, graph.resolve("LeakyRelu_442")[0], why=reasons)   # None
        reasons[0]    # "the output of synthesis/Mul_456 is read by 2 ops (a fan-out)"
    """
    tid, passed, fallback, scale = cut, [], None, None
    stop = "it reaches a model output"
    while tid not in graph.outputs:
        readers = graph.consumers(tid)
        if len(readers) != 1:
            where = graph.name_of(graph.ops[graph.producer[tid]]) if tid != cut else "the cut"
            stop = f"the output of {where} is read by {len(readers)} ops (a fan-out)"
            break
        op, name = readers[0], graph.name_of(readers[0])
        if op.inputs != [tid]:    # one per-sample channel scale (a style modulation) may pass
            side = _scale_input(op, graph, tid, cut) if scale is None else None
            if side is None:
                stop = (f"{name} ({type(op.operation).__name__}) combines it with other inputs "
                        "(only one per-sample channel scale may pass)")
                break
            scale = Scale(op, tid, side)
            passed.append(name)
            tid = op.outputs[0]
            continue
        if _mixing(op, graph):
            shortcut = Shortcut(tid, op, None, tuple(passed), scale)
            if not _channel_preserving(op, graph):
                return shortcut
            fallback = shortcut          # a depthwise convolution: look for a mixing layer after
        elif _flattens(op, graph):
            after = graph.consumers(op.outputs[0])
            if (len(after) == 1 and isinstance(after[0].operation, keras.layers.Dense)
                    and _mixing(after[0], graph) and op.outputs[0] not in graph.outputs):
                return Shortcut(tid, after[0], op, tuple(passed), scale)
            stop = f"{name} flattens it for something other than one Dense layer"
            break
        elif not _channel_preserving(op, graph):
            stop = f"{name} ({type(op.operation).__name__}) is neither channel-wise nor linear"
            break
        elif scale is not None and not _commutes_with_scales(op):
            stop = (f"{name} ({type(op.operation).__name__}) is non-linear and follows the "
                    "per-sample scale")
            break
        passed.append(name)
        tid = op.outputs[0]
    if why is not None and fallback is None:
        why.append(stop)
    return fallback


def shortcut_layer(model, at):
    """The layer after ``at`` where :func:`influence_maps` forms its hybrids, or None.

    Example::

        tfcf.influence.shortcut_layer(generator, "main.8")     # "main.9" (a Conv2DTranspose)
        tfcf.influence.shortcut_layer(generator, "main.7")     # "main.9": ReLU main.8 commutes

    None means the generic path: the layer's output is read by several layers (a skip
    connection), or no linear channel-mixing layer follows it through channel-wise layers (and
    at most one per-sample channel scale) only; ``find_shortcut(..., why=[])`` says which.
    """
    graph = flat_graph(model)
    cut = graph.resolve(at)
    found = find_shortcut(graph, cut[0]) if len(cut) == 1 else None
    return None if found is None else graph.name_of(found.op)


# ----------------------------------------------------------------------------- tap convolutions

@dataclasses.dataclass(frozen=True)
class Taps:
    """A linear channel-mixing layer as a stride-``strides`` convolution of its zero-padded input
    with a kernel [k_1..k_d, C, O'], then depth-to-space (``blocks``), ``crops`` (start, length)
    per axis, and optionally a flatten to [B, O] (Dense after Flatten).

    Transposed convolutions use their sub-pixel form: with Q = ceil(k / s) taps per phase, output
    row o receives input row i through kernel row k = o + p - s i (p: the padding before), so
    phase r = (o + p) mod s is a Q-tap convolution of the input padded by Q - 1.

    Example::

        taps = taps_of(layer, (16, 16))     # layer: Conv2DTranspose(64, 4, strides=2)
        taps.kernel_size, taps.blocks       # ((2, 2), (2, 2)): 2x2 taps per phase, 2x2 phases
    """

    layer: object
    kind: str
    kernel_size: tuple
    pads: tuple
    strides: tuple
    dilations: tuple
    blocks: tuple
    crops: tuple
    flatten: bool
    in_shape: tuple           # spatial shape of the input

    def kernel(self):
        """The tap kernel from the layer's current weights (keras.ops, inside compiled code)."""
        ops, layer = keras.ops, self.layer
        count = len(self.kernel_size)
        if self.kind == "dense":
            kernel = layer.kernel
            return ops.reshape(kernel, (1,) * count + tuple(kernel.shape))
        if self.kind == "flat_dense":
            kernel = layer.kernel
            channels = int(kernel.shape[0]) // math.prod(self.kernel_size)
            return ops.reshape(kernel, tuple(self.kernel_size) + (channels, int(kernel.shape[1])))
        if self.kind == "conv":
            kernel = layer.kernel
            groups = int(getattr(layer, "groups", 1) or 1)
            if groups == 1:
                return kernel
            per_in, out = int(kernel.shape[-2]), int(kernel.shape[-1])
            split = ops.reshape(kernel, tuple(kernel.shape[:-1]) + (groups, out // groups))
            eye = ops.eye(groups, dtype=kernel.dtype)
            full = ops.einsum("...cgo,gh->...gcho", split, eye)
            return ops.reshape(full, tuple(kernel.shape[:-2]) + (groups * per_in, out))
        if self.kind == "depthwise":
            kernel = layer.kernel
            channels, multiplier = int(kernel.shape[-2]), int(kernel.shape[-1])
            full = ops.einsum("...cj,cd->...cdj", kernel,
                              ops.eye(channels, dtype=kernel.dtype))
            return ops.reshape(full, tuple(kernel.shape[:-2]) + (channels,
                                                                 channels * multiplier))
        if self.kind == "separable":
            depthwise, pointwise = layer.depthwise_kernel, layer.pointwise_kernel
            channels, multiplier = int(depthwise.shape[-2]), int(depthwise.shape[-1])
            pointwise = ops.reshape(pointwise, (channels, multiplier, int(pointwise.shape[-1])))
            return ops.einsum("...cj,cjo->...co", depthwise, pointwise)
        # transposed: kernel (k_1..k_d, O, C) -> (Q_1..Q_d, C, (r_1..r_d, O))
        split, out, channels = self._phases()
        for axis in range(count):
            split = ops.flip(split, axis=2 * axis)
        order = ([2 * i for i in range(count)] + [2 * count + 1]
                 + [2 * i + 1 for i in range(count)] + [2 * count])
        return ops.reshape(ops.transpose(split, order),
                           tuple(self.kernel_size) + (channels, math.prod(self.blocks) * out))

    def out_shape(self):
        """Spatial shape of the convolution's output (before depth-to-space)."""
        return tuple((size + before + after - (k - 1) * d - 1) // s + 1
                     for size, (before, after), k, s, d in zip(
                         self.in_shape, self.pads, self.kernel_size, self.strides,
                         self.dilations))

    def finish(self, y):
        """Depth-to-space, crop (zero-extend past the end), flatten: [B, ...] -> layer output."""
        ops = keras.ops
        if any(b > 1 for b in self.blocks):
            y = depth_to_space(y, self.blocks)
        if self.crops:
            sizes = tuple(int(d) for d in y.shape[1:-1])
            extra = [(0, max(0, start + length - size))
                     for (start, length), size in zip(self.crops, sizes)]
            if any(e for _, e in extra):
                y = ops.pad(y, [(0, 0)] + extra + [(0, 0)])
            y = y[(slice(None),) + tuple(slice(start, start + length)
                                         for start, length in self.crops)]
        if self.flatten:
            y = ops.reshape(y, (-1, int(y.shape[-1])))
        return y

    def apply(self, x, kernel):
        """The layer's linear part (no bias) on ``x`` [B, ..., C]."""
        if not self.kernel_size:
            return keras.ops.matmul(x, kernel)
        return self.finish(conv_padded(x, kernel, self.pads, self.strides, self.dilations))

    def _phases(self):
        """The transposed kernel zero-padded to Q_i * s_i taps and split by stride phase:
        ([Q_1, s_1, .., Q_d, s_d, O, C], O, C)."""
        ops, kernel = keras.ops, self.layer.kernel
        sizes = tuple(int(k) for k in kernel.shape[:len(self.kernel_size)])
        out, channels = int(kernel.shape[-2]), int(kernel.shape[-1])
        padded = ops.pad(kernel, [(0, q * s - k) for q, s, k in zip(
            self.kernel_size, self.blocks, sizes)] + [(0, 0), (0, 0)])
        shape = tuple(a for q, s in zip(self.kernel_size, self.blocks) for a in (q, s))
        return ops.reshape(padded, shape + (out, channels)), out, channels

    def matrix(self):
        """Transposed convolution: its kernel as a matrix [C, (Q_1..Q_d, s_1..s_d, O)]."""
        ops, count = keras.ops, len(self.kernel_size)
        split, _, channels = self._phases()
        order = ([2 * count + 1] + [2 * i for i in range(count)]
                 + [2 * i + 1 for i in range(count)] + [2 * count])
        return ops.reshape(ops.transpose(split, order), (channels, -1))

    def apply_matmul(self, x, matrix):
        """Transposed convolution as one matrix product and an overlap-add of its Q^d shifted
        pieces (no flip, no wasted taps for k divisible by s): what XLA computes fastest."""
        columns = keras.ops.matmul(keras.ops.reshape(x, (-1, int(x.shape[-1]))), matrix)
        return self.overlap(columns)

    def overlap(self, columns):
        """The second half of :meth:`apply_matmul`: its matrix product ``columns``
        [B * in..., (Q_1..Q_d, s_1..s_d, O)] overlap-added into the layer's output (no bias)."""
        ops, count = keras.ops, len(self.kernel_size)
        columns = ops.reshape(columns, (-1,) + self.in_shape + tuple(self.kernel_size)
                              + (int(columns.shape[-1]) // math.prod(self.kernel_size),))
        total = None
        for shift in itertools.product(*(range(q) for q in self.kernel_size)):
            piece = columns[(slice(None),) * (count + 1) + shift]
            piece = ops.pad(piece, [(0, 0)] + [(q, size - 1 - q) for q, size in zip(
                shift, self.kernel_size)] + [(0, 0)])
            total = piece if total is None else total + piece
        return self.finish(total)

    def restricted(self, delta, channels, rows):
        """Each module's contribution through its own kernel rows: [M, P, conv out..., O'].

        ``delta`` [P, spatial..., C]; ``channels`` [M, S] channel indices per module (padding
        entries index any channel: their ``rows`` are zero); ``rows`` [k..., M, S, O'].
        """
        ops = keras.ops
        count = len(self.kernel_size)
        num_modules, width = int(channels.shape[0]), int(channels.shape[1])
        gathered = ops.take(delta, ops.reshape(channels, (-1,)), axis=-1)
        gathered = ops.reshape(gathered, tuple(gathered.shape[:-1]) + (num_modules, width))
        if any(p != (0, 0) for p in self.pads):
            gathered = ops.pad(gathered, [(0, 0)] + list(self.pads) + [(0, 0), (0, 0)])
        spatial = "".join("hwdxyz"[i] for i in range(count))
        if self.kind == "flat_dense":   # one contraction over all positions and channels
            return ops.einsum(f"p{spatial}ms,{spatial}mso->mpo", gathered, rows)
        outs = self.out_shape()
        taps = list(itertools.product(*(range(k) for k in self.kernel_size)))
        pieces = [gathered[(slice(None),) + tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s)
            for t, d, o, s in zip(tap, self.dilations, outs, self.strides))]
            for tap in taps]                                           # each [P, out.., M, S]
        if width > 1 and len(taps) <= 16:   # the taps side by side: one contraction, K = T S
            stacked = ops.stack(pieces, axis=-2)                       # [P, out.., M, T, S]
            weights = ops.reshape(rows, (len(taps),) + tuple(rows.shape[count:]))
            return ops.einsum(f"p{spatial}mts,tmso->mp{spatial}o", stacked, weights)
        move = (count + 1, 0) + tuple(range(1, count + 1))      # [P, out.., M] -> [M, P, out..]
        total = None
        for tap, piece in zip(taps, pieces):
            weights = rows[tap] if count else rows                     # [M, S, O']
            if width == 1:
                term = (ops.expand_dims(ops.transpose(piece[..., 0], move), -1)
                        * ops.reshape(weights[:, 0], (num_modules,) + (1,) * (count + 1)
                                      + (int(weights.shape[-1]),)))
            else:
                term = ops.einsum(f"p{spatial}ms,mso->mp{spatial}o", piece, weights)
            total = term if total is None else total + term
        return total


def _same_pads(size, kernel, stride, dilation):
    """TensorFlow's 'same' padding (before, after) of a convolution."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _transpose_layout(size, kernel, stride, padding, output_padding):
    """(padding before, output length) of a transposed convolution, as Keras computes them."""
    if padding == "valid":
        extra = max(kernel, stride) - kernel if output_padding is None else output_padding
        return 0, (size - 1) * stride + kernel + extra
    if output_padding is None:
        length, total = size * stride, stride + kernel - 2
    else:
        length = (size - 1) * stride + kernel % 2 + output_padding
        total = kernel + kernel % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, kernel - 1)
    return kernel - 1 - left, length


def taps_of(layer, in_shape, flatten=False):
    """The :class:`Taps` of a channel-mixing layer whose input has spatial shape ``in_shape``.

    Example::

        taps = taps_of(generator.get_layer("main.9"), (16, 16))
        y = taps.apply(x, taps.kernel())          # the layer without its bias, x [B, 16, 16, C]
    """
    in_shape = tuple(int(d) for d in in_shape)
    count = len(in_shape)
    if isinstance(layer, keras.layers.Dense):
        if flatten:
            return Taps(layer, "flat_dense", in_shape, ((0, 0),) * count, (1,) * count,
                        (1,) * count, (), (), True, in_shape)
        return Taps(layer, "dense", (1,) * count, ((0, 0),) * count, (1,) * count,
                    (1,) * count, (), (), False, in_shape)
    as_tuple = (lambda v: (v,) * count if isinstance(v, int) else tuple(v))
    strides = as_tuple(layer.strides)
    dilations = as_tuple(getattr(layer, "dilation_rate", 1))
    if isinstance(layer, _TRANSPOSED):
        sizes = tuple(int(k) for k in layer.kernel.shape[:count])
        padding = as_tuple(layer.output_padding) if layer.output_padding is not None else (
            (None,) * count)
        layouts = [_transpose_layout(n, k, s, layer.padding, o)
                   for n, k, s, o in zip(in_shape, sizes, strides, padding)]
        taps = tuple(-(-k // s) for k, s in zip(sizes, strides))
        return Taps(layer, "transpose", taps, tuple((q - 1, q - 1) for q in taps),
                    (1,) * count, (1,) * count, strides, tuple(layouts), False, in_shape)
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        kind, sizes = "separable", tuple(int(k) for k in layer.depthwise_kernel.shape[:count])
    elif isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        kind, sizes = "depthwise", tuple(int(k) for k in layer.kernel.shape[:count])
    else:
        kind, sizes = "conv", tuple(int(k) for k in layer.kernel.shape[:count])
    if layer.padding == "same":
        pads = tuple(_same_pads(n, k, s, d) for n, k, s, d in zip(in_shape, sizes, strides,
                                                                   dilations))
    elif layer.padding == "causal":
        pads = tuple(((k - 1) * d, 0) for k, d in zip(sizes, dilations))
    else:
        pads = ((0, 0),) * count
    return Taps(layer, kind, sizes, pads, strides, dilations, (), (), False, in_shape)


def fast_transposed_call(graph, form):
    """``call`` for :meth:`FlatGraph.evaluate` running transposed convolutions in a fast form.

    Example::

        graph = flat_graph(tail)
        outputs = graph.evaluate({graph.inputs[0]: x}, call=fast_transposed_call(graph, "conv"))

    ``form="matmul"`` (code compiled whole by XLA): one matrix product and an overlap-add that
    XLA fuses with the layers around it. ``form="conv"`` (TensorFlow without XLA): the
    convolution over the stride phases, which oneDNN runs several times faster than TensorFlow's
    own transposed convolution with few output channels. None: the layers' own.
    """
    if form is None:
        return None
    plans = transposed_taps(graph, form)
    if not plans:
        return None

    def call(op, args, kwargs):
        taps = plans.get(id(op))
        if taps is None:
            return None
        if form == "matmul":
            return finish_transposed(taps, taps.apply_matmul(args[0], taps.matrix()))
        return finish_transposed(taps, taps.apply(args[0], taps.kernel()))

    return call


def transposed_taps(graph, form):
    """``{id(op): Taps}`` of the transposed convolutions of ``graph`` that
    :func:`fast_transposed_call` runs in ``form`` ("matmul" or "conv") instead of the layer.

    Example::

        plans = transposed_taps(flat_graph(tail), "matmul")   # {id(op): Taps, ...}
    """
    plans = {}
    for op in graph.ops:
        layer = op.operation
        if not isinstance(layer, _TRANSPOSED) or (form == "conv" and isinstance(
                layer, keras.layers.Conv3DTranspose)):
            continue
        shape = graph.specs[op.inputs[0]].shape
        if (len(op.inputs) == 1 and _channels_last(layer) and all(d is not None for d in shape[1:])
                and all(d == 1 for d in layer.dilation_rate)
                and not getattr(layer, "quantization_mode", None)
                and str(layer.compute_dtype) == "float32"):
            plans[id(op)] = taps_of(layer, shape[1:-1])
    return plans


def finish_transposed(taps, out):
    """A transposed convolution's output ``out`` (without bias) -> the layer's: bias, activation.

    Example::

        y = finish_transposed(taps, taps.apply_matmul(x, taps.matrix()))   # == layer(x)
    """
    if taps.layer.use_bias:
        out = out + taps.layer.bias
    return out if _linear_activation(taps.layer) else taps.layer.activation(out)
