"""Copy a finished training run's weights, model card and last sample grid into models/weights/.

    python tools/publish_weights.py runs/vae_paper_cifar10_fashion_beta1 vae_paper_cifar10_fashion
    python tools/publish_weights.py runs/dcgan_dropout_fashion dcgan_dropout_fashion --checkpoints

Refuses files over 10 MB (the repository's limit per file) and runs without a MODEL_CARD.json.
Copies are written atomically; the card gains the published file names. ``--checkpoints`` also
publishes the generator of every checkpoint left in the run (``ckpt-<step>/``, see
``tfcf train --keep-every``) as ``<generator stem>.step<step>.weights.h5``, listed in the card under
``checkpoints`` (step -> file) with their sample grids: ``tfcf.models.registry`` then loads them as
``<name>@<step>``. A ``fid.json`` written by ``tools/model_fid.py --run`` goes into the card
(``fid``), with a training-curve figure (losses and FID against steps, ``training_curve.png``);
``--best-fid`` publishes the checkpoint with the lowest FID as the model (generator and its
encoder or discriminator), recording the step it was chosen at and the final step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LIMIT = 10 * 1024 * 1024


def _checkpoints(run, card):
    """``{step: (source path, published name)}`` for the run's checkpoint generators.

    GAN checkpoints hold ``generator.weights.h5``; others (a VAE checkpoint holds the whole VAE,
    ``vae.weights.h5``) are loaded into the run's trainer, model by model as ``tfcf.run.Run``
    saved them, and its generator is exported beside them (atomically) as
    ``generator.weights.h5``.
    """
    from tfcf.io import atomic_path

    stem = card["generator_weights"].removesuffix(".weights.h5")
    trainer = None
    found = {}
    for folder in run.glob("ckpt-*"):
        step = folder.name.removeprefix("ckpt-")
        if not step.isdigit():
            continue
        generator = folder / "generator.weights.h5"
        if not generator.is_file():
            if trainer is None:
                from tfcf.models.trainers import build_trainer

                trainer = build_trainer(card["family"], card["preset"], beta=card.get("beta"),
                                        dropout=card.get("dropout"), seed=card.get("seed", 0))
            for key, model in trainer.models.items():
                model.load_weights(folder / f"{key}.weights.h5")
            with atomic_path(generator) as temporary:
                trainer.generator.save_weights(temporary)
        if generator.is_file():
            found[int(step)] = (generator, f"{stem}.step{step}.weights.h5")
    return dict(sorted(found.items()))


def _export_checkpoint(run, card, step):
    """Export the generator and its encoder/discriminator of ``ckpt-<step>`` beside the run;
    returns ``{card key: file name}``."""
    from tfcf.io import atomic_path
    from tfcf.models.registry import get_family
    from tfcf.models.trainers import build_trainer

    trainer = build_trainer(card["family"], card["preset"], beta=card.get("beta"),
                            dropout=card.get("dropout"), seed=card.get("seed", 0))
    folder = run / f"ckpt-{step}"
    for key, model in trainer.models.items():
        model.load_weights(folder / f"{key}.weights.h5")
    role = get_family(card["family"]).inverse_role
    files = {}
    for key, model in (("generator_weights", trainer.generator),
                       (f"{role}_weights", getattr(trainer, role))):
        stem = card[key].removesuffix(".weights.h5")
        name = f"{stem}.best.weights.h5"
        with atomic_path(run / name) as temporary:
            model.save_weights(temporary)
        files[key] = name
    return files


def _training_curve(run, card, fid, selected):
    """``training_curve.png`` in the run folder from log.csv and the FID by step."""
    import numpy as np

    from tfcf.io import save_figure
    from tfcf.plots import training_curve_figure

    log = run / "log.csv"
    header = log.read_text().splitlines()[0].split(",")
    values = np.genfromtxt(log, delimiter=",", skip_header=1)
    keep = [name for name in header[1:] if name.endswith("loss") or name in ("mse", "sse", "kl")]
    losses = {name: values[:, header.index(name)] for name in keep}
    steps = sorted(int(s) for s in (fid or {}).get("by_step", {}))
    save_figure(training_curve_figure(values[:, 0], losses, steps,
                                      [fid["by_step"][str(s)] for s in steps] if steps else None,
                                      selected=selected,
                                      title=f"{card['family']} {card['preset']} on {card['data']}"),
                run / "training_curve.png")
    return "training_curve.png"


def publish(run, name, root="models/weights", checkpoints=False, note=None, best_fid=False):
    """Copy the run's exported weights, card and samples to ``root/name``; returns the folder."""
    from tfcf.io import atomic_path, atomic_write, save_json

    run = Path(run)
    card_path = run / "MODEL_CARD.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path} is missing: finish the run with tfcf train first")
    card = json.loads(card_path.read_text())
    fid = json.loads((run / "fid.json").read_text()) if (run / "fid.json").is_file() else None
    if best_fid and not fid:
        raise FileNotFoundError(f"--best-fid needs {run / 'fid.json'}: run tools/model_fid.py "
                                f"--run {run} first")
    selected = None
    if fid:
        card["fid"] = fid
        if best_fid:
            selected = min((value, int(step)) for step, value in fid["by_step"].items())[1]
            if selected != card["steps"]:
                card.update(_export_checkpoint(run, card, selected))
                card["final_step"] = card["steps"]
                card["steps"] = selected
                card["samples"] = f"samples-{selected}.png"
            card["selected_by"] = (f"lowest FID ({fid['by_step'][str(selected)]:.1f}) over the "
                                   f"checkpoints {sorted(int(s) for s in fid['by_step'])}")
    if (run / "log.csv").is_file():
        card["training_curve"] = _training_curve(run, card, fid, selected)
    files = [card["generator_weights"], card["samples"]] + (
        [card["training_curve"]] if "training_curve" in card else [])
    files += [card[key] for key in ("encoder_weights", "discriminator_weights") if key in card]
    copies = {file: run / file for file in files}
    if checkpoints:
        found = _checkpoints(run, card)
        if not found:
            raise FileNotFoundError(f"{run} has no ckpt-<step>/generator.weights.h5 to publish")
        # the checkpoint of the published step is the published generator itself: one file
        found = {step: (source, card["generator_weights"] if step == card.get("steps") else published)
                 for step, (source, published) in found.items()}
        card["checkpoints"] = {str(step): published for step, (_, published) in found.items()}
        card["checkpoint_samples"] = {}
        for step, (source, published) in found.items():
            if step != card.get("steps"):
                copies[published] = source
            if (run / f"samples-{step}.png").is_file():
                copies[f"samples-{step}.png"] = run / f"samples-{step}.png"
                card["checkpoint_samples"][str(step)] = f"samples-{step}.png"
    for file, source in copies.items():
        size = source.stat().st_size
        if size > LIMIT:
            raise ValueError(f"{source} has {size / 2**20:.1f} MB, over the 10 MB limit")
    target = Path(root) / name
    target.mkdir(parents=True, exist_ok=True)
    for file, source in copies.items():
        with atomic_path(target / file) as temporary:
            shutil.copyfile(source, temporary)
    card["published_from"] = str(run)
    if note:
        card["note"] = note
    save_json(target / "MODEL_CARD.json", card)
    markdown = (run / "MODEL_CARD.md").read_text() if (run / "MODEL_CARD.md").is_file() else ""
    if note:
        markdown = markdown.rstrip("\n") + f"\n\n## Note\n\n{note}\n"
    if selected is not None:
        markdown = markdown.rstrip("\n") + (
            f"\n\n## Published checkpoint\n\nStep {selected}, chosen by {card['selected_by']}; "
            f"the run went on to step {card.get('final_step', selected)}.\n")
    if fid:
        markdown = markdown.rstrip("\n") + (
            f"\n\n## FID along training\n\n{fid['images']} images per set; real: {fid['real']}; "
            f"generated: {fid['generated']}; extractor {fid['extractor']}.\n\n| step | FID |\n"
            "| --- | --- |\n" + "\n".join(f"| {s} | {v:.1f} |" for s, v in fid["by_step"].items())
            + "\n")
    if "training_curve" in card:
        markdown = markdown.rstrip("\n") + ("\n\n![losses and FID along training]"
                                             f"({card['training_curve']})\n")
    if checkpoints:
        markdown = markdown.rstrip("\n") + "\n\n## Checkpoints along training\n\n" + "\n".join(
            f"- step {step}: `{file}` (`--model {name}@{step}`)"
            for step, file in card["checkpoints"].items()) + "\n"
    with atomic_write(target / "MODEL_CARD.md", "w") as handle:
        handle.write(markdown)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("name")
    parser.add_argument("--root", default="models/weights")
    parser.add_argument("--checkpoints", action="store_true",
                        help="Also publish the generator of every ckpt-<step>/ left in the run.")
    parser.add_argument("--note", default=None,
                        help="What a user should know (quality, deviations from the paper).")
    parser.add_argument("--best-fid", action="store_true",
                        help="Publish the checkpoint with the lowest FID (needs <run>/fid.json).")
    args = parser.parse_args(argv)
    print(publish(args.run, args.name, args.root, checkpoints=args.checkpoints, note=args.note,
                  best_fid=args.best_fid))


if __name__ == "__main__":
    main()
