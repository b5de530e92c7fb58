"""`tfcf demo`: the main job. The whole method on the pretrained face DCGAN's intermediate layer.

    tfcf demo --outdir outputs/demo
"""

import click

from tfcf.experiments._common import (
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


@click.command()
@model_options
@click.option("--examples", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Pairs (Original 1, Original 2) shown in the hybrid figures.")
@click.option("--blocks", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Contiguous channel blocks of the first hybrid figure.")
@sampling_options(samples=128, pairs=128)
@click.option("--k", type=click.IntRange(1), default=3, show_default=True,
              help="Number of modules (NMF rank).")
@click.option("--repeats", type=click.IntRange(1), default=20, show_default=True,
              help="Repeats of the stability analysis per number of clusters.")
@outdir_options("outputs/demo")
@click.pass_context
@cli_errors
def demo(ctx, model_name, weights, layer, examples, blocks, samples, pairs, k, repeats, outdir,
         seed, overwrite):
    """The method end to end: hybrids, influence maps, modules, stability, causal effects.

    On the pretrained 64x64 face DCGAN (no data, no network needed), at its intermediate layer:
    hybrids of channel blocks (Fig. 3a), elementary influence maps of every channel (eq. 2,
    Fig. 3b), NMF modules (k=3: templates and example maps), module hybrids, cluster stability
    for k = 2..6 with NMF and k-means (Fig. 9) and the magnitude of causal effects (Fig. 8).

    \b
    Examples:
      tfcf demo                                    # pretrained face DCGAN, outputs/demo
      tfcf demo --outdir out --k 4 --seed 1
      tfcf demo --model gen.keras --layer block2 --overwrite
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    import tfcf
    from tfcf.experiments.modules_figures import module_hybrids, save_hybrids, cluster_live
    from tfcf.effects import causal_effect_magnitude
    from tfcf.io import run_metadata, save_figure
    from tfcf.plots import (
        cluster_figure,
        image_grid,
        influence_maps_figure,
        magnitude_figure,
        stability_figure,
    )

    step(f"[1/7] loading generator {model_name!r}")
    spec = load_spec(ctx, model_name, weights, layer)
    head, _ = tfcf.split(spec.model, spec.layer)
    layer_shape = [int(d) for d in head.outputs[0].shape[1:]]
    num_channels = layer_shape[-1]
    if blocks > num_channels:
        ctx.fail(f"--blocks {blocks} exceeds the {num_channels} channels of layer {spec.layer!r}")
    z = spec.sample_latent(max(samples, 2 * examples), seed=seed)

    step(f"[2/7] hybrids of {blocks} channel blocks of {spec.layer} {layer_shape}")
    channel_blocks = [b.tolist() for b in np.array_split(np.arange(num_channels), blocks)]
    blocks_result = module_hybrids(spec, spec.layer, channel_blocks, z, examples, seed)
    block_images = np.concatenate([blocks_result["original_1"][None],
                                   blocks_result["original_2"][None], blocks_result["hybrids"]])
    titles = ["Original 1", "Original 2"] + [f"Hybrid: ch {b[0]}-{b[-1]}" for b in channel_blocks]
    save_figure(image_grid(
        np.swapaxes(block_images, 0, 1), column_titles=titles,
        row_titles=[f"pair {i + 1}" for i in range(examples)],
        title=f"{spec.name}: channel blocks of {spec.layer} taken from Original 2",
        value_range=spec.value_range, column_groups=list(range(len(titles))),
    ), outdir / "hybrids.png")
    block_change = [float(np.abs(h - block_images[0]).mean()) for h in block_images[2:]]

    step(f"[3/7] elementary influence maps of {num_channels} channels, {pairs} pairs")
    maps = elementary_maps(spec, spec.layer, z[:samples], pairs, seed)
    influence = tfcf.individual_influence(maps)
    strongest = np.argsort(-influence)[:16]
    save_figure(influence_maps_figure(maps, channels=strongest.tolist(),
                                      title=f"Elementary influence maps of {spec.layer} "
                                            "(16 most influential channels)"),
                outdir / "influence_maps.png")

    step(f"[4/7] NMF modules (k={k}) and module hybrids")
    clustering, live, modules = cluster_live(maps, k, seed)
    save_figure(cluster_figure(maps[live], clustering, channels=live,
                               title=f"{k} modules of {spec.layer}: NMF templates and example "
                                     "maps"), outdir / "clusters.png")
    module_result = module_hybrids(spec, spec.layer, modules, z, examples, seed)
    save_hybrids(module_result, outdir, f"Module hybrids: each module Cj of {spec.layer} from "
                                        "Original 2", spec, clustering.templates,
                 [len(m) for m in modules], filename="module_hybrids.png")

    # Each stability run clusters two thirds of the maps: k must stay below that count.
    ks = [value for value in range(2, 7) if value <= (2 * len(live)) // 3]
    step(f"[5/7] stability for k = {ks}, {repeats} repeats, NMF and k-means")
    stability = [tfcf.stability(maps[live], ks=ks, method=method, repeats=repeats, seed=seed)
                 for method in ("nmf", "kmeans")]
    save_figure(stability_figure(stability, title=f"Cluster stability of {spec.layer}"),
                outdir / "stability.png")

    step("[6/7] magnitude of causal effects")
    effects = causal_effect_magnitude(spec.model, spec.layer, z[:samples], maps[live],
                                      ks=[1] + ks, num_pairs=pairs, seed=seed, channels=live)
    save_figure(magnitude_figure(effects["ks"], effects["mean_influence"],
                                 effects["module_sizes"], effects["module_influences"],
                                 title="Magnitude of causal effects"), outdir / "magnitude.png")

    step("[7/7] spectral dependency ratios of every pathway of the generator")
    from tfcf import spectral
    from tfcf.plots_spectral import sdr_histograms_figure

    sdr = spectral.sdr_by_resolution(spec.model)
    save_figure(sdr_histograms_figure({"generator": sdr}, title=(
        "Spectral dependency ratio of successive layers' kernels")), outdir / "sdr.png")

    np.save(outdir / "influence_maps.npy", maps)
    payload = {
        "command": "tfcf demo",
        "generator": spec.description or spec.name,
        "layer": spec.layer,
        "layer_shape": layer_shape,
        "channel_blocks": [[b[0], b[-1]] for b in channel_blocks],
        "mean_abs_change_from_original_1": dict(zip(titles[2:], block_change)),
        "individual_influence": influence.tolist(),
        "clustering": clustering.to_dict(),
        "modules": modules,
        "dead_channels": sorted(set(range(num_channels)) - set(live.tolist())),
        "module_sizes": [len(m) for m in modules],
        "stability": {"nmf": stability[0].to_dict(), "kmeans": stability[1].to_dict()},
        "causal_effects": effects,
        "sdr": {str(level): spectral.summarize(values) for level, values in sdr.items()},
        "files": ["report.html", "hybrids.png", "influence_maps.png", "clusters.png",
                  "module_hybrids.png", "stability.png", "magnitude.png", "sdr.png",
                  "influence_maps.npy"],
        "run": run_metadata(seed, {"model": model_name, "weights": weights, "layer": spec.layer,
                                   "examples": examples, "blocks": blocks, "samples": samples,
                                   "pairs": pairs, "k": k, "repeats": repeats},
                            started=started),
    }
    demo_report(payload, outdir, spec, stability).write(outdir / "report.html")
    results = publish(outdir, payload)
    step(f"wrote {results.parent / 'report.html'}, the figures and {results.name}")


def demo_report(results, outdir, spec, stability):
    """The demo's HTML page: every figure with what it shows, the numbers, the parameters."""
    from tfcf.report import Report

    layer, k = results["layer"], len(results["module_sizes"])
    run = results["run"]
    report = Report(
        f"tfcf demo: the modules of {spec.name}",
        f"This page shows what the channels of one internal layer of a generative network do to "
        f"the images it makes, found without any labels, as in Besserve et al. (ICLR 2020). "
        f"Generator: {results['generator']}. Layer: {layer}, of shape "
        f"{results['layer_shape']} (height, width, channels). The recipe is counterfactual: "
        f"generate an image, then ask what it would have looked like had some internal channels "
        f"taken the values they have for another image.",
    )
    report.section(
        "1. Hybrids: copying channels from another sample",
        "Each row starts from two generated images, Original 1 and Original 2. The hybrid "
        f"columns regenerate Original 1 after copying one block of channels of {layer} from "
        "Original 2. Blocks of consecutive channel numbers mix unrelated functions, so the "
        "hybrids change in scattered ways: the point of the next steps is to find better groups.",
        figure=outdir / "hybrids.png")
    report.section(
        "2. Elementary influence maps",
        "For every channel alone, the influence map is the average absolute change of each "
        "output pixel when only that channel is copied from another sample (eq. 2 of the paper), "
        f"averaged over {run['parameters']['pairs']} random pairs of samples. Bright pixels are "
        "those the channel controls. Shown: the 16 most influential channels.",
        figure=outdir / "influence_maps.png")
    report.section(
        f"3. Modules: {k} groups of channels with similar maps",
        "Each map is smoothed (3x3 window), thresholded at its 75th percentile, and the binary "
        f"maps are factorised by non-negative matrix factorisation of rank {k}. Each channel "
        "joins the template that explains it best. The left column shows each module's template, "
        "the others show example maps of its channels.",
        figure=outdir / "clusters.png")
    report.table(["module", "channels", "examples of channels"],
                 [[j + 1, size, ", ".join(map(str, results["modules"][j][:12]))
                   + (" ..." if size > 12 else "")]
                  for j, size in enumerate(results["module_sizes"])])
    if results["dead_channels"]:
        report.note(f"{len(results['dead_channels'])} channels never change the output (dead "
                    f"units) and belong to no module: {results['dead_channels']}.")
    report.section(
        "4. Module hybrids",
        "The same counterfactual, now copying a whole module from Original 2. When the modules "
        "are meaningful, each hybrid takes one aspect of Original 2 (e.g. the face features, "
        "or one side of the background and hair) and keeps the rest of Original 1.",
        figure=outdir / "module_hybrids.png")
    report.section(
        "5. Are the modules stable?",
        "The maps are split at random in three thirds; two clusterings, each on two thirds, "
        "share one third. After matching their clusters (Hungarian assignment), the label "
        "consistency is the fraction of the shared third given the same module, and the cosine "
        "similarity compares matched templates. Mean and standard deviation over "
        f"{stability[0].repeats} random splits, for NMF and k-means.",
        figure=outdir / "stability.png")
    rows = []
    for method, result in zip(("NMF", "k-means"), stability):
        for index, value in enumerate(result.ks):
            rows.append([method, value, float(result.consistency_mean[index]),
                         float(result.consistency_std[index]), float(result.cosine_mean[index]),
                         float(result.cosine_std[index])])
    report.table(["method", "k", "consistency", "sd", "cosine", "sd"], rows)
    effects = results["causal_effects"]
    report.section(
        "6. Magnitude of causal effects",
        "Top: the average influence (mean over pixels of the influence map) of the modules "
        "found for each number of clusters (k = 1 is the whole layer). Bottom: each module's "
        "influence against its number of channels, with a least-squares line.",
        figure=outdir / "magnitude.png")
    report.table(["k", "average module influence"],
                 [[a, b] for a, b in zip(effects["ks"], effects["mean_influence"])])
    fit = effects["regression"]
    report.note(f"Influence vs module size: slope {fit['slope']:.4g} per channel, "
                f"R^2 = {fit['r2']:.2f}.")
    report.section(
        "7. Spectral independence between layers",
        "For every pathway (input channel -> middle channel -> output channel) of two successive "
        "convolution layers, the spectral dependency ratio rho compares the Fourier magnitudes "
        "of the finer kernel with those of the coarser one (SDR paper): rho near 1 means the "
        "two layers' kernels were chosen independently (a modular, causal-like generator); "
        "rho > 1 that they amplify the same frequencies, rho < 1 the opposite. One histogram "
        "per resolution at which the finer kernel acts.", figure=outdir / "sdr.png")
    report.table(["resolution", "pathways", "median rho", "5-95 % range", "share > 1.45"],
                 [[f"{level}x{level}", values["count"],
                   values["quantiles_5_25_50_75_95"][2],
                   f"{values['quantiles_5_25_50_75_95'][0]:.2f}-"
                   f"{values['quantiles_5_25_50_75_95'][4]:.2f}",
                   values["fraction_above_1.45"]] for level, values in results["sdr"].items()])
    report.section("8. Parameters, versions, run time",
                   f"Seed {run['seed']}; run time {run.get('run_time_s', '?')} s on "
                   f"{run['machine']}. Files: {', '.join(results['files'])}.")
    report.code({"parameters": run["parameters"], "versions": run["versions"]})
    return report
