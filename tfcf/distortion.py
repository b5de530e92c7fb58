"""Stretch interventions and their analysis by wavelet scale (ICML 2018 workshop, section 5.1).

    distorted, reference = distort(vae_decoder, "g_h2_relu", z, factor=1.5)
    components = scale_components(images, levels=5)       # [levels, N, H, W, C], coarse -> fine
    errors = scale_errors(distorted, reference, levels=5)  # [N, levels] mean squared errors

A 1.5-fold horizontal stretch is applied to all maps of one layer (cropped symmetrically back to
size), and the output is compared with the same stretch applied to the unperturbed output image.
If the downstream layers only place features (they are modular), the two agree; the mismatch is
split over spatial scales with a Haar wavelet decomposition.
"""

from __future__ import annotations

import numpy as np

__all__ = ["distort", "scale_components", "scale_errors", "stretch", "stretch_intervention"]


def stretch(values, factor=1.5, axis=2):
    """Stretch arrays ``[B, H, W, C]`` along ``axis`` by ``factor`` about the centre, cropped.

        wide = stretch(images, 1.5)              # horizontal (axis 2 of channels-last batches)

    Output pixel ``j`` reads the input at ``c + (j - c) / factor`` with ``c = (n - 1) / 2``,
    linearly interpolated (so the crop is symmetric and a constant map is unchanged).
    """
    values = np.asarray(values)
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    if not -values.ndim <= axis < values.ndim:
        raise ValueError(f"axis {axis} is out of range for an array of rank {values.ndim}")
    size = values.shape[axis]
    centre = (size - 1) / 2.0
    position = centre + (np.arange(size) - centre) / float(factor)
    position = np.clip(position, 0.0, size - 1.0)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, size - 1)
    weight = (position - low).astype(np.float64)
    shape = [1] * values.ndim
    shape[axis] = size
    weight = weight.reshape(shape)
    out = (np.take(values, low, axis=axis) * (1.0 - weight)
           + np.take(values, high, axis=axis) * weight)
    return out.astype(values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64)


def stretch_intervention(factor=1.5, axis=2):
    """A :class:`tfcf.Transform` stretching every map of the layer it is applied to.

        out = tfcf.intervene(generator, {"g_h2_relu": stretch_intervention(1.5)}, base=z)
    """
    from tfcf.intervene import Transform

    return Transform(lambda maps: stretch(maps, factor, axis))


def distort(model, layer, z, factor=1.5, axis=2, batch_size=None):
    """(outputs with ``layer``'s maps stretched, the stretched unperturbed outputs).

        distorted, reference = distort(generator, "g_h2_relu", z)

    ``batch_size``: samples per forward call; None sizes it as :func:`tfcf.intervene` does.
    """
    from tfcf.graph import flat_graph
    from tfcf.intervene import default_batch, intervene

    if batch_size is None:
        batch_size = default_batch(flat_graph(model))
    distorted = intervene(model, {layer: stretch_intervention(factor, axis)}, base=z,
                          batch_size=batch_size)
    originals = np.asarray(model.predict(z, batch_size=batch_size, verbose=0))
    return distorted, stretch(originals, factor, axis)


def scale_components(images, levels=5, wavelet="haar"):
    """Split images into ``levels`` components by Haar wavelet scale, coarse to fine.

        parts = scale_components(images)         # parts.sum(0) == images
        parts.shape                              # (5, N, H, W, C)

    A ``levels - 1``-level 2-D decomposition (pywavelets ``wavedec2`` over the spatial axes)
    gives an approximation and ``levels - 1`` detail bands; component 0 keeps only the
    approximation (the coarsest content), component j keeps only detail band j (1 = coarsest
    details, ``levels - 1`` = finest), each reconstructed with ``waverec2``. The transform is
    linear, so the components sum back to the image. ``images`` are ``[N, H, W]`` or
    ``[N, H, W, C]``; H and W must be divisible by ``2 ** (levels - 1)``.
    """
    import pywt

    images = np.asarray(images, dtype=np.float64)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be [N, H, W] or [N, H, W, C], got shape {images.shape}")
    if int(levels) < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    depth = int(levels) - 1
    height, width = images.shape[1:3]
    if height % (2 ** depth) or width % (2 ** depth):
        raise ValueError(f"images of {height}x{width} pixels cannot be split into {levels} "
                         f"Haar scales: H and W must be divisible by {2 ** depth}")
    if depth == 0:
        return images[None].copy()
    coefficients = pywt.wavedec2(images, wavelet, level=depth, axes=(1, 2))
    components = []
    for keep in range(len(coefficients)):
        kept = [coefficients[0] if keep == 0 else np.zeros_like(coefficients[0])]
        for band in range(1, len(coefficients)):
            kept.append(tuple(c if band == keep else np.zeros_like(c)
                              for c in coefficients[band]))
        components.append(pywt.waverec2(kept, wavelet, axes=(1, 2))[:, :height, :width])
    return np.stack(components)


def scale_errors(distorted, reference, levels=5, wavelet="haar"):
    """Mean squared error per wavelet scale between two image sets: ``[N, levels]``.

        errors = scale_errors(distorted, stretched_originals)   # column 0 coarsest

    The error of component j is the mean over pixels (and colours) of the squared difference
    of the two images' j-th :func:`scale_components`; the components of the difference are the
    differences of the components, so this is computed once on ``distorted - reference``.
    """
    distorted = np.asarray(distorted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if distorted.shape != reference.shape:
        raise ValueError(f"shapes differ: {distorted.shape} vs {reference.shape}")
    parts = scale_components(distorted - reference, levels, wavelet)
    return np.square(parts).reshape(parts.shape[0], parts.shape[1], -1).mean(axis=2).T
