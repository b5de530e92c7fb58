"""For every layer of every architecture in models/: tail(head(x)) == model(x), and a hybrid check."""

import numpy as np
import pytest

import tfcf
from conftest import randomize_batchnorm, to_numpy
from tfcf.models import began, dcgan, face_dcgan, toy, vae
from tfcf.graph import FlatGraph

ARCHITECTURES = {
    **{f"dcgan_g_{p}": (lambda p=p: dcgan.build_generator(p)) for p in dcgan.PRESETS},
    **{f"dcgan_d_{p}": (lambda p=p: dcgan.build_discriminator(p)) for p in dcgan.PRESETS},
    **{f"vae_enc_{p}": (lambda p=p: vae.build_encoder(p)) for p in vae.PRESETS},
    **{f"vae_dec_{p}": (lambda p=p: vae.build_decoder(p)) for p in vae.PRESETS},
    "began_g": lambda: began.build_generator("celeba64"),
    "began_g_skip": lambda: began.build_generator("celeba64", skip=True),
    "began_d": lambda: began.build_discriminator("celeba64"),
    "toy_model1": lambda: toy.build_model1().model,
    "face_dcgan": lambda: face_dcgan.build_generator(),
}


def _inputs(model, rng):
    arrays = [rng.normal(size=(2,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    return arrays[0] if len(arrays) == 1 else arrays


def _as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_layer_splits_exactly(name, rng):
    model = randomize_batchnorm(ARCHITECTURES[name]())
    x = _inputs(model, rng)
    expected = _as_list(to_numpy(model(x, training=False)))
    layer_names = FlatGraph(model).op_names()
    worst = 0.0
    for layer in layer_names:
        head, tail = tfcf.split(model, layer)
        ours = _as_list(to_numpy(tail(head(x), training=False)))
        for a, b in zip(ours, expected):
            worst = max(worst, float(np.abs(a - b).max()))
    assert worst <= 1e-6, f"{name}: max |tail(head(x)) - model(x)| = {worst}"


@pytest.mark.parametrize("preset", sorted(dcgan.PRESETS))
def test_dcgan_hybrid_at_intermediate_layer(preset, rng):
    generator = randomize_batchnorm(dcgan.build_generator(preset))
    layer = dcgan.INTERMEDIATE_LAYER[preset]
    head, tail = tfcf.split(generator, layer)
    z1, z2 = rng.normal(size=(2, 3, generator.inputs[0].shape[1])).astype("float32")
    golden = to_numpy(head(z1))
    golden[..., ::2] = to_numpy(head(z2))[..., ::2]
    channels = list(range(0, golden.shape[-1], 2))
    ours = tfcf.hybrid(generator, layer, channels, base=z1, source=z2)
    np.testing.assert_allclose(ours, to_numpy(tail(golden)), atol=1e-5)


def test_began_two_successive_layers(rng):
    generator = began.build_generator("celeba64", skip=True)
    first, second = began.INTERMEDIATE_LAYERS["celeba64"]
    z1, z2 = rng.uniform(-1, 1, size=(2, 2, generator.inputs[0].shape[1])).astype("float32")
    head1, _ = tfcf.split(generator, first)
    a1 = _as_list(to_numpy(head1(z1)))
    a1_source = _as_list(to_numpy(head1(z2)))[0]
    a1[0][..., [0, 1]] = a1_source[..., [0, 1]]
    # Downstream of the first layer, recompute the second from the intervened first layer.
    middle_head, middle_tail = tfcf.split(generator, second)
    # The second layer's value is conv(first): compute it by hand from the layer itself.
    conv = generator.get_layer(second.replace("_elu", ""))
    act = generator.get_layer(second)
    a2 = to_numpy(act(conv(a1[0])))
    a2_source = _as_list(to_numpy(middle_head(z2)))[0]
    a2[..., [5]] = a2_source[..., [5]]
    state = _as_list(middle_head(z1))
    state = [a2] + [to_numpy(s) for s in state[1:]]
    expected = to_numpy(middle_tail(state if len(state) > 1 else state[0]))
    ours = tfcf.hybrid(generator, [first, second], [[0, 1], [5]], base=z1, source=z2)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
