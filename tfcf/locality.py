"""Does a module hybrid change one part of the image and keep the rest? Inside vs outside.

    from tfcf.locality import module_locality
    hybrids = np.stack([tfcf.hybrid(g, layer, clustering.members(j), base=z1, source=z2)
                        for j in range(clustering.k)])                  # [k, N, H, W, C]
    result = module_locality(g.predict(z1), hybrids, clustering.templates)
    result["inside"], result["outside"], result["ratio"]                # one value per module

For module j, D_j is the mean over pairs and colours of |hybrid_j - Original 1| (Original 1 the
base sample, whose other channels the hybrid keeps), block-averaged to the template's
resolution. The module's region is where its template is at least ``level`` times its maximum.
Reported per module: ``inside`` and ``outside`` (mean of D_j over the region and over the rest),
``ratio`` (inside / outside; large when the change stays in the region), ``area`` (fraction of
pixels in the region) and ``share`` (fraction of the total change D_j that falls in it; ``share``
well above ``area`` means the change is concentrated where the template says).
"""

from __future__ import annotations

import numpy as np

__all__ = ["block_mean", "module_locality"]


def block_mean(images, size):
    """``images`` [..., H, W] averaged over equal blocks to [..., size[0], size[1]].

        small = block_mean(maps, (64, 64))            # [C, 128, 128] -> [C, 64, 64]
    """
    images = np.asarray(images)
    height, width = images.shape[-2:]
    target_h, target_w = size
    if height % target_h or width % target_w:
        raise ValueError(f"images of {height}x{width} pixels do not split into "
                         f"{target_h}x{target_w} equal blocks (the template's size)")
    shape = images.shape[:-2] + (target_h, height // target_h, target_w, width // target_w)
    return images.reshape(shape).mean(axis=(-3, -1))


def module_locality(originals, hybrids, templates, level=0.5):
    """Mean |hybrid - original| inside and outside each module's template region.

        result = module_locality(original_1, hybrids, clustering.templates, level=0.5)

    Args:
        originals: the base samples, [N, H, W, C] (or [N, H, W]).
        hybrids: [k, N, H, W, C]: module j's channels taken from another sample into each base.
        templates: [k, h, w] non-negative (``Clustering.templates``), h and w dividing H and W.
        level: the region is ``template >= level * template.max()``, ``0 < level <= 1``.

    Returns:
        A dict of lists, one entry per module: ``inside``, ``outside``, ``ratio``, ``area``,
        ``share``; and ``level``.
    """
    originals = np.asarray(originals, dtype="float64")
    hybrids = np.asarray(hybrids, dtype="float64")
    templates = np.asarray(templates, dtype="float64")
    if hybrids.shape[1:] != originals.shape:
        raise ValueError(f"hybrids must be [k, *originals.shape] = [k, {originals.shape}], got "
                         f"{hybrids.shape}")
    if templates.ndim != 3 or len(templates) != len(hybrids):
        raise ValueError(f"templates must be [k={len(hybrids)}, h, w], got {templates.shape}")
    if not 0.0 < float(level) <= 1.0:
        raise ValueError(f"level must be in (0, 1], got {level!r}")
    if np.any(templates < 0):
        raise ValueError("templates must be non-negative (NMF or k-means templates)")
    difference = np.abs(hybrids - originals[None])
    if difference.ndim == 5:
        difference = difference.mean(axis=-1)
    difference = block_mean(difference.mean(axis=1), templates.shape[1:])   # [k, h, w]
    result = {"inside": [], "outside": [], "ratio": [], "area": [], "share": [],
              "level": float(level)}
    for template, change in zip(templates, difference):
        peak = template.max()
        region = template >= level * peak if peak > 0 else np.zeros(template.shape, bool)
        inside = float(change[region].mean()) if region.any() else 0.0
        outside = float(change[~region].mean()) if (~region).any() else 0.0
        total = float(change.sum())
        result["inside"].append(inside)
        result["outside"].append(outside)
        result["ratio"].append(inside / outside if outside > 0 else float("inf"))
        result["area"].append(float(region.mean()))
        result["share"].append(float(change[region].sum()) / total if total > 0 else 0.0)
    return result
