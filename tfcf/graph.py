"""Graph surgery on Keras 3 functional models: flatten, name, cut into segments.

    graph = flat_graph(generator)                 # nested sub-models expanded inline, cached
    cut = graph.resolve("g_h2_relu")              # -> tensor ids produced by that layer
    (head, tail), states = graph.segments([cut])  # keras models: inputs -> cut, cut -> outputs

This module is the one place where tfcf reads or rewires the graph of a network, and the one
that knows Keras internals (nodes, nested functional models). Hybrids, influence maps and the
stretch distortion cut models through :mod:`tfcf.intervene`, which builds on it;
:mod:`tfcf.spectral` pairs successive convolutions with :meth:`FlatGraph.preceding`.

Naming. Each call of a layer (an "op") has a qualified name: its layer name, prefixed by the names
of the nested functional models it sits in, joined by "/" (``"decoder/block1_conv"``). A layer
called more than once has one op per call; ``"name:k"`` selects the k-th call in graph order and a
plain ``"name"`` selects all calls. Keras 3 forbids "/" in layer names, so models mirroring
tensorlayer networks spell ``g/h1/decon2d`` as ``g_h1_decon2d``; the original spelling is accepted
too when it does not name a nested path.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import weakref

import keras
import numpy as np
from keras import tree

__all__ = ["FlatGraph", "Op", "Preceding", "TensorSpec", "flat_graph", "functional_submodels"]

try:  # Keras 3 keeps the functional class in a private module.
    from keras.src.models.functional import Functional as _Functional
except ImportError:  # pragma: no cover - future Keras layouts
    _Functional = keras.Model


@dataclasses.dataclass
class _TensorSlot:
    """Placeholder for a tensor inside the recorded call arguments of an op."""

    tid: int


@dataclasses.dataclass
class Op:
    """One call of one operation in the flattened graph."""

    name: str
    call_index: int
    operation: object
    args: tuple
    kwargs: dict
    inputs: list
    outputs: list


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Shape (batch first), dtype and a readable description of one tensor of the graph.

    ``batched`` is False for a tensor without the batch axis: one value for the whole batch,
    e.g. ``1 - alpha[0]`` (shape ``(1,)``) in a progressive generator, or a model input declared
    with ``keras.Input(batch_shape=(1,))``. See :meth:`FlatGraph.segments` for how such tensors
    cross a cut.
    """

    shape: tuple
    dtype: str
    description: str
    batched: bool = True


@dataclasses.dataclass
class Preceding:
    """What :meth:`FlatGraph.preceding` met walking upstream from an op.

    Example::

        found = graph.preceding(op, kind=keras.layers.Conv2D, through=keras.layers.ReLU)
        found.ops       # the nearest Conv2D ops upstream of ``op``
        found.passed    # the ReLU ops walked through, nearest first
        found.blocked   # ops of neither kind where the walk stopped
        found.inputs    # model inputs (tensor ids) reached before any Conv2D
    """

    ops: list
    passed: list
    blocked: list
    inputs: list


_GRAPHS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def flat_graph(model):
    """The :class:`FlatGraph` of ``model``, built once per model and then reused.

    Example::

        graph = flat_graph(generator)
        graph is flat_graph(generator)                   # True: one graph per model
        models, states = graph.segments([graph.resolve("block1")])  # built once, then cached

    The graph keeps the Keras models it cuts (:meth:`FlatGraph.segments`), so every caller that
    cuts a model at the same place shares them (and their compiled predict functions). Models
    that cannot be weakly referenced get a fresh graph on each call.
    """
    try:
        graph = _GRAPHS.get(model)
    except TypeError:  # unhashable or not weak-referenceable
        graph = None
    if graph is None:
        graph = FlatGraph(model)
        try:
            _GRAPHS[model] = graph
        except TypeError:
            pass
    return graph


def _as_functional(model):
    """Return the functional graph behind ``model`` or raise a clear error."""
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise ValueError(
                f"Sequential model {model.name!r} is not built: give it a keras.Input first "
                "(keras.Sequential([keras.Input(shape), ...])) or call it once on data."
            )
        return functional
    if isinstance(model, _Functional) and hasattr(model, "_nodes_by_depth"):
        return model
    found = functional_submodels(model) if isinstance(model, keras.Model) else []
    if found:
        generative = [entry for entry in found
                      if any(word in entry[0].lower() for word in ("dec", "gen", "synth"))]
        attribute, sub = (generative or found)[0]
        layers = [layer.name for layer in getattr(sub, "layers", [])
                  if not isinstance(layer, keras.layers.InputLayer)]
        example = layers[len(layers) // 2] if layers else "<layer name>"
        hint = (f" Its functional sub-models can be cut: "
                f"{', '.join(f'model.{a} ({type(m).__name__} {m.name!r})' for a, m in found)}; "
                f"e.g. tfcf.split(model.{attribute}, {example!r}).")
    else:
        hint = (" Rebuild it with the functional API (layers called on keras.Input tensors), "
                "or cut one of its functional sub-models.")
    raise TypeError(
        f"tfcf can only cut Keras functional models (keras.Model(inputs, outputs)) and built "
        f"keras.Sequential models; got {type(model).__name__!r}, a subclassed model whose "
        f"call() is opaque Python.{hint}"
    )


def functional_submodels(model):
    """``[(attribute, model)]``: the functional or built Sequential models held by ``model``.

    Example::

        functional_submodels(vae)        # [("decoder", <Functional decoder>), ("encoder", ...)]
        tfcf.split(vae.decoder, "dec_conv1")

    Looks at the attributes of a (subclassed) model, one level deep, in attribute order.
    """
    found, seen = [], set()
    for attribute, value in vars(model).items():
        if attribute.startswith("_") or id(value) in seen or value is model:
            continue
        if isinstance(value, keras.Model) and _is_nested_graph(value):
            seen.add(id(value))
            found.append((attribute, value))
    return found


def _is_nested_graph(operation):
    if isinstance(operation, keras.Sequential):
        return getattr(operation, "_functional", None) is not None
    return isinstance(operation, _Functional) and hasattr(operation, "_nodes_by_depth")


class FlatGraph:
    """A functional model with nested functional sub-models expanded inline.

    Example::

        graph = FlatGraph(model)  # or flat_graph(model), the cached one
        graph.op_names()          # qualified names, graph order
        (head, tail), _ = graph.segments([graph.resolve("block1")])
    """

    def __init__(self, model):
        functional = _as_functional(model)
        self.name = model.name   # not the model: the per-model caches must not keep it alive
        self.ops: list[Op] = []
        self.specs: dict[int, TensorSpec] = {}
        self._ids = itertools.count()
        # The batch axis: the leading None of the inputs (a model built with a fixed batch size
        # has it fixed; then the first input's leading size is the batch). A tensor lacks it
        # when it has no axis or its leading size is fixed (and not that batch size).
        leading = [tuple(t.shape)[0] if len(t.shape) else () for t in functional.inputs]
        self._batch_dim = None if None in leading or not leading else leading[0]
        local = {}
        self.inputs = []
        for position, tensor in enumerate(functional.inputs):
            tid = self._new_tensor(tensor, f"input {position} ({tensor.name})")
            local[id(tensor)] = tid
            self.inputs.append(tid)
        self._expand(functional, local, prefix="")
        self.outputs = [local[id(tensor)] for tensor in functional.outputs]
        self.producer = {tid: index for index, op in enumerate(self.ops) for tid in op.outputs}
        counts = {}
        for op in self.ops:
            counts.setdefault(op.name, []).append(op)
        self._by_name = counts
        self._segments = {}

    def _new_tensor(self, tensor, description):
        tid = next(self._ids)
        shape = tuple(tensor.shape)
        batched = len(shape) > 0 and shape[0] in (None, self._batch_dim)
        self.specs[tid] = TensorSpec(shape, str(tensor.dtype), description, batched)
        return tid

    def batched(self, tid):
        """True when tensor ``tid`` has the batch axis (see :class:`TensorSpec`).

        Example::

            [alpha_term] = graph.resolve("one_minus_alpha")
            graph.batched(alpha_term)        # False: shape (1,), one value for every sample
        """
        return self.specs[tid].batched

    def largest_tensor_bytes(self):
        """``(bytes, known)``: the size of the largest tensor with the batch axis, per sample;
        ``known`` is False when some such tensor has a size known only at run time.

        Example::

            flat_graph(face_dcgan).largest_tensor_bytes()    # (262144, True): 32x32x64 float32
        """
        largest, known = 1, True
        for spec in self.specs.values():
            if not spec.batched:
                continue
            if any(d is None for d in spec.shape[1:]):
                known = False
                continue
            try:
                itemsize = np.dtype(spec.dtype).itemsize
            except TypeError:        # bfloat16 and other names numpy does not know
                itemsize = 4
            largest = max(largest, int(np.prod(spec.shape[1:], dtype=np.int64)) * itemsize)
        return largest, known

    def _expand(self, functional, local, prefix):
        depths = sorted(functional._nodes_by_depth, reverse=True)
        for depth in depths:
            nodes = functional._nodes_by_depth[depth]
            nodes = sorted(
                nodes,
                key=lambda node: _node_position(node),
            )
            for node in nodes:
                operation = node.operation
                if operation is None or node.is_input:
                    continue
                if _is_nested_graph(operation):
                    inner = _as_functional(operation)
                    inner_local = {
                        id(inner_input): local[id(outer)]
                        for inner_input, outer in zip(inner.inputs, node.input_tensors)
                    }
                    self._expand(inner, inner_local, prefix + operation.name + "/")
                    for outer, inner_output in zip(node.outputs, inner.outputs):
                        local[id(outer)] = inner_local[id(inner_output)]
                    continue
                name = prefix + operation.name
                call_index = sum(1 for op in self.ops if op.name == name)

                def to_ref(value):
                    if isinstance(value, keras.KerasTensor):
                        return _TensorSlot(local[id(value)])
                    return value

                args = tree.map_structure(to_ref, node.arguments.args)
                kwargs = tree.map_structure(to_ref, node.arguments.kwargs)
                inputs = [local[id(tensor)] for tensor in node.input_tensors]
                outputs = []
                for position, tensor in enumerate(node.outputs):
                    suffix = f" output {position}" if len(node.outputs) > 1 else ""
                    tid = self._new_tensor(tensor, f"{name}:{call_index}{suffix}")
                    local[id(tensor)] = tid
                    outputs.append(tid)
                self.ops.append(Op(name, call_index, operation, args, kwargs, inputs, outputs))

    # ------------------------------------------------------------------ naming
    def op_names(self):
        """Qualified op names in graph order, ``name:k`` for layers called more than once."""
        names = []
        for name, ops in self._by_name.items():
            if len(ops) == 1:
                names.append(name)
            else:
                names.extend(f"{name}:{op.call_index}" for op in ops)
        return names

    def resolve(self, at):
        """Tensor ids produced by the op(s) named ``at`` (see the module docstring)."""
        return [tid for op in self.resolve_ops(at) for tid in op.outputs]

    def resolve_ops(self, at):
        """The ops named ``at``: one op, or every call of a layer called more than once."""
        if not isinstance(at, str):
            raise TypeError(f"a layer name must be a string, got {at!r} ({type(at).__name__})")
        name, call = at, None
        base, sep, index = at.rpartition(":")
        if sep and index.isdigit():
            name, call = base, int(index)
        candidates = self._by_name.get(name)
        if candidates is None:
            leaf_matches = [key for key in self._by_name if key.rsplit("/", 1)[-1] == name]
            if not leaf_matches and "/" in name:
                underscored = name.replace("/", "_")
                leaf_matches = [
                    key for key in self._by_name
                    if key == underscored or key.rsplit("/", 1)[-1] == underscored
                ]
            if len(leaf_matches) > 1:
                raise ValueError(
                    f"layer name {at!r} is ambiguous in model {self.name!r}: it names "
                    f"{sorted(leaf_matches)}; use one of these qualified names."
                )
            if not leaf_matches:
                valid = self.op_names()
                close = difflib.get_close_matches(name, valid, n=3)
                hint = f" Did you mean {close}?" if close else ""
                raise ValueError(
                    f"unknown layer {at!r} in model {self.name!r}.{hint} "
                    f"Valid layer names: {valid}"
                )
            candidates = self._by_name[leaf_matches[0]]
        if call is None:
            return list(candidates)
        if call >= len(candidates):
            raise ValueError(
                f"layer {name!r} is called {len(candidates)} time(s); call index {call} is out "
                f"of range (valid: {', '.join(f'{name}:{k}' for k in range(len(candidates)))})"
            )
        return [candidates[call]]

    def op_named(self, at):
        """The one op named ``at``; a layer called more than once needs ``"name:k"``.

        Example::

            op = graph.op_named("g_h2_decon2d")
            op.operation                     # the Keras layer
            graph.specs[op.outputs[0]].shape
        """
        ops = self.resolve_ops(at)
        if len(ops) != 1:
            raise ValueError(
                f"layer {at!r} is called {len(ops)} times in model {self.name!r}; name one "
                f"call: {', '.join(self.name_of(op) for op in ops)}"
            )
        return ops[0]

    # ----------------------------------------------------------------- inputs
    def input_arrays(self, values, role="inputs", finite=False):
        """The model's input list from user values: numpy arrays, checked, floats cast.

        Example::

            [z] = graph.input_arrays(z, "base")                # a model with one input
            z, y = graph.input_arrays([z, y], "source")        # one array per model input
            z, alpha = graph.input_arrays([z, np.float32([0.3])], "z", finite=True)

        ``values`` is one array (a model with one input) or a list with one array per model
        input, all with the same batch size. Float arrays are cast to the input's float dtype.
        An input without the batch axis (``keras.Input(batch_shape=(1,))``) takes one array of
        exactly its shape, the same for the whole batch. ``role`` names the values in error
        messages (``"base"``, ``"source"``, ``"z"``). ``finite=True`` also refuses NaN and
        infinite values.

        Raises:
            ValueError: wrong number of arrays, a shape the model does not take, unequal
                batch sizes, or (``finite``) a NaN or infinite value; the message names the
                input and the expected shapes.
        """
        arrays = list(values) if isinstance(values, (list, tuple)) else [values]
        if len(arrays) != len(self.inputs):
            raise ValueError(
                f"{role} must give {len(self.inputs)} array(s), one per model input "
                f"({[self.specs[t].description for t in self.inputs]}); got {len(arrays)}"
            )
        converted = []
        for array, tid in zip(arrays, self.inputs):
            spec = self.specs[tid]
            array = np.asarray(array)
            if array.dtype.kind == "f" and str(spec.dtype).startswith("float"):
                array = array.astype(spec.dtype, copy=False)
            expected = spec.shape[1:] if spec.batched else spec.shape
            given = array.shape[1:] if spec.batched else array.shape
            if array.ndim != len(spec.shape) or any(
                e is not None and e != a for e, a in zip(expected, given)
            ):
                dims = ", ".join("?" if e is None else str(e) for e in expected)
                wanted = (f"(batch, {dims})" if spec.batched else
                          f"({dims}{',' if len(expected) == 1 else ''}) with no batch axis: one "
                          "value for the whole batch")
                raise ValueError(
                    f"{role} array for {spec.description} has shape {array.shape}; the model "
                    f"expects {wanted}"
                )
            if finite and array.dtype.kind in "fc" and not np.isfinite(array).all():
                bad = ~np.isfinite(array)
                rows = np.flatnonzero(bad.reshape(len(array), -1).any(axis=1)) if (
                    spec.batched and array.ndim) else []
                where = (f" (samples {', '.join(str(int(r)) for r in rows[:5])}"
                         f"{', ...' if len(rows) > 5 else ''})" if len(rows) else "")
                raise ValueError(
                    f"{role} array for {spec.description} holds {int(bad.sum())} NaN or infinite "
                    f"value(s){where}; give finite values"
                )
            converted.append(array)
        batch = {len(a) for a, tid in zip(converted, self.inputs) if self.specs[tid].batched}
        if len(batch) > 1:
            raise ValueError(
                f"{role} arrays have different batch sizes: "
                f"{[len(a) for a, t in zip(converted, self.inputs) if self.specs[t].batched]}"
            )
        return converted

    def batch_size(self, arrays):
        """The batch size of a list of input arrays (from :meth:`input_arrays`).

        Example::

            graph.batch_size(graph.input_arrays([z, y], "z"))    # len(z)
        """
        for array, tid in zip(arrays, self.inputs):
            if self.specs[tid].batched:
                return len(array)
        raise ValueError(f"model {self.name!r} has no input with a batch axis")

    # ---------------------------------------------------------------- cutting
    def ancestors_of(self, tids, stop=()):
        """Indices of the ops needed to compute ``tids``, not expanding tensors in ``stop``."""
        stop = set(stop)
        needed = set()
        pending = [tid for tid in tids if tid not in stop]
        seen = set()
        while pending:
            tid = pending.pop()
            if tid in seen:
                continue
            seen.add(tid)
            index = self.producer.get(tid)
            if index is None or index in needed:
                continue
            needed.add(index)
            pending.extend(t for t in self.ops[index].inputs if t not in stop)
        return sorted(needed)

    def segments(self, boundaries):
        """Cut the graph at successive boundaries: ``(models, states)``, ``len(boundaries) + 1`` each.

        ``boundaries[k]`` is a list of tensor ids. Segment 0 maps the model inputs to
        ``boundaries[0] + carried_1``; segment k maps ``boundaries[k-1] + carried_k`` to
        ``boundaries[k] + carried_{k+1}``; the last segment returns the model outputs. The
        ``carried`` tensors are whatever crosses a boundary besides the cut itself: model inputs
        that feed later layers and skip connections that bypass the cut. Carried tensors have the
        batch axis: a tensor without it (``1 - alpha[0]``, shape ``(1,)``) is recomputed inside
        the segment that needs it, from the tensors it comes from, so only a model input without
        a batch axis can cross a boundary without one (:meth:`batched`). Each returned model has
        an attribute-free calling convention: a single tensor when its input (output) is one
        tensor, a list otherwise, in the order above; ``states[k]`` lists the tensor ids of
        segment k's inputs in that order.

        The models are built once per list of boundaries and kept by the graph: cutting again at
        the same place returns the same Keras models.
        """
        if not boundaries:
            raise ValueError("at least one boundary is needed to cut a model")
        key = tuple(tuple(boundary) for boundary in boundaries)
        if key not in self._segments:
            self._segments[key] = self._cut(boundaries)
        models, states = self._segments[key]
        return list(models), [list(state) for state in states]

    def _cut(self, boundaries):
        """Build the segment models of :meth:`segments` (uncached)."""
        count = len(boundaries)
        states = [None] * (count + 1)
        needs = [None] * (count + 1)
        op_lists = [None] * (count + 1)
        wanted = list(self.outputs)
        for k in range(count, 0, -1):
            cut = list(boundaries[k - 1])
            closure = self.ancestors_of(wanted, stop=cut)
            dependent = set(cut)
            segment_ops = []
            for index in closure:
                op = self.ops[index]
                if any(tid in dependent for tid in op.inputs):
                    segment_ops.append(index)
                    dependent.update(op.outputs)
            while True:
                available = set(cut).union(
                    *(self.ops[index].outputs for index in segment_ops))
                carried = []
                for tid in [t for index in segment_ops for t in self.ops[index].inputs] + wanted:
                    if tid not in available and tid not in carried:
                        carried.append(tid)
                # A tensor without the batch axis cannot travel with the batch (it would be
                # indexed, tiled and concatenated along an axis it does not have): the segment
                # recomputes it from what it is computed from. Only model inputs without a
                # batch axis are carried as they are.
                recompute = {self.producer[tid] for tid in carried
                             if not self.specs[tid].batched and tid in self.producer}
                if not recompute:
                    break
                segment_ops = sorted(set(segment_ops) | recompute)
            states[k] = cut + carried
            needs[k] = wanted
            op_lists[k] = segment_ops
            wanted = states[k]
        states[0] = list(self.inputs)
        needs[0] = wanted
        op_lists[0] = self.ancestors_of(wanted, stop=self.inputs)
        models = [self._build(states[k], op_lists[k], needs[k], k) for k in range(count + 1)]
        return models, states

    def _build(self, state, op_indices, wanted, position):
        env = {}
        inputs = []
        used_names = set()
        for tid in state:
            spec = self.specs[tid]
            name = _input_name(spec.description, used_names)
            tensor = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=name)
            env[tid] = tensor
            inputs.append(tensor)

        def fill(value):
            if isinstance(value, _TensorSlot):
                return env[value.tid]
            return value

        for index in op_indices:
            op = self.ops[index]
            args = tree.map_structure(fill, op.args)
            kwargs = tree.map_structure(fill, op.kwargs)
            produced = tree.flatten(op.operation(*args, **kwargs))
            for tid, tensor in zip(op.outputs, produced):
                env[tid] = tensor
        outputs = []
        for tid in wanted:
            tensor = env[tid]
            if any(tensor is given for given in inputs):
                # A tensor that crosses the segment untouched still goes through an op, so that
                # Keras builds a proper node for it.
                tensor = keras.layers.Identity(name=_input_name("pass " + self.specs[tid].description, used_names))(tensor)
            outputs.append(tensor)
        name = f"{self.name}_segment{position}"
        return keras.Model(
            inputs=inputs[0] if len(inputs) == 1 else inputs,
            outputs=outputs[0] if len(outputs) == 1 else outputs,
            name=name,
        )

    def name_of(self, op):
        """The name that selects exactly ``op``: ``name``, or ``name:k`` for a repeated layer."""
        return op.name if len(self._by_name[op.name]) == 1 else f"{op.name}:{op.call_index}"

    def consumers(self, tid):
        """The ops that read tensor ``tid`` (graph order)."""
        return [op for op in self.ops if tid in op.inputs]

    def producers(self, op):
        """The ops whose outputs ``op`` reads (graph order; model inputs have no producer).

        Example::

            [previous] = graph.producers(graph.op_named("g_h2_relu"))   # the batch norm
        """
        indices = {self.producer[tid] for tid in op.inputs if tid in self.producer}
        return [self.ops[index] for index in sorted(indices)]

    def preceding(self, op, kind, through=()):
        """The nearest ops of ``kind`` upstream of ``op``, walking back only through ``through``.

        Example::

            found = graph.preceding(graph.op_named("d2"), kind=keras.layers.Conv2D,
                                    through=(keras.layers.BatchNormalization, keras.layers.ReLU))
            [conv] = found.ops        # the convolution that feeds "d2" through BN and ReLU

        ``kind`` and ``through`` are a class or tuple of classes (matched against each op's
        operation, e.g. a Keras layer) or a predicate ``f(op) -> bool``. The walk starts at the
        tensors ``op`` reads, stops at each op of ``kind``, goes on through ops of ``through``
        and stops, recording it, at any other op or at a model input; nested functional
        sub-models are walked into. Returns a :class:`Preceding`.
        """
        found, passed, blocked, inputs = [], [], [], []
        pending = list(op.inputs)
        seen_tensors, seen_ops = set(), set()
        while pending:
            tid = pending.pop(0)
            if tid in seen_tensors:
                continue
            seen_tensors.add(tid)
            index = self.producer.get(tid)
            if index is None:
                inputs.append(tid)
                continue
            if index in seen_ops:
                continue
            seen_ops.add(index)
            parent = self.ops[index]
            if _matches(kind, parent):
                found.append(parent)
            elif _matches(through, parent):
                passed.append(parent)
                pending.extend(parent.inputs)
            else:
                blocked.append(parent)
        return Preceding(found, passed, blocked, inputs)

    def depends_on(self, tids, sources):
        """True when any tensor of ``tids`` is computed from any tensor of ``sources``."""
        sources = set(sources)
        for index in self.ancestors_of(tids):
            if any(t in sources for t in self.ops[index].inputs):
                return True
        return False

    def evaluate(self, feeds, wanted=None, call=None):
        """Run the graph op by op in inference mode: ``{tid: value}`` in, values of ``wanted`` out.

        Example::

            [image] = graph.evaluate({graph.inputs[0]: z})          # == model(z, training=False)
            values = graph.evaluate({tid: activation}, wanted=graph.outputs,
                                    call=lambda op, args, kwargs: my_conv(*args))

        ``feeds`` may hold any tensors of the graph (model inputs or internal ones); only the ops
        needed for ``wanted`` (default: the model outputs) and not already fed are run. ``call``,
        when given, is asked first for each op: it returns the op's output, or None to let the
        op's own layer compute it. Meant to run inside a traced/compiled function.
        """
        wanted = list(self.outputs if wanted is None else wanted)
        env = dict(feeds)

        def fill(value):
            return env[value.tid] if isinstance(value, _TensorSlot) else value

        for index in self.ancestors_of(wanted, stop=list(env)):
            op = self.ops[index]
            args = tree.map_structure(fill, op.args)
            kwargs = tree.map_structure(fill, op.kwargs)
            if _takes_training(op.operation):
                kwargs["training"] = False
            produced = call(op, args, kwargs) if call is not None else None
            if produced is None:
                produced = op.operation(*args, **kwargs)
            for tid, tensor in zip(op.outputs, tree.flatten(produced)):
                env[tid] = tensor
        return [env[tid] for tid in wanted]


def _takes_training(operation):
    """True when the layer's ``call`` accepts a ``training`` argument (batch norm, dropout)."""
    import inspect

    call = getattr(operation, "call", None)
    try:
        return call is not None and "training" in inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False


def _matches(selector, op):
    """``selector`` is a class, a tuple of classes (of the op's operation) or a predicate."""
    if isinstance(selector, (type, tuple)):
        return isinstance(op.operation, selector)
    return bool(selector(op))


def _node_position(node):
    nodes = getattr(node.operation, "_inbound_nodes", None) or []
    for position, candidate in enumerate(nodes):
        if candidate is node:
            return position
    return 0


def _input_name(description, used):
    base = "".join(ch if ch.isalnum() or ch in "_." else "_" for ch in description).strip("_")
    name = base or "tensor"
    suffix = 1
    while name in used:
        suffix += 1
        name = f"{base}_{suffix}"
    used.add(name)
    return name
