"""Figures of the SDR papers: one pathway, SDR histograms, distortion errors by wavelet scale.

    fig = pathway_figure(fine, coarse, stride, rho)
    fig = sdr_histograms_figure({"generator": {64: rhos, 32: ...}, "discriminator": {...}})
    fig = scale_errors_figure(errors_by_level)
"""

from __future__ import annotations

import numpy as np

from tfcf.plots import plt

__all__ = ["pathway_figure", "scale_errors_figure", "sdr_histograms_figure", "series_figure"]


def _spectrum(kernel, size=64, scale=1):
    """|DTFT| of a kernel on a size x size grid of normalised frequencies, zero frequency centred."""
    u = (np.arange(size) - size // 2) / size
    rows = np.exp(-2j * np.pi * np.outer(scale * u, np.arange(kernel.shape[0])))
    cols = np.exp(-2j * np.pi * np.outer(scale * u, np.arange(kernel.shape[1])))
    return np.abs(rows @ kernel @ cols.T)


def pathway_figure(fine, coarse, stride, rho, title=None):
    """Kernels (space) and Fourier magnitudes of one pathway, as in the SDR paper's Fig. 3a.

    Example::

        fig = pathway_figure(fine_kernel, coarse_kernel, 2, kernel_sdr(fine_kernel, coarse_kernel, 2))
    """
    from scipy.signal import convolve2d

    up = np.zeros(((coarse.shape[0] - 1) * stride + 1, (coarse.shape[1] - 1) * stride + 1))
    up[::stride, ::stride] = coarse
    composite = convolve2d(fine, up)
    figure, axes = plt.subplots(2, 3, figsize=(10, 6.4), layout="constrained")
    spaces = [("coarse kernel c", coarse), ("fine kernel f", fine),
              (f"f * c upsampled by {stride}", composite)]
    spectra = [(f"|c^(s u, s v)|, s = {stride}", _spectrum(coarse, scale=stride)),
               ("|f^(u, v)|", _spectrum(fine)),
               ("|f^(u, v) c^(s u, s v)|", _spectrum(fine) * _spectrum(coarse, scale=stride))]
    for axis, (name, kernel) in zip(axes[0], spaces):
        limit = np.abs(kernel).max() or 1.0
        image = axis.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("x (pixels)")
        axis.set_ylabel("y (pixels)")
        figure.colorbar(image, ax=axis, shrink=0.8, label="weight")
    for axis, (name, magnitude) in zip(axes[1], spectra):
        image = axis.imshow(magnitude, cmap="viridis", extent=(-0.5, 0.5, 0.5, -0.5))
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("u (cycles / pixel)")
        axis.set_ylabel("v (cycles / pixel)")
        figure.colorbar(image, ax=axis, shrink=0.8, label="magnitude")
    figure.suptitle(title or f"one pathway: SDR rho = {rho:.3f}", fontsize=11)
    return figure


def sdr_histograms_figure(groups, title=None, bins=None):
    """Superimposed SDR histograms per resolution level (columns, finest first).

    Example::

        fig = sdr_histograms_figure({"generator": {64: rho_a, 32: rho_b},
                                     "discriminator": {64: rho_c, 32: rho_d}})

    ``groups`` maps a network name to ``{resolution: array of rho}``; NaNs are dropped. Each
    histogram is normalised to a density so networks of different widths compare. Up to three
    groups are drawn as filled histograms; more (e.g. checkpoints along training) as outlines
    coloured in order along a colour map.
    """
    levels = sorted({level for values in groups.values() for level in values}, reverse=True)
    if not levels:
        raise ValueError("no SDR values to plot")
    bins = np.linspace(0.0, 2.5, 61) if bins is None else bins
    figure, axes = plt.subplots(1, len(levels), figsize=(3.6 * len(levels) + 0.4, 3.4),
                                squeeze=False, layout="constrained")
    ordered = len(groups) > 3
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(groups)))
    for axis, level in zip(axes[0], levels):
        for index, (name, values) in enumerate(groups.items()):
            if level not in values:
                continue
            data = np.asarray(values[level], dtype=np.float64).ravel()
            data = data[np.isfinite(data)]
            style = ({"histtype": "step", "lw": 1.4, "color": colours[index]} if ordered
                     else {"alpha": 0.55, "color": f"C{index}"})
            axis.hist(np.clip(data, bins[0], bins[-1]), bins=bins, density=True,
                      label=f"{name} (median {np.median(data):.2f})", **style)
        axis.axvline(1.0, color="black", lw=0.8, ls="--")
        axis.set_title(f"{level}x{level} resolution", fontsize=9)
        axis.set_xlabel(f"spectral dependency ratio rho (edge bins hold values beyond "
                        f"{bins[0]:g}-{bins[-1]:g})", fontsize=8)
        axis.set_ylabel("density")
        axis.legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def sdr_evolution_figure(steps, groups, title=None):
    """Median and 5-95 % range of rho per resolution level against the training step.

    Example::

        fig = sdr_evolution_figure([500, 1000], [{32: rho_a, 16: rho_b}, {32: rho_c, 16: rho_d}])

    ``groups[i]`` holds ``{resolution: array of rho}`` at ``steps[i]``.
    """
    levels = sorted({level for values in groups for level in values}, reverse=True)
    if not levels:
        raise ValueError("no SDR values to plot")
    figure, axis = plt.subplots(figsize=(6.4, 4), layout="constrained")
    for index, level in enumerate(levels):
        points = [(step, np.asarray(values[level], dtype=np.float64).ravel())
                  for step, values in zip(steps, groups) if level in values]
        xs = [step for step, _ in points]
        stats = np.array([np.quantile(data[np.isfinite(data)], [0.05, 0.5, 0.95])
                          for _, data in points])
        axis.plot(xs, stats[:, 1], marker="o", color=f"C{index}",
                  label=f"{level}x{level}: median")
        axis.fill_between(xs, stats[:, 0], stats[:, 2], color=f"C{index}", alpha=0.2,
                          label=f"{level}x{level}: 5-95 %")
    axis.axhline(1.0, color="black", lw=0.8, ls="--")
    axis.set_xlabel("training step")
    axis.set_ylabel("spectral dependency ratio rho")
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title, fontsize=10)
    return figure


def scale_errors_figure(errors, title=None):
    """Histograms of per-scale mean squared errors: rows perturbed levels, columns scales.

    Example::

        fig = scale_errors_figure({"coarse": errors_a, "fine": errors_b})   # each [N, scales]
    """
    names = list(errors)
    scales = np.asarray(errors[names[0]]).shape[1]
    figure, axes = plt.subplots(len(names), scales, figsize=(2.3 * scales + 0.6,
                                                            1.8 * len(names) + 0.8),
                                squeeze=False, sharex="col", layout="constrained")
    for row, name in enumerate(names):
        values = np.asarray(errors[name])
        for column in range(scales):
            axis = axes[row][column]
            axis.hist(values[:, column], bins=15, color=f"C{row}")
            if row == 0:
                axis.set_title(f"scale {column + 1}" + (" (coarsest)" if column == 0 else
                               " (finest)" if column == scales - 1 else ""), fontsize=8)
            if column == 0:
                axis.set_ylabel(f"{name}\nimages", fontsize=8)
            if row == len(names) - 1:
                axis.set_xlabel("mean squared error", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def series_figure(steps, series, ylabel, title=None):
    """Lines over training steps, one per named series (e.g. per wavelet scale).

    Example::

        fig = series_figure([1000, 2000], {"scale 1": [0.1, 0.2]}, "mean squared error")
    """
    figure, axis = plt.subplots(figsize=(6.4, 4), layout="constrained")
    for name, values in series.items():
        axis.plot(steps, values, marker="o", label=name)
    axis.set_xlabel("training step")
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title, fontsize=10)
    return figure
