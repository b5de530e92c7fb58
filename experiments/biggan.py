"""ICLR 2020 section 4.2: BigGAN-deep cross-class hybrids and the robustness of ImageNet classifiers.

    tfcf fig5                                  # Figs. 1, 5, 13, 15: hybrids for Gblocks 4-7
    tfcf fig6                                  # Fig. 6: recognition rates, pixel distances
    tfcf fig14 ; tfcf fig16                    # entropy histograms (koala/teddy, cock/ostrich)
    tfcf table3                                # four classifiers on chosen hybrids

All of them share one set of hybrids per (module, class pair, Gblocks, settings): for each
Gblock, elementary influence maps of its conv1 and conv2 over samples of both classes, one NMF
clustering into --k modules, then hybrids both ways (class A samples with a module from class B
samples and the reverse). The set is cached in ``$TFCF_CACHE_DIR/biggan`` so the later
commands reuse it.
"""

from __future__ import annotations

import click

from tfcf.experiments._common import cli_errors, finish, outdir_options, prepare, step

DEFAULT_BLOCKS = "4,5,6,7"
_LOADED = {}  # (handle, folder) -> BigGAN, so one process loads a module once


def _pair(text):
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter(f"a class pair is two ImageNet names or ids, 'A,B'; got {text!r}")
    return tuple(parts)


def _blocks(text):
    try:
        values = [int(b) for b in str(text).split(",") if b.strip()]
    except ValueError:
        raise click.BadParameter(f"Gblocks are comma-separated integers, got {text!r}") from None
    if not values:
        raise click.BadParameter("give at least one Gblock")
    return values


def biggan_options(function):
    """--biggan, --blocks, --truncation, --k, --samples, --pairs, --examples."""
    options = [
        click.option("--examples", type=click.IntRange(1), default=8, show_default=True,
                     help="Hybrid pairs per direction, Gblock and module."),
        click.option("--pairs", type=click.IntRange(1), default=64, show_default=True,
                     help="Pairs per elementary influence map."),
        click.option("--samples", type=click.IntRange(2), default=64, show_default=True,
                     help="Samples (half per class) the pairs are drawn from."),
        click.option("--k", type=click.IntRange(1), default=3, show_default=True,
                     help="NMF modules per Gblock."),
        click.option("--truncation", type=click.FloatRange(0, 1, min_open=True), default=0.5,
                     show_default=True, help="Shared truncation of all samples."),
        click.option("--blocks", default=DEFAULT_BLOCKS, show_default=True,
                     help="Gblocks to intervene on (0-based module scopes: n = GBlock_n)."),
        click.option("--biggan", "handle", default=None,
                     help="TF-Hub handle, or a local folder holding the unpacked module.  "
                          "[default: tfcf.biggan.BIGGAN_HANDLES[256], biggan-deep-256/1]"),
    ]
    for option in options:
        function = option(function)
    return function


def classifier_option(default):
    return click.option(
        "--classifier", "classifiers", multiple=True, default=default, show_default=True,
        help="NAME or NAME=HANDLE_OR_FOLDER; NAME among inception_v3, inception_resnet_v2, "
             "nasnet_large, resnet_v2_50. Repeat for several.")


def hybrid_set(handle, pair, blocks, truncation, k, samples, pairs, examples, seed):
    """(BigGAN, the cached cross-class hybrid set): :func:`tfcf.biggan.cross_class_hybrids`."""
    from tfcf.biggan import BIGGAN_HANDLES, cross_class_hybrids, load_biggan
    from tfcf.hub import resolve

    handle = handle or BIGGAN_HANDLES[256]
    loaded = (handle, str(resolve(handle)))
    if loaded not in _LOADED:
        _LOADED[loaded] = load_biggan(handle)
    biggan = _LOADED[loaded]
    return biggan, cross_class_hybrids(biggan, pair, blocks, truncation, k, samples, pairs,
                                       examples, seed, report=step)


def _hybrids_of(data, block):
    """All hybrids of a Gblock: [k, 2 * examples, H, W, 3] (A-based, then B-based)."""
    import numpy as np

    return np.concatenate([data[f"ab_{block}"], data[f"ba_{block}"]], axis=1)


def _load_classifiers(specs):
    from tfcf.imagenet import load_classifier

    classifiers = []
    for spec in specs:
        name, _, handle = spec.partition("=")
        classifiers.append(load_classifier(name.strip(), handle=handle.strip() or None))
    return classifiers


def _predict_all(classifier, images):
    """Probabilities [..., 1000] for images [..., H, W, 3] with any leading shape."""
    flat = images.reshape((-1,) + images.shape[-3:])
    return classifier.predict(flat).reshape(images.shape[:-3] + (1000,))


def _common_params(handle, pair, blocks, truncation, k, samples, pairs, examples):
    from tfcf.biggan import BIGGAN_HANDLES

    return {"biggan": handle or BIGGAN_HANDLES[256], "pair": list(pair), "blocks": blocks,
            "truncation": truncation, "k": k, "samples": samples, "pairs": pairs,
            "examples": examples}


@click.command("fig5")
@biggan_options
@click.option("--pair", "pair_list", multiple=True, default=("koala,teddy", "cock,ostrich"),
              show_default=True, help="Class pair A,B (ImageNet names or ids); repeat.")
@click.option("--show", type=click.IntRange(1), default=4, show_default=True,
              help="Example rows per figure.")
@outdir_options("outputs/fig5")
@click.pass_context
@cli_errors
def fig5(ctx, handle, blocks, truncation, k, samples, pairs, examples, pair_list, show, outdir,
         seed, overwrite):
    """Figs. 1, 5, 13 and 15: BigGAN-deep hybrids across two classes, per Gblock and module.

    Each figure is one class pair and one Gblock: rows are example pairs; columns Original 1
    (class A), the hybrids of Original 1 with module j taken from Original 2, and Original 2.

    \b
    Examples:
      tfcf fig5                                     # koala/teddy and cock/ostrich, Gblocks 4-7
      tfcf fig5 --pair 207,208 --blocks 6 --k 4
      TFHUB_CACHE_DIR=/data/tfhub tfcf fig5 --biggan https://tfhub.dev/deepmind/biggan-deep-128/1
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    from tfcf.imagenet import class_name
    from tfcf.io import save_figure
    from tfcf.plots import cluster_figure, image_grid

    block_list = _blocks(blocks)
    files, summary = [], {}
    for pair_text in pair_list:
        pair = _pair(pair_text)
        biggan, data = hybrid_set(handle, pair, block_list, truncation, k, samples, pairs,
                                  examples, seed)
        names = [class_name(i) for i in data["ids"]]
        tag = "-".join(n.replace(" ", "_") for n in names)
        for block in block_list:
            rows = min(show, examples)
            grid = np.concatenate([data["originals_a"][:rows, None],
                                   np.moveaxis(data[f"ab_{block}"][:, :rows], 0, 1),
                                   data["originals_b"][:rows, None]], axis=1)
            titles = ([f"Original 1\n({names[0]})"] + [f"Hybrid {j + 1}" for j in range(k)]
                      + [f"Original 2\n({names[1]})"])
            name = f"hybrids_{tag}_gblock{block}.png"
            save_figure(image_grid(grid, column_titles=titles, title=(
                f"BigGAN-deep Gblock {block} (GBlock_{block}): {names[0]} samples with module j "
                f"of conv1+conv2 from {names[1]} samples")), outdir / name)
            files.append(name)
            maps = data[f"maps_{block}"]
            modules = data["modules"][str(block)]
            from tfcf.modules import cluster

            clustering = cluster(maps, k, seed=seed)
            name = f"clusters_{tag}_gblock{block}.png"
            save_figure(cluster_figure(maps, clustering, channels=list(data[f"names_{block}"]),
                                       title=f"Gblock {block}: influence-map modules"),
                        outdir / name)
            files.append(name)
            summary[f"{tag}/gblock{block}"] = {
                "module_sizes": [[len(c) for c in module] for module in modules],
                "modules": modules,
                "mean_abs_change_vs_original_1": [
                    float(np.abs(data[f"ab_{block}"][j] - data["originals_a"]).mean())
                    for j in range(k)],
            }
    finish(outdir, started, seed,
            _common_params(handle, pair_list, block_list, truncation, k, samples, pairs,
                           examples),
            {"figure": "ICLR 2020 Figs. 1, 5, 13, 15", "gblock_numbering":
             "0-based module scopes: Gblock n = Generator/GBlock_n", "results": summary,
             "files": files})


@click.command("fig6")
@biggan_options
@click.option("--pair", default="koala,teddy", show_default=True, help="Class pair A,B.")
@classifier_option(("inception_v3", "inception_resnet_v2", "nasnet_large", "resnet_v2_50"))
@outdir_options("outputs/fig6")
@click.pass_context
@cli_errors
def fig6(ctx, handle, blocks, truncation, k, samples, pairs, examples, pair, classifiers,
         outdir, seed, overwrite):
    """Fig. 6: how often classifiers recognise an original class in hybrids, per Gblock.

    For each classifier and Gblock: the top-1 rate of the more recognised of the two original
    classes over all hybrids (both directions, all modules) with its binomial standard error;
    and the mean absolute pixel difference between each hybrid and the original it modifies.

    \b
    Examples:
      tfcf fig6
      tfcf fig6 --classifier resnet_v2_50=/data/tfhub/resnet_v2_50 --blocks 5,6
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    from tfcf.imagenet import class_name
    from tfcf.io import atomic_write, save_figure
    from tfcf.metrics import recognition_rate
    from tfcf.plots_robustness import robustness_figure

    block_list = _blocks(blocks)
    pair = _pair(pair)
    _, data = hybrid_set(handle, pair, block_list, truncation, k, samples, pairs, examples, seed)
    ids = [int(i) for i in data["ids"]]
    distances = {}
    for block in block_list:
        changes = [np.abs(data[f"ab_{block}"] - data["originals_a"][None]),
                   np.abs(data[f"ba_{block}"] - data["originals_b"][None])]
        per_image = np.concatenate([c.mean(axis=(2, 3, 4)).ravel() for c in changes]) / 2.0
        distances[block] = (float(per_image.mean()),
                            float(per_image.std(ddof=1) / np.sqrt(len(per_image)))
                            if len(per_image) > 1 else 0.0)
    rows, rates = [], {}
    for classifier in _load_classifiers(classifiers):
        step(f"    {classifier.name}: classifying originals and hybrids")
        originals = np.concatenate([data["originals_a"], data["originals_b"]])
        truth = np.repeat(ids, len(data["originals_a"]))
        accuracy = float(np.mean(_predict_all(classifier, originals).argmax(-1) == truth))
        rates[classifier.name] = {"originals_accuracy": accuracy, "blocks": {}}
        for block in block_list:
            predicted = _predict_all(classifier, _hybrids_of(data, block)).argmax(-1)
            result = recognition_rate(predicted, ids)
            rates[classifier.name]["blocks"][block] = result
            rows.append(f"{classifier.name},{block},{class_name(result['class'])},"
                        f"{result['rate']:.4f},{result['stderr']:.4f},{result['count']},"
                        f"{distances[block][0]:.5f}")
    with atomic_write(outdir / "fig6.csv", "w") as handle_:
        handle_.write("classifier,gblock,most_recognised,rate,stderr,hybrids,"
                      "mean_abs_pixel_difference\n" + "\n".join(rows) + "\n")
    names = [class_name(i) for i in ids]
    save_figure(robustness_figure(block_list, rates, distances, title=(
        f"Recognition of {names[0]} or {names[1]} in BigGAN-deep hybrids")), outdir / "fig6.png")
    finish(outdir, started, seed,
            dict(_common_params(handle, pair, block_list, truncation, k, samples, pairs,
                                examples), classifiers=list(classifiers)),
            {"figure": "ICLR 2020 Fig. 6", "classes": names, "recognition": rates,
             "pixel_distance": {str(b): {"mean": d[0], "stderr": d[1]}
                                for b, d in distances.items()},
             "pixel_distance_units": "mean |hybrid - original| with images scaled to [0, 1]",
             "files": ["fig6.png", "fig6.csv"]})


def _entropy_command(name, figure, default_pair):
    @click.command(name)
    @biggan_options
    @click.option("--pair", default=default_pair, show_default=True, help="Class pair A,B.")
    @classifier_option(("resnet_v2_50",))
    @click.option("--top", type=click.IntRange(2, 1000), default=10, show_default=True,
                  help="Classes kept (top-ranked over all hybrids) before renormalising.")
    @outdir_options(f"outputs/{name}")
    @click.pass_context
    @cli_errors
    def command(ctx, handle, blocks, truncation, k, samples, pairs, examples, pair, classifiers,
                top, outdir, seed, overwrite):
        outdir, started = prepare(ctx, outdir, overwrite)
        import numpy as np

        from tfcf.imagenet import class_name
        from tfcf.io import atomic_write, save_figure
        from tfcf.metrics import top_class_entropy
        from tfcf.plots_robustness import entropy_figure

        block_list = _blocks(blocks)
        pair = _pair(pair)
        _, data = hybrid_set(handle, pair, block_list, truncation, k, samples, pairs, examples,
                             seed)
        results = {}
        for classifier in _load_classifiers(classifiers):
            step(f"    {classifier.name}: classifying hybrids")
            probabilities = np.stack([_predict_all(classifier, _hybrids_of(data, b))
                                      for b in block_list])  # [blocks, k, N, 1000]
            entropies, classes = top_class_entropy(probabilities.reshape(-1, 1000), top=top)
            entropies = entropies.reshape(probabilities.shape[:3])
            lines = [f"{b},{j + 1},{i},{entropies[p, j, i]:.6f}"
                     for p, b in enumerate(block_list) for j in range(k)
                     for i in range(entropies.shape[2])]
            with atomic_write(outdir / f"entropy_{classifier.name}.csv", "w") as handle_:
                handle_.write("gblock,module,hybrid,entropy_nats\n" + "\n".join(lines) + "\n")
            save_figure(entropy_figure(entropies, block_list, top, title=(
                f"{figure}: entropy of {classifier.name} on {pair[0]}/{pair[1]} hybrids "
                f"(top {top} classes, renormalised)")), outdir / f"entropy_{classifier.name}.png")
            results[classifier.name] = {
                "classes": [class_name(c) for c in classes],
                "mean_entropy": {str(b): [float(entropies[p, j].mean()) for j in range(k)]
                                 for p, b in enumerate(block_list)},
            }
        finish(outdir, started, seed,
                dict(_common_params(handle, pair, block_list, truncation, k, samples, pairs,
                                    examples), classifiers=list(classifiers), top=top),
                {"figure": figure, "entropy_units": "nats", "results": results,
                 "files": [f"entropy_{c.partition('=')[0]}.{ext}" for c in classifiers
                           for ext in ("png", "csv")]})

    command.help = f"""{figure}: histograms of the entropy of a classifier's top-{{top}} class
    probabilities (renormalised) over hybrids; columns Gblocks, rows modules.

    The classes kept are the --top classes with the largest mean probability over all
    hybrids of the figure.

    \b
    Examples:
      tfcf {name}
      tfcf {name} --classifier inception_v3 --blocks 4,5
    """
    return command


fig14 = _entropy_command("fig14", "ICLR 2020 Fig. 14", "koala,teddy")
fig16 = _entropy_command("fig16", "ICLR 2020 Fig. 16", "cock,ostrich")


@click.command("table3")
@biggan_options
@click.option("--pair", default="koala,teddy", show_default=True, help="Class pair A,B.")
@click.option("--block", type=int, default=5, show_default=True,
              help="Gblock whose hybrids are shown (must be among --blocks or is added).")
@click.option("--count", type=click.IntRange(1), default=3, show_default=True,
              help="Hybrids chosen at random (seeded).")
@classifier_option(("resnet_v2_50", "inception_v3", "nasnet_large", "inception_resnet_v2"))
@outdir_options("outputs/table3")
@click.pass_context
@cli_errors
def table3(ctx, handle, blocks, truncation, k, samples, pairs, examples, pair, block, count,
           classifiers, outdir, seed, overwrite):
    """Table 3 and Fig. 17: the top-1 decision of each classifier on randomly chosen hybrids.

    \b
    Examples:
      tfcf table3
      tfcf table3 --block 6 --count 5
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    from tfcf.imagenet import class_name
    from tfcf.io import atomic_write, save_figure
    from tfcf.plots_robustness import decision_table_figure

    block_list = _blocks(blocks)
    if block not in block_list:
        block_list.append(block)
    pair = _pair(pair)
    _, data = hybrid_set(handle, pair, block_list, truncation, k, samples, pairs, examples, seed)
    hybrids = _hybrids_of(data, block)  # [k, 2E, ...]
    flat = hybrids.reshape((-1,) + hybrids.shape[2:])
    chosen = np.sort(np.random.default_rng(seed).choice(len(flat), min(count, len(flat)),
                                                        replace=False))
    images = flat[chosen]
    decisions = {}
    for classifier in _load_classifiers(classifiers):
        probabilities = classifier.predict(images)
        decisions[classifier.name] = [
            {"class": class_name(int(p.argmax())), "id": int(p.argmax()),
             "probability": float(p.max())} for p in probabilities]
    lines = ["image,module,base," + ",".join(decisions)]
    described = []
    for row, index in enumerate(chosen):
        module, within = divmod(int(index), hybrids.shape[1])
        base = class_name(data["ids"][0 if within < hybrids.shape[1] // 2 else 1])
        described.append({"module": module + 1, "base": base})
        lines.append(f"{row + 1},{module + 1},{base}," + ",".join(
            f"{d[row]['class']} ({d[row]['probability']:.2f})" for d in decisions.values()))
    with atomic_write(outdir / "table3.csv", "w") as handle_:
        handle_.write("\n".join(lines) + "\n")
    save_figure(decision_table_figure(images, decisions, described, title=(
        f"Table 3 / Fig. 17: classifier decisions on {pair[0]}+{pair[1]} hybrids, "
        f"Gblock {block}")), outdir / "table3.png")
    finish(outdir, started, seed,
            dict(_common_params(handle, pair, block_list, truncation, k, samples, pairs,
                                examples), block=block, count=count,
                 classifiers=list(classifiers)),
            {"figure": "ICLR 2020 Table 3 / Fig. 17", "images": described,
             "decisions": decisions, "files": ["table3.png", "table3.csv"]})
