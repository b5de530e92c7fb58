"""Benchmarks that print ratios against a baseline measured in the same run.

    python tools/bench.py influence                 # face DCGAN, main.8, vs a PyTorch peer
    python tools/bench.py influence --pairs 32 --scaling 64 --no-core-baseline
    python tools/bench.py fid                       # FID Inception: Keras port vs TorchScript
    python tools/bench.py sdr                       # SDR of every pathway, DCGAN G and D
    python tools/bench.py train                     # training steps/s vs a plain Keras fit

`influence`: elementary influence maps (eq. 2) of every channel of a layer by `tfcf.influence_maps`
(median of 3 runs), against the PyTorch peer a careful user would write (the face DCGAN re-built as
a torch Sequential with the same weights, split after the layer: the head once, then each channel's
hybrids through the tail in one batch, eq. 2 in torch), run in a child process when torch is
installed (it is not a test dependency: without it the peer is skipped and said so). Prints
hybrids/s of each and the max difference between their maps; the fraction reached of the
full-downstream FLOP bound (every layer after the cut, per hybrid) and of the linearity-aware bound
(what a hybrid still needs after the linear shortcut: one channel's contribution through the mixing
layer, then every later layer at full size, and the statistic), both at the float32 matmul rate
measured in the same run; module maps (`--module-size` channels per module, as many hybrids as the
elementary maps) against elementary ones, the two interleaved, median of `--repeats` runs each (one
run varies by +-15 % on a shared virtual machine), and again on only the samples the elementary
maps' pairs use (equal hybrids and equal samples: 2048 pairs per module touch every sample, 64
pairs about 80 of 128, and each sample is one pass through the model), and against elementary
maps of as many single channels with the module maps' pairs (equal maps, pairs, samples and
hybrids: only the kind of map differs; the 128 elementary maps of 64 pairs share each pair's work
among 128 maps, these 4 maps among 4), with where each kind's time went (samples through the
model, module parts, steps: `InfluenceRecord`); module maps as the magnitude figure computes them
(`tfcf.effects.causal_effect_magnitude`: the 21 NMF modules of k = 1..6, `--magnitude-samples`
samples and as many pairs) against the elementary maps of the same pairs; and, in a child process
per setting, hybrids/s and
peak resident memory at `--scaling` pairs (64, 256, 1024). `--core-baseline`
(default) also times per-channel `tfcf.hybrid` calls. The last line reads `influence: <ratio>x vs
PyTorch peer`.

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


def _layer_macs(layer):
    """Multiply-adds per sample of a Dense/Conv/transposed/depthwise conv layer (0 for others)."""
    import math

    import keras

    from tfcf.openvino_layers import DepthwiseConvTranspose

    if isinstance(layer, keras.layers.Dense):
        return int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    if isinstance(layer, DepthwiseConvTranspose):
        return math.prod(int(d) for d in layer.input.shape[1:]) * math.prod(layer.kernel_size)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, channels = layer.output.shape
        kh, kw, _, multiplier = layer.kernel.shape
        return h * w * kh * kw * channels * multiplier
    if isinstance(layer, keras.layers.Conv2DTranspose):
        _, h, w, c = layer.input.shape
        kh, kw, out, _ = layer.kernel.shape
        return h * w * kh * kw * c * out
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, out = layer.output.shape
        kh, kw, c, _ = layer.kernel.shape
        return h * w * kh * kw * c * out // int(getattr(layer, "groups", 1) or 1)
    return 0


def downstream_macs(model, at):
    """Multiply-adds per sample of the Dense/Conv layers downstream of the cut at ``at``."""
    import tfcf

    _, tail = tfcf.split(model, at)
    return sum(_layer_macs(layer) for layer in tail.layers)


def linear_flops(model, at):
    """FLOPs one elementary hybrid still needs after the linear shortcut, and their parts.

    One channel's contribution through the shortcut layer (its multiply-adds / input channels),
    then every layer after it at full size: the Dense/Conv multiply-adds (2 FLOPs each), batch
    norm in inference (2 per value), activations (1 per value), and the statistic (difference,
    absolute value, sum: 3 per output value).
    """
    import math

    import keras

    import tfcf
    from tfcf.influence import shortcut_layer

    name = shortcut_layer(model, at)
    _, tail = tfcf.split(model, at)
    parts, after = {}, name is None
    for layer in tail.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.name == name:
            parts[f"{name} (one channel)"] = 2 * _layer_macs(layer) // int(layer.input.shape[-1])
            after = True
            continue
        if not after:
            continue
        values = math.prod(int(d) for d in layer.output.shape[1:])
        if _layer_macs(layer):
            parts[layer.name] = 2 * _layer_macs(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            parts[layer.name] = 2 * values
        elif not isinstance(layer, (keras.layers.Reshape, keras.layers.Flatten)):
            parts[layer.name] = values
    parts["statistic"] = 3 * math.prod(int(d) for d in tail.outputs[0].shape[1:])
    return sum(parts.values()), parts, name


def _torch_state(model):
    """The layers of a Sequential-like Keras generator as (kind, arrays, options) for torch, or
    a reason why the peer cannot be built."""
    import keras
    import numpy as np

    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Reshape):
            layers.append(("reshape", [], {"target": tuple(layer.target_shape)}))
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            kernel = np.asarray(layer.kernel)                      # (kh, kw, out, in)
            stride = layer.strides[0]
            if (layer.use_bias or len(set(layer.strides)) != 1 or kernel.shape[0] != kernel.shape[1]
                    or (layer.padding == "same" and (kernel.shape[0] - stride) % 2)):
                return f"layer {layer.name}: no PyTorch equivalent in this bench"
            padding = 0 if layer.padding == "valid" else (int(kernel.shape[0]) - stride) // 2
            layers.append(("deconv", [kernel.transpose(3, 2, 0, 1)],
                           {"stride": stride, "padding": padding}))
        elif isinstance(layer, keras.layers.BatchNormalization):
            layers.append(("bn", [np.asarray(w) for w in (layer.gamma, layer.beta,
                                                          layer.moving_mean,
                                                          layer.moving_variance)],
                           {"eps": layer.epsilon}))
        elif isinstance(layer, keras.layers.ReLU):
            layers.append(("relu", [], {}))
        elif isinstance(layer, keras.layers.Activation) and layer.activation.__name__ == "tanh":
            layers.append(("tanh", [], {}))
        else:
            return f"layer {layer.name} ({type(layer).__name__}): no torch equivalent in this bench"
        layers[-1][2]["name"] = layer.name
    return layers


def _torch_peer(path):
    """Child process: the PyTorch user's influence maps. Reads and writes ``path`` (npz)."""
    import pickle

    import torch

    with open(path, "rb") as handle:
        job = pickle.load(handle)
    modules, names = [], []
    for kind, arrays, options in job["layers"]:
        if kind == "reshape":
            module = torch.nn.Unflatten(1, (options["target"][-1],) + options["target"][:-1])
        elif kind == "deconv":
            weight = torch.from_numpy(arrays[0])
            module = torch.nn.ConvTranspose2d(weight.shape[0], weight.shape[1], weight.shape[2],
                                              options["stride"], options["padding"], bias=False)
            module.weight.data.copy_(weight)
        elif kind == "bn":
            module = torch.nn.BatchNorm2d(len(arrays[0]), eps=options["eps"])
            for target, value in zip((module.weight, module.bias, module.running_mean,
                                      module.running_var), arrays):
                target.data.copy_(torch.from_numpy(value))
        else:
            module = torch.nn.ReLU() if kind == "relu" else torch.nn.Tanh()
        modules.append(module)
        names.append(options["name"])
    cut = names.index(job["layer"]) + 1
    head, tail = torch.nn.Sequential(*modules[:cut]).eval(), torch.nn.Sequential(*modules[cut:]).eval()
    z = torch.from_numpy(job["z"])
    base, source = torch.from_numpy(job["base"]), torch.from_numpy(job["source"])

    def maps():
        with torch.inference_mode():
            h = head(z)                                   # head once: [N, C, H, W]
            h_base, h_source = h[base], h[source]
            originals = tail(h_base)
            result = torch.empty((h.shape[1],) + tuple(originals.shape[2:]))
            for channel in range(h.shape[1]):             # each channel's hybrids in one batch
                hybrids = h_base.clone()
                hybrids[:, channel] = h_source[:, channel]
                result[channel] = (tail(hybrids) - originals).abs().mean(dim=(0, 1))
        return result.numpy()

    maps()                                                # warm-up
    start = time.perf_counter()
    result = maps()
    seconds = time.perf_counter() - start
    with open(path, "wb") as handle:
        pickle.dump({"maps": result, "seconds": seconds, "threads": torch.get_num_threads(),
                     "version": torch.__version__}, handle)


def _run_child(arguments, timeout=1800):
    """``python tools/bench.py <arguments>`` in a child process; its stdout, or raise."""
    import subprocess

    done = subprocess.run([sys.executable, __file__, *arguments], capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"bench child {arguments[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def torch_peer(model, layer, z, base, source):
    """Run the PyTorch peer in a child process: (maps, seconds, description) or (None, None,
    why not)."""
    import importlib.util
    import pickle
    import tempfile

    import numpy as np

    if importlib.util.find_spec("torch") is None:
        return None, None, "torch is not installed (pip install torch)"
    layers = _torch_state(model)
    if isinstance(layers, str):
        return None, None, layers
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "peer.pkl"
        with open(path, "wb") as handle:
            pickle.dump({"layers": layers, "layer": layer, "z": np.asarray(z, dtype="float32"),
                         "base": np.asarray(base, dtype="int64"),
                         "source": np.asarray(source, dtype="int64")}, handle)
        _run_child(["_torch-peer", str(path)])
        with open(path, "rb") as handle:
            result = pickle.load(handle)
    return (result["maps"], result["seconds"],
            f"torch {result['version']}, {result['threads']} threads")


def _scaling_child(args):
    """Child process: hybrids/s and peak memory of influence maps at ``args.pairs`` pairs."""
    import resource

    import numpy as np

    import tfcf
    from tfcf.models.registry import load_generator

    spec = load_generator(args.model, layer=args.layer)
    z = spec.sample_latent(args.samples, seed=0)
    channels = None if not args.module_size else [
        list(range(c, c + args.module_size)) for c in range(0, 128, args.module_size)]
    import threading

    def resident():
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize() // 1024

    # the same call once untimed: compiles what the timed call uses (a warm-up on fewer pairs
    # used fewer samples, so the per-sample parts compiled again inside the timed call: at 64
    # pairs that halved the rate shown)
    tfcf.influence_maps(spec.model, spec.layer, z, channels=channels, num_pairs=args.pairs,
                        progress=False, batch_size=args.batch_size)
    before, peak, done = resident(), [0], threading.Event()

    def sample():                     # the resident set every 5 ms while the maps are computed
        while not done.is_set():
            peak[0] = max(peak[0], resident())
            done.wait(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    maps, record = tfcf.influence_maps(spec.model, spec.layer, z, channels=channels,
                                       num_pairs=args.pairs, progress=False,
                                       batch_size=args.batch_size, return_record=True)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    print(f"{record.hybrids} {seconds} {before} {max(peak[0], resident())} "
          f"{float(np.abs(maps).sum())}")


def _spread(times):
    return f"{min(times):.2f}-{max(times):.2f}"


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
          f"{hybrids} hybrids; {os.cpu_count()} CPUs")

    # Warm up so that tracing is not timed.
    tfcf.influence_maps(model, layer, z, num_pairs=args.pairs, progress=False,
                        batch_size=args.batch_size)
    runs = []   # the median of three: one run moves by +-15 % on this shared virtual machine
    for _ in range(3):
        start = time.perf_counter()
        ours, record = tfcf.influence_maps(model, layer, z, num_pairs=args.pairs,
                                           progress=False, batch_size=args.batch_size,
                                           return_record=True)
        runs.append(time.perf_counter() - start)
    ours_seconds = float(np.median(runs))
    rate = hybrids / ours_seconds
    print(f"tfcf.influence_maps ({record.method}, shortcut {record.shortcut}, "
          f"{record.maps_per_step} maps x {record.pairs_per_step} pairs a step): median of 3 "
          f"runs {ours_seconds:.2f} s (runs {_spread(runs)}), {rate:.0f} hybrids/s")

    if args.core_baseline:   # tfcf.hybrid's own default batch unless --batch-size
        hybrid_batch = {} if args.batch_size is None else {"batch_size": args.batch_size}
        tfcf.hybrid(model, layer, [0], z[base], z[source], **hybrid_batch)
        start = time.perf_counter()
        originals = np.asarray(model.predict_on_batch(z[base]))
        baseline = np.empty((num_channels,) + originals.shape[1:3], dtype="float64")
        for channel in range(num_channels):
            out = tfcf.hybrid(model, layer, [channel], z[base], z[source], **hybrid_batch)
            baseline[channel] = np.abs(out - originals).mean(axis=(0, 3))
        core_seconds = time.perf_counter() - start
        print(f"core baseline (per-channel tfcf.hybrid): {core_seconds:.2f} s, "
              f"{hybrids / core_seconds:.0f} hybrids/s ({core_seconds / ours_seconds:.2f}x); "
              f"max |maps - its maps| {np.abs(ours - baseline).max():.3g}")

    peer_maps, peer_seconds, peer_text = torch_peer(model, layer, np.asarray(z), base, source)
    if peer_maps is not None:
        print(f"PyTorch peer ({peer_text}; head once, each channel's hybrids through the tail "
              f"in one batch): {peer_seconds:.2f} s, {hybrids / peer_seconds:.0f} hybrids/s")
        print(f"max |maps - PyTorch maps|: {np.abs(ours - peer_maps).max():.3g} "
              f"(maps up to {peer_maps.max():.3g})")
    else:
        print(f"no PyTorch peer: {peer_text}")

    gflops = matmul_gflops()
    macs = downstream_macs(model, layer)
    bound = gflops * 1e9 / (2 * macs)
    print(f"full-downstream FLOP bound: {2 * macs / 1e6:.1f} MFLOP per hybrid at {gflops:.1f} "
          f"GFLOP/s (float32 matmul, this run) = {bound:.0f} hybrids/s; reached {rate / bound:.1%}")
    flops, parts, shortcut = linear_flops(model, layer)
    linear_bound = gflops * 1e9 / flops
    detail = ", ".join(f"{name} {value / 1e6:.2f}" for name, value in parts.items())
    print(f"linearity-aware FLOP bound (shortcut {shortcut}): {flops / 1e6:.2f} MFLOP per hybrid "
          f"({detail}) = {linear_bound:.0f} hybrids/s; reached {rate / linear_bound:.1%}")

    if args.module_size:
        modules = [list(range(c, min(c + args.module_size, num_channels)))
                   for c in range(0, num_channels, args.module_size)]
        module_pairs = hybrids // len(modules)
        options = dict(channels=modules, num_pairs=module_pairs, progress=False,
                       batch_size=args.batch_size)
        # The elementary run's pairs use only some of the samples (64 pairs of 128 samples: ~80);
        # 2048 pairs per module use them all, and each sample costs a pass through the model.
        # So module maps are also timed on the samples the elementary run uses: equal hybrids,
        # equal samples, only the kind of map differs.
        used = np.unique(np.concatenate([base, source]))
        z_used = z[used]
        tfcf.influence_maps(model, layer, z, **options)
        tfcf.influence_maps(model, layer, z_used, **options)
        # the same number of hybrids each way, interleaved, median of --repeats runs each:
        # one run of any varies by +-15 % on this shared virtual machine
        # Elementary maps as many as the modules, with the modules' pairs: a channel of each
        # module (its first), so that only the kind of map differs.
        singles = [[module[0]] for module in modules]
        single_options = dict(options, channels=singles)
        tfcf.influence_maps(model, layer, z, **single_options)
        times = {"elementary": [], "module": [], "module_equal": [], "same_pairs": []}
        records = {kind: [] for kind in times}
        calls = {"elementary": lambda: tfcf.influence_maps(
                     model, layer, z, num_pairs=args.pairs, progress=False,
                     batch_size=args.batch_size, return_record=True),
                 "module": lambda: tfcf.influence_maps(model, layer, z, return_record=True,
                                                       **options),
                 "module_equal": lambda: tfcf.influence_maps(model, layer, z_used,
                                                             return_record=True, **options),
                 "same_pairs": lambda: tfcf.influence_maps(model, layer, z, return_record=True,
                                                           **single_options)}
        for _ in range(args.repeats):
            for kind, call in calls.items():
                start = time.perf_counter()
                _, record = call()
                times[kind].append(time.perf_counter() - start)
                records[kind].append(record)
        elementary_times, module_times = times["elementary"], times["module"]
        module_record = records["module"][-1]
        elementary_rate = hybrids / float(np.median(elementary_times))
        module_rate = len(modules) * module_pairs / float(np.median(module_times))
        equal_rate = len(modules) * module_pairs / float(np.median(times["module_equal"]))
        print(f"module maps ({len(modules)} modules of {args.module_size} channels, "
              f"{module_pairs} pairs, {module_record.method}, {module_record.maps_per_step} "
              f"maps x {module_record.pairs_per_step} pairs a step): median of {args.repeats} "
              f"runs {np.median(module_times):.2f} s (runs {_spread(module_times)}), "
              f"{module_rate:.0f} hybrids/s; elementary maps interleaved with them "
              f"{np.median(elementary_times):.2f} s (runs {_spread(elementary_times)}), "
              f"{elementary_rate:.0f} hybrids/s; modules = {module_rate / elementary_rate:.2f}x "
              "elementary")
        print(f"module maps on the {len(used)} samples the elementary maps use (equal hybrids, "
              f"equal samples), interleaved with the above: median "
              f"{np.median(times['module_equal']):.2f} s (runs {_spread(times['module_equal'])}), "
              f"{equal_rate:.0f} hybrids/s; modules = {equal_rate / elementary_rate:.2f}x "
              "elementary at equal samples")
        same_rate = len(singles) * module_pairs / float(np.median(times["same_pairs"]))
        print(f"elementary maps with the module maps' pairs ({len(singles)} channels, the first "
              f"of each module, x {module_pairs} pairs: equal maps, pairs, samples and hybrids), "
              f"interleaved with the above: median {np.median(times['same_pairs']):.2f} s (runs "
              f"{_spread(times['same_pairs'])}), {same_rate:.0f} hybrids/s; modules = "
              f"{module_rate / same_rate:.2f}x elementary with the same pairs")
        for kind, runs in records.items():   # where the time went, medians over the runs
            median = _record_medians(runs)
            steps_rate = runs[0].hybrids / median["seconds_steps"]
            label = {"module_equal": "module (equal samples)",
                     "same_pairs": "elementary (the module maps' pairs)"}.get(kind, kind)
            print(f"  {label}: {runs[0].samples} samples through the model "
                  f"{median['seconds_per_sample']:.3f} s (to the cut, through the mixing "
                  f"layer unless the module parts give its output, originals, equal channels), "
                  f"module parts {median['seconds_parts']:.3f} s, "
                  f"steps {median['seconds_steps']:.3f} s ({steps_rate:.0f} hybrids/s in the "
                  "steps)")

    if args.magnitude_samples:
        _magnitude_workload(model, layer, args)

    if args.scaling:
        print("scaling (a child process per setting, after a warm-up; peak resident memory "
              "while the maps are computed, sampled every 5 ms):")
        for pairs in args.scaling:
            out = _run_child(["_scaling", "--model", args.model, "--pairs", str(pairs),
                              "--samples", str(args.samples)]
                             + (["--batch-size", str(args.batch_size)] if args.batch_size else [])
                             + (["--layer", args.layer] if args.layer else []))
            count, seconds, before, peak, _ = out.split()[-5:]
            print(f"  {pairs:5d} pairs: {int(count) / float(seconds):7.0f} hybrids/s, peak "
                  f"{int(peak) / 1024:.0f} MiB resident (+{(int(peak) - int(before)) / 1024:.0f} "
                  f"MiB over the warmed-up process)")
    if peer_maps is not None:
        print(f"influence: {peer_seconds / ours_seconds:.2f}x vs PyTorch peer")
    else:
        print(f"influence: {rate:.0f} hybrids/s (no PyTorch peer: {peer_text})")


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


def _record_medians(records):
    """Medians over runs of where an influence-map call's time went (`InfluenceRecord`)."""
    import numpy as np

    return {name: float(np.median([getattr(r, name) for r in records])) for name in (
        "seconds_per_sample", "seconds_parts", "seconds_steps")}


def _magnitude_workload(model, layer, args):
    """Module maps as the magnitude figure computes them (`tfcf.effects.causal_effect_magnitude`:
    the NMF modules of k = 1..6 of the elementary maps, all in one call, N samples x N pairs)
    against the elementary maps of the same samples and pairs, interleaved, median of --repeats."""
    import numpy as np

    import tfcf
    from tfcf.effects import effect_modules

    count = args.magnitude_samples
    z = np.random.default_rng(1).normal(size=(count, 100)).astype("float32")
    options = dict(num_pairs=count, progress=False, batch_size=args.batch_size,
                   return_record=True)
    maps, _ = tfcf.influence_maps(model, layer, z, **options)
    every = [module for modules in effect_modules(maps) for module in modules]
    tfcf.influence_maps(model, layer, z, channels=every, **options)   # compile
    times = {"elementary": [], "module": []}
    records = {kind: [] for kind in times}
    for _ in range(args.repeats):
        for kind, channels in (("elementary", None), ("module", every)):
            start = time.perf_counter()
            _, record = tfcf.influence_maps(model, layer, z, channels=channels, **options)
            times[kind].append(time.perf_counter() - start)
            records[kind].append(record)
    rates = {kind: records[kind][0].hybrids / float(np.median(runs))
             for kind, runs in times.items()}
    print(f"module maps as the magnitude figure computes them ({len(every)} NMF modules of "
          f"k = 1..6, {min(map(len, every))}-{max(map(len, every))} channels, {count} samples x "
          f"{count} pairs): median of {args.repeats} runs {np.median(times['module']):.2f} s "
          f"(runs {_spread(times['module'])}), {rates['module']:.0f} hybrids/s; the elementary "
          f"maps of the same samples and pairs interleaved {np.median(times['elementary']):.2f} s "
          f"(runs {_spread(times['elementary'])}), {rates['elementary']:.0f} hybrids/s; modules = "
          f"{rates['module'] / rates['elementary']:.2f}x elementary (a module hybrid changes "
          f"{np.mean([len(m) for m in every]):.0f} channels on average, an elementary one 1)")
    for kind, runs in records.items():
        median = _record_medians(runs)
        print(f"  {kind}: {runs[0].samples} samples through the model "
              f"{median['seconds_per_sample']:.3f} s, module parts {median['seconds_parts']:.3f} s, "
              f"steps {median['seconds_steps']:.3f} s ({runs[0].maps_per_step} maps x "
              f"{runs[0].pairs_per_step} pairs a step)")


def _linear_in(op, region):
    """True when ``op`` is linear (or affine) in its inputs that lie in ``region`` (the tensors
    computed from the cut), its other inputs held fixed (styles, per-sample scales)."""
    import keras

    from tfcf.openvino_layers import DepthwiseConvTranspose, Slice

    layer, inside = op.operation, [t in region for t in op.inputs]
    if isinstance(layer, keras.layers.Multiply):
        return sum(inside) == 1
    if isinstance(layer, (keras.layers.Add, keras.layers.Subtract, keras.layers.Concatenate,
                          keras.layers.Reshape, keras.layers.Flatten, keras.layers.Permute,
                          keras.layers.BatchNormalization, Slice)):
        return True
    if isinstance(layer, DepthwiseConvTranspose):
        return True
    if isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D,
                          keras.layers.Conv3D, keras.layers.Conv2DTranspose,
                          keras.layers.DepthwiseConv2D)):
        activation = getattr(layer, "activation", None)
        return activation is None or getattr(activation, "__name__", "") == "linear"
    return False


def _compiled_tail(graph, feeds, boundary):
    """(run, values): the part of ``graph`` after ``boundary`` compiled as influence maps compile
    a downstream part (tfcf.influence._Engine), and its inputs computed from ``feeds``; run once."""
    import keras

    from tfcf import influence
    from tfcf.graph import flat_graph
    from tfcf.shortcut import fast_transposed_call

    (head, tail), _ = graph.segments([boundary])
    inputs = [feeds[tid] for tid in graph.inputs]
    values = head.predict_on_batch(inputs[0] if len(inputs) == 1 else inputs)
    values = [keras.ops.convert_to_tensor(v) for v in keras.tree.flatten(values)]
    rest = flat_graph(tail)
    whole, form = influence._compiled_form(rest, True)
    pieces = None
    if keras.backend.backend() == "tensorflow":
        pieces = influence._Pieces.of(rest, list(rest.inputs), whole=whole)
    if pieces is not None:
        run = influence._compile(pieces)
    else:
        call = fast_transposed_call(rest, form)
        run = influence._compile(lambda v: rest.evaluate(dict(zip(rest.inputs, v)), call=call),
                                 xla=whole)
    run(values)
    return run, values


def bench_linear_region(args):
    """How much of a hybrid's work lies in the linear ops right after the cut: what any linear
    shortcut there could save at most, what skipping only the region's first channel-mixing
    layer could save, and what tfcf's shortcut takes."""
    from tfcf.graph import flat_graph
    from tfcf.models.registry import load_generator
    from tfcf.shortcut import find_shortcut

    spec = load_generator(args.model, layer=args.layer)
    graph = flat_graph(spec.model)
    cut = graph.resolve(spec.layer)[0]

    def reach(admit):
        tensors, ops, frontier = {cut}, [], [cut]
        while frontier:
            for op in graph.consumers(frontier.pop()):
                if any(op is seen for seen in ops) or not admit(op, tensors):
                    continue
                ops.append(op)
                for out in op.outputs:
                    if out not in tensors:
                        tensors.add(out)
                        frontier.append(out)
        return ops

    tail = reach(lambda op, tensors: True)
    linear = reach(_linear_in)
    total = sum(_layer_macs(op.operation) for op in tail)
    region = sum(_layer_macs(op.operation) for op in linear)
    print(f"model {spec.name}, cut {spec.layer}: {total / 1e9:.3f} GMAC per hybrid after the cut "
          f"({len(tail)} ops); the linear region right after it (ops linear in the cut's values, "
          f"other inputs fixed): {len(linear)} ops, {region / 1e9:.3f} GMAC = "
          f"{region / total:.1%} of the tail")
    heavy = sorted(linear, key=lambda op: -_layer_macs(op.operation))[:6]
    print("  its largest layers: " + ", ".join(
        f"{graph.name_of(op)} ({type(op.operation).__name__}, "
        f"{_layer_macs(op.operation) / 1e6:.1f} MMAC)" for op in heavy))
    print(f"  an ideal shortcut (the whole linear region free) would make a hybrid at most "
          f"{total / max(1, total - region):.2f}x faster by multiply-adds")
    # multiply-adds are not time: each op of the tail timed alone (eager, synchronised), on
    # --samples samples, the second of two passes
    import keras

    inputs = graph.input_arrays(spec.sample_latent(args.samples, seed=0), "z")
    feeds = dict(zip(graph.inputs, inputs))
    feeds[cut] = graph.evaluate(feeds, wanted=[cut])[0]
    in_tail, in_region = {id(op) for op in tail}, {id(op) for op in linear}
    seconds = {"region": 0.0, "tail": 0.0}

    def timed(op, call_args, kwargs):
        start = time.perf_counter()
        out = op.operation(*call_args, **kwargs)
        for value in keras.tree.flatten(out):
            keras.ops.convert_to_numpy(keras.ops.reshape(value, (-1,))[:1])
        if id(op) in in_tail:
            seconds["tail"] += time.perf_counter() - start
            if id(op) in in_region:
                seconds["region"] += time.perf_counter() - start
        return out

    for _ in range(2):
        seconds.update(region=0.0, tail=0.0)
        graph.evaluate(feeds, call=timed)
    share = seconds["region"] / max(seconds["tail"], 1e-12)
    print(f"  by time (each op alone, eager, {args.samples} samples; dispatch overhead weighs "
          f"on small layers): the linear region "
          f"{seconds['region']:.3f} s of the tail's {seconds['tail']:.3f} s = {share:.1%}: at "
          f"most {1 / max(1e-12, 1 - share):.2f}x faster")
    # and as influence maps run it: compiled (on TensorFlow in XLA pieces between convolutions),
    # the tail from the cut against the tail from the tensors leaving the linear region
    in_region_ids = {id(op) for op in linear}
    leaving = [tid for op in linear for tid in op.outputs
               if tid in graph.outputs or any(id(r) not in in_region_ids
                                              for r in graph.consumers(tid))]
    # and the region's first channel-mixing layer alone: what a shortcut that still runs the
    # rest of the region on every hybrid (a fan-out: tfcf's shortcut needs a chain) could skip
    from tfcf.shortcut import mixes_channels

    mixing = next((op for op in graph.ops if id(op) in in_region_ids
                   and mixes_channels(op, graph)), None)
    boundaries = [("cut", [cut]), ("after", leaving)]
    if mixing is not None:
        boundaries += [("mixing_in", [mixing.inputs[0]]), ("mixing_out", list(mixing.outputs))]
    compiled = {label: _compiled_tail(graph, feeds, boundary) for label, boundary in boundaries}
    per_sample = {}
    for label in list(compiled) * 3:   # interleaved, the best of three each
        run, values = compiled[label]
        start = time.perf_counter()
        for value in keras.tree.flatten(run(values)):
            keras.ops.convert_to_numpy(keras.ops.reshape(value, (-1,))[:1])
        seconds_taken = (time.perf_counter() - start) / args.samples
        per_sample[label] = min(per_sample.get(label, seconds_taken), seconds_taken)
    print(f"  as influence maps run the tail (compiled, {args.samples} samples): from the cut "
          f"{per_sample['cut']:.4f} s a sample, from the linear region's outputs "
          f"{per_sample['after']:.4f} s: at most "
          f"{per_sample['cut'] / max(per_sample['after'], 1e-12):.2f}x faster")
    if mixing is not None:
        saved = per_sample["mixing_in"] - per_sample["mixing_out"]
        print(f"  its first channel-mixing layer {graph.name_of(mixing)}: the tail from its input "
              f"{per_sample['mixing_in']:.4f} s, from its output {per_sample['mixing_out']:.4f} "
              f"s a sample; skipping that layer alone: at most "
              f"{per_sample['cut'] / max(per_sample['cut'] - saved, 1e-12):.2f}x faster")
    reasons = []
    found = find_shortcut(graph, cut, why=reasons)
    if found is None:
        print(f"linear-region: tfcf's shortcut does not apply: {reasons[0]}")
    else:
        print(f"linear-region: tfcf's shortcut forms the hybrids at {graph.name_of(found.op)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{influence,fid,sdr,train,linear-region}")
    influence = commands.add_parser("influence", help="influence maps vs a PyTorch peer")
    influence.add_argument("--model", default="face_dcgan")
    influence.add_argument("--layer", default=None)
    influence.add_argument("--pairs", type=int, default=64)
    influence.add_argument("--samples", type=int, default=128)
    influence.add_argument("--batch-size", type=int, default=None,
                           help="hybrids per step (default: tfcf's own choice, batch_size=None)")
    influence.add_argument("--module-size", type=int, default=32,
                           help="channels per module for the module-map rate (0: skip)")
    influence.add_argument("--magnitude-samples", type=int, default=256,
                           help="samples (= pairs) of the magnitude-figure module maps (0: skip)")
    influence.add_argument("--repeats", type=int, default=5,
                           help="interleaved runs of elementary and module maps (median)")
    influence.add_argument("--scaling", type=int, nargs="*", default=[64, 256, 1024],
                           help="pair counts of the memory/rate scaling (a child each)")
    influence.add_argument("--core-baseline", action=argparse.BooleanOptionalAction,
                           default=True, help="also time per-channel tfcf.hybrid calls")
    peer = commands.add_parser("_torch-peer")   # child processes of `influence`
    peer.add_argument("path")
    scaling = commands.add_parser("_scaling")
    scaling.add_argument("--model", default="face_dcgan")
    scaling.add_argument("--layer", default=None)
    scaling.add_argument("--pairs", type=int, default=64)
    scaling.add_argument("--samples", type=int, default=128)
    scaling.add_argument("--batch-size", type=int, default=None)
    scaling.add_argument("--module-size", type=int, default=0)
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
    region = commands.add_parser("linear-region",
                                 help="share of a hybrid's work in the linear ops after a cut")
    region.add_argument("--model", default="face_dcgan")
    region.add_argument("--layer", default=None)
    region.add_argument("--samples", type=int, default=4, help="samples for the per-op timing")
    args = parser.parse_args(argv)
    if args.command == "linear-region":
        bench_linear_region(args)
    elif args.command == "influence":
        bench_influence(args)
    elif args.command == "_torch-peer":
        _torch_peer(args.path)
    elif args.command == "_scaling":
        _scaling_child(args)
    elif args.command == "fid":
        bench_fid(args)
    elif args.command == "sdr":
        bench_sdr(args)
    elif args.command == "train":
        bench_train(args)


if __name__ == "__main__":
    main()
