"""Split a Keras generator at layers and replace internal activations (hybrids, interventions).

    head, tail = tfcf.split(generator, "g_h2_relu")
    images = tail(head(z))                                     # == generator(z)
    hybrids = tfcf.hybrid(generator, "g_h2_relu", [0, 5, 9], base=z1, source=z2)

One mechanism serves every counterfactual in tfcf: :func:`intervene` runs the base inputs through
the model and, at each named layer, replaces that layer's value by ``intervention(base_value,
source_value)``, where ``source_value`` is the value the same layer took when the model ran on the
``source`` inputs. :func:`hybrid` is the paper's hybridization (channels of a module copied from
the source sample); :class:`SetChannels` assigns a constant; :class:`Transform` applies any
function, e.g. a spatial stretch of the activation maps.

Several layers at once. When one named layer lies downstream of another (the papers intervene on
the same module in two successive layers), the interventions are applied in graph order: the
first layer is replaced, the model runs on to the second layer from that intervened value, and
the second layer's listed channels are then replaced by the value they had in the unintervened
source pass. Channels that are not listed keep the value computed from the intervened upstream
layer, as a do-intervention on both sets of variables prescribes.

Inference mode always: batch normalisation uses its moving statistics, dropout is off.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np

from tfcf.graph import flat_graph

__all__ = [
    "Intervention",
    "RetracingWarningFilter",
    "SetChannels",
    "Split",
    "SwapChannels",
    "Transform",
    "check_batch_size",
    "default_batch",
    "hybrid",
    "intervene",
    "split",
]

class Split(tuple):
    """``(head, tail)`` with the description of what crosses the cut.

    Example::

        split = tfcf.split(model, "block1")
        head, tail = split
        split.cut        # descriptions of the cut activations, in tail's input order
        split.carried    # descriptions of the other tensors tail needs (inputs, skips)
    """

    def __new__(cls, head, tail, cut, carried):
        self = super().__new__(cls, (head, tail))
        self.cut = list(cut)
        self.carried = list(carried)
        return self

    @property
    def head(self):
        return self[0]

    @property
    def tail(self):
        return self[1]


def split(model, at):
    """Cut ``model`` after the layer(s) ``at``; return ``(head, tail)`` Keras models.

    Example::

        head, tail = tfcf.split(generator, "g_h2_relu")
        activations = head(z)                 # [B, 16, 16, 128]
        np.allclose(tail(activations), generator(z), atol=1e-6)

    ``at`` is a layer name or a list of names (qualified names ``"sub/layer"`` for layers of
    nested functional models, ``"layer:k"`` for the k-th call of a layer called more than once;
    a plain name of such a layer cuts every call).

    Calling convention. ``head`` takes the model's inputs (as the model does) and returns
    ``[a_1, ..., a_L, c_1, ..., c_M]``: ``a_i`` the activations of the cut layers in the order
    of ``at`` (one per call), then ``c_j`` every other tensor the downstream part still needs --
    model inputs that feed later blocks (e.g. a class vector ``y`` fed to every block) and
    tensors of skip connections that bypass the cut. ``tail`` takes exactly that list and returns
    the model's outputs, so ``tail(head(x)) == model(x)``. When the list has a single element
    (the common case: one layer, no skip), ``head`` returns the tensor itself and ``tail`` takes
    it directly. ``split.cut`` and ``split.carried`` describe the list.

    Carried tensors have the batch axis: a tensor without it that the downstream part needs
    (a progressive generator's ``1 - alpha[0]``, shape ``(1,)``) is recomputed inside ``tail``
    from the inputs it comes from, so ``tail`` can be fed any batch of cut activations. Only a
    model input declared without a batch axis (``keras.Input(batch_shape=(1,))``) is carried as
    it is, one value for the whole batch.

    Raises:
        ValueError: unknown layer name (the message lists the valid names).
        TypeError: subclassed (non-functional) model.
    """
    graph = flat_graph(model)
    names = [at] if isinstance(at, str) else list(at)
    if not names:
        raise ValueError("`at` is empty: name at least one layer to split at")
    cut = []
    for name in names:
        for tid in graph.resolve(name):
            if tid not in cut:
                cut.append(tid)
    (head, tail), states = graph.segments([cut])
    return Split(
        head,
        tail,
        [graph.specs[tid].description for tid in cut],
        [graph.specs[tid].description for tid in states[1][len(cut):]],
    )


# --------------------------------------------------------------------------- interventions
class Intervention:
    """Base class: ``new_value = intervention(base_value, source_value)`` on numpy arrays.

    Example::

        class Zero(tfcf.Intervention):
            needs_source = False
            def __call__(self, base, source):
                return np.zeros_like(base)

    ``base`` is the layer's value in the (possibly already intervened) base pass, ``source`` its
    value in the unintervened source pass (None when ``needs_source`` is False). Both are
    channels-last arrays ``[B, ..., C]``. Return an array of the same shape.
    """

    needs_source = True

    def validate(self, layer, shape):
        """Check the intervention against the layer's output shape (``shape[0]`` is batch)."""

    def __call__(self, base, source):  # pragma: no cover - abstract
        raise NotImplementedError


def _check_channels(channels, layer, shape):
    count = shape[-1]
    if count is None:
        return
    bad = [c for c in channels if not 0 <= c < count]
    if bad:
        raise ValueError(
            f"channel index {bad[0]} is out of range for layer {layer!r}, which has {count} "
            f"channels (valid: 0..{count - 1}); got channels {list(channels)}"
        )


def _as_channel_list(channels):
    if isinstance(channels, (int, np.integer)):
        return [int(channels)]
    values = np.asarray(list(channels))
    if values.size == 0:
        return []
    if values.dtype == bool:
        return [int(c) for c in np.flatnonzero(values)]
    if not np.issubdtype(values.dtype, np.integer) or values.ndim != 1:
        raise ValueError(f"channels must be a list of integer indices, got {list(channels)!r}")
    return [int(c) for c in values]


class SwapChannels(Intervention):
    """Copy ``channels`` from the source pass into the base pass (the paper's hybridization).

    Example::

        out = tfcf.intervene(g, {"g_h2_relu": tfcf.SwapChannels([3, 7])}, base=z1, source=z2)
    """

    def __init__(self, channels):
        self.channels = _as_channel_list(channels)

    def validate(self, layer, shape):
        _check_channels(self.channels, layer, shape)

    def __call__(self, base, source):
        out = np.array(base, copy=True)
        if self.channels:
            out[..., self.channels] = source[..., self.channels]
        return out


class SetChannels(Intervention):
    """Assign a constant (scalar or array broadcastable to ``[..., len(channels)]``).

    Example::

        out = tfcf.intervene(g, {"g_h2_relu": tfcf.SetChannels([3], 0.0)}, base=z)
    """

    needs_source = False

    def __init__(self, channels, value):
        self.channels = _as_channel_list(channels)
        self.value = np.asarray(value, dtype="float32")

    def validate(self, layer, shape):
        _check_channels(self.channels, layer, shape)

    def __call__(self, base, source):
        out = np.array(base, copy=True)
        if self.channels:
            out[..., self.channels] = self.value
        return out


class Transform(Intervention):
    """Replace the layer's value (or only ``channels`` of it) by ``function(base_value)``.

    Example::

        stretch = tfcf.Transform(lambda maps: my_stretch(maps, factor=1.5))
        out = tfcf.intervene(g, {"g_h2_relu": stretch}, base=z)

    ``function`` maps a channels-last array ``[B, ..., C]`` to an array of the same shape (a
    spatial transform such as a stretch, a gain, a noise injection).
    """

    needs_source = False

    def __init__(self, function, channels=None):
        if not callable(function):
            raise TypeError(f"Transform needs a callable, got {function!r}")
        self.function = function
        self.channels = None if channels is None else _as_channel_list(channels)

    def validate(self, layer, shape):
        if self.channels is not None:
            _check_channels(self.channels, layer, shape)

    def __call__(self, base, source):
        transformed = np.asarray(self.function(np.asarray(base)))
        if transformed.shape != np.shape(base):
            raise ValueError(
                f"Transform function changed the shape {np.shape(base)} to {transformed.shape}"
            )
        if self.channels is None:
            return transformed.astype(np.asarray(base).dtype, copy=False)
        out = np.array(base, copy=True)
        out[..., self.channels] = transformed[..., self.channels]
        return out


class _Callable(Intervention):
    needs_source = None  # reads the source pass when one is given

    def __init__(self, function):
        self.function = function

    def __call__(self, base, source):
        return self.function(base, source)


# --------------------------------------------------------------------------- running
class RetracingWarningFilter(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warnings, expected when cutting.

    Example::

        logging.getLogger("tensorflow").addFilter(tfcf.intervene.RetracingWarningFilter())

    Each segment of a cut model is its own Keras model with its own predict function; TensorFlow
    counts their first traces together and warns about "retracing". Importing tfcf installs
    nothing: the ``tfcf`` command installs this filter; a script may do as above.
    """

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


def _run(model, inputs):
    outputs = model.predict_on_batch(inputs[0] if len(inputs) == 1 else inputs)
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def _levels(graph, groups):
    """Order cut groups so that every group comes after the groups it depends on."""
    levels = [0] * len(groups)
    for _ in range(len(groups)):
        changed = False
        for i, tids in enumerate(groups):
            for j, other in enumerate(groups):
                if i != j and graph.depends_on(tids, other) and levels[i] <= levels[j]:
                    levels[i] = levels[j] + 1
                    changed = True
        if not changed:
            break
    return levels


_CALL_BYTES = 128 * 2**20   # batch_size=None: one call's largest tensor within this


def check_batch_size(batch_size):
    """``batch_size`` when it is None or an integer >= 1; else a ValueError naming it.

    Example::

        check_batch_size(64)      # 64; check_batch_size(0) raises
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, numbers.Integral) or batch_size < 1):
        raise ValueError(f"batch_size must be an integer >= 1 or None (chosen from the "
                         f"model's tensor sizes), got {batch_size!r}")
    return batch_size


def default_batch(graph, copies=1, most=256):
    """Samples (or hybrids) per call for ``batch_size=None``: ``most``, or fewer where the
    largest tensor of ``graph`` for a call (``copies`` passes through it together) would pass
    128 MiB; at most 256 where a tensor's size is known only at run time.

    Example::

        default_batch(flat_graph(generator), copies=2)   # 256 (face DCGAN); 1 (MobileStyleGAN)
    """
    largest, known = graph.largest_tensor_bytes()
    most = most if known else min(most, 256)
    return int(max(1, min(most, _CALL_BYTES // (copies * largest))))


def intervene(model, interventions, base, source=None, batch_size=None):
    """Run ``model`` on ``base`` with the values of some layers replaced; return numpy outputs.

    Example::

        out = tfcf.intervene(g, {"g_h2_relu": tfcf.SwapChannels([1, 3])}, base=z1, source=z2)
        out = tfcf.intervene(g, {"g_h2_relu": tfcf.SetChannels([1], 0.0)}, base=z1)

    Args:
        model: a Keras functional model (or built Sequential).
        interventions: ``{layer_name: Intervention}`` or a list of ``(layer_name,
            Intervention)`` pairs; a plain callable ``f(base_value, source_value)`` is accepted
            as an intervention. Layer names as in :func:`split`.
        base: the model inputs of the base pass (an array, or a list of arrays for a model with
            several inputs).
        source: the model inputs of the source pass, same structure and batch as ``base``;
            required when any intervention reads the source.
        batch_size: samples per forward call; None: 256, or fewer where one call's largest
            tensor (base and source together) would pass 128 MiB (1 for MobileStyleGAN's
            1024-px synthesis, whose 512-px layers take 64 MiB a sample).

    Returns:
        The model's output for the intervened base pass: one numpy array, or a list for a model
        with several outputs.
    """
    graph = flat_graph(model)
    pairs = list(interventions.items()) if isinstance(interventions, dict) else list(interventions)
    if not pairs:
        raise ValueError("no intervention given: pass {layer_name: Intervention}")
    groups = []
    for name, action in pairs:
        if not isinstance(action, Intervention):
            if not callable(action):
                raise TypeError(f"intervention for {name!r} must be an Intervention or callable")
            action = _Callable(action)
        tids = graph.resolve(name)
        for tid in tids:
            spec = graph.specs[tid]
            if not spec.batched:
                raise ValueError(
                    f"layer {name!r} gives {spec.description} of shape {spec.shape}, without the "
                    "batch axis: one value shared by every sample, so no sample has its own "
                    "value to replace; intervene on a layer whose output has the batch axis"
                )
            action.validate(name, spec.shape)
        groups.append((name, tids, action))
    claimed = {}
    for name, tids, _ in groups:
        for tid in tids:
            if tid in claimed:
                raise ValueError(f"layers {claimed[tid]!r} and {name!r} name the same tensor")
            claimed[tid] = name

    levels = _levels(graph, [tids for _, tids, _ in groups])
    order = sorted(set(levels))
    boundaries = [[tid for (_, tids, _), lvl in zip(groups, levels) if lvl == level for tid in tids]
                  for level in order]
    segments, states = graph.segments(boundaries)
    batched = [[graph.batched(tid) for tid in state] for state in states]
    actions = {tid: action for _, tids, action in groups for tid in tids}

    base_inputs = graph.input_arrays(base, "base")
    needs_source = any(action.needs_source for action in actions.values())
    reads_source = any(action.needs_source is not False for action in actions.values())
    if needs_source and source is None:
        raise ValueError("these interventions read the source pass: pass `source=` inputs")
    source_inputs = None
    if source is not None:
        source_inputs = graph.input_arrays(source, "source")
        if graph.batch_size(source_inputs) != graph.batch_size(base_inputs):
            raise ValueError(
                f"base and source batch sizes differ: {graph.batch_size(base_inputs)} vs "
                f"{graph.batch_size(source_inputs)}"
            )
        if not reads_source:
            source_inputs = None
    if check_batch_size(batch_size) is None:   # base and source go through one call
        batch_size = default_batch(graph, copies=1 if source_inputs is None else 2)

    total = graph.batch_size(base_inputs)

    def rows(arrays, start, stop):  # inputs without a batch axis go whole to every chunk
        return [a[start:stop] if keep else a for a, keep in zip(arrays, batched[0])]

    chunks = []
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        base_state = rows(base_inputs, start, stop)
        source_state = None if source_inputs is None else rows(source_inputs, start, stop)
        for k, segment in enumerate(segments[:-1]):
            if source_state is not None and all(batched[k]) and all(batched[k + 1]):
                # base and source through one call
                both = _run(segment, [np.concatenate([b, s]) for b, s in zip(base_state, source_state)])
                size = stop - start
                base_state = [v[:size] for v in both]
                source_state = [v[size:] for v in both]
            elif source_state is not None:
                # a value without batch axis (an input shared by the batch) may differ
                # between base and source: two calls
                base_state, source_state = _run(segment, base_state), _run(segment, source_state)
            else:
                base_state = _run(segment, base_state)
            for position, tid in enumerate(boundaries[k]):
                source_value = None if source_state is None else source_state[position]
                new = np.asarray(actions[tid](base_state[position], source_value))
                if new.shape != base_state[position].shape:
                    raise ValueError(
                        f"the intervention on {graph.specs[tid].description} returned shape "
                        f"{new.shape}; expected {base_state[position].shape}"
                    )
                base_state[position] = new.astype(base_state[position].dtype, copy=False)
        chunks.append(_run(segments[-1], base_state))
    outputs = [np.concatenate([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))]
    return outputs[0] if len(outputs) == 1 else outputs


def hybrid(model, at, channels, base, source, batch_size=None):
    """Hybrid outputs: ``channels`` of layer ``at`` from the source pass, the rest from base.

    Example::

        hybrids = tfcf.hybrid(generator, "g_h2_relu", [0, 5, 9], base=z1, source=z2)
        two_layers = tfcf.hybrid(began, ["conv4_a", "conv4_b"], [[1, 2], [7]], z1, z2)

    ``at`` is one layer name with a channel list, or a list of layers with one channel list
    each (a module spanning successive layers; see the module docstring for the semantics).
    ``base``/``source`` are arrays (lists of arrays for models with several inputs) of equal
    batch. Returns numpy outputs of the model.
    """
    if isinstance(at, str):
        plan = {at: SwapChannels(channels)}
    else:
        names = list(at)
        lists = list(channels)
        if len(lists) != len(names) or not all(
            isinstance(c, (list, tuple, np.ndarray, range)) for c in lists
        ):
            raise ValueError(
                f"with several layers {names}, `channels` must hold one channel list per layer "
                f"({len(names)} lists); got {channels!r}"
            )
        plan = [(name, SwapChannels(c)) for name, c in zip(names, lists)]
    return intervene(model, plan, base=base, source=source, batch_size=batch_size)
