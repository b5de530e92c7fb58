"""A catalogue of generators in the styles researchers write Keras code in, each run through the
whole README pipeline and checked against a hand computation.

Each style is a tiny model with random weights, built here from layer objects kept by name, so
that the downstream part of the cut can be run BY HAND (plain layer calls and NumPy): split at
every layer, hybrids, elementary and module influence maps (eq. 2), cluster -> module hybrids
(the README's example, dead channels included), and the SDR of every successive pair of
convolutions (a brute-force DTFT of the two kernels, the fine one convolved with the impulse
response of any up-sampling layer between them).
"""

import dataclasses
import functools

import keras
import numpy as np
import pytest
from keras import layers, ops
from scipy.signal import convolve2d

import tfcf
from conftest import randomize_batchnorm
from tfcf import spectral
from tfcf.graph import flat_graph

NUM_SAMPLES, NUM_PAIRS = 6, 8


def np_(value):
    return np.array(keras.ops.convert_to_numpy(value))


@dataclasses.dataclass
class Style:
    """A generator, the layer to cut at and the model by hand on either side of the cut."""

    name: str
    model: keras.Model
    at: str                  # layer to cut at (its output has the batch axis)
    head: object             # inputs (list) -> activations at `at`, by hand
    tail: object             # (activations, inputs) -> outputs, by hand
    sample: object           # (n, seed) -> list of input arrays
    pairs: list              # [(a, b, stride, resize layer name or None)] by hand
    batched: tuple = None    # per input: has the batch axis (default all)
    dead: tuple = ()         # channels of `at` dead by construction

    def rows(self, inputs, index):
        flags = self.batched or (True,) * len(inputs)
        return [x[index] if flag else x for x, flag in zip(inputs, flags)]


# ----------------------------------------------------------------------------- the styles

def sequential_dcgan():
    """keras.Sequential, default layer names, BN + ReLU + stride-2 deconvolutions."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8,)),
        layers.Dense(4 * 4 * 8, use_bias=False),
        layers.Reshape((4, 4, 8)),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2DTranspose(6, 4, strides=2, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh"),
    ])
    randomize_batchnorm(model, seed=1)
    L = model.layers
    return Style(
        "sequential_dcgan", model, L[3].name,
        head=lambda x: L[3](L[2](L[1](L[0](x[0])), training=False)),
        tail=lambda a, x: L[7](L[6](L[5](L[4](a), training=False))),
        sample=lambda n, seed: [_normal(n, 8, seed)],
        pairs=[(L[4].name, L[7].name, 2, None)])


def functional_skips():
    """Functional; nearest and bilinear up-sampling + convolution; a skip bypasses the cut."""
    keras.utils.set_random_seed(2)
    L = _Layers(
        layers.Dense(4 * 4 * 6, name="lin"), layers.Reshape((4, 4, 6), name="reshape"),
        layers.ReLU(name="stem"), layers.UpSampling2D(2, name="up1"),
        layers.Conv2D(6, 3, padding="same", name="conv1"), layers.LeakyReLU(0.2, name="act1"),
        layers.UpSampling2D(2, interpolation="bilinear", name="up2"),
        layers.Conv2D(5, 3, padding="same", name="conv2"), layers.ReLU(name="act2"),
        layers.UpSampling2D(4, name="skip_up"), layers.Concatenate(name="skip_concat"),
        layers.Conv2D(3, 3, padding="same", activation="tanh", name="image"))

    def stem(x):
        return L.stem(L.reshape(L.lin(x[0])))

    def tail(a, x):
        return L.image(L.skip_concat([L.act2(L.conv2(L.up2(a))), L.skip_up(stem(x))]))

    z = keras.Input((8,), name="z")
    model = keras.Model(z, tail(L.act1(L.conv1(L.up1(stem([z])))), [z]), name="skips")
    return Style("functional_skips", model, "act1",
                 head=lambda x: L.act1(L.conv1(L.up1(stem(x)))), tail=tail,
                 sample=lambda n, seed: [_normal(n, 8, seed)],
                 pairs=[("conv1", "conv2", 2, "up2")])


def conditional_nested():
    """[z, y] -> a nested Sequential generator; y also feeds the output after the cut."""
    keras.utils.set_random_seed(3)
    generator = keras.Sequential([
        keras.Input((4, 4, 6)),
        layers.Conv2DTranspose(5, 4, strides=2, padding="same", name="deconv1"),
        layers.BatchNormalization(name="bn1"), layers.ReLU(name="relu1"),
        layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="deconv2"),
        layers.ReLU(name="relu2"),
        layers.Conv2DTranspose(3, 3, padding="same", name="deconv3"),
    ], name="generator")
    L = _Layers(layers.Concatenate(name="zy"), layers.Dense(4 * 4 * 6, name="lin"),
                layers.Reshape((4, 4, 6), name="reshape"), layers.Dense(3, name="cond"),
                layers.Reshape((1, 1, 3), name="cond_reshape"), layers.Add(name="add_cond"),
                layers.Activation("tanh", name="image"))
    G = {layer.name: layer for layer in generator.layers}

    def code(x):
        return L.reshape(L.lin(L.zy([x[0], x[1]])))

    def tail(a, x):
        image = G["deconv3"](G["relu2"](G["deconv2"](a)))
        return L.image(L.add_cond([image, L.cond_reshape(L.cond(x[1]))]))

    z, y = keras.Input((8,), name="z"), keras.Input((3,), name="y")
    h = generator(code([z, y]))
    model = keras.Model([z, y], L.image(L.add_cond([h, L.cond_reshape(L.cond(y))])),
                        name="conditional")
    randomize_batchnorm(model, seed=3)
    return Style(
        "conditional_nested", model, "generator/relu1",
        head=lambda x: G["relu1"](G["bn1"](G["deconv1"](code(x)), training=False)), tail=tail,
        sample=lambda n, seed: [_normal(n, 8, seed),
                                np.eye(3, dtype="float32")[np.arange(n) % 3]],
        pairs=[("generator/deconv1", "generator/deconv2", 2, None),
               ("generator/deconv2", "generator/deconv3", 1, None)])


def progressive(alpha_without_batch_axis):
    """Fade-in of a new 8x8 block: (1 - alpha) * old block up-sampled + alpha * new block.

    The coefficient is ``alpha[0]`` of an input [B, 1] (shape (1,): no batch axis), or an input
    declared without a batch axis, ``keras.Input(batch_shape=(1,))``."""
    keras.utils.set_random_seed(4)
    L = _Layers(
        layers.Dense(4 * 4 * 6, name="lin"), layers.Reshape((4, 4, 6), name="reshape"),
        layers.Conv2D(6, 3, padding="same", name="conv1"), layers.LeakyReLU(0.2, name="block1"),
        layers.Conv2D(3, 1, name="to_rgb_low"), layers.UpSampling2D(2, name="up_low"),
        layers.UpSampling2D(2, name="up"), layers.Conv2D(5, 3, padding="same", name="conv2"),
        layers.LeakyReLU(0.2, name="block2"), layers.Conv2D(3, 1, name="to_rgb_high"))

    def head(x):
        return L.block1(L.conv1(L.reshape(L.lin(x[0]))))

    def blend(a, x, coefficient):
        low = L.up_low(L.to_rgb_low(a))
        high = L.to_rgb_high(L.block2(L.conv2(L.up(a))))
        return low * (1 - coefficient) + high * coefficient

    z = keras.Input((8,), name="z")
    if alpha_without_batch_axis:
        alpha = keras.Input(batch_shape=(1,), name="alpha")
        model = keras.Model([z, alpha], blend(head([z]), [z, alpha], alpha), name="progressive")
        tail = lambda a, x: blend(np_(a), x, x[1])                       # noqa: E731
        sample = lambda n, seed: [_normal(n, 8, seed), np.float32([0.3])]  # noqa: E731
    else:
        alpha = keras.Input((1,), name="alpha")
        model = keras.Model([z, alpha], blend(head([z]), [z, alpha], alpha[0]),
                            name="progressive")
        tail = lambda a, x: blend(np_(a), x, x[1][0])                    # noqa: E731
        sample = lambda n, seed: [_normal(n, 8, seed), np.full((n, 1), 0.3, "float32")]  # noqa
    return Style(
        "progressive_" + ("global_alpha" if alpha_without_batch_axis else "alpha_row"), model,
        "block1", head=head, tail=tail, sample=sample,
        pairs=[("conv1", "conv2", 2, "up"), ("conv1", "to_rgb_low", 1, None),
               ("conv2", "to_rgb_high", 1, None)],
        batched=(True, not alpha_without_batch_axis))


class PixelNorm(layers.Layer):
    """ProGAN's pixelwise feature normalisation, on keras.ops."""

    def call(self, x):
        return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-8)


class LearnedConstant(layers.Layer):
    """StyleGAN's learned 4x4 input, repeated over the batch of the latent it is called on."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.constant_shape = tuple(shape)

    def build(self, input_shape):
        self.constant = self.add_weight(shape=self.constant_shape, initializer="random_normal")

    def call(self, z):
        ones = ops.reshape(ops.ones_like(z[:, :1]), (-1, 1, 1, 1))
        return ones * self.constant[None]


class AdaIN(layers.Layer):
    """Adaptive instance normalisation: [x, scale, bias] -> norm(x) * (1 + scale) + bias."""

    def call(self, inputs):
        x, scale, bias = inputs
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        variance = ops.var(x, axis=(1, 2), keepdims=True)
        normal = (x - mean) * ops.rsqrt(variance + 1e-5)
        return normal * (1 + scale[:, None, None, :]) + bias[:, None, None, :]


def custom_layers():
    """StyleGAN-like: mapping network, learned constant, AdaIN and PixelNorm custom layers."""
    keras.utils.set_random_seed(5)
    L = _Layers(
        layers.Dense(8, name="map1"), layers.LeakyReLU(0.2, name="map1_act"),
        layers.Dense(8, name="w"), LearnedConstant((4, 4, 6), name="const"),
        layers.Conv2D(6, 3, padding="same", name="conv1"), layers.Dense(6, name="style1_scale"),
        layers.Dense(6, name="style1_bias"), AdaIN(name="adain1"),
        layers.LeakyReLU(0.2, name="act1"), layers.UpSampling2D(2, name="up"),
        layers.Conv2D(5, 3, padding="same", name="conv2"), layers.Dense(5, name="style2_scale"),
        layers.Dense(5, name="style2_bias"), AdaIN(name="adain2"), PixelNorm(name="pixnorm"),
        layers.LeakyReLU(0.2, name="act2"), layers.Conv2D(3, 1, name="to_rgb"))

    def w(x):
        return L.w(L.map1_act(L.map1(x[0])))

    def head(x):
        style = w(x)
        return L.act1(L.adain1([L.conv1(L.const(x[0])), L.style1_scale(style),
                                L.style1_bias(style)]))

    def tail(a, x):
        style = w(x)
        h = L.adain2([L.conv2(L.up(a)), L.style2_scale(style), L.style2_bias(style)])
        return L.to_rgb(L.act2(L.pixnorm(h)))

    z = keras.Input((8,), name="z")
    model = keras.Model(z, tail(head([z]), [z]), name="stylish")
    return Style("custom_layers", model, "act1", head=head, tail=tail,
                 sample=lambda n, seed: [_normal(n, 8, seed)], pairs=[])


def relu_dead_channels():
    """Nearest up-sampling + convolutions; channels 2 and 5 of act1 are dead ReLUs."""
    keras.utils.set_random_seed(6)
    L = _Layers(
        layers.Dense(4 * 4 * 6, name="lin"), layers.Reshape((4, 4, 6), name="reshape"),
        layers.Conv2D(8, 3, padding="same", name="conv1"), layers.ReLU(name="act1"),
        layers.UpSampling2D(2, name="up1"), layers.Conv2D(6, 3, padding="same", name="conv2"),
        layers.ReLU(name="act2"), layers.UpSampling2D(2, name="up2"),
        layers.Conv2D(3, 3, padding="same", activation="tanh", name="image"))

    def head(x):
        return L.act1(L.conv1(L.reshape(L.lin(x[0]))))

    def tail(a, x):
        return L.image(L.up2(L.act2(L.conv2(L.up1(a)))))

    z = keras.Input((8,), name="z")
    model = keras.Model(z, tail(head([z]), [z]), name="dead_relus")
    kernel, bias = L.conv1.get_weights()
    kernel[..., [2, 5]] = 0.0
    bias[[2, 5]] = -1.0                     # pre-activation -1 for every sample: dead
    L.conv1.set_weights([kernel, bias])
    return Style("relu_dead_channels", model, "act1", head=head, tail=tail,
                 sample=lambda n, seed: [_normal(n, 8, seed)],
                 pairs=[("conv1", "conv2", 2, "up1"), ("conv2", "image", 2, "up2")],
                 dead=(2, 5))


def vq_decoder():
    """A VQ-VAE-style decoder of a 4-D code [B, 4, 4, 4]: residual block, two deconvolutions."""
    keras.utils.set_random_seed(7)
    L = _Layers(
        layers.Conv2D(8, 3, padding="same", name="conv_in"), layers.ReLU(name="act_in"),
        layers.Conv2D(8, 3, padding="same", name="res_a"), layers.ReLU(name="res_act"),
        layers.Conv2D(8, 1, name="res_b"), layers.Add(name="res_add"),
        layers.ReLU(name="res_out"),
        layers.Conv2DTranspose(6, 4, strides=2, padding="same", name="up1"),
        layers.ReLU(name="act_up1"), layers.Conv2DTranspose(3, 4, strides=2, padding="same",
                                                            name="up2"))

    def head(x):
        h = L.act_in(L.conv_in(x[0]))
        return L.res_out(L.res_add([h, L.res_b(L.res_act(L.res_a(h)))]))

    code = keras.Input((4, 4, 4), name="code")
    model = keras.Model(code, L.up2(L.act_up1(L.up1(head([code])))), name="vq_decoder")
    return Style("vq_decoder_4d_code", model, "res_out", head=head,
                 tail=lambda a, x: L.up2(L.act_up1(L.up1(a))),
                 sample=lambda n, seed: [np.random.default_rng(seed).normal(
                     size=(n, 4, 4, 4)).astype("float32")],
                 pairs=[("conv_in", "res_a", 1, None), ("res_a", "res_b", 1, None),
                        ("up1", "up2", 2, None)])


class VAE(keras.Model):
    """A subclassed VAE holding a functional decoder and a Sequential encoder."""

    def __init__(self):
        super().__init__(name="vae")
        self.encoder = keras.Sequential([
            keras.Input((16, 16, 3)), layers.Conv2D(4, 4, strides=2, padding="same"),
            layers.Flatten(), layers.Dense(12)], name="encoder")
        code = keras.Input((6,), name="code")
        h = layers.Dense(4 * 4 * 8, name="dec_fc")(code)
        h = layers.ReLU(name="dec_act0")(layers.Reshape((4, 4, 8), name="dec_reshape")(h))
        h = layers.Conv2DTranspose(6, 4, strides=2, padding="same", name="dec_deconv1")(h)
        h = layers.ReLU(name="dec_act1")(h)
        h = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="sigmoid",
                                   name="dec_deconv2")(h)
        self.decoder = keras.Model(code, h, name="decoder")

    def call(self, images):
        mean, _ = ops.split(self.encoder(images), 2, axis=-1)
        return self.decoder(mean)


def subclassed_vae_decoder():
    keras.utils.set_random_seed(8)
    vae = VAE()
    vae(np.zeros((1, 16, 16, 3), "float32"))
    decoder = vae.decoder
    get = decoder.get_layer
    return Style(
        "subclassed_vae.decoder", decoder, "dec_act0",
        head=lambda x: get("dec_act0")(get("dec_reshape")(get("dec_fc")(x[0]))),
        tail=lambda a, x: get("dec_deconv2")(get("dec_act1")(get("dec_deconv1")(a))),
        sample=lambda n, seed: [_normal(n, 6, seed)],
        pairs=[("dec_deconv1", "dec_deconv2", 2, None)])


def tf_keras_h5(folder):
    """A generator built and saved as .h5 by tf.keras 2 (tf_keras), loaded by Keras 3."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(9)
    tk = tf_keras.layers
    z = tf_keras.Input((8,), name="z")
    h = tk.Reshape((4, 4, 6), name="reshape")(tk.Dense(4 * 4 * 6, name="lin")(z))
    h = tk.ReLU(name="block1")(tk.BatchNormalization(name="bn1")(h))
    h = tk.Conv2D(5, 3, padding="same", name="conv2")(tk.UpSampling2D(2, name="up")(h))
    h = tk.LeakyReLU(0.2, name="block2")(h)
    h = tk.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh", name="image")(h)
    original = tf_keras.Model(z, h, name="tf_keras_generator")
    path = folder / "generator.h5"
    original.save(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except (TypeError, ValueError) as error:
        # tf.keras 2 writes groups=1 into Conv2DTranspose configs; Keras 3's Conv2DTranspose
        # takes no `groups` argument and refuses the file. The one-line shim below loads it.
        assert "groups" in str(error)
        model = keras.models.load_model(path, compile=False,
                                        custom_objects={"Conv2DTranspose": _Conv2DTranspose})
    get = model.get_layer
    z_check = _normal(4, 8, 0)
    np.testing.assert_allclose(np_(model(z_check)), original(z_check).numpy(), atol=1e-6)
    return Style(
        "tf_keras_h5", model, "block1",
        head=lambda x: get("block1")(get("bn1")(get("reshape")(get("lin")(x[0])),
                                                training=False)),
        tail=lambda a, x: get("image")(get("block2")(get("conv2")(get("up")(a)))),
        sample=lambda n, seed: [_normal(n, 8, seed)],
        pairs=[("conv2", "image", 2, None)])


class _Conv2DTranspose(keras.layers.Conv2DTranspose):
    """Keras 3's Conv2DTranspose accepting tf.keras 2's ``groups=1``."""

    def __init__(self, *args, groups=1, **kwargs):
        if groups != 1:
            raise ValueError(f"grouped transposed convolutions are not supported: {groups}")
        super().__init__(*args, **kwargs)


class _Layers:
    """Layers by name, as attributes."""

    def __init__(self, *layer_list):
        self.__dict__.update({layer.name: layer for layer in layer_list})


def _normal(n, size, seed):
    return np.random.default_rng(seed).normal(size=(n, size)).astype("float32")


BUILDERS = {
    "sequential_dcgan": sequential_dcgan,
    "functional_skips": functional_skips,
    "conditional_nested": conditional_nested,
    "progressive_alpha_row": functools.partial(progressive, False),
    "progressive_global_alpha": functools.partial(progressive, True),
    "custom_layers": custom_layers,
    "relu_dead_channels": relu_dead_channels,
    "vq_decoder_4d_code": vq_decoder,
    "subclassed_vae.decoder": subclassed_vae_decoder,
    "tf_keras_h5": None,
}


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = (tf_keras_h5(tmp_path_factory.mktemp("h5")) if name == "tf_keras_h5"
                           else BUILDERS[name]())
        return cache[name]

    return get


@pytest.fixture(params=list(BUILDERS))
def style(request, styles):
    return styles(request.param)


# ----------------------------------------------------------------------------- by hand

def hand_maps(style, inputs, modules, seed=0):
    """Eq. 2 by hand: pairs drawn as documented, channels swapped in NumPy, the tail by hand."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, NUM_SAMPLES, NUM_PAIRS)
    offset = rng.integers(0, NUM_SAMPLES - 1, NUM_PAIRS)
    source = offset + (offset >= base)
    x_base, x_source = style.rows(inputs, base), style.rows(inputs, source)
    a_base, a_source = np_(style.head(x_base)), np_(style.head(x_source))
    original = np_(style.tail(a_base, x_base)).astype("float64")
    maps = []
    for module in modules:
        hybrid = a_base.copy()
        hybrid[..., module] = a_source[..., module]
        out = np_(style.tail(hybrid, x_base)).astype("float64")
        maps.append(np.abs(out - original).mean(axis=0).mean(axis=-1))
    return np.stack(maps)


def hand_hybrid(style, channels, base, source):
    a_base, a_source = np_(style.head(base)), np_(style.head(source))
    a_base[..., channels] = a_source[..., channels]
    return np_(style.tail(a_base, base))


def forward(model, inputs):
    return np_(model(inputs[0] if len(inputs) == 1 else inputs, training=False))


# ----------------------------------------------------------------------------- the pipeline

def test_split_at_every_layer(style):
    inputs = style.sample(4, 11)
    golden = forward(style.model, inputs)
    np.testing.assert_allclose(np_(style.tail(style.head(inputs), inputs)), golden, atol=1e-5)
    graph = flat_graph(style.model)
    for name in graph.op_names():
        split = tfcf.split(style.model, name)
        head, tail = split
        state = head(inputs[0] if len(inputs) == 1 else inputs)
        np.testing.assert_allclose(np_(tail(state)), golden, atol=1e-5, err_msg=name)
        # what crosses the cut besides the activations has the batch axis, or is a model
        # input declared without one
        for tid in graph.segments([graph.resolve(name)])[1][1][len(split.cut):]:
            assert graph.batched(tid) or tid in graph.inputs, (name, graph.specs[tid])


def test_hybrid_equals_hand_swap(style):
    base, source = style.sample(5, 12), style.sample(5, 13)
    ours = tfcf.hybrid(style.model, style.at, [0, 2], base=base, source=source, batch_size=2)
    np.testing.assert_allclose(ours, hand_hybrid(style, [0, 2], base, source), atol=1e-5)


def test_readme_pipeline_by_hand(style):
    """Elementary maps, module maps, cluster -> module hybrids: each equal to the hand value."""
    z = style.sample(NUM_SAMPLES, 14)
    channels = int(np_(style.head(style.sample(1, 0))).shape[-1])
    maps = tfcf.influence_maps(style.model, style.at, z, num_pairs=NUM_PAIRS, batch_size=4,
                               progress=False)
    golden = hand_maps(style, z, [[c] for c in range(channels)])
    np.testing.assert_allclose(maps, golden, atol=1e-5)

    clustering = tfcf.cluster(maps, k=2)
    dead = [c for c in range(channels) if not golden[c].any()]
    assert set(style.dead) <= set(dead)
    np.testing.assert_array_equal(clustering.dead, dead)
    modules = [clustering.members(j) for j in range(2)]
    assert sorted(np.concatenate(modules + [clustering.dead]).tolist()) == list(range(channels))

    module_maps = tfcf.influence_maps(style.model, style.at, z, channels=modules,
                                      num_pairs=NUM_PAIRS, batch_size=16, progress=False)
    np.testing.assert_allclose(module_maps, hand_maps(style, z, modules), atol=1e-5)

    base, source = style.sample(4, 15), style.sample(4, 16)
    for module in modules:
        hybrids = tfcf.hybrid(style.model, style.at, module, base=base, source=source)
        np.testing.assert_allclose(hybrids, hand_hybrid(style, module, base, source),
                                   atol=1e-5)


def test_sdr_of_every_pair_by_hand(style):
    expected = {(a, b) for a, b, _, _ in style.pairs}
    assert set(spectral.conv_pairs(style.model)) == expected
    if not expected:
        with pytest.raises(ValueError, match="no two successive convolutions.*adain"):
            spectral.model_sdr(style.model)
        return
    rhos = spectral.model_sdr(style.model)
    assert set(rhos) == expected
    rng = np.random.default_rng(0)
    for a, b, stride, resize in style.pairs:
        kernel_a, kernel_b = hand_kernels(style.model, a), hand_kernels(style.model, b)
        rho = rhos[(a, b)]
        assert rho.shape == (kernel_a.shape[2], kernel_a.shape[3], kernel_b.shape[3])
        for i, m, o in [(0, 0, 0)] + [tuple(rng.integers(rho.shape)) for _ in range(3)]:
            fine, coarse = kernel_b[:, :, m, o], kernel_a[:, :, i, m]
            if resize is not None:
                fine = convolve2d(fine, impulse_response(style.model, resize))
            np.testing.assert_allclose(rho[i, m, o], dtft_sdr(fine, coarse, stride), rtol=1e-7,
                                       err_msg=f"{a} -> {b} pathway {i, m, o}")
    by_resolution = spectral.sdr_by_resolution(style.model)
    assert sum(v.size for v in by_resolution.values()) == sum(r.size for r in rhos.values())


def hand_kernels(model, name):
    """[kh, kw, in, out] of a conv layer found by walking the model's (nested) layers."""
    layer = model
    for part in name.split("/"):
        layer = layer.get_layer(part)
    kernel = np_(layer.kernel)
    return np.transpose(kernel, (0, 1, 3, 2)) if isinstance(
        layer, keras.layers.Conv2DTranspose) else kernel


def impulse_response(model, name):
    """The up-sampling layer's response to one unit sample, cropped: its interpolation kernel."""
    impulse = np.zeros((1, 5, 5, 1), "float32")
    impulse[0, 2, 2, 0] = 1.0
    response = np_(model.get_layer(name)(impulse))[0, :, :, 0]
    rows, cols = np.flatnonzero(response.any(axis=1)), np.flatnonzero(response.any(axis=0))
    return response[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype("float64")


def dtft_sdr(fine, coarse, stride, grid=128):
    """rho by an explicit 2-D DTFT of both kernels on a fine frequency grid."""
    u = np.arange(grid) / grid

    def dtft(kernel, scale):
        rows = np.exp(-2j * np.pi * np.outer(scale * u, np.arange(kernel.shape[0])))
        cols = np.exp(-2j * np.pi * np.outer(scale * u, np.arange(kernel.shape[1])))
        return rows @ kernel.astype("float64") @ cols.T

    product = np.mean(np.abs(dtft(fine, 1) * dtft(coarse, stride)) ** 2)
    with np.errstate(invalid="ignore"):  # a dead channel's zero kernel: NaN, as layer_sdr says
        return product / (np.mean(np.abs(dtft(fine, 1)) ** 2)
                          * np.mean(np.abs(dtft(coarse, 1)) ** 2))


# ----------------------------------------------------------------------------- per style

def test_subclassed_model_is_refused_naming_its_decoder():
    keras.utils.set_random_seed(8)
    vae = VAE()
    vae(np.zeros((1, 16, 16, 3), "float32"))
    with pytest.raises(TypeError, match=r"'VAE', a subclassed model.*model\.encoder \(Sequential "
                                        r"'encoder'\), model\.decoder \(Functional 'decoder'\).*"
                                        r"tfcf\.split\(model\.decoder, 'dec_"):
        tfcf.split(vae, "dec_act0")


def test_dead_channels_readme_example(styles):
    """The README's module hybrid on a generator with dead channels swaps the layer's channels."""
    style = styles("relu_dead_channels")
    z = style.sample(NUM_SAMPLES, 21)
    maps = tfcf.influence_maps(style.model, "act1", z, num_pairs=NUM_PAIRS, progress=False)
    assert not maps[[2, 5]].any() and maps[[0, 1, 3, 4, 6, 7]].any(axis=(1, 2)).all()
    clustering = tfcf.cluster(maps, k=3)
    np.testing.assert_array_equal(clustering.dead, [2, 5])
    live = tfcf.live_channels(maps)
    by_rows = tfcf.cluster(maps[live], k=3)          # the old way: cluster the live rows only
    z1, z2 = style.sample(4, 22), style.sample(4, 23)
    for j in range(3):
        np.testing.assert_array_equal(clustering.members(j), live[by_rows.members(j)])
        hybrids = tfcf.hybrid(style.model, "act1", clustering.members(j), base=z1, source=z2)
        np.testing.assert_allclose(hybrids, hand_hybrid(style, clustering.members(j), z1, z2),
                                   atol=1e-5)


def test_progressive_generator_carries_alpha_not_its_first_row(styles):
    """1 - alpha[0] (shape (1,)) is recomputed in the tail, which takes alpha with the batch."""
    style = styles("progressive_alpha_row")
    split = tfcf.split(style.model, "block1")
    assert split.carried == ["input 1 (alpha)"]
    z, alpha = style.sample(3, 31)
    alpha = np.float32([[0.25], [0.9], [0.9]])      # only the first row counts, as in the model
    head, tail = split
    activations, carried = head([z, alpha])
    golden = np_(style.tail(activations, [z, alpha]))
    np.testing.assert_allclose(np_(tail([activations, carried])), golden, atol=1e-6)
    # keras.ops calls are named get_item, get_item_1, ... by a process-wide counter
    [row] = [name for name in flat_graph(style.model).op_names() if name.startswith("get_item")]
    with pytest.raises(ValueError, match=rf"'{row}'.*shape \(1,\), without the batch axis"):
        tfcf.hybrid(style.model, row, [0], base=[z, alpha], source=[z, alpha])


def test_progressive_global_alpha_hybrid_takes_each_pass_own_alpha(styles):
    """An input without batch axis goes whole to each pass: base alpha != source alpha."""
    style = styles("progressive_global_alpha")
    (z1, _), (z2, _) = style.sample(5, 41), style.sample(5, 42)
    base, source = [z1, np.float32([0.2])], [z2, np.float32([0.7])]
    ours = tfcf.hybrid(style.model, "block1", [1, 4], base=base, source=source, batch_size=2)
    np.testing.assert_allclose(ours, hand_hybrid(style, [1, 4], base, source), atol=1e-5)
    with pytest.raises(ValueError, match=r"alpha\) has shape \(2,\); the model expects \(1,\) "
                                         r"with no batch axis"):
        tfcf.hybrid(style.model, "block1", [1], base=[z1, np.float32([0.2, 0.3])], source=source)


def test_causal_effects_leave_dead_channels_out(styles):
    """Module influence per k (Fig. 8 right) by hand: modules are the clustering's layer
    channels, the whole layer (k = 1) is its live channels."""
    from tfcf.effects import causal_effect_magnitude

    style = styles("relu_dead_channels")
    z = style.sample(NUM_SAMPLES, 24)
    maps = tfcf.influence_maps(style.model, "act1", z, num_pairs=NUM_PAIRS, progress=False)
    effects = causal_effect_magnitude(style.model, "act1", z, maps, ks=(1, 2),
                                      num_pairs=NUM_PAIRS, progress=False)
    clustering = tfcf.cluster(maps, k=2)
    modules = [[0, 1, 3, 4, 6, 7]] + [clustering.members(j).tolist() for j in range(2)]
    modules = [m for m in modules if m]
    assert effects["module_sizes"] == [len(m) for m in modules]
    golden = hand_maps(style, z, modules).mean(axis=(1, 2))
    np.testing.assert_allclose(effects["module_influences"], golden, rtol=1e-5)


@pytest.mark.parametrize("name", ["progressive_alpha_row", "progressive_global_alpha"])
def test_progressive_linear_shortcut_with_alpha_carried(styles, name):
    """Cut before conv1 (linear, read by nothing else): the shortcut path carries alpha too."""
    style = styles(name)
    get = style.model.get_layer
    by_hand = dataclasses.replace(
        style, at="reshape", head=lambda x: get("reshape")(get("lin")(x[0])),
        tail=lambda a, x: style.tail(get("block1")(get("conv1")(a)), x))
    z = style.sample(NUM_SAMPLES, 51)
    maps, record = tfcf.influence_maps(style.model, "reshape", z, num_pairs=NUM_PAIRS,
                                       batch_size=4, progress=False, return_record=True)
    assert record.method == "linear"
    np.testing.assert_allclose(maps, hand_maps(by_hand, z, [[c] for c in range(6)]), atol=1e-5)
