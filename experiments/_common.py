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


def weights_digest(model):
    """sha1 of a model's weights (values, in order): a cache key that changes when they do."""
    import hashlib

    import numpy as np

    digest = hashlib.sha1()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()


def elementary_maps(spec, layer, samples, pairs, seed, statistic="mean_abs"):
    """Latent samples and the elementary influence maps of ``layer``, cached on disk.

    Several figures need the same maps: they are computed once per (weights, layer, samples,
    pairs, seed, statistic) and kept in ``$TFCF_CACHE_DIR/influence`` (default
    ``~/.cache/tfcf``), written atomically; the key hashes the model's weights themselves.
    """
    import hashlib

    import numpy as np

    import tfcf
    from tfcf.io import atomic_write, cache_dir

    z = spec.sample_latent(samples, seed=seed)
    digest = hashlib.sha1(weights_digest(spec.model).encode())
    digest.update(repr((tfcf.__version__, layer, samples, pairs, seed, statistic,
                        spec.latent)).encode())
    cached = cache_dir() / "influence" / f"{digest.hexdigest()}.npy"
    if cached.is_file():
        step(f"    influence maps of {layer} from the cache {cached}")
        return z, np.load(cached, allow_pickle=False)
    maps = tfcf.influence_maps(spec.model, layer, z, num_pairs=pairs, seed=seed,
                               statistic=statistic)
    with atomic_write(cached) as handle:
        np.save(handle, maps, allow_pickle=False)
    return z, maps


def finish(outdir, started, seed, params, payload):
    """Add the run metadata (seed, parameters, versions, run time) and write results.json."""
    from tfcf.io import run_metadata, save_json

    payload["run"] = run_metadata(seed, params, started=started)
    path = save_json(outdir / "results.json", payload)
    step(f"wrote {outdir} ({payload['run']['run_time_s']} s)")
    return path
