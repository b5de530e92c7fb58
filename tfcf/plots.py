"""Matplotlib figures: image grids of originals and hybrids.

    fig = tfcf.plots.image_grid(images, column_titles=["Original 1", "Original 2", "Hybrid"])
    tfcf.io.save_figure(fig, "out/hybrids.png")
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def to_display(images, value_range=(-1.0, 1.0)):
    """Map images from ``value_range`` to [0, 1] for display (grayscale kept 2-D).

    Example::

        shown = to_display(generator_output)   # [-1, 1] -> [0, 1]
    """
    low, high = value_range
    images = (np.asarray(images, dtype="float32") - low) / (high - low)
    images = np.clip(images, 0.0, 1.0)
    if images.shape[-1] == 1:
        images = images[..., 0]
    return images


def image_grid(images, column_titles=None, row_titles=None, title=None, value_range=(-1.0, 1.0),
               cell_size=1.3, column_groups=None):
    """A grid figure: ``images[row][column]`` (each HxWx3 or HxW), titled columns and rows.

    Example::

        fig = image_grid(np.stack([z1_images, z2_images, hybrids], axis=1),
                         column_titles=["Original 1", "Original 2", "Hybrid"])

    ``column_groups`` optionally colours column titles: a list of group indices per column.
    """
    images = np.asarray(images)
    if images.ndim not in (4, 5):
        raise ValueError(f"images must be [rows, columns, H, W(, C)], got shape {images.shape}")
    rows, columns = images.shape[:2]
    if column_titles is not None and len(column_titles) != columns:
        raise ValueError(f"{len(column_titles)} column titles for {columns} columns")
    figure, axes = plt.subplots(
        rows, columns, figsize=(cell_size * columns, cell_size * rows + (0.5 if title else 0.2)),
        squeeze=False,
    )
    palette = plt.get_cmap("tab10")
    for r in range(rows):
        for c in range(columns):
            axis = axes[r][c]
            picture = to_display(images[r, c], value_range)
            axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0 and column_titles is not None:
                color = "black" if column_groups is None else palette(column_groups[c] % 10)
                axis.set_title(column_titles[c], fontsize=8, color=color)
            if c == 0 and row_titles is not None:
                axis.set_ylabel(row_titles[r], fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- modules (Sec. 3.4)

def cluster_figure(maps, clustering, examples=4, title=None, cell_size=1.5, channels=None,
                   normalise=False):
    """One row per module: its template (colour bar) and ``examples`` of its influence maps.

    Example::

        clustering = tfcf.modules.cluster(influence_maps, k=3)
        fig = cluster_figure(influence_maps, clustering, examples=4)

    The examples are the module's channels with the largest weight (ties, e.g. k-means one-hot
    weights, broken by the cosine similarity of the map to the template), all on one absolute
    colour scale (``normalise=True``: each divided by its own maximum, labelled so); module j
    is named ``Cj`` as in the paper's Table 2 (C0..Ck-1), the row "Cj (n channels)".
    ``channels`` names the maps in the titles (e.g. the original indices of the live channels
    that were clustered); default the clustering's own layer channels (``clustering.channels``).
    """
    maps = np.asarray(maps, dtype="float64")
    if maps.ndim != 3:
        raise ValueError(f"maps must be [C, H, W], got shape {maps.shape}")
    if maps.shape[0] != len(clustering.labels):
        raise ValueError(f"{maps.shape[0]} maps for a clustering of {len(clustering.labels)} "
                         f"channels")
    if not isinstance(examples, (int, np.integer)) or examples < 0:
        raise ValueError(f"examples must be a non-negative integer, got {examples!r}")
    k = clustering.k
    figure, axes = plt.subplots(k, 1 + examples, squeeze=False, layout="constrained",
                                figsize=(cell_size * (1 + examples) + 1.6,
                                         cell_size * k + (0.5 if title else 0.2)))
    flat = maps.reshape(len(maps), -1)
    last_shown = None
    chosen_rows = []
    for j in range(k):
        members = np.flatnonzero(clustering.labels == j)      # rows of maps (not channels)
        template = clustering.templates[j].reshape(-1)
        similarity = flat[members] @ template / np.maximum(
            np.linalg.norm(flat[members], axis=1) * np.linalg.norm(template), 1e-300)
        chosen_rows.append(
            members[np.lexsort((-similarity, -clustering.weights[members, j]))][:examples])
    shown_rows = np.concatenate(chosen_rows) if chosen_rows else np.array([], dtype=int)
    peak = float(maps[shown_rows].max()) if len(shown_rows) else 1.0
    for j in range(k):
        template = clustering.templates[j]
        picture = axes[j][0].imshow(template, cmap="magma", vmin=0)
        figure.colorbar(picture, ax=axes[j][0], fraction=0.046, pad=0.04, label="template")
        axes[j][0].set_title(f"C{j} template", fontsize=8)
        members = np.flatnonzero(clustering.labels == j)
        axes[j][0].set_ylabel(f"C{j} ({len(members)} channels)", fontsize=8)
        chosen = chosen_rows[j]
        shown = None
        for column in range(examples):
            axis = axes[j][1 + column]
            if column >= len(chosen):
                axis.axis("off")
                continue
            channel = chosen[column]
            if normalise:
                own = maps[channel].max()
                shown = axis.imshow(maps[channel] / (own if own > 0 else 1.0), cmap="viridis",
                                    vmin=0, vmax=1)
            else:
                shown = axis.imshow(maps[channel], cmap="viridis", vmin=0,
                                    vmax=peak if peak > 0 else 1.0)
            name = clustering.channels[channel] if channels is None else channels[channel]
            axis.set_title(f"ch {name}", fontsize=8)
        if shown is not None:
            last_shown = shown
        for axis in axes[j]:
            axis.set_xticks([])
            axis.set_yticks([])
    if last_shown is not None and examples:   # one bar: every example map shares its scale
        figure.colorbar(last_shown, ax=[a for row in axes for a in row[1:]], fraction=0.03,
                        pad=0.02, label="influence / max (per map)" if normalise else
                        "influence (one scale for all maps)")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def module_hybrids_figure(originals, hybrids, templates=None, reals=None, value_range=(-1.0, 1.0),
                          title=None, cell_size=1.25, sizes=None):
    """Module hybrids with what each changed: per module Cj a row of hybrids and a row of
    |hybrid - Original 1|, with the module's template beside them.

    Example::

        fig = module_hybrids_figure((original_1, original_2), hybrids, clustering.templates)

    ``originals``: (Original 1, Original 2), each [N, H, W, C] in ``value_range``: the base and
    source samples (for a VAE fed encoder means, their reconstructions); ``hybrids``:
    [k, N, H, W, C], module j taken from Original 2 into Original 1; ``templates``: [k, h, w]
    (drawn in a first column); ``reals``: optional (Real 1, Real 2) uint8 images the originals
    reconstruct, shown above them. The |difference| rows (mean over colours, in
    ``value_range`` units) share one colour scale and colour bar.
    """
    original_1, original_2 = (np.asarray(o) for o in originals)
    hybrids = np.asarray(hybrids)
    if hybrids.ndim != 5 or hybrids.shape[1:] != original_1.shape:
        raise ValueError(f"hybrids must be [k, N, H, W, C] with N, H, W, C as Original 1 "
                         f"{original_1.shape}; got {hybrids.shape}")
    k, count = hybrids.shape[:2]
    top = []
    if reals is not None:
        top += [("Real 1", np.asarray(reals[0]), (0, 255))]
    top += [("Original 1" if reals is None else "Original 1\n(reconstruction)", original_1,
             value_range)]
    if reals is not None:
        top += [("Real 2", np.asarray(reals[1]), (0, 255))]
    top += [("Original 2" if reals is None else "Original 2\n(reconstruction)", original_2,
             value_range)]
    differences = np.abs(hybrids.astype("float64") - original_1[None].astype("float64"))
    differences = differences.mean(axis=-1) if differences.ndim == 5 else differences
    high = float(differences.max()) or 1.0
    rows = len(top) + 2 * k
    figure, axes = plt.subplots(rows, count + 1, squeeze=False, layout="constrained",
                                figsize=(cell_size * (count + 1) + 1.0,
                                         cell_size * rows + (0.5 if title else 0.2)))
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    for r, (label, images, scale) in enumerate(top):
        axes[r][0].axis("off")
        for c in range(count):
            picture = to_display(images[c], scale)
            axes[r][c + 1].imshow(picture, cmap="gray" if picture.ndim == 2 else None,
                                  vmin=0, vmax=1)
        axes[r][1].set_ylabel(label, fontsize=8)
    difference_axes, shown = [], None
    for j in range(k):
        row = len(top) + 2 * j
        size = f", {sizes[j]} ch" if sizes is not None else ""
        if templates is not None:
            axes[row][0].imshow(np.asarray(templates[j]), cmap="magma", vmin=0)
            axes[row][0].set_title(f"C{j} template", fontsize=7)
        else:
            axes[row][0].axis("off")
        axes[row + 1][0].axis("off")
        for c in range(count):
            picture = to_display(hybrids[j, c], value_range)
            axes[row][c + 1].imshow(picture, cmap="gray" if picture.ndim == 2 else None,
                                    vmin=0, vmax=1)
            shown = axes[row + 1][c + 1].imshow(differences[j, c], cmap="magma", vmin=0,
                                                vmax=high)
            difference_axes.append(axes[row + 1][c + 1])
        axes[row][1].set_ylabel(f"C{j} hybrid{size}", fontsize=8)
        axes[row + 1][1].set_ylabel(f"C{j} |hybrid -\nOriginal 1|", fontsize=8)
    if shown is not None:
        figure.colorbar(shown, ax=difference_axes, fraction=0.03, pad=0.01,
                        label="|hybrid - Original 1| (mean over colours)")
    for c in range(count):
        axes[0][c + 1].set_title(f"pair {c + 1}", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


_METHOD_NAMES = {"nmf": "NMF", "kmeans": "k-means"}


def stability_figure(results, title=None):
    """Label consistency and template cosine similarity vs number of clusters (Supp. Fig. 9).

    Example::

        fig = stability_figure([tfcf.modules.stability(maps, method="nmf"),
                                tfcf.modules.stability(maps, method="kmeans")])

    ``results`` is one :class:`tfcf.modules.Stability` or a list of them (one line each, error
    bars one standard deviation across repeats).
    """
    if hasattr(results, "consistency"):
        results = [results]
    results = list(results)
    if not results:
        raise ValueError("results is empty; give at least one stability result")
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4), layout="constrained")
    for result in results:
        name = _METHOD_NAMES.get(result.method, result.method)
        label = f"{name} ({result.repeats} repeats)"
        left.errorbar(result.ks, result.consistency_mean, yerr=result.consistency_std,
                      marker="o", capsize=3, label=label)
        right.errorbar(result.ks, result.cosine_mean, yerr=result.cosine_std,
                       marker="o", capsize=3, label=label)
    ks = sorted({k for result in results for k in result.ks})
    for axis, name in ((left, "label consistency"), (right, "template cosine similarity")):
        axis.set_xlabel("number of clusters")
        axis.set_ylabel(name)
        axis.set_title(name.capitalize(), fontsize=10)
        axis.set_xticks(ks)
        axis.set_ylim(0, 1.05)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower left")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def magnitude_figure(ks, mean_influence, module_sizes, module_influences, title=None):
    """Magnitude of causal effects (paper Supp. Fig. 8 right): per k, and per module vs size.

    Example::

        fig = magnitude_figure([2, 3, 4], [0.12, 0.09, 0.07],
                               module_sizes=[40, 24, 30, 20, 14], module_influences=[...])

    Top: average module influence vs number of clusters. Bottom: individual influence of each
    module vs its number of channels, with a dashed least-squares line (slope and R^2 in the
    legend). ``module_sizes`` / ``module_influences`` are flat sequences, or one sequence per k
    (then the points are coloured by k).
    """
    ks = np.asarray(ks)
    mean_influence = np.asarray(mean_influence, dtype="float64")
    if ks.shape != mean_influence.shape or ks.ndim != 1:
        raise ValueError(f"ks {ks.shape} and mean_influence {mean_influence.shape} must be "
                         f"1-D of the same length")
    nested = len(module_sizes) > 0 and np.ndim(module_sizes[0]) > 0
    groups_x = [np.asarray(g, dtype="float64") for g in module_sizes] if nested else [
        np.asarray(module_sizes, dtype="float64")]
    groups_y = [np.asarray(g, dtype="float64") for g in module_influences] if nested else [
        np.asarray(module_influences, dtype="float64")]
    if len(groups_x) != len(groups_y) or any(x.shape != y.shape
                                             for x, y in zip(groups_x, groups_y)):
        raise ValueError("module_sizes and module_influences must have the same lengths")
    if nested and len(groups_x) != len(ks):
        raise ValueError(f"{len(groups_x)} groups of modules for {len(ks)} values of k")
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(4.5, 6), layout="constrained")
    top.plot(ks, mean_influence, marker="o")
    top.set_xlabel("number of clusters")
    top.set_ylabel("average module influence")
    top.set_title("Average influence of modules", fontsize=10)
    top.set_xticks(ks)
    for index, (x, y) in enumerate(zip(groups_x, groups_y)):
        bottom.scatter(x, y, s=18, label=f"k = {ks[index]}" if nested else "modules")
    sizes, influences = np.concatenate(groups_x), np.concatenate(groups_y)
    if len(np.unique(sizes)) >= 2:
        from tfcf.effects import regression

        fit = regression(sizes, influences)
        line = np.linspace(sizes.min(), sizes.max(), 2)
        bottom.plot(line, fit["slope"] * line + fit["intercept"], "k--",
                    label=f"least squares: slope {fit['slope']:.3g}, $R^2$ = {fit['r2']:.2f}")
    bottom.set_xlabel("number of channels in module")
    bottom.set_ylabel("individual influence")
    bottom.set_title("Influence of each module", fontsize=10)
    bottom.legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def influence_maps_figure(maps, channels=None, columns=8, title=None, cell_size=1.2):
    """A grid of elementary influence maps (paper Supp. Fig. 3b), one shared colour bar.

    Example::

        fig = influence_maps_figure(influence_maps, channels=range(16), columns=8)
    """
    maps = np.asarray(maps, dtype="float64")
    if maps.ndim != 3:
        raise ValueError(f"maps must be [C, H, W], got shape {maps.shape}")
    channels = np.arange(len(maps)) if channels is None else np.asarray(list(channels), dtype=int)
    if len(channels) == 0:
        raise ValueError("channels is empty")
    outside = channels[(channels < 0) | (channels >= len(maps))]
    if len(outside):
        raise ValueError(f"channels {outside.tolist()} out of range; valid: 0 to {len(maps) - 1}")
    if not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    columns = min(columns, len(channels))
    rows = -(-len(channels) // columns)
    figure, axes = plt.subplots(rows, columns, squeeze=False, layout="constrained",
                                figsize=(cell_size * columns + 1.0,
                                         cell_size * rows + (0.5 if title else 0.2)))
    low, high = min(0.0, maps[channels].min()), maps[channels].max()
    picture, shown = None, []
    for index, axis in enumerate(axes.flat):
        if index >= len(channels):
            figure.delaxes(axis)
            continue
        shown.append(axis)
        picture = axis.imshow(maps[channels[index]], cmap="viridis", vmin=low, vmax=high)
        axis.set_title(f"ch {channels[index]}", fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(picture, ax=shown, label="influence")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def model1_figure(scores, regions, templates, title=None):
    """Model 1 identifiability: ARI per draw for each pipeline, true regions vs NMF templates.

    Example::

        fig = model1_figure({"paper": [1.0, 1.0]}, toy.regions, clustering.templates)

    ``scores`` maps a pipeline name to its adjusted Rand indices (one per draw); ``regions`` is
    the bool [K, H, W] of the true supports I_k and ``templates`` [K, H, W] the templates found
    on the first draw.
    """
    regions = np.asarray(regions, dtype="float32")
    templates = np.asarray(templates, dtype="float32")
    count = len(regions)
    figure = plt.figure(figsize=(max(6.0, 1.6 * count + 1), 5.6), layout="constrained")
    grid = figure.add_gridspec(3, count)
    scores_axis = figure.add_subplot(grid[0, :])
    for offset, (name, values) in enumerate(scores.items()):
        draws = np.arange(len(values))
        width = 0.8 / len(scores)
        scores_axis.bar(draws + offset * width, values, width=width, label=name)
    scores_axis.set_xlabel("draw of Model 1's parameters")
    scores_axis.set_xticks(np.arange(max(len(v) for v in scores.values())))
    scores_axis.set_ylabel("adjusted Rand index")
    scores_axis.set_ylim(min(0.0, min(min(v) for v in scores.values())), 1.05)
    scores_axis.set_title("Recovery of the true partition (Prop. 3 predicts 1)", fontsize=10)
    scores_axis.legend(fontsize=7, loc="lower right")
    for k in range(count):
        for row, (pictures, label) in enumerate(((regions, "true region $I_%d$"),
                                                 (templates, "matched NMF template %d"))):
            axis = figure.add_subplot(grid[1 + row, k])
            image = axis.imshow(pictures[k], cmap="viridis")
            axis.set_title(label % (k + 1), fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
            if k == count - 1:
                figure.colorbar(image, ax=axis, fraction=0.046)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def distance_table_figure(names, distances, title=None, reference=None, label="FID / FID(R, G)",
                          reference_names=None, floor=None):
    """Lower-triangular table of pairwise distances as an annotated heat map (ICLR 2020 Table 2).

    Example::

        fig = distance_table_figure(["R", "G", "G'", "C0"], normalised, floor=("G'", "G"),
                                    reference=paper, reference_names=["R", "G", "C0"])

    ``distances`` is a symmetric (n, n) array; only the strict lower triangle is shown, rows and
    columns named by ``names``, coloured on one scale from 0. ``floor`` (optional) names the two
    sets whose distance is the sampling noise floor (e.g. two independent samples G and G'): its
    cell reads "noise floor", every other cell whose value is at or below it reads "within
    noise", and the colour bar marks it. ``reference`` (optional) is the paper's symmetric table
    on ``reference_names`` (default ``names``), NaN where it gave none; it is drawn as a separate
    text-only panel, never on our colour scale (sets it has no value for are left out).
    """
    distances = np.asarray(distances, dtype="float64")
    names = list(names)
    count = len(names)
    if distances.shape != (count, count):
        raise ValueError(f"distances has shape {distances.shape}, expected {(count, count)} for names {names}")
    floor_cell, floor_value = None, None
    if floor is not None:
        missing = [name for name in floor if name not in names]
        if len(floor) != 2 or missing:
            raise ValueError(f"floor must be two of the names {names}, got {floor!r}")
        a, b = sorted((names.index(floor[0]), names.index(floor[1])), reverse=True)
        floor_cell, floor_value = (a, b), distances[a, b]
    panels = None
    if reference is not None:
        reference_names = names if reference_names is None else list(reference_names)
        reference = np.asarray(reference, dtype="float64")
        if reference.shape != (len(reference_names),) * 2:
            raise ValueError(f"reference has shape {reference.shape}, expected "
                             f"{(len(reference_names),) * 2} for {reference_names}")
        off_diagonal = np.where(np.eye(len(reference_names), dtype=bool), np.nan, reference)
        kept = [i for i in range(len(reference_names)) if np.isfinite(off_diagonal[i]).any()
                or np.isfinite(off_diagonal[:, i]).any()]
        panels = ([reference_names[i] for i in kept], reference[np.ix_(kept, kept)])
    shown = np.full_like(distances, np.nan)
    lower = np.tril_indices(count, -1)
    shown[lower] = distances[lower]
    columns = 1 if panels is None else 2
    widths = [0.85 * count + 2.0] + ([0.7 * len(panels[0]) + 0.8] if panels else [])
    figure, axes = plt.subplots(1, columns, figsize=(sum(widths), 0.75 * count + 1.6),
                                width_ratios=widths, squeeze=False, layout="constrained")
    axis = axes[0][0]
    image = axis.imshow(np.ma.masked_invalid(shown), cmap="viridis_r", vmin=0.0)
    finite = shown[np.isfinite(shown)]
    middle = (finite.max() / 2.0) if finite.size else 0.0
    for row, column in zip(*lower):
        value = shown[row, column]
        text = f"{value:.3f}"
        if floor_cell == (row, column):
            text += "\nnoise floor"
        elif floor_value is not None and value <= floor_value:
            text += "\nwithin noise"
        axis.text(column, row, text, ha="center", va="center", fontsize=7.5,
                  color="white" if value > middle else "black")
    if floor_cell is not None:
        axis.add_patch(plt.Rectangle((floor_cell[1] - 0.5, floor_cell[0] - 0.5), 1, 1,
                                     fill=False, edgecolor="red", lw=1.5))
    axis.set_xticks(range(count), names)
    axis.set_yticks(range(count), names)
    axis.set_xlabel("image set")
    axis.set_ylabel("image set")
    bar = figure.colorbar(image, ax=axis, label=label, shrink=0.8)
    if floor_value is not None:
        bar.ax.axhline(floor_value, color="red", lw=1.5)
        bar.ax.text(1.05, floor_value, f" FID({floor[0]}, {floor[1]})", color="red", fontsize=7,
                    va="center", transform=bar.ax.get_yaxis_transform())
    axis.set_title("this run" + (f" (\"within noise\": at or below FID({floor[0]}, {floor[1]}))"
                                 if floor is not None else ""), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    if panels:
        paper_names, values = panels
        side = len(paper_names)
        paper = axes[0][1]
        for row in range(side):
            for column in range(row):
                value = values[row, column]
                paper.text(column, row, "-" if not np.isfinite(value) else f"{value:.3f}",
                           ha="center", va="center", fontsize=8)
        for edge in np.arange(side + 1) - 0.5:
            paper.axhline(edge, color="0.85", lw=0.6)
            paper.axvline(edge, color="0.85", lw=0.6)
        paper.set_xlim(-0.5, side - 0.5)
        paper.set_ylim(side - 0.5, -0.5)
        paper.set_aspect("equal")
        paper.set_xticks(range(side), paper_names)
        paper.set_yticks(range(side), paper_names)
        paper.set_xlabel("image set")
        paper.set_title("the paper (text only, not on the colour scale)", fontsize=8)
    return figure


def training_curve_figure(steps, losses, fid_steps=None, fid_values=None, title=None,
                          selected=None):
    """Losses (left) and FID at the checkpoints (right) against the training step.

    Example::

        fig = training_curve_figure(log["step"], {"g_loss": g, "d_loss": d}, [1000, 2000],
                                    [80.1, 61.3], selected=2000)

    Losses are drawn raw (thin) and as a running mean over 1 % of the steps (thick);
    ``selected`` marks the published checkpoint on the FID panel.
    """
    steps = np.asarray(steps)
    panels = 2 if fid_steps is not None and len(fid_steps) else 1
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.6), squeeze=False,
                                layout="constrained")
    axis = axes[0][0]
    window = max(1, len(steps) // 100)
    for index, (name, values) in enumerate(losses.items()):
        values = np.asarray(values, dtype="float64")
        axis.plot(steps, values, color=f"C{index}", lw=0.4, alpha=0.35)
        if len(values) >= window:
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            axis.plot(steps[window - 1:], smooth, color=f"C{index}", lw=1.6,
                      label=f"{name} (running mean over {window} steps)")
    axis.set_xlabel("training step")
    axis.set_ylabel("loss")
    axis.set_title("training losses", fontsize=9)
    axis.legend(fontsize=7)
    if panels == 2:
        axis = axes[0][1]
        axis.plot(fid_steps, fid_values, marker="o", color="C3")
        if selected is not None and selected in list(fid_steps):
            value = list(fid_values)[list(fid_steps).index(selected)]
            axis.plot([selected], [value], marker="*", markersize=14, color="C2",
                      label=f"published: step {selected}, FID {value:.1f}")
            axis.legend(fontsize=7)
        axis.set_xlabel("training step")
        axis.set_ylabel("FID to the training data (lower is better)")
        axis.set_title("FID at the checkpoints", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure
