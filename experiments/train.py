"""`tfcf train dcgan|vae|began`: train a paper model with checkpoints, resume and a model card.

    tfcf train dcgan --data faces64:../shared/data/faces64 --preset paper_celeba --steps 20000
    tfcf train vae --data fashion-mnist --preset paper_cifar10 --steps 10000 --outdir runs/vae32
    tfcf train dcgan ... --resume               # continue from runs/<name>/latest
"""

from __future__ import annotations

import shlex
import sys

import click

from tfcf.experiments._common import step
from tfcf.models.registry import FAMILIES


@click.command("train")
@click.argument("family", type=click.Choice(list(FAMILIES)))
@click.option("--data", required=True, help="faces64:<folder>, celeba:<folder>[:dcgan|vae], "
              "cifar10:<folder>, fashion-mnist[:<folder>], or a folder of images/npz shards.")
@click.option("--preset", default=None, help="Architecture preset.  [default: the family's "
              "first: tensorlayer, repo, celeba64]")
@click.option("--steps", type=click.IntRange(1), default=10000, show_default=True,
              help="Total training steps (a resumed run continues up to this count).")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=500, show_default=True)
@click.option("--keep", type=click.IntRange(1), default=3, show_default=True,
              help="Checkpoints kept (older ones are deleted).")
@click.option("--keep-every", type=click.IntRange(1), default=None,
              help="Also keep every checkpoint whose step is a multiple of this (evolution "
                   "along training).")
@click.option("--beta", type=float, default=None, help="VAE: the KL weight.  [default: preset]")
@click.option("--objective", type=click.Choice(["mse", "sse"]), default=None,
              help="VAE: reconstruction term. mse: vae-celebA's mean over pixels (the ICLR 2020 "
                   "paper's code); sse: per-image sum of squares.  [default: preset]")
@click.option("--holdout", type=click.IntRange(0), default=0, show_default=True,
              help="Leave the last N images of --data out of training (held-out images for "
                   "encoder latents and evaluation; recorded in the card).")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="DCGAN: dropout rate between the two finest generator layers.")
@click.option("--sdr-layers", default=None,
              help="VAE: decoder layers whose kernels get an SDR-penalty step in turn after each "
                   "VAE step (workshop 5.2), e.g. g_h4_decon2d,g_h3_decon2d,g_h2_decon2d.")
@click.option("--count", type=click.IntRange(1), default=None, help="Use only this many images.")
@click.option("--outdir", type=click.Path(file_okay=False), default=None,
              help="Run folder.  [default: runs/<family>_<preset>]")
@click.option("--resume", is_flag=True, help="Continue from the run folder's newest intact "
              "checkpoint (an unusable newer one is set aside with a warning saying why).")
@click.option("--force", is_flag=True, help="With --resume: accept another seed, batch size, "
              "data or preset than the run was started with (recorded in the card).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def train(ctx, family, data, preset, steps, batch_size, checkpoint_every, keep, keep_every, beta,
          objective, holdout, dropout, sdr_layers, count, outdir, resume, force, seed):
    """Train a DCGAN, beta-VAE or BEGAN; checkpoints are atomic and --resume is exact.

    Runs under KERAS_BACKEND=tensorflow (default) or jax; a checkpoint written under one loads
    under the other. Writes log.csv, TensorBoard scalars (TensorFlow), samples-<step>.png,
    ckpt-<step>/ and, at the end, the generator weights and MODEL_CARD.json/.md.

    \b
    Examples:
      tfcf train dcgan --data faces64:../shared/data/faces64 --preset paper_celeba --steps 20000
      tfcf train vae --data fashion-mnist --preset paper_cifar10 --steps 8000
    """
    from pathlib import Path

    from tfcf.data import load_dataset, training_images
    from tfcf.models.trainers import build_trainer, write_card
    from tfcf.train import Run

    presets = FAMILIES[family].module.PRESETS
    preset = preset or next(iter(presets))
    if preset not in presets:
        ctx.fail(f"unknown {family} preset {preset!r}; valid: {', '.join(presets)}")
    if dropout is not None and family != "dcgan":
        ctx.fail("--dropout applies to dcgan only")
    if sdr_layers and family != "vae":
        ctx.fail("--sdr-layers applies to vae only")
    if objective and family != "vae":
        ctx.fail("--objective applies to vae only")
    sdr_layers = tuple(sdr_layers.split(",")) if sdr_layers else ()
    folder = Path(outdir or f"runs/{family}_{preset}")
    if force and not resume:
        ctx.fail("--force applies to --resume only")
    if any(folder.glob("ckpt-*")) and not resume:
        ctx.fail(f"{folder} already holds a run: pass --resume to continue it or choose "
                 "another --outdir")
    try:
        images = (training_images(load_dataset(data), holdout, count=count, seed=seed) if holdout
                  else load_dataset(data, count=count, seed=seed))
        trainer = build_trainer(family, preset, beta=beta, dropout=dropout, seed=seed,
                                sdr_layers=sdr_layers, objective=objective)
    except (ValueError, FileNotFoundError) as error:
        ctx.fail(str(error))
    size = trainer.generator.outputs[0].shape[1]
    if images.shape[1] != size:
        import numpy as np

        from tfcf.data import square_resize

        step(f"    resizing {len(images)} images from {images.shape[1]} to {size} px")
        images = np.stack([square_resize(image, size) for image in images])
    step(f"training {family} {preset} on {len(images)} images of {data}, up to step {steps}")
    config = {"family": family, "preset": preset, "data": data, "holdout": holdout,
              "count": count, "beta": getattr(trainer, "beta", None),
              "objective": getattr(trainer, "objective", None), "dropout": dropout,
              "sdr_layers": list(sdr_layers)}
    run = Run(folder, trainer, images, batch_size=batch_size, seed=seed, keep=keep,
              keep_every=keep_every, config=config)
    import warnings

    from tfcf.run import CheckpointError, CheckpointWarning

    def report(message, category, *args, **kwargs):
        step(f"warning: {message}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", CheckpointWarning)
            warnings.showwarning = report
            logs = run.train(steps, checkpoint_every=checkpoint_every, resume=resume, force=force)
    except CheckpointError as error:
        ctx.fail(str(error))
    command = "tfcf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if len(sys.argv) > 1 \
        else "tfcf train"
    card = write_card(run, family, preset, data, logs, seed, command, beta=beta, dropout=dropout,
                      sdr_layers=list(sdr_layers), holdout=holdout)
    rate = logs.get("steps_per_second")
    step(f"wrote {folder}: step {run.step}, {card['generator_weights']}, MODEL_CARD.md "
         f"({'no steps trained' if rate is None else f'{rate:.2f} steps/s'})")

