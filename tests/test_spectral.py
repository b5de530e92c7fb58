"""Spectral dependency ratios and the stretch distortion against brute-force references."""

import keras
import numpy as np
import pytest
from scipy.signal import convolve2d

from tfcf import distortion, spectral


def dtft_sdr(fine, coarse, stride, grid=128):
    """rho by an explicit 2-D DTFT of both kernels on a fine frequency grid."""
    u = np.arange(grid) / grid

    def dtft(kernel, scale):
        rows = np.exp(-2j * np.pi * np.outer(scale * u, np.arange(kernel.shape[0])))
        cols = np.exp(-2j * np.pi * np.outer(scale * u, np.arange(kernel.shape[1])))
        return rows @ kernel @ cols.T

    product = np.mean(np.abs(dtft(fine, 1) * dtft(coarse, stride)) ** 2)
    return product / (np.mean(np.abs(dtft(fine, 1)) ** 2) * np.mean(np.abs(dtft(coarse, 1)) ** 2))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_kernel_sdr_equals_brute_force_dtft(stride):
    rng = np.random.default_rng(stride)
    for _ in range(3):
        fine, coarse = rng.normal(size=(5, 5)), rng.normal(size=(4, 3))
        assert spectral.kernel_sdr(fine, coarse, stride) == pytest.approx(
            dtft_sdr(fine, coarse, stride), rel=1e-9)
    smooth = np.outer([1, 2, 1], [1, 2, 1]).astype(float)
    # a low-pass fine kernel on a low-pass coarse kernel: positive dependency (rho > 1)
    assert spectral.kernel_sdr(smooth, smooth, 1) > 1.2


def test_delta_coarse_kernel_gives_one():
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    rng = np.random.default_rng(0)
    for stride in (1, 2):
        assert spectral.kernel_sdr(rng.normal(size=(5, 5)), delta, stride) == pytest.approx(1.0)
    assert np.isnan(spectral.kernel_sdr(np.zeros((3, 3)), delta, 2))


def _tiny_generator_and_discriminator():
    keras.utils.set_random_seed(1)
    z = keras.Input((4, 4, 5))
    h = keras.layers.Conv2DTranspose(4, 5, strides=2, padding="same", name="g1")(z)
    h = keras.layers.BatchNormalization(name="g1_bn")(h)
    h = keras.layers.ReLU(name="g1_relu")(h)
    out = keras.layers.Conv2DTranspose(3, 5, strides=2, padding="same", name="g2")(h)
    generator = keras.Model(z, out)
    x = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 4, strides=2, padding="same", name="d1")(x)
    h = keras.layers.LeakyReLU(0.2, name="d1_lrelu")(h)
    h = keras.layers.Conv2D(6, 4, strides=2, padding="same", name="d2")(h)
    h = keras.layers.Dense(2, name="dense")(keras.layers.Flatten()(h))
    return generator, keras.Model(x, h)


def test_layer_sdr_equals_kernel_sdr_per_pathway():
    generator, discriminator = _tiny_generator_and_discriminator()
    rho = spectral.layer_sdr(generator, "g1", "g2")
    assert rho.shape == (5, 4, 3)
    a = np.asarray(generator.get_layer("g1").kernel)  # (kh, kw, out=4, in=5)
    b = np.asarray(generator.get_layer("g2").kernel)  # (kh, kw, out=3, in=4)
    for i, m, o in [(0, 0, 0), (4, 3, 2), (2, 1, 0), (3, 2, 1)]:
        # generator: the later layer's kernel is the fine one, the stride is its stride
        golden = spectral.kernel_sdr(b[:, :, o, m], a[:, :, m, i], 2)
        assert rho[i, m, o] == pytest.approx(golden, rel=1e-9)
    rho = spectral.layer_sdr(discriminator, "d1", "d2")
    assert rho.shape == (3, 4, 6)
    a = np.asarray(discriminator.get_layer("d1").kernel)  # (kh, kw, in=3, out=4)
    b = np.asarray(discriminator.get_layer("d2").kernel)  # (kh, kw, in=4, out=6)
    for i, m, o in [(0, 0, 0), (2, 3, 5), (1, 2, 4)]:
        # discriminator: the earlier layer's kernel is the fine one
        golden = spectral.kernel_sdr(a[:, :, i, m], b[:, :, m, o], 2)
        assert rho[i, m, o] == pytest.approx(golden, rel=1e-9)
    assert spectral.pair_layout(generator, "g1", "g2") == ("b", "a", 2)
    assert spectral.pair_layout(discriminator, "d1", "d2") == ("a", "b", 2)


def test_pairs_inside_nested_models(nested_generator):
    """Convolutions pair across and inside nested functional models, under qualified names."""
    assert spectral.conv_pairs(nested_generator) == [
        ("shared:0", "block/conv_a"), ("block/conv_a", "block/conv_b"), ("shared:1", "image")]
    rho = spectral.layer_sdr(nested_generator, "block/conv_a", "block/conv_b")
    a = np.asarray(nested_generator.get_layer("block").get_layer("conv_a").kernel)
    b = np.asarray(nested_generator.get_layer("block").get_layer("conv_b").kernel)
    for i, m, o in [(0, 0, 0), (5, 4, 3), (2, 1, 0)]:
        # two stride-1 convolutions: the earlier kernel is the fine one
        golden = spectral.kernel_sdr(a[:, :, i, m], b[:, :, m, o], 1)
        assert rho[i, m, o] == pytest.approx(golden, rel=1e-9)
    with pytest.raises(ValueError, match="'image' reads shared:1.*through post"):
        spectral.layer_sdr(nested_generator, "block/conv_b", "image")


TENT = {2: np.array([0.25, 0.75, 0.75, 0.25]), 3: np.array([1, 2, 3, 2, 1]) / 3.0}


def _resize_conv(interpolation, factor, seed=0):
    """conv a -> ReLU -> UpSampling2D(factor, interpolation) -> conv b."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, padding="same", name="a")(x)
    h = keras.layers.ReLU(name="a_relu")(h)
    h = keras.layers.UpSampling2D(factor, interpolation=interpolation, name="up")(h)
    return keras.Model(x, keras.layers.Conv2D(2, 3, padding="same", name="b")(h))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("factor", [2, 3])
def test_upsampling_is_zero_insertion_then_the_interpolation_kernel(interpolation, factor):
    """Keras' UpSampling2D equals zeros inserted then a convolution with the kernel (interior)."""
    by_hand = np.ones(factor) if interpolation == "nearest" else TENT[factor]
    kernel = spectral.interpolation_kernel(interpolation, factor)
    np.testing.assert_allclose(kernel, np.outer(by_hand, by_hand), atol=1e-12)
    signal = np.random.default_rng(factor).normal(size=(9, 9))
    layer = keras.layers.UpSampling2D(factor, interpolation=interpolation)
    upsampled = np.asarray(layer(signal[None, :, :, None].astype("float32")))[0, :, :, 0]
    zeros = np.zeros((9 * factor, 9 * factor))
    zeros[::factor, ::factor] = signal
    composed = convolve2d(zeros, np.outer(by_hand, by_hand))
    inner = slice(2 * factor, 7 * factor)
    assert any(np.allclose(composed[inner.start + d:inner.stop + d, inner.start + d:inner.stop + d],
                           upsampled[inner, inner], atol=1e-5) for d in range(len(by_hand)))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("factor", [2, 3])
def test_resize_convolution_sdr_equals_explicit_composition(interpolation, factor):
    """up-sample by s then b == zero insertion by s then b convolved with the interpolation
    kernel: rho of that composite (fine) against a (coarse) at stride s, by a brute-force DTFT."""
    model = _resize_conv(interpolation, factor)
    by_hand = np.ones(factor) if interpolation == "nearest" else TENT[factor]
    interpolation_2d = np.outer(by_hand, by_hand)
    a = np.asarray(model.get_layer("a").kernel)   # (3, 3, in=2, mid=3)
    b = np.asarray(model.get_layer("b").kernel)   # (3, 3, mid=3, out=2)
    assert spectral.conv_pairs(model) == [("a", "b")]
    assert spectral.pair_layout(model, "a", "b") == ("b", "a", factor)
    assert spectral.fine_resolution(model, "a", "b") == 6 * factor
    rho = spectral.layer_sdr(model, "a", "b")
    assert rho.shape == (2, 3, 2)
    for i, m, o in [(0, 0, 0), (1, 2, 1), (0, 1, 1), (1, 0, 0)]:
        fine = convolve2d(b[:, :, m, o], interpolation_2d)
        assert rho[i, m, o] == pytest.approx(dtft_sdr(fine, a[:, :, i, m], factor), rel=1e-9)
        ours = spectral.pathway(model, "a", "b", i, m, o)
        np.testing.assert_allclose(ours[0], fine, atol=1e-12)
        np.testing.assert_array_equal(ours[1], a[:, :, i, m])
        assert ours[2] == factor
    energy = spectral.contribution_energy(model, "a", "b")
    golden = np.mean([[[np.sum(convolve2d(convolve2d(b[:, :, m, o], interpolation_2d),
                                          _zero_insert(a[:, :, i, m], factor)) ** 2)
                        for o in range(2)] for m in range(3)] for i in range(2)], axis=2)
    np.testing.assert_allclose(energy, golden, rtol=1e-9)


def _zero_insert(kernel, factor):
    out = np.zeros(((kernel.shape[0] - 1) * factor + 1, (kernel.shape[1] - 1) * factor + 1))
    out[::factor, ::factor] = kernel
    return out


def test_average_pooling_pairs_like_a_strided_convolution():
    """Encoder side: a (fine) * box, then down-sampling; Conv2D stride 2 then pool 2: stride 4
    and the box spread by 2 (noble identity)."""
    keras.utils.set_random_seed(4)
    x = keras.Input((16, 16, 2))
    h = keras.layers.Conv2D(3, 3, padding="same", name="d1")(x)
    h = keras.layers.AveragePooling2D(2, name="pool1")(keras.layers.ELU(name="d1_elu")(h))
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="d2")(h)
    h = keras.layers.AveragePooling2D(2, name="pool2")(h)
    h = keras.layers.Conv2D(2, 3, padding="same", name="d3")(h)
    model = keras.Model(x, h)
    assert spectral.conv_pairs(model) == [("d1", "d2"), ("d2", "d3")]
    assert spectral.pair_layout(model, "d1", "d2") == ("a", "b", 2)
    assert spectral.pair_layout(model, "d2", "d3") == ("a", "b", 4)
    d1, d2, d3 = (np.asarray(model.get_layer(n).kernel) for n in ("d1", "d2", "d3"))
    box = np.full((2, 2), 0.25)
    spread = np.zeros((3, 3))
    spread[::2, ::2] = 0.25                     # the box with one zero between taps
    rho_12, rho_23 = spectral.layer_sdr(model, "d1", "d2"), spectral.layer_sdr(model, "d2", "d3")
    for i, m, o in [(0, 0, 0), (1, 2, 3), (1, 1, 2)]:
        assert rho_12[i, m, o] == pytest.approx(
            dtft_sdr(convolve2d(d1[:, :, i, m], box), d2[:, :, m, o], 2), rel=1e-9)
    for i, m, o in [(0, 0, 0), (2, 3, 1), (1, 1, 0)]:
        assert rho_23[i, m, o] == pytest.approx(
            dtft_sdr(convolve2d(d2[:, :, i, m], spread), d3[:, :, m, o], 4), rel=1e-9)


def test_nested_and_shared_layers_by_split_names(nested_generator):
    """layer_kernels, contribution_energy and zero_kernels take the names split takes."""
    conv_a = nested_generator.get_layer("block").get_layer("conv_a")
    conv_b = nested_generator.get_layer("block").get_layer("conv_b")
    np.testing.assert_array_equal(spectral.layer_kernels(nested_generator, "block/conv_a"),
                                  np.asarray(conv_a.kernel))
    a, b = np.asarray(conv_a.kernel, "float64"), np.asarray(conv_b.kernel, "float64")
    energy = spectral.contribution_energy(nested_generator, "block/conv_a", "block/conv_b")
    golden = np.mean([[[np.sum(convolve2d(b[:, :, m, o], a[:, :, i, m]) ** 2) for o in range(6)]
                       for m in range(6)] for i in range(6)], axis=2)
    np.testing.assert_allclose(energy, golden, rtol=1e-9)

    z = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    before = np.asarray(nested_generator(z))
    for name, layer in [("block/conv_a", conv_a),
                        ("shared:0", nested_generator.get_layer("shared"))]:
        keep = np.random.default_rng(1).random(np.shape(layer.kernel)[2:]) > 0.5
        pruned = spectral.zero_kernels(nested_generator, name, keep)
        kernel = np.asarray(layer.kernel)
        layer.kernel.assign(kernel * keep[None, None])        # by hand, on the model itself
        golden = np.asarray(nested_generator(z))
        layer.kernel.assign(kernel)
        np.testing.assert_allclose(np.asarray(pruned(z)), golden, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(np.asarray(nested_generator(z)), before)
    with pytest.raises(ValueError, match=r"keep has shape \(2, 2\); layer 'block/conv_a' has 6 "
                                         r"inputs x 6 outputs"):
        spectral.zero_kernels(nested_generator, "block/conv_a", np.ones((2, 2), bool))


def test_no_pairs_is_an_error_that_says_why():
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 2))
    c1 = keras.layers.Conv2D(3, 3, padding="same", name="c1")(x)
    h = keras.layers.Concatenate(name="skip")([keras.layers.ReLU(name="r1")(c1), x])
    model = keras.Model(x, keras.layers.Conv2D(2, 3, padding="same", name="c2")(h), name="cat")
    assert spectral.conv_pairs(model) == []
    for function in (spectral.model_sdr, spectral.sdr_by_resolution):
        with pytest.raises(ValueError, match=r"'cat' has no two successive convolutions.*c2 "
                                             r"reads skip \(Concatenate\)"):
            function(model)
    dense = keras.Model(x, keras.layers.Dense(2, name="d")(keras.layers.Flatten()(x)),
                        name="mlp")
    with pytest.raises(ValueError, match=r"'mlp' has no Conv2D or Conv2DTranspose.*Dense"):
        spectral.model_sdr(dense)
    bicubic = _resize_conv("bicubic", 2)
    with pytest.raises(ValueError, match=r"UpSampling2D size \(2, 2\), interpolation 'bicubic'"
                                         r".*nearest or bilinear"):
        spectral.layer_sdr(bicubic, "a", "b")
    with pytest.raises(ValueError, match=r"unknown interpolation 'area'; valid: nearest, bilinear"):
        spectral.interpolation_kernel("area", 2)


def test_committed_began_has_sdr_at_every_resolution():
    """Nearest up-sampling + 3x3 convolutions: the resize pairs now have values."""
    from tfcf.models.registry import load_generator

    began = load_generator("began_celeba64_small_faces").model
    pairs = spectral.conv_pairs(began)
    assert ("conv1_b", "conv3_a") in pairs and ("conv4_b", "conv5_a") in pairs
    a = np.asarray(began.get_layer("conv1_b").kernel)
    b = np.asarray(began.get_layer("conv3_a").kernel)
    rho = spectral.layer_sdr(began, "conv1_b", "conv3_a")
    for i, m, o in [(0, 0, 0), (3, 7, 11)]:
        fine = convolve2d(b[:, :, m, o], np.ones((2, 2)))
        assert rho[i, m, o] == pytest.approx(dtft_sdr(fine, a[:, :, i, m], 2), rel=1e-9)
    levels = spectral.sdr_by_resolution(began)
    assert sorted(levels) == [8, 16, 32, 64]
    at_16 = [p for p in pairs if spectral.fine_resolution(began, *p) == 16]
    assert at_16 == [("conv1_b", "conv3_a"), ("conv3_a", "conv3_b")]
    np.testing.assert_array_equal(levels[16], np.concatenate(
        [spectral.layer_sdr(began, *p).ravel() for p in at_16]))


def test_bad_input_is_named():
    generator, discriminator = _tiny_generator_and_discriminator()
    with pytest.raises(ValueError, match="'g2' and 'g1' are not successive convolutions"):
        spectral.layer_sdr(generator, "g2", "g1")
    with pytest.raises(ValueError, match="'dense' is a Dense"):
        spectral.layer_sdr(discriminator, "d2", "dense")
    with pytest.raises(ValueError, match="fine must be a 2-D kernel"):
        spectral.kernel_sdr(np.ones((3, 3, 2)), np.ones((3, 3)), 2)
    with pytest.raises(ValueError, match="stride must be an integer >= 1, got 0"):
        spectral.kernel_sdr(np.ones((3, 3)), np.ones((3, 3)), 0)


def test_activation_sdr_equals_direct_computation():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(6, 5, 5)) + np.linspace(0, 2, 5)  # some spatial structure
    kernel = rng.normal(size=(4, 4))
    upsampled = np.zeros((6, 10, 10))
    upsampled[:, ::2, ::2] = maps
    numerator = np.mean([np.sum(convolve2d(u, kernel) ** 2) for u in upsampled])
    golden = numerator / (np.sum(kernel ** 2) * np.mean(np.sum(maps ** 2, axis=(1, 2))))
    assert spectral.activation_sdr(maps, kernel, 2) == pytest.approx(golden, rel=1e-9)
    activations = rng.normal(size=(3, 4, 4, 2))
    kernels = rng.normal(size=(3, 3, 2, 5))
    per_pair = spectral.activation_sdr(activations, kernels, 1, reduce=False)
    assert per_pair.shape == (2, 5)
    assert per_pair[1, 3] == pytest.approx(
        spectral.activation_sdr(activations[..., 1], kernels[:, :, 1, 3], 1), rel=1e-12)
    np.testing.assert_allclose(spectral.activation_sdr(activations, kernels, 1),
                               per_pair.mean(axis=1))


def penalty_numpy(activations, kernel, stride, grid):
    """Eq. 9 with numpy.fft on a zero-padded grid, summed over (map, filter) pairs."""
    mean = activations.mean(axis=0)
    height, width, channels = mean.shape
    total = 0.0
    for c in range(channels):
        up = np.zeros((height * stride, width * stride))
        up[::stride, ::stride] = mean[:, :, c]
        power = np.abs(np.fft.fft2(up, s=grid)) ** 2
        weight = (power / power.mean() - 1.0) ** 2
        for o in range(kernel.shape[3]):
            total += np.mean(np.abs(np.fft.fft2(kernel[:, :, c, o], s=grid)) ** 2 * weight)
    return total


def _gradient(function, value):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(value)
        with tf.GradientTape() as tape:
            loss = function(variable)
        return loss.numpy(), tape.gradient(loss, variable).numpy()
    import jax

    loss, grad = jax.value_and_grad(function)(value)
    return np.asarray(loss), np.asarray(grad)


def test_sdr_penalty_value_and_gradient_match_numpy():
    rng = np.random.default_rng(3)
    activations = rng.normal(size=(4, 5, 5, 2)).astype("float32")
    kernel = rng.normal(size=(3, 3, 2, 2)).astype("float32")
    grid = (12, 12)
    loss, grad = _gradient(lambda k: spectral.sdr_penalty(activations, k, 2), kernel)
    golden = penalty_numpy(activations.astype(float), kernel.astype(float), 2, grid)
    assert float(loss) == pytest.approx(golden, rel=1e-4)
    step = 1e-4
    for index in [(0, 0, 0, 0), (1, 2, 1, 0), (2, 1, 0, 1)]:
        plus, minus = kernel.astype(float), kernel.astype(float)
        plus[index] += step
        minus[index] -= step
        numeric = (penalty_numpy(activations.astype(float), plus, 2, grid)
                   - penalty_numpy(activations.astype(float), minus, 2, grid)) / (2 * step)
        assert grad[index] == pytest.approx(numeric, rel=2e-3, abs=1e-3)


def test_scale_components_sum_and_separate_scales():
    import pywt

    rng = np.random.default_rng(4)
    images = rng.normal(size=(3, 32, 32, 3))
    parts = distortion.scale_components(images, levels=5)
    assert parts.shape == (5, 3, 32, 32, 3)
    np.testing.assert_allclose(parts.sum(axis=0), images, atol=1e-10)
    # an image made of level-2 details only (third component) lands in component 2 alone
    coefficients = pywt.wavedec2(rng.normal(size=(1, 32, 32)), "haar", level=4, axes=(1, 2))
    only = [np.zeros_like(coefficients[0])] + [
        tuple(c if band == 2 else np.zeros_like(c) for c in coefficients[band])
        for band in range(1, 5)]
    single = pywt.waverec2(only, "haar", axes=(1, 2))
    parts = distortion.scale_components(single, levels=5)
    np.testing.assert_allclose(parts[2], single, atol=1e-10)
    assert np.abs(np.delete(parts, 2, axis=0)).max() < 1e-10
    with pytest.raises(ValueError, match="divisible by 16"):
        distortion.scale_components(np.zeros((1, 24, 24)), levels=5)


def test_stretch_and_distortion_through_an_intervention(tiny_generator):
    import tfcf

    constant = np.full((2, 8, 8, 3), 0.7, "float32")
    np.testing.assert_allclose(distortion.stretch(constant, 1.5), constant, atol=1e-7)
    ramp = np.tile(np.arange(9, dtype=float), (1, 3, 1))[..., None]  # [1, 3, 9, 1]
    np.testing.assert_allclose(distortion.stretch(ramp, 2.0)[0, 0, :, 0],
                               4 + (np.arange(9) - 4) / 2.0)
    z = np.random.default_rng(5).normal(size=(4, 8)).astype("float32")
    distorted, reference = distortion.distort(tiny_generator, "block1", z, factor=1.5)
    head, tail = tfcf.split(tiny_generator, "block1")
    golden = np.asarray(tail(distortion.stretch(np.asarray(head(z)), 1.5)))
    np.testing.assert_allclose(distorted, golden, atol=1e-5)
    np.testing.assert_allclose(reference, distortion.stretch(np.asarray(tiny_generator(z)), 1.5),
                               atol=1e-6)
    errors = distortion.scale_errors(distorted, reference, levels=3)
    parts = distortion.scale_components(distorted - reference, levels=3)
    np.testing.assert_allclose(errors[:, 1], np.mean(parts[1] ** 2, axis=(1, 2, 3)))
