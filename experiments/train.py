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

FAMILIES = ("dcgan", "vae", "began")


def build_trainer(family, preset, beta=None, dropout=None, seed=0, sdr_layers=(), objective=None):
    """The trainer of a model family and preset (VAE: ``beta`` and ``objective`` default to the
    preset's)."""
    import keras

    from tfcf.models import began, dcgan, vae
    from tfcf.train import BEGANTrainer, GANTrainer, VAETrainer

    keras.utils.set_random_seed(seed)
    if family == "dcgan":
        options = {} if dropout is None else {"dropout": dropout}
        generator = dcgan.build_generator(preset, seed=seed, **options)
        return GANTrainer(generator, dcgan.build_discriminator(preset, seed=seed))
    if family == "vae":
        config = vae.PRESETS[preset] if preset in vae.PRESETS else None
        if config is None:
            raise ValueError(f"unknown vae preset {preset!r}; valid: {', '.join(vae.PRESETS)}")
        return VAETrainer(vae.build_encoder(preset, seed=seed), vae.build_decoder(preset, seed=seed),
                          beta=config["beta"] if beta is None else beta, sdr_layers=sdr_layers,
                          objective=objective or config["objective"])
    if family == "began":
        return BEGANTrainer(began.build_generator(preset, seed=seed),
                            began.build_discriminator(preset, seed=seed))
    raise ValueError(f"unknown model family {family!r}; valid: {', '.join(FAMILIES)}")


def write_card(run, family, preset, data, logs, seed, command, beta=None, dropout=None,
               sdr_layers=None, holdout=0):
    """Export the generator weights and a model card (JSON + Markdown) beside the run."""
    import keras

    from tfcf.io import atomic_path, atomic_write, save_json, versions

    generator = run.trainer.generator
    weights = run.folder / f"{family}_{preset}.generator.weights.h5"
    with atomic_path(weights) as temporary:
        generator.save_weights(temporary)
    extra = {}
    if family == "vae":
        extra["objective"] = run.trainer.objective
        beta = run.trainer.beta
        encoder = run.folder / f"{family}_{preset}.encoder.weights.h5"
        with atomic_path(encoder) as temporary:
            run.trainer.encoder.save_weights(temporary)
        extra["encoder_weights"] = encoder.name
    elif family in ("dcgan", "began"):
        discriminator = run.folder / f"{family}_{preset}.discriminator.weights.h5"
        with atomic_path(discriminator) as temporary:
            run.trainer.discriminator.save_weights(temporary)
        extra["discriminator_weights"] = discriminator.name
    card = {"family": family, "preset": preset, "data": data, "steps": run.step,
            "batch_size": run.batch_size, "seed": seed, "backend": keras.backend.backend(),
            "final_losses": {k: v for k, v in logs.items() if k != "steps_per_second"},
            "steps_per_second": logs.get("steps_per_second"), "command": command,
            "generator_weights": weights.name, "samples": f"samples-{run.step}.png",
            "beta": beta, "dropout": dropout, "sdr_layers": sdr_layers or [],
            "holdout": int(holdout), "training_images": int(len(run.images)),
            "versions": versions(), **extra}
    save_json(run.folder / "MODEL_CARD.json", card)
    lines = [f"# {family} `{preset}` trained by tfcf", "",
             f"- data: `{data}`" + (f" (the last {holdout} images held out)" if holdout else ""),
             *([f"- objective: {extra['objective']}, beta {beta:g}"] if family == "vae" else []),
             f"- steps: {run.step} (batch {run.batch_size}), seed {seed}, "
             f"backend {card['backend']}",
             "- final losses: " + ", ".join(f"{k} {v:.4g}" for k, v in card["final_losses"].items()),
             f"- command: `{command}`", f"- generator weights: `{weights.name}`",
             f"- samples: ![samples]({card['samples']})", ""]
    with atomic_write(run.folder / "MODEL_CARD.md", "w") as handle:
        handle.write("\n".join(lines))
    return card


@click.command("train")
@click.argument("family", type=click.Choice(FAMILIES))
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
@click.option("--resume", is_flag=True, help="Continue from the run folder's latest checkpoint.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def train(ctx, family, data, preset, steps, batch_size, checkpoint_every, keep, keep_every, beta,
          objective, holdout, dropout, sdr_layers, count, outdir, resume, seed):
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

    from tfcf.models import began, dcgan, vae
    from tfcf.data import load_dataset, training_images
    from tfcf.train import Run

    module = {"dcgan": dcgan, "vae": vae, "began": began}[family]
    preset = preset or next(iter(module.PRESETS))
    if preset not in module.PRESETS:
        ctx.fail(f"unknown {family} preset {preset!r}; valid: {', '.join(module.PRESETS)}")
    if dropout is not None and family != "dcgan":
        ctx.fail("--dropout applies to dcgan only")
    if sdr_layers and family != "vae":
        ctx.fail("--sdr-layers applies to vae only")
    if objective and family != "vae":
        ctx.fail("--objective applies to vae only")
    sdr_layers = tuple(sdr_layers.split(",")) if sdr_layers else ()
    folder = Path(outdir or f"runs/{family}_{preset}")
    if (folder / "latest").exists() and not resume:
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

        from tfcf.data import _square_resize

        step(f"    resizing {len(images)} images from {images.shape[1]} to {size} px")
        images = np.stack([_square_resize(image, size) for image in images])
    step(f"training {family} {preset} on {len(images)} images of {data}, up to step {steps}")
    config = {"family": family, "preset": preset, "data": data, "holdout": holdout,
              "count": count, "beta": getattr(trainer, "beta", None),
              "objective": getattr(trainer, "objective", None), "dropout": dropout,
              "sdr_layers": list(sdr_layers)}
    run = Run(folder, trainer, images, batch_size=batch_size, seed=seed, keep=keep,
              keep_every=keep_every, config=config)
    logs = run.train(steps, checkpoint_every=checkpoint_every, resume=resume)
    command = "tfcf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if len(sys.argv) > 1 \
        else "tfcf train"
    card = write_card(run, family, preset, data, logs, seed, command, beta=beta, dropout=dropout,
                      sdr_layers=list(sdr_layers), holdout=holdout)
    rate = logs.get("steps_per_second")
    step(f"wrote {folder}: step {run.step}, {card['generator_weights']}, MODEL_CARD.md "
         f"({'no steps trained' if rate is None else f'{rate:.2f} steps/s'})")

