"""Influence maps: what each channel (or module) of a layer does to the generated image.

    z = np.random.default_rng(0).normal(size=(200, 100)).astype("float32")
    maps = tfcf.influence_maps(generator, "main.8", z, num_pairs=200)   # [128, 64, 64]
    strength = tfcf.individual_influence(maps)                         # [128]
    module_maps = tfcf.influence_maps(generator, "main.8", z, channels=[[0, 4], [1, 2, 3]])

Definitions (ICLR 2020 eq. 2; ICLR 2019 draft section 3). For a set E of channels of layer ``at``
and a pair of latent samples (z1, z2), the hybrid output Y_E(z1, z2) is the generator's output
when the channels in E take the values they have for z2 and every other channel keeps its value
for z1 (:func:`tfcf.hybrid`). Over pairs drawn from ``z``:

- ``statistic="mean_abs"``: IM(E) = mean over pairs of |Y_E(z1, z2) - Y(z1)| (eq. 2);
- ``statistic="variance"``: the per-pixel variance (ddof 0) of Y_E(z1, z2) over pairs (2019 draft).

Maps are averaged over colour channels unless ``keep_color=True``.

How pairs are drawn: with N = len(z), pair p takes a base index b_p uniform in [0, N) and a source
index s_p uniform over the N - 1 other indices, independently for each p, from
``numpy.random.default_rng(seed)`` (first all base indices, then all source offsets). The same
pairs serve every map, so maps are comparable.

How it is computed. The head of the model (:func:`tfcf.split`) runs once per sample; the
downstream part runs on batches of hybrids that mix many channels and pairs at once, and the
statistics are accumulated in float64 as the batches stream by (memory does not grow with the
number of pairs). When the layer after the cut is a linear layer (Dense, Conv2D or
Conv2DTranspose without activation) read by nothing else, its output for a one-channel hybrid is
its output for the base sample plus that channel's contribution of the difference
``source - base``: the downstream work then starts after that layer, which is where most of a
generator's FLOPs are. ``method="generic"`` turns this off. ``return_record=True`` also returns
an :class:`InfluenceRecord` saying which way was taken and how the work was batched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings

import keras
import numpy as np

from tfcf.graph import flat_graph
from tfcf.io import progress_bar
from tfcf.intervene import SwapChannels, intervene

__all__ = ["STATISTICS", "InfluenceRecord", "cached_influence_maps", "influence_maps",
           "individual_influence",
           "draw_pairs"]

STATISTICS = ("mean_abs", "variance")
_LINEAR = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Conv2DTranspose,
           keras.layers.Conv1D, keras.layers.Conv1DTranspose)


@dataclasses.dataclass(frozen=True)
class InfluenceRecord:
    """How :func:`influence_maps` computed its maps (returned with ``return_record=True``).

    Example::

        maps, record = tfcf.influence_maps(generator, "main.8", z, return_record=True)
        record.method, record.hybrids, record.hybrids / record.seconds   # "linear", ..., rate

    ``method`` is "linear" (the shortcut through the linear layer after the cut), "generic" (the
    whole downstream part on mixed hybrids) or "intervene" (modules spanning several layers, one
    map at a time through :func:`tfcf.intervene`). Each downstream call evaluates
    ``maps_per_step`` maps on ``pairs_per_step`` pairs; ``hybrids = num_maps * num_pairs``.
    """

    method: str
    num_maps: int
    num_pairs: int
    hybrids: int
    maps_per_step: int
    pairs_per_step: int
    seconds: float


def draw_pairs(num_samples, num_pairs, seed=0):
    """Base and source indices of ``num_pairs`` pairs of distinct samples among ``num_samples``.

    Example::

        base, source = draw_pairs(100, 500, seed=0)     # two int arrays of length 500
    """
    if num_samples < 2:
        raise ValueError(f"influence maps need at least 2 samples in z, got {num_samples}")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}")
    rng = np.random.default_rng(seed)
    base = rng.integers(0, num_samples, num_pairs)
    offset = rng.integers(0, num_samples - 1, num_pairs)
    source = offset + (offset >= base)
    return base, source


def individual_influence(maps):
    """The scalar influence of each map: its mean over pixels (and colours).

    Example::

        strength = tfcf.individual_influence(maps)    # maps [C, H, W] -> [C]
    """
    maps = np.asarray(maps)
    if maps.ndim < 2:
        raise ValueError(f"maps must be [num_maps, H, W(, C)], got shape {maps.shape}")
    return maps.reshape(len(maps), -1).mean(axis=1)


def _compile(function):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=False)
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function


def _modules(channels, num_channels, layer):
    """Channel masks [num_maps, C] for elementary maps (None) or a list of channel sets."""
    if channels is None:
        return np.eye(num_channels, dtype="float32")
    masks = np.zeros((len(channels), num_channels), dtype="float32")
    for row, module in enumerate(channels):
        indices = np.atleast_1d(np.asarray(module))
        if indices.size and (not np.issubdtype(indices.dtype, np.integer) or indices.ndim != 1):
            raise ValueError(f"each module must be a list of channel indices, got {module!r}")
        bad = [int(c) for c in indices if not 0 <= c < num_channels]
        if bad:
            raise ValueError(
                f"channel index {bad[0]} is out of range for layer {layer!r}, which has "
                f"{num_channels} channels (valid: 0..{num_channels - 1})"
            )
        masks[row, indices.astype(int)] = 1.0
    return masks


class _Accumulator:
    """Streaming float64 sums per map: |hybrid - original| or (hybrid, hybrid**2)."""

    def __init__(self, statistic, num_maps, shape):
        self.statistic = statistic
        self.count = np.zeros(num_maps)
        self.first = np.zeros((num_maps,) + shape)
        self.second = np.zeros((num_maps,) + shape) if statistic == "variance" else None

    def add(self, rows, partial, count):
        self.count[rows] += count
        self.first[rows] += np.asarray(partial[0], dtype="float64")
        if self.second is not None:
            self.second[rows] += np.asarray(partial[1], dtype="float64")

    def result(self):
        count = self.count.reshape((-1,) + (1,) * (self.first.ndim - 1))
        mean = self.first / count
        if self.statistic == "mean_abs":
            return mean
        return np.maximum(self.second / count - mean**2, 0.0)


def _reduce(outputs, originals, statistic, num_masks):
    """Sum over pairs inside the compiled step: [M*P, ...] -> [M, ...] partial statistics."""
    ops = keras.ops
    outputs = ops.reshape(outputs, (num_masks, -1) + tuple(outputs.shape[1:]))
    if statistic == "mean_abs":
        return (ops.sum(ops.abs(outputs - originals[None]), axis=1),)
    return ops.sum(outputs, axis=1), ops.sum(ops.square(outputs), axis=1)


def _tile(value, times):
    return keras.ops.concatenate([value] * times, axis=0) if times > 1 else value


def _merge(batched, shared, flags, times):
    """The carried inputs in order: batched ones tiled ``times``, shared ones (no batch axis) as
    they are."""
    batched, shared = list(batched), list(shared)
    return [_tile(batched.pop(0), times) if flag else shared.pop(0) for flag in flags]


class _GenericStep:
    """Hybrids = base + mask * (source - base) at the cut, through the whole downstream part."""

    def __init__(self, tail, statistic, flags):
        self.tail = tail
        self.statistic = statistic
        self.flags = tuple(flags)   # per carried input of tail: has the batch axis
        self.step = _compile(self._step)

    def _step(self, base, source, carried, shared, originals, masks):
        ops = keras.ops
        num_masks = masks.shape[0]
        expand = (slice(None), None) + (None,) * (len(base.shape) - 1)
        hybrids = base[None] + masks[expand] * (source - base)[None]
        hybrids = ops.reshape(hybrids, (-1,) + tuple(base.shape[1:]))
        inputs = [hybrids] + _merge(carried, shared, self.flags, num_masks)
        outputs = self.tail(inputs if len(inputs) > 1 else inputs[0], training=False)
        return _reduce(outputs, originals, self.statistic, num_masks)


class _LinearStep:
    """The first layer after the cut is linear: add each channel's contribution to its output."""

    def __init__(self, layer, rest, statistic, flags):
        self.layer = layer
        self.rest = rest
        self.statistic = statistic
        self.flags = tuple(flags)
        self.step = _compile(self._step)

    def contribution(self, delta, kernel):
        """The layer's output for input ``delta`` [P, ..., 1] through a one-channel ``kernel``."""
        ops = keras.ops
        layer = self.layer
        if isinstance(layer, keras.layers.Dense):
            return ops.matmul(delta, kernel)
        if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv1DTranspose)):
            return ops.conv_transpose(
                delta, kernel, strides=layer.strides, padding=layer.padding,
                output_padding=layer.output_padding, data_format=layer.data_format,
                dilation_rate=layer.dilation_rate,
            )
        return ops.conv(delta, kernel, strides=layer.strides, padding=layer.padding,
                        data_format=layer.data_format, dilation_rate=layer.dilation_rate)

    def _kernel_slice(self, kernel, channel):
        ops = keras.ops
        if isinstance(self.layer, (keras.layers.Conv2DTranspose, keras.layers.Conv1DTranspose)):
            picked = ops.take(kernel, channel, axis=-1)          # (..., out) for input channel
            return ops.expand_dims(picked, -1)                   # (..., out, 1)
        picked = ops.take(kernel, channel, axis=-2)              # (..., out)
        return ops.expand_dims(picked, -2)                       # (..., 1, out)

    def _step(self, base, source, pre_base, carried, shared, originals, channels):
        ops = keras.ops
        kernel = self.layer.kernel
        delta = source - base
        num_masks = channels.shape[0]
        parts = []
        for m in range(num_masks):
            channel = channels[m]
            one = ops.expand_dims(ops.take(delta, channel, axis=-1), -1)
            parts.append(pre_base + self.contribution(one, self._kernel_slice(kernel, channel)))
        pre = ops.concatenate(parts, axis=0)
        inputs = [pre] + _merge(carried, shared, self.flags, num_masks)
        outputs = self.rest(inputs if len(inputs) > 1 else inputs[0], training=False)
        return _reduce(outputs, originals, self.statistic, num_masks)


def _linear_successor(model, at):
    """The name and layer of the linear layer that alone reads the cut tensor, or None."""
    graph = flat_graph(model)
    tids = graph.resolve(at)
    if len(tids) != 1:
        return None
    readers = graph.consumers(tids[0])
    if len(readers) != 1 or readers[0].inputs != tids:
        return None
    layer = readers[0].operation
    if not isinstance(layer, _LINEAR) or getattr(layer, "data_format", None) == "channels_first":
        return None
    if getattr(layer.activation, "__name__", None) != "linear":
        return None
    return graph.name_of(readers[0]), layer


def _index_ranges(total, size):
    """``(start, stop)`` of consecutive ranges of at most ``size`` indices covering ``total``."""
    for start in range(0, total, size):
        yield start, min(start + size, total)


def _predict(model, inputs, batch_size, flags_in=None, flags_out=None):
    """``model`` on ``inputs`` in chunks; values without a batch axis (flags False) are passed
    whole to every chunk and returned once."""
    flags_in = flags_in or [True] * len(inputs)
    total = next(len(a) for a, flag in zip(inputs, flags_in) if flag)
    pieces = []
    for start, stop in _index_ranges(total, batch_size):
        chunk = [a[start:stop] if flag else a for a, flag in zip(inputs, flags_in)]
        out = model.predict_on_batch(chunk[0] if len(chunk) == 1 else chunk)
        out = out if isinstance(out, (list, tuple)) else [out]
        pieces.append([np.asarray(o) for o in out])
    flags_out = flags_out or [True] * len(pieces[0])
    return [np.concatenate([p[i] for p in pieces]) if flags_out[i] else pieces[0][i]
            for i in range(len(pieces[0]))]


def _rows(values, index, flags):
    """``values[i][index]`` for the values with a batch axis, the others as they are."""
    return [v[index] if flag else v for v, flag in zip(values, flags)]


def _split_shared(values, flags):
    """(values with the batch axis, values without), each in order."""
    return ([v for v, flag in zip(values, flags) if flag],
            [v for v, flag in zip(values, flags) if not flag])


def influence_maps(model, at, z, channels=None, statistic="mean_abs", num_pairs=None, seed=0,
                   batch_size=256, keep_color=False, method="auto", strategy=None,
                   progress=True, return_record=False):
    """Influence maps of the channels (or modules) of layer ``at``: ``[num_maps, H, W]``.

    Example::

        maps = tfcf.influence_maps(generator, "main.8", z)                 # one per channel
        maps = tfcf.influence_maps(generator, "main.8", z, channels=[[0, 1], [2, 5, 7]])
        maps = tfcf.influence_maps(began, ["conv4_a_elu", "conv4_b_elu"], z,
                                   channels=[[[0, 1], [3]], [[2], [4, 5]]])  # two-layer modules

    Args:
        model: a Keras functional generator with image outputs ``[B, H, W, colours]``.
        at: the layer name; or a list of layers, then ``channels`` is required and each module
            is a list of channel lists, one per layer (see :func:`tfcf.hybrid`).
        z: the model inputs the pairs are drawn from (latent samples, or encoder means of real
            images for a VAE); a list of arrays for a model with several inputs.
        channels: None for one elementary map per channel (E = {c}); else a list of modules.
        statistic: "mean_abs" (ICLR 2020 eq. 2) or "variance" (2019 draft).
        num_pairs: pairs (z1, z2) to average over; default ``len(z)``. See the module
            docstring for how they are drawn from ``seed``.
        batch_size: hybrids per downstream call.
        keep_color: return ``[num_maps, H, W, colours]`` instead of averaging colours.
        method: "auto" (linear shortcut when possible), "generic" or "linear".
        strategy: a ``tf.distribute.Strategy``; each batch of pairs is split across its
            replicas and the partial sums are added (TensorFlow backend).
        progress: show a progress bar (maps done, hybrids per second).
        return_record: also return an :class:`InfluenceRecord` (method taken, batch sizes,
            seconds): ``maps, record = influence_maps(..., return_record=True)``.

    Returns:
        The maps ``[num_maps, H, W]`` (``[num_maps, H, W, colours]`` with ``keep_color``); with
        ``return_record``, the pair ``(maps, record)``.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; valid: {', '.join(STATISTICS)}")
    if method not in ("auto", "generic", "linear"):
        raise ValueError(f"unknown method {method!r}; valid: auto, generic, linear")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    graph = flat_graph(model)
    inputs = graph.input_arrays(z, "z", finite=True)
    input_flags = [graph.batched(tid) for tid in graph.inputs]
    num_samples = graph.batch_size(inputs)
    num_pairs = num_samples if num_pairs is None else int(num_pairs)
    distinct = num_samples * (num_samples - 1)
    if num_samples >= 2 and num_pairs > distinct:
        warnings.warn(
            f"num_pairs={num_pairs} is more than the {distinct} distinct pairs (ordered, base != "
            f"source) of the {num_samples} samples in z: pairs repeat; give more samples for "
            "more independent pairs", stacklevel=2)
    base_index, source_index = draw_pairs(num_samples, num_pairs, seed)
    output_spec = graph.specs[graph.outputs[0]]
    if len(graph.outputs) != 1 or len(output_spec.shape) != 4:
        raise ValueError(
            f"influence maps need a model with one image output [B, H, W, colours]; "
            f"{model.name!r} has outputs {[graph.specs[t].shape for t in graph.outputs]}"
        )
    started = time.time()
    if not isinstance(at, str):
        maps = _multi_layer_maps(model, list(at), channels, inputs, input_flags, base_index,
                                 source_index, statistic, batch_size, keep_color, progress)
        if not return_record:
            return maps
        return maps, InfluenceRecord(
            method="intervene", num_maps=len(maps), num_pairs=num_pairs,
            hybrids=len(maps) * num_pairs, maps_per_step=1,
            pairs_per_step=min(num_pairs, batch_size), seconds=time.time() - started,
        )

    successor = _linear_successor(model, at) if method != "generic" and channels is None else None
    if method == "linear" and successor is None:
        raise ValueError(
            f"method='linear' needs elementary maps and a layer after {at!r} that is a linear "
            "Dense/Conv layer without activation read by nothing else; use method='auto'"
        )
    cut = graph.resolve(at)
    for tid in cut:
        if not graph.batched(tid):
            spec = graph.specs[tid]
            raise ValueError(
                f"layer {at!r} gives {spec.description} of shape {spec.shape}, without the batch "
                "axis: one value shared by every sample, so it has no influence map; choose a "
                "layer whose output has the batch axis")
    # Each model part runs once per sample: head -> cut states (-> states after the linear
    # layer) -> original outputs Y(z). Values without a batch axis (model inputs shared by the
    # batch) are passed whole, never indexed or tiled.
    if successor is None:
        (head, tail), boundaries = graph.segments([cut])
    else:
        successor_name, layer = successor
        (head, middle, rest), boundaries = graph.segments([cut, graph.resolve(successor_name)])
    flags = [[graph.batched(tid) for tid in state] for state in boundaries]
    states = _predict(head, inputs, batch_size, flags[0], flags[1])
    if successor is None:
        originals = _predict(tail, states, batch_size, flags[1])[0]
    else:
        rest_states = _predict(middle, states, batch_size, flags[1], flags[2])
        originals = _predict(rest, rest_states, batch_size, flags[2])[0]
    num_channels = int(states[0].shape[-1])
    masks = _modules(channels, num_channels, at)

    num_maps = len(masks)
    pairs_per_step = min(num_pairs, batch_size)
    masks_per_step = max(1, min(num_maps, batch_size // pairs_per_step))
    accumulator = _Accumulator(statistic, num_maps, tuple(output_spec.shape[1:]))

    engine = (_GenericStep(tail, statistic, flags[1][1:]) if successor is None
              else _LinearStep(layer, rest, statistic, flags[2][1:]))

    replicas = _Replicas(strategy)
    with progress_bar(num_maps * num_pairs, progress, f"influence maps ({num_maps})",
                      "hybrid") as bar:
        for first, last in _index_ranges(num_maps, masks_per_step):
            rows = np.arange(first, last)
            padded = np.concatenate([rows, np.full(masks_per_step - len(rows), rows[-1])])
            for start, stop in _index_ranges(num_pairs, pairs_per_step):
                b, s = base_index[start:stop], source_index[start:stop]
                if successor is not None:
                    carried, shared = _split_shared(rest_states[1:], flags[2][1:])
                    arguments = (states[0][b], states[0][s], rest_states[0][b],
                                 [c[b] for c in carried], shared, originals[b],
                                 padded.astype("int32"))
                    partial = replicas.run(engine.step, arguments, split_args=(0, 1, 2, 3, 5))
                else:
                    carried, shared = _split_shared(states[1:], flags[1][1:])
                    arguments = (states[0][b], states[0][s], [c[b] for c in carried], shared,
                                 originals[b], masks[padded])
                    partial = replicas.run(engine.step, arguments, split_args=(0, 1, 2, 4))
                partial = [np.asarray(keras.ops.convert_to_numpy(p))[: len(rows)] for p in partial]
                accumulator.add(rows, partial, stop - start)
                bar.update(len(rows) * (stop - start))
            bar.set_postfix_str(f"maps {last}/{num_maps}")
    maps = accumulator.result().astype("float32")
    maps = maps if keep_color else maps.mean(axis=-1)
    if not return_record:
        return maps
    record = InfluenceRecord(
        method="linear" if successor is not None else "generic", num_maps=num_maps,
        num_pairs=num_pairs, hybrids=num_maps * num_pairs, maps_per_step=masks_per_step,
        pairs_per_step=pairs_per_step, seconds=time.time() - started,
    )
    return maps, record


def _multi_layer_maps(model, layers, channels, inputs, input_flags, base_index, source_index,
                      statistic, batch_size, keep_color, progress):
    """Modules spanning several layers: each map through tfcf.intervene, pairs streamed."""
    if channels is None:
        raise ValueError(
            f"with several layers {layers}, pass `channels`: a list of modules, each a list of "
            f"{len(layers)} channel lists (one per layer)"
        )
    for module in channels:
        if len(module) != len(layers):
            raise ValueError(
                f"module {module!r} must hold {len(layers)} channel lists, one per layer {layers}"
            )
    originals = _predict(model, inputs, batch_size, input_flags)[0]
    accumulator = _Accumulator(statistic, len(channels), originals.shape[1:])
    with progress_bar(len(channels) * len(base_index), progress,
                      f"influence maps ({len(channels)})", "hybrid") as bar:
        for row, module in enumerate(channels):
            plan = [(layer, SwapChannels(c)) for layer, c in zip(layers, module)]
            for start, stop in _index_ranges(len(base_index), batch_size):
                b, s = base_index[start:stop], source_index[start:stop]
                out = intervene(model, plan, _rows(inputs, b, input_flags),
                                _rows(inputs, s, input_flags), batch_size=batch_size)
                if statistic == "mean_abs":
                    partial = (np.abs(out - originals[b]).sum(axis=0)[None],)
                else:
                    out = out.astype("float64")
                    partial = (out.sum(axis=0)[None], np.square(out).sum(axis=0)[None])
                accumulator.add([row], partial, stop - start)
                bar.update(stop - start)
            bar.set_postfix_str(f"maps {row + 1}/{len(channels)}")
    maps = accumulator.result().astype("float32")
    return maps if keep_color else maps.mean(axis=-1)


class _Replicas:
    """Run a compiled step on one device, or split its pair axis over several devices.

    TensorFlow: a ``tf.distribute`` strategy runs the step on each replica's share of the pairs
    and adds the partial sums. JAX: under a ``keras.distribution`` (e.g. ``DataParallel``) the
    pair axis of each batch is laid out over the devices and the compiled step reduces across
    them.
    """

    @staticmethod
    def _shard(arguments, split_args):
        if keras.backend.backend() != "jax":
            return arguments
        distribution = keras.distribution.distribution()
        if distribution is None:
            return arguments

        def put(value):
            if isinstance(value, list):
                return [put(v) for v in value]
            layout = distribution.get_data_layout(value.shape)
            try:
                return keras.distribution.distribute_tensor(value, layout)
            except ValueError:  # a batch that does not divide over the devices stays whole
                return value

        return tuple(put(a) if i in split_args else a for i, a in enumerate(arguments))

    def __init__(self, strategy):
        self.strategy = strategy
        if strategy is not None and keras.backend.backend() != "tensorflow":
            raise ValueError(
                "a tf.distribute strategy needs KERAS_BACKEND=tensorflow; under JAX set a "
                "keras.distribution.DataParallel distribution instead"
            )

    def run(self, step, arguments, split_args):
        if self.strategy is None:
            return step(*self._shard(arguments, split_args))
        import tensorflow as tf

        strategy = self.strategy
        count = strategy.num_replicas_in_sync
        num_pairs = len(arguments[0])
        bounds = np.linspace(0, num_pairs, count + 1).astype(int)

        def piece(value, replica):
            lo, hi = bounds[replica], bounds[replica + 1]
            if isinstance(value, list):
                return [v[lo:hi] for v in value]
            return value[lo:hi]

        def value_fn(context):
            replica = context.replica_id_in_sync_group
            return tuple(piece(a, replica) if i in split_args else a
                         for i, a in enumerate(arguments))

        distributed = strategy.experimental_distribute_values_from_function(value_fn)
        result = strategy.run(lambda args: step(*args), args=(distributed,))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in result]


def cached_influence_maps(model, at, z, num_pairs=None, seed=0, statistic="mean_abs", key="",
                          report=None, **options):
    """:func:`influence_maps` of every channel, kept in ``<tfcf cache>/influence/``.

        maps = cached_influence_maps(generator, "main.8", z, num_pairs=256, seed=0)

    Several figures need the same elementary maps: they are computed once per (weights, layer,
    latents, pairs, seed, statistic, ``key``) and kept through :mod:`tfcf.cache` (atomic, checked
    when read: a corrupt file is reported, removed and recomputed). The key hashes the model's
    weights and the latents themselves. ``report(text)`` is told when the maps come from the
    cache; ``options`` go to :func:`influence_maps`.
    """
    from tfcf import __version__
    from tfcf.cache import cached_arrays, weights_digest

    latents = [np.asarray(v) for v in (z if isinstance(z, (list, tuple)) else [z])]
    digest = hashlib.sha1(weights_digest(model).encode())
    for value in latents:
        digest.update(f"{value.shape}{value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    cache_key = repr((__version__, digest.hexdigest(), at, num_pairs, seed, statistic, key))

    def compute():
        return {"maps": influence_maps(model, at, z, num_pairs=num_pairs, seed=seed,
                                       statistic=statistic, **options)}

    hit = None if report is None else (
        lambda path: report(f"    influence maps of {at} from the cache {path}"))
    return cached_arrays("influence", cache_key, compute,
                         expect={"maps": (None, "float32")}, on_hit=hit)["maps"]
