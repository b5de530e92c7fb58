"""ICLR 2020 Table 2: FID between real data R, generated data G and the module hybrids C_k.

G' is a second, independent set of generated images (another seed, the same count): FID(G, G')
is the sampling noise floor every other cell is read against.

    tfcf table2 --real faces64/ --outdir outputs/table2
    tfcf table2 --real img_align_celeba/ --model vae:paper_celeba --weights decoder.weights.h5
    tfcf table2 --real faces64/ --num-images 2048 --fd-method eigh
"""

from __future__ import annotations

import os

import click

from tfcf.experiments._common import (
    FACE_BEGAN,
    cli_errors,
    elementary_maps,
    load_spec,
    model_options,
    outdir_options,
    prepare,
    publish,
    sampling_options,
    step,
)

# The paper's Table 2 (BEGAN on CelebA, k = 3 modules, 10k images per set), normalised by FID(R, G).
# Rows/columns R, G, C0, C1, C2 (the paper numbers modules from 0); its lower triangle, None above.
PAPER_NAMES = ("R", "G", "C0", "C1", "C2")
PAPER_TABLE = (
    (0.0, None, None, None, None),
    (1.0, 0.0, None, None, None),
    (1.022, 0.036, 0.0, None, None),
    (1.143, 0.093, 0.096, 0.0, None),
    (1.158, 0.097, 0.099, 0.045, 0.0),
)
REAL_ENVIRONMENT = "TFCF_REAL_DATA"
CONTROL = "G'"                  # the second generated set: FID(G, G') is the noise floor
CONTROL_SEED_OFFSET = 3         # G uses seed, the hybrids seed + 1 and seed + 2, G' seed + 3


def default_real_data():
    """``$TFCF_REAL_DATA``, else ``<tfcf cache>/faces64`` when the aligned-faces stand-in is there."""
    from tfcf.io import cache_dir

    configured = os.environ.get(REAL_ENVIRONMENT)
    if configured:
        return configured
    faces = cache_dir() / "faces64"
    return str(faces) if faces.is_dir() else None


def _generated_batches(spec, count, seed, batch_size):
    """G: generator samples from the prior (seed stream ``seed``)."""
    import numpy as np

    z = spec.sample_latent(count, seed=seed)
    for start in range(0, count, batch_size):
        yield np.asarray(spec.model.predict_on_batch(z[start:start + batch_size]))


def _hybrid_batches(spec, layer, module, count, seed, batch_size):
    """C_k: hybrids with ``module`` from the source sample; the same (base, source) pairs for every k."""
    import tfcf

    base = spec.sample_latent(count, seed=seed + 1)
    source = spec.sample_latent(count, seed=seed + 2)
    for start in range(0, count, batch_size):
        stop = start + batch_size
        yield tfcf.hybrid(spec.model, layer, module, base=base[start:stop], source=source[start:stop],
                          batch_size=batch_size)


def within_noise(names, distances, floor=(CONTROL, "G")):
    """``{"A-B": bool}`` for every lower-triangle cell but the floor's: at or below FID(G, G')?

    Example::

        within_noise(["R", "G", "G'", "C0"], normalised)["C0-G"]   # True: C0 is no further
                                                                   # from G than G' is

    ``distances`` is the symmetric table (raw or normalised: the rule is the same); the floor is
    the cell of the two names in ``floor``.
    """
    import numpy as np

    distances = np.asarray(distances, dtype=np.float64)
    names = list(names)
    missing = [name for name in floor if name not in names]
    if missing:
        raise ValueError(f"floor names {missing} are not among the table's names {names}")
    a, b = (names.index(name) for name in floor)
    limit = distances[a, b]
    return {f"{names[i]}-{names[j]}": bool(distances[i, j] <= limit)
            for i in range(len(names)) for j in range(i) if {i, j} != {a, b}}


def paper_table():
    """The paper's normalised table on :data:`PAPER_NAMES`, symmetric, NaN where it has none.

    Example::

        paper_table()[PAPER_NAMES.index("C0"), PAPER_NAMES.index("G")]     # 0.036
    """
    return paper_reference(PAPER_NAMES)


def paper_reference(names):
    """The paper's normalised values laid out on our rows/columns (NaN where it has none)."""
    import numpy as np

    table = np.full((len(names), len(names)), np.nan)
    for i, row in enumerate(names):
        for j, column in enumerate(names):
            if row in PAPER_NAMES and column in PAPER_NAMES:
                a, b = sorted((PAPER_NAMES.index(row), PAPER_NAMES.index(column)), reverse=True)
                value = PAPER_TABLE[a][b]
                table[i, j] = np.nan if value is None else value
    return table


def write_csv(path, names, matrix):
    import csv

    from tfcf.io import atomic_write

    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow([""] + list(names))
        for i, name in enumerate(names):
            writer.writerow([name] + [f"{matrix[i, j]:.6g}" if j <= i else "" for j in range(len(names))])


@click.command("table2")
@model_options(default=FACE_BEGAN)
@sampling_options()
@click.option("--real", "real_path", type=click.Path(exists=True), default=None,
              help=f"Real images R: a folder of images or of .npz shards (key 'images').  "
                   f"[default: ${REAL_ENVIRONMENT}, else <tfcf cache>/faces64]")
@click.option("--k", type=click.IntRange(1), default=3, show_default=True, help="Number of modules.")
@click.option("--num-images", type=click.IntRange(2), default=10000, show_default=True,
              help="Images per set (R, G and each C_k); the paper used 10k.")
@click.option("--extractor", type=click.Choice(["auto", "hub", "port"]), default="auto", show_default=True,
              help="Inception features: TF-Hub module if cached, else the offline Keras port.")
@click.option("--fd-method", type=click.Choice(["sqrtm", "eigh"]), default="sqrtm", show_default=True,
              help="Matrix square root: TTUR's scipy sqrtm, or the faster symmetric eigh form.")
@click.option("--batch-size", type=click.IntRange(1), default=50, show_default=True,
              help="Images per Inception batch.")
@outdir_options("outputs/table2")
@click.pass_context
@cli_errors
def table2(ctx, model_name, weights, layer, samples, pairs, real_path, k, num_images, extractor, fd_method,
           batch_size, outdir, seed, overwrite):
    """Table 2: FID of module hybrids, normalised by FID(real, generated).

    R is --real (resized to the generator's resolution); G are generator samples; G' a second,
    independent set of generator samples (another seed), whose FID to G is the sampling noise
    floor; C0..C(k-1) are hybrids taking module k (NMF on the influence maps of --layer) from a
    second sample. All pairwise FIDs over the same number of images, divided by FID(R, G); cells
    at or below FID(G, G') are marked "within noise". The paper: BEGAN on CelebA, C_k within
    0.036-0.099 of G and 1.02-1.16 of R (it reports no noise floor).

    \b
    Examples:
      tfcf table2 --real faces64/ --outdir outputs/table2
      tfcf table2 --real faces64/ --num-images 2048 --fd-method eigh
      tfcf table2 --real img_align_celeba/ --model began:celeba64 --weights began.weights.h5
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    real_path = real_path or default_real_data()
    if not real_path:
        ctx.fail(f"give the real images R with --real (a folder of images, e.g. CelebA's img_align_celeba, "
                 f"or of .npz shards such as the aligned-faces stand-in), or set ${REAL_ENVIRONMENT}")
    import itertools

    import numpy as np

    from tfcf.experiments.modules_figures import cluster_live
    from tfcf.data import load_images
    from tfcf.io import run_metadata, save_figure, save_json
    from tfcf.metrics import feature_statistics, frechet_distance_from_statistics, get_extractor
    from tfcf.plots import distance_table_figure, image_grid

    spec = load_spec(ctx, model_name, weights, layer)
    network = get_extractor(extractor)
    resolution = int(spec.model.outputs[0].shape[1])
    try:  # the real images are checked before any influence map is computed
        real = load_images(real_path, count=num_images, seed=seed, size=resolution)
    except (FileNotFoundError, ValueError) as error:
        ctx.fail(f"--real {real_path}: {error}")
    if len(real) < num_images:
        ctx.fail(f"{real_path} holds {len(real)} images, fewer than --num-images {num_images}")
    if num_images < 2048:
        step(f"    note: {num_images} images per set (< 2048): FID is biased upwards at this size")
    step(f"[1/4] modules: influence maps of {spec.layer} ({pairs} pairs), NMF k = {k}")
    maps = elementary_maps(spec, spec.layer, spec.sample_latent(samples, seed=seed), pairs, seed)
    clustering, live, modules = cluster_live(maps, k, seed)
    from tfcf.cache import weights_digest

    digest = weights_digest(spec.model)

    step(f"[2/4] Inception statistics ({network.name}) of R, G, {CONTROL}, C0..C{k - 1}: "
         f"{num_images} images each")
    sets = {"R": feature_statistics(real, network, batch_size, value_range=(0, 255))}
    key = f"{digest}|{spec.latent}|{num_images}|{seed}|{batch_size}"
    control_seed = seed + CONTROL_SEED_OFFSET
    for name, generated_seed in (("G", seed), (CONTROL, control_seed)):
        sets[name] = feature_statistics(
            _generated_batches(spec, num_images, generated_seed, batch_size), network, batch_size,
            value_range=spec.value_range, count=num_images,
            cache_key=f"G|{digest}|{spec.latent}|{num_images}|{generated_seed}|{batch_size}")
    for index, module in enumerate(modules):
        sets[f"C{index}"] = feature_statistics(
            _hybrid_batches(spec, spec.layer, module, num_images, seed, batch_size), network, batch_size,
            value_range=spec.value_range, cache_key=f"C|{key}|{spec.layer}|{module}", count=num_images)

    names = list(sets)
    step(f"[3/4] {len(names) * (len(names) - 1) // 2} Frechet distances ({fd_method})")
    distances = np.zeros((len(names), len(names)))
    for i, j in itertools.combinations(range(len(names)), 2):
        a, b = sets[names[i]], sets[names[j]]
        distances[i, j] = distances[j, i] = frechet_distance_from_statistics(
            a.mean, a.covariance, b.mean, b.covariance, method=fd_method)
    normaliser = distances[names.index("R"), names.index("G")]
    normalised = distances / normaliser
    floor = float(distances[names.index(CONTROL), names.index("G")])
    noise = within_noise(names, normalised)

    step("[4/4] table, figure, examples")
    outdir.mkdir(parents=True, exist_ok=True)
    write_csv(outdir / "table2.csv", names, normalised)
    write_csv(outdir / "fid_raw.csv", names, distances)
    save_figure(distance_table_figure(
        names, normalised, reference=paper_table(), reference_names=PAPER_NAMES,
        floor=(CONTROL, "G"),
        title=f"FID / FID(R, G) (FID(R, G) = {normaliser:.1f}, noise floor FID(G, {CONTROL}) = "
              f"{floor:.1f}); {spec.name} {spec.layer}, {num_images} images per set"),
        outdir / "table2.png")
    shown = 6
    low, high = spec.value_range
    examples = [low + real[:shown].astype("float32") / 255.0 * (high - low)]
    examples.append(next(_generated_batches(spec, shown, seed, shown)))
    examples.append(next(_generated_batches(spec, shown, control_seed, shown)))
    examples += [next(_hybrid_batches(spec, spec.layer, module, shown, seed, shown)) for module in modules]
    save_figure(image_grid(np.stack(examples), row_titles=names,
                           title=f"Table 2 image sets: R = {os.path.basename(os.path.normpath(real_path))}, "
                                 f"G and {CONTROL} = {spec.name} (two seeds), C_k = module k hybrids",
                           value_range=spec.value_range), outdir / "examples.png")
    lower = {f"{names[i]}-{names[j]}": float(normalised[i, j])
             for i in range(len(names)) for j in range(i)}
    hybrid_to_g = [float(normalised[names.index(n), names.index("G")]) for n in names if n.startswith("C")]
    params = {"model": model_name, "weights": weights, "layer": spec.layer, "samples": samples, "pairs": pairs,
              "k": k, "num_images": num_images, "real": str(real_path), "extractor": network.identity,
              "fd_method": fd_method, "batch_size": batch_size}
    path = publish(outdir, {
        "table": "ICLR 2020 Table 2",
        "generator": spec.description,
        "real_data": f"{real_path} ({len(real)} images, resized to {resolution}x{resolution})",
        "names": names,
        "fid": distances.tolist(),
        "fid_real_generated": float(normaliser),
        "normalised": normalised.tolist(),
        "normalised_lower": lower,
        "hybrids_to_generated": hybrid_to_g,
        "noise_floor": {"pair": [CONTROL, "G"], "fid": floor, "normalised": floor / float(normaliser),
                        "control_seed": control_seed,
                        "rule": "a cell is within noise when its value is at or below FID(G, G') "
                                "(raw or normalised by FID(R, G) alike)"},
        "within_noise": noise,
        "hybrids_to_generated_within_noise": [noise[f"{n}-G"] for n in names if n.startswith("C")],
        "paper_normalised_lower": {f"{PAPER_NAMES[i]}-{PAPER_NAMES[j]}": PAPER_TABLE[i][j]
                                   for i in range(len(PAPER_NAMES)) for j in range(i)},
        "modules": modules,
        "module_sizes": [len(m) for m in modules],
        "clustering": clustering.to_dict(),
        "statistics_counts": {name: stats.count for name, stats in sets.items()},
        "files": ["table2.csv", "fid_raw.csv", "table2.png", "examples.png"],
        "run": run_metadata(seed, params, started=started),
    })
    step(f"FID(R, G) = {normaliser:.2f}; noise floor FID(G, {CONTROL}) = {floor:.2f} "
         f"({floor / normaliser:.3f} normalised); hybrids to G: "
         f"{', '.join(f'{v:.3f}' for v in hybrid_to_g)} (paper 0.036-0.097)")
    step(f"wrote {path.parent} ({path.name})")
