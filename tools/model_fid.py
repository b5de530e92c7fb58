"""FID of a trained generator against the data it was trained on, at every checkpoint.

    python tools/model_fid.py --model vae_paper_celeba_mse            # a committed model
    python tools/model_fid.py --run runs/vae_paper_celeba_mse          # every ckpt-<step>/ of a run
    python tools/model_fid.py --model dcgan_dropout_fashion --images 1024 --steps final

For a committed model the result goes into its MODEL_CARD.json (``fid``: images, extractor, real
data, ``by_step``); for a run folder into ``<run>/fid.json``, which ``tools/publish_weights.py``
copies into the card (and uses to pick the best checkpoint with ``--best-fid``). The real
statistics are those of ``--images`` training images of the model's data (drawn with seed 0),
the generated ones of ``--images`` samples of its prior (seed 1): the same sets at every
checkpoint, so the curve along training compares like with like. Statistics are cached
(``<tfcf cache>/fid``). Features: the offline Keras port of the FID Inception network
(``tfcf.fid_inception``), as in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def real_images(card, count):
    """``count`` training images of the model's data (uint8), drawn with seed 0."""
    import numpy as np

    from tfcf.data import load_dataset, load_fashion_mnist, training_images
    from tfcf.models.registry import resolve_data

    data = resolve_data(card["data"])
    if data.startswith("fashion-mnist"):
        folder = data.partition(":")[2]
        images = (load_fashion_mnist(folder) if folder else load_fashion_mnist())[0]
    else:
        images = training_images(load_dataset(data), int(card.get("holdout") or 0))
    if len(images) < count:
        raise ValueError(f"{card['data']} has {len(images)} training images, fewer than {count}")
    rows = np.sort(np.random.default_rng(0).choice(len(images), count, replace=False))
    return images[rows]


def generator_fid(model, latent, real_stats, count, batch_size=50, extractor="port", key=None):
    """FID of ``count`` prior samples (seed 1) of ``model`` against ``real_stats``."""
    import numpy as np

    from tfcf.metrics import feature_statistics, frechet_distance_from_statistics

    shape = (count,) + tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(1)
    z = (rng.uniform(-1, 1, shape) if latent == "uniform" else rng.standard_normal(shape))
    z = z.astype("float32")

    def batches():
        for start in range(0, count, batch_size):
            yield np.asarray(model.predict_on_batch(z[start:start + batch_size]))

    stats = feature_statistics(batches(), extractor, batch_size, value_range=(-1.0, 1.0),
                               cache_key=key, count=count)
    return float(frechet_distance_from_statistics(real_stats.mean, real_stats.covariance,
                                                  stats.mean, stats.covariance, method="eigh"))


def _generators(args):
    """``(card, {step: generator loader}, where to write)`` for --model or --run."""
    from tfcf.models import registry

    if args.model:
        cards = registry.committed_models()
        if args.model not in cards:
            raise SystemExit(f"unknown committed model {args.model!r}; committed: "
                             f"{', '.join(sorted(cards))}")
        card = cards[args.model]
        steps = {int(card["steps"]): args.model}
        steps.update({int(s): f"{args.model}@{s}" for s in card.get("checkpoints", {})})
        loaders = {step: (lambda name=name: registry.load_generator(name).model)
                   for step, name in steps.items()}
        return card, loaders, registry.weights_root() / args.model / "MODEL_CARD.json"
    run = Path(args.run)
    states = sorted(run.glob("ckpt-*/state.json"))
    if not states:
        raise SystemExit(f"{run} has no ckpt-<step>/state.json")
    config = json.loads(states[-1].read_text()).get("config", {})
    card = {"family": config.get("family"), "preset": config.get("preset"),
            "data": config.get("data"), "holdout": config.get("holdout", 0)}
    if not (card["family"] and card["preset"] and card["data"]):
        raise SystemExit(f"{states[-1]} records no config (family, preset, data)")

    def loader(folder):
        from tfcf.models.trainers import build_trainer

        trainer = build_trainer(card["family"], card["preset"], dropout=config.get("dropout"))
        for name, model in trainer.models.items():
            model.load_weights(folder / f"{name}.weights.h5")
        return trainer.generator

    loaders = {int(state.parent.name.split("-")[1]): (lambda f=state.parent: loader(f))
               for state in states if state.parent.name.split("-")[1].isdigit()}
    return card, loaders, run / "fid.json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a committed model (models/weights/<name>)")
    source.add_argument("--run", help="a training run folder with ckpt-<step>/")
    parser.add_argument("--images", type=int, default=2048, help="images per set (2048)")
    parser.add_argument("--steps", default="all", help="'all', 'final' or comma-separated steps")
    parser.add_argument("--extractor", default="port", help="port (offline) or hub")
    args = parser.parse_args(argv)
    if args.images < 2:
        parser.error(f"--images {args.images}: at least 2")

    from tfcf.cache import weights_digest
    from tfcf.io import save_json
    from tfcf.metrics import feature_statistics, get_extractor
    from tfcf.models.registry import get_family

    card, loaders, target = _generators(args)
    if args.steps == "final":
        chosen = [max(loaders)]
    elif args.steps == "all":
        chosen = sorted(loaders)
    else:
        chosen = [int(s) for s in args.steps.split(",")]
        missing = sorted(set(chosen) - set(loaders))
        if missing:
            parser.error(f"--steps {missing} not available; available: {sorted(loaders)}")
    network = get_extractor(args.extractor)
    started = time.time()
    real = real_images(card, args.images)
    print(f"real: {len(real)} images of {card['data']}", flush=True)
    real_stats = feature_statistics(real, network, value_range=(0, 255))
    latent = get_family(card["family"]).latent
    existing = json.loads(target.read_text()) if target.is_file() else {}
    record = existing if args.run else existing.get("fid", {})
    by_step = {} if record.get("images") not in (None, args.images) else dict(
        record.get("by_step", {}))
    def write():
        result = {"images": args.images, "extractor": network.identity,
                  "real": f"{args.images} training images of {card['data']} (seed 0)",
                  "generated": f"{args.images} prior samples (seed 1)",
                  "by_step": dict(sorted(by_step.items(), key=lambda item: int(item[0])))}
        if args.run:
            save_json(target, result)
        else:
            full = json.loads(target.read_text())
            full["fid"] = result
            save_json(target, full)

    # written after every checkpoint: a killed run keeps what it measured (cached features
    # make a rerun skip the finished steps)
    for position, step in enumerate(chosen, 1):
        model = loaders[step]()
        value = generator_fid(model, latent, real_stats, args.images, extractor=network,
                              key=f"model_fid|{weights_digest(model)}|{args.images}")
        by_step[str(step)] = round(value, 3)
        write()
        print(f"[{position}/{len(chosen)}] step {step}: FID {value:.2f} "
              f"({time.time() - started:.0f} s)", flush=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
