"""Influence maps, modules, stability and module hybrids: ICLR 2020 Figs. 3b, 4, 8-12, 2019 Fig. 7.

    tfcf fig3b --outdir outputs/fig3b
    tfcf fig8  --model vae:paper_celeba --weights decoder.weights.h5 --outdir outputs/fig8
    tfcf fig9  --outdir outputs/fig9

Every command defaults to the paper's architecture trained here (models/weights/: the Table 1
beta-VAE and DCGAN on the aligned-faces stand-in for CelebA, the CIFAR-10 GAN on Fashion-MNIST);
the BEGAN figures (4, 12) default to the quarter-width BEGAN trained here (``began:celeba64_small``,
h 16: the paper's h-64 ``celeba64`` is a GPU job).
"""

from __future__ import annotations

import click

from tfcf.experiments._common import (
    CIFAR_DCGAN,
    FACE_BEGAN,
    FACE_DCGAN,
    FACE_VAE,
    cli_errors,
    draw_latents,
    elementary_maps,
    latent_option,
    finish,
    load_spec,
    model_options,
    outdir_options,
    prepare,
    sampling_options,
    step,
)

STAND_IN = ("the paper used a {wanted}; no such trained model is available offline, so the "
            "pretrained face DCGAN stands in (pass --model/--weights for the real one)")


# ----------------------------------------------------------------------------- shared steps
def cluster_live(maps, k, seed, method="nmf"):
    """Cluster the maps of live channels; modules in the original channel indices.

    Returns ``(clustering, live, modules)``; dead channels (all-zero maps) are in no module.
    """
    import tfcf

    live = tfcf.modules.live_channels(maps)
    clustering = tfcf.cluster(maps[live], k, method=method, seed=seed)
    modules = [live[clustering.members(j)].tolist() for j in range(k)]
    return clustering, live, modules


def module_hybrids(spec, layers, modules, latents, examples, seed):
    """Base and source samples drawn from ``latents`` (a :class:`Latents` or an array of
    codes) and each module's hybrids: a dict with ``original_1``, ``original_2``, ``hybrids``
    [k, N, H, W, C] and, for encoder latents, ``real_1``/``real_2`` (the real images)."""
    import numpy as np

    import tfcf

    z = getattr(latents, "z", latents)
    images = getattr(latents, "images", None)
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(len(z))
    first, second = order[:examples], order[examples:2 * examples]
    base, source = z[first], z[second]
    at = layers if isinstance(layers, str) else list(layers)
    result = {"original_1": np.asarray(spec.model.predict_on_batch(base)),
              "original_2": np.asarray(spec.model.predict_on_batch(source)),
              "hybrids": np.stack([tfcf.hybrid(spec.model, at, module, base=base, source=source)
                                   for module in modules])}
    if images is not None:
        result["real_1"], result["real_2"] = images[first], images[second]
    return result


def save_hybrids(result, outdir, title, spec, templates, sizes, filename="hybrids.png"):
    """The module-hybrid figure (hybrids, |hybrid - Original 1| per module, templates)."""
    from tfcf.io import save_figure
    from tfcf.plots import module_hybrids_figure

    reals = (result["real_1"], result["real_2"]) if "real_1" in result else None
    figure = module_hybrids_figure((result["original_1"], result["original_2"]),
                                   result["hybrids"], templates, reals=reals,
                                   value_range=spec.value_range, title=title, sizes=sizes)
    return save_figure(figure, outdir / filename)


def hybrid_changes(result):
    """Per module: mean |hybrid - Original 1| (value units, mean over pixels and pairs)."""
    import numpy as np

    return [float(np.mean(np.abs(h.astype("float64") - result["original_1"])))
            for h in result["hybrids"]]


def modules_experiment(ctx, figure, outdir, model_name, weights, layer, samples, pairs, k,
                       examples, ks, seed, overwrite, wanted, statistic="mean_abs",
                       latents="auto"):
    """EIMs -> NMF modules -> module hybrids -> magnitude of causal effects (Figs. 8, 10, 11)."""
    outdir, started = prepare(ctx, outdir, overwrite)
    import tfcf
    from tfcf.effects import causal_effect_magnitude
    from tfcf.io import save_figure
    from tfcf.plots import cluster_figure, magnitude_figure

    spec = load_spec(ctx, model_name, weights, layer)
    drawn = draw_latents(spec, max(samples, 2 * examples), seed, latents)
    z = drawn.z
    step(f"[1/4] elementary influence maps of {spec.layer} ({pairs} pairs, {drawn.source} "
         "latents)")
    maps = elementary_maps(spec, spec.layer, z, pairs, seed, statistic)
    step(f"[2/4] NMF clustering into {k} modules")
    clustering, live, modules = cluster_live(maps, k, seed)
    save_figure(cluster_figure(maps[live], clustering, channels=live,
                               title=f"{figure}: influence-map clusters of {spec.layer} "
                                     f"({spec.name})"), outdir / "clusters.png")
    step("[3/4] module hybrids")
    result = module_hybrids(spec, spec.layer, modules, drawn, examples, seed)
    save_hybrids(result, outdir, f"{figure}: hybrids, module Cj of {spec.layer} from Original 2",
                 spec, clustering.templates, [len(m) for m in modules])
    effects = None
    if ks:
        step(f"[4/4] magnitude of causal effects, k = {list(ks)}")
        effects = causal_effect_magnitude(spec.model, spec.layer, z, maps[live], ks=ks,
                                          num_pairs=pairs, seed=seed, channels=live)
        save_figure(magnitude_figure(effects["ks"], effects["mean_influence"],
                                     effects["module_sizes"], effects["module_influences"],
                                     title=f"{figure}: magnitude of causal effects"),
                    outdir / "magnitude.png")
    finish(outdir, started, seed, {
        "model": model_name, "weights": weights, "layer": spec.layer, "samples": samples,
        "pairs": pairs, "k": k, "statistic": statistic, "examples": examples, "ks": list(ks),
        "latents": drawn.source,
    }, {
        "figure": figure,
        "generator": spec.description,
        "objective": (spec.card or {}).get("objective"),
        "latents": drawn.note,
        "module_names": [f"C{j}" for j in range(k)],
        "mean_abs_change_per_module": hybrid_changes(result),
        "note": STAND_IN.format(wanted=wanted) if model_name == "face_dcgan" and wanted else "",
        "clustering": clustering.to_dict(),
        "modules": modules,
        "dead_channels": sorted(set(range(len(maps))) - set(live.tolist())),
        "individual_influence": tfcf.individual_influence(maps).tolist(),
        "module_sizes": [len(m) for m in modules],
        "causal_effects": effects,
        "files": ["clusters.png", "hybrids.png"] + (["magnitude.png"] if ks else []),
    })


# ----------------------------------------------------------------------------- commands
@click.command("fig3b")
@model_options(default=FACE_VAE)
@sampling_options()
@click.option("--show", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Maps shown: the most influential channels first.")
@latent_option
@outdir_options("outputs/fig3b")
@click.pass_context
@cli_errors
def fig3b(ctx, model_name, weights, layer, samples, pairs, show, latents, outdir, seed,
          overwrite):
    """Figure 3b: example elementary influence maps (eq 2), one per channel.

    \b
    Examples:
      tfcf fig3b --outdir outputs/fig3b
      tfcf fig3b --model face_dcgan --layer main.5 --pairs 512 --show 32
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    import tfcf
    from tfcf.io import save_figure
    from tfcf.plots import influence_maps_figure

    spec = load_spec(ctx, model_name, weights, layer)
    drawn = draw_latents(spec, samples, seed, latents)
    step(f"[1/2] elementary influence maps of {spec.layer} ({drawn.source} latents)")
    maps = elementary_maps(spec, spec.layer, drawn.z, pairs, seed)
    strength = tfcf.individual_influence(maps)
    chosen = np.argsort(-strength)[: min(show, len(maps))]
    step("[2/2] figure")
    save_figure(influence_maps_figure(maps, channels=chosen.tolist(),
                                      title=f"Elementary influence maps of {spec.layer} "
                                            f"({spec.name}, {pairs} pairs)"),
                outdir / "influence_maps.png")
    np.save(outdir / "influence_maps.npy", maps)
    finish(outdir, started, seed, {"model": model_name, "weights": weights,
                                    "layer": spec.layer, "samples": samples, "pairs": pairs,
                                    "latents": drawn.source},
            {"figure": "ICLR 2020 Fig. 3b", "generator": spec.description,
             "objective": (spec.card or {}).get("objective"), "latents": drawn.note,
             "shown_channels": chosen.tolist(), "individual_influence": strength.tolist(),
             "files": ["influence_maps.png", "influence_maps.npy"]})


def _modules_command(name, figure, wanted, default_examples, default_ks, doc, model=FACE_VAE):
    @click.command(name, help=doc)
    @model_options(default=model)
    @sampling_options()
    @click.option("--k", type=click.IntRange(1), default=3, show_default=True,
                  help="Number of modules (NMF rank).")
    @click.option("--examples", type=click.IntRange(1, 32), default=default_examples,
                  show_default=True, help="Pairs shown in the hybrid figure.")
    @click.option("--ks", default=default_ks, show_default=True,
                  help="Numbers of clusters for the magnitude plot ('' to skip).")
    @latent_option
    @outdir_options(f"outputs/{name}")
    @click.pass_context
    @cli_errors
    def command(ctx, model_name, weights, layer, samples, pairs, k, examples, ks, latents, outdir,
                seed, overwrite):
        values = [int(v) for v in ks.split(",") if v.strip()] if ks else []
        modules_experiment(ctx, figure, outdir, model_name, weights, layer, samples, pairs, k,
                           examples, values, seed, overwrite, wanted, latents=latents)

    return command


fig8 = _modules_command(
    "fig8", "ICLR 2020 Fig. 8", "beta-VAE trained on CelebA", 4, "1,2,3,4,5,6",
    """Figure 8: clustering of influence maps, module hybrids, magnitude of causal effects (VAE).

    \b
    Examples:
      tfcf fig8                                      # the committed face beta-VAE
      tfcf fig8 --model vae:paper_celeba --weights decoder.weights.h5 --k 4 --pairs 512
    """)
fig10 = _modules_command(
    "fig10", "ICLR 2020 Fig. 10", "beta-VAE trained on CelebA", 10, "",
    """Figure 10: a larger collection of module hybrids of the VAE.

    \b
    Examples:
      tfcf fig10 --examples 12
      tfcf fig10 --model vae:paper_celeba --weights decoder.weights.h5
    """)
fig11 = _modules_command(
    "fig11", "ICLR 2020 Fig. 11", "", 6, "1,2,3,4,5,6",
    """Figure 11: clustering of influence maps and module hybrids of a GAN.

    \b
    Examples:
      tfcf fig11                                     # the committed face DCGAN (Table 1)
      tfcf fig11 --model face_dcgan                  # the pretrained face DCGAN
      tfcf fig11 --model dcgan:paper_celeba --weights g.weights.h5
    """, model=FACE_DCGAN)


@click.command("fig9")
@model_options(default=FACE_VAE)
@sampling_options()
@click.option("--ks", default="2,3,4,5,6", show_default=True, help="Numbers of clusters.")
@click.option("--repeats", type=click.IntRange(1), default=20, show_default=True,
              help="Random 3-way partitions per k.")
@latent_option
@outdir_options("outputs/fig9")
@click.pass_context
@cli_errors
def fig9(ctx, model_name, weights, layer, samples, pairs, ks, repeats, latents, outdir, seed,
         overwrite):
    """Figure 9: cluster stability (label consistency, template cosine), NMF vs k-means.

    \b
    Examples:
      tfcf fig9 --outdir outputs/fig9
      tfcf fig9 --repeats 50 --ks 2,3,4,5,6,7,8
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import tfcf
    from tfcf.io import save_figure
    from tfcf.plots import stability_figure

    spec = load_spec(ctx, model_name, weights, layer)
    values = [int(v) for v in ks.split(",") if v.strip()]
    drawn = draw_latents(spec, samples, seed, latents)
    step(f"[1/2] elementary influence maps of {spec.layer} ({drawn.source} latents)")
    maps = elementary_maps(spec, spec.layer, drawn.z, pairs, seed)
    step(f"[2/2] stability, k = {values}, {repeats} repeats, NMF and k-means")
    live = tfcf.modules.live_channels(maps)
    results = [tfcf.stability(maps[live], ks=values, method=method, repeats=repeats, seed=seed)
               for method in ("nmf", "kmeans")]
    save_figure(stability_figure(results, title=f"Cluster stability of {spec.layer} "
                                                f"({spec.name})"), outdir / "stability.png")
    finish(outdir, started, seed, {"model": model_name, "weights": weights,
                                    "layer": spec.layer, "samples": samples, "pairs": pairs,
                                    "ks": values, "repeats": repeats, "latents": drawn.source},
            {"figure": "ICLR 2020 Fig. 9", "generator": spec.description,
             "objective": (spec.card or {}).get("objective"), "latents": drawn.note,
             "nmf": results[0].to_dict(), "kmeans": results[1].to_dict(),
             "files": ["stability.png"]})


def _two_layer_command(name, figure, default_examples, doc):
    @click.command(name, help=doc)
    @model_options(default=FACE_BEGAN)
    @click.option("--layers", default=None,
                  help="Two successive layers, comma-separated.  [default: the model's pair]")
    @sampling_options()
    @click.option("--k", type=click.IntRange(1), default=3, show_default=True)
    @click.option("--examples", type=click.IntRange(1, 32), default=default_examples,
                  show_default=True)
    @outdir_options(f"outputs/{name}")
    @click.pass_context
    @cli_errors
    def command(ctx, model_name, weights, layer, layers, samples, pairs, k, examples, outdir,
                seed, overwrite):
        outdir, started = prepare(ctx, outdir, overwrite)
        import numpy as np

        from tfcf.io import save_figure
        from tfcf.plots import cluster_figure

        pair = tuple(layers.split(",")) if layers else None
        spec = load_spec(ctx, model_name, weights, layer or (pair[0] if pair else None))
        pair = pair or spec.layer_pair
        if len(pair) != 2:
            ctx.fail(f"--layers needs two layer names, got {pair!r}")
        drawn = draw_latents(spec, max(samples, 2 * examples), seed, "prior")
        all_maps = []
        for position, name_ in enumerate(pair):
            step(f"[{position + 1}/4] elementary influence maps of {name_}")
            all_maps.append(elementary_maps(spec, name_, drawn.z, pairs, seed))
        counts = [len(m) for m in all_maps]
        step(f"[3/4] one NMF clustering of both layers' maps into {k} modules")
        stacked = np.concatenate(all_maps)
        clustering, live, joint = cluster_live(stacked, k, seed)
        names = [f"{pair[0] if c < counts[0] else pair[1]}:{c if c < counts[0] else c - counts[0]}"
                 for c in live]
        save_figure(cluster_figure(stacked[live], clustering, channels=names,
                                   title=f"{figure}: clusters of {pair[0]} + {pair[1]}"),
                    outdir / "clusters.png")
        modules = [[[c for c in members if c < counts[0]],
                    [c - counts[0] for c in members if c >= counts[0]]] for members in joint]
        step("[4/4] hybrids intervening on both layers")
        result = module_hybrids(spec, pair, modules, drawn, examples, seed)
        save_hybrids(result, outdir, f"{figure}: module Cj of {pair[0]} and {pair[1]} from "
                                     "Original 2", spec, clustering.templates,
                     [sum(map(len, m)) for m in modules])
        finish(outdir, started, seed, {"model": model_name, "weights": weights,
                                        "layers": list(pair), "samples": samples,
                                        "pairs": pairs, "k": k, "examples": examples},
                {"figure": figure, "generator": spec.description,
                 "note": STAND_IN.format(wanted="BEGAN trained on CelebA")
                 if model_name == "face_dcgan" else "",
                 "modules": modules, "module_names": [f"C{j}" for j in range(k)],
                 "mean_abs_change_per_module": hybrid_changes(result),
                 "clustering": clustering.to_dict(),
                 "files": ["clusters.png", "hybrids.png"]})

    return command


fig4 = _two_layer_command("fig4", "ICLR 2020 Fig. 4", 4, """Figure 4: hybrids by intervening on one
    module in two successive layers (BEGAN in the paper).

    \b
    Examples:
      tfcf fig4                      # the quarter-width BEGAN trained here, conv4_a + conv4_b
      tfcf fig4 --model began:celeba64 --weights began.weights.h5
      tfcf fig4 --model face_dcgan --layers main.8,main.11
    """)
fig12 = _two_layer_command("fig12", "ICLR 2020 Fig. 12", 10, """Figure 12: a larger collection of
    two-layer module hybrids (BEGAN in the paper).

    \b
    Examples:
      tfcf fig12 --model began:celeba64 --weights began.weights.h5 --examples 12
    """)


@click.command("draft-fig7")
@model_options(default=CIFAR_DCGAN)
@sampling_options()
@click.option("--k", type=click.IntRange(1), default=3, show_default=True)
@click.option("--examples", type=click.IntRange(1, 32), default=6, show_default=True)
@outdir_options("outputs/draft-fig7")
@click.pass_context
@cli_errors
def draft_fig7(ctx, model_name, weights, layer, samples, pairs, k, examples, outdir, seed,
               overwrite):
    """2019 draft Figure 7: the variance-statistic pipeline in the CIFAR-10 configuration.

    \b
    Examples:
      tfcf draft-fig7                                # the committed Fashion-MNIST GAN
      tfcf draft-fig7 --model dcgan:paper_cifar10 --weights cifar_g.weights.h5
    """
    modules_experiment(ctx, "ICLR 2019 draft Fig. 7", outdir, model_name, weights, layer,
                       samples, pairs, k, examples, [], seed, overwrite,
                       "GAN trained on CIFAR-10 (3 deconvolution layers)", statistic="variance")
