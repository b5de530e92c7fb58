"""Figures of the SDR papers: one pathway, SDR histograms, distortion errors by wavelet scale.

    fig = pathway_figure(fine, coarse, stride, rho)
    fig = sdr_histograms_figure({"generator": {64: rhos, 32: ...}, "discriminator": {...}})
    fig = scale_errors_figure(errors_by_level)
    low, high = bootstrap_interval(per_image_errors, seed=0)      # 95 % interval of the mean

The small statistics the figures show (standard errors, bootstrap intervals, shares of values
beyond a histogram's range) are public here so that commands record the same numbers they draw.
"""

from __future__ import annotations

import numpy as np

from tfcf.plots import plt

__all__ = ["beyond_range", "bootstrap_interval", "pathway_figure", "scale_errors_figure",
           "sdr_evolution_figure", "sdr_evolution_summary", "sdr_histograms_figure",
           "series_figure", "standard_error", "SDR_RANGE"]

SDR_RANGE = (0.0, 2.5)      # the x range of the SDR histograms; values beyond go to the edge bins
_DECADES = 1.5              # a y axis turns logarithmic when positive values span more decades


# ----------------------------------------------------------------------------- statistics

def standard_error(values):
    """Standard error of the mean over the first axis: ``std(ddof=1) / sqrt(N)``; NaN for N < 2.

    Example::

        se = standard_error(errors)        # errors [N images, scales] -> [scales]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        raise ValueError("values must have at least one axis (the samples)")
    count = values.shape[0]
    if count < 2:
        return np.full(values.shape[1:], np.nan) if values.ndim > 1 else np.float64(np.nan)
    return values.std(axis=0, ddof=1) / np.sqrt(count)


def bootstrap_interval(values, statistic=np.mean, resamples=1000, confidence=0.95, seed=0):
    """Percentile bootstrap interval of ``statistic`` over the rows (first axis) of ``values``.

    Example::

        low, high = bootstrap_interval(per_image_error, resamples=1000, seed=0)   # 95 %, mean
        low, high = bootstrap_interval(rho, np.median, seed=0)                    # of the median

    Resample r takes the rows ``rng.integers(0, N, size=(resamples, N))[r]`` of
    ``numpy.random.default_rng(seed)`` (drawn in chunks, the same stream), ``statistic(resampled,
    axis=0)`` is computed on each, and the interval is the ``(1 - confidence) / 2`` and ``(1 +
    confidence) / 2`` quantiles (NumPy's default, linear) of the ``resamples`` statistics.
    Returns ``(low, high)``, each shaped like ``statistic(values, axis=0)``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0 or len(values) == 0:
        raise ValueError(f"values must be a non-empty array of samples, got shape {values.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if int(resamples) < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples}")
    resamples, count = int(resamples), len(values)
    rng = np.random.default_rng(seed)
    chunk = max(1, int(4e6 // values.size))               # about 32 MB of resampled values
    statistics = []
    for start in range(0, resamples, chunk):
        rows = rng.integers(0, count, size=(min(chunk, resamples - start), count))
        statistics.append(statistic(values[rows], axis=1))
    low, high = np.quantile(np.concatenate(statistics), [(1.0 - confidence) / 2.0,
                                                         (1.0 + confidence) / 2.0], axis=0)
    return low, high


def beyond_range(values, low, high):
    """Shares of the finite ``values`` below ``low`` and above ``high``: ``(below, above)``.

    Example::

        below, above = beyond_range(rho, *SDR_RANGE)      # e.g. (0.0, 0.031)

    NaN for both when no value is finite.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if not data.size:
        return float("nan"), float("nan")
    return float(np.mean(data < low)), float(np.mean(data > high))


def _spans_decades(values):
    """Whether the positive finite values span more than ``_DECADES`` decades."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data) & (data > 0)]
    return bool(data.size) and np.log10(data.max() / data.min()) > _DECADES


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
    histogram is normalised to a density so networks of different widths compare. Values beyond
    the plotted range (default :data:`SDR_RANGE`) are counted in the edge bins, and the legend
    gives, per network, the share below the first bin edge and above the last
    (:func:`beyond_range`). Up to three groups are drawn as filled histograms; more (e.g.
    checkpoints along training) as outlines coloured in order along a colour map.
    """
    levels = sorted({level for values in groups.values() for level in values}, reverse=True)
    if not levels:
        raise ValueError("no SDR values to plot")
    bins = np.linspace(*SDR_RANGE, 61) if bins is None else np.asarray(bins, dtype=np.float64)
    low, high = float(bins[0]), float(bins[-1])
    ordered = len(groups) > 3
    height = 3.6 + (0.16 * len(groups) + 0.3 if ordered else 0.0)   # legends below the panels
    figure, axes = plt.subplots(1, len(levels), figsize=(3.8 * len(levels) + 0.4, height),
                                squeeze=False, layout="constrained")
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(groups)))
    for axis, level in zip(axes[0], levels):
        for index, (name, values) in enumerate(groups.items()):
            if level not in values:
                continue
            data = np.asarray(values[level], dtype=np.float64).ravel()
            data = data[np.isfinite(data)]
            if not data.size:
                continue
            below, above = beyond_range(data, low, high)
            style = ({"histtype": "step", "lw": 1.4, "color": colours[index]} if ordered
                     else {"alpha": 0.55, "color": f"C{index}"})
            axis.hist(np.clip(data, low, high), bins=bins, density=True,
                      label=f"{name}: median {np.median(data):.2f}" + ("; " if ordered else "\n  ")
                      + f"{below:.1%} < {low:g}, {above:.1%} > {high:g}", **style)
        axis.axvline(1.0, color="black", lw=0.8, ls="--")
        axis.set_title(f"{level}x{level} resolution", fontsize=9)
        axis.set_xlabel(f"spectral dependency ratio rho\n(values beyond {low:g}-{high:g} "
                        f"counted in the edge bins)", fontsize=8)
        axis.set_ylabel("density")
        placement = ({"loc": "upper center", "bbox_to_anchor": (0.5, -0.22), "ncol": 1}
                     if ordered else {})
        axis.legend(fontsize=6.5, title="share beyond the plotted range", title_fontsize=6.5,
                    **placement)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def sdr_evolution_summary(steps, groups, resamples=1000, confidence=0.95, seed=0):
    """Per resolution: median rho over pathways at each step, its bootstrap interval, 5/95 %.

    Example::

        summary = sdr_evolution_summary([500, 1000], [{32: rho_a}, {32: rho_b}], seed=0)
        summary[32]["median"], summary[32]["median_low"], summary[32]["median_high"]

    ``groups[i]`` holds ``{resolution: array of rho}`` at ``steps[i]`` (NaNs dropped). The
    interval resamples the pathways (:func:`bootstrap_interval` of ``np.median``, the same
    ``seed`` at every step); ``q05``/``q95`` are the 5 and 95 % quantiles of the pathways.
    """
    if len(steps) != len(groups):
        raise ValueError(f"{len(steps)} steps for {len(groups)} groups of SDR values")
    levels = sorted({level for values in groups for level in values}, reverse=True)
    summary = {}
    for level in levels:
        entry = {key: [] for key in ("steps", "count", "median", "median_low", "median_high",
                                     "q05", "q95")}
        for step, values in zip(steps, groups):
            data = np.asarray(values.get(level, []), dtype=np.float64).ravel()
            data = data[np.isfinite(data)]
            if not data.size:
                continue
            low, high = bootstrap_interval(data, np.median, resamples, confidence, seed)
            q05, median, q95 = np.quantile(data, [0.05, 0.5, 0.95])
            for key, value in (("steps", int(step)), ("count", int(data.size)),
                               ("median", float(median)), ("median_low", float(low)),
                               ("median_high", float(high)), ("q05", float(q05)),
                               ("q95", float(q95))):
                entry[key].append(value)
        if entry["steps"]:
            summary[level] = entry
    return summary


def sdr_evolution_figure(steps, groups, title=None, control=None, resamples=1000,
                         confidence=0.95, seed=0, summary=None):
    """Median rho per resolution level against the training step, with its bootstrap band.

    Example::

        fig = sdr_evolution_figure([500, 1000], [{32: rho_a, 16: rho_b}, {32: rho_c, 16: rho_d}],
                                   control=("no dropout", 4000, {32: rho_e, 16: rho_f}))

    ``groups[i]`` holds ``{resolution: array of rho}`` at ``steps[i]``. One colour per
    resolution: the median over pathways (line), its ``confidence`` bootstrap interval over
    pathways (band, :func:`sdr_evolution_summary`) and the 5 and 95 % quantiles of the pathways
    (dashed). ``control`` is ``(label, step, {resolution: rho})``: the same network trained
    without the intervention, drawn as a star with its interval at its step. ``summary`` (from
    :func:`sdr_evolution_summary` with the same arguments) skips recomputing the bootstrap.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    summary = summary if summary is not None else sdr_evolution_summary(
        steps, groups, resamples, confidence, seed)
    if not summary:
        raise ValueError("no SDR values to plot")
    controls = {}
    if control is not None:
        label, control_step, rhos = control
        controls = sdr_evolution_summary([control_step], [rhos], resamples, confidence, seed)
    levels = sorted(set(summary) | set(controls), reverse=True)
    figure, axis = plt.subplots(figsize=(10.0, 4.6), layout="constrained")
    handles = []
    for index, level in enumerate(levels):
        colour = f"C{index}"
        handles.append(Line2D([], [], color=colour, marker="o", label=f"{level}x{level}"))
        if level in summary:
            entry = summary[level]
            axis.plot(entry["steps"], entry["median"], marker="o", color=colour)
            axis.fill_between(entry["steps"], entry["median_low"], entry["median_high"],
                              color=colour, alpha=0.35, lw=0)
            for key in ("q05", "q95"):
                axis.plot(entry["steps"], entry[key], color=colour, lw=0.9, ls="--", alpha=0.7)
        if level in controls:
            entry = controls[level]
            median = entry["median"][0]
            axis.errorbar(entry["steps"], entry["median"], capsize=3, ls="none", marker="*",
                          markersize=13, color=colour, markeredgecolor="black",
                          yerr=[[median - entry["median_low"][0]],
                                [entry["median_high"][0] - median]])
            axis.plot(entry["steps"] * 2, [entry["q05"][0], entry["q95"][0]], ls="none",
                      marker="_", markersize=12, color=colour)
    grey = "0.35"
    handles += [Line2D([], [], color=grey, marker="o", label="median over pathways"),
                Patch(color=grey, alpha=0.35,
                      label=f"{confidence * 100:g} % bootstrap interval of the median\n"
                            f"({resamples} resamples of the pathways)"),
                Line2D([], [], color=grey, ls="--", lw=0.9,
                       label="5 % and 95 % quantiles of the pathways")]
    if control is not None:
        handles.append(Line2D([], [], color=grey, ls="none", marker="*", markersize=11,
                              markeredgecolor="black",
                              label=f"control: {control[0]}\n(step {control[1]}; ticks: 5/95 %)"))
    axis.axhline(1.0, color="black", lw=0.8, ls=":")
    axis.set_xlabel("training step")
    axis.set_ylabel("spectral dependency ratio rho")
    axis.legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                title="resolution / statistic", title_fontsize=7.5)
    if title:
        axis.set_title(title, fontsize=10)
    return figure


def scale_errors_figure(errors, title=None):
    """Mean per-scale squared error with standard errors, grouped by perturbed level.

    Example::

        fig = scale_errors_figure({"coarse": errors_a, "fine": errors_b})   # each [N, scales]

    One group of bars per wavelet scale (1 = coarsest .. n = finest) and one colour per perturbed
    level: each bar is the mean over the N images, its error bar one standard error
    (:func:`standard_error`; none for a single image). The y axis is logarithmic, and its
    label says so, when the positive means span more than 1.5 decades.
    """
    names = list(errors)
    if not names:
        raise ValueError("no errors to plot")
    arrays = [np.asarray(errors[name], dtype=np.float64) for name in names]
    scales = arrays[0].shape[-1]
    for name, values in zip(names, arrays):
        if values.ndim != 2 or values.shape[1] != scales or not len(values):
            raise ValueError(f"errors[{name!r}] has shape {values.shape}; expected [N images, "
                             f"{scales} scales] like errors[{names[0]!r}]")
    means = np.array([values.mean(axis=0) for values in arrays])
    spreads = np.nan_to_num(np.array([np.broadcast_to(standard_error(values), (scales,))
                                      for values in arrays]))
    log = _spans_decades(means)
    figure, axis = plt.subplots(figsize=(max(6.4, 0.4 * scales * len(names) + 2.8), 4.6),
                                layout="constrained")
    width = 0.8 / len(names)
    positions = np.arange(1, scales + 1)
    for index, (name, values) in enumerate(zip(names, arrays)):
        offsets = positions + (index - (len(names) - 1) / 2.0) * width
        axis.bar(offsets, means[index], width=width, color=f"C{index}", yerr=spreads[index],
                 capsize=2, error_kw={"lw": 0.9}, label=f"{name} ({len(values)} images)")
    axis.set_xticks(positions, [f"{j}" + ("\n(coarsest)" if j == 1 and scales > 1 else
                                          "\n(finest)" if j == scales and scales > 1 else "")
                                for j in positions])
    axis.set_xlabel("wavelet scale")
    if log:
        axis.set_yscale("log")
    axis.set_ylabel("mean squared error" + (" (log scale)" if log else ""))
    axis.legend(fontsize=8, title="perturbed layer", title_fontsize=8)
    axis.grid(axis="y", alpha=0.3, which="both" if log else "major")
    axis.set_title((f"{title}\n" if title else "")
                   + "bars: mean over images; error bars: 1 standard error", fontsize=9)
    return figure


def series_figure(steps, series, ylabel, title=None, bands=None,
                  band_label="95 % bootstrap interval", shared_values=None):
    """Lines over training steps, one per named series, each with an optional shaded band.

    Example::

        fig = series_figure([1000, 2000], {"scale 1": [0.1, 0.2]}, "mean squared error",
                            bands={"scale 1": ([0.08, 0.17], [0.12, 0.23])})

    ``bands[name]`` is ``(lower, upper)`` per step, shaded in the series' colour and named once
    in the legend by ``band_label``. NaN values leave gaps. The y axis is logarithmic (the label
    then says so) when the positive values span more than 1.5 decades. ``shared_values`` are the
    values of figures to compare with this one: the y range and scale cover them too, so figures
    given the same ``shared_values`` share their y axis.
    """
    from matplotlib.patches import Patch

    bands = bands or {}
    drawn = [np.asarray(values, dtype=np.float64) for values in series.values()]
    drawn += [np.asarray(bound, dtype=np.float64) for band in bands.values() for bound in band]
    extra = (np.asarray(shared_values, dtype=np.float64).ravel() if shared_values is not None
             else np.zeros(0))
    log = _spans_decades(np.concatenate([d.ravel() for d in drawn] + [extra]))
    figure, axis = plt.subplots(figsize=(8.6, 4.2), layout="constrained")
    if log:
        axis.set_yscale("log")
    for index, (name, values) in enumerate(series.items()):
        colour = f"C{index}"
        axis.plot(steps, values, marker="o", color=colour, label=name)
        if name in bands:
            lower, upper = bands[name]
            axis.fill_between(steps, lower, upper, color=colour, alpha=0.25, lw=0)
    extra = extra[np.isfinite(extra) & ((extra > 0) if log else True)]
    if extra.size and len(steps):
        axis.update_datalim(np.column_stack([np.full(extra.size, float(steps[0])), extra]))
        axis.autoscale_view()
    handles, _ = axis.get_legend_handles_labels()
    if bands:
        handles.append(Patch(color="0.5", alpha=0.35, label=band_label))
    axis.set_xlabel("training step")
    axis.set_ylabel(ylabel + (" (log scale)" if log else ""))
    axis.grid(alpha=0.3, which="both" if log else "major")
    axis.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        axis.set_title(title, fontsize=10)
    return figure
