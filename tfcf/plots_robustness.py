"""Figures of classifier robustness to hybrids (ICLR 2020 Fig. 6, Figs. 14/16, Table 3).

    fig = robustness_figure([4, 5, 6, 7], rates, distances)
    fig = entropy_figure(entropies, [4, 5, 6, 7], top=10)
    fig = decision_table_figure(images, decisions, described)
"""

from __future__ import annotations

import numpy as np

from tfcf.plots import plt, to_display

__all__ = ["decision_table_figure", "entropy_figure", "robustness_figure"]


def robustness_figure(blocks, rates, distances, title=None):
    """Left: recognition rate per Gblock and classifier (error bars: standard errors); right:
    mean pixel distance between hybrids and originals per Gblock.

    Example::

        fig = robustness_figure([4, 5], {"resnet_v2_50": {"blocks": {4: {"rate": .8,
                                "stderr": .05}, 5: {...}}}}, {4: (0.1, 0.01), 5: (0.08, 0.01)})
    """
    blocks = list(blocks)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained",
                                         gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(1, len(rates))
    positions = np.arange(len(blocks))
    for index, (name, result) in enumerate(rates.items()):
        values = [result["blocks"][b]["rate"] for b in blocks]
        errors = [result["blocks"][b]["stderr"] for b in blocks]
        bars = left.bar(positions + (index - (len(rates) - 1) / 2) * width, values, width,
                        yerr=errors, capsize=3, label=name)
        left.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    left.set_xticks(positions, [f"Gblock {b}" for b in blocks])
    left.set_ylim(0, 1.05)
    left.set_xlabel("intervened Gblock")
    left.set_ylabel("recognition rate of the most recognised original class")
    left.set_title("classifier recognition of hybrids")
    left.legend(fontsize=8)
    means = [distances[b][0] for b in blocks]
    errors = [distances[b][1] for b in blocks]
    right.bar(positions, means, 0.6, yerr=errors, capsize=3, color="tab:gray")
    right.set_xticks(positions, [f"Gblock {b}" for b in blocks])
    right.set_xlabel("intervened Gblock")
    right.set_ylabel("mean |hybrid - original| (pixels in [0, 1])")
    right.set_title("pixel distance to the original")
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def entropy_figure(entropies, blocks, top, title=None):
    """Histograms of entropies [blocks, modules, hybrids]: columns Gblocks, rows modules.

    Example::

        fig = entropy_figure(np.random.rand(4, 3, 50), [4, 5, 6, 7], top=10)
    """
    entropies = np.asarray(entropies, dtype="float64")
    if entropies.ndim != 3 or entropies.shape[0] != len(blocks):
        raise ValueError(f"entropies must be [len(blocks)={len(blocks)}, modules, hybrids], "
                         f"got shape {entropies.shape}")
    columns, rows = entropies.shape[:2]
    limit = np.log(top)
    bins = np.linspace(0.0, limit, 21)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns + 0.6, 1.9 * rows + 0.8),
                                squeeze=False, sharex=True, layout="constrained")
    for column, block in enumerate(blocks):
        for row in range(rows):
            axis = axes[row][column]
            axis.hist(entropies[column, row], bins=bins, color=f"C{row}")
            axis.set_xlim(0.0, limit)
            if row == 0:
                axis.set_title(f"Gblock {block}", fontsize=9)
            if column == 0:
                axis.set_ylabel(f"module {row + 1}\nhybrids", fontsize=8)
            if row == rows - 1:
                axis.set_xlabel("entropy (nats)", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def decision_table_figure(images, decisions, described, title=None):
    """The chosen hybrids in a row, and under each the top-1 class of every classifier.

    Example::

        fig = decision_table_figure(images, {"resnet_v2_50": [{"class": "koala",
                                    "probability": 0.9}, ...]}, [{"module": 1, "base": "koala"}])
    """
    count = len(images)
    figure = plt.figure(figsize=(2.6 * count + 1.5, 2.6 + 0.35 * len(decisions) + 0.6),
                        layout="constrained")
    grid = figure.add_gridspec(2, count, height_ratios=[2.6, 0.35 * len(decisions) + 0.4])
    for column in range(count):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(to_display(images[column]))
        axis.set_xticks([])
        axis.set_yticks([])
        info = described[column]
        axis.set_title(f"image {column + 1}: {info['base']} base,\nmodule {info['module']}",
                       fontsize=8)
    table_axis = figure.add_subplot(grid[1, :])
    table_axis.axis("off")
    cells = [[f"{d[i]['class']} ({d[i]['probability']:.2f})" for i in range(count)]
             for d in decisions.values()]
    table = table_axis.table(cellText=cells, rowLabels=list(decisions),
                             colLabels=[f"image {i + 1}" for i in range(count)], loc="center",
                             cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure
