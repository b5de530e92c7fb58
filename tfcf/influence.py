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

How it is computed. The model runs once up to the cut for each sample that some pair uses (and
once more for the original outputs); the per-sample values stay on the device, and each compiled
step gathers its pairs, forms the hybrids of several maps at once, runs them downstream and adds
up the statistic, in float32 within a block of maps and float64 across blocks (memory does not
grow with the number of pairs).

The linear shortcut. Copying channels commutes with every channel-wise layer (batch norm,
elementwise activations, padding, cropping, up-sampling, reshapes that keep the channel axis),
so the hybrid can be formed at the input of the first layer after the cut that mixes channels: a
Dense, convolution (grouped too), transposed convolution, depthwise or separable convolution, or
a Flatten followed by a Dense. That layer is linear, so its output for the hybrid is its output
for the base sample plus the contribution of the copied channels' differences ``source - base``,
computed through the kernel rows of those channels only (a module's contribution is the sum of
its channels'). An elementary hybrid thus skips almost all of that layer, often the largest of
the generator. With at least as many pairs as samples, a module's part of that layer's output is
computed once per sample, and a module hybrid is the base's output less the base's part plus the
source's part; when the modules partition the layer's channels (NMF modules do), the layer's
output itself is the sum of the parts and the bias. A per-sample channel scale on the way (a
style modulation ``x * s``, ``s`` [B, 1.., C] computed from the inputs, then linear channel-wise
layers only) is passed too: the difference is taken without the scale and multiplied by the
base's (:class:`tfcf.shortcut.Scale`), and module hybrids are formed pair by pair (a module's
part then depends on the base). Hybrids that copy only channels equal in base and source (ids of
exactly equal channel values per sample) count as unchanged: their maps are exactly zero on
every path. The downstream part then runs as compiled code: the elementwise layers right after
the hybrid fuse with its formation (XLA), and on TensorFlow a transposed convolution runs as a
convolution over its stride phases (sub-pixel form), which oneDNN computes several times faster
than TensorFlow's own transposed convolution on a CPU; where XLA compiles the whole part, the
transposed convolutions' matrix products run outside it, in oneDNN; where the part has
convolutions, they run in oneDNN and the layers between them (biases, noise, style scales,
activations, slices, reshapes) as XLA pieces, each fused into one pass. Finding the shortcut and
writing its layer as tap convolutions: :mod:`tfcf.shortcut`. ``method="generic"`` turns the
shortcut off; ``return_record=True`` also returns an :class:`InfluenceRecord` saying which way
was taken and how the work was batched.

Threads. TensorFlow sizes its thread pools to the machine when it starts; processes that share a
few cores run faster with fewer threads each (``tfcf.influence.set_threads(1)`` before the first
TensorFlow operation, or ``TF_NUM_INTRAOP_THREADS=1``): tfcf never changes them by itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import warnings
import weakref

import keras
import numpy as np

from tfcf.graph import flat_graph
from tfcf.intervene import SwapChannels, check_batch_size, default_batch, intervene
from tfcf.io import progress_bar
from tfcf.shortcut import (conv_padded, fast_transposed_call, find_shortcut, finish_transposed,
                           is_elementwise, shortcut_layer, taps_of, transposed_taps)

__all__ = ["METHODS", "STATISTICS", "InfluenceRecord", "cached_influence_maps", "draw_pairs",
           "individual_influence", "influence_maps", "set_threads", "shortcut_layer"]

STATISTICS = ("mean_abs", "variance")
METHODS = ("auto", "generic", "linear")


@dataclasses.dataclass(frozen=True)
class InfluenceRecord:
    """How :func:`influence_maps` computed its maps (returned with ``return_record=True``).

    Example::

        maps, record = tfcf.influence_maps(generator, "main.8", z, return_record=True)
        record.method, record.shortcut, record.hybrids / record.seconds   # "linear", "main.9", rate

    ``method`` is "linear" (hybrids formed after the first channel-mixing layer, named by
    ``shortcut``), "generic" (hybrids formed at the cut, the whole downstream part run on them) or
    "intervene" (modules spanning several layers, one map at a time through
    :func:`tfcf.intervene`). Each downstream call evaluates ``maps_per_step`` maps on
    ``pairs_per_step`` pairs; ``hybrids = num_maps * num_pairs``.

    Where the time went (linear and generic methods): ``seconds_per_sample`` ran the ``samples``
    that the pairs use once each (up to the cut and the mixing layer, their original outputs,
    which channels are equal), ``seconds_parts`` computed precomputed modules' parts (0 without),
    ``seconds_steps`` formed and ran the hybrids; first calls include compilation.
    """

    method: str
    num_maps: int
    num_pairs: int
    hybrids: int
    maps_per_step: int
    pairs_per_step: int
    seconds: float
    shortcut: str | None = None
    backend: str = ""
    samples: int = 0
    seconds_per_sample: float = 0.0
    seconds_parts: float = 0.0
    seconds_steps: float = 0.0


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


def set_threads(intra_op=None, inter_op=None):
    """Size TensorFlow's thread pools; call it before the first TensorFlow operation.

    Example::

        tfcf.influence.set_threads(1)        # several tfcf processes sharing two cores

    TensorFlow fixes its pools when its runtime starts, so this raises ``RuntimeError`` once any
    operation has run. Measured on a 2-core machine (tools/bench.py): one process alone is
    fastest with the defaults (one thread per core); processes that share the cores, e.g. a
    training next to an analysis, each run faster with ``intra_op=1``. Other backends: no-op.
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    for value, setter in ((intra_op, tf.config.threading.set_intra_op_parallelism_threads),
                          (inter_op, tf.config.threading.set_inter_op_parallelism_threads)):
        if value is not None:
            if int(value) < 0:
                raise ValueError(f"thread counts must be >= 0 (0: TensorFlow's default), got "
                                 f"{value}")
            setter(int(value))


# ----------------------------------------------------------------------------- backend helpers

def _backend():
    return keras.backend.backend()


def _compile(function, xla=False):
    """A compiled version of ``function``: tf.function (XLA when ``xla``), jax.jit, or as is."""
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=bool(xla))
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function


_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
                 keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
                 keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)


# convolutions, which XLA:CPU runs several times slower than oneDNN (_Pieces runs them outside)
_HEAVY = _CONVOLUTIONS + (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                          keras.layers.Conv3DTranspose)


_ACTIVATIONS = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
                keras.layers.Activation)


def _native(graph):
    """True when every op of ``graph`` is a Keras layer or op: safe to compile whole with XLA."""
    return all(type(op.operation).__module__.startswith("keras.") for op in graph.ops)


def _xla_safe(layer):
    """A Keras layer or op, or one of tfcf's imported-graph layers (keras.ops only)."""
    module = type(layer).__module__
    return module.startswith("keras.") or module == "tfcf.openvino_layers"


def _compiled_form(graph, xla):
    """(compile with XLA, form of the transposed convolutions) for running ``graph``."""
    backend = _backend()
    if backend == "jax":
        return True, "matmul"
    if backend != "tensorflow":
        return False, None
    convolutions = any(isinstance(op.operation, _CONVOLUTIONS) for op in graph.ops)
    whole = xla and _native(graph) and not convolutions
    return whole, "matmul" if whole else "conv"


class _Runner:
    """A model part compiled for inference, transposed convolutions in their fast form; run in
    chunks of a fixed size (one compilation), results kept on the device."""

    def __init__(self, model, xla=True):
        self.graph = flat_graph(model)
        whole, form = _compiled_form(self.graph, xla)
        self.call = fast_transposed_call(self.graph, form)
        self.function = _compile(self._run, xla=whole)

    def _run(self, inputs):
        return self.graph.evaluate(dict(zip(self.graph.inputs, inputs)), call=self.call)

    def __call__(self, inputs, batch_size, flags_in, flags_out):
        ops = keras.ops
        total = next(len(a) for a, flag in zip(inputs, flags_in) if flag)
        size = min(batch_size, -(-total // 32) * 32)   # few distinct shapes: few compilations
        pieces = []
        for start, stop in _index_ranges(total, size):
            chunk = []
            for value, flag in zip(inputs, flags_in):
                if flag:
                    value = value[start:stop]
                    if stop - start < size:
                        value = ops.pad(value, [(0, size - stop + start)] + [(0, 0)] * (
                            len(value.shape) - 1))
                chunk.append(value)
            out = self.function(chunk)
            pieces.append([o[: stop - start] if flag else o for o, flag in zip(out, flags_out)])
        return [ops.concatenate([p[i] for p in pieces]) if flag else pieces[0][i]
                for i, flag in enumerate(flags_out)]


_RUNNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _runner(model):
    # TensorFlow: oneDNN's convolutions without XLA run the head as fast as XLA does here, and
    # skip its compilation (seconds, paid by every new process and shape)
    if model not in _RUNNERS:
        _RUNNERS[model] = _Runner(model, xla=False)
    return _RUNNERS[model]


# ----------------------------------------------------------------------------- the compiled steps

@dataclasses.dataclass
class _Plan:
    """How hybrids are formed and run: the model cut into its parts, what crosses each cut."""

    kind: str                 # "linear" or "generic"
    head: object              # Keras model: inputs -> swap point values (+ carried); with a
                              # per-sample scale: its input from the cut (+ carried, the scale)
    middle: object            # Keras model: swap point -> mixing layer output (+ carried); linear
    rest: object              # FlatGraph of the part after the hybrid point
    flags: list               # per boundary, per state: has the batch axis
    absorbed: object          # tensor id in ``rest`` after the leading elementwise layers, or None
    taps: object = None       # Taps of the mixing layer (linear)
    shortcut: object = None   # Shortcut (linear)
    scale_index: int = None   # position of the per-sample scale among the head's outputs
    unscaled: object = None   # compiled: the head's first output -> swap values without the scale


def _plan(graph, at, method):
    cut = graph.resolve(at)
    shortcut = (find_shortcut(graph, cut[0]) if method != "generic" and len(cut) == 1
                else None)
    if method == "linear" and shortcut is None:
        raise ValueError(
            f"method='linear' needs a linear channel-mixing layer (Dense, convolution, transposed "
            f"or depthwise convolution) after {at!r}, reached through channel-wise layers only "
            "and read by nothing else; use method='auto'")
    if shortcut is None:
        (head, downstream), states = graph.segments([cut])
        middle = taps = None
    else:
        # with a per-sample scale on the way, the head stops before it: the hybrids' differences
        # are taken without the scale (``unscaled``), then scaled by the base's scale
        scale = shortcut.scale
        boundaries = [[shortcut.swap if scale is None else scale.before],
                      list(shortcut.op.outputs)]
        (head, middle, downstream), states = graph.segments(boundaries)
        spatial = graph.specs[shortcut.swap].shape[1:-1]
        taps = taps_of(shortcut.op.operation, spatial, flatten=shortcut.flatten is not None)
    rest = flat_graph(downstream)
    plan = _Plan("generic" if shortcut is None else "linear", head, middle, rest,
                 [[graph.batched(t) for t in state] for state in states], _absorbed(rest), taps,
                 shortcut)
    if shortcut is not None and shortcut.scale is not None:
        plan.scale_index = states[1].index(shortcut.scale.side)
        plan.unscaled = _unscaled(graph, shortcut.scale.op.outputs[0], shortcut.swap)
    return plan


_UNSCALED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _unscaled(graph, scaled, swap):
    """Compiled once per graph: the values at ``swap`` computed from those fed in for the scaled
    tensor (the layers between the per-sample scale and the mixing layer, without the scale)."""
    functions = _UNSCALED.setdefault(graph, {})
    if (scaled, swap) not in functions:
        owner = weakref.ref(graph)   # the cache must not keep the graph (and its model) alive

        def unscaled(values):
            return owner().evaluate({scaled: values}, wanted=[swap])[0]

        functions[scaled, swap] = _compile(unscaled)
    return functions[scaled, swap]


def _absorbed(rest):
    """The tensor after the elementwise layers that directly follow the hybrid point (batch
    norm, activations): they are fused with the hybrids' formation. None when there are none."""
    tid, found = rest.inputs[0], None
    while tid not in rest.outputs:
        readers = rest.consumers(tid)
        if len(readers) != 1 or readers[0].inputs != [tid] or len(readers[0].outputs) != 1:
            break
        if not is_elementwise(readers[0].operation, len(rest.specs[tid].shape)):
            break
        tid = found = readers[0].outputs[0]
    return found


def _module_table(masks):
    """Channel indices [M, S] of each module (S a power of two; padding entries index channel 0)
    and their validity [M, S] (1.0 for a real entry)."""
    members = [np.flatnonzero(row) for row in masks]
    width = 1 << max(0, max(len(m) for m in members) - 1).bit_length()
    table = np.zeros((len(members), width), dtype="int32")
    valid = np.zeros((len(members), width), dtype="float32")
    for row, channels in enumerate(members):
        table[row, :len(channels)] = channels
        valid[row, :len(channels)] = 1.0
    return table, valid


def _channel_classes(values, probe=None):
    """Ids [N, C] (int32) of exactly equal channel values: samples ``a`` and ``b`` share an id in
    channel ``c`` exactly when ``values[a, ..., c] == values[b, ..., c]`` everywhere (-0.0 equals
    0.0), so whether a hybrid changes a channel is a comparison of two ids.

    Each (sample, channel) gets an integer hash of its values' bits (a sum of bits x random odd
    weights, wrapping: exact, so equal values give equal hashes); samples of equal hash are then
    compared value by value, and a channel where two differ (a collision) is classed by sorting
    its values' bytes. ``probe``: the weights [H*W...] (uint32; tests use it to force collisions).
    """
    values = np.asarray(values)
    num, channels = values.shape[0], values.shape[-1]
    flat = values.reshape(num, -1, channels)
    length = flat.shape[1]
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[values.dtype.itemsize]
    if probe is None:
        probe = np.random.default_rng(0).integers(0, 2**32, length, dtype=np.uint64)
        probe = probe.astype(np.uint32) | np.uint32(1)
    hashes = np.zeros((num, channels), dtype=np.uint32)
    step = max(1, (1 << 20) // max(1, num * channels))     # positions per chunk: ~4 MiB
    for start in range(0, length, step):
        chunk = (flat[:, start:start + step] + values.dtype.type(0)).view(bits)   # -0.0 -> 0.0
        if bits is np.uint64:                                   # fold the high half in
            chunk = chunk ^ (chunk >> np.uint64(32))
        chunk = chunk.astype(np.uint32) if bits is not np.uint32 else chunk
        chunk *= probe[start:start + step, None]
        hashes += chunk.sum(axis=1, dtype=np.uint32)
    # ids from the hashes, column by column: sort, number the runs, put back
    order = np.argsort(hashes, axis=0, kind="stable")
    ordered = np.take_along_axis(hashes, order, axis=0)
    starts = np.ones((num, channels), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    classes = np.empty((num, channels), dtype="int32")
    np.put_along_axis(classes, order, np.cumsum(starts, axis=0, dtype="int32") - 1, axis=0)
    # every sample against the first of its class, value by value
    first = np.maximum.accumulate(np.where(starts, np.arange(num)[:, None], 0), axis=0)
    representative = np.empty((num, channels), dtype="int64")
    np.put_along_axis(representative, order, np.take_along_axis(order, first, axis=0), axis=0)
    rows, cols = np.nonzero(representative != np.arange(num)[:, None])
    if len(rows):
        same = np.all(flat[rows, :, cols] == flat[representative[rows, cols], :, cols], axis=1)
        for channel in np.unique(cols[~same]):       # hash collisions: the exact classes
            column = np.ascontiguousarray(flat[:, :, channel]) + values.dtype.type(0)
            keys = column.view(np.dtype((np.void, column.dtype.itemsize * length))).ravel()
            classes[:, channel] = np.unique(keys, return_inverse=True)[1].ravel()
    return classes


def _tile(value, times):
    return keras.ops.concatenate([value] * times, axis=0) if times > 1 else value


class _Pieces:
    """TensorFlow: a downstream part run as XLA-compiled pieces between ops that run outside XLA,
    where oneDNN is faster than XLA:CPU. Call it inside a tf.function without XLA.

    Two kinds of op run outside. Where XLA would compile the part whole (no convolution), the
    matrix products of its transposed convolutions (their matmul form,
    :meth:`tfcf.shortcut.Taps.apply_matmul`): oneDNN computes these tall, narrow products (e.g.
    [B*32*32, 64] x [64, 48]) faster than XLA:CPU's dot, about a tenth of a face DCGAN step
    here; the overlap-add runs in the next piece. Where it would not (convolutions, which
    XLA:CPU runs several times slower than oneDNN, or layers not known to compile), those whole
    ops, transposed convolutions in their sub-pixel form: the elementwise layers between them
    (biases, noise, activations, style scales, reshapes, slices) then fuse into one pass per
    piece instead of one per layer (MobileStyleGAN's tail: 0.12 s a sample instead of 0.20 s).

    ``starts``: the tensors fed in. Piece k computes, from the tensors it reads, the inputs of
    the k-th outside op and whatever later ops read of what it makes; a piece with nothing to
    compute is skipped.
    """

    def __init__(self, graph, starts, products, outside, call=None):
        import tensorflow as tf

        self.graph, self.starts, self.call = graph, list(starts), call
        order = graph.ancestors_of(graph.outputs, stop=starts)
        cuts = [position for position, index in enumerate(order)
                if id(graph.ops[index]) in products or id(graph.ops[index]) in outside]
        last_read = {}   # tensor -> last position in ``order`` that reads it
        for position, index in enumerate(order):
            for tid in graph.ops[index].inputs:
                last_read[tid] = position
        outputs = set(graph.outputs)
        # (compiled piece or None, what it reads, what it makes) then the op after it: (op, Taps
        # of a product or None), None after the last piece
        self.stages = []
        previous, fed, fed_taps = -1, None, None
        for cut in cuts + [len(order)]:
            made, reads = [], []
            for index in order[previous + 1:cut]:
                op = graph.ops[index]
                reads += [tid for tid in op.inputs if tid not in made and tid not in reads
                          and tid != fed]
                made += [tid for tid in op.outputs if tid not in made]
            if cut < len(order):
                op = graph.ops[order[cut]]
                wanted = [tid for tid in made if tid in op.inputs or tid in outputs
                          or last_read.get(tid, -1) > cut]
                after = (op, products.get(id(op)))
            else:
                wanted, after = [tid for tid in made if tid in outputs], None
            if fed is not None and (fed in outputs or last_read.get(fed, -1) >= cut):
                wanted.append(fed)   # a product's output read later: finished in this piece
            compute = fed is not None or bool(wanted)
            piece = (tf.function(self._piece(reads, fed, fed_taps, wanted), jit_compile=True)
                     if compute else None)
            self.stages.append((piece, reads, wanted, after))
            fed, fed_taps = ((op.outputs[0], after[1]) if after is not None and after[1] is not None
                             else (None, None))
            previous = cut
        self.products = [after[1] for *_, after in self.stages
                         if after is not None and after[1] is not None]
        self.outside = [after[0].operation for *_, after in self.stages
                        if after is not None and after[1] is None]

    def _piece(self, reads, fed, taps, wanted):
        graph = self.graph

        def piece(values, columns):
            env = dict(zip(reads, values))
            if fed is not None:   # the previous product's columns -> the transposed convolution
                env[fed] = finish_transposed(taps, taps.overlap(columns))
            return graph.evaluate(env, wanted=wanted)

        return piece

    @classmethod
    def of(cls, graph, starts, whole=True):
        """The pieces of ``graph`` (a FlatGraph fed at ``starts``), or None when nothing would
        run outside XLA, or nothing inside it. ``whole``: the graph compiles whole with XLA
        (products outside), else its convolutions and unknown layers run outside."""
        needed = [graph.ops[index] for index in graph.ancestors_of(graph.outputs, stop=starts)]
        needed_ids = {id(op) for op in needed}
        if whole:
            products = {key: taps for key, taps in transposed_taps(graph, "matmul").items()
                        if key in needed_ids}
            if not products:
                return None
            return cls(graph, starts, products, set())
        outside = {id(op) for op in needed if isinstance(op.operation, _HEAVY)
                   or not _xla_safe(op.operation)}
        # an activation that alone reads a convolution's output stays with it (TensorFlow's
        # graph optimizer fuses the two in one oneDNN call)
        for op in needed:
            if id(op) in outside and isinstance(op.operation, _HEAVY):
                following = op
                while len(following.outputs) == 1:
                    readers = [r for r in graph.consumers(following.outputs[0])
                               if id(r) in needed_ids]
                    if (len(readers) != 1 or readers[0].inputs != following.outputs
                            or not isinstance(readers[0].operation, _ACTIVATIONS)):
                        break
                    following = readers[0]
                    outside.add(id(following))
        # pieces pay where XLA fuses several layers into one pass; runs of one layer between
        # ops outside gain nothing and cost a call each (e.g. BEGAN's conv, ELU, conv chains)
        run = longest = 0
        for op in needed:
            run = 0 if id(op) in outside else run + 1
            longest = max(longest, run)
        if not outside or longest < 2:
            return None
        return cls(graph, starts, {}, outside, call=fast_transposed_call(graph, "conv"))

    def __call__(self, values):
        ops, graph = keras.ops, self.graph
        env, columns = dict(zip(self.starts, values)), None
        for piece, reads, wanted, after in self.stages:
            if piece is not None:
                env.update(zip(wanted, piece([env[tid] for tid in reads], columns)))
            if after is None:
                return [env[tid] for tid in graph.outputs]
            op, taps = after
            if taps is not None:   # the product, outside XLA; the overlap-add in the next piece
                x = env[op.inputs[0]]
                columns = ops.matmul(ops.reshape(x, (-1, int(x.shape[-1]))), taps.matrix())
            else:
                columns = None
                env.update(zip(op.outputs, graph.evaluate(
                    {tid: env[tid] for tid in op.inputs}, wanted=list(op.outputs),
                    call=self.call)))


_ENGINES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_PRECOMPUTED_BYTES = 512 * 2**20   # per block of modules' precomputed parts
_MAX_STEP = 1024   # batch_size=None: at most this many hybrids a step


class _Engine:
    """The compiled steps for one plan and one shape of work (maps and pairs per step).

    ``step`` gathers its pairs from the per-sample values kept on the device, forms the hybrids
    of ``num_masks`` maps, runs them downstream and returns the partial sums of the statistic;
    ``forward`` gives the original outputs through the very same code, so that a copied channel
    that changes nothing gives exactly zero. Weights are read inside the compiled code, so a
    cached engine follows the model's current weights.
    """

    def __init__(self, plan, statistic, reduce_color, num_masks, pairs, xla, precomputed):
        self.plan = plan
        self.precomputed = precomputed
        self.scaled = plan.scale_index is not None
        self.statistic = statistic
        self.reduce_color = reduce_color
        self.num_masks = num_masks
        self.pairs = pairs
        backend = _backend()
        # TensorFlow: the whole step through XLA when the downstream part has only Keras layers
        # and no convolution (XLA:CPU's convolutions are slower than oneDNN's); then, when it
        # has transposed convolutions (their matmul form), XLA pieces around their matrix
        # products, which oneDNN computes faster for these tall, narrow shapes (_Pieces; face
        # DCGAN steps 0.73 s instead of 0.80 s). Else XLA fuses the hybrids' formation with the
        # elementwise layers after it, and the rest runs as XLA pieces between its convolutions,
        # which oneDNN runs (MobileStyleGAN 1.7-1.8x faster than a TensorFlow graph), or as a
        # graph when there is nothing to fuse between them. JAX: always all of it.
        self.whole, form = _compiled_form(plan.rest, xla)
        self.pieces = None
        if xla and backend == "tensorflow":
            self.pieces = _Pieces.of(plan.rest, [plan.absorbed if plan.absorbed is not None
                                                 else plan.rest.inputs[0]]
                                     + list(plan.rest.inputs[1:]), whole=self.whole)
            self.whole = self.whole and self.pieces is None
        fused = xla and backend == "tensorflow" and not self.whole
        self.rest_call = None if self.pieces is not None else fast_transposed_call(plan.rest, form)
        self.glue = _compile(self._glue, xla=True) if fused else self._glue
        self.glue_forward = _compile(self._glue_forward, xla=True) if fused else self._glue_forward
        self.reduce = (_compile(self._reduce, xla=True) if self.pieces is not None
                       else self._reduce)
        self.step = _compile(self._step, xla=self.whole)
        self.forward = _compile(self._forward, xla=self.whole)
        # Precomputed parts of wide modules (more than half the channels): one masked
        # convolution, which oneDNN runs fastest outside XLA on TensorFlow; narrow modules:
        # their own kernel rows, fused by XLA (see contributions).
        self.dense_contributions = _compile(self._masked_parts, xla=xla and not (
            backend == "tensorflow" and plan.taps is not None and plan.taps.kernel_size
            and plan.taps.kind != "flat_dense"))
        self.row_contributions = _compile(self._row_parts, xla=xla)
        self.assemble = _compile(self._assemble, xla=xla)

    @classmethod
    def get(cls, model, key, *args):
        engines = _ENGINES.setdefault(model, {})
        if key not in engines:
            engines[key] = cls(*args)
        return engines[key]

    # -- the parts
    def _absorb(self, hybrids):
        plan = self.plan
        if plan.absorbed is None:
            return hybrids
        return plan.rest.evaluate({plan.rest.inputs[0]: hybrids}, wanted=[plan.absorbed])[0]

    def _downstream(self, hybrids, carried, shared):
        plan = self.plan
        feeds = {plan.absorbed if plan.absorbed is not None else plan.rest.inputs[0]: hybrids}
        batched, others = list(carried), list(shared)
        for tid, flag in zip(plan.rest.inputs[1:], plan.flags[-1][1:]):
            feeds[tid] = batched.pop(0) if flag else others.pop(0)
        if self.pieces is not None:
            return self.pieces(list(feeds.values()))[0]
        return plan.rest.evaluate(feeds, call=self.rest_call)[0]

    def _rows(self, table, valid, kernel):
        """The kernel rows of each module's channels [k..., M, S, O'] (zero for padding)."""
        ops = keras.ops
        rows = ops.take(kernel, ops.reshape(table, (-1,)), axis=-2)
        rows = ops.reshape(rows, tuple(kernel.shape[:-2]) + tuple(table.shape)
                           + (int(kernel.shape[-1]),))
        return rows * ops.reshape(valid, tuple(valid.shape) + (1,))

    def _contribute(self, values, table, rows):
        """Each module's part of the mixing layer's output [M, B, ...] for inputs ``values``."""
        ops, taps = keras.ops, self.plan.taps
        parts = taps.restricted(values, table, rows)
        parts = taps.finish(ops.reshape(parts, (-1,) + tuple(parts.shape[2:])))
        return ops.reshape(parts, (self.num_masks, -1) + tuple(parts.shape[1:]))

    def contributions(self, values, masks):
        """Precomputed mode: each module's contribution for every sample [M, N, ...] (the
        mixing layer's output from the module's channels alone, without the bias), for the
        modules ``masks`` [M, C] (0/1). The modules' channels are padded to the block's own
        width: a block of narrow modules costs their channels, not the widest module's."""
        table, valid = _module_table(masks)
        if 2 * table.shape[1] > masks.shape[1]:
            return self.dense_contributions(values, table, valid)
        return self.row_contributions(values, table, valid)

    def _row_parts(self, values, table, valid):
        return self._contribute(values, table, self._rows(table, valid, self.plan.taps.kernel()))

    def _assemble(self, parts, weights):
        """The mixing layer's output [N, ...] from the parts of modules that partition its input
        channels: the sum of the blocks' parts ``parts[i]`` [M, N, ...] weighted by
        ``weights[i]`` [M] (0 for a block's padding), plus the bias (the layer is affine: its
        output is the sum of its channels' contributions and the bias)."""
        ops, layer = keras.ops, self.plan.taps.layer
        total = None
        for block, weight in zip(parts, weights):
            weight = ops.reshape(ops.cast(weight, block.dtype),
                                 (-1,) + (1,) * (len(block.shape) - 1))
            block = ops.sum(block * weight, axis=0)
            total = block if total is None else total + block
        if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            total = total + ops.cast(layer.bias, total.dtype)
        return total

    def _masked_parts(self, values, table, valid):
        """Each module's contribution as one convolution (or matrix product) of all channels
        with the kernel masked to the module's rows, the modules side by side as output
        channels: for wide modules, this beats gathering each module's channels."""
        ops, taps = keras.ops, self.plan.taps
        kernel = taps.kernel()
        num_channels, outputs = int(kernel.shape[-2]), int(kernel.shape[-1])
        masks = ops.sum(ops.one_hot(table, num_channels, dtype=kernel.dtype)
                        * valid[..., None], axis=1)                                  # [M, C]
        block = ops.einsum("...co,mc->...cmo", kernel, masks)
        block = ops.reshape(block, tuple(kernel.shape[:-1]) + (self.num_masks * outputs,))
        if taps.kind == "flat_dense":
            flat = ops.reshape(values, (int(values.shape[0]), -1))
            y = ops.matmul(flat, ops.reshape(block, (-1, self.num_masks * outputs)))
        elif not taps.kernel_size:
            y = ops.matmul(values, block)
        else:
            y = conv_padded(values, block, taps.pads, taps.strides, taps.dilations)
        spatial = tuple(int(d) for d in y.shape[1:-1])
        y = ops.reshape(y, (-1,) + spatial + (self.num_masks, outputs))
        count = len(spatial)
        y = ops.transpose(y, (count + 1, 0) + tuple(range(1, count + 1)) + (count + 2,))
        parts = taps.finish(ops.reshape(y, (-1,) + spatial + (outputs,)))
        return ops.reshape(parts, (self.num_masks, -1) + tuple(parts.shape[1:]))

    def _glue(self, values, classes, scale, mixed, base, source, table, valid, kernel,
              contributions):
        ops = keras.ops
        # which channels differ between base and source: from the per-sample classes of exactly
        # equal channel values (_channel_classes), without reading the values
        differs = ops.cast(ops.not_equal(ops.take(classes, source, axis=0),
                                         ops.take(classes, base, axis=0)), "float32")   # [P, C]
        if self.plan.kind == "generic":   # table holds the masks [M, C]
            x_base = ops.take(values, base, axis=0)
            delta = ops.take(values, source, axis=0) - x_base
            present = ops.max(differs[None] * table[:, None], axis=-1) > 0
            expand = (slice(None), None) + (None,) * (len(delta.shape) - 2)
            hybrids = x_base[None] + table[expand] * delta[None]
            return self._absorb(ops.reshape(hybrids, (-1,) + tuple(x_base.shape[1:]))), present
        present = ops.take(differs, ops.reshape(table, (-1,)), axis=-1)
        present = ops.reshape(present, (-1,) + tuple(table.shape)) * valid[None]
        present = ops.transpose(ops.max(present, axis=-1), (1, 0)) > 0          # [M, P]
        if self.precomputed:   # base's output less its part, plus the source's part
            parts = contributions
            hybrids = (ops.take(mixed, base, axis=0)[None] - ops.take(parts, base, axis=1)
                       + ops.take(parts, source, axis=1))
        else:
            delta = ops.take(values, source, axis=0) - ops.take(values, base, axis=0)
            if self.scaled:   # a per-sample channel scale before the mixing layer: the base's
                delta = delta * ops.take(scale, base, axis=0)
            change = self._contribute(delta, table, self._rows(table, valid, kernel))
            hybrids = ops.take(mixed, base, axis=0)[None] + change
        shape = tuple(hybrids.shape[2:])
        return self._absorb(ops.reshape(hybrids, (-1,) + shape)), present

    def _glue_forward(self, values, index):
        return self._absorb(keras.ops.take(values, index, axis=0))

    def _step(self, base, source, weights, values, classes, scale, mixed, originals, table,
              valid, contributions, carried, shared):
        ops = keras.ops
        # the kernel is read outside the fused glue: under a tf.distribute strategy (no XLA
        # for the step) the variables live on another device than the replica
        kernel = (self.plan.taps.kernel() if self.plan.taps is not None and not self.precomputed
                  else valid)
        kernel = ops.copy(kernel)   # a tensor: a (Keras or TF) variable is no tf.function argument
        hybrids, present = self.glue(values, classes, scale, mixed, base, source, table, valid,
                                     kernel, contributions)
        carried = [_tile(ops.take(c, base, axis=0), self.num_masks) for c in carried]
        outputs = self._downstream(hybrids, carried, shared)
        return self.reduce(outputs, originals, base, present, weights)

    def _forward(self, index, values, carried, shared):
        hybrids = self.glue_forward(values, index)
        carried = [keras.ops.take(c, index, axis=0) for c in carried]
        return self._downstream(hybrids, carried, shared)

    def _reduce(self, outputs, originals, base, present, weights):
        """Sums over the pairs of |hybrid - original| (or of hybrid, hybrid^2): [M, ...]."""
        ops = keras.ops
        originals = ops.take(originals, base, axis=0)   # fused with its use under XLA
        outputs = ops.reshape(outputs, (self.num_masks, -1) + tuple(outputs.shape[1:]))
        expand = (slice(None), slice(None)) + (None,) * (len(outputs.shape) - 2)
        if self.statistic == "mean_abs":
            difference = ops.abs(outputs - originals[None])
            if self.reduce_color:
                difference = ops.mean(difference, axis=-1)
                expand = expand[:-1]
            scale = ops.cast(present, outputs.dtype) * weights[None]
            return (ops.sum(difference * scale[expand], axis=1),)
        hybrids = ops.where(present[expand], outputs, originals[None])
        scale = weights[None][expand]
        return ops.sum(hybrids * scale, axis=1), ops.sum(ops.square(hybrids) * scale, axis=1)


# ----------------------------------------------------------------------------- the driver

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


def _ready(value):
    """Wait until ``value`` is computed (asynchronous backends); the time then."""
    keras.ops.convert_to_numpy(keras.ops.reshape(value, (-1,))[:1])
    return time.time()


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


def _padded(indices, size):
    """``indices`` padded with zeros to ``size``, and weights 1 (real) / 0 (padding)."""
    weights = np.zeros(size, dtype="float32")
    weights[:len(indices)] = 1.0
    return np.concatenate([indices, np.zeros(size - len(indices), dtype=indices.dtype)]), weights


def _step_shape(num_maps, num_pairs, batch_size):
    """(maps, pairs) per step, at most ``batch_size`` hybrids: many maps of few pairs (a step
    gathers each pair's values once for all its maps), at least 16 pairs when there are."""
    pairs = min(num_pairs, batch_size, max(16, batch_size // num_maps))
    return max(1, min(num_maps, batch_size // pairs)), pairs


def influence_maps(model, at, z, channels=None, statistic="mean_abs", num_pairs=None, seed=0,
                   batch_size=None, keep_color=False, method="auto", strategy=None,
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
            images for a VAE); a list of arrays for a model with several inputs. Arrays already
            on the device (backend tensors) are fine.
        channels: None for one elementary map per channel (E = {c}); else a list of modules.
        statistic: "mean_abs" (ICLR 2020 eq. 2) or "variance" (2019 draft).
        num_pairs: pairs (z1, z2) to average over; default ``len(z)``. See the module
            docstring for how they are drawn from ``seed``.
        batch_size: hybrids per downstream call (maps x pairs of one step); None: as many as
            keep the step's largest tensor after the cut within 128 MiB, at most 1024 (512
            for the face DCGAN's ``main.8``; 2 for MobileStyleGAN's ``LeakyRelu_342``, whose
            512-px layers take 64 MiB a hybrid); for modules over several layers, as
            :func:`tfcf.intervene` sizes a call. Memory grows with it, not with the pairs.
        keep_color: return ``[num_maps, H, W, colours]`` instead of averaging colours.
        method: "auto" (linear shortcut when possible), "generic" or "linear" (the shortcut,
            or an error saying why not).
        strategy: a ``tf.distribute.Strategy``; each batch of pairs is split across its
            replicas and the partial sums are added (TensorFlow backend).
        progress: show a progress bar (hybrids done, hybrids per second).
        return_record: also return an :class:`InfluenceRecord` (method taken, batch sizes,
            seconds): ``maps, record = influence_maps(..., return_record=True)``.

    Returns:
        The maps ``[num_maps, H, W]`` (``[num_maps, H, W, colours]`` with ``keep_color``); with
        ``return_record``, the pair ``(maps, record)``.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; valid: {', '.join(STATISTICS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    check_batch_size(batch_size)
    graph = flat_graph(model)
    z = ([keras.ops.convert_to_numpy(v) for v in z] if isinstance(z, (list, tuple))
         else keras.ops.convert_to_numpy(z))
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
        if batch_size is None:   # each step is a tfcf.intervene call on base and source
            batch_size = default_batch(graph, copies=2)
        maps = _multi_layer_maps(model, list(at), channels, inputs, input_flags, base_index,
                                 source_index, statistic, batch_size, keep_color, progress)
        if not return_record:
            return maps
        return maps, InfluenceRecord(
            method="intervene", num_maps=len(maps), num_pairs=num_pairs,
            hybrids=len(maps) * num_pairs, maps_per_step=1,
            pairs_per_step=min(num_pairs, batch_size), seconds=time.time() - started,
            backend=_backend())

    cut = graph.resolve(at)
    for tid in cut:
        if not graph.batched(tid):
            spec = graph.specs[tid]
            raise ValueError(
                f"layer {at!r} gives {spec.description} of shape {spec.shape}, without the batch "
                "axis: one value shared by every sample, so it has no influence map; choose a "
                "layer whose output has the batch axis")
    plan = _plan(graph, at, method)
    if batch_size is None:   # the step's largest tensor after the hybrids within 128 MiB
        batch_size = default_batch(plan.rest, most=_MAX_STEP)
    num_channels = int(graph.specs[cut[-1]].shape[-1]) if len(cut) == 1 else None
    # Only the samples some pair uses go through the model (few pairs of many samples).
    used, inverse = np.unique(np.concatenate([base_index, source_index]), return_inverse=True)
    if len(used) < num_samples:
        inputs = _rows(inputs, used, input_flags)
        base_index, source_index = inverse[:num_pairs], inverse[num_pairs:]
        num_samples = len(used)
    # Each part runs once per sample: head -> swap point (-> mixing layer output). Values
    # without a batch axis (model inputs shared by the batch) are passed whole, never indexed.
    if _native(flat_graph(plan.head)):
        states = _runner(plan.head)(inputs, batch_size, plan.flags[0], plan.flags[1])
    else:   # foreign layers (hub modules, imported graphs): their own predict
        states = _predict(plan.head, inputs, batch_size, plan.flags[0], plan.flags[1])
    if num_channels is None:
        num_channels = int(states[0].shape[-1])
    masks = _modules(channels, num_channels, at)
    num_maps = len(masks)
    masks_per_step, pairs_per_step = _step_shape(num_maps, num_pairs, batch_size)
    reduce_color = statistic == "mean_abs" and not keep_color
    shape = tuple(output_spec.shape[1:-1 if reduce_color else None])
    accumulator = _Accumulator(statistic, num_maps, shape)

    tensor = keras.ops.convert_to_tensor
    values = tensor(states[0])
    scale = tensor(np.ones((1,), dtype="float32"))   # no per-sample scale: unused
    if plan.scale_index is not None:   # the swap point's values without the per-sample scale
        values = plan.unscaled(values)
        scale = keras.ops.reshape(tensor(states[plan.scale_index]), (num_samples,) + (1,) * (
            len(values.shape) - 2) + (int(values.shape[-1]),))
    classes = tensor(_channel_classes(keras.ops.convert_to_numpy(values)))
    width = 0
    if plan.kind == "linear":
        table, valid = _module_table(masks)
        width = table.shape[1]
    # Modules of several channels, with at least as many pairs as samples: each module's part
    # of the mixing layer's output is computed once per sample (a block of modules at a time,
    # within _PRECOMPUTED_BYTES) and each hybrid is output(base) - part(base) + part(source):
    # no arithmetic per hybrid. A step then takes many pairs of few modules, in the order of
    # their bases, so that a base's output and part are read from the cache by the pairs that
    # share it (the order of the pairs changes only the order of the sums). When the modules
    # partition the layer's channels (NMF modules do) and all their parts fit, the mixing
    # layer's output itself is the sum of the parts and the bias: no pass through the layer.
    # Otherwise each pair's difference goes through the module's kernel rows.
    precomputed = from_parts = False
    if plan.kind == "linear" and width > 1 and num_samples <= num_pairs and (
            plan.scale_index is None):   # a scale: a module's part depends on the base
        per_module = num_samples * math.prod(int(d) for d in plan.middle.outputs[0].shape[1:])
        fits = max(0, _PRECOMPUTED_BYTES // max(1, 4 * per_module))
        if fits >= 1:
            precomputed = True
            pairs_per_step = min(num_pairs, batch_size)
            masks_per_step = max(1, min(num_maps, fits, batch_size // pairs_per_step))
            order = np.lexsort((source_index, base_index))
            base_index, source_index = base_index[order], source_index[order]
            from_parts = (fits >= num_maps and bool(np.all(masks.sum(axis=0) == 1))
                          and len(plan.middle.inputs) == 1 and len(plan.middle.outputs) == 1)
    # XLA fuses the hybrids' formation; not under a strategy (variables on another device)
    xla = strategy is None
    key = (at, plan.kind, statistic, reduce_color, masks_per_step, width, pairs_per_step, xla,
           precomputed, plan.scale_index)
    engine = _Engine.get(model, key, plan, statistic, reduce_color, masks_per_step,
                         pairs_per_step, xla, precomputed)
    # (maps, the maps padded to masks_per_step) of each step's block of maps; precomputed parts:
    # the widest modules first, so that a block's modules are of similar sizes
    order = (np.argsort(-masks.sum(axis=1), kind="stable") if precomputed
             else np.arange(num_maps))
    blocks = []
    for first, last in _index_ranges(num_maps, masks_per_step):
        rows = order[first:last]
        blocks.append((rows, np.concatenate([rows, np.full(masks_per_step - len(rows),
                                                           rows[-1])])))
    parts, parts_seconds = {}, 0.0
    if from_parts:
        before = time.time()
        for index, (_, padded) in enumerate(blocks):
            parts[index] = engine.contributions(values, masks[padded])
        weights = [(np.arange(masks_per_step) < len(rows)).astype("float32")
                   for rows, _ in blocks]
        downstream = [engine.assemble([parts[i] for i in range(len(blocks))], weights)]
        parts_seconds = _ready(downstream[0]) - before
    elif plan.kind == "linear":
        downstream = _runner(plan.middle)(states, batch_size, plan.flags[1], plan.flags[2])
    else:
        downstream = states
    upfront_parts = parts_seconds
    mixed = tensor(downstream[0]) if plan.kind == "linear" else values
    carried, shared = _split_shared(downstream[1:], plan.flags[-1][1:])
    carried = [tensor(c) for c in carried]
    # The originals through the same compiled code as the hybrids, in steps of the same size.
    chunk = masks_per_step * pairs_per_step
    originals = []
    for start, stop in _index_ranges(num_samples, chunk):
        index, _ = _padded(np.arange(start, stop, dtype="int32"), chunk)
        originals.append(engine.forward(index, mixed, carried, shared)[: stop - start])
    originals = keras.ops.concatenate(originals) if len(originals) > 1 else originals[0]
    per_sample_done = _ready(originals)

    replicas = _Replicas(strategy)
    with progress_bar(num_maps * num_pairs, progress, f"influence maps ({num_maps})",
                      "hybrid") as bar:
        done = 0   # maps finished
        for index, (rows, padded) in enumerate(blocks):
            if plan.kind == "linear":
                modules = (table[padded], valid[padded])
                if precomputed:
                    if index not in parts:
                        before = time.time()
                        parts[index] = engine.contributions(values, masks[padded])
                        parts_seconds += _ready(parts[index]) - before
                    modules += (parts.pop(index),)
                else:
                    modules += (modules[1],)
            else:
                modules = (masks[padded], np.zeros((masks_per_step, 1), dtype="float32"))
                modules += (modules[1],)
            totals = None
            for start, stop in _index_ranges(num_pairs, pairs_per_step):
                base, weights = _padded(base_index[start:stop].astype("int32"), pairs_per_step)
                source, _ = _padded(source_index[start:stop].astype("int32"), pairs_per_step)
                arguments = ((base, source, weights, values, classes, scale, mixed, originals)
                             + modules + (carried, shared))
                partial = replicas.run(engine.step, arguments, split_args=(0, 1, 2))
                totals = partial if totals is None else [t + p for t, p in zip(totals, partial)]
                bar.update(len(rows) * (stop - start))
            partial = [np.asarray(keras.ops.convert_to_numpy(t))[: len(rows)] for t in totals]
            accumulator.add(rows, partial, num_pairs)
            done += len(rows)
            bar.set_postfix_str(f"maps {done}/{num_maps}")
    finished = time.time()
    maps = accumulator.result().astype("float32")
    if not reduce_color and not keep_color:
        maps = maps.mean(axis=-1)
    if not return_record:
        return maps
    record = InfluenceRecord(
        method=plan.kind, num_maps=num_maps, num_pairs=num_pairs,
        hybrids=num_maps * num_pairs, maps_per_step=masks_per_step,
        pairs_per_step=pairs_per_step, seconds=time.time() - started,
        shortcut=None if plan.shortcut is None else graph.name_of(plan.shortcut.op),
        backend=_backend(), samples=num_samples,
        seconds_per_sample=per_sample_done - started - upfront_parts,
        seconds_parts=parts_seconds,
        seconds_steps=finished - per_sample_done - (parts_seconds - upfront_parts))
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
