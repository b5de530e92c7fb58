"""Options and steps shared by the experiment commands (kept out of the commands themselves)."""

from __future__ import annotations

import dataclasses
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
FACE_VAE = "vae_paper_celeba_mse"          # ICLR 2020 Table 1 beta-VAE (paper objective), faces
FACE_DCGAN = "dcgan_paper_celeba_10k"      # ICLR 2020 Table 1 DCGAN, aligned faces, 10k steps
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
                                help="face_dcgan or mobile_stylegan[:<size>] (pretrained), "
                                     "a trained model of models/weights/ [@step], "
                                     "dcgan:<preset>, vae:<preset>, began:<preset>, or a "
                                     ".keras file.")(function)
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


_STAGED = {}  # staging folder -> the --outdir it is published to (one CLI process)


def _alive(pid):
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(ctx, outdir, overwrite):
    """Refuse to overwrite earlier results unless asked; return (staging folder, start time).

    The command writes everything into a hidden staging folder beside ``outdir``; :func:`finish`
    (or :func:`publish`) moves the files into ``outdir`` and writes ``results.json`` last, after
    removing the previous run's ``results.json``. So a folder with ``results.json`` always holds
    one complete run: a command killed during ``--overwrite`` leaves the previous run untouched
    (or, if killed while publishing, no ``results.json``). The staging folder of a command that
    fails is removed.
    """
    import os
    import shutil
    import tempfile

    outdir = Path(outdir)
    results = outdir / "results.json"
    if results.exists() and not overwrite:
        ctx.fail(f"{results} exists: choose another --outdir or pass --overwrite")
    if outdir.exists() and not outdir.is_dir():
        ctx.fail(f"--outdir {outdir} is a file, not a folder")
    name = outdir.resolve().name
    try:   # before any work: a folder that cannot be written is a usage error
        outdir.parent.mkdir(parents=True, exist_ok=True)
        for leftover in outdir.parent.glob(f".{name}.partial-*"):  # of killed runs (pid gone)
            pid = leftover.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-{os.getpid()}-",
                                        dir=outdir.parent))
    except OSError as error:
        blocker = next((p for p in outdir.parents if p.exists()), None)
        reason = (f"{blocker} is a file, not a folder" if blocker is not None
                  and not blocker.is_dir() else f"{error.strerror or error} in {outdir.parent}")
        ctx.fail(f"cannot write --outdir {outdir}: {reason} (a run is staged beside its "
                 "folder, then moved in); choose a folder you can write")
    _STAGED[staging] = outdir

    def discard():
        if staging in _STAGED:
            del _STAGED[staging]
            shutil.rmtree(staging, ignore_errors=True)

    ctx.call_on_close(discard)
    return staging, time.time()


def publish(staging, payload):
    """Write ``payload`` as results.json and move the staged run into its --outdir; returns the
    path of results.json. Files of the previous run listed in its results.json and not made by
    this one are removed."""
    import json
    import os
    import shutil

    from tfcf.io import save_json

    outdir = _STAGED.pop(staging, None)
    if outdir is None:  # not staged (a library caller): write in place
        return save_json(Path(staging) / "results.json", payload)
    outdir.mkdir(parents=True, exist_ok=True)
    previous = outdir / "results.json"
    stale = []
    if previous.exists():
        try:
            stale = list(json.loads(previous.read_text()).get("files", []))
        except (ValueError, OSError):
            stale = []
        previous.unlink()
    new = {item.name for item in staging.iterdir()}
    for name in stale:
        target = outdir / str(name)
        if str(name) not in new and target.is_file() and target.parent == outdir:
            target.unlink()
    for item in sorted(staging.iterdir()):
        target = outdir / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
    results = save_json(outdir / "results.json", payload)
    shutil.rmtree(staging, ignore_errors=True)
    return results


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


LATENTS = ("auto", "encoder", "prior")


def latent_option(function):
    """--latents: encoder means of held-out real images (a VAE's) or prior samples."""
    return click.option(
        "--latents", type=click.Choice(LATENTS), default="auto", show_default=True,
        help="encoder: a VAE's encoder means of real images it was not trained on (the paper's "
             "Fig. 8); prior: samples of the latent prior; auto: encoder where the model has an "
             "encoder and its data is found, else prior.")(function)


@dataclasses.dataclass
class Latents:
    """The latent codes a figure uses, the real images they encode (None for prior samples)
    and a sentence saying which they are."""

    z: object
    images: object
    source: str
    note: str


def draw_latents(spec, samples, seed, latents="auto"):
    """:class:`Latents` for ``--latents``; ``encoder`` without an encoder or data is an error.

        drawn = draw_latents(spec, 256, seed=0, latents="auto")
    """
    if latents not in LATENTS:
        raise ValueError(f"unknown --latents {latents!r}; valid: {', '.join(LATENTS)}")
    if latents == "prior" or (latents == "auto" and not spec.has_encoder):
        return Latents(spec.sample_latent(samples, seed=seed), None, "prior",
                       f"{samples} samples of the {spec.latent} latent prior")
    try:
        z, images, where = spec.real_latents(samples, seed=seed)
    except LookupError as error:
        if latents == "encoder":
            raise ValueError(f"--latents encoder: {error}") from None
        step(f"    note: prior samples instead of encoder latents ({error})")
        return Latents(spec.sample_latent(samples, seed=seed), None, "prior",
                       f"{samples} samples of the {spec.latent} latent prior ({error})")
    return Latents(z, images, "encoder", f"encoder means of {samples} real images: {where}")


def elementary_maps(spec, layer, z, pairs, seed, statistic="mean_abs"):
    """The elementary influence maps of ``layer`` over latents ``z``, cached on disk
    (:func:`tfcf.influence.cached_influence_maps`)."""
    from tfcf.influence import cached_influence_maps

    return cached_influence_maps(spec.model, layer, z, num_pairs=pairs, seed=seed,
                                 statistic=statistic, report=step)


def finish(outdir, started, seed, params, payload):
    """Add the run metadata (seed, parameters, versions, run time) and write results.json."""
    from tfcf.io import run_metadata, save_json

    payload["run"] = run_metadata(seed, params, started=started)
    final = _STAGED.get(Path(outdir), outdir)
    path = publish(Path(outdir), payload)
    step(f"wrote {final} ({payload['run']['run_time_s']} s)")
    return path
