"""The method on photo-real faces: MobileStyleGAN's modules at one intermediate layer.

    tfcf stylegan-modules --layer LeakyRelu_342 --outdir outputs/stylegan_modules_32
    tfcf stylegan-modules --layer LeakyRelu_442 --outdir outputs/stylegan_modules_64

Needs `pip install --no-deps random-face==2021.7.21.1 openvino` (see tfcf.models.mobile_stylegan).
"""

from __future__ import annotations

import click

from tfcf.experiments._common import cli_errors, finish, outdir_options, prepare, step


def _integers(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


@click.command("stylegan-modules")
@click.option("--layer", default="LeakyRelu_342", show_default=True,
              help="Synthesis layer to intervene on (LeakyRelu_342: 32x32x512, end of block "
                   "layers.2; LeakyRelu_442: 64x64x512).")
@click.option("--truncation", type=click.FloatRange(0, 1), default=0.7, show_default=True,
              help="Truncation of the style towards the mean style (1: none).")
@click.option("--resolution", type=click.Choice(["64", "128", "256", "512", "1024"]),
              default="128", show_default=True,
              help="The 1024-px image is averaged down to this size inside the analysed model "
                   "(hybrids are shown at it).")
@click.option("--map-size", type=click.Choice(["32", "64", "128"]), default="64",
              show_default=True, help="Influence maps are averaged down to this size for "
                                      "clustering, stability and the figures.")
@click.option("--samples", type=click.IntRange(2), default=8, show_default=True,
              help="Latent samples the pairs are drawn from.")
@click.option("--pairs", type=click.IntRange(1), default=4, show_default=True,
              help="Pairs (z1, z2) per elementary influence map.")
@click.option("--channel-stride", type=click.IntRange(1), default=1, show_default=True,
              help="Analyse every n-th channel of the layer (1: all).")
@click.option("--ks", default="3,4,5", show_default=True,
              help="Numbers of NMF modules, one clusters/hybrids figure each.")
@click.option("--stability-ks", default="2,3,4,5,6", show_default=True,
              help="Numbers of clusters of the stability analysis ('' to skip).")
@click.option("--repeats", type=click.IntRange(1), default=10, show_default=True,
              help="Random 3-way partitions per k in the stability analysis.")
@click.option("--magnitude-ks", default="1,2,3,4,5", show_default=True,
              help="Numbers of clusters of the magnitude of causal effects ('' to skip).")
@click.option("--examples", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Pairs shown in each module-hybrid figure.")
@click.option("--locality-pairs", type=click.IntRange(1), default=8, show_default=True,
              help="Pairs of module hybrids behind the inside/outside numbers (>= --examples).")
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True,
              help="Hybrids per pass of the downstream network (1024-px passes: keep small).")
@outdir_options("outputs/stylegan_modules")
@click.pass_context
@cli_errors
def stylegan_modules(ctx, layer, truncation, resolution, map_size, samples, pairs,
                     channel_stride, ks, stability_ks, repeats, magnitude_ks, examples,
                     locality_pairs, batch_size, outdir, seed, overwrite):
    """MobileStyleGAN (photo-real 1024-px faces): influence maps, NMF modules, module hybrids,
    stability and magnitude of causal effects at one layer.

    Each hybrid costs a pass of the synthesis network from the layer to 1024 px (about 0.12 s
    on 2 CPU cores): the defaults (512 channels x 4 pairs) take about 6 minutes per layer.

    \b
    Examples:
      tfcf stylegan-modules --layer LeakyRelu_342 --outdir outputs/stylegan_modules_32
      tfcf stylegan-modules --layer LeakyRelu_442 --channel-stride 2 --pairs 8
    """
    if locality_pairs < examples:
        ctx.fail(f"--locality-pairs {locality_pairs} is fewer than --examples {examples}")
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    import tfcf
    from tfcf.effects import causal_effect_magnitude
    from tfcf.influence import cached_influence_maps
    from tfcf.io import save_figure
    from tfcf.locality import block_mean, module_locality
    from tfcf.models import mobile_stylegan
    from tfcf.plots import (cluster_figure, influence_maps_figure, magnitude_figure,
                            module_hybrids_figure, stability_figure)

    ks, stability_values, magnitude_values = (_integers(v) for v in
                                              (ks, stability_ks, magnitude_ks))
    size, maps_size = int(resolution), int(map_size)
    if size % maps_size:
        ctx.fail(f"--map-size {maps_size} does not divide --resolution {size}")
    step(f"[1/6] MobileStyleGAN, truncation {truncation}, output averaged to {size} px")
    model = mobile_stylegan.load_generator(truncation=truncation, output_size=size)
    width = int(tfcf.split(model, layer).head.outputs[0].shape[-1])
    channels = np.arange(0, width, channel_stride)
    z = np.random.default_rng(seed).standard_normal((samples, mobile_stylegan.STYLE_DIM))
    z = z.astype("float32")
    step(f"[2/6] elementary influence maps of {layer}: {len(channels)} channels x {pairs} pairs")
    maps = cached_influence_maps(
        model, layer, z, num_pairs=pairs, seed=seed, key=f"channel stride {channel_stride}",
        report=step, batch_size=batch_size,
        channels=None if channel_stride == 1 else [[int(c)] for c in channels])
    maps = block_mean(maps, (maps_size, maps_size))
    analysed = channels
    live = tfcf.live_channels(maps)
    maps, channels = maps[live], channels[live]
    strength = tfcf.individual_influence(maps)
    by_channel = np.zeros((width,) + maps.shape[1:], dtype=maps.dtype)  # titles: layer channels
    by_channel[channels] = maps
    shown = channels[np.argsort(-strength)[:32]]
    save_figure(influence_maps_figure(by_channel, channels=shown.tolist(),
                                      title=f"Elementary influence maps of {layer} (MobileStyleGAN,"
                                            f" {pairs} pairs, strongest 32)"),
                outdir / "influence_maps.png")
    files = ["influence_maps.png"]

    pair_rng = np.random.default_rng([seed, 1])
    latents = pair_rng.standard_normal((2, locality_pairs, mobile_stylegan.STYLE_DIM))
    base, source = latents.astype("float32")
    original_1 = model.predict(base, batch_size=batch_size, verbose=0)
    original_2 = model.predict(source, batch_size=batch_size, verbose=0)
    clusterings = {}
    for k in ks:
        step(f"[3/6] {k} NMF modules, module hybrids ({k} x {locality_pairs} pairs)")
        clustering = tfcf.cluster(maps, k, channels=channels, seed=seed)
        save_figure(cluster_figure(maps, clustering, channels=channels,
                                   title=f"{k} NMF modules of {layer} (MobileStyleGAN)"),
                    outdir / f"clusters_k{k}.png")
        hybrids = np.stack([tfcf.hybrid(model, layer, clustering.members(j), base=base,
                                        source=source, batch_size=batch_size)
                            for j in range(k)])
        save_figure(module_hybrids_figure(
            (original_1[:examples], original_2[:examples]), hybrids[:, :examples],
            clustering.templates, sizes=clustering.sizes.tolist(),
            title=f"Module hybrids, {layer}, k = {k}: module Cj of Original 2 into Original 1"),
            outdir / f"hybrids_k{k}.png")
        files += [f"clusters_k{k}.png", f"hybrids_k{k}.png"]
        clusterings[k] = {"clustering": clustering.to_dict(),
                          "locality": module_locality(original_1, hybrids,
                                                      clustering.templates)}

    stability = None
    if stability_values:
        step(f"[4/6] stability, k = {stability_values}, {repeats} repeats, NMF and k-means")
        stability = [tfcf.stability(maps, ks=stability_values, method=method, repeats=repeats,
                                    seed=seed) for method in ("nmf", "kmeans")]
        save_figure(stability_figure(stability, title=f"Cluster stability of {layer} "
                                                      "(MobileStyleGAN)"),
                    outdir / "stability.png")
        files.append("stability.png")
    effects = None
    if magnitude_values:
        step(f"[5/6] magnitude of causal effects, k = {magnitude_values}")
        effects = causal_effect_magnitude(model, layer, z, maps, ks=magnitude_values,
                                          num_pairs=pairs, seed=seed, channels=channels,
                                          batch_size=batch_size)
        save_figure(magnitude_figure(effects["ks"], effects["mean_influence"],
                                     effects["module_sizes"], effects["module_influences"],
                                     title=f"Magnitude of causal effects, {layer} "
                                           "(MobileStyleGAN)"), outdir / "magnitude.png")
        files.append("magnitude.png")
    step("[6/6] results.json")
    finish(outdir, started, seed, {
        "layer": layer, "truncation": truncation, "resolution": size, "map_size": maps_size,
        "samples": samples, "pairs": pairs, "channel_stride": channel_stride, "ks": ks,
        "stability_ks": stability_values, "repeats": repeats, "magnitude_ks": magnitude_values,
        "examples": examples, "locality_pairs": locality_pairs, "batch_size": batch_size,
    }, {
        "figure": "Beyond the papers: MobileStyleGAN modules",
        "generator": ("MobileStyleGAN (random-face 2021.7.21.1, FFHQ 1024 px) imported from "
                      f"OpenVINO IR into Keras; truncation {truncation}; output averaged to "
                      f"{size} px, maps to {maps_size} px"),
        "channels": channels.tolist(),
        "dead_channels": sorted(set(analysed.tolist()) - set(channels.tolist())),
        "individual_influence": strength.tolist(),
        "modules": {str(k): value for k, value in clusterings.items()},
        "stability": None if stability is None else {
            "nmf": stability[0].to_dict(), "kmeans": stability[1].to_dict()},
        "causal_effects": effects,
        "files": files,
    })
