"""Import an OpenVINO graph (IR ``.xml``/``.bin`` or ONNX ``.onnx``) as a Keras 3 functional model.

    from tfcf.openvino_import import from_openvino
    synthesis = from_openvino("SynthesisNetwork.xml")          # a keras.Model, channels-last
    head, tail = tfcf.split(synthesis, "LeakyRelu_342")       # cut at any op, by its name

The graph is read with OpenVINO's own Python API (``openvino.Core().read_model`` reads IR and
ONNX), its ops are walked in topological order and each op that computes on the model's inputs
becomes one Keras layer named after the op's friendly name. Needs the optional extra ``openvino``
(``pip install 'tfcf[openvino]'``); the custom layers it may use live in
:mod:`tfcf.openvino_layers`, which loads without OpenVINO.

What becomes what:

- Constants, and every op whose inputs are all constants, are folded by OpenVINO's own
  reference ``evaluate``: no layer. Shape arithmetic on static shapes (``ShapeOf`` -> ``Gather``
  -> ``Concat`` -> ``Reshape`` target) is folded too, except that the batch size stays symbolic:
  the IR may be exported at batch 1, the Keras model takes any batch. A constant that a shape
  op repeats along the batch (``Tile``/``Broadcast`` by the batch size: StyleGAN's learned 4x4
  input) becomes a :class:`~tfcf.openvino_layers.BatchConstant` layer fed by the tensor the batch
  size was read from.
- Values computed from an input stay computed from it: a per-channel scale computed from the
  style (MobileStyleGAN's modulation: ``MatMul`` -> ``Reshape`` -> ``Multiply``) is a chain of
  layers from the style input, so a cut of the model carries the style to every later block.
- Standard Keras layers wherever they are exact: ``Convolution`` -> ``Conv1D``/``Conv2D``;
  ``GroupConvolution`` -> ``DepthwiseConv1D/2D`` (one input channel per group) or
  ``Conv2D(groups=...)``; ``ConvolutionBackpropData`` -> ``Conv2DTranspose``;
  ``GroupConvolutionBackpropData`` with one channel per group -> ``DepthwiseConvTranspose``
  (each channel by its own kernel), with several -> ``Conv2DTranspose`` with a block-diagonal
  kernel (exact: the zeros add nothing; it costs ``groups`` times the multiplications);
  explicit padding a ``same``/``valid`` mode does not express -> ``ZeroPadding2D`` before
  (``<name>_pad``) or ``Cropping2D`` after (``<name>_crop``); ``MatMul`` by a constant -> ``Dense`` (no bias);
  ``PRelu`` -> ``LeakyReLU`` (one slope) or ``PReLU``; ``Relu``, ``Sigmoid``, ``Tanh``, ``Elu``
  -> their layers; ``Add``/``Subtract``/``Multiply``/``Maximum``/``Minimum`` of two tensors ->
  the merge layers; ``Concat`` -> ``Concatenate``; ``Reshape``/``Squeeze``/``Unsqueeze`` ->
  ``Reshape``, with a ``Permute`` only when no layout makes it a plain reshape.
- Small custom layers (:mod:`tfcf.openvino_layers`) otherwise: a tensor with a constant
  (``ConstantOp``: bias, noise map, scale, exponent), ``VariadicSplit``/``Split`` (one ``Slice``
  per output), ``ReduceMean``/``Sum``/``Max``/``Min``/``Prod``, ``Gather``, ``Tile``,
  ``Broadcast``, ``Divide``/``Power`` of two tensors, ``Sqrt``/``Exp``/``Clamp``/... .
- ``Transpose``, a ``Convert`` to the same type and a reshape that leaves the Keras tensor as
  it is only relabel the layout: no layer.

Any other op computing on an input raises :class:`UnsupportedOpError` naming the op type and
the node. Bias additions are not fused into the convolution before them: every op keeps its own
layer, so every OpenVINO name can be cut at.

Names. A layer is named by its op's friendly name with "/" and ":" replaced by "_" (Keras forbids
"/" in layer names; tfcf reads ``name:k`` as the k-th call of a layer): ``Gemm_743/WithoutBiases``
becomes ``Gemm_743_WithoutBiases`` (:func:`keras_name`). ``tfcf.split`` also accepts the original
spelling with "/". Output ``k`` of a multi-output op is ``<name>.<k>`` (``Slice_57_Split.1``).
Two ops with the same name get ``_1``, ``_2``, ... in graph order.

Layout. OpenVINO tensors are channels-first (``[B, C, H, W]``); the Keras model is channels-last
(``[B, H, W, C]``) at its inputs, outputs and every convolution. Inside, each tensor carries its
axis order: a reshape that splits channels (``[B, 3C, H, W] -> [B, C, 3, H, W]``) is done as a
plain ``Reshape`` of the channels-last tensor (``[B, H, W, C, 3]``) whenever one exists. Axis 0
of every input is the batch axis; the graph is converted at batch 1 (an input with a dynamic
batch is set to 1 first, other dynamic dimensions need ``input_shapes``) and no op may mix the
batch axis with another (error otherwise).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
from pathlib import Path

import keras
import numpy as np

from tfcf import openvino_layers as custom

__all__ = ["SUPPORTED_OPS", "UnsupportedOpError", "from_openvino", "keras_name", "op_types",
           "read_model"]

_ELEMENTWISE = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Divide": "divide",
                "Power": "power", "Maximum": "maximum", "Minimum": "minimum",
                "SquaredDifference": "squared_difference"}
_MERGE = {"add": keras.layers.Add, "subtract": keras.layers.Subtract,
          "multiply": keras.layers.Multiply, "maximum": keras.layers.Maximum,
          "minimum": keras.layers.Minimum}
_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "Elu")
_UNARY = {"Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Abs": "abs", "Negative": "negative",
          "Clamp": "clip", "Floor": "floor", "Ceiling": "ceil", "Sign": "sign", "Erf": "erf",
          "SoftPlus": "softplus"}
_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min",
           "ReduceProd": "prod"}
_CONVOLUTIONS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData",
                 "GroupConvolutionBackpropData")
_SHAPE_OPS = ("Parameter", "Constant", "Result", "Convert", "ShapeOf", "Gather", "Concat",
              "Reshape", "Squeeze", "Unsqueeze", "Transpose", "VariadicSplit", "Split", "Tile",
              "Broadcast", "MatMul", "PRelu")
SUPPORTED_OPS = tuple(sorted(set(_SHAPE_OPS + _CONVOLUTIONS + tuple(_ELEMENTWISE) + _ACTIVATIONS
                                 + tuple(_UNARY) + tuple(_REDUCE))))
_SENTINEL = 1_000_003  # stands for the batch size when shape arithmetic is traced


class UnsupportedOpError(ValueError):
    """An op the importer cannot express in Keras; the message names the op type and the node."""


def keras_name(friendly_name):
    """The Keras layer name of an OpenVINO op: "/" and ":" become "_".

        keras_name("Gemm_743/WithoutBiases")      # "Gemm_743_WithoutBiases"
    """
    return str(friendly_name).replace("/", "_").replace(":", "_")


def _openvino():
    try:
        import openvino
    except ImportError:
        raise ImportError("tfcf.openvino_import needs OpenVINO: pip install openvino "
                          "(or the extra: pip install 'tfcf[openvino]')") from None
    return openvino


def read_model(source, weights=None, input_shapes=None):
    """An ``openvino.Model`` from an IR ``.xml`` (with its ``.bin``), an ``.onnx`` file or a model,
    with static shapes (batch 1 where the batch is dynamic).

        model = read_model("model.onnx", input_shapes={"z": [1, 128]})

    ``input_shapes`` maps input names to full shapes (batch first) for inputs with dynamic
    dimensions other than the batch. A model passed in is cloned, never changed.
    """
    ov = _openvino()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no OpenVINO IR or ONNX file at {path}")
        if path.suffix not in (".xml", ".onnx"):
            raise ValueError(f"{path}: expected an OpenVINO IR .xml or an ONNX .onnx file")
        core = ov.Core()
        model = (core.read_model(str(path), str(weights)) if weights is not None
                 else core.read_model(str(path)))
    elif isinstance(source, ov.Model):
        model = source.clone()
    else:
        raise TypeError(f"expected a path or an openvino.Model, got {type(source).__name__}")
    shapes = {}
    for parameter in model.get_parameters():
        name = parameter.get_friendly_name()
        partial = parameter.get_partial_shape()
        if input_shapes and name in input_shapes:
            shapes[name] = [int(d) for d in input_shapes[name]]
        elif not partial.is_static:
            dims = [1 if i == 0 and d.is_dynamic else (d.get_length() if d.is_static else None)
                    for i, d in enumerate(partial)]
            if None in dims:
                raise ValueError(f"input {name!r} has the dynamic shape {partial}: pass "
                                 f"input_shapes={{{name!r}: [...]}} (batch first)")
            shapes[name] = dims
    if shapes:
        model.reshape({model.input(n): ov.PartialShape(s) for n, s in shapes.items()})
    return model


def op_types(source, weights=None):
    """How many ops of each type (with its opset) the graph holds: ``{"Convolution-opset1": 16}``.

        op_types("SynthesisNetwork.xml")["GroupConvolutionBackpropData-opset1"]   # 48
    """
    model = read_model(source, weights)
    return dict(collections.Counter(f"{op.get_type_name()}-{op.get_type_info().version_id}"
                                    for op in model.get_ordered_ops()))


def from_openvino(source, weights=None, name=None, input_shapes=None, prefix=""):
    """Convert an OpenVINO IR / ONNX graph (path or ``openvino.Model``) into a Keras 3 model.

        model = from_openvino("MappingNetwork.xml")                 # z [B, 512] -> style [B, 512]
        model = from_openvino("generator.onnx", name="generator")

    ``weights``: the IR's ``.bin`` when it is not beside the ``.xml``; ``input_shapes``: see
    :func:`read_model`; ``prefix`` is put before every layer name (two converted graphs chained
    in one model must not share layer names: tfcf cuts nested models by their layers). See the
    module docstring for how ops, names and layouts are mapped. Raises
    :class:`UnsupportedOpError` for an op it cannot express (naming it and the node).
    """
    model = read_model(source, weights, input_shapes)
    if name is None:
        name = Path(source).stem if isinstance(source, (str, Path)) else model.get_friendly_name()
    return _Converter(model, keras_name(prefix)).convert(keras_name(name) or "imported")


# ----------------------------------------------------------------------------- values
@dataclasses.dataclass
class _Tensor:
    """A Keras tensor holding the logical (OpenVINO) tensor with its axes in order ``perm``:
    Keras axis i is logical axis ``perm[i]``; ``shape`` is the logical shape (batch as in the IR).
    """

    tensor: object
    perm: tuple
    shape: tuple

    @property
    def rank(self):
        return len(self.shape)

    def keras_shape(self):
        return tuple(self.shape[p] for p in self.perm)


@dataclasses.dataclass
class _Shape:
    """An integer array some entries of which are the batch size (``batch`` True there), read
    from ``source``. ``values`` holds the IR's numbers (batch 1 when exported so)."""

    values: np.ndarray
    batch: np.ndarray
    source: _Tensor


def _channels_last(rank):
    return tuple([0] + list(range(2, rank)) + [1]) if rank >= 3 else tuple(range(rank))


def _without_axes(perm, axes):
    """The order of the remaining axes, renumbered, after removing logical ``axes``."""
    kept = [p for p in perm if p not in axes]
    return tuple(sorted(kept).index(p) for p in kept)


def _keras_order_positions(positions, shape, perm):
    """Logical row-major index of the elements at row-major ``positions`` of the Keras tensor."""
    keras_shape = [shape[p] for p in perm]
    multi = np.unravel_index(positions, keras_shape)
    logical = [None] * len(shape)
    for axis, index in zip(perm, multi):
        logical[axis] = index
    return np.ravel_multi_index(logical, shape)


def _same_memory(in_shape, in_perm, out_shape, out_perm):
    """Whether reshaping the Keras tensor (``in_perm``) to ``out_perm``'s Keras shape gives the
    logical reshape ``in_shape -> out_shape`` (both row-major, batch 1)."""
    total = math.prod(in_shape)
    if total <= 1:
        return True
    sample = np.unique(np.concatenate([np.linspace(0, total - 1, 4096).astype(np.int64),
                                       np.random.default_rng(0).integers(0, total, 4096)]))
    for positions in [sample] + [np.arange(start, min(start + 1 << 20, total))
                                 for start in range(0, total, 1 << 20)]:
        if not np.array_equal(_keras_order_positions(positions, in_shape, in_perm),
                              _keras_order_positions(positions, out_shape, out_perm)):
            return False
    return True


def _check_same_memory_candidates(in_shape, in_perm, out_shape, candidates):
    total = math.prod(in_shape)
    sample = np.unique(np.concatenate([np.linspace(0, max(total - 1, 0), 4096).astype(np.int64),
                                       np.random.default_rng(0).integers(0, max(total, 1), 4096)]))
    reference = _keras_order_positions(sample, in_shape, in_perm)
    for perm in candidates:
        if np.array_equal(reference, _keras_order_positions(sample, out_shape, perm)) \
                and _same_memory(in_shape, in_perm, out_shape, perm):
            return perm
    return None


class _Converter:
    def __init__(self, model, prefix=""):
        self.model = model
        self.prefix = prefix
        self.values = {}
        self.used = set()
        self.inputs = []
        self.names = {}
        reserved = collections.Counter()
        for op in model.get_ordered_ops():
            if op.get_type_name() in ("Constant", "Result"):
                continue
            base = prefix + keras_name(op.get_friendly_name())
            count = reserved[base]
            reserved[base] += 1
            self.names[op.get_name()] = base if count == 0 else f"{base}_{count}"
        self.reserved = set(self.names.values())

    # ------------------------------------------------------------------ plumbing
    def _op_name(self, op, port=None):
        base = self.names[op.get_name()]
        name = base if port is None else f"{base}.{port}"
        self.used.add(name)
        return name

    def _helper_name(self, base):
        name, count = base, 0
        while name in self.used or name in self.reserved:
            count += 1
            name = f"{base}_{count}"
        self.used.add(name)
        return name

    @staticmethod
    def _describe(op):
        return f"{op.get_type_name()} (node {op.get_friendly_name()!r})"

    def _fail(self, op, why):
        raise UnsupportedOpError(f"OpenVINO op {self._describe(op)}: {why}")

    def _input(self, op, index):
        source = op.input(index).get_source_output()
        return self.values[(source.get_node().get_name(), source.get_index())]

    def _set(self, op, value, port=0):
        self.values[(op.get_name(), port)] = value

    @staticmethod
    def _out_shape(op, port=0):
        shape = op.get_output_partial_shape(port)
        if not shape.is_static:
            raise UnsupportedOpError(f"OpenVINO op {_Converter._describe(op)} has the dynamic "
                                     f"output shape {shape}; give static input shapes")
        return tuple(int(d) for d in shape.to_shape())

    @staticmethod
    def _apply(layer, inputs, weights=None):
        out = layer(inputs)
        if weights is not None:
            layer.set_weights([np.asarray(w, dtype="float32") for w in weights])
        return out

    def _const_weight(self, op, value, tensor):
        """A constant broadcast against ``tensor``, in its layout, without the batch axis."""
        value = np.asarray(value, dtype="float32")
        if value.ndim > tensor.rank:
            self._fail(op, f"a constant of rank {value.ndim} against a tensor of rank "
                           f"{tensor.rank} would broadcast along the batch axis")
        full = value.reshape((1,) * (tensor.rank - value.ndim) + value.shape)
        if full.shape[0] != 1:
            self._fail(op, f"the constant varies along the batch axis (shape {value.shape})")
        return full.transpose(tensor.perm)[0]

    # ------------------------------------------------------------------ layouts
    def _relayout(self, tensor, perm, name):
        """``tensor`` with its Keras axes in order ``perm`` (a Reshape when only size-1 axes
        move, else a Permute)."""
        perm = tuple(perm)
        if tensor.perm == perm:
            return tensor
        if _same_memory(tensor.shape, tensor.perm, tensor.shape, perm):
            target = tuple(tensor.shape[p] for p in perm)[1:]
            out = self._apply(keras.layers.Reshape(target, name=self._helper_name(name)),
                              tensor.tensor)
        else:
            dims = tuple(tensor.perm.index(p) for p in perm[1:])
            out = self._apply(keras.layers.Permute(dims, name=self._helper_name(name)),
                              tensor.tensor)
        return _Tensor(out, perm, tensor.shape)

    def _reshape(self, op, tensor, out_shape, name):
        if out_shape[:1] != tensor.shape[:1] or \
                math.prod(out_shape[1:]) != math.prod(tensor.shape[1:]):
            self._fail(op, f"reshaping {tensor.shape} to {out_shape} mixes the batch axis with "
                           "others (the Keras model keeps axis 0 as the batch)")
        rank = len(out_shape)
        candidates = [_channels_last(rank), tuple(range(rank))]
        candidates += [(0,) + rest for rest in itertools.permutations(range(1, rank))
                       if (0,) + rest not in candidates]
        perm = _check_same_memory_candidates(tensor.shape, tensor.perm, out_shape, candidates)
        source = tensor
        if perm is None:  # no layout makes it a plain reshape: go through the logical order
            source = self._relayout(tensor, tuple(range(tensor.rank)), f"{name}_permute")
            perm = tuple(range(rank))
        target = tuple(out_shape[p] for p in perm)[1:]
        if target == source.keras_shape()[1:]:
            return _Tensor(source.tensor, perm, out_shape)
        out = self._apply(keras.layers.Reshape(target, name=name), source.tensor)
        return _Tensor(out, perm, out_shape)

    # ------------------------------------------------------------------ conversion
    def convert(self, name):
        outputs = []
        for parameter in self.model.get_parameters():  # the model's input order
            self._parameter(parameter)
        for op in self.model.get_ordered_ops():
            kind = op.get_type_name()
            if kind == "Result":
                outputs.append((op, self._input(op, 0)))
                continue
            if kind == "Parameter":
                continue
            if kind == "Constant":
                self._set(op, np.array(op.get_data(), copy=True))
                continue
            inputs = [self._input(op, i) for i in range(op.get_input_size())]
            if all(isinstance(v, np.ndarray) for v in inputs):
                for port, value in enumerate(self._evaluate(op, inputs)):
                    self._set(op, value, port)
            elif not any(isinstance(v, _Tensor) for v in inputs):
                self._shape_op(op, inputs)
            else:
                handler = self._handler(op)
                handler(op, inputs)
        if not self.inputs:
            raise ValueError("the OpenVINO model has no inputs")
        tensors = []
        for result, value in outputs:
            if not isinstance(value, _Tensor):
                raise UnsupportedOpError(f"output {result.get_friendly_name()!r} does not depend "
                                         "on any input (a constant output)")
            if value.rank >= 3 and value.perm != _channels_last(value.rank):
                value = self._relayout(value, _channels_last(value.rank),
                                       f"{self.prefix}{keras_name(result.get_friendly_name())}"
                                       "_channels_last")
            tensors.append(value.tensor)
        inputs = self.inputs if len(self.inputs) > 1 else self.inputs[0]
        return keras.Model(inputs, tensors if len(tensors) > 1 else tensors[0], name=name)

    def _handler(self, op):
        kind = op.get_type_name()
        if kind in _ELEMENTWISE:
            return self._elementwise
        if kind in _UNARY or kind in _ACTIVATIONS:
            return self._unary
        if kind in _REDUCE:
            return self._reduce
        if kind in _CONVOLUTIONS:
            return self._convolution
        handler = getattr(self, f"_op_{kind}", None)
        if handler is None:
            self._fail(op, f"not supported on tensors computed from the inputs; supported op "
                           f"types: {', '.join(SUPPORTED_OPS)} (any op on constants only is "
                           "folded)")
        return handler

    def _parameter(self, op):
        shape = self._out_shape(op)
        perm = _channels_last(len(shape))
        dtype = op.get_output_element_type(0).to_dtype().name
        tensor = keras.Input(shape=tuple(shape[p] for p in perm)[1:], dtype=dtype,
                             name=self._op_name(op))
        self.inputs.append(tensor)
        self._set(op, _Tensor(tensor, perm, shape))

    def _evaluate(self, op, inputs):
        """Fold an op on constants with OpenVINO's reference implementation."""
        ov = _openvino()
        outputs = [ov.Tensor(op.get_output_element_type(i), ov.Shape(list(self._out_shape(op, i))))
                   for i in range(op.get_output_size())]
        arguments = [ov.Tensor(v if v.flags.c_contiguous else v.copy()) for v in inputs]
        try:
            done = op.evaluate(outputs, arguments)
        except RuntimeError as error:
            done = False
            why = str(error).strip().splitlines()[0][:200]
        else:
            why = "its reference implementation declined"
        if not done:
            self._fail(op, f"OpenVINO cannot fold it on constant inputs ({why})")
        return [np.array(t.data, copy=True) for t in outputs]

    # ------------------------------------------------------------------ shape arithmetic
    def _shape_op(self, op, inputs):
        """An op on constants and batch-dependent shapes (no tensor input)."""
        kind = op.get_type_name()
        shapes = [v for v in inputs if isinstance(v, _Shape)]
        source = shapes[0].source
        if kind in ("Tile", "Broadcast", "Reshape") and isinstance(inputs[0], np.ndarray):
            self._batch_constant(op, inputs, source)
            return
        first = self._evaluate(op, [v.values if isinstance(v, _Shape) else v for v in inputs])
        second = self._evaluate(op, [np.where(v.batch, _SENTINEL, v.values).astype(v.values.dtype)
                                     if isinstance(v, _Shape) else v for v in inputs])
        for port, (a, b) in enumerate(zip(first, second)):
            batch = a != b
            if np.any(batch & (b != _SENTINEL)):
                self._fail(op, "it computes with the batch size (only moving it is supported)")
            self._set(op, _Shape(a, batch, source) if np.any(batch) else a, port)

    def _batch_constant(self, op, inputs, source):
        """A constant data input repeated along the batch by a batch-dependent shape."""
        kind = op.get_type_name()
        shape = inputs[1]
        if not isinstance(shape, _Shape):
            self._fail(op, "its shape input depends on the batch in an unsupported way")
        rank = len(self._out_shape(op))
        offset = rank - len(shape.values)
        if kind == "Broadcast" and op.get_input_size() > 2:
            self._fail(op, "explicit axes_mapping with a batch-dependent shape")
        positions = np.flatnonzero(shape.batch) + offset
        if list(positions) != [0]:
            self._fail(op, "the batch size sits at a position other than axis 0 of the result")
        value = self._evaluate(op, [v.values if isinstance(v, _Shape) else v for v in inputs])[0]
        if not np.all(value == value[:1]):
            self._fail(op, "the repeated constant varies along the batch axis")
        perm = _channels_last(value.ndim)
        constant = value.transpose(perm)[0]
        layer = custom.BatchConstant(constant.shape, name=self._op_name(op))
        out = self._apply(layer, source.tensor, [constant])
        self._set(op, _Tensor(out, perm, value.shape))

    # ------------------------------------------------------------------ element-wise
    def _elementwise(self, op, inputs):
        kind = op.get_type_name()
        operation = _ELEMENTWISE[kind]
        broadcast = op.get_attributes().get("auto_broadcast", "numpy")
        if broadcast not in ("numpy", "none"):
            self._fail(op, f"auto_broadcast {broadcast!r} (only numpy broadcasting)")
        out_shape = self._out_shape(op)
        a, b = inputs
        if isinstance(a, _Shape) or isinstance(b, _Shape):
            self._fail(op, "arithmetic between a tensor and a batch-dependent shape")
        name = self._op_name(op)
        if isinstance(a, _Tensor) and isinstance(b, _Tensor):
            if a.rank != b.rank:
                self._fail(op, f"tensors of ranks {a.rank} and {b.rank} (broadcasting a tensor "
                               "to a higher rank would move its batch axis)")
            b = self._relayout(b, a.perm, f"{name}_layout")
            layer = (_MERGE[operation](name=name) if operation in _MERGE
                     else custom.Binary(operation, name=name))
            self._set(op, _Tensor(self._apply(layer, [a.tensor, b.tensor]), a.perm, out_shape))
            return
        tensor, constant, first = (a, b, False) if isinstance(a, _Tensor) else (b, a, True)
        if len(out_shape) != tensor.rank:
            self._fail(op, f"a constant of rank {np.ndim(constant)} raises the rank of the tensor")
        weight = self._const_weight(op, constant, tensor)
        layer = custom.ConstantOp(operation, weight.shape, constant_first=first, name=name)
        self._set(op, _Tensor(self._apply(layer, tensor.tensor, [weight]), tensor.perm, out_shape))

    def _unary(self, op, inputs):
        kind = op.get_type_name()
        tensor = inputs[0]
        name = self._op_name(op)
        attributes = op.get_attributes()
        if kind == "Relu":
            layer = keras.layers.ReLU(name=name)
        elif kind in ("Sigmoid", "Tanh"):
            layer = keras.layers.Activation(kind.lower(), name=name)
        elif kind == "Elu":
            layer = keras.layers.ELU(alpha=float(attributes["alpha"]), name=name)
        elif kind == "Clamp":
            layer = custom.Unary("clip", low=float(attributes["min"]),
                                 high=float(attributes["max"]), name=name)
        else:
            layer = custom.Unary(_UNARY[kind], name=name)
        self._set(op, _Tensor(self._apply(layer, tensor.tensor), tensor.perm, tensor.shape))

    def _op_PRelu(self, op, inputs):
        tensor, slope = inputs
        if not isinstance(tensor, _Tensor) or not isinstance(slope, np.ndarray):
            self._fail(op, "the slope must be a constant")
        name = self._op_name(op)
        if slope.size == 1:
            layer = keras.layers.LeakyReLU(negative_slope=float(slope.reshape(())), name=name)
            self._set(op, _Tensor(self._apply(layer, tensor.tensor), tensor.perm, tensor.shape))
            return
        if slope.ndim == 1 and tensor.rank >= 2 and slope.shape[0] == tensor.shape[1]:
            slope = slope.reshape((1, -1) + (1,) * (tensor.rank - 2))  # OpenVINO: along axis 1
        keras_shape = tensor.keras_shape()[1:]
        weight = self._const_weight(op, slope, tensor)
        shared = [i + 1 for i, (w, d) in enumerate(zip(weight.shape, keras_shape))
                  if w == 1 and d != 1]
        alpha = np.broadcast_to(weight, tuple(1 if i + 1 in shared else d
                                              for i, d in enumerate(keras_shape))).copy()
        layer = keras.layers.PReLU(shared_axes=shared or None, name=name)
        self._set(op, _Tensor(self._apply(layer, tensor.tensor, [alpha]), tensor.perm,
                              tensor.shape))

    def _reduce(self, op, inputs):
        tensor, axes = inputs
        if not isinstance(axes, np.ndarray):
            self._fail(op, "the axes must be constant")
        axes = sorted({int(a) % tensor.rank for a in np.atleast_1d(axes)})
        if 0 in axes:
            self._fail(op, "it reduces the batch axis")
        keepdims = bool(op.get_attributes().get("keep_dims", False))
        keras_axes = [tensor.perm.index(a) for a in axes]
        layer = custom.Reduce(_REDUCE[op.get_type_name()], keras_axes, keepdims,
                              name=self._op_name(op))
        perm = tensor.perm if keepdims else _without_axes(tensor.perm, axes)
        self._set(op, _Tensor(self._apply(layer, tensor.tensor), perm, self._out_shape(op)))

    # ------------------------------------------------------------------ linear layers
    def _op_MatMul(self, op, inputs):
        a, b = inputs
        attributes = op.get_attributes()
        if not isinstance(a, _Tensor) or not isinstance(b, np.ndarray):
            self._fail(op, "only a tensor times a constant matrix (x @ W) is supported")
        if attributes.get("transpose_a") or b.ndim != 2:
            self._fail(op, "transpose_a or a constant of rank other than 2")
        kernel = b.T if attributes.get("transpose_b") else b
        if a.rank < 2:
            self._fail(op, "a tensor of rank < 2")
        last = a.rank - 1
        if a.perm[-1] != last:
            a = self._relayout(a, tuple(range(a.rank)), f"{self.names[op.get_name()]}_layout")
        layer = keras.layers.Dense(kernel.shape[1], use_bias=False, name=self._op_name(op))
        out = self._apply(layer, a.tensor, [kernel])
        self._set(op, _Tensor(out, a.perm, self._out_shape(op)))

    def _convolution(self, op, inputs):
        kind = op.get_type_name()
        tensor, weights = inputs[0], inputs[1]
        if not isinstance(weights, np.ndarray):
            self._fail(op, "its weights are computed from an input (per-sample weights)")
        if len(inputs) > 2 and not isinstance(inputs[2], np.ndarray):
            self._fail(op, "a non-constant output_shape")
        spatial = tensor.rank - 2
        if spatial not in (1, 2):
            self._fail(op, f"{spatial}-d convolution (only 1-d and 2-d)")
        attributes = op.get_attributes()
        strides = tuple(int(s) for s in attributes["strides"])
        dilations = tuple(int(d) for d in attributes["dilations"])
        name = self._op_name(op)
        tensor = self._relayout(tensor, _channels_last(tensor.rank), f"{name}_layout")
        out_shape = self._out_shape(op)
        grouped = kind.startswith("Group")
        if kind.endswith("BackpropData"):
            out = self._transposed(op, tensor, weights, grouped, strides, dilations, attributes,
                                   out_shape, name)
        else:
            out = self._forward(op, tensor, weights, grouped, strides, dilations, attributes,
                                out_shape, name)
        self._set(op, _Tensor(out, _channels_last(len(out_shape)), out_shape))

    def _pads(self, op, in_spatial, kernel, strides, dilations, attributes):
        auto = str(attributes.get("auto_pad", "explicit")).lower()
        begin = [int(p) for p in attributes.get("pads_begin", [0] * len(in_spatial))]
        end = [int(p) for p in attributes.get("pads_end", [0] * len(in_spatial))]
        if auto == "valid":
            return [0] * len(in_spatial), [0] * len(in_spatial)
        if auto in ("same_upper", "same_lower"):
            begin, end = [], []
            for size, k, s, d in zip(in_spatial, kernel, strides, dilations):
                total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
                small = total // 2
                begin.append(small if auto == "same_upper" else total - small)
                end.append(total - begin[-1])
        elif auto not in ("explicit", "notset"):
            self._fail(op, f"auto_pad {auto!r}")
        return begin, end

    def _forward(self, op, tensor, weights, grouped, strides, dilations, attributes, out_shape,
                 name):
        spatial = tensor.rank - 2
        if grouped:
            groups, out_per_group, in_per_group = weights.shape[:3]
        else:
            groups, (out_channels, in_per_group) = 1, weights.shape[:2]
            out_per_group = out_channels
            weights = weights[None]
        kernel_size = tuple(int(k) for k in weights.shape[3:])
        in_spatial = tensor.shape[2:]
        begin, end = self._pads(op, in_spatial, kernel_size, strides, dilations, attributes)
        padding = "valid"
        if any(begin) or any(end):
            same = []
            for size, k, s, d in zip(in_spatial, kernel_size, strides, dilations):
                total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
                same += [(total // 2, total - total // 2)]
            if same == list(zip(begin, end)):
                padding = "same"
            else:
                pad_name = self._helper_name(f"{name}_pad")
                pad_layer = (keras.layers.ZeroPadding1D((begin[0], end[0]), name=pad_name)
                             if spatial == 1 else
                             keras.layers.ZeroPadding2D(tuple(zip(begin, end)), name=pad_name))
                tensor = _Tensor(self._apply(pad_layer, tensor.tensor), tensor.perm,
                                 tensor.shape[:2] + tuple(s + b + e for s, b, e in
                                                          zip(in_spatial, begin, end)))
        # OpenVINO [G, O/G, I/G, *k] -> Keras [*k, I/G, O] (depthwise: [*k, G, O/G]).
        options = dict(kernel_size=kernel_size, strides=strides, dilation_rate=dilations,
                       padding=padding, use_bias=False, name=name)
        if grouped and in_per_group == 1:
            kernel = weights[:, :, 0].transpose(tuple(range(2, 2 + spatial)) + (0, 1))
            cls = keras.layers.DepthwiseConv1D if spatial == 1 else keras.layers.DepthwiseConv2D
            layer = cls(depth_multiplier=int(out_per_group), **options)
        else:
            kernel = np.concatenate([w.transpose(tuple(range(2, 2 + spatial)) + (1, 0))
                                     for w in weights], axis=-1)
            cls = keras.layers.Conv1D if spatial == 1 else keras.layers.Conv2D
            layer = cls(int(groups * out_per_group), groups=int(groups), **options)
        out = self._apply(layer, tensor.tensor, [kernel])
        expected = tuple(out_shape[p] for p in _channels_last(len(out_shape)))[1:]
        if tuple(out.shape[1:]) != expected:
            self._fail(op, f"converted output shape {tuple(out.shape[1:])} != {expected}")
        return out

    def _transposed(self, op, tensor, weights, grouped, strides, dilations, attributes,
                    out_shape, name):
        spatial = tensor.rank - 2
        if any(d != 1 for d in dilations):
            self._fail(op, f"dilations {dilations} (only 1)")
        if not grouped:
            weights = weights[None]
        groups, in_per_group, out_per_group = (int(d) for d in weights.shape[:3])
        kernel_size = tuple(int(k) for k in weights.shape[3:])
        auto = str(attributes.get("auto_pad", "explicit")).lower()
        if auto not in ("explicit", "notset", "valid"):
            self._fail(op, f"auto_pad {auto!r}")
        begin = [0] * spatial if auto == "valid" else [int(p) for p in attributes["pads_begin"]]
        end = [0] * spatial if auto == "valid" else [int(p) for p in attributes["pads_end"]]
        extra = [int(p) for p in attributes.get("output_padding", [0] * spatial)] or [0] * spatial
        crop = any(begin) or any(end)
        full_name = self._helper_name(f"{name}_full") if crop else name
        if grouped and groups > 1 and in_per_group == out_per_group == 1:
            # one channel per group: each channel by its own kernel, [G, 1, 1, *k] -> [*k, G]
            layer = custom.DepthwiseConvTranspose(kernel_size, strides, output_padding=extra,
                                           name=full_name)
            kernel = weights[:, 0, 0].transpose(tuple(range(1, 1 + spatial)) + (0,))
        else:
            # OpenVINO [G, I/G, O/G, *k] -> Keras [*k, O, I], block-diagonal over the groups.
            kernel = np.zeros(kernel_size + (groups * out_per_group, groups * in_per_group),
                              dtype="float32")
            spatial_first = tuple(range(2, 2 + spatial)) + (1, 0)
            for g in range(groups):
                kernel[..., g * out_per_group:(g + 1) * out_per_group,
                       g * in_per_group:(g + 1) * in_per_group] = weights[g].transpose(
                           spatial_first)
            cls = keras.layers.Conv1DTranspose if spatial == 1 else keras.layers.Conv2DTranspose
            layer = cls(groups * out_per_group, kernel_size, strides=strides, padding="valid",
                        output_padding=extra[0] if spatial == 1 else tuple(extra),
                        use_bias=False, name=full_name)
        out = self._apply(layer, tensor.tensor, [np.ascontiguousarray(kernel, dtype="float32")])
        if crop:
            cropping = (keras.layers.Cropping1D((begin[0], end[0]), name=name) if spatial == 1
                        else keras.layers.Cropping2D(tuple(zip(begin, end)), name=name))
            out = self._apply(cropping, out)
        expected = tuple(out_shape[p] for p in _channels_last(len(out_shape)))[1:]
        if tuple(out.shape[1:]) != expected:
            self._fail(op, f"converted output shape {tuple(out.shape[1:])} != {expected}")
        return out

    # ------------------------------------------------------------------ shapes and layout
    def _op_ShapeOf(self, op, inputs):
        tensor = inputs[0]
        dtype = op.get_output_element_type(0).to_dtype()
        batch = np.zeros(tensor.rank, dtype=bool)
        batch[0] = True
        self._set(op, _Shape(np.array(tensor.shape, dtype=dtype), batch, tensor))

    def _op_Convert(self, op, inputs):
        tensor = inputs[0]
        source = op.get_input_element_type(0)
        target = op.get_output_element_type(0)
        if source != target:
            self._fail(op, f"a conversion from {source} to {target} of a tensor")
        self._set(op, tensor)

    def _op_Reshape(self, op, inputs):
        self._set(op, self._reshape(op, inputs[0], self._out_shape(op), self._op_name(op)))

    _op_Squeeze = _op_Reshape
    _op_Unsqueeze = _op_Reshape

    def _op_Transpose(self, op, inputs):
        tensor, order = inputs
        if not isinstance(order, np.ndarray):
            self._fail(op, "a non-constant order")
        order = [int(o) for o in order] or list(range(tensor.rank))[::-1]
        if order[0] != 0:
            self._fail(op, f"order {order} moves the batch axis")
        perm = tuple(order.index(p) for p in tensor.perm)
        self._set(op, _Tensor(tensor.tensor, perm, self._out_shape(op)))

    def _split(self, op, tensor, axis):
        if axis == 0:
            self._fail(op, "it splits the batch axis")
        keras_axis = tensor.perm.index(axis)
        start = 0
        for port in range(op.get_output_size()):
            shape = self._out_shape(op, port)
            stop = start + shape[axis]
            layer = custom.Slice(keras_axis, start, stop, name=self._op_name(op, port))
            self._set(op, _Tensor(self._apply(layer, tensor.tensor), tensor.perm, shape), port)
            start = stop

    def _op_VariadicSplit(self, op, inputs):
        tensor, axis = inputs[0], inputs[1]
        if not isinstance(axis, np.ndarray) or not isinstance(inputs[2], np.ndarray):
            self._fail(op, "a non-constant axis or split lengths")
        self._split(op, tensor, int(axis) % tensor.rank)

    def _op_Split(self, op, inputs):
        tensor, axis = inputs
        if not isinstance(axis, np.ndarray):
            self._fail(op, "a non-constant axis")
        self._split(op, tensor, int(axis) % tensor.rank)

    def _op_Concat(self, op, inputs):
        tensors = [v for v in inputs if isinstance(v, _Tensor)]
        if any(isinstance(v, _Shape) for v in inputs):
            self._fail(op, "a tensor concatenated with a batch-dependent shape")
        first = tensors[0]
        axis = int(op.get_attributes()["axis"]) % first.rank
        if axis == 0:
            self._fail(op, "it concatenates along the batch axis")
        name = self._op_name(op)
        parts = []
        for index, value in enumerate(inputs):
            if isinstance(value, np.ndarray):
                constant = self._const_weight(op, value, first)
                layer = custom.BatchConstant(constant.shape,
                                             name=self._helper_name(f"{name}_constant{index}"))
                parts.append(self._apply(layer, first.tensor, [constant]))
            else:
                if value.rank != first.rank:
                    self._fail(op, "inputs of different ranks")
                parts.append(self._relayout(value, first.perm, f"{name}_layout{index}").tensor)
        layer = keras.layers.Concatenate(axis=first.perm.index(axis), name=name)
        self._set(op, _Tensor(self._apply(layer, parts), first.perm, self._out_shape(op)))

    def _op_Gather(self, op, inputs):
        tensor, indices, axis = inputs
        if not isinstance(indices, np.ndarray) or not isinstance(axis, np.ndarray):
            self._fail(op, "non-constant indices or axis")
        if int(op.get_attributes().get("batch_dims", 0)) != 0 or indices.ndim > 1:
            self._fail(op, "batch_dims or indices of rank > 1")
        axis = int(axis) % tensor.rank
        if axis == 0:
            self._fail(op, "it gathers along the batch axis")
        size = tensor.shape[axis]
        picked = int(indices) % size if indices.ndim == 0 else [int(i) % size for i in indices]
        layer = custom.Take(picked, tensor.perm.index(axis), name=self._op_name(op))
        perm = _without_axes(tensor.perm, [axis]) if indices.ndim == 0 else tensor.perm
        self._set(op, _Tensor(self._apply(layer, tensor.tensor), perm, self._out_shape(op)))

    def _op_Tile(self, op, inputs):
        tensor, repeats = inputs
        if not isinstance(repeats, np.ndarray):
            self._fail(op, "repeats that depend on the batch size, for a tensor with a batch")
        out_shape = self._out_shape(op)
        repeats = [int(r) for r in repeats]
        if len(out_shape) != tensor.rank or len(repeats) > tensor.rank:
            self._fail(op, "repeats that raise the rank of the tensor")
        repeats = [1] * (tensor.rank - len(repeats)) + repeats
        if repeats[0] != 1:
            self._fail(op, "it repeats the batch axis")
        layer = custom.Tile([repeats[p] for p in tensor.perm[1:]], name=self._op_name(op))
        self._set(op, _Tensor(self._apply(layer, tensor.tensor), tensor.perm, out_shape))

    def _op_Broadcast(self, op, inputs):
        tensor = inputs[0]
        out_shape = self._out_shape(op)
        if not isinstance(tensor, _Tensor) or any(isinstance(v, _Tensor) for v in inputs[1:]):
            self._fail(op, "a shape computed from values of a tensor")
        if op.get_attributes().get("mode", "numpy") not in ("numpy", "bidirectional"):
            self._fail(op, "explicit broadcast mode")
        if len(out_shape) != tensor.rank or out_shape[0] != tensor.shape[0]:
            self._fail(op, f"broadcasting {tensor.shape} to {out_shape} changes the rank or "
                           "the batch axis")
        target = [out_shape[p] for p in tensor.perm[1:]]
        layer = custom.BroadcastTo(target, name=self._op_name(op))
        self._set(op, _Tensor(self._apply(layer, tensor.tensor), tensor.perm, out_shape))
