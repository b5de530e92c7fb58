"""Magnitude of causal effects of modules (ICLR 2020, Fig. 8 right).

    effects = causal_effect_magnitude(generator, "main.8", z, maps, ks=range(1, 7))
    effects["mean_influence"]        # average module influence per number of clusters
    effects["module_sizes"], effects["module_influences"]   # one entry per module, all k

For each number of clusters k, the elementary influence maps are clustered into k modules
(:func:`tfcf.cluster`; k = 1 is the whole layer), the influence map of each module is estimated
with :func:`tfcf.influence_maps` on the same pairs, and its individual influence (mean over pixels)
is recorded with the module's size. The module maps of all k come from one call, so the model
runs once per sample for all of them, and each module hybrid goes through the linear shortcut.
"""

from __future__ import annotations

import numpy as np

from tfcf.influence import individual_influence, influence_maps
from tfcf.modules import cluster

__all__ = ["causal_effect_magnitude", "effect_modules", "regression"]


def causal_effect_magnitude(model, at, z, maps, ks=(1, 2, 3, 4, 5, 6), method="nmf",
                            num_pairs=None, seed=0, batch_size=None, window=3, percentile=75,
                            channels=None, progress=True):
    """Average module influence per number of clusters, and each module's influence vs size.

    Example::

        effects = causal_effect_magnitude(g, "main.8", z, maps, ks=(1, 2, 3))
        effects["mean_influence"]    # [len(ks)]

    Returns a dict with ``ks``, ``mean_influence`` [len(ks)], and per module (all k together)
    ``module_k``, ``module_sizes``, ``module_influences``, plus the slope/intercept/R^2 of the
    least-squares line of influence against size (``regression``). ``channels`` gives the layer's
    channel index of each map (when ``maps`` holds only some channels, e.g. the live ones).
    Dead channels (all-zero maps) are in no module, not even the whole layer's (k = 1), so
    module sizes count the channels that can have an effect.
    """
    ks = [int(k) for k in ks]
    per_k = effect_modules(maps, ks, method=method, seed=seed, window=window,
                           percentile=percentile, channels=channels)
    # every module of every k in one call: the model runs once per sample for all of them, and
    # each module hybrid goes through the linear shortcut (tfcf.influence_maps)
    every = [module for modules in per_k for module in modules]
    values = individual_influence(influence_maps(model, at, z, channels=every,
                                                 num_pairs=num_pairs, seed=seed,
                                                 batch_size=batch_size, progress=progress))
    mean_influence, module_k, sizes, influences = [], [], [], []
    start = 0
    for k, modules in zip(ks, per_k):
        chunk = values[start:start + len(modules)]
        start += len(modules)
        mean_influence.append(float(chunk.mean()))
        for module, value in zip(modules, chunk):
            module_k.append(k)
            sizes.append(len(module))
            influences.append(float(value))
    return {
        "ks": ks,
        "mean_influence": mean_influence,
        "module_k": module_k,
        "module_sizes": sizes,
        "module_influences": influences,
        "regression": regression(sizes, influences),
    }


def regression(x, y):
    """Least-squares line y = slope * x + intercept and its R^2.

    Example::

        regression([1, 2, 3], [2, 4, 6])    # {"slope": 2.0, "intercept": 0.0, "r2": 1.0}
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if len(x) < 2 or np.ptp(x) == 0:
        return {"slope": float("nan"), "intercept": float("nan"), "r2": float("nan")}
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum(residual**2) / total if total > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2)}


def effect_modules(maps, ks=(1, 2, 3, 4, 5, 6), method="nmf", seed=0, window=3, percentile=75,
                   channels=None):
    """The modules :func:`causal_effect_magnitude` measures: for each k, a list of channel lists.

    Example::

        per_k = effect_modules(maps, ks=(1, 2, 3))   # [[all live channels], [C0, C1], [...]]
        every = [module for modules in per_k for module in modules]

    k = 1 is every live channel (dead channels, all-zero maps, are in no module); k > 1 the
    non-empty modules of :func:`tfcf.cluster` with these settings. ``channels``: the layer's
    channel index of each map.
    """
    maps = np.asarray(maps)
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive numbers of clusters, got {ks}")
    channels = np.arange(len(maps)) if channels is None else np.asarray(channels)
    if len(channels) != len(maps):
        raise ValueError(f"{len(channels)} channel indices for {len(maps)} maps")
    live = channels[np.asarray(maps).reshape(len(maps), -1).any(axis=1)]
    per_k = []
    for k in ks:
        if k == 1:
            modules = [live.tolist()]
        else:
            clustering = cluster(maps, k, method=method, window=window, percentile=percentile,
                                 seed=seed, channels=channels)
            modules = [clustering.members(j).tolist() for j in range(k)]
            modules = [m for m in modules if m]
        per_k.append(modules)
    return per_k
