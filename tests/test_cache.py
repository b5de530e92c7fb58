"""Validated caches: a corrupt file is named, removed and recomputed, never used."""

import numpy as np
import pytest

from tfcf.cache import CorruptCacheWarning, cache_file, cached_arrays, load_arrays, save_arrays


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TFCF_CACHE_DIR", str(tmp_path))
    return tmp_path


class Counter:
    def __init__(self, value):
        self.calls, self.value = 0, value

    def __call__(self):
        self.calls += 1
        return {"maps": self.value, "names": np.array(["a:0", "b:1"])}


def _corrupt(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"not a zip file at all" * 10)
    elif how == "flipped":  # one byte of the array data changed: the zip opens, the digest fails
        array = np.load(path)["maps"]
        tampered = array.copy()
        tampered.flat[0] += 1
        np.savez(path, maps=tampered, names=np.array(["a:0", "b:1"]),
                 __key__=np.load(path)["__key__"], __sha1__=np.load(path)["__sha1__"])
    elif how == "empty":
        path.write_bytes(b"")


def test_cached_arrays_compute_once_then_read_back(cache_root):
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    compute = Counter(value)
    first = cached_arrays("influence", "key-1", compute)
    second = cached_arrays("influence", "key-1", compute)
    assert compute.calls == 1
    np.testing.assert_array_equal(second["maps"], value)
    assert second["names"].tolist() == ["a:0", "b:1"]
    assert first["maps"].dtype == second["maps"].dtype == np.float32
    assert [p.name for p in (cache_root / "influence").iterdir()] == [cache_file("influence",
                                                                               "key-1").name]


@pytest.mark.parametrize("how", ["truncated", "garbage", "flipped", "empty"])
def test_a_corrupt_file_is_named_removed_and_recomputed(cache_root, how):
    value = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    compute = Counter(value)
    cached_arrays("fid", "stats", compute)
    path = cache_file("fid", "stats")
    _corrupt(path, how)
    with pytest.warns(CorruptCacheWarning, match=str(path).replace(".", r"\.")):
        again = cached_arrays("fid", "stats", compute)
    assert compute.calls == 2
    np.testing.assert_array_equal(again["maps"], value)
    assert load_arrays(path, "stats") is not None  # rewritten, valid


def test_wrong_shape_dtype_key_or_nan_are_refused(cache_root, tmp_path):
    path = tmp_path / "x.npz"
    save_arrays(path, "k", {"maps": np.zeros((2, 3), np.float32)})
    with pytest.warns(CorruptCacheWarning, match=r"shape \(2, 3\), expected \(3, 3\)"):
        assert load_arrays(path, "k", expect={"maps": ((3, 3), None)}) is None
    assert not path.exists()
    save_arrays(path, "k", {"maps": np.zeros((2, 3), np.float32)})
    with pytest.warns(CorruptCacheWarning, match="dtype float32, expected float64"):
        assert load_arrays(path, "k", expect={"maps": (None, "float64")}) is None
    save_arrays(path, "k", {"maps": np.zeros((2, 3), np.float32)})
    with pytest.warns(CorruptCacheWarning, match="key differs"):
        assert load_arrays(path, "other", expect=None) is None
    save_arrays(path, "k", {"maps": np.array([1.0, np.nan])})
    with pytest.warns(CorruptCacheWarning, match="NaN or infinite"):
        assert load_arrays(path, "k") is None


def test_pickled_or_foreign_npz_is_refused_without_unpickling(cache_root, tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, maps=np.array([{"a": 1}], dtype=object))
    with pytest.warns(CorruptCacheWarning, match="cannot be read|no key or digest"):
        assert load_arrays(path, "k") is None
    with pytest.raises(ValueError, match="dtype object"):
        save_arrays(path, "k", {"maps": np.array([{"a": 1}], dtype=object)})


def test_a_nan_result_is_returned_but_not_cached(cache_root):
    compute = Counter(np.array([np.nan, 1.0]))
    cached_arrays("influence", "nan", compute)
    cached_arrays("influence", "nan", compute)
    assert compute.calls == 2
    assert not cache_file("influence", "nan").exists()


def test_truncated_fid_statistics_are_recomputed(cache_root):
    from tfcf import metrics

    class Network:
        identity, calls = "fake-extractor", 0

        def __call__(self, batch):
            Network.calls += 1
            batch = np.asarray(batch, dtype=np.float64)
            return batch.reshape(len(batch), -1)[:, :6]

    images = np.random.default_rng(0).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    network = Network()
    first = metrics.feature_statistics(images, network, value_range=(0, 255), progress=False)
    calls = Network.calls
    path = metrics.statistics_cache_path(metrics._array_digest(images), network.identity,
                                         (0, 255), True)
    _corrupt(path, "truncated")
    with pytest.warns(CorruptCacheWarning, match="fid"):
        again = metrics.feature_statistics(images, network, value_range=(0, 255), progress=False)
    assert Network.calls > calls
    np.testing.assert_allclose(again.covariance, first.covariance)
    assert again.count == first.count == 20


def test_kind_must_be_a_folder_name():
    with pytest.raises(ValueError, match="plain folder name"):
        cache_file("../elsewhere", "k")
