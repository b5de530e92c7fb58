"""MobileStyleGAN in Keras vs OpenVINO: match on N samples, images/s, hybrids/s.

    python tools/bench_mobile_stylegan.py --samples 4
    KERAS_BACKEND=jax python tools/bench_mobile_stylegan.py --samples 4 --skip-hybrids

Prints (and with --json writes) the max |Keras - OpenVINO| of the 1024-px synthesis on the mapped
styles of --samples latent samples, against OpenVINO's CPU plugin in float32
(INFERENCE_PRECISION_HINT f32) and in its default precision (bfloat16 on CPUs that have it); the
seconds per image of the Keras synthesis (batch 1 and 4; compiled once, then timed) and of
OpenVINO (batch 1, both precisions); and hybrids per second of tfcf.influence_maps at two layers
of the generator averaged to 128 px (8 samples, 8 channels x 4 pairs: the whole call, and its steps
alone, without the samples' own passes, which is the rate of a long run). On a shared machine run
it twice: the rates move with load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _timed(function, repeats):
    function()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-hybrids", action="store_true")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args(argv)

    import keras
    import openvino as ov

    import tfcf
    from tfcf.models import mobile_stylegan

    report = {"backend": keras.backend.backend()}
    z = np.random.default_rng(0).standard_normal((args.samples, 512)).astype("float32")
    styles = np.asarray(mobile_stylegan.load_mapping().predict(z, verbose=0))
    synthesis = mobile_stylegan.load_synthesis()
    ours = synthesis.predict(styles, batch_size=1, verbose=0)
    core = ov.Core()
    xml = str(mobile_stylegan.data_dir() / "SynthesisNetwork.xml")
    for label, config in (("f32", {"INFERENCE_PRECISION_HINT": "f32"}), ("default", {})):
        compiled = core.compile_model(xml, "CPU", config)
        reference = np.concatenate([np.asarray(compiled({"style": s[None]})["img"])
                                    for s in styles]).transpose(0, 2, 3, 1)
        report[f"max_abs_diff_vs_openvino_{label}"] = float(np.abs(ours - reference).max())
        report[f"openvino_{label}_precision"] = str(
            compiled.get_property("INFERENCE_PRECISION_HINT"))
        report[f"openvino_{label}_s_per_image"] = _timed(
            lambda c=compiled: c({"style": styles[:1]}), args.repeats)
    report["output_range"] = [float(ours.min()), float(ours.max())]
    for batch in (1, 4):
        chunk = np.repeat(styles[:1], batch, axis=0)
        report[f"keras_batch{batch}_s_per_image"] = _timed(
            lambda c=chunk: synthesis.predict_on_batch(c), args.repeats) / batch
    if not args.skip_hybrids:
        generator = mobile_stylegan.load_generator(truncation=0.7, output_size=128)
        latents = np.random.default_rng(1).standard_normal((8, 512)).astype("float32")
        for layer in mobile_stylegan.LAYER_PAIR:
            records = []
            run = lambda l=layer: records.append(tfcf.influence_maps(  # noqa: E731
                generator, l, latents, channels=[[c] for c in range(8)], num_pairs=4,
                batch_size=4, progress=False, return_record=True)[1])
            report[f"hybrids_per_s_{layer}"] = 32 / _timed(run, 1)
            # without the 8 samples' own passes (head, originals): the rate of a long run
            report[f"hybrids_per_s_in_the_steps_{layer}"] = 32 / records[-1].seconds_steps
    for key, value in report.items():
        print(f"{key:42s} {value}")
    if args.json:
        from tfcf.io import save_json

        save_json(args.json, report)


if __name__ == "__main__":
    main()
