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
