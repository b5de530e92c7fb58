"""The device script's packing: what comes back from a lent GPU fits its file limits and rejoins."""

import importlib.util
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("device_session",
                                                  ROOT / "tools" / "device_session.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_splits_large_archives_into_parts_that_rejoin(tmp_path, monkeypatch):
    import numpy as np

    device_session = _module()
    folder = tmp_path / "run"
    folder.mkdir()
    payload = np.random.default_rng(0).bytes(50_000)      # incompressible
    (folder / "weights.bin").write_bytes(payload)
    monkeypatch.setattr(device_session, "PART", 20_000)
    names = device_session.pack(folder, tmp_path / "out" / "run.tar.gz") \
        if (tmp_path / "out").mkdir() is None else None
    assert names == ["run.tar.gz.00", "run.tar.gz.01", "run.tar.gz.02"]
    assert all((tmp_path / "out" / n).stat().st_size <= 20_000 for n in names)
    joined = tmp_path / "joined.tar.gz"
    joined.write_bytes(b"".join((tmp_path / "out" / n).read_bytes() for n in names))
    with tarfile.open(joined) as archive:
        assert archive.extractfile("run/weights.bin").read() == payload
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("a")
    assert device_session.pack(small, tmp_path / "out" / "small.tar.gz") == ["small.tar.gz"]
