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

def cluster_figure(maps, clustering, examples=4, title=None, cell_size=1.5, channels=None):
    """One row per module: its template (colour bar) and ``examples`` of its influence maps.

    Example::

        clustering = tfcf.modules.cluster(influence_maps, k=3)
        fig = cluster_figure(influence_maps, clustering, examples=4)

    The examples are the module's channels with the largest weight (ties, e.g. k-means one-hot
    weights, broken by the cosine similarity of the map to the template), each shown divided by
    its own maximum on a shared [0, 1] scale; the row is labelled "cluster j (n channels)".
    ``channels`` names the maps in the titles (e.g. the original indices of the live channels
    that were clustered); default ``0..C-1``.
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
    for j in range(k):
        template = clustering.templates[j]
        picture = axes[j][0].imshow(template, cmap="magma", vmin=0)
        figure.colorbar(picture, ax=axes[j][0], fraction=0.046, pad=0.04, label="template")
        axes[j][0].set_title(f"template {j}", fontsize=8)
        members = clustering.members(j)
        axes[j][0].set_ylabel(f"cluster {j} ({len(members)} channels)", fontsize=8)
        vector = template.reshape(-1)
        similarity = flat[members] @ vector / np.maximum(
            np.linalg.norm(flat[members], axis=1) * np.linalg.norm(vector), 1e-300)
        chosen = members[np.lexsort((-similarity, -clustering.weights[members, j]))][:examples]
        shown = None
        for column in range(examples):
            axis = axes[j][1 + column]
            if column >= len(chosen):
                axis.axis("off")
                continue
            channel = chosen[column]
            peak = maps[channel].max()
            shown = axis.imshow(maps[channel] / (peak if peak > 0 else 1.0), cmap="viridis",
                                vmin=0, vmax=1)
            axis.set_title(f"ch {channel if channels is None else channels[channel]}", fontsize=8)
        if shown is not None:
            figure.colorbar(shown, ax=list(axes[j][1:]), fraction=0.046, pad=0.02,
                            label="influence / max")
        for axis in axes[j]:
            axis.set_xticks([])
            axis.set_yticks([])
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


def distance_table_figure(names, distances, title=None, reference=None, label="FID / FID(R, G)"):
    """Lower-triangular table of pairwise distances as an annotated heat map (ICLR 2020 Table 2).

    Example::

        fig = distance_table_figure(["R", "G", "C1"], normalised, reference=(0.0, 1.0, 1.02))

    ``distances`` is a symmetric (n, n) array; only the strict lower triangle is shown, rows and
    columns named by ``names``. ``reference`` (optional) is the paper's value per cell, same shape,
    NaN where it gave none; it is printed in brackets under ours.
    """
    distances = np.asarray(distances, dtype="float64")
    count = len(names)
    if distances.shape != (count, count):
        raise ValueError(f"distances has shape {distances.shape}, expected {(count, count)} for names {list(names)}")
    shown = np.full_like(distances, np.nan)
    lower = np.tril_indices(count, -1)
    shown[lower] = distances[lower]
    figure, axis = plt.subplots(figsize=(1.1 * count + 2.2, 0.9 * count + 1.2), layout="constrained")
    image = axis.imshow(np.ma.masked_invalid(shown), cmap="viridis_r", vmin=0.0)
    finite = shown[np.isfinite(shown)]
    middle = (finite.max() / 2.0) if finite.size else 0.0
    for row, column in zip(*lower):
        text = f"{shown[row, column]:.3f}"
        if reference is not None and np.isfinite(np.asarray(reference)[row, column]):
            text += f"\n(paper {np.asarray(reference)[row, column]:.3f})"
        axis.text(column, row, text, ha="center", va="center", fontsize=8,
                  color="white" if shown[row, column] > middle else "black")
    axis.set_xticks(range(count), names)
    axis.set_yticks(range(count), names)
    axis.set_xlabel("image set")
    axis.set_ylabel("image set")
    figure.colorbar(image, ax=axis, label=label, shrink=0.8)
    if title:
        axis.set_title(title, fontsize=10)
    return figure
