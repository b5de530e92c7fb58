"""Validated on-disk caches: written atomically, checked when read, rebuilt when corrupt.

    from tfcf.cache import cached_arrays
    arrays = cached_arrays("influence", key, lambda: {"maps": compute_maps()},
                           expect={"maps": ((128, 64, 64), "float32")})
    arrays["maps"]

Every expensive intermediate result tfcf keeps between runs (influence maps, FID statistics,
BigGAN hybrid sets, the face DCGAN's converted weights) goes through this one helper. A cache
file is an ``.npz`` (no pickles) in ``<tfcf cache>/<kind>/<sha1 of the key>.npz`` holding the
arrays plus two entries written with them: ``__key__`` (the full key text) and ``__sha1__`` (a
digest of every array's name, dtype, shape and bytes). Reading checks that the file opens, that
the key and digest match, that every expected array is there with the expected shape and dtype,
and that floating-point arrays are finite. A file that fails any check is reported with its path
(:class:`CorruptCacheWarning`), removed, and the value is computed again; it is never used.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from pathlib import Path

import numpy as np

from tfcf.io import atomic_write, cache_dir

__all__ = ["CorruptCacheWarning", "cache_file", "cached_arrays", "load_arrays", "save_arrays",
           "weights_digest"]

_KEY = "__key__"
_DIGEST = "__sha1__"


class CorruptCacheWarning(UserWarning):
    """A cache file failed validation: it was removed and its value is recomputed."""


def cache_file(kind, key):
    """The cache file of ``key`` under ``<tfcf cache>/<kind>/``.

        cache_file("fid", "real-faces|port")   # ~/.cache/tfcf/fid/<sha1>.npz
    """
    if not kind or "/" in str(kind) or str(kind).startswith("."):
        raise ValueError(f"cache kind must be a plain folder name, got {kind!r}")
    return cache_dir() / str(kind) / f"{hashlib.sha1(str(key).encode()).hexdigest()}.npz"


def _digest(arrays):
    digest = hashlib.sha1()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.reshape(-1).view(np.uint8) if array.size else b"")
    return digest.hexdigest()


def save_arrays(path, key, arrays):
    """Write ``arrays`` (name -> array, no object arrays) with ``key`` and a digest, atomically.

        save_arrays(cache_file("fid", key), key, {"mean": mean, "covariance": covariance})
    """
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    for name, array in arrays.items():
        if name in (_KEY, _DIGEST):
            raise ValueError(f"array name {name!r} is reserved")
        if array.dtype == object:
            raise ValueError(f"array {name!r} has dtype object; caches hold plain arrays only")
    with atomic_write(path) as handle:
        np.savez(handle, **arrays, **{_KEY: np.array(str(key)), _DIGEST: np.array(_digest(arrays))})
    return Path(path)


def _check(stored, key, expect, finite):
    """The arrays of an opened file, or the reason it cannot be used."""
    names = set(stored.files)
    if _KEY not in names or _DIGEST not in names:
        return None, "it has no key or digest (not written by tfcf.cache)"
    if str(stored[_KEY]) != str(key):
        return None, "its key differs from the requested one"
    arrays = {name: stored[name] for name in names - {_KEY, _DIGEST}}
    if _digest(arrays) != str(stored[_DIGEST]):
        return None, "its content does not match the digest written with it"
    for name, (shape, dtype) in (expect or {}).items():
        if name not in arrays:
            return None, f"array {name!r} is missing (it has {sorted(arrays)})"
        array = arrays[name]
        if shape is not None and tuple(array.shape) != tuple(shape):
            return None, f"array {name!r} has shape {array.shape}, expected {tuple(shape)}"
        if dtype is not None and array.dtype != np.dtype(dtype):
            return None, f"array {name!r} has dtype {array.dtype}, expected {np.dtype(dtype)}"
    if finite:
        for name, array in arrays.items():
            if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
                return None, f"array {name!r} holds NaN or infinite values"
    return arrays, None


def load_arrays(path, key, expect=None, finite=True):
    """The arrays cached at ``path`` for ``key``, or None when there is no usable file.

        arrays = load_arrays(path, key, expect={"mean": ((2048,), "float64")})

    ``expect`` maps array names to ``(shape, dtype)`` (either may be None: not checked). A file
    that exists but fails a check is reported with :class:`CorruptCacheWarning` naming it and
    why, then removed.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays, reason = _check(stored, key, expect, finite)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        arrays, reason = None, f"it cannot be read ({type(error).__name__}: {error})"
    if arrays is None:
        warnings.warn(CorruptCacheWarning(
            f"cache file {path} is unusable: {reason}; removed, recomputing"), stacklevel=3)
        path.unlink(missing_ok=True)
    return arrays


def cached_arrays(kind, key, compute, expect=None, finite=True, on_hit=None):
    """Arrays for ``key`` from ``<tfcf cache>/<kind>/``, or ``compute()`` saved there.

        arrays = cached_arrays("influence", key, lambda: {"maps": maps_of(model)})

    ``compute`` returns a dict of arrays (it is not called when a valid file exists);
    ``on_hit(path)`` is called when the value comes from the cache (e.g. to print a note).
    What ``compute`` returns is validated like a file read back, so a NaN result is not cached.
    """
    path = cache_file(kind, key)
    arrays = load_arrays(path, key, expect=expect, finite=finite)
    if arrays is not None:
        if on_hit is not None:
            on_hit(path)
        return arrays
    arrays = {name: np.asarray(value) for name, value in compute().items()}
    if finite and all(np.all(np.isfinite(a)) for a in arrays.values()
                      if np.issubdtype(a.dtype, np.floating)):
        save_arrays(path, key, arrays)
    return arrays


def weights_digest(model):
    """sha1 of a model's weights (values, in order): a cache key that changes when they do.

        key = f"{weights_digest(generator)}|{layer}|{num_pairs}"
    """
    digest = hashlib.sha1()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()
