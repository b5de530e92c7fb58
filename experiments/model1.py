"""`tfcf model1`: the identifiability of Model 1 (ICLR 2020, section 3.4, Proposition 3).

    tfcf model1 --outdir outputs/model1
"""

from __future__ import annotations

import click

from tfcf.experiments._common import cli_errors, outdir_options, prepare, publish, step

PIPELINES = {
    # name: (window, percentile) of the thresholding before NMF
    "paper (3x3 window, 75th percentile)": (3, 75),
    "Prop. 3 (support: influence > 0)": (1, 0),
}


@click.command("model1")
@click.option("--draws", type=click.IntRange(1), default=20, show_default=True,
              help="Random parameter draws of Model 1.")
@click.option("--modules", "num_modules", type=click.IntRange(2), default=3, show_default=True,
              help="K, the number of latent variables / modules.")
@click.option("--units", type=click.IntRange(1), default=4, show_default=True,
              help="n, hidden units per module.")
@click.option("--size", type=click.IntRange(4), default=16, show_default=True,
              help="The output image is size x size pixels (m = size**2 > n K).")
@click.option("--overlap", type=click.IntRange(0), default=2, show_default=True,
              help="Columns shared by neighbouring regions I_k.")
@click.option("--samples", type=click.IntRange(2), default=200, show_default=True)
@click.option("--pairs", type=click.IntRange(1), default=200, show_default=True)
@outdir_options("outputs/model1")
@click.pass_context
@cli_errors
def model1(ctx, draws, num_modules, units, size, overlap, samples, pairs, outdir, seed,
           overwrite):
    """Proposition 3: influence maps -> threshold -> NMF recover Model 1's true partition.

    For each random draw of Model 1's parameters, the elementary influence maps of its hidden
    layer are clustered with NMF into K modules, and the partition is compared with the true one
    (adjusted Rand index; Prop. 3 predicts 1 with probability 1). Two thresholdings are
    reported: the paper's pipeline (3x3 smoothing, 75th percentile) and the one of Prop. 3
    (the support of each map).

    \b
    Examples:
      tfcf model1 --outdir outputs/model1
      tfcf model1 --draws 100 --modules 4 --units 6 --size 24
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np
    from sklearn.metrics import adjusted_rand_score
    from tqdm import tqdm

    import tfcf
    from tfcf.models import toy
    from tfcf.io import run_metadata, save_figure
    from tfcf.plots import model1_figure

    step(f"[1/2] {draws} draws of Model 1 (K={num_modules}, n={units}, {size}x{size} image)")
    scores = {name: [] for name in PIPELINES}
    example = None
    for draw in tqdm(range(draws), desc="draws", unit="draw"):
        toy_model = toy.build_model1(num_modules=num_modules, units_per_module=units,
                                     image_shape=(size, size), overlap=overlap,
                                     seed=seed + draw)
        z = toy_model.sample_latent(samples, seed=seed + draw)
        maps = tfcf.influence_maps(toy_model.model, "hidden_act", z, num_pairs=pairs,
                                   seed=seed + draw, progress=False)
        for name, (window, percentile) in PIPELINES.items():
            clustering = tfcf.cluster(maps, num_modules, window=window, percentile=percentile,
                                      seed=seed)
            scores[name].append(float(adjusted_rand_score(toy_model.labels, clustering.labels)))
            if example is None:
                example = (toy_model, maps, clustering)
    step("[2/2] figure and results")
    toy_model, maps, clustering = example
    # Show each template beside the true region it overlaps most (Hungarian matching).
    from scipy.optimize import linear_sum_assignment

    overlap = np.einsum("khw,jhw->kj", toy_model.regions.astype(float), clustering.templates)
    _, order = linear_sum_assignment(-overlap)
    save_figure(model1_figure(scores, toy_model.regions, clustering.templates[order],
                              title=f"Model 1: recovery of the true modules over {draws} draws"),
                outdir / "model1.png")
    summary = {name: {"ari": values, "mean": float(np.mean(values)),
                      "fraction_exact": float(np.mean(np.isclose(values, 1.0)))}
               for name, values in scores.items()}
    publish(outdir, {
        "figure": "ICLR 2020 Prop. 3 (Model 1)",
        "adjusted_rand_index": summary,
        "files": ["model1.png"],
        "run": run_metadata(seed, {"draws": draws, "modules": num_modules, "units": units,
                                   "size": size, "overlap": overlap, "samples": samples,
                                   "pairs": pairs, "pipelines": PIPELINES}, started=started),
    })
    for name, values in summary.items():
        step(f"{name}: mean ARI {values['mean']:.3f}, exact in "
             f"{values['fraction_exact']:.0%} of draws")
