"""The papers' architectures (models/): layer names, shapes and weight order as the originals, and
forward passes checked against NumPy re-computations of the layers."""


import keras
import numpy as np
import pytest

from tfcf.models import began, dcgan, toy, vae

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------- NumPy references (TF semantics)

def _same_padding(input_size, output_size, kernel_size, stride):
    """TF 'SAME' padding before the first pixel, of the convolution mapping `input_size` to
    `output_size` (a transposed convolution is the gradient of the convolution the other way)."""
    total = max((output_size - 1) * stride + kernel_size - input_size, 0)
    return total // 2


def conv2d_same(x, kernel, bias, stride):
    """Cross-correlation, kernel (kh, kw, in, out), TF 'SAME' padding."""
    batch, size, _, _ = x.shape
    kernel_size = kernel.shape[0]
    out_size = -(-size // stride)
    before = _same_padding(size, out_size, kernel_size, stride)
    total = max((out_size - 1) * stride + kernel_size - size, 0)
    padded = np.pad(x, ((0, 0), (before, total - before), (before, total - before), (0, 0)))
    out = np.zeros((batch, out_size, out_size, kernel.shape[3]), np.float64)
    span = stride * (out_size - 1) + 1
    for a in range(kernel_size):
        for b in range(kernel_size):
            window = padded[:, a:a + span:stride, b:b + span:stride, :]
            out += np.einsum("bijc,co->bijo", window, kernel[a, b])
    return out + bias


def conv2d_transpose_same(x, kernel, bias, stride):
    """Transposed convolution, kernel (kh, kw, out, in), output size = input size * stride,
    TF 'SAME' padding: input pixel i spreads to output pixels i*stride + a - pad, a < kh."""
    batch, size, _, _ = x.shape
    kernel_size = kernel.shape[0]
    out_size = size * stride
    before = _same_padding(out_size, size, kernel_size, stride)
    full_size = (size - 1) * stride + kernel_size
    full = np.zeros((batch, full_size, full_size, kernel.shape[2]), np.float64)
    span = stride * (size - 1) + 1
    for a in range(kernel_size):
        for b in range(kernel_size):
            full[:, a:a + span:stride, b:b + span:stride, :] += np.einsum(
                "bijc,oc->bijo", x, kernel[a, b])
    return full[:, before:before + out_size, before:before + out_size, :] + bias


def batch_norm_inference(x, gamma, beta, moving_mean, moving_variance, epsilon=1e-5):
    return gamma * (x - moving_mean) / np.sqrt(moving_variance + epsilon) + beta


def softplus(x):
    return np.logaddexp(0.0, x)


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def upsample_nearest(x, factor):
    return x.repeat(factor, axis=1).repeat(factor, axis=2)


# ---------------------------------------------------------------- helpers

def activations(model, names, inputs):
    """Outputs of the named layers, float64 NumPy arrays, inference mode."""
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    outputs = probe(inputs, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [keras.ops.convert_to_numpy(output).astype(np.float64) for output in outputs]


def randomize(layer):
    """Random biases and batch-norm parameters (statistics away from 0 and 1); kernels stay as
    initialised, N(0, 0.02). Returns all the layer's weights, float64, in Keras order."""
    values = []
    for weight in layer.weights:
        shape = tuple(weight.shape)
        if weight.path.endswith("kernel"):
            values.append(keras.ops.convert_to_numpy(weight.value))
        elif weight.path.endswith("moving_variance"):
            values.append(RNG.uniform(1e-4, 1e-3, shape))   # small, so that epsilon matters
        elif weight.path.endswith("gamma"):
            values.append(RNG.uniform(0.5, 1.5, shape))
        else:
            values.append(RNG.normal(0.0, 0.3, shape))
    layer.set_weights([value.astype("float32") for value in values])
    return [value.astype(np.float64) for value in values]


def weight_paths(model):
    return [weight.path for weight in model.weights]


def expected_paths(spec):
    """'dense:a conv:b bn:c' -> Keras weight paths in that order."""
    suffixes = {"dense": ["kernel", "bias"], "conv": ["kernel", "bias"],
                "bn": ["gamma", "beta", "moving_mean", "moving_variance"]}
    paths = []
    for item in spec.split():
        kind, name = item.split(":")
        paths += [f"{name}/{suffix}" for suffix in suffixes[kind]]
    return paths


def output_shapes(model, names):
    return [tuple(model.get_layer(name).output.shape[1:]) for name in names]


def assert_unknown_preset_rejected(builder, presets):
    with pytest.raises(ValueError) as error:
        builder("no_such_preset")
    message = str(error.value)
    assert "no_such_preset" in message
    for preset in presets:
        assert preset in message


def latent(batch, size):
    return RNG.normal(size=(batch, size)).astype("float32")


# ---------------------------------------------------------------- DCGAN

# Activation maps from the tables: the repository, ICLR 2020 Table 1, 2019 draft Table 1.
DCGAN_GENERATOR_MAPS = {
    "tensorlayer": [(4, 4, 512), (8, 8, 256), (16, 16, 128), (32, 32, 64), (64, 64, 3)],
    "paper_celeba": [(4, 4, 128), (8, 8, 64), (16, 16, 32), (32, 32, 16), (64, 64, 3)],
    "paper_cifar10": [(4, 4, 64), (8, 8, 32), (16, 16, 16), (32, 32, 3)],
}
DCGAN_Z = {"tensorlayer": 100, "paper_celeba": 150, "paper_cifar10": 150}
DCGAN_DISCRIMINATOR_MAPS = {
    "tensorlayer": [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)],
    "paper_celeba": [(32, 32, 16), (16, 16, 32), (8, 8, 64), (4, 4, 128)],
    "paper_cifar10": [(16, 16, 16), (8, 8, 32), (4, 4, 64)],
}


@pytest.mark.parametrize("preset", list(DCGAN_GENERATOR_MAPS))
def test_dcgan_generator_layers_shapes_and_weight_order(preset):
    generator = dcgan.build_generator(preset)
    maps = DCGAN_GENERATOR_MAPS[preset]
    last = len(maps) - 1
    assert generator.input.shape[1:] == (DCGAN_Z[preset],)
    names = ["g_h0_reshape"] + [f"g_h{i}_decon2d" for i in range(1, last + 1)]
    assert output_shapes(generator, names) == maps
    for i in range(last):
        for suffix in ("batch_norm", "relu"):
            assert generator.get_layer(f"g_h{i}_{suffix}").output.shape[1:] == maps[i]
    assert generator.get_layer(f"g_h{last}_tanh").output.shape[1:] == maps[-1]
    assert generator.get_layer("g_h0_lin").kernel.shape == (DCGAN_Z[preset], np.prod(maps[0]))
    # Conv2DTranspose kernels are (kh, kw, out, in), as tensorlayer's DeConv2d.
    assert generator.get_layer("g_h1_decon2d").kernel.shape == (5, 5, maps[1][2], maps[0][2])
    spec = "dense:g_h0_lin bn:g_h0_batch_norm " + " ".join(
        f"conv:g_h{i}_decon2d" + (f" bn:g_h{i}_batch_norm" if i < last else "")
        for i in range(1, last + 1))
    assert weight_paths(generator) == expected_paths(spec)


@pytest.mark.parametrize("preset", list(DCGAN_DISCRIMINATOR_MAPS))
def test_dcgan_discriminator_layers_shapes_and_weight_order(preset):
    discriminator = dcgan.build_discriminator(preset)
    maps = DCGAN_DISCRIMINATOR_MAPS[preset]
    last = len(maps)
    image_size = DCGAN_GENERATOR_MAPS[preset][-1]
    assert discriminator.input.shape[1:] == image_size
    assert output_shapes(discriminator, [f"d_h{i}_conv2d" for i in range(last)]) == maps
    assert discriminator.output.shape[1:] == (1,)
    assert discriminator.get_layer(f"d_h{last}_lin_sigmoid").kernel.shape == (np.prod(maps[-1]), 1)
    with pytest.raises(ValueError):
        discriminator.get_layer("d_h0_batch_norm")          # the first conv has no batch norm
    spec = "conv:d_h0_conv2d " + " ".join(
        f"conv:d_h{i}_conv2d bn:d_h{i}_batch_norm" for i in range(1, last))
    assert weight_paths(discriminator) == expected_paths(spec + f" dense:d_h{last}_lin_sigmoid")


@pytest.mark.parametrize("preset, shape", [("tensorlayer", (16, 16, 128)),
                                           ("paper_celeba", (16, 16, 32)),
                                           ("paper_cifar10", (8, 8, 32))])
def test_dcgan_intermediate_layer_is_the_16px_relu_or_8px_for_cifar(preset, shape):
    layer = dcgan.build_generator(preset).get_layer(dcgan.INTERMEDIATE_LAYER[preset])
    assert isinstance(layer, keras.layers.ReLU)
    assert layer.output.shape[1:] == shape


def test_dcgan_first_deconvolution_equals_numpy_transposed_convolution():
    generator = dcgan.build_generator("tensorlayer", seed=3)
    kernel, bias = randomize(generator.get_layer("g_h1_decon2d"))
    randomize(generator.get_layer("g_h0_batch_norm"))
    before, ours = activations(generator, ["g_h0_relu", "g_h1_decon2d"], latent(2, 100))
    assert before.min() == 0.0 and before.max() > 0.0        # the ReLU is on, not all dead
    golden = conv2d_transpose_same(before, kernel, bias, stride=2)
    np.testing.assert_allclose(ours, golden, rtol=1e-4, atol=1e-4)


def test_dcgan_batch_norm_and_tanh_equal_inference_formulas():
    generator = dcgan.build_generator("paper_cifar10", seed=4)
    gamma, beta, mean, variance = randomize(generator.get_layer("g_h1_batch_norm"))
    kernel, bias = randomize(generator.get_layer("g_h3_decon2d"))
    deconv, normed, relu, before_last, image = activations(
        generator, ["g_h1_decon2d", "g_h1_batch_norm", "g_h1_relu", "g_h2_relu", "g_h3_tanh"],
        latent(2, 150))
    golden = batch_norm_inference(deconv, gamma, beta, mean, variance, epsilon=1e-5)
    np.testing.assert_allclose(normed, golden, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(relu, np.maximum(golden, 0.0), rtol=1e-4, atol=1e-4)
    golden_image = np.tanh(conv2d_transpose_same(before_last, kernel, bias, stride=2))
    np.testing.assert_allclose(image, golden_image, rtol=1e-4, atol=1e-5)


def test_dcgan_discriminator_first_conv_and_logit_equal_numpy():
    discriminator = dcgan.build_discriminator("paper_cifar10", seed=5)
    kernel, bias = randomize(discriminator.get_layer("d_h0_conv2d"))
    dense_kernel, dense_bias = randomize(discriminator.get_layer("d_h3_lin_sigmoid"))
    images = RNG.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")
    first, features, logits = activations(
        discriminator, ["d_h0_lrelu", "d_h3_flatten", "d_h3_lin_sigmoid"], images)
    pre = conv2d_same(images.astype(np.float64), kernel, bias, stride=2)
    np.testing.assert_allclose(first, np.where(pre > 0, pre, 0.2 * pre), rtol=1e-4, atol=1e-5)
    # The output is the logit, no sigmoid (a sigmoid would give 0.5 + logit / 4 near 0).
    np.testing.assert_allclose(logits, features @ dense_kernel + dense_bias, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- VAE

VAE_DECODER_MAPS = {
    "repo": [(8, 8, 256), (16, 16, 256), (32, 32, 128), (64, 64, 32), (64, 64, 3)],
    "paper_celeba": [(8, 8, 64), (16, 16, 64), (32, 32, 32), (64, 64, 16), (64, 64, 3)],
    "paper_cifar10": [(4, 4, 64), (8, 8, 32), (16, 16, 16), (32, 32, 3)],
}
VAE_ENCODER_MAPS = {
    "repo": [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)],
    "paper_celeba": [(32, 32, 16), (16, 16, 32), (8, 8, 64), (4, 4, 128)],
    "paper_cifar10": [(16, 16, 16), (8, 8, 32), (4, 4, 64)],
}


@pytest.mark.parametrize("preset", list(VAE_DECODER_MAPS))
def test_vae_decoder_layers_shapes_and_weight_order(preset):
    decoder = vae.build_decoder(preset)
    maps = VAE_DECODER_MAPS[preset]
    last = len(maps) - 1
    assert decoder.input.shape[1:] == (128,)
    names = ["g_h0_reshape"] + [f"g_h{i}_decon2d" for i in range(1, last + 1)]
    assert output_shapes(decoder, names) == maps
    assert decoder.get_layer(f"g_h{last}_tanh").output.shape[1:] == maps[-1]
    spec = "dense:g_h0_lin bn:g_h0_batch_norm " + " ".join(
        f"conv:g_h{i}_decon2d" + (f" bn:g_h{i}_batch_norm" if i < last else "")
        for i in range(1, last + 1))
    assert weight_paths(decoder) == expected_paths(spec)
    assert vae.PRESETS[preset]["beta"] == {"repo": 0.005}.get(preset, 0.0005)


@pytest.mark.parametrize("preset", list(VAE_ENCODER_MAPS))
def test_vae_encoder_layers_shapes_and_checkpoint_weight_order(preset):
    encoder = vae.build_encoder(preset)
    maps = VAE_ENCODER_MAPS[preset]
    assert output_shapes(encoder, [f"en_h{i}_conv2d" for i in range(len(maps))]) == maps
    assert [tuple(output.shape[1:]) for output in encoder.outputs] == [(128,), (128,)]
    assert encoder.outputs[0] is encoder.get_layer("z_mean").output
    assert encoder.outputs[1] is encoder.get_layer("z_log_sigma_sq").output
    # vae-celebA's net_e.npz: the conv blocks, the mean head, then the log-variance head.
    spec = " ".join(f"conv:en_h{i}_conv2d bn:en_h{i}_batch_norm" for i in range(len(maps)))
    spec += (" dense:en_h3_lin_sigmoid bn:en_out1_batch_norm"
             " dense:en_h4_lin_sigmoid bn:en_out2_batch_norm")
    assert weight_paths(encoder) == expected_paths(spec)


@pytest.mark.parametrize("preset, shape", [("repo", (16, 16, 256)),
                                           ("paper_celeba", (16, 16, 64)),
                                           ("paper_cifar10", (8, 8, 32))])
def test_vae_intermediate_layer(preset, shape):
    layer = vae.build_decoder(preset).get_layer(vae.INTERMEDIATE_LAYER[preset])
    assert isinstance(layer, keras.layers.ReLU)
    assert layer.output.shape[1:] == shape


def test_vae_encoder_heads_equal_numpy():
    """mean = BN(W1 x + b1); log variance = softplus(BN(W2 x + b2)) + 1e-6, as vae-celebA."""
    encoder = vae.build_encoder("paper_cifar10", seed=6)
    mean_weights = randomize(encoder.get_layer("en_h3_lin_sigmoid"))
    mean_norm = randomize(encoder.get_layer("en_out1_batch_norm"))
    variance_weights = randomize(encoder.get_layer("en_h4_lin_sigmoid"))
    variance_norm = randomize(encoder.get_layer("en_out2_batch_norm"))
    images = RNG.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")
    features, z_mean, z_log_sigma_sq = activations(
        encoder, ["en_h2_relu", "z_mean", "z_log_sigma_sq"], images)
    flat = features.reshape(2, -1)
    golden_mean = batch_norm_inference(flat @ mean_weights[0] + mean_weights[1], *mean_norm)
    golden_log_variance = softplus(batch_norm_inference(
        flat @ variance_weights[0] + variance_weights[1], *variance_norm)) + 1e-6
    np.testing.assert_allclose(z_mean, golden_mean, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(z_log_sigma_sq, golden_log_variance, rtol=1e-3, atol=1e-3)


def test_vae_last_deconvolution_has_stride_one_and_equals_numpy():
    decoder = vae.build_decoder("paper_celeba", seed=7)
    kernel, bias = randomize(decoder.get_layer("g_h4_decon2d"))
    before, image = activations(decoder, ["g_h3_relu", "g_h4_tanh"], latent(2, 128))
    golden = np.tanh(conv2d_transpose_same(before, kernel, bias, stride=1))
    np.testing.assert_allclose(image, golden, rtol=1e-4, atol=1e-5)


def test_sample_posterior_uses_log_variance():
    z_mean = np.array([[0.0, 1.0]], np.float32)
    z_log_sigma_sq = np.log(np.array([[4.0, 9.0]], np.float32))
    noise = np.random.default_rng(11).standard_normal((1, 2))
    np.testing.assert_allclose(vae.sample_posterior(z_mean, z_log_sigma_sq, seed=11),
                               z_mean + np.array([[2.0, 3.0]]) * noise, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        vae.sample_posterior(z_mean, z_log_sigma_sq[:, :1])


# ---------------------------------------------------------------- BEGAN

def _began_generator_names(blocks):
    names = ["fc"]
    for block in blocks:
        names += [f"conv{block}_a", f"conv{block}_b"]
    return names + ["conv6_a"]


@pytest.mark.parametrize("skip", [False, True])
def test_began_generator_layers_shapes_and_weight_order(skip):
    generator = began.build_generator("celeba64", skip=skip)
    assert generator.input.shape[1:] == (128,)
    assert generator.get_layer("fc_reshape").output.shape[1:] == (8, 8, 64)
    sizes = {"conv1": 8, "conv3": 16, "conv4": 32, "conv5": 64}
    for block, size in sizes.items():
        for conv in (f"{block}_a", f"{block}_b", f"{block}_a_elu", f"{block}_b_elu"):
            assert generator.get_layer(conv).output.shape[1:] == (size, size, 64)
    assert generator.output.shape[1:] == (64, 64, 3)
    assert generator.get_layer("conv6_a").kernel.shape == (3, 3, 64, 3)
    inputs_of_first_conv = 128 if skip else 64
    for block in ("conv3", "conv4", "conv5"):
        assert generator.get_layer(f"{block}_a").kernel.shape == (3, 3, inputs_of_first_conv, 64)
    assert generator.get_layer("conv1_a").kernel.shape == (3, 3, 64, 64)
    names = _began_generator_names([1, 3, 4, 5])
    assert weight_paths(generator) == expected_paths(
        " ".join(("dense:" if name == "fc" else "conv:") + name for name in names))


def test_began_128_generator_has_conv2_block_and_intermediate_layers_at_32px():
    generator = began.build_generator("celeba128")
    assert generator.output.shape[1:] == (128, 128, 3)
    assert generator.get_layer("conv2_b").output.shape[1:] == (16, 16, 128)
    assert output_shapes(generator, began.INTERMEDIATE_LAYERS["celeba128"]) == [(32, 32, 128)] * 2
    small = began.build_generator("celeba64")
    assert output_shapes(small, began.INTERMEDIATE_LAYERS["celeba64"]) == [(32, 32, 64)] * 2
    quarter = began.build_generator("celeba64_small")
    assert output_shapes(quarter, began.INTERMEDIATE_LAYERS["celeba64_small"]) == \
        [(32, 32, 16)] * 2
    # "layers 5 and 6": the 5th and 6th convolutions of the generator.
    for model, preset in ((small, "celeba64"), (generator, "celeba128"),
                          (quarter, "celeba64_small")):
        convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert [f"{name}_elu" for name in convs[4:6]] == list(began.INTERMEDIATE_LAYERS[preset])


def test_began_block_equals_numpy_upsampling_conv_elu():
    generator = began.build_generator("celeba64", seed=8)
    kernel, bias = randomize(generator.get_layer("conv4_a"))
    before, resized, after = activations(
        generator, ["conv3_b_elu", "resize_nn_32", "conv4_a_elu"], RNG.uniform(-1, 1, (2, 128)))
    np.testing.assert_array_equal(resized, upsample_nearest(before, 2))
    golden = elu(conv2d_same(resized, kernel, bias, stride=1))
    np.testing.assert_allclose(after, golden, rtol=1e-4, atol=1e-5)
    assert after.min() < 0.0                                  # ELU, not ReLU


def test_began_skip_concatenates_upsampled_h0_to_each_later_block():
    generator = began.build_generator("celeba64", skip=True, seed=9)
    h0, previous, concatenated = activations(
        generator, ["fc_reshape", "conv3_b_elu", "skip_concat_32"], RNG.uniform(-1, 1, (2, 128)))
    golden = np.concatenate([upsample_nearest(previous, 2), upsample_nearest(h0, 4)], axis=-1)
    np.testing.assert_array_equal(concatenated, golden)


def test_began_discriminator_autoencoder_layers_and_weight_order():
    discriminator = began.build_discriminator("celeba64", seed=10)
    assert discriminator.input.shape[1:] == (64, 64, 3)
    assert discriminator.output.shape[1:] == (64, 64, 3)
    assert output_shapes(discriminator, ["conv3_enc_a", "conv4_enc_a", "conv5_enc_b", "enc_fc"]) \
        == [(32, 32, 128), (16, 16, 192), (8, 8, 256), (128,)]
    encoder = ["conv1_enc_a", "conv2_enc_a", "conv2_enc_b"]
    for block in (3, 4, 5):
        encoder += [f"conv{block}_enc_0", f"conv{block}_enc_a", f"conv{block}_enc_b"]
    spec = " ".join(f"conv:{name}" for name in encoder) + " dense:enc_fc "
    spec += " ".join(("dense:" if name == "fc" else "conv:") + name
                     for name in _began_generator_names([1, 3, 4, 5]))
    assert weight_paths(discriminator) == expected_paths(spec)
    # The 1x1 conv before each pooling has no activation; the pooling averages 2x2.
    kernel, bias = randomize(discriminator.get_layer("conv3_enc_0"))
    before, projected, pooled = activations(
        discriminator, ["conv2_enc_b_elu", "conv3_enc_0", "pool3_enc"],
        RNG.uniform(-0.5, 0.5, (2, 64, 64, 3)).astype("float32"))
    np.testing.assert_allclose(projected, before @ kernel[0, 0] + bias, rtol=1e-4, atol=1e-5)
    golden_pool = projected.reshape(2, 32, 2, 32, 2, 128).mean(axis=(2, 4))
    np.testing.assert_allclose(pooled, golden_pool, rtol=1e-4, atol=1e-5)


def test_began_decoder_quirk_skips_the_first_resize():
    quirk = began.build_discriminator("celeba64", decoder_quirk=True)
    assert output_shapes(quirk, ["conv3_b", "resize_nn_32", "conv5_b"]) == \
        [(8, 8, 64), (32, 32, 64), (64, 64, 64)]
    with pytest.raises(ValueError, match="celeba64"):
        began.build_discriminator("celeba128", decoder_quirk=True)


# ---------------------------------------------------------------- all families

BUILDERS = [
    (dcgan.build_generator, dcgan.PRESETS), (dcgan.build_discriminator, dcgan.PRESETS),
    (vae.build_encoder, vae.PRESETS), (vae.build_decoder, vae.PRESETS),
    (began.build_generator, began.PRESETS), (began.build_discriminator, began.PRESETS),
]


@pytest.mark.parametrize("builder, presets", BUILDERS)
def test_unknown_preset_names_the_valid_presets(builder, presets):
    assert_unknown_preset_rejected(builder, presets)


@pytest.mark.parametrize("call, match", [
    (lambda: dcgan.build_generator(z_dim=0), "z_dim"),
    (lambda: dcgan.build_generator(output_size=60), "multiple of 2\\*\\*4 = 16"),
    (lambda: dcgan.build_generator(channels=(64,)), "channels"),
    (lambda: dcgan.build_discriminator(input_size=36), "multiple"),
    (lambda: dcgan.build_generator(seed=1.5), "seed"),
    (lambda: vae.build_decoder(channels=(64, -3)), "channels"),
    (lambda: vae.build_encoder(input_size=30, preset="paper_cifar10"), "multiple"),
    (lambda: began.build_generator(hidden=0), "hidden"),
    (lambda: began.build_generator(skip="yes"), "skip"),
])
def test_invalid_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_every_batch_norm_uses_tensorlayer_momentum_and_epsilon():
    models = [dcgan.build_generator("paper_cifar10"), dcgan.build_discriminator("paper_cifar10"),
              vae.build_encoder("paper_cifar10"), vae.build_decoder("paper_cifar10")]
    norms = [layer for model in models for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 3 + 2 + 5 + 3
    for layer in norms:
        assert (layer.momentum, layer.epsilon) == (0.9, 1e-5), layer.name


@pytest.mark.parametrize("builder", [
    lambda seed: dcgan.build_generator("paper_cifar10", seed=seed),
    lambda seed: vae.build_encoder("paper_cifar10", seed=seed),
    lambda seed: began.build_generator("celeba64", skip=True, seed=seed),
])
def test_same_seed_same_weights_other_seed_other_weights(builder):
    first, again, other = builder(0), builder(0), builder(1)
    for a, b, c in zip(first.get_weights(), again.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
        if a.std() > 0:                                         # not the zero biases
            assert not np.allclose(a, c)
    kernels = [w for w in first.get_weights() if w.ndim > 1]
    assert len({round(float(k.ravel()[0]), 7) for k in kernels}) == len(kernels)  # no reuse
    assert 0.015 < np.concatenate([k.ravel() for k in kernels]).std() < 0.025   # N(0, 0.02)


# ---------------------------------------------------------------- toy Model 1

@pytest.fixture(scope="module")
def model1():
    return toy.build_model1(num_modules=3, units_per_module=4, image_shape=(16, 16), overlap=2,
                            seed=0)


def test_model1_regions_are_overlapping_stripes_with_exclusive_pixels(model1):
    columns = [np.flatnonzero(region.any(axis=0)).tolist() for region in model1.regions]
    assert columns == [list(range(0, 7)), list(range(5, 12)), list(range(10, 16))]
    assert model1.regions.all(axis=1).any(axis=1).all()         # full-height stripes
    owners = model1.regions.sum(axis=0)
    for region in model1.regions:
        assert (region & (owners == 1)).any()                    # condition (2) of Model 1
    np.testing.assert_array_equal(model1.labels, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])


def test_model1_kernels_are_block_structured(model1):
    hidden_kernel = model1.model.get_layer("hidden").get_weights()[0]
    output_kernel = model1.model.get_layer("output_lin").get_weights()[0]
    assert hidden_kernel.shape == (3, 12) and output_kernel.shape == (12, 256)
    assert not model1.model.get_layer("hidden").use_bias
    assert not model1.model.get_layer("output_lin").use_bias
    expected_hidden = np.zeros((3, 12), bool)
    for module in range(3):
        expected_hidden[module, model1.labels == module] = True
    np.testing.assert_array_equal(hidden_kernel != 0, expected_hidden)
    np.testing.assert_array_equal(hidden_kernel[expected_hidden], model1.hidden_weights.ravel())
    supports = model1.regions.reshape(3, 256)[model1.labels]     # row j: I_k of unit j's module
    np.testing.assert_array_equal(output_kernel != 0, supports)


def test_model1_forward_equals_numpy(model1):
    z = model1.sample_latent(5, seed=3)
    hidden = np.repeat(z, 4, axis=1) * model1.hidden_weights.ravel()
    hidden = np.where(hidden > 0, hidden, 0.2 * hidden)
    golden = np.einsum("bkn,kmn->bm", hidden.reshape(5, 3, 4), model1.output_weights)
    ours = keras.ops.convert_to_numpy(model1.model(z))
    np.testing.assert_allclose(ours, golden.reshape(5, 16, 16, 1), rtol=1e-5, atol=1e-5)


def test_model1_changing_a_hidden_unit_changes_exactly_its_region(model1):
    """Finite differences through `output_lin` + `image`: unit j of module k moves exactly I_k."""
    hidden_input = keras.Input((12,))
    tail = keras.Model(hidden_input, model1.model.get_layer("image")(
        model1.model.get_layer("output_lin")(hidden_input)))
    head = keras.Model(model1.model.input, model1.model.get_layer("hidden_act").output)
    base = keras.ops.convert_to_numpy(head(model1.sample_latent(1, seed=4)))
    perturbed = np.repeat(base, 12, axis=0) + 0.5 * np.eye(12, dtype="float32")
    change = (keras.ops.convert_to_numpy(tail(perturbed))
              - keras.ops.convert_to_numpy(tail(np.repeat(base, 12, axis=0))))[..., 0]
    change = change.astype(np.float64)
    for unit in range(12):
        region = model1.regions[model1.labels[unit]]
        assert np.all(np.abs(change[unit][~region]) < 1e-6), unit   # float32 rounding only
        assert np.all(np.abs(change[unit][region]) > 1e-4), unit    # every pixel of I_k
        golden = 0.5 * model1.output_weights[model1.labels[unit], :, unit % 4].reshape(16, 16)
        np.testing.assert_allclose(change[unit], golden, rtol=1e-4, atol=1e-5)


def test_model1_changing_a_latent_changes_exactly_its_region(model1):
    z = model1.sample_latent(1, seed=5)
    base = keras.ops.convert_to_numpy(model1.model(z))[0, ..., 0]
    for module in range(3):
        moved = z.copy()
        moved[0, module] = -moved[0, module] + 0.3
        change = keras.ops.convert_to_numpy(model1.model(moved))[0, ..., 0] - base
        region = model1.regions[module]
        assert np.all(np.abs(change[~region]) < 1e-6), module
        assert np.all(np.abs(change[region]) > 1e-4), module


def test_model1_parameters_are_reproducible_from_the_seed(model1):
    again = toy.build_model1(seed=0)
    other = toy.build_model1(seed=1)
    np.testing.assert_array_equal(again.hidden_weights, model1.hidden_weights)
    np.testing.assert_array_equal(again.output_weights, model1.output_weights)
    for a, b in zip(again.model.get_weights(), model1.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(other.hidden_weights, model1.hidden_weights)
    assert not np.allclose(other.output_weights, model1.output_weights)
    np.testing.assert_array_equal(other.regions, model1.regions)
    z = model1.sample_latent(1000, seed=2)
    assert z.shape == (1000, 3) and z.dtype == np.float32
    assert -1.0 <= z.min() < -0.99 and 0.99 < z.max() <= 1.0
    np.testing.assert_array_equal(z, model1.sample_latent(1000, seed=2))


@pytest.mark.parametrize("kwargs, match", [
    ({"image_shape": (3, 4)}, "m > nK"),                    # 12 pixels, 12 hidden units
    ({"overlap": 5}, "valid overlaps: 0..4"),               # stripes of width 5
    ({"units_per_module": 1}, "n > 1"),
    ({"num_modules": 0}, "num_modules"),
    ({"image_shape": (16,)}, "image_shape"),
    ({"negative_slope": 0.0}, "negative_slope"),
    ({"num_modules": 20, "units_per_module": 2}, "width 16"),
])
def test_model1_invalid_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        toy.build_model1(**kwargs)
