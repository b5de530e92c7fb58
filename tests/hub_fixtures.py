"""Miniature TF-Hub modules in the real on-disk formats, built by the tests in a temp dir.

    weights = build_mini_biggan(tmp_path / "biggan")      # TF1 Hub format, BigGAN-deep naming
    images = reference_forward(weights, z, y, truncation)  # the same network in NumPy
    build_mini_classifier(tmp_path / "classifier", size=224)  # TF2 SavedModel, 1001 logits

The BigGAN miniature follows biggan-deep-256/1: a SavedModel with a metagraph for the empty tag
set (and one for {"train"}) whose signature "default" takes z [B, 128], y [B, 1000] and a scalar
truncation and returns images in [-1, 1], plus the ``tfhub_module.pb`` marker (a ModuleDef proto
with format = FORMAT_V3: bytes 08 03). Variables and ops are named like the real module
(``linear/w``, ``Generator/GenZ/G_linear``, ``Generator/GBlock[_k]/BatchNorm[_k]``,
``Generator/GBlock[_k]/conv0..conv3``, ``Generator/BatchNorm``, ``Generator/conv_to_rgb``). Each
Gblock is BN-ReLU-conv0(1x1)-BN-ReLU-[upsample]-conv1(3x3)-BN-ReLU-conv2(3x3)-BN-ReLU-conv3(1x1)
plus a skip connection (channels dropped, upsampled); the batch-norm conditioning concat(z,
embedding(y)) reaches every block; the statistics are interpolated per truncation value.
Widths are tiny (4 Gblocks, 16x16 output) and there is no attention block.
"""

from __future__ import annotations

import os

import numpy as np

Z_DIM = 128
NUM_CLASSES = 1000
EMBEDDING = 16
N_STATS = 11
# (upsample, in channels, out channels) per Gblock; middle width = in // 2.
BLOCKS = ((False, 32, 32), (True, 32, 16), (False, 16, 16), (True, 16, 16))
EPS = 1e-4


def _block_scope(index):
    return "GBlock" if index == 0 else f"GBlock_{index}"


def _bn_scope(index):
    return "BatchNorm" if index == 0 else f"BatchNorm_{index}"


def make_weights(seed=0):
    """NumPy weights of the miniature, keyed by their variable names."""
    rng = np.random.default_rng(seed)
    cond = Z_DIM + EMBEDDING

    def normal(shape, fan_in, gain=1.0):
        return (rng.normal(size=shape) * gain / np.sqrt(fan_in)).astype("float32")

    weights = {"linear/w": normal((NUM_CLASSES, EMBEDDING), 1, 0.5)}
    width = BLOCKS[0][1]
    weights["Generator/GenZ/G_linear/w"] = normal((cond, 16 * width), cond)
    weights["Generator/GenZ/G_linear/b"] = normal((16 * width,), 1, 0.1)

    def batchnorm(prefix, channels, conditional=True):
        weights[f"{prefix}/accumulated_mean"] = normal((N_STATS, channels), 1, 0.3)
        weights[f"{prefix}/accumulated_var"] = rng.uniform(0.5, 2.0, (N_STATS, channels)).astype(
            "float32")
        if conditional:
            weights[f"{prefix}/scale/w"] = normal((cond, channels), cond, 0.2)
            weights[f"{prefix}/offset/w"] = normal((cond, channels), cond, 0.2)

    for index, (_, fan_in, fan_out) in enumerate(BLOCKS):
        scope = f"Generator/{_block_scope(index)}"
        middle = fan_in // 2
        shapes = [(1, 1, fan_in, middle), (3, 3, middle, middle), (3, 3, middle, middle),
                  (1, 1, middle, fan_out)]
        for bn, channels in enumerate((fan_in, middle, middle, middle)):
            batchnorm(f"{scope}/{_bn_scope(bn)}", channels)
        for conv, shape in enumerate(shapes):
            weights[f"{scope}/conv{conv}/w"] = normal(shape, np.prod(shape[:3]), 1.4)
            weights[f"{scope}/conv{conv}/b"] = normal(shape[-1:], 1, 0.1)
    last = BLOCKS[-1][2]
    batchnorm("Generator/BatchNorm", last, conditional=False)
    weights["Generator/BatchNorm/scale"] = rng.uniform(0.5, 1.5, last).astype("float32")
    weights["Generator/BatchNorm/offset"] = normal((last,), 1, 0.1)
    weights["Generator/conv_to_rgb/w"] = normal((3, 3, last, 4), 9 * last, 1.0)
    weights["Generator/conv_to_rgb/b"] = normal((4,), 1, 0.1)
    return weights


# ---------------------------------------------------------------- NumPy reference forward


def _np_stats(weights, prefix, truncation):
    position = truncation * (N_STATS - 1)
    first = int(np.clip(np.floor(position), 0, N_STATS - 2))
    fraction = position - first
    mean = weights[f"{prefix}/accumulated_mean"]
    var = weights[f"{prefix}/accumulated_var"]
    return (mean[first] * (1 - fraction) + mean[first + 1] * fraction,
            var[first] * (1 - fraction) + var[first + 1] * fraction)


def _np_bn(weights, prefix, x, cond, truncation):
    mean, var = _np_stats(weights, prefix, truncation)
    normalised = (x - mean) / np.sqrt(var + EPS)
    if cond is None:
        return normalised * weights[f"{prefix}/scale"] + weights[f"{prefix}/offset"]
    scale = 1.0 + cond @ weights[f"{prefix}/scale/w"]
    offset = cond @ weights[f"{prefix}/offset/w"]
    return normalised * scale[:, None, None, :] + offset[:, None, None, :]


def _np_conv(x, kernel, bias):
    size = kernel.shape[0]
    pad = size // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],), dtype="float64")
    for dy in range(size):
        for dx in range(size):
            out += padded[:, dy:dy + height, dx:dx + width, :] @ kernel[dy, dx]
    return out + bias


def _np_up(x):
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def reference_forward(weights, z, y, truncation, override=None):
    """The miniature in NumPy (float64). ``override(name, value) -> value`` may replace the
    output of any conv layer, named like ``"GBlock_1/conv2"``; returns images [B, 16, 16, 3]."""
    override = override or (lambda name, value: value)
    z = np.asarray(z, "float64")
    cond = np.concatenate([z, np.asarray(y, "float64") @ weights["linear/w"]], axis=1)
    width = BLOCKS[0][1]
    h = (cond @ weights["Generator/GenZ/G_linear/w"] + weights["Generator/GenZ/G_linear/b"])
    h = h.reshape(-1, 4, 4, width)
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    for index, (upsample, _, fan_out) in enumerate(BLOCKS):
        scope = _block_scope(index)
        prefix = f"Generator/{scope}"
        skip = h
        for conv in range(4):
            h = relu(_np_bn(weights, f"{prefix}/{_bn_scope(conv)}", h, cond, truncation))
            if conv == 1 and upsample:
                h = _np_up(h)
            h = _np_conv(h, weights[f"{prefix}/conv{conv}/w"], weights[f"{prefix}/conv{conv}/b"])
            h = override(f"{scope}/conv{conv}", h)
        skip = skip[..., :fan_out]
        if upsample:
            skip = _np_up(skip)
        h = h + skip
    h = relu(_np_bn(weights, "Generator/BatchNorm", h, None, truncation))
    h = _np_conv(h, weights["Generator/conv_to_rgb/w"], weights["Generator/conv_to_rgb/b"])
    return np.tanh(h[..., :3])


# ---------------------------------------------------------------- TF1 Hub-format export


def build_mini_biggan(path, seed=0):
    """Export the miniature as a TF1 Hub-format module in ``path``; returns its NumPy weights."""
    import tensorflow as tf

    v1 = tf.compat.v1
    weights = make_weights(seed)
    graph = tf.Graph()
    with graph.as_default():
        z = v1.placeholder(tf.float32, [None, Z_DIM], name="z")
        y = v1.placeholder(tf.float32, [None, NUM_CLASSES], name="y")
        truncation = v1.placeholder(tf.float32, [], name="truncation")

        def variable(name):
            scope, _, leaf = name.rpartition("/")
            with v1.variable_scope(scope, reuse=v1.AUTO_REUSE):
                return v1.get_variable(leaf, initializer=weights[name])

        def stats(prefix):
            position = truncation * float(N_STATS - 1)
            first = tf.clip_by_value(tf.floor(position), 0.0, float(N_STATS - 2))
            fraction = position - first
            first = tf.cast(first, tf.int32)
            pair = []
            for name in ("accumulated_mean", "accumulated_var"):
                table = variable(f"{prefix}/{name}")
                pair.append(tf.gather(table, first) * (1.0 - fraction)
                            + tf.gather(table, first + 1) * fraction)
            return pair

        def conv(prefix, x):
            with tf.name_scope(prefix.rsplit("/", 1)[1]):
                out = tf.nn.conv2d(x, variable(f"{prefix}/w"), 1, "SAME")
                return tf.nn.bias_add(out, variable(f"{prefix}/b"))

        def upsample(x):
            return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)

        embedded = tf.matmul(y, variable("linear/w"))
        cond = tf.concat([z, embedded], axis=1)
        with tf.name_scope("Generator"):
            with tf.name_scope("GenZ/G_linear"):
                h = tf.matmul(cond, variable("Generator/GenZ/G_linear/w"))
                h = h + variable("Generator/GenZ/G_linear/b")
            h = tf.reshape(h, [-1, 4, 4, BLOCKS[0][1]])
            for index, (up, _, fan_out) in enumerate(BLOCKS):
                scope = _block_scope(index)
                with tf.name_scope(scope):
                    skip = h
                    for layer in range(4):
                        prefix = f"Generator/{scope}"
                        with tf.name_scope(_bn_scope(layer)):
                            h = tf.nn.relu(_tf_bn(stats, variable, f"{prefix}/{_bn_scope(layer)}",
                                                  h, cond))
                        if layer == 1 and up:
                            h = upsample(h)
                        h = conv(f"{prefix}/conv{layer}", h)
                    skip = skip[..., :fan_out]
                    if up:
                        skip = upsample(skip)
                    h = h + skip
            with tf.name_scope("BatchNorm"):
                h = tf.nn.relu(_tf_bn(stats, variable, "Generator/BatchNorm", h, None))
            h = conv("Generator/conv_to_rgb", h)
            images = tf.tanh(h[..., :3], name="images")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
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
    with open(os.path.join(str(path), "tfhub_module.pb"), "wb") as handle:
        handle.write(b"\x08\x03")  # ModuleDef{format: FORMAT_V3}
    return weights


def _tf_bn(stats, variable, prefix, x, cond):
    """Batch norm with the statistics of the truncation value (conditional when cond given)."""
    import tensorflow as tf

    mean, var = stats(prefix)
    normalised = (x - mean) * tf.math.rsqrt(var + EPS)
    if cond is None:
        return normalised * variable(f"{prefix}/scale") + variable(f"{prefix}/offset")
    scale = 1.0 + tf.matmul(cond, variable(f"{prefix}/scale/w"))
    offset = tf.matmul(cond, variable(f"{prefix}/offset/w"))
    return normalised * scale[:, None, None, :] + offset[:, None, None, :]


# ---------------------------------------------------------------- TF2 SavedModel classifier


def build_mini_classifier(path, size=224, seed=0):
    """A TF2 SavedModel like the TF-Hub imagenet classification/5 modules: images
    [B, size, size, 3] in [0, 1] -> 1001 logits (column 0 is "background"). It refuses any
    other spatial size, as the real fixed-size modules do. Returns (kernel, bias) in NumPy."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    pooled = 4 * 4 * 3
    kernel = (rng.normal(size=(pooled, 1001)) * 4.0).astype("float32")
    bias = (rng.normal(size=1001) * 0.1).astype("float32")

    class Classifier(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(kernel)
            self.bias = tf.Variable(bias)

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        def __call__(self, images):
            pooled_images = tf.nn.avg_pool2d(images, size // 4, size // 4, "VALID")
            flat = tf.reshape(pooled_images, [-1, pooled])
            return tf.matmul(flat - 0.5, self.kernel) + self.bias

    tf.saved_model.save(Classifier(), str(path))
    return kernel, bias
