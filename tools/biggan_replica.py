"""A stand-in for TF-Hub's deepmind/biggan-deep-256/1: its graph, names and sizes, random weights.

    python tools/biggan_replica.py --outdir /tmp/biggan          # 256 px, full width: 236 MiB, 25 s
    python tools/biggan_replica.py --outdir /tmp/biggan8 --channels 8   # same graph, 16x narrower
    python tools/biggan_replica.py --outdir /tmp/biggan --bench 5       # Gblock 5's maps: ~5 min
    python tools/biggan_replica.py --outdir /tmp/biggan --bench 5 --bench-convs 2   # conv2 only
    python tools/biggan_replica.py --outdir /tmp/biggan --classifier /tmp/classifier

The five BigGAN commands on it, tiny settings, one shared hybrid set (Gblock 11: the cheapest
tail), the miniature classifier of tests/hub_fixtures.py (random, 224 px) written by
``--classifier``; 4 min on 2 shared cores, 3 of them in fig5 (which makes the hybrid set):

    S="--biggan /tmp/biggan --blocks 11 --samples 4 --pairs 1 --examples 1 --k 2 --pair koala,teddy"
    C="--classifier resnet_v2_50=/tmp/classifier"
    tfcf fig5 $S --outdir /tmp/replica_figs/fig5
    tfcf fig6 $S $C --outdir /tmp/replica_figs/fig6
    tfcf fig14 $S $C --outdir /tmp/replica_figs/fig14
    tfcf fig16 $S $C --outdir /tmp/replica_figs/fig16
    tfcf table3 $S $C --block 11 --count 2 --outdir /tmp/replica_figs/table3

Measured with ``--bench 5`` (2 cores, background jobs paused, matmul 205 GFLOP/s): a hybrid
downstream of Gblock 5's conv1 or conv2 (70 GFLOP) takes 0.39 s, so the default elementary maps
of one Gblock (2 x 256 channels x 64 pairs, 2.31 PFLOP) take 3.6 h; peak memory 6.1 GB.

The real module cannot be downloaded here, so tfcf's BigGAN code (graph cutting, pruning,
hybrids) is proved on this replica: a TF1 Hub-format module (signature "default": z [B, 128],
y [B, 1000], scalar truncation -> images [B, 256, 256, 3] in [-1, 1]) that has the real
module's structure, variable names and tensor sizes, with random weights. Nothing of it is
committed: build it into a folder when needed.

Taken from public descriptions of the module (huggingface/pytorch-pretrained-BigGAN: its
``convert_tf_to_pytorch.py`` maps every TF variable, ``model.py`` is written "from the
computational graph of the TF Hub module"):

- 12 Gblocks ``Generator/GBlock``, ``GBlock_1``..``GBlock_11``; (upsample, in, out) in units of
  ``--channels`` (128 in the module): (no,16,16) (up,16,16) (no,16,16) (up,16,8) (no,8,8)
  (up,8,8) (no,8,8) (up,8,4) (no,4,4) (up,4,2) (no,2,2) (up,2,1); the self-attention block
  ``Generator/attention`` before GBlock_8 (64x64, 4 units): 1x1 convs ``theta``, ``phi``
  (channels / 8), ``g`` (channels / 2), ``o_conv``, 2x2 max-pooled phi and g, ``gamma``.
- Gblock: BN-ReLU-conv0 (1x1, in -> in / 4) -> BN-ReLU-[nearest 2x]-conv1 (3x3) -> BN-ReLU-conv2
  (3x3) -> BN-ReLU-conv3 (1x1, -> out); skip: the first ``out`` channels, upsampled, added.
- Batch norms ``BatchNorm``..``BatchNorm_3`` conditional on concat(z, embedding(y)) (256 values):
  ``(x - mean) / sqrt(var + 1e-4) * (1 + cond @ scale) + cond @ offset``, ``scale/w`` and
  ``offset/w`` spectrally normalised; the final ``Generator/BatchNorm`` has plain
  ``scale``/``offset``; statistics for 51 truncation values 0, 0.02, .., 1, interpolated.
- Every ``w`` is spectrally normalised in the graph with its ``u0`` [1, out]: one power
  iteration v = n(u0 W^T), u = n(v W), W / (v W u^T), W reshaped to [-1, out], epsilon 1e-4.
- ``Generator/GenZ/G_linear`` (256 -> 4 x 4 x 16 units, bias, SN), ``linear/w`` (1000 -> 128, no
  SN, no bias), ``Generator/conv_to_rgb`` (3x3, 1 unit -> 1 unit, bias) of which the first 3
  channels go through tanh.
- Stored variables ``<layer>/w/ema_0.9999``, ``<layer>/b/ema_0.9999``, ``<layer>/u0``,
  ``Generator/attention/gamma/ema_0.9999``, ``Generator/BatchNorm/{scale,offset}/ema_0.9999``.
- The statistics tables are graph tensors, not variables: the converter reads
  ``module_apply_default/stack_<10i+1>``, ``<10i+3>``, ``<10i+6>``, ``<10i+8>`` (mean, var of two
  batch norms per 10 ``stack`` ops, Gblock order, then the final batch norm) with no input fed.
- The forward ops live in name scope ``Generator_1`` while the variables are ``Generator/..``
  (a graph dump of the hub module reads ``module_apply_default/Generator_1/GenZ/G_linear/add_8``):
  the bias of a layer is an ``add_<n>`` after the spectral-norm ops of its scope, not a BiasAdd.

Guessed (no public source): the three other ``stack`` ops of each batch norm (here: the two
table indices, the two interpolation weights, the interpolated [mean, var]); how the tables are
stored (51 constants stacked); the exact spectral-norm epsilon placement (here n(x) = x /
(|x| + eps)); the embedding op names (``linear_1/MatMul``); gamma's shape ([1], which the
converter's shape check implies). The weights are random: u0 is close to the leading singular
vector (as after training), and the statistics are measured on replica samples at truncations
0.1, 0.5 and 1 ("standing statistics"), interpolated between them and jittered per grid point,
so that activations keep their scale and every truncation value has its own statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HANDLE = "https://tfhub.dev/deepmind/biggan-deep-256/1"
Z_DIM = 128
EMBED_DIM = 128
NUM_CLASSES = 1000
N_STATS = 51
EPS = 1e-4
EMA = "ema_0.9999"
# (upsample, in, out) in units of `channels`, biggan-deep-256
LAYERS = ((False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
          (True, 8, 8), (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2),
          (True, 2, 1))
ATTENTION_BEFORE = 8
CALIBRATION_TRUNCATIONS = (0.1, 0.5, 1.0)


def block_scope(index):
    return "GBlock" if index == 0 else f"GBlock_{index}"


def bn_scope(index):
    return "BatchNorm" if index == 0 else f"BatchNorm_{index}"


def blocks(channels=128):
    """Per Gblock: dict(up, fan_in, fan_out, middle, size) with size the output width in px."""
    size, out = 4, []
    for up, fan_in, fan_out in LAYERS:
        size *= 2 if up else 1
        out.append(dict(up=up, fan_in=fan_in * channels, fan_out=fan_out * channels,
                        middle=fan_in * channels // 4, size=size))
    return out


def batchnorms(channels=128):
    """The 49 batch norms in graph order: (scope prefix, channels, conditional)."""
    out = []
    for index, block in enumerate(blocks(channels)):
        for bn, width in enumerate([block["fan_in"]] + [block["middle"]] * 3):
            out.append((f"Generator/{block_scope(index)}/{bn_scope(bn)}", width, True))
    out.append(("Generator/BatchNorm", channels, False))
    return out


def variable_shapes(channels=128):
    """Every stored variable of the module, name -> shape, in the converter's order."""
    if channels < 2 or channels % 2:
        raise ValueError(f"channels must be an even number >= 2 (the attention block keeps "
                         f"channels / 2 of 4 units / 8), got {channels}")
    cond = Z_DIM + EMBED_DIM
    shapes = {f"linear/w/{EMA}": (NUM_CLASSES, EMBED_DIM)}

    def layer(prefix, w_shape, bias=True):
        shapes[f"{prefix}/w/{EMA}"] = tuple(w_shape)
        if bias:
            shapes[f"{prefix}/b/{EMA}"] = (w_shape[-1],)
        shapes[f"{prefix}/u0"] = (1, w_shape[-1])

    layer("Generator/GenZ/G_linear", (cond, 4 * 4 * LAYERS[0][1] * channels))
    for index, block in enumerate(blocks(channels)):
        scope = f"Generator/{block_scope(index)}"
        for bn, width in enumerate([block["fan_in"]] + [block["middle"]] * 3):
            for name in ("offset", "scale"):
                layer(f"{scope}/{bn_scope(bn)}/{name}", (cond, width), bias=False)
        middle = block["middle"]
        for conv, shape in enumerate([(1, 1, block["fan_in"], middle), (3, 3, middle, middle),
                                      (3, 3, middle, middle), (1, 1, middle, block["fan_out"])]):
            layer(f"{scope}/conv{conv}", shape)
    width = blocks(channels)[ATTENTION_BEFORE]["fan_in"]
    shapes[f"Generator/attention/gamma/{EMA}"] = (1,)
    for name, fan_in, fan_out in (("g", width, width // 2), ("o_conv", width // 2, width),
                                  ("phi", width, width // 8), ("theta", width, width // 8)):
        layer(f"Generator/attention/{name}", (1, 1, fan_in, fan_out), bias=False)
    shapes[f"Generator/BatchNorm/offset/{EMA}"] = (channels,)
    shapes[f"Generator/BatchNorm/scale/{EMA}"] = (channels,)
    layer("Generator/conv_to_rgb", (3, 3, channels, channels))
    return shapes


def multiply_adds(channels=128):
    """Multiply-adds per sample of each layer in forward order: [(name, count)], 256 px."""
    out, cond = [], Z_DIM + EMBED_DIM
    out.append(("Generator/GenZ/G_linear", cond * 16 * LAYERS[0][1] * channels))
    size_in = 4
    for index, block in enumerate(blocks(channels)):
        if index == ATTENTION_BEFORE:
            width, pixels = block["fan_in"], size_in * size_in
            convs = pixels * width * (width // 8 * 2 + width // 2) + pixels * width // 2 * width
            attention = pixels * (pixels // 4) * (width // 8 + width // 2)
            out.append(("Generator/attention", convs + attention))
        scope = f"Generator/{block_scope(index)}"
        middle, size = block["middle"], block["size"]
        bn_linears = 2 * cond * (block["fan_in"] + 3 * middle)
        out.append((f"{scope}/conv0", size_in ** 2 * block["fan_in"] * middle + bn_linears))
        out.append((f"{scope}/conv1", size ** 2 * 9 * middle * middle))
        out.append((f"{scope}/conv2", size ** 2 * 9 * middle * middle))
        out.append((f"{scope}/conv3", size ** 2 * middle * block["fan_out"]))
        size_in = size
    out.append(("Generator/conv_to_rgb", size_in ** 2 * 9 * channels * channels))
    return out


def downstream_multiply_adds(block, conv, channels=128):
    """Multiply-adds per sample after the output of conv ``conv`` of Gblock ``block``."""
    layers = multiply_adds(channels)
    names = [name for name, _ in layers]
    start = names.index(f"Generator/{block_scope(block)}/conv{conv}") + 1
    return sum(count for _, count in layers[start:])


# ------------------------------------------------------------------------------- weights


def _leading_left_vector(matrix, rng, iterations=30):
    """u [1, out] close to the leading singular direction of matrix [n, out] (trained u0)."""
    u = rng.normal(size=(1, matrix.shape[1]))
    for _ in range(iterations):
        v = u @ matrix.T
        v /= np.linalg.norm(v)
        u = v @ matrix
        u /= np.linalg.norm(u)
    u = u + 0.05 * rng.normal(size=u.shape) / np.sqrt(u.size)
    return (u / np.linalg.norm(u)).astype("float32")


def make_weights(channels=128, seed=0):
    """Random weights keyed by the module's variable names (float32 NumPy arrays)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in variable_shapes(channels).items():
        if name.endswith("/u0"):
            continue
        if name == f"linear/w/{EMA}":
            value = rng.normal(0.0, 0.5, shape)
        elif name == f"Generator/attention/gamma/{EMA}":
            value = np.full(shape, 0.7)
        elif name == f"Generator/BatchNorm/scale/{EMA}":
            value = rng.uniform(0.8, 1.2, shape)
        elif name.endswith(f"/b/{EMA}") or name == f"Generator/BatchNorm/offset/{EMA}":
            value = rng.normal(0.0, 0.05, shape)
        else:
            value = rng.normal(0.0, 1.0, shape)
        weights[name] = value.astype("float32")
    for name in variable_shapes(channels):
        if name.endswith("/u0"):
            w = weights[name[: -len("u0")] + f"w/{EMA}"]
            weights[name] = _leading_left_vector(w.reshape(-1, w.shape[-1]).astype("float64"),
                                                 rng)
    return weights


# ------------------------------------------------------------------------- the generator


def generator(z, y, truncation, read, statistics):
    """The forward graph (TensorFlow ops, graph or eager mode) under the module's name scopes.

    ``read(name)`` gives the tensor of a stored variable; ``statistics(prefix, x)`` gives the
    (mean, var) of batch norm ``prefix`` for input ``x``.
    """
    import tensorflow as tf

    channels = int(read("Generator/conv_to_rgb/b/" + EMA).shape[-1])

    def normalise(x):
        return x / (tf.sqrt(tf.reduce_sum(tf.square(x))) + EPS)

    def spectral(prefix):
        w = read(f"{prefix}/w/{EMA}")
        matrix = tf.reshape(w, [-1, w.shape[-1]])
        v = normalise(tf.matmul(read(f"{prefix}/u0"), matrix, transpose_b=True))
        u = normalise(tf.matmul(v, matrix))
        sigma = tf.matmul(tf.matmul(v, matrix), u, transpose_b=True)
        return w / sigma

    def conv(prefix, x, bias=True):
        with tf.name_scope(prefix.rsplit("/", 1)[1]):
            out = tf.nn.conv2d(x, spectral(prefix), 1, "SAME")
            return out + read(f"{prefix}/b/{EMA}") if bias else out

    def batchnorm(prefix, x, cond):
        with tf.name_scope(prefix.rsplit("/", 1)[1]):
            mean, var = statistics(prefix, x)
            normalised = (x - mean) * tf.math.rsqrt(var + EPS)
            if cond is None:
                return normalised * read(f"{prefix}/scale/{EMA}") + read(f"{prefix}/offset/{EMA}")
            with tf.name_scope("scale"):
                scale = 1.0 + tf.matmul(cond, spectral(f"{prefix}/scale"))
            with tf.name_scope("offset"):
                offset = tf.matmul(cond, spectral(f"{prefix}/offset"))
            return normalised * scale[:, None, None, :] + offset[:, None, None, :]

    def upsample(x):
        _, height, width, depth = x.shape
        x = tf.reshape(x, [-1, height, 1, width, 1, depth])
        x = tf.tile(x, [1, 1, 2, 1, 2, 1])
        return tf.reshape(x, [-1, 2 * height, 2 * width, depth])

    def attention(x):
        prefix = "Generator/attention"
        _, height, width, depth = x.shape
        with tf.name_scope("attention"):
            pool = lambda t: tf.nn.max_pool2d(t, 2, 2, "VALID")  # noqa: E731
            theta = tf.reshape(conv(f"{prefix}/theta", x, bias=False),
                               [-1, height * width, depth // 8])
            phi = tf.reshape(pool(conv(f"{prefix}/phi", x, bias=False)),
                             [-1, height * width // 4, depth // 8])
            attend = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True))
            g = tf.reshape(pool(conv(f"{prefix}/g", x, bias=False)),
                           [-1, height * width // 4, depth // 2])
            attended = tf.reshape(tf.matmul(attend, g), [-1, height, width, depth // 2])
            return x + read(f"{prefix}/gamma/{EMA}") * conv(f"{prefix}/o_conv", attended,
                                                            bias=False)

    with tf.name_scope("linear"):
        embedded = tf.matmul(y, read(f"linear/w/{EMA}"))
    cond = tf.concat([z, embedded], axis=1)
    with tf.name_scope("Generator"):
        with tf.name_scope("GenZ"), tf.name_scope("G_linear"):
            h = tf.matmul(cond, spectral("Generator/GenZ/G_linear"))
            h = h + read(f"Generator/GenZ/G_linear/b/{EMA}")
        h = tf.reshape(h, [-1, 4, 4, LAYERS[0][1] * channels])
        for index, block in enumerate(blocks(channels)):
            if index == ATTENTION_BEFORE:
                h = attention(h)
            scope = f"Generator/{block_scope(index)}"
            with tf.name_scope(block_scope(index)):
                skip = h
                for layer in range(4):
                    h = tf.nn.relu(batchnorm(f"{scope}/{bn_scope(layer)}", h, cond))
                    if layer == 1 and block["up"]:
                        h = upsample(h)
                    h = conv(f"{scope}/conv{layer}", h)
                skip = skip[..., : block["fan_out"]]
                h = h + (upsample(skip) if block["up"] else skip)
        h = tf.nn.relu(batchnorm("Generator/BatchNorm", h, None))
        h = conv("Generator/conv_to_rgb", h)
        return tf.tanh(h[..., :3])


def statistics_tables(weights, channels, seed=0, samples=4):
    """Standing statistics: {prefix: (means [51, C], vars [51, C])}, measured on replica samples.

    The batch moments of every batch-norm input are measured (each batch norm normalising with
    its own batch moments, as in training) at truncations 0.1, 0.5 and 1, interpolated
    linearly over the 51 grid values and jittered by up to 1% per grid value.
    """
    import tensorflow as tf
    from tfcf.biggan import truncated_z

    rng = np.random.default_rng(seed + 1)
    constants = {}

    def read(name):
        if name not in constants:
            constants[name] = tf.constant(weights[name])
        return constants[name]

    groups = len(CALIBRATION_TRUNCATIONS)
    z = np.concatenate([truncated_z(samples, Z_DIM, truncation, seed=seed + position)
                        for position, truncation in enumerate(CALIBRATION_TRUNCATIONS)])
    y = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, len(z))]
    measured = {}

    def moments(prefix, x):   # each group of samples normalised by its own batch moments
        grouped = tf.reshape(x, [groups, samples] + list(x.shape[1:]))
        mean, var = tf.nn.moments(grouped, axes=[1, 2, 3])              # [groups, C]
        measured[prefix] = (mean.numpy(), var.numpy())
        expand = lambda t: tf.repeat(t, samples, axis=0)[:, None, None, :]  # noqa: E731
        return expand(mean), expand(var)

    generator(tf.constant(z), tf.constant(y), tf.constant(0.0), read, moments)
    grid = np.linspace(0.0, 1.0, N_STATS)
    tables = {}
    for prefix, width, _ in batchnorms(channels):
        pair = []
        for kind in range(2):
            values = measured[prefix][kind]                      # [groups, C]
            table = np.stack([np.interp(grid, CALIBRATION_TRUNCATIONS, values[:, c])
                              for c in range(width)], axis=1)
            jitter = 0.01 * rng.uniform(-1.0, 1.0, table.shape)
            pair.append((table + np.abs(table) * jitter).astype("float32"))
        tables[prefix] = tuple(pair)
    return tables


def interpolate(table, truncation):
    """A [51, C] statistics table at ``truncation`` (linear between grid values 0, 0.02, .., 1)."""
    position = float(truncation) * (N_STATS - 1)
    lower = int(np.clip(np.floor(position), 0, N_STATS - 2))
    fraction = position - lower
    return table[lower] * (1.0 - fraction) + table[lower + 1] * fraction


def build_replica(path, channels=128, seed=0, calibration_samples=4):
    """Write the replica module into ``path``; returns (weights, statistics tables).

        weights, tables = build_replica("/tmp/biggan8", channels=8)
        tfcf.biggan.load_biggan("/tmp/biggan8")
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    path = Path(path)
    if (path / "saved_model.pb").exists():
        raise FileExistsError(f"{path} already holds a saved model; choose an empty folder")
    weights = make_weights(channels, seed)
    tables = statistics_tables(weights, channels, seed, calibration_samples)
    graph = tf.Graph()
    with graph.as_default():
        z = v1.placeholder(tf.float32, [None, Z_DIM], name="z")
        y = v1.placeholder(tf.float32, [None, NUM_CLASSES], name="y")
        truncation = v1.placeholder(tf.float32, [], name="truncation")
        variables = {}
        for top in ("linear", "Generator"):
            with v1.variable_scope(top):
                for name, shape in variable_shapes(channels).items():
                    if name.startswith(top + "/"):
                        variables[name] = v1.get_variable(
                            name[len(top) + 1:], shape=shape, dtype=tf.float32,
                            initializer=v1.zeros_initializer(), use_resource=False)
        # the statistics: five top-level `stack` ops per batch norm, tables at +1 and +3
        position = truncation * float(N_STATS - 1)
        lower = tf.clip_by_value(tf.floor(position), 0.0, float(N_STATS - 2))
        fraction = position - lower
        lower = tf.cast(lower, tf.int32)
        stats = {}
        for prefix, _, _ in batchnorms(channels):
            indices = tf.stack([lower, lower + 1])
            means = tf.stack(tf.unstack(tf.constant(tables[prefix][0])))
            mixing = tf.stack([1.0 - fraction, fraction])
            variances = tf.stack(tf.unstack(tf.constant(tables[prefix][1])))
            pair = [tf.tensordot(mixing, tf.gather(table, indices), 1)
                    for table in (means, variances)]
            stats[prefix] = tf.stack(pair)
        images = generator(z, y, truncation, lambda name: variables[name],
                           lambda prefix, x: (stats[prefix][0], stats[prefix][1]))
        images = tf.identity(images, name="images")
        with v1.Session(graph=graph) as session:
            session.run([variable.initializer for variable in variables.values()],
                        {variable.initial_value: weights[name]
                         for name, variable in variables.items()})
            builder = v1.saved_model.Builder(str(path))
            signature = v1.saved_model.signature_def_utils.build_signature_def(
                inputs={name: v1.saved_model.utils.build_tensor_info(tensor)
                        for name, tensor in (("z", z), ("y", y), ("truncation", truncation))},
                outputs={"default": v1.saved_model.utils.build_tensor_info(images)},
                method_name="tensorflow/serving/predict")
            builder.add_meta_graph_and_variables(session, [], signature_def_map={
                "default": signature})
            builder.add_meta_graph(["train"], signature_def_map={"default": signature})
            builder.save()
    (path / "tfhub_module.pb").write_bytes(b"\x08\x03")  # ModuleDef{format: FORMAT_V3}
    (path / "replica.json").write_text(json.dumps({
        "replica_of": HANDLE, "channels": channels, "seed": seed,
        "parameters": int(sum(np.prod(s) for s in variable_shapes(channels).values()))}))
    return weights, tables


# ----------------------------------------------------------------------------- benchmark


def _peak_rss_gib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def matmul_gflops(size=2048, repeats=5):
    """This machine's float32 matmul rate through TensorFlow now, in GFLOP/s."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    tf.matmul(a, a).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        tf.matmul(a, a).numpy()
    return 2 * size ** 3 * repeats / (time.perf_counter() - started) / 1e9


def bench(path, block, truncation=0.5, samples=32, pairs=64, maps=2, batch_size=32,
          convs=(1, 2)):
    """Cost of Gblock ``block``'s elementary maps (of conv1 and conv2) on the module in ``path``.

    Runs :func:`tfcf.influence_maps` on ``maps`` channels of each conv over ``pairs`` pairs of
    ``samples`` samples, twice (the first run traces and warms up), and times each compiled
    step of the second run (``batch_size`` hybrids: with 2 maps, the step shape of a whole
    layer's maps). Seconds per hybrid: the median step over its hybrids; the rest of the run is
    the fixed part (head and originals of every sample). Scales both to every channel of the
    ``convs`` at 64 pairs and 64 samples (the figures' defaults, ``--samples 64 --pairs 64``),
    and counts the FLOPs of the same work (2 x the multiply-adds downstream of the cut per
    hybrid, 2 x those of a whole forward pass per sample). Also reports the peak resident
    memory and this machine's matmul rate before and after, measured in the same run (other
    processes share the CPU). ``convs=(1,)`` then ``(2,)`` in two processes splits the run
    (each conv's numbers stand alone; the totals add up).
    """
    import keras

    import tfcf.influence
    from tfcf.biggan import load_biggan
    from tfcf.influence import influence_maps

    convs = [int(c) for c in convs]
    if not convs or set(convs) - {1, 2}:
        raise ValueError(f"convs are among 1 and 2 (conv1, conv2), got {convs}")
    rate_before = matmul_gflops()
    biggan = load_biggan(str(path))
    channels = json.loads((Path(path) / "replica.json").read_text())["channels"]
    model = biggan.keras_model(block, truncation)
    rss_loaded = _peak_rss_gib()
    z, y = biggan.latents(["koala", "teddy"], max(1, samples // 2), truncation, seed=0)
    width = blocks(channels)[block]["middle"]
    forward_flop = 2 * sum(count for _, count in multiply_adds(channels))
    result = {"block": block, "channels": channels, "truncation": truncation,
              "samples": len(z), "pairs": pairs, "batch_size": batch_size,
              "maps_timed_per_conv": maps, "rss_after_load_gib": round(rss_loaded, 2),
              "forward_gflop_per_sample": round(forward_flop / 1e9, 1), "convs": {}}
    total_seconds, total_flop = 0.0, 0.0
    modules = [[c] for c in range(maps)]
    steps, run = [], tfcf.influence._Replicas.run

    def timed_run(self, step, arguments, split_args):   # each step, waited for
        started = time.perf_counter()
        out = run(self, step, arguments, split_args)
        [keras.ops.convert_to_numpy(t) for t in out]
        steps.append(time.perf_counter() - started)
        return out

    tfcf.influence._Replicas.run = timed_run
    try:
        for conv, layer in zip((1, 2), model.cut_layers):
            if conv not in convs:
                continue
            influence_maps(model, layer, [z, y], channels=modules, num_pairs=pairs,
                           batch_size=batch_size, progress=False)          # trace, warm up
            steps.clear()
            started = time.perf_counter()
            _, record = influence_maps(model, layer, [z, y], channels=modules, num_pairs=pairs,
                                       batch_size=batch_size, progress=False, return_record=True)
            seconds = time.perf_counter() - started
            step_hybrids = record.maps_per_step * record.pairs_per_step
            per_hybrid = float(np.median(steps)) / step_hybrids
            fixed = seconds - sum(steps)                              # head, originals
            flop = 2 * downstream_multiply_adds(block, conv, channels)
            conv_seconds = per_hybrid * width * 64 + fixed / len(z) * 64
            total_seconds += conv_seconds
            total_flop += flop * width * 64 + forward_flop * 64
            result["convs"][layer] = {
                "seconds": round(seconds, 1), "step_seconds": [round(t, 2) for t in steps],
                "maps_per_step": record.maps_per_step, "pairs_per_step": record.pairs_per_step,
                "seconds_per_hybrid": round(per_hybrid, 3),
                "fixed_seconds_per_sample": round(fixed / len(z), 3),
                "downstream_gflop_per_hybrid": round(flop / 1e9, 1),
                "gflop_per_second": round(flop / per_hybrid / 1e9, 1),
                "maps": width, "hours_all_maps_64_pairs": round(conv_seconds / 3600, 2)}
    finally:
        tfcf.influence._Replicas.run = run
    result["hours_these_convs_64_pairs"] = round(total_seconds / 3600, 2)
    result["pflop_these_convs_64_pairs"] = round(total_flop / 1e15, 3)
    result["peak_rss_gib"] = round(_peak_rss_gib(), 2)
    result["matmul_gflops_before_after"] = [round(rate_before, 1), round(matmul_gflops(), 1)]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\nThe real")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", required=True, help="Folder of the module (created).")
    parser.add_argument("--channels", type=int, default=128,
                        help="Channel unit (128 in biggan-deep-256; fewer for fast tests).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights.")
    parser.add_argument("--bench", type=int, metavar="GBLOCK", default=None,
                        help="Time the elementary maps of this Gblock on the module in --outdir "
                             "(built first when missing) and print JSON.")
    parser.add_argument("--bench-maps", type=int, default=2, help="Channels timed per conv.")
    parser.add_argument("--bench-pairs", type=int, default=64, help="Pairs per timed map.")
    parser.add_argument("--bench-samples", type=int, default=32,
                        help="Samples the timed pairs are drawn from.")
    parser.add_argument("--bench-convs", default="1,2",
                        help="Convs timed: 1,2 or one of them (a run per conv is shorter).")
    parser.add_argument("--batch-size", type=int, default=32, help="Hybrids per tail call.")
    parser.add_argument("--classifier", metavar="DIR", default=None,
                        help="Also write the miniature ImageNet classifier of "
                             "tests/hub_fixtures.py (TF2 SavedModel, 224 px, random weights) "
                             "into DIR, for --classifier resnet_v2_50=DIR.")
    args = parser.parse_args(argv)
    outdir = Path(args.outdir)
    if args.classifier is not None:
        target = Path(args.classifier)
        if (target / "saved_model.pb").exists():
            print(f"{target} already holds a classifier: kept")
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from hub_fixtures import build_mini_classifier

            build_mini_classifier(target)
            print(f"miniature classifier (224 px, random) in {target}")
    if not (outdir / "saved_model.pb").exists():
        started = time.perf_counter()
        build_replica(outdir, channels=args.channels, seed=args.seed)
        size = sum(f.stat().st_size for f in outdir.rglob("*") if f.is_file()) / 2 ** 20
        print(f"replica of {HANDLE} (channels {args.channels}) in {outdir}: {size:.0f} MiB, "
              f"{time.perf_counter() - started:.0f} s")
    elif args.bench is None and args.classifier is None:
        parser.error(f"{outdir} already holds a module; choose an empty folder")
    if args.bench is not None:
        print(json.dumps(bench(outdir, args.bench, samples=args.bench_samples,
                               maps=args.bench_maps, pairs=args.bench_pairs,
                               batch_size=args.batch_size,
                               convs=[int(c) for c in args.bench_convs.split(",")]), indent=1))


if __name__ == "__main__":
    main()
