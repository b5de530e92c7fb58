"""Restricted loaders: malicious pickles are refused, the real formats round-trip exactly."""

import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from tfcf.safeload import load_npz, load_pickle, load_torch_state_dict


class _RunsShell:
    """A pickle payload: unpickling it would run a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _object_array(items):
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):  # element-wise: equal shapes must not broadcast
        array[index] = item
    return array


def _npz_with_raw_object_member(path, name, pickled):
    """An .npz whose member `name` is an object array whose pickle payload is `pickled`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    with zipfile.ZipFile(path, "w") as archive:  # the header writer also writes the magic
        archive.writestr(f"{name}.npy", header.getvalue() + pickled)


# --- .npz -------------------------------------------------------------------------------------


def test_tensorlayer_npz_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    params = [
        rng.normal(size=(100, 64)).astype("float32"),
        rng.normal(size=(64,)).astype("float32"),
        rng.normal(size=(5, 5, 32, 64)).astype("float32"),
        rng.normal(size=(64,)).astype("float32"),  # same shape as [1]: must not be merged
    ]
    path = tmp_path / "net_g.npz"
    np.savez(path, params=_object_array(params), plain=np.arange(6, dtype="int16").reshape(2, 3))
    loaded = load_npz(path)
    assert isinstance(loaded["params"], list) and len(loaded["params"]) == len(params)
    for ours, expected in zip(loaded["params"], params):
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(loaded["plain"], np.arange(6, dtype="int16").reshape(2, 3))


def test_plain_npz_matches_numpy(tmp_path):
    path = tmp_path / "stats.npz"
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    np.savez_compressed(path, mu=np.linspace(0, 1, 7), sigma=fortran, flag=np.array(True))
    loaded = load_npz(path)
    with np.load(path, allow_pickle=False) as reference:
        assert set(loaded) == set(reference.files)
        for name in reference.files:
            np.testing.assert_array_equal(loaded[name], reference[name])
            assert loaded[name].dtype == reference[name].dtype


def test_npz_with_malicious_object_array_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    _npz_with_raw_object_member(path, "params", pickle.dumps(_RunsShell(marker), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (posix|nt|os)\.system"):
        load_npz(path)
    assert not marker.exists()


def test_npz_object_array_holding_a_malicious_element_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    payload = _object_array([np.zeros(2), _RunsShell(marker)])
    np.savez(path, params=payload)  # numpy pickles the element as it is
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_npz(path)
    assert not marker.exists()


def test_missing_npz_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load_npz(tmp_path / "nothere.npz")


# --- plain pickles (CIFAR-10 batches) ---------------------------------------------------------


class _Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: bytes as str opcodes, numpy under numpy.core."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_python2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_python2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core.", "numpy.core.")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode("ascii"))
        self.memoize(obj)


def test_cifar_style_python2_batch_round_trips(tmp_path):
    """A protocol-2 Python 2 pickle with str keys, as cifar-10-batches-py's data_batch_N."""
    rng = np.random.default_rng(1)
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in rng.integers(0, 10, size=5)],
        b"data": rng.integers(0, 256, size=(5, 3072), dtype=np.uint8),
        b"filenames": [b"a.png", b"b.png", b"c.png", b"d.png", b"e.png"],
    }
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as stream:
        _Python2Pickler(stream, protocol=2).dump(batch)
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()
    assert b"_codecs" not in path.read_bytes()
    loaded = load_pickle(path, encoding="bytes")
    assert loaded[b"labels"] == batch[b"labels"]
    assert loaded[b"filenames"] == batch[b"filenames"]
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])
    with open(path, "rb") as stream:
        assert load_pickle(stream, encoding="bytes")[b"batch_label"] == b"training batch 1 of 5"
    # the same batch written by Python 3 (bytes go through _codecs.encode under protocol 2)
    path.write_bytes(pickle.dumps(batch, protocol=2))
    np.testing.assert_array_equal(load_pickle(path)[b"data"], batch[b"data"])


def test_pickle_refuses_globals_outside_containers(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({b"data": _RunsShell(marker)}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_pickle(path, encoding="bytes")
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        load_pickle(io.BytesIO(b"cbuiltins\neval\n(S'1+1'\ntR."))


# --- torch.save zip checkpoints, written by hand ----------------------------------------------


class _Global:
    """A global the pickler writes by name, as torch's pickle names its own functions."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # the pickler wants a callable reducer; it is only written by name
        raise NotImplementedError


class _Storage:
    def __init__(self, key, storage_type, values):
        self.key, self.storage_type, self.values = key, storage_type, values


class _Tensor:
    """Pickles as torch.Tensor does: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (
            _Global("torch._utils", "_rebuild_tensor_v2"),
            (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()),
        )


class _TorchStylePickler(pickle._Pickler):
    """The pure-Python pickler, with torch's persistent ids for storages and named globals."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_named_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("utf-8"))
        self.memoize(obj)

    dispatch[_Global] = _save_named_global

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.values.size)
        return None


def _write_torch_zip(path, obj, storages, archive_name="archive", pickled=None):
    if pickled is None:
        buffer = io.BytesIO()
        _TorchStylePickler(buffer, protocol=2).dump(obj)
        pickled = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{archive_name}/data.pkl", pickled)
        archive.writestr(f"{archive_name}/byteorder", "little")
        for storage in storages:
            little_endian = storage.values.astype(storage.values.dtype.newbyteorder("<"))
            archive.writestr(f"{archive_name}/data/{storage.key}", little_endian.tobytes())
        archive.writestr(f"{archive_name}/version", "3\n")


def _hand_made_checkpoint():
    rng = np.random.default_rng(2)
    float_values = rng.normal(size=40).astype("float32")
    long_values = np.array([7, -3, 30070], dtype="int64")
    half_values = rng.normal(size=6).astype("float16")
    floats = _Storage("0", _Global("torch", "FloatStorage"), float_values)
    longs = _Storage("1", _Global("torch", "LongStorage"), long_values)
    halves = _Storage("2", _Global("torch", "HalfStorage"), half_values)
    state = collections.OrderedDict()
    # contiguous (2, 3, 4) at offset 0; its transpose (4, 3) of a (3, 4) block at offset 24;
    # a strided (2, 2) view at offset 5; a 0-d long at offset 2; a whole half-precision storage
    state["conv.weight"] = _Tensor(floats, 0, (2, 3, 4), (12, 4, 1))
    state["linear.weight"] = _Tensor(floats, 24, (4, 3), (1, 4))
    state["strided"] = _Tensor(floats, 5, (2, 2), (10, 3))
    state["bn.num_batches_tracked"] = _Tensor(longs, 2, (), ())
    state["half"] = _Tensor(halves, 0, (6,), (1,))
    state._metadata = collections.OrderedDict({"": {"version": 1}})  # as torch attaches
    expected = {
        "conv.weight": float_values[:24].reshape(2, 3, 4),
        "linear.weight": float_values[24:36].reshape(3, 4).T,
        "strided": np.array([[float_values[5], float_values[8]], [float_values[15], float_values[18]]]),
        "bn.num_batches_tracked": np.array(30070, dtype="int64"),
        "half": half_values,
    }
    return {"netG_state_dict": state, "epoch": 3}, [floats, longs, halves], expected


def test_torch_style_zip_round_trips_exact_values(tmp_path):
    checkpoint, storages, expected = _hand_made_checkpoint()
    path = tmp_path / "weights.tar"
    _write_torch_zip(path, checkpoint, storages)
    state = load_torch_state_dict(path, key="netG_state_dict")
    assert set(state) == set(expected)
    for name, value in expected.items():
        assert state[name].dtype == value.dtype, name
        assert state[name].shape == value.shape, name
        np.testing.assert_array_equal(state[name], value)
    assert state["linear.weight"].flags.c_contiguous  # a copy, not a view on the storage


def test_torch_style_zip_key_errors(tmp_path):
    checkpoint, storages, _ = _hand_made_checkpoint()
    path = tmp_path / "weights.tar"
    _write_torch_zip(path, checkpoint, storages)
    with pytest.raises(ValueError, match=r"'netD_state_dict'.*\['epoch', 'netG_state_dict'\]"):
        load_torch_state_dict(path, key="netD_state_dict")
    with pytest.raises(ValueError, match=r"pass key= one of \['netG_state_dict'\]"):
        load_torch_state_dict(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_torch_state_dict(tmp_path / "missing.pt")


def test_torch_style_zip_with_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    evil = {"weight": _RunsShell(marker)}
    _write_torch_zip(path, None, [], pickled=pickle.dumps(evil, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_torch_state_dict(path)
    assert not marker.exists()


def test_torch_style_zip_reading_past_its_storage_is_refused(tmp_path):
    floats = _Storage("0", _Global("torch", "FloatStorage"), np.zeros(4, dtype="float32"))
    path = tmp_path / "overflow.pt"
    _write_torch_zip(path, {"w": _Tensor(floats, 2, (1000,), (1000,))}, [floats])
    with pytest.raises(pickle.UnpicklingError, match="storage of 4 elements"):
        load_torch_state_dict(path)


def test_hand_made_zip_agrees_with_torch_load(tmp_path):
    """Optional: real torch reads our fixture as we do, and we read real torch.save output."""
    torch = pytest.importorskip("torch")
    checkpoint, storages, expected = _hand_made_checkpoint()
    path = tmp_path / "weights.tar"
    _write_torch_zip(path, checkpoint, storages)
    reference = torch.load(path, map_location="cpu", weights_only=True)["netG_state_dict"]
    for name, value in expected.items():
        np.testing.assert_array_equal(reference[name].numpy(), value)

    base = torch.arange(30, dtype=torch.float64).reshape(5, 6)
    saved = {
        "t": base.t()[1:, 2:],  # non-contiguous, offset into its storage
        "p": torch.nn.Parameter(torch.ones(3)),
        "b": torch.tensor([True, False]),
    }
    torch.save(saved, tmp_path / "real.pt")
    ours = load_torch_state_dict(tmp_path / "real.pt")
    for name, tensor in saved.items():
        np.testing.assert_array_equal(ours[name], tensor.detach().numpy())
