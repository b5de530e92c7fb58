"""Benchmarks that print ratios against a baseline measured in the same run.

    python tools/bench.py influence                 # face DCGAN, main.8, all channels
    python tools/bench.py influence --pairs 32 --layer main.5
    python tools/bench.py fid                       # FID Inception: Keras port vs TorchScript
    python tools/bench.py sdr                       # SDR of every pathway, DCGAN G and D
    python tools/bench.py train                     # training steps/s vs a plain Keras fit

`influence`: elementary influence maps of every channel of a layer, computed (a) by the baseline a
user would write with the core alone -- for each channel, `tfcf.hybrid` on all pairs (the whole
generator runs on base and source every time) and eq. 2 in NumPy -- and (b) by
`tfcf.influence_maps`. Prints the max difference between the two sets of maps, hybrids per
second, and the fraction of the downstream FLOP bound reached (the multiply-adds of the layers
after the cut for one hybrid, at the float32 matmul rate this machine reaches in the same run).
The last line reads `influence: <ratio>x vs per-channel hybrid`.

`fid`: the same images (64x64 uint8) through the TorchScript FID Inception network
(`default_1.pt` run by torch on this CPU, with the reference's TF1 bilinear resize) and through
tfcf's Keras port (`tfcf.metrics.inception_features`, preprocessing included), both after a
warm-up; prints the max feature difference, images per second of each, and the time of
`frechet_distance` on 2048-d features with each method (TTUR's sqrtm, the symmetric eigh form). Needs torch (`pip install torch`) for the baseline. The last
line reads `fid: <images/s> images/s (<ratio>x vs TorchScript)`.

`sdr`: the spectral dependency ratio of every pathway (input -> middle -> output channel) of the
successive conv pairs of the tensorlayer-preset DCGAN generator and discriminator (random
initial weights: the cost does not depend on the values), by `tfcf.spectral.model_sdr` and by the
straightforward triple loop over pathways a user would write: for each (i, m, o), the squared
norm of `fine * (coarse upsampled by s)` with `scipy.signal.convolve2d` over the kernels'
energies. The loop runs on `--loop-pathways` pathways drawn at random from each pair (all of
them with `--full-loop`); its values are compared with the vectorised ones on those pathways,
and its time per pathway is scaled to the total count. The last line reads
`sdr: <ratio>x vs triple loop`.

`train`: training steps per second of `tfcf.train` for the ICLR 2020 Table 1 DCGAN and beta-VAE
(`paper_celeba`, 64x64, batch 64) and the BEGAN (`celeba64`), after a warm-up, on random images;
the baseline is a plain `keras.Model.fit` of the same DCGAN discriminator (binary cross-entropy
on logits, Adam) on the same batches in the same run. The last line reads
`train: <steps/s> steps/s (<ratio>x vs fit)` for the DCGAN (one D step and two G steps per
step, against one D step of `fit`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def matmul_gflops(size=1024, repeats=10):
    """Float32 matmul rate of this machine through the Keras backend, in GFLOP/s."""
    import keras
    import numpy as np

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(size, size)).astype("float32"))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
    start = time.perf_counter()
    for _ in range(repeats):
        result = keras.ops.matmul(a, a)
    keras.ops.convert_to_numpy(result)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def downstream_macs(model, at):
    """Multiply-adds per sample of the Dense/Conv layers downstream of the cut at ``at``."""
    import keras

    import tfcf

    _, tail = tfcf.split(model, at)
    total = 0
    for layer in tail.layers:
        if isinstance(layer, keras.layers.Dense):
            total += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c = layer.input.shape
            kh, kw, out, _ = layer.kernel.shape
            total += h * w * kh * kw * c * out
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, out = layer.output.shape
            kh, kw, c, _ = layer.kernel.shape
            total += h * w * kh * kw * c * out
    return total


def bench_influence(args):
    import numpy as np

    import tfcf
    from tfcf.models.registry import load_generator
    from tfcf.influence import draw_pairs

    spec = load_generator(args.model, layer=args.layer)
    model, layer = spec.model, spec.layer
    z = spec.sample_latent(args.samples, seed=0)
    head, _ = tfcf.split(model, layer)
    num_channels = int(head.outputs[0].shape[-1])
    base, source = draw_pairs(len(z), args.pairs, seed=0)
    hybrids = num_channels * args.pairs
    print(f"model {spec.name}, layer {layer} ({num_channels} channels), {args.pairs} pairs, "
          f"{hybrids} hybrids")

    # Warm both paths up on a few channels so that tracing is not timed.
    tfcf.hybrid(model, layer, [0], z[base], z[source], batch_size=args.batch_size)
    tfcf.influence_maps(model, layer, z, channels=[[0]], num_pairs=args.pairs, progress=False,
                        batch_size=args.batch_size)
    tfcf.influence_maps(model, layer, z, num_pairs=args.pairs, progress=False,
                        batch_size=args.batch_size)

    start = time.perf_counter()
    originals = np.asarray(model.predict_on_batch(z[base]))
    baseline = np.empty((num_channels,) + originals.shape[1:3], dtype="float64")
    for channel in range(num_channels):
        out = tfcf.hybrid(model, layer, [channel], z[base], z[source], batch_size=args.batch_size)
        baseline[channel] = np.abs(out - originals).mean(axis=(0, 3))
    baseline_seconds = time.perf_counter() - start

    start = time.perf_counter()
    ours, record = tfcf.influence_maps(model, layer, z, num_pairs=args.pairs, progress=False,
                                       batch_size=args.batch_size, return_record=True)
    ours_seconds = time.perf_counter() - start
    method = record.method

    gflops = matmul_gflops()
    macs = downstream_macs(model, layer)
    bound = gflops * 1e9 / (2 * macs)
    rate, baseline_rate = hybrids / ours_seconds, hybrids / baseline_seconds
    print(f"max |maps - baseline maps|: {np.abs(ours - baseline).max():.3g} "
          f"(maps up to {baseline.max():.3g})")
    print(f"baseline (per-channel tfcf.hybrid): {baseline_seconds:.2f} s, "
          f"{baseline_rate:.0f} hybrids/s")
    print(f"tfcf.influence_maps ({method}): {ours_seconds:.2f} s, {rate:.0f} hybrids/s")
    print(f"downstream FLOP bound: {2 * macs / 1e6:.1f} MFLOP per hybrid at {gflops:.1f} GFLOP/s "
          f"(float32 matmul, this run) = {bound:.0f} hybrids/s; reached {rate / bound:.1%} "
          f"(baseline {baseline_rate / bound:.1%})")
    print(f"influence: {baseline_seconds / ours_seconds:.2f}x vs per-channel hybrid")


def _torchscript_features(network, images, batch_size):
    """The TorchScript network on uint8 images, resized as TF1's resize_bilinear (the reference)."""
    import numpy as np
    import torch

    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).float().permute(0, 3, 1, 2)
            n, _, height, width = x.shape
            rows = torch.arange(299, dtype=torch.float64) * height / 299
            columns = torch.arange(299, dtype=torch.float64) * width / 299
            grid_y, grid_x = torch.meshgrid((2 * rows + 1) / height - 1, (2 * columns + 1) / width - 1,
                                            indexing="ij")
            grid = torch.stack([grid_x, grid_y], -1).float()[None].expand(n, -1, -1, -1)
            x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                                align_corners=False)
            outputs.append(network(x / 128 - 1).numpy())
    return np.concatenate(outputs)


def bench_fid(args):
    import numpy as np

    from tfcf.fid_inception import default_weights_path
    from tfcf.metrics import frechet_distance, inception_features

    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 256, size=(args.images, 8, 8, 3)).astype("float32")
    images = np.repeat(np.repeat(smooth, 8, axis=1), 8, axis=2)
    images = np.clip(images + rng.normal(0, 12, size=images.shape), 0, 255).astype("uint8")
    print(f"{args.images} images 64x64 -> 299x299, batch {args.batch_size}, "
          f"threads {os.cpu_count()}")

    inception_features(images[: args.batch_size], "port", args.batch_size, (0, 255), progress=False)
    start = time.perf_counter()
    ours = inception_features(images, "port", args.batch_size, (0, 255), progress=False)
    ours_seconds = time.perf_counter() - start
    print(f"tfcf Keras port ({os.environ.get('KERAS_BACKEND', 'tensorflow')}): {ours_seconds:.2f} s, "
          f"{len(images) / ours_seconds:.2f} images/s")

    ratio_text = "no TorchScript baseline: torch is not installed"
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        network = torch.jit.load(str(default_weights_path()), map_location="cpu").eval()
        _torchscript_features(network, images[: args.batch_size], args.batch_size)
        start = time.perf_counter()
        reference = _torchscript_features(network, images, args.batch_size)
        torch_seconds = time.perf_counter() - start
        print(f"TorchScript default_1.pt (torch {torch.__version__}, {torch.get_num_threads()} threads): "
              f"{torch_seconds:.2f} s, {len(images) / torch_seconds:.2f} images/s")
        print(f"max |port - TorchScript| features: {np.abs(ours - reference).max():.3g} "
              f"(features up to {np.abs(reference).max():.3g})")
        ratio_text = f"{torch_seconds / ours_seconds:.2f}x vs TorchScript"

    features = rng.gamma(0.5, 0.6, size=(2 * args.fd_samples, 2048))
    values = {}
    for method in ("sqrtm", "eigh"):
        start = time.perf_counter()
        values[method] = frechet_distance(features[: args.fd_samples], features[args.fd_samples:] + 0.01,
                                          method=method)
        print(f"frechet_distance ({method}) on 2 x {args.fd_samples} 2048-d features: "
              f"{time.perf_counter() - start:.2f} s, value {values[method]:.6f}")
    print(f"relative difference sqrtm vs eigh: {abs(values['sqrtm'] - values['eigh']) / values['sqrtm']:.2g}")
    print(f"fid: {len(images) / ours_seconds:.2f} images/s ({ratio_text})")


def _loop_sdr(fine, coarse, stride):
    """One pathway, the direct way: ||f * c^s||^2 / (||f||^2 ||c||^2)."""
    import numpy as np
    from scipy.signal import convolve2d

    upsampled = np.zeros(((coarse.shape[0] - 1) * stride + 1, (coarse.shape[1] - 1) * stride + 1))
    upsampled[::stride, ::stride] = coarse
    return np.sum(convolve2d(fine, upsampled) ** 2) / (np.sum(fine ** 2) * np.sum(coarse ** 2))


def bench_sdr(args):
    import numpy as np

    from tfcf.models import dcgan
    from tfcf import spectral

    models = [dcgan.build_generator("tensorlayer"), dcgan.build_discriminator("tensorlayer")]
    spectral.model_sdr(models[0])  # warm-up (imports, first allocation)
    started = time.perf_counter()
    results = [spectral.model_sdr(model) for model in models]
    vectorised = time.perf_counter() - started
    rng = np.random.default_rng(0)
    total, looped, loop_time, worst = 0, 0, 0.0, 0.0
    for model, rhos in zip(models, results):
        for (name_a, name_b), rho in rhos.items():
            fine_name, _, stride = spectral.pair_layout(model, name_a, name_b)
            a = np.transpose(spectral.layer_kernels(model.get_layer(name_a)), (2, 3, 0, 1))
            b = np.transpose(spectral.layer_kernels(model.get_layer(name_b)), (2, 3, 0, 1))
            a, b = a.astype(np.float64), b.astype(np.float64)
            count = rho.size
            total += count
            if args.full_loop:
                picks = np.ndindex(*rho.shape)
            else:
                flat = rng.choice(count, min(count, args.loop_pathways), replace=False)
                picks = zip(*np.unravel_index(flat, rho.shape))
            started = time.perf_counter()
            values, where = [], []
            for i, m, o in picks:
                ka, kb = a[i, m], b[m, o]
                fine, coarse = (kb, ka) if fine_name == "b" else (ka, kb)
                values.append(_loop_sdr(fine, coarse, stride))
                where.append((i, m, o))
            loop_time += time.perf_counter() - started
            looped += len(values)
            index = tuple(np.array(where).T)
            worst = max(worst, float(np.max(np.abs(rho[index] - np.array(values)))))
            print(f"{model.name} {name_a} -> {name_b}: {count} pathways, stride {stride}, "
                  f"rho median {np.nanmedian(rho):.3f}")
    per_pathway = loop_time / looped
    loop_estimate = per_pathway * total
    print(f"vectorised: {total} pathways (G + D) in {vectorised:.2f} s "
          f"({total / vectorised / 1e6:.1f} M pathways/s)")
    print(f"triple loop: {looped} pathways in {loop_time:.2f} s ({per_pathway * 1e6:.1f} us each)"
          f"; all {total}: {loop_estimate:.0f} s" + ("" if args.full_loop else " (scaled)"))
    print(f"max |vectorised - loop| on the looped pathways: {worst:.2e}")
    print(f"sdr: {loop_estimate / vectorised:.0f}x vs triple loop")


def bench_train(args):
    import keras
    import numpy as np

    from tfcf.models.trainers import build_trainer
    from tfcf.train import Run

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size * 8, 64, 64, 3), dtype=np.uint8)
    rates = {}
    for family, preset in (("dcgan", "paper_celeba"), ("vae", "paper_celeba"),
                           ("began", "celeba64"))[: args.models]:
        trainer = build_trainer(family, preset)
        run = Run(Path("/tmp") / f"tfcf-bench-{family}", trainer, images,
                  batch_size=args.batch_size, progress=False)
        for step in range(args.warmup):
            real, noise = run.batch(step)
            trainer.train_step(real, noise, step)
        started = time.perf_counter()
        for step in range(args.steps):
            real, noise = run.batch(step)
            logs = trainer.train_step(real, noise, step)
        float(np.asarray(next(iter(logs.values()))))
        rates[family] = args.steps / (time.perf_counter() - started)
        print(f"{family} {preset}: {rates[family]:.2f} steps/s (batch {args.batch_size}, "
              f"backend {keras.backend.backend()})")
    from tfcf.models import dcgan

    discriminator = dcgan.build_discriminator("paper_celeba")
    discriminator.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                          loss=keras.losses.BinaryCrossentropy(from_logits=True))
    x = images.astype("float32") / 127.5 - 1.0
    y = rng.integers(0, 2, (len(x), 1)).astype("float32")
    discriminator.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)  # warm-up
    started = time.perf_counter()
    epochs = max(1, args.steps // 8)
    discriminator.fit(x, y, batch_size=args.batch_size, epochs=epochs, verbose=0)
    fit_rate = epochs * 8 / (time.perf_counter() - started)
    print(f"baseline: Keras fit of the DCGAN discriminator: {fit_rate:.2f} steps/s")
    print(f"train: {rates['dcgan']:.2f} steps/s ({rates['dcgan'] / fit_rate:.2f}x vs fit)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    influence = commands.add_parser("influence", help="influence maps vs per-channel hybrids")
    influence.add_argument("--model", default="face_dcgan")
    influence.add_argument("--layer", default=None)
    influence.add_argument("--pairs", type=int, default=64)
    influence.add_argument("--samples", type=int, default=128)
    influence.add_argument("--batch-size", type=int, default=256)
    fid = commands.add_parser("fid", help="Keras FID Inception port vs the TorchScript network")
    fid.add_argument("--images", type=int, default=200)
    fid.add_argument("--batch-size", type=int, default=50)
    fid.add_argument("--fd-samples", type=int, default=4096)
    sdr = commands.add_parser("sdr", help="SDR of all DCGAN pathways: vectorised vs a loop")
    sdr.add_argument("--loop-pathways", type=int, default=3000,
                     help="pathways per layer pair for the loop (sampled at random)")
    sdr.add_argument("--full-loop", action="store_true", help="loop over every pathway")
    train = commands.add_parser("train", help="training steps/s vs a plain Keras fit")
    train.add_argument("--steps", type=int, default=24)
    train.add_argument("--warmup", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--models", type=int, default=2,
                       help="how many of dcgan, vae, began (BEGAN is slow on a CPU)")
    args = parser.parse_args(argv)
    if args.command == "influence":
        bench_influence(args)
    elif args.command == "fid":
        bench_fid(args)
    elif args.command == "sdr":
        bench_sdr(args)
    elif args.command == "train":
        bench_train(args)


if __name__ == "__main__":
    main()
