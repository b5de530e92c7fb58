"""The linear shortcut of tfcf.influence_maps equals the generic path, chain by chain.

Each tiny model cuts at a ReLU ("cut", 5 channels) and follows it with one kind of linear chain
before the first non-linearity: the shortcut forms the hybrids at the chain's first
channel-mixing layer (``record.shortcut``), the generic path at the cut itself. Both must give
the same elementary and module maps (golden: the generic path is itself checked against eq. 2
by hand in tests/test_influence.py).
"""

import keras
import numpy as np
import pytest

import tfcf
from tfcf import influence
from tfcf.graph import flat_graph
from tfcf.influence import _channel_classes, shortcut_layer
from tfcf.shortcut import find_shortcut

from conftest import randomize_batchnorm

layers = keras.layers
CHANNELS = 5
MODULES = [[0, 2], [1, 3, 4], [4]]


def _image(h, name="image"):
    """A 3-colour image output through a 1x1 convolution and tanh."""
    h = layers.Conv2D(3, 1, name="to_rgb")(h)
    return layers.Activation("tanh", name=name)(h)


def _model(chain, spatial=4, seed=0, channels=CHANNELS):
    """z [8] -> dense -> [spatial, spatial, channels] -> ReLU "cut" -> chain -> image."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((8,), name="z")
    h = layers.Dense(spatial * spatial * channels, name="lin")(z)
    h = layers.Reshape((spatial, spatial, channels), name="reshape")(h)
    h = layers.ReLU(name="cut")(h)
    return randomize_batchnorm(keras.Model(z, chain(h), name="chain"), seed)


def conv(h):
    h = layers.Conv2D(6, 3, padding="same", name="mix")(h)
    return _image(layers.ReLU(name="after")(h))


def transposed_same(h):
    h = layers.Conv2DTranspose(6, 4, strides=2, padding="same", name="mix")(h)
    return _image(layers.ReLU(name="after")(h))


def transposed_valid(h):
    h = layers.Conv2DTranspose(6, 3, strides=2, padding="valid", name="mix")(h)
    h = layers.ReLU(name="after")(h)     # the downstream transposed convolution: its fast form
    h = layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="to_rgb_up")(h)
    return layers.Activation("tanh", name="image")(h)


def batchnorm_activation(h):
    h = layers.BatchNormalization(name="bn")(h)          # inference mode: channel-wise
    h = layers.LeakyReLU(0.2, name="act")(h)
    h = layers.Conv2D(6, 3, padding="valid", name="mix")(h)
    return _image(layers.BatchNormalization(name="bn_after")(layers.ReLU(name="after")(h)))


def depthwise(h):
    h = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="mix")(h)
    return _image(layers.ReLU(name="after")(h))


def depthwise_then_conv(h):
    h = layers.DepthwiseConv2D(3, padding="same", name="dw")(h)   # channel-wise: passed through
    h = layers.Conv2D(4, 2, strides=2, padding="valid", name="mix")(h)
    return _image(layers.ReLU(name="after")(h))


def separable(h):
    h = layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, name="mix")(h)
    return _image(layers.ReLU(name="after")(h))


def flatten_dense(h):
    h = layers.Flatten(name="flat")(h)
    h = layers.Dense(4 * 4 * 3, name="mix")(h)
    h = layers.Reshape((4, 4, 3), name="unflat")(layers.ReLU(name="after")(h))
    return layers.Activation("tanh", name="image")(layers.UpSampling2D(2, name="up")(h))


def reshape_conv(h):
    h = layers.Reshape((2, 8, CHANNELS), name="fold")(h)      # the channel axis is kept
    h = layers.UpSampling2D(2, name="up")(h)
    h = layers.Conv2D(6, 3, padding="same", name="mix")(h)
    return _image(layers.ReLU(name="after")(h))


CHAINS = {  # name: (chain, shortcut layer)
    "conv": (conv, "mix"),
    "transposed_same": (transposed_same, "mix"),
    "transposed_valid": (transposed_valid, "mix"),
    "batchnorm_activation": (batchnorm_activation, "mix"),
    "depthwise": (depthwise, "mix"),
    "depthwise_then_conv": (depthwise_then_conv, "mix"),
    "separable": (separable, "mix"),
    "flatten_dense": (flatten_dense, "mix"),
    "reshape_conv": (reshape_conv, "mix"),
}


def _grouped_model(seed=0):
    """Cut at 6 channels, then a grouped convolution (3 groups of 2 channels)."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((8,), name="z")
    h = layers.Reshape((4, 4, 6), name="reshape")(layers.Dense(4 * 4 * 6, name="lin")(z))
    h = layers.ReLU(name="cut")(h)
    h = layers.Conv2D(6, 3, padding="same", groups=3, name="mix")(h)
    return keras.Model(z, _image(layers.ReLU(name="after")(h)), name="grouped")


def _dense_model(seed=0):
    """Cut at a 2-D layer (units), then Dense -> reshape to an image."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((8,), name="z")
    h = layers.ReLU(name="cut")(layers.Dense(CHANNELS, name="lin")(z))
    h = layers.Dense(4 * 4 * 6, name="mix")(h)
    h = layers.Reshape((4, 4, 6), name="unflat")(h)
    return keras.Model(z, _image(layers.ReLU(name="after")(h)), name="dense")


def _both(model, z, **options):
    """(linear maps, record, generic maps) for the same pairs."""
    ours, record = tfcf.influence_maps(model, "cut", z, progress=False, return_record=True,
                                       **options)
    generic = tfcf.influence_maps(model, "cut", z, progress=False, method="generic", **options)
    return ours, record, generic


def _assert_shortcut_equals_generic(model, shortcut, z, num_pairs, channels=None):
    ours, record, generic = _both(model, z, num_pairs=num_pairs, channels=channels, seed=3,
                                  batch_size=64)
    assert record.method == "linear" and record.shortcut == shortcut
    assert shortcut_layer(model, "cut") == shortcut
    assert generic.max() > 1e-3                      # the maps are not trivially zero
    np.testing.assert_allclose(ours, generic, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def latents():
    return np.random.default_rng(0).normal(size=(10, 8)).astype("float32")


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_shortcut_equals_generic_elementary_and_modules(name, latents):
    chain, shortcut = CHAINS[name]
    model = _model(chain)
    _assert_shortcut_equals_generic(model, shortcut, latents, num_pairs=12)                     # elementary
    _assert_shortcut_equals_generic(model, shortcut, latents, num_pairs=12, channels=MODULES)   # modules, precomputed


def test_grouped_convolution(latents):
    model = _grouped_model()
    _assert_shortcut_equals_generic(model, "mix", latents, num_pairs=12)
    _assert_shortcut_equals_generic(model, "mix", latents, num_pairs=12, channels=[[0, 1], [2, 5], [3]])


def test_dense_after_a_dense_cut(latents):
    model = _dense_model()
    _assert_shortcut_equals_generic(model, "mix", latents, num_pairs=12)
    _assert_shortcut_equals_generic(model, "mix", latents, num_pairs=12, channels=MODULES)


@pytest.mark.parametrize("chain", [transposed_same, flatten_dense])
def test_narrow_modules_through_their_kernel_rows(chain, latents):
    """Modules much narrower than the layer: their precomputed parts come from their own kernel
    rows (wide ones from one masked convolution, as in the tests above)."""
    model = _model(chain, channels=12)
    _assert_shortcut_equals_generic(model, "mix", latents, num_pairs=12, channels=[[0, 7], [3], [11, 2], [5, 6]])


@pytest.mark.parametrize("chain, channels, modules", [
    pytest.param(transposed_same, CHANNELS, [[0, 2], [1, 3, 4]], id="wide"),   # masked kernels
    pytest.param(flatten_dense, CHANNELS, [[4, 0], [2], [1, 3]], id="flatten_dense"),
    pytest.param(separable, 12, [[2 * i + 1, 2 * i] for i in range(6)], id="narrow"),  # own rows
])
def test_modules_that_partition_the_channels(chain, channels, modules, latents, monkeypatch):
    """Modules that partition the cut's channels (as NMF's do): the mixing layer's output is
    the sum of the modules' precomputed parts and the layer's bias, so the model runs once per
    sample, to the cut, and never through the mixing layer; the maps equal the generic path."""
    model = _model(chain, channels=channels)
    mix = model.get_layer("mix")
    mix.bias.assign(np.random.default_rng(4).normal(size=mix.bias.shape).astype("float32"))
    runs = []
    runner = influence._runner
    monkeypatch.setattr(influence, "_runner", lambda part: runs.append(part) or runner(part))
    ours, record = tfcf.influence_maps(model, "cut", latents, num_pairs=12, channels=modules,
                                       seed=3, batch_size=64, progress=False,
                                       return_record=True)
    assert record.method == "linear" and record.seconds_parts > 0
    assert len(runs) == 1                     # the head only
    generic = tfcf.influence_maps(model, "cut", latents, num_pairs=12, channels=modules, seed=3,
                                  batch_size=64, progress=False, method="generic")
    assert generic.max() > 1e-3
    np.testing.assert_allclose(ours, generic, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("modules", [
    pytest.param([[0], list(range(1, 11)), [3, 4], [5, 6, 7, 8, 9, 10, 11, 0]], id="overlapping"),
    pytest.param([[9], list(range(7)), [10, 11], [7, 8]], id="partition"),
])
def test_precomputed_parts_in_blocks_of_their_own_width(modules, latents):
    """Modules of mixed sizes, two a step: the parts are computed a block at a time, the widest
    modules first, each block padded to its own width (wide blocks as masked convolutions, narrow
    ones through their kernel rows); the maps come back in the order asked and equal the
    generic path, also when the modules partition the channels (the layer's output from the
    parts)."""
    model = _model(transposed_same, channels=12)
    ours, record = tfcf.influence_maps(model, "cut", latents, num_pairs=12, channels=modules,
                                       seed=3, batch_size=24, progress=False,
                                       return_record=True)
    assert record.maps_per_step == 2 and record.seconds_parts > 0
    generic = tfcf.influence_maps(model, "cut", latents, num_pairs=12, channels=modules, seed=3,
                                  batch_size=24, progress=False, method="generic")
    assert generic.max() > 1e-3
    np.testing.assert_allclose(ours, generic, rtol=1e-4, atol=1e-5)


def test_module_maps_per_pair_path(latents):
    """Fewer pairs than samples: each pair's difference through the module's kernel rows (no
    precomputed per-sample contributions); and a module of every channel."""
    model = _model(transposed_same)
    many = np.random.default_rng(1).normal(size=(40, 8)).astype("float32")
    _assert_shortcut_equals_generic(model, "mix", many, num_pairs=6, channels=MODULES + [list(range(CHANNELS))])


def test_variance_statistic_through_the_shortcut(latents):
    model = _model(batchnorm_activation)
    options = dict(statistic="variance", keep_color=True, num_pairs=9, seed=1, batch_size=16)
    ours, record, generic = _both(model, latents, **options)
    assert record.method == "linear"
    np.testing.assert_allclose(ours, generic, rtol=1e-4, atol=1e-6)


def _modulated_model(post, seed=0):
    """A style-modulated block (MobileStyleGAN's): the cut's channels times a per-sample scale
    computed from z (``Multiply([scale, h])``), then ``post`` (linear channel-wise layers) and
    the mixing layer "mix"."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((8,), name="z")
    h = layers.Reshape((4, 4, CHANNELS), name="reshape")(
        layers.Dense(4 * 4 * CHANNELS, name="lin")(z))
    h = layers.ReLU(name="cut")(h)
    h = layers.LeakyReLU(0.2, name="act")(h)          # non-linear, before the scale: allowed
    scale = layers.Reshape((1, 1, CHANNELS), name="style")(
        layers.Dense(CHANNELS, name="affine")(z))
    h = layers.Multiply(name="modulate")([scale, h])
    return randomize_batchnorm(keras.Model(z, post(h), name="modulated"), seed)


def modulated_depthwise(h):          # MobileStyleGAN: scale -> depthwise -> pointwise
    h = layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = layers.Conv2D(6, 1, name="mix")(h)
    return _image(layers.LeakyReLU(0.2, name="after")(h))


def modulated_direct(h):
    h = layers.Conv2DTranspose(6, 4, strides=2, padding="same", name="mix")(h)
    return _image(layers.ReLU(name="after")(h))


def modulated_batchnorm_upsample(h):
    h = layers.UpSampling2D(2, name="up")(layers.BatchNormalization(name="bn")(h))
    h = layers.Conv2D(6, 3, padding="same", name="mix")(h)
    return _image(layers.ReLU(name="after")(h))


def modulated_flatten_dense(h):
    h = layers.Dense(4 * 4 * 3, name="mix")(layers.Flatten(name="flat")(h))
    h = layers.Reshape((4, 4, 3), name="unflat")(layers.ReLU(name="after")(h))
    return layers.Activation("tanh", name="image")(h)


@pytest.mark.parametrize("post", [
    pytest.param(modulated_depthwise, id="depthwise"),
    pytest.param(modulated_direct, id="direct", marks=pytest.mark.slow),   # as transposed_same
    pytest.param(modulated_batchnorm_upsample, id="batchnorm_upsample", marks=pytest.mark.slow),
    pytest.param(modulated_flatten_dense, id="flatten_dense")])
def test_shortcut_through_a_per_sample_channel_scale(post, latents):
    """A style modulation between the cut and the mixing layer: a hybrid's difference from its
    base is the samples' difference without the scale times the base's scale (the source's
    channels under the base's style), equal to the generic path; modules take the per-pair path
    (a module's part depends on the base's scale)."""
    model = _modulated_model(post)
    graph = flat_graph(model)
    found = find_shortcut(graph, graph.resolve("cut")[0])
    assert graph.name_of(found.scale.op) == "modulate" and "act" in found.passed
    _assert_shortcut_equals_generic(model, "mix", latents, num_pairs=12)
    _assert_shortcut_equals_generic(model, "mix", latents, num_pairs=12, channels=MODULES)


def test_a_nonlinearity_after_the_scale_stops_the_shortcut(latents):
    """scale -> LeakyReLU -> mix: the difference is no longer the scaled difference."""
    model = _modulated_model(lambda h: _image(layers.Conv2D(6, 1, name="mix")(
        layers.LeakyReLU(0.2, name="late")(h))))
    assert shortcut_layer(model, "cut") is None
    graph, reasons = flat_graph(model), []
    assert find_shortcut(graph, graph.resolve("cut")[0], why=reasons) is None
    assert reasons == ["late (LeakyReLU) is non-linear and follows the per-sample scale"]
    ours, record, generic = _both(model, latents, num_pairs=6)
    assert record.method == "generic"


def test_tfcf_keeps_no_model_alive(latents):
    """The per-model caches (graphs, compiled engines and runners) are weak: a model a user
    drops after computing maps, hybrids and modules with it is freed."""
    import gc
    import weakref

    for build in (lambda: _model(transposed_same), lambda: _modulated_model(modulated_depthwise)):
        model = build()
        tfcf.influence_maps(model, "cut", latents, num_pairs=12, progress=False)
        tfcf.influence_maps(model, "cut", latents, num_pairs=12, channels=MODULES, progress=False)
        tfcf.hybrid(model, "cut", [0, 1], latents[:2], latents[2:4])
        alive = weakref.ref(model)
        del model
        gc.collect()
        assert alive() is None


def test_channel_classes_are_the_exact_classes_also_when_hashes_collide():
    """Equal channel values share an id, unequal ones never do: with the random hash, and with
    a hash that makes every sample collide (then each channel is classed by its bytes)."""
    rng = np.random.default_rng(3)
    for dtype in ("float32", "float64", "float16"):
        values = rng.standard_normal((9, 4, 3, 6)).astype(dtype)
        values[:, ..., 0] = 1.5                           # equal in every sample
        values[::2, ..., 1] = -0.0                        # -0.0 equals 0.0
        values[1::2, ..., 1] = 0.0
        values[4, ..., 2] = values[7, ..., 2]             # two samples equal in one channel
        values[5, 0, 0, 3] = values[2, 0, 0, 3]           # equal in one position only
        values[:, ..., 4] = np.where(np.arange(9)[:, None, None] % 3 == 0, 2.0, values[..., 4])
        flat = values.reshape(9, -1, 6)
        for probe in (None, np.zeros(12, dtype=np.uint32)):
            classes = _channel_classes(values, probe=probe)
            same = classes[:, None, :] == classes[None, :, :]              # [N, N, C]
            expected = np.all(flat[:, None] == flat[None, :], axis=2)     # [N, N, C]
            np.testing.assert_array_equal(same, expected, err_msg=f"{dtype}, probe {probe}")
        assert (classes[:, 0] == classes[0, 0]).all() and (classes[:, 1] == classes[0, 1]).all()


def test_channels_equal_in_every_sample_have_exactly_zero_influence(latents):
    """Channel 0 of the cut takes the same values for every z (its units have no weights from
    z) and channel 1 is 0.0 or -0.0: hybrids that copy only them change nothing, so their maps
    are exactly 0 on every path (elementary, precomputed modules, per-pair modules, generic),
    while a module that adds a live channel is not."""
    model = _model(transposed_same)
    lin = model.get_layer("lin")
    kernel, bias = (np.array(w) for w in lin.get_weights())
    kernel.reshape(8, -1, CHANNELS)[:, :, :2] = 0.0
    bias.reshape(-1, CHANNELS)[:, 1] = -0.0              # ReLU gives -0.0 or 0.0: equal
    lin.set_weights([kernel, bias])
    values = tfcf.split(model, "cut").head.predict(latents, verbose=0)
    classes = _channel_classes(values)
    assert (classes[:, :2] == 0).all() and len(np.unique(classes[:, 2])) == len(latents)
    signed = np.zeros((2, 3, 3, 1), dtype="float32")
    signed[1] = -0.0
    assert (_channel_classes(signed) == 0).all()
    for options in (dict(num_pairs=12), dict(num_pairs=12, channels=[[0, 1], [0, 2]]),
                    dict(num_pairs=4, channels=[[0, 1], [0, 2]])):
        ours, _, generic = _both(model, latents, seed=2, **options)
        assert (ours[:2 if "channels" not in options else 1] == 0).all()
        assert (generic[:2 if "channels" not in options else 1] == 0).all()
        assert ours[-1].max() > 1e-3
        np.testing.assert_allclose(ours, generic, rtol=1e-4, atol=1e-5)


def test_nonlinearity_before_mixing_stops_the_shortcut():
    """A softmax over channels mixes them non-linearly: the generic path is taken."""
    model = _model(lambda h: _image(layers.Conv2D(6, 1, name="mix")(
        layers.Softmax(name="soft")(h))))
    assert shortcut_layer(model, "cut") is None
    z = np.random.default_rng(2).normal(size=(6, 8)).astype("float32")
    _, record = tfcf.influence_maps(model, "cut", z, num_pairs=4, progress=False,
                                    return_record=True)
    assert record.method == "generic" and record.shortcut is None


def _two_transposed_model(seed=0):
    """Two inputs (the cut's values, a per-sample code) -> a downstream part with two transposed
    convolutions: an elementwise layer between them, a skip from before the first to after it,
    the code read after both, and the last transposed convolution's output as the output;
    non-zero biases and an activation inside the second."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((4, 4, CHANNELS), name="x")
    code = keras.Input((8,), name="code")
    h = layers.Conv2DTranspose(6, 4, strides=2, padding="same", name="up1")(x)
    skip = layers.Conv2D(6, 1, name="skip")(layers.UpSampling2D(2, name="skip_up")(x))
    h = layers.Add(name="join")([layers.LeakyReLU(0.2, name="act")(h), skip])
    h = layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="tanh", name="up2")(h)
    shift = layers.Reshape((1, 1, 4), name="shift")(layers.Dense(4, name="code_dense")(code))
    h = layers.Add(name="shifted")([h, shift])
    out = layers.Conv2DTranspose(3, 4, strides=1, padding="same", name="to_rgb")(
        layers.ReLU(name="after")(h))
    model = keras.Model([x, code], out, name="two_transposed")
    rng = np.random.default_rng(seed)
    for name in ("up1", "up2", "to_rgb"):            # biases are zero when built
        bias = model.get_layer(name).bias
        bias.assign(rng.normal(size=bias.shape).astype("float32"))
    return model


def test_pieces_around_the_transposed_products_equal_the_whole_graph():
    """TensorFlow runs a downstream part in XLA pieces between its transposed convolutions'
    matrix products (oneDNN's): the same values as the graph run whole, with tensors crossing a
    product (a skip, a second input) carried over and a product's output as the model output."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA pieces are TensorFlow's")
    import tensorflow as tf

    from tfcf.influence import _Pieces

    model = _two_transposed_model()
    graph = flat_graph(model)
    pieces = _Pieces.of(graph, list(graph.inputs))
    assert [taps.layer.name for taps in pieces.products] == ["up1", "up2", "to_rgb"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 4, CHANNELS)).astype("float32")
    code = rng.normal(size=(3, 8)).astype("float32")
    ours = tf.function(lambda a, b: pieces([a, b]))(x, code)[0]
    np.testing.assert_allclose(np.asarray(ours), np.asarray(model([x, code])), rtol=1e-5, atol=1e-5)
    # the first product right at the input: no piece before it (no copy of its input)
    x_in = keras.Input((4, 4, CHANNELS))
    first = flat_graph(keras.Model(x_in, layers.ReLU()(model.get_layer("up1")(x_in))))
    assert _Pieces.of(first, list(first.inputs)).stages[0][0] is None
    # no transposed convolution: nothing to split
    plain = flat_graph(keras.Model(model.inputs[0], model.get_layer("skip").output))
    assert _Pieces.of(plain, list(plain.inputs)) is None


def test_influence_maps_in_pieces_equal_the_whole_step(latents, monkeypatch):
    """The same maps whether the downstream transposed convolutions run in pieces or inside one
    XLA step."""
    model = _model(transposed_valid)
    options = dict(num_pairs=12, seed=3, batch_size=64, progress=False)
    ours = tfcf.influence_maps(model, "cut", latents, **options)
    monkeypatch.setattr(influence._Pieces, "of", classmethod(lambda cls, *a, **k: None))
    influence._ENGINES.pop(model, None)
    whole = tfcf.influence_maps(model, "cut", latents, **options)
    np.testing.assert_allclose(ours, whole, rtol=1e-5, atol=1e-6)


class _Opaque(keras.layers.Layer):
    """A layer from outside Keras and tfcf (not known to compile with XLA): runs outside it."""

    def call(self, x):
        return x * 0.5 + 0.25


def _conv_tail_model(seed=0):
    """z -> a cut (ReLU) -> a downstream part with convolutions, the elementwise layers between
    them (a style scale from z, a constant, a LeakyReLU after a convolution), a layer tfcf does
    not know, a depthwise and a transposed convolution with tanh: the shape of an imported
    StyleGAN's blocks."""
    from tfcf.openvino_layers import ConstantOp

    keras.utils.set_random_seed(seed)
    z = keras.Input((8,), name="z")
    h = layers.Reshape((4, 4, 4), name="grid")(layers.Dense(64, name="fc")(z))
    h = layers.ReLU(name="cut")(layers.Conv2D(CHANNELS, 3, padding="same", name="c0")(h))
    h = layers.Conv2D(6, 3, padding="same", name="conv1")(h)
    h = layers.LeakyReLU(0.2, name="act1")(h)
    style = layers.Reshape((1, 1, 6), name="style")(layers.Dense(6, name="style_fc")(z))
    h = layers.Multiply(name="modulate")([h, style])
    shift = ConstantOp("add", shape=(1, 1, 6), name="noise")
    h = layers.ReLU(name="act2")(shift(h))
    h = _Opaque(name="opaque")(h)
    h = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(h)
    h = layers.LeakyReLU(0.1, name="act3")(layers.UpSampling2D(2, name="up")(h))
    h = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh", name="rgb")(h)
    model = keras.Model(z, h, name="conv_tail")
    rng = np.random.default_rng(seed)
    shift.set_weights([rng.normal(size=(1, 1, 6)).astype("float32")])
    for name in ("conv1", "depthwise", "rgb"):            # biases are zero when built
        bias = model.get_layer(name).bias
        bias.assign(rng.normal(size=bias.shape).astype("float32"))
    return model


def test_pieces_between_convolutions_equal_the_graph():
    """A downstream part with convolutions (which XLA:CPU runs slowly) runs as XLA pieces of its
    elementwise layers between the convolutions and the layers XLA may not compile, which run
    outside it: the same values as the graph run whole; an activation that alone reads a
    convolution stays with it; a chain with no two layers between convolutions is left whole."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA pieces are TensorFlow's")
    import tensorflow as tf

    from tfcf.influence import _Pieces

    model = _conv_tail_model()
    full = flat_graph(model)
    (head, tail), _ = full.segments([full.resolve("cut")])
    graph = flat_graph(tail)   # inputs: the cut's values, the style's Dense output
    pieces = _Pieces.of(graph, list(graph.inputs), whole=False)
    assert [layer.name for layer in pieces.outside] == [
        "conv1", "act1", "opaque", "depthwise", "rgb"]
    assert not pieces.products
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 8)).astype("float32")
    inputs = [np.asarray(t) for t in head(z)]
    ours = tf.function(lambda *a: pieces(list(a)))(*inputs)[0]
    np.testing.assert_allclose(np.asarray(ours), np.asarray(graph.evaluate(
        dict(zip(graph.inputs, inputs)))[0]), rtol=1e-5, atol=1e-5)
    x_in = keras.Input((8, 8, 4))
    h = layers.Conv2D(4, 3, padding="same")(layers.UpSampling2D(1)(x_in))
    chain = flat_graph(keras.Model(x_in, layers.Conv2D(3, 3)(layers.ELU()(h))))
    assert _Pieces.of(chain, list(chain.inputs), whole=False) is None


def test_influence_maps_between_convolutions_in_pieces_equal_the_graph(monkeypatch):
    """The same maps whether a downstream part with convolutions runs in XLA pieces or as a
    TensorFlow graph (elementary and module maps)."""
    model = _conv_tail_model()
    z = np.random.default_rng(1).normal(size=(10, 8)).astype("float32")
    options = dict(num_pairs=12, seed=3, batch_size=64, progress=False)
    ours = tfcf.influence_maps(model, "cut", z, **options)
    modules = tfcf.influence_maps(model, "cut", z, channels=[[0, 1], [2, 3, 4]], **options)
    if keras.backend.backend() == "tensorflow":
        assert all(engine.pieces is not None for engine in influence._ENGINES[model].values())
    monkeypatch.setattr(influence._Pieces, "of", classmethod(lambda cls, *a, **k: None))
    influence._ENGINES.pop(model, None)
    np.testing.assert_allclose(ours, tfcf.influence_maps(model, "cut", z, **options),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(modules, tfcf.influence_maps(
        model, "cut", z, channels=[[0, 1], [2, 3, 4]], **options), rtol=1e-5, atol=1e-6)
