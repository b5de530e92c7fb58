"""Atomic result files and run metadata.

    from tfcf.io import save_json, run_metadata
    save_json("out/results.json", {"run": run_metadata(seed=0, params={"k": 3}), "ari": 1.0})
    save_figure(fig, "out/hybrids.png")

Every result and checkpoint tfcf writes goes through :func:`atomic_write`: the data is written to
a temporary file in the destination folder and moved into place with ``os.replace``, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

_PACKAGES = ("tfcf", "tensorflow", "keras", "jax", "numpy", "scikit-learn", "scipy", "matplotlib",
             "pywavelets", "click")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same suffixes); on success move it onto ``path``.

    Example::

        with atomic_path("cache/generator.weights.h5") as temporary:
            model.save_weights(temporary)          # Keras checks the suffix: it is kept
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(descriptor)
    try:
        yield Path(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600; results are for people
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success move it onto ``path``.

    Example::

        with atomic_write("weights.npz") as handle:
            np.savez(handle, w=w)
    """
    with atomic_path(path) as temporary:
        with open(temporary, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def cache_dir():
    """The folder for tfcf's caches: ``$TFCF_CACHE_DIR``, else ``~/.cache/tfcf``.

    Example::

        cache_dir() / "influence"      # cached influence maps
    """
    return Path(os.environ.get("TFCF_CACHE_DIR") or Path.home() / ".cache" / "tfcf")


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass


def progress_bar(total, enabled=True, description="", unit="it"):
    """A tqdm bar (counts and rate) used as a context manager, or a silent stand-in.

    Example::

        with progress_bar(100, description="maps", unit="map") as bar:
            bar.update(1)
    """
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, unit_scale=True, leave=False,
                smoothing=0.1)


def save_json(path, data):
    """Write ``data`` as indented JSON, atomically. Example: ``save_json("r.json", {"a": 1})``."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, default=_jsonable)
        handle.write("\n")
    return Path(path)


def save_figure(figure, path, dpi=120):
    """Save a matplotlib figure as PNG, atomically, and close it.

    Example::

        save_figure(fig, "out/hybrids.png")
    """
    import matplotlib.pyplot as plt

    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def versions():
    """Installed versions of the packages a result depends on (absent ones are left out).

    Example::

        versions()["tensorflow"]      # "2.21.0"
    """
    found = {}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    found["python"] = platform.python_version()
    try:
        import keras

        found["keras_backend"] = keras.backend.backend()
    except ImportError:  # pragma: no cover
        pass
    return found


def run_metadata(seed, params, started=None):
    """What a result file records about the run: seed, parameters, versions, time.

    Example::

        meta = run_metadata(seed=0, params={"layer": "main.8"})
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {
        "seed": seed,
        "parameters": params,
        "versions": versions(),
        "finished_utc": now.isoformat(timespec="seconds"),
        "machine": platform.platform(),
    }
    if started is not None:
        record["run_time_s"] = round(now.timestamp() - started, 2)
    return record


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
