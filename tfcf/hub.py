"""TF-Hub handles: local paths, the offline cache, and an error that says where a module goes.

    from tfcf.hub import resolve, cache_folder
    path = resolve("https://tfhub.dev/tensorflow/tfgan/eval/inception/1")
    cache_folder("https://tfhub.dev/deepmind/biggan-deep-256/1")   # $TFHUB_CACHE_DIR/<sha1>
    biggan = load_biggan()                       # tfcf.biggan.BigGAN (Gblock cuts, hybrids)
    classifier = load_classifier("resnet_v2_50")   # tfcf.imagenet.Classifier

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

__all__ = ["ModuleNotAvailable", "cache_folder", "cache_root", "is_available", "load", "load_biggan",
           "load_classifier", "resolve"]


class ModuleNotAvailable(FileNotFoundError):
    """A TF-Hub module is neither a local folder, nor cached, nor downloadable."""


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
    """
    import tensorflow_hub as hub

    return hub.load(str(resolve(handle, offline=offline)))


def load_biggan(handle="https://tfhub.dev/deepmind/biggan-deep-256/1", offline=None):
    """A BigGAN-deep module as :class:`tfcf.biggan.BigGAN` (see that module for Gblock cuts).

        biggan = load_biggan()                                   # biggan-deep-256
        biggan = load_biggan("https://tfhub.dev/deepmind/biggan-deep-128/1")
    """
    from tfcf.biggan import load_biggan as _load

    return _load(handle, offline=offline)


def load_classifier(name, handle=None, value_range=(-1.0, 1.0), offline=None):
    """A TF-Hub ImageNet classifier as :class:`tfcf.imagenet.Classifier` (Keras 3 layer inside).

        classifier = load_classifier("inception_v3")              # 299 px, inputs in [0, 1]
        probabilities = classifier.predict(images)                 # images in value_range
    """
    from tfcf.imagenet import load_classifier as _load

    return _load(name, handle=handle, value_range=value_range, offline=offline)
