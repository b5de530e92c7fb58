"""Options and steps shared by the experiment commands (kept out of the commands themselves)."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import click


def outdir_options(default):
    """--outdir (with a per-command default), --seed and --overwrite."""

    def decorate(function):
        function = click.option("--overwrite", is_flag=True,
                                help="Replace results already in --outdir.")(function)
        function = click.option("--seed", type=int, default=0, show_default=True,
                                help="Seed of latent samples, pairs and clustering.")(function)
        function = click.option("--outdir", type=click.Path(file_okay=False), default=default,
                                show_default=True, help="Folder for figures and JSON.")(function)
        return function

    return decorate


# The trained models (models/weights/) each paper figure uses by default.
FACE_VAE = "vae_paper_celeba_faces"        # ICLR 2020 Table 1 beta-VAE, aligned faces
FACE_DCGAN = "dcgan_paper_celeba_faces"    # ICLR 2020 Table 1 DCGAN, aligned faces
CIFAR_DCGAN = "dcgan_paper_cifar10_fashion"  # 2019 draft CIFAR-10 GAN, Fashion-MNIST
FACE_BEGAN = "began_celeba64_small_faces"  # quarter-width BEGAN (not the paper's h 64), faces


def model_options(function=None, *, default="face_dcgan"):
    """--model, --weights, --layer; ``@model_options`` or ``@model_options(default=NAME)``."""
    def decorate(function):
        function = click.option("--layer", default=None,
                                help="Layer to intervene on.  [default: the model's "
                                     "intermediate layer]")(function)
        function = click.option("--weights", type=click.Path(dir_okay=False), default=None,
                                help="Checkpoint for dcgan:/vae:/began: models (.weights.h5 or "
                                     "tensorlayer .npz).")(function)
        function = click.option("--model", "model_name", default=default, show_default=True,
                                help="face_dcgan (pretrained), a trained model of "
                                     "models/weights/ [@step], dcgan:<preset>, vae:<preset>, "
                                     "began:<preset>, or a .keras file.")(function)
        return function

    return decorate(function) if function is not None else decorate


def sampling_options(samples=256, pairs=256):
    def decorate(function):
        function = click.option("--pairs", type=click.IntRange(1), default=pairs,
                                show_default=True,
                                help="Pairs (z1, z2) per influence map.")(function)
        function = click.option("--samples", type=click.IntRange(2), default=samples,
                                show_default=True,
                                help="Latent samples the pairs are drawn from.")(function)
        return function

    return decorate


def prepare(ctx, outdir, overwrite):
    """Refuse to overwrite earlier results unless asked; return (outdir, start time)."""
    outdir = Path(outdir)
    results = outdir / "results.json"
    if results.exists() and not overwrite:
        ctx.fail(f"{results} exists: choose another --outdir or pass --overwrite")
    return outdir, time.time()


def load_spec(ctx, model_name, weights, layer):
    """The generator spec, or a clean CLI error."""
    from tfcf.models.registry import load_generator

    try:
        spec = load_generator(model_name, layer=layer, weights=weights)
        import tfcf

        tfcf.split(spec.model, spec.layer)  # validates the layer name
    except (ValueError, FileNotFoundError, ImportError) as error:
        ctx.fail(str(error))
    return spec


def step(message):
    click.echo(message, err=True)


def cli_errors(function):
    """Turn library ValueErrors raised inside a command into click usage errors, and a missing
    TF-Hub module into a one-line error naming the folder to fill."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from tfcf.hub import ModuleNotAvailable

        try:
            return function(*args, **kwargs)
        except ValueError as error:
            raise click.UsageError(str(error)) from error
        except ModuleNotAvailable as error:
            raise click.ClickException(str(error)) from error

    return wrapper


def elementary_maps(spec, layer, samples, pairs, seed, statistic="mean_abs"):
    """Latent samples and the elementary influence maps of ``layer``, cached on disk
    (:func:`tfcf.influence.cached_influence_maps`)."""
    from tfcf.influence import cached_influence_maps

    z = spec.sample_latent(samples, seed=seed)
    return z, cached_influence_maps(spec.model, layer, z, num_pairs=pairs, seed=seed,
                                    statistic=statistic, report=step)


def finish(outdir, started, seed, params, payload):
    """Add the run metadata (seed, parameters, versions, run time) and write results.json."""
    from tfcf.io import run_metadata, save_json

    payload["run"] = run_metadata(seed, params, started=started)
    path = save_json(outdir / "results.json", payload)
    step(f"wrote {outdir} ({payload['run']['run_time_s']} s)")
    return path
