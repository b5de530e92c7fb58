"""TF-Hub handles: local paths, the offline cache, and an error that says where a module goes.

    from tfcf.hub import resolve, cache_folder
    path = resolve("https://tfhub.dev/tensorflow/tfgan/eval/inception/1")
    cache_folder("https://tfhub.dev/deepmind/biggan-deep-256/1")   # $TFHUB_CACHE_DIR/<sha1>

This module is a leaf: it knows handles, folders and loading, nothing about what a module holds.
BigGAN-deep is loaded by :func:`tfcf.biggan.load_biggan`, the ImageNet classifiers by
:func:`tfcf.imagenet.load_classifier`; both resolve their handles here.

tensorflow_hub caches a module in ``$TFHUB_CACHE_DIR/<sha1 of the handle>`` (the system's temp
folder ``tfhub_modules`` when the variable is unset). :func:`resolve` looks there first, then at
a local folder given as the handle, and only then goes online through ``tensorflow_hub``; when
that fails too it raises :class:`ModuleNotAvailable` naming the exact folder to fill.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["ModuleNotAvailable", "ModuleUnreadable", "Untracked", "cache_folder", "cache_root", "is_available", "load",
           "resolve"]


class ModuleNotAvailable(FileNotFoundError):
    """A TF-Hub module is neither a local folder, nor cached, nor downloadable."""


class ModuleUnreadable(ValueError):
    """A module folder exists but its saved model cannot be read (truncated, another format)."""

    def __init__(self, path, error):
        text = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        super().__init__(
            f"cannot load the TF-Hub module in {path} ({type(error).__name__}: {text}); expected "
            "the unpacked module folder as TF-Hub serves it (saved_model.pb or tfhub_module.pb, "
            "and variables/): unpack it again")


class Untracked:
    """Holds a loaded TF-Hub object (module, pruned function) out of Keras's attribute tracking.

        self._module = Untracked(hub.load(path))      # inside a keras.layers.Layer
        outputs = self._module.value(images)
    """

    def __init__(self, value):
        self.value = value


def cache_root():
    """``$TFHUB_CACHE_DIR``, else tensorflow_hub's default ``<temp>/tfhub_modules``.

        cache_root()      # PosixPath('/tmp/tfhub_modules')
    """
    configured = os.environ.get("TFHUB_CACHE_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "tfhub_modules"


def cache_folder(handle):
    """The folder tensorflow_hub caches ``handle`` in: ``cache_root() / sha1(handle)``.

        cache_folder("https://tfhub.dev/deepmind/biggan-deep-256/1")
    """
    return cache_root() / hashlib.sha1(str(handle).encode("utf8")).hexdigest()


def _is_module_folder(path):
    path = Path(path)
    return path.is_dir() and any(
        (path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb")
    )


def is_available(handle):
    """True when ``handle`` is a local module folder or is already in the cache (no network used).

        if is_available(INCEPTION_HANDLE): ...
    """
    return _is_module_folder(handle) or _is_module_folder(cache_folder(handle))


def resolve(handle, offline=None):
    """The local folder of a TF-Hub module: a local path, the cached copy, or a fresh download.

        path = resolve("https://tfhub.dev/deepmind/biggan-deep-256/1")
        path = resolve("/data/biggan-deep-256")           # an unpacked module

    ``offline`` (default: ``$TFCF_OFFLINE`` set to 1) never tries the network. Raises
    :class:`ModuleNotAvailable` naming the handle, the cache folder to put the unpacked module
    in, and the variable that sets its root.
    """
    handle = str(handle)
    if _is_module_folder(handle):
        return Path(handle)
    if Path(handle).exists() and not handle.startswith(("http://", "https://", "gs://")):
        raise ModuleNotAvailable(
            f"{handle!r} is a local path but not a saved module (no saved_model.pb inside)")
    cached = cache_folder(handle)
    if _is_module_folder(cached):
        return cached
    if offline is None:
        offline = os.environ.get("TFCF_OFFLINE", "") in ("1", "true", "yes")
    reason = "offline mode ($TFCF_OFFLINE=1)"
    if not offline:
        try:
            import tensorflow_hub as hub

            path = Path(hub.resolve(handle))
            if _is_module_folder(path):
                return path
            reason = f"tensorflow_hub.resolve returned {str(path)!r}, which holds no saved model"
        except Exception as error:  # noqa: BLE001 - any download failure ends in the same advice
            reason = f"download failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    raise ModuleNotAvailable(
        f"TF-Hub module {handle!r} is not available ({reason}). Put the unpacked module (the folder "
        f"holding saved_model.pb) in {str(cached)!r}, i.e. $TFHUB_CACHE_DIR/<sha1 of the handle> "
        f"with $TFHUB_CACHE_DIR={str(cache_root())!r}, or pass a local folder as the handle."
    )


def load(handle, offline=None):
    """``tensorflow_hub.load`` on :func:`resolve`'s folder (TF2 SavedModel or TF1 Hub format).

        module = load("https://tfhub.dev/tensorflow/tfgan/eval/inception/1")
        outputs = module(images)                   # {"pool_3": ..., "logits": ...}

    A folder that holds a ``saved_model.pb`` but cannot be loaded raises
    :class:`ModuleUnreadable` naming it.
    """
    import tensorflow_hub as hub

    path = resolve(handle, offline=offline)
    try:
        return hub.load(str(path))
    except Exception as error:  # noqa: BLE001 - protobuf, TF and hub raise many kinds
        raise ModuleUnreadable(path, error) from None
