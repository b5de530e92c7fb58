"""The one prepared script for a lent GPU machine (Keras 3 + JAX there; no TensorFlow).

Here, once (CPU, TensorFlow installed): gather what must travel into the git-ignored `.device/`:

    python tools/device_session.py prepare          # wheels (keras, namex, optree), faces, weights

On the device, in one `run` call (carry [".device"], timeout 580 s):

    bash tools/device_session.sh                    # = install wheels, then `device_session.py run`

What travels (tracked files, untracked ones git does not ignore, carried paths) must stay under
64 MiB, and the committed models/weights/ alone are about 78 MB: move them out of the checkout
for the call (`mv models/weights /tmp/weights`, then back: the device run does not use them);
`.device/` then adds about 45 MiB (2,500 faces, the wheels, the face DCGAN's converted weights).

`run` measures, then trains, within --budget seconds, writing everything under $OUT (at most
8 files come back, so each part is packed into one file):

1. influence maps of the pretrained face DCGAN at `main.8` (ICLR 2020 eq. 2; issue 16): hybrids
   per second with the latents and maps kept on the GPU, at 64, 256 and 1024 pairs, and the
   fraction of the GPU's measured float32 matmul rate (in `session.json`);
2. training under KERAS_BACKEND=jax, each for its share of the remaining time (issue 20): the
   paper-width BEGAN `celeba64` (64 channels at 64 px, batch 16, 18.6 s a step on the CPU here),
   the ICLR 2020 Table 1 VAE (paper objective: per-pixel MSE + 0.0005 KL) and DCGAN on the
   carried aligned faces; each run's final checkpoint, log.csv, sample grid and steps/s packed
   into `<name>.tar.gz` (split into 15-MiB parts when larger; the checkpoint loads under
   TensorFlow here: `tfcf train ... --resume` continues it, `tools/publish_weights.py`
   publishes it). `session.json` holds every number; `log.txt` the output.

Test it here on the CPU with tiny settings: `KERAS_BACKEND=jax python tools/device_session.py
run --out /tmp/out --budget 60 --tiny`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CARRY = ROOT / ".device"
WHEELS = ("keras==3.15.1", "namex==0.1.0", "optree==0.20.0")
TRAININGS = (  # (name, family, preset, batch size, share of the training time)
    ("began_celeba64", "began", "celeba64", 16, 0.5),
    ("vae_paper_celeba", "vae", "paper_celeba", 64, 0.25),
    ("dcgan_paper_celeba", "dcgan", "paper_celeba", 64, 0.25),
)


def prepare(args):
    """Fill .device/: Python 3.12 wheels for the device, a faces subset, the face DCGAN weights."""
    import subprocess

    import numpy as np

    CARRY.mkdir(exist_ok=True)
    exclude = ROOT / ".git" / "info" / "exclude"      # .device/ is also in .gitignore
    if exclude.parent.is_dir() and "/.device/" not in (exclude.read_text()
                                                       if exclude.is_file() else ""):
        with open(exclude, "a") as handle:
            handle.write("\n/.device/\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux2014_x86_64", "-d", str(CARRY / "wheels"), *WHEELS],
                   check=True)
    from tfcf.data import load_dataset

    faces = load_dataset(f"faces64:{args.faces}")[: args.count]
    np.savez_compressed(CARRY / "faces.npz", images=faces)
    from tfcf.models import face_dcgan

    face_dcgan.load_pretrained(cache_dir=CARRY / "cache")
    size = sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file()) / 2**20
    print(f"{CARRY}: {size:.1f} MiB (the working tree and carried paths travel within 64 MiB)")


def matmul_tflops(size=8192, repeats=20):
    """The float32 matmul rate reached through keras.ops on this device, in TFLOP/s."""
    import keras
    import numpy as np

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal(
        (size, size)).astype("float32"))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, a)[:1, :1])
    start = time.perf_counter()
    for _ in range(repeats):
        result = keras.ops.matmul(a, a)
    keras.ops.convert_to_numpy(result[:1, :1])
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def bench_influence(out, tiny):
    """Hybrids/s of tfcf.influence_maps on the face DCGAN (main.8), latents on the device."""
    import keras
    import numpy as np

    import tfcf
    from tfcf.models import face_dcgan

    os.environ.setdefault("TFCF_CACHE_DIR", str(CARRY / "cache"))
    generator = face_dcgan.load_pretrained(cache_dir=os.environ["TFCF_CACHE_DIR"])
    rate = matmul_tflops(1024 if tiny else 8192, 3 if tiny else 20)
    channels = 8 if tiny else 128
    from tools.bench import linear_flops           # FLOPs a hybrid needs after the shortcut

    flops = linear_flops(generator, "main.8")[0]
    # a GPU wants far larger steps than tfcf's default (<= 1024 hybrids, sized for a CPU's
    # memory): 8192 hybrids a step hold 2 GiB per 32x32x64 tensor
    batch = 64 if tiny else 8192
    results = {"backend": keras.backend.backend(), "devices": [str(d) for d in _devices()],
               "matmul_float32_tflops": rate, "layer": "main.8", "channels": channels,
               "batch_size": batch, "linear_mflop_per_hybrid": flops / 1e6, "runs": []}
    for pairs in ((8, 16) if tiny else (64, 256, 1024)):
        z = np.random.default_rng(0).standard_normal((max(2 * pairs, 64), 100)).astype("float32")
        z = keras.ops.convert_to_tensor(z)                       # kept on the device
        tfcf.influence_maps(generator, "main.8", z, channels=list(range(channels)),
                            num_pairs=pairs, batch_size=batch, progress=False)   # warm up
        start = time.perf_counter()
        maps, record = tfcf.influence_maps(generator, "main.8", z,
                                           channels=list(range(channels)), num_pairs=pairs,
                                           batch_size=batch, progress=False,
                                           return_record=True)
        seconds = time.perf_counter() - start
        hybrids = channels * pairs
        results["runs"].append({"pairs": pairs, "hybrids": hybrids, "seconds": seconds,
                                "hybrids_per_second": hybrids / seconds,
                                "fraction_of_matmul_rate": hybrids / seconds * flops / (
                                    rate * 1e12),
                                "method": record.method, "maps_finite": bool(
                                    np.all(np.isfinite(maps)))})
        print(f"influence: {pairs} pairs x {channels} channels: {hybrids / seconds:,.0f} "
              f"hybrids/s ({record.method}), {results['runs'][-1]['fraction_of_matmul_rate']:.1%}"
              f" of the float32 matmul rate at {flops / 1e6:.2f} MFLOP a hybrid", flush=True)
    return results


def _devices():
    try:
        import jax

        return jax.devices()
    except ImportError:
        return []


PART = 15 * 2**20   # files come back up to 16 MiB each, 8 files in all


def pack(folder, archive):
    """``folder`` as a .tar.gz, split into parts of 15 MiB (``.00``, ``.01``...) when larger;
    rejoin with ``cat name.tar.gz.* > name.tar.gz``. Returns the file names."""
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(folder, arcname=folder.name)
    if archive.stat().st_size <= PART:
        return [archive.name]
    data, names = archive.read_bytes(), []
    for index, start in enumerate(range(0, len(data), PART)):
        part = archive.with_name(f"{archive.name}.{index:02d}")
        part.write_bytes(data[start:start + PART])
        names.append(part.name)
    archive.unlink()
    return names


def train_for(name, family, preset, batch_size, seconds, images, out, seed=0):
    """Train ``family:preset`` for ``seconds`` (chunks of 50 steps), checkpoint, pack a tar."""
    from tfcf.models.trainers import build_trainer
    from tfcf.run import Run

    trainer = build_trainer(family, preset, seed=seed)
    folder = out / name
    config = {"family": family, "preset": preset, "data": "faces64:<carried subset>",
              "holdout": 0, "count": len(images), "device": "gpu"}
    run = Run(folder, trainer, images, batch_size=batch_size, seed=seed, config=config,
              progress=False)
    started = time.perf_counter()
    chunk, compiled_at = 50, None
    while time.perf_counter() - started < seconds:
        run.train(run.step + chunk, checkpoint_every=10**9, resume=False)
        if compiled_at is None:   # the first chunk compiles: rate from the second on
            compiled_at = (run.step, time.perf_counter())
    rate = ((run.step - compiled_at[0]) / (time.perf_counter() - compiled_at[1])
            if run.step > compiled_at[0] else None)
    run.save()
    summary = {"name": name, "family": family, "preset": preset, "batch_size": batch_size,
               "steps": run.step, "steps_per_second": rate, "seconds": seconds}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["files"] = pack(folder, out / f"{name}.tar.gz")
    import shutil

    shutil.rmtree(folder)
    speed = (f"{rate:.2f} steps/s after compilation" if rate is not None else
             "steps/s not measured: only the first (compiling) chunk ran in the time given")
    print(f"train {name}: {run.step} steps, {speed}", flush=True)
    return summary


def run(args):
    import numpy as np

    out = Path(args.out or os.environ.get("OUT") or "out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {"budget_s": args.budget}
    try:
        report["influence"] = bench_influence(out, args.tiny)
    except Exception as error:  # noqa: BLE001 - report and go on to the trainings
        report["influence_error"] = f"{type(error).__name__}: {error}"
        print(report["influence_error"], flush=True)
    with np.load(args.faces or CARRY / "faces.npz") as data:
        images = data["images"]
    if args.tiny:
        images = images[:64]
    left = args.budget - (time.perf_counter() - started) - 30      # packing and margin
    report["trainings"] = []
    for name, family, preset, batch_size, share in TRAININGS:
        if args.tiny:
            preset = {"began": "celeba64_small", "vae": "paper_cifar10",
                      "dcgan": "paper_cifar10"}[family]
        try:
            report["trainings"].append(train_for(
                name, family, preset, batch_size, max(5.0, left * share),
                images if not args.tiny or family == "began" else images[:, ::2, ::2], out))
        except Exception as error:  # noqa: BLE001
            report["trainings"].append({"name": name, "error": f"{type(error).__name__}: "
                                                              f"{error}"})
            print(report["trainings"][-1], flush=True)
    report["seconds"] = time.perf_counter() - started
    (out / "session.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {sorted(p.name for p in out.iterdir())}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    first = commands.add_parser("prepare", help="gather .device/ here (needs TensorFlow)")
    first.add_argument("--faces", default=str(ROOT.parent / "shared" / "data" / "faces64"))
    first.add_argument("--count", type=int, default=2500)
    second = commands.add_parser("run", help="on the device: bench, then train")
    second.add_argument("--out", default=None, help="[default: $OUT]")
    second.add_argument("--budget", type=float, default=540.0, help="seconds in all")
    second.add_argument("--faces", default=None, help="[default: .device/faces.npz]")
    second.add_argument("--tiny", action="store_true", help="tiny settings (a CPU test)")
    args = parser.parse_args(argv)
    prepare(args) if args.command == "prepare" else run(args)


if __name__ == "__main__":
    main()
