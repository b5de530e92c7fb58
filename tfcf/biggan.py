"""BigGAN-deep from TF-Hub: sampling, and interventions on the convolutions inside a Gblock.

    biggan = tfcf.biggan.load_biggan()                 # https://tfhub.dev/deepmind/biggan-deep-256/1
    z, y = biggan.latents(["koala", "teddy"], num=4, truncation=0.4, seed=0)
    model = biggan.keras_model(block=5, truncation=0.4)   # layers gblock5_conv1, gblock5_conv2
    hybrids = tfcf.hybrid(model, model.cut_layers, [[0, 3], [0, 3]], [z[:4], y[:4]], [z[4:], y[4:]])
    maps = tfcf.influence_maps(model, "gblock5_conv1", [z, y])

The TF-Hub module is a TF1 Hub-format graph whose only signature maps (z, y, truncation) to
images in [-1, 1]. Its internal tensors are reached with ``prune`` on the loaded graph: each
part of the generator becomes a function of the cut tensor(s) *and* of z, y and truncation,
because every Gblock reads the class-conditional batch-norm input concat(z, embed(y)), the
skip connection bypasses the block, and the batch-norm statistics depend on the truncation.

Gblock numbering. The module names its 12 residual blocks ``Generator/GBlock``,
``Generator/GBlock_1``, ..., ``Generator/GBlock_11``. tfcf numbers them as the module does,
from 0: Gblock ``n`` is scope ``GBlock_n`` (``GBlock`` for 0), so the paper's "Gblock 4" to
"Gblock 7" are ``block=4..7`` (scopes GBlock_4..GBlock_7; in biggan-deep-256 their outputs are
16, 32, 32 and 64 pixels wide). If you read the paper's numbers as 1-based ordinals instead
("the 7th Gblock"), use ``block=n - 1``. Each Gblock is BN-ReLU-conv0 (1x1, channels / 4) ->
BN-ReLU-[upsample]-conv1 (3x3) -> BN-ReLU-conv2 (3x3) -> BN-ReLU-conv3 (1x1), plus the skip
connection; "the two successive convolution layers" intervened on are conv1 and conv2 (the
3x3 pair), and the cut tensors are their outputs (after the bias). A public dump of the
module's graph puts the forward ops in name scope ``Generator_1`` (the variables are in
``Generator``), a bias being an ``add_<n>`` after the spectral-norm ops of its scope;
tests/test_biggan_replica.py cuts a full-size replica built so (tools/biggan_replica.py).

Both samples of a hybrid share one truncation: it is baked into :meth:`BigGAN.keras_model`,
whose inputs are z and y only. Hybrids keep the base sample's z and y for everything
downstream of the cut that is not replaced (the skip path, the conditional batch norms).
TF-Hub modules run under the TensorFlow backend only.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from tfcf.hub import ModuleUnreadable, Untracked, load, resolve
from tfcf.imagenet import class_id

__all__ = ["BIGGAN_HANDLES", "BigGAN", "cross_class_hybrids", "cross_hybrids", "gblock_modules",
           "load_biggan", "saved_model_digest", "truncated_z"]

BIGGAN_HANDLES = {
    128: "https://tfhub.dev/deepmind/biggan-deep-128/1",
    256: "https://tfhub.dev/deepmind/biggan-deep-256/1",
    512: "https://tfhub.dev/deepmind/biggan-deep-512/1",
}

# Hybrids per downstream call: ~140 MB each at 256 px (see gblock_modules).
HYBRID_BATCH = 32
_CONV = re.compile(r"(?:^|/)Generator(?:_\d+)?/GBlock(?:_(\d+))?/conv(\d+)(?:_\d+)?/")
_BIAS_OPS = ("BiasAdd", "Add", "AddV2")


def truncated_z(num, dim=128, truncation=1.0, seed=0):
    """``truncation`` times a normal sample truncated to [-2, 2] (the TF-Hub recipe).

        z = truncated_z(8, truncation=0.4, seed=0)        # [8, 128] float32
    """
    from scipy.stats import truncnorm

    values = truncnorm.rvs(-2, 2, size=(int(num), int(dim)),
                           random_state=np.random.RandomState(seed))
    return (truncation * values).astype("float32")


def _check_truncation(truncation):
    truncation = float(truncation)
    if not 0.0 < truncation <= 1.0:
        raise ValueError(f"truncation must be in (0, 1], got {truncation}")
    return truncation


class _GraphPart(keras.layers.Layer):
    """One pruned piece of the module: (cut tensor?, z, y) -> tensor, truncation baked in."""

    def __init__(self, function, truncation, output_shape, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self._function = Untracked(function)
        self.truncation = float(truncation)
        self._output_shape = tuple(output_shape)

    def call(self, inputs):
        import tensorflow as tf

        inputs = [tf.cast(value, tf.float32) for value in inputs]
        out = self._function.value(*inputs, tf.constant(self.truncation, tf.float32))
        return out[0] if isinstance(out, (list, tuple)) else out

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],) + self._output_shape


def _signature_tensors(path):
    """(input tensor names by key, output tensor name) of signature "default", from the file."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    graphs = [g for g in saved.meta_graphs if set(g.meta_info_def.tags) <= {"serve"}]
    for graph in graphs or list(saved.meta_graphs):
        if "default" in graph.signature_def:
            signature = graph.signature_def["default"]
            inputs = {key: info.name for key, info in signature.inputs.items()}
            outputs = {key: info.name for key, info in signature.outputs.items()}
            return inputs, outputs.get("default", next(iter(outputs.values())))
    raise ValueError(f"{path} has no signature 'default'; is it a BigGAN TF-Hub module?")


class BigGAN:
    """A BigGAN(-deep) TF-Hub module: latents, sampling and Gblock cuts. See the module docstring.

        biggan = BigGAN("https://tfhub.dev/deepmind/biggan-deep-256/1")
        images = biggan.sample(["cock", "ostrich"], num=4, truncation=0.4, seed=0)
    """

    def __init__(self, handle=BIGGAN_HANDLES[256], offline=None):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("TF-Hub modules run under KERAS_BACKEND=tensorflow only; this "
                               f"process uses {keras.backend.backend()!r}")
        self.handle = str(handle)
        self.path = resolve(self.handle, offline=offline)
        self.hub_module = load(self.path)
        try:
            inputs, self.output_name = _signature_tensors(self.path)
        except Exception as error:  # noqa: BLE001 - a protobuf DecodeError, a missing signature
            raise ModuleUnreadable(self.path, error) from None
        missing = {"z", "y", "truncation"} - set(inputs)
        if missing:
            raise ValueError(f"{self.handle}: signature 'default' lacks inputs {sorted(missing)}; "
                             f"it has {sorted(inputs)} (expected z, y, truncation)")
        self.input_names = [inputs["z"], inputs["y"], inputs["truncation"]]
        graph = self.hub_module.graph
        self.z_dim = int(graph.get_tensor_by_name(inputs["z"]).shape[-1])
        self.num_classes = int(graph.get_tensor_by_name(inputs["y"]).shape[-1])
        self.output_shape = tuple(graph.get_tensor_by_name(self.output_name).shape[1:])
        self._convs = self._find_convs(graph)
        self._models = {}

    @staticmethod
    def _find_convs(graph):
        convs = {}
        for op in graph.get_operations():
            match = _CONV.search(op.name) if op.type == "Conv2D" else None
            if match is None:
                continue
            block, conv = int(match.group(1) or 0), int(match.group(2))
            scope = op.name[: match.end()]
            tensor = op.outputs[0]
            while True:  # follow the bias addition(s) inside the same scope
                consumers = tensor.consumers()
                if (len(consumers) == 1 and consumers[0].type in _BIAS_OPS
                        and consumers[0].name.startswith(scope)):
                    tensor = consumers[0].outputs[0]
                else:
                    break
            if (block, conv) in convs and convs[(block, conv)] != tensor.name:
                raise ValueError(f"two convolutions in scope {scope!r}: "
                                 f"{convs[(block, conv)]} and {tensor.name}")
            convs[(block, conv)] = tensor.name
        return convs

    @property
    def blocks(self):
        """The Gblock numbers found in the graph (0-based, as the module's scopes)."""
        return sorted({block for block, _ in self._convs})

    def conv_tensor(self, block, conv):
        """The graph tensor name of conv layer ``conv`` (0..3) of Gblock ``block``.

            biggan.conv_tensor(5, 1)      # 'Generator_1/GBlock_5/conv1/add_<n>:0', its bias
        """
        key = (int(block), int(conv))
        if key not in self._convs:
            raise ValueError(
                f"no conv{conv} in Gblock {block} of {self.handle}; Gblocks: {self.blocks}, "
                f"convs per block: {sorted({c for b, c in self._convs if b == int(block)})}")
        return self._convs[key]

    def latents(self, classes, num, truncation, seed=0):
        """``num`` samples per class: (z [len(classes) * num, z_dim], one-hot y), class-major.

            z, y = biggan.latents(["koala", "teddy"], num=8, truncation=0.4, seed=0)
        """
        truncation = _check_truncation(truncation)
        classes = [classes] if isinstance(classes, (str, int, np.integer)) else list(classes)
        ids = [class_id(c) for c in classes]
        if any(i >= self.num_classes for i in ids):
            raise ValueError(f"class ids {ids} exceed the module's {self.num_classes} classes")
        z = truncated_z(len(ids) * int(num), self.z_dim, truncation, seed)
        y = np.zeros((len(z), self.num_classes), "float32")
        y[np.arange(len(z)), np.repeat(ids, int(num))] = 1.0
        return z, y

    def generate(self, z, y, truncation, batch_size=16):
        """Images in [-1, 1] (numpy) from z and one-hot y through the module's signature.

            images = biggan.generate(z, y, truncation=0.4)
        """
        import tensorflow as tf

        truncation = _check_truncation(truncation)
        signature = self.hub_module.signatures["default"]
        outputs = []
        for start in range(0, len(z), batch_size):
            out = signature(z=tf.constant(z[start:start + batch_size], tf.float32),
                            y=tf.constant(y[start:start + batch_size], tf.float32),
                            truncation=tf.constant(truncation, tf.float32))
            outputs.append(next(iter(out.values())).numpy())
        return np.concatenate(outputs)

    def sample(self, classes, num, truncation, seed=0, batch_size=16):
        """``num`` images per class in [-1, 1] (see :meth:`latents`).

            images = biggan.sample(["cock", "ostrich"], num=4, truncation=0.4, seed=0)
        """
        z, y = self.latents(classes, num, truncation, seed)
        return self.generate(z, y, truncation, batch_size)

    def prune(self, cuts, fetch):
        """A function ``(*cut_values, z, y, truncation) -> fetch`` cut from the module graph.

            head = biggan.prune([], biggan.conv_tensor(5, 1))
        """
        feeds = list(cuts) + self.input_names
        return self.hub_module.prune(feeds=feeds, fetches=[fetch])

    def keras_model(self, block, truncation, convs=(1, 2)):
        """A Keras functional model (z, y) -> images, cut at convs of Gblock ``block``.

            model = biggan.keras_model(block=5, truncation=0.4)
            model.cut_layers           # ['gblock5_conv1', 'gblock5_conv2']

        Its layers named ``gblock<block>_conv<c>`` output those conv tensors, so tfcf.split,
        tfcf.hybrid and tfcf.influence_maps work on it as on any Keras generator. The model
        is cached per (block, truncation, convs).
        """
        truncation = _check_truncation(truncation)
        convs = tuple(int(c) for c in convs)
        if list(convs) != sorted(set(convs)) or not convs:
            raise ValueError(f"convs must be increasing conv indices, e.g. (1, 2); got {convs}")
        key = (int(block), truncation, convs)
        if key in self._models:
            return self._models[key]
        tensors = [self.conv_tensor(block, c) for c in convs]
        graph = self.hub_module.graph
        z = keras.Input((self.z_dim,), name="z")
        y = keras.Input((self.num_classes,), name="y")
        names = [f"gblock{int(block)}_conv{c}" for c in convs]
        value, cuts = None, []
        for name, tensor in zip(names + ["image"], tensors + [self.output_name]):
            shape = tuple(graph.get_tensor_by_name(tensor).shape[1:])
            part = _GraphPart(self.prune(cuts, tensor), truncation, shape, name=name)
            value = part(([value] if value is not None else []) + [z, y])
            cuts = [tensor]
        model = keras.Model([z, y], value, name=f"biggan_gblock{int(block)}")
        model.cut_layers = names
        self._models[key] = model
        return model

    def __repr__(self):
        return (f"BigGAN({self.handle!r}, output {self.output_shape}, "
                f"Gblocks {self.blocks[0]}..{self.blocks[-1]})")


def load_biggan(handle=BIGGAN_HANDLES[256], offline=None):
    """Load a BigGAN-deep module (128, 256 or 512 px handle, a cached copy or a local folder).

        biggan = load_biggan()                              # biggan-deep-256
        biggan = load_biggan(BIGGAN_HANDLES[128])
        biggan = load_biggan("/data/biggan-deep-256")      # an unpacked module
    """
    return BigGAN(handle, offline=offline)


def gblock_modules(model, z, y, k=3, num_pairs=None, seed=0, batch_size=HYBRID_BATCH,
                   progress=True):
    """Modules of a Gblock's two cut convs: elementary maps of each, one NMF clustering of both.

        model = biggan.keras_model(block=5, truncation=0.4)
        modules, clustering, maps, names = gblock_modules(model, z, y, k=3)
        hybrids = tfcf.hybrid(model, model.cut_layers, modules[0], base, source)

    ``model`` comes from :meth:`BigGAN.keras_model` (any Keras model with ``cut_layers`` works).
    Each elementary map is computed with :func:`tfcf.influence_maps` over pairs drawn from
    (z, y); the live maps of all cut layers are stacked and clustered once with
    :func:`tfcf.cluster` (the two-layer procedure of the paper's BEGAN and BigGAN figures).
    ``batch_size`` hybrids go through the downstream part at once: at 256 px each needs about
    140 MB (measured on a full-size replica of biggan-deep-256, ``tools/biggan_replica.py
    --bench 5``): the default 32 peaks at 6.1 GB of memory in all (1.5 GB of it the loaded
    module), 256 a step at ~38 GB (``influence_maps`` on its own, ``batch_size=None``, keeps a
    step's largest tensor after the cut within 128 MiB).
    Returns ``modules`` (k lists, each one channel list per cut layer), the clustering, the
    stacked live maps and their ``"layer:channel"`` names.
    """
    from tfcf.influence import influence_maps
    from tfcf.modules import cluster, live_channels

    layers = list(model.cut_layers)
    per_layer = [influence_maps(model, layer, [z, y], num_pairs=num_pairs, seed=seed,
                                batch_size=batch_size, progress=progress) for layer in layers]
    offsets = np.cumsum([0] + [len(m) for m in per_layer])
    stacked = np.concatenate(per_layer)
    live = live_channels(stacked)
    clustering = cluster(stacked[live], k, seed=seed)
    owner = np.searchsorted(offsets, live, side="right") - 1
    names = [f"{layers[o]}:{c - offsets[o]}" for o, c in zip(owner, live)]
    modules = []
    for j in range(k):
        members = live[clustering.members(j)]
        modules.append([[int(c - offsets[i]) for c in members if offsets[i] <= c < offsets[i + 1]]
                        for i in range(len(layers))])
    return modules, clustering, stacked[live], names


def cross_hybrids(model, modules, base, source, batch_size=HYBRID_BATCH):
    """Hybrids per module: base samples with the module's channels taken from source samples.

        hybrids = cross_hybrids(model, modules, [z_koala, y_koala], [z_teddy, y_teddy])
        hybrids.shape               # [len(modules), N, H, W, 3]
    """
    from tfcf.intervene import hybrid

    return np.stack([hybrid(model, list(model.cut_layers), module, base, source,
                            batch_size=batch_size) for module in modules])


def saved_model_digest(path):
    """sha1 of a module folder's ``saved_model.pb``: its identity in cache keys.

        saved_model_digest(biggan.path)
    """
    import hashlib

    digest = hashlib.sha1()
    with open(Path(path) / "saved_model.pb", "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cross_class_hybrids(biggan, pair, blocks, truncation=0.5, k=3, samples=64, pairs=64,
                        examples=8, seed=0, report=None, batch_size=HYBRID_BATCH):
    """The cross-class hybrid set of the ICLR 2020 BigGAN figures, cached on disk.

        data = cross_class_hybrids(load_biggan(), ("koala", "teddy"), blocks=[4, 5])
        data["ab_4"].shape      # [k, examples, 256, 256, 3]: koalas with a teddy module
        data["modules"]["4"]    # k modules, each [conv1 channels, conv2 channels]

    For each Gblock: elementary influence maps of conv1 and conv2 over ``samples`` latents of
    both classes (``pairs`` pairs), one NMF clustering of both layers into ``k`` modules
    (:func:`gblock_modules`), then hybrids both ways for ``examples`` pairs: ``ab_<block>``
    (class A samples with a module from class B samples) and ``ba_<block>``. Also
    ``originals_a``/``originals_b``, ``ids``, ``maps_<block>`` and ``names_<block>``. The set
    is cached in ``<tfcf cache>/biggan/`` (:mod:`tfcf.cache`), keyed by the module file's digest
    and every argument but ``batch_size`` (hybrids per downstream call, see
    :func:`gblock_modules`; it bounds the memory, not the result). ``report(text)`` receives
    progress lines.
    """
    import json

    from tfcf import __version__
    from tfcf.cache import cached_arrays

    report = report or (lambda text: None)
    ids = [class_id(c) for c in pair]
    blocks = [int(b) for b in blocks]
    bad = [b for b in blocks if b not in biggan.blocks]
    if bad:
        raise ValueError(f"Gblocks {bad} are not in {biggan.handle}; it has Gblocks "
                         f"{biggan.blocks}")
    key = repr((__version__, saved_model_digest(biggan.path), ids, blocks, float(truncation),
                int(k), int(samples), int(pairs), int(examples), int(seed)))

    def compute():
        z, y = biggan.latents(ids, max(1, samples // 2), truncation, seed=seed)
        za, ya = biggan.latents(ids[:1], examples, truncation, seed=seed + 1)
        zb, yb = biggan.latents(ids[1:], examples, truncation, seed=seed + 2)
        data = {"originals_a": biggan.generate(za, ya, truncation),
                "originals_b": biggan.generate(zb, yb, truncation), "ids": np.array(ids)}
        modules = {}
        for position, block in enumerate(blocks):
            report(f"[{position + 1}/{len(blocks)}] Gblock {block}: influence maps of conv1 and "
                   f"conv2, {k} NMF modules, hybrids")
            model = biggan.keras_model(block, truncation)
            found, _, maps, names = gblock_modules(model, z, y, k=k, num_pairs=pairs, seed=seed,
                                                   batch_size=batch_size)
            modules[str(block)] = found
            data[f"maps_{block}"] = maps
            data[f"names_{block}"] = np.array(names)
            data[f"ab_{block}"] = cross_hybrids(model, found, [za, ya], [zb, yb], batch_size)
            data[f"ba_{block}"] = cross_hybrids(model, found, [zb, yb], [za, ya], batch_size)
        data["modules"] = np.array(json.dumps(modules))
        return data

    expect = {"originals_a": (None, None), "originals_b": (None, None), "modules": ((), None),
              **{f"{kind}_{block}": (None, None) for block in blocks for kind in ("ab", "ba")}}
    data = dict(cached_arrays("biggan", key, compute, expect=expect,
                              on_hit=lambda path: report(f"    hybrids from the cache {path}")))
    data["modules"] = json.loads(str(data["modules"]))
    return data
