"""Build the aligned-faces stand-in for CelebA: N 64x64 faces from the MobileStyleGAN of `random-face`.

    pip install --no-deps random-face==2021.7.21.1 openvino
    python tools/build_faces.py --outdir ~/.cache/tfcf/faces64 --count 12000
    tfcf train dcgan --data faces64:$HOME/.cache/tfcf/faces64 --preset paper_celeba

The PyPI package `random-face` (Apache-2.0) ships a MobileStyleGAN distilled from StyleGAN2-FFHQ as
OpenVINO IR (`MappingNetwork`: z 512 -> style; `SynthesisNetwork`: style -> [1, 3, 1024, 1024] in
about [-1, 1]). This tool runs both with the current OpenVINO API, truncates the style towards the
mean style (``--truncation``, the package's default 0.5), downsamples by averaging 16x16 blocks
(antialiasing) and writes uint8 shards ``faces64_XXX.npz`` (key ``images``, (N, 64, 64, 3) RGB),
each written atomically. Shard ``i`` is drawn from the seed ``(seed, i)``: an interrupted run
resumes at the first missing shard and produces exactly the faces of an uninterrupted run. A
``CARD.json`` (source, seed, count, parameters) is written beside the shards. About 0.3 s per
face on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STYLE_DIM = 512


class MobileStyleGAN:
    """The random-face networks through OpenVINO: ``sample(rng, n)`` -> images [n, 1024, 1024, 3]."""

    def __init__(self, package_dir=None, truncation=0.5, mean_samples=4096, seed=0):
        import openvino as ov

        if package_dir is None:
            import importlib.util

            spec = importlib.util.find_spec("random_face")
            if spec is None:
                raise FileNotFoundError("random-face is not installed: pip install --no-deps "
                                        "random-face==2021.7.21.1 openvino")
            package_dir = Path(spec.origin).parent
        data = Path(package_dir) / "data"
        core = ov.Core()
        self.mapping = core.compile_model(core.read_model(str(data / "MappingNetwork.xml"),
                                                          str(data / "MappingNetwork.bin")), "CPU")
        self.synthesis = core.compile_model(core.read_model(
            str(data / "SynthesisNetwork.xml"), str(data / "SynthesisNetwork.bin")), "CPU")
        self.truncation = float(truncation)
        var = np.random.default_rng([seed, 999]).standard_normal((mean_samples, STYLE_DIM))
        self.style_mean = np.concatenate([self._style(var[i:i + 1])
                                          for i in range(mean_samples)]).mean(0, keepdims=True)

    def _style(self, var):
        return np.asarray(self.mapping({"var": var.astype("float32")})["style"])

    def sample(self, rng, count):
        images = []
        for _ in range(count):
            style = self._style(rng.standard_normal((1, STYLE_DIM)))
            style = self.style_mean + self.truncation * (style - self.style_mean)
            image = np.asarray(self.synthesis({"style": style.astype("float32")})["img"])[0]
            images.append(image.transpose(1, 2, 0))  # CHW -> HWC, RGB
        return np.stack(images)


def downsample(images, resolution=64):
    """[-1, 1] float images [N, S, S, 3] -> uint8 [N, resolution, resolution, 3] (block means)."""
    size = images.shape[1]
    if size % resolution:
        raise ValueError(f"image size {size} is not a multiple of {resolution}")
    block = size // resolution
    small = images.reshape(len(images), resolution, block, resolution, block, 3).mean(axis=(2, 4))
    return np.clip((small + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


def build(outdir, count, seed=0, shard_size=500, resolution=64, sampler=None, progress=True,
          source="random-face 2021.7.21.1 (PyPI, Apache-2.0): MobileStyleGAN distilled from "
                 "StyleGAN2-FFHQ, OpenVINO IR"):
    """Write ``count`` faces as shards in ``outdir``; skips shards already there. Returns paths."""
    from tfcf.io import atomic_write, progress_bar, save_json

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    shards = [(index, min(shard_size, count - start))
              for index, start in enumerate(range(0, count, shard_size))]
    card = {"source": source, "count": count, "seed": seed, "resolution": resolution,
            "shard_size": shard_size,
            "truncation": getattr(sampler, "truncation", None),
            "downsampling": "mean of square blocks of the 1024x1024 output",
            "range": "output [-1, 1] mapped to uint8 by (x + 1) * 127.5, clipped",
            "format": f"npz shards, key 'images', uint8 (N, {resolution}, {resolution}, 3) RGB"}
    save_json(outdir / "CARD.json", card)
    paths = []
    todo = [(i, n) for i, n in shards if not (outdir / f"faces64_{i:03d}.npz").is_file()]
    with progress_bar(sum(n for _, n in todo), progress, "faces", "face") as bar:
        for index, number in shards:
            path = outdir / f"faces64_{index:03d}.npz"
            paths.append(path)
            if path.is_file():
                continue
            rng = np.random.default_rng([seed, index])
            images = []
            for _ in range(number):
                images.append(downsample(sampler.sample(rng, 1), resolution)[0])
                bar.update(1)
            with atomic_write(path) as handle:
                np.savez(handle, images=np.stack(images))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--count", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--truncation", type=float, default=0.5)
    args = parser.parse_args(argv)
    sampler = MobileStyleGAN(truncation=args.truncation, seed=args.seed)
    paths = build(args.outdir, args.count, args.seed, args.shard_size, sampler=sampler)
    print(f"wrote {len(paths)} shards, {args.count} faces, to {args.outdir}")


if __name__ == "__main__":
    main()
