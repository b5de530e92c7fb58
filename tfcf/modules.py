"""Group channels into modules by clustering their elementary influence maps (paper Sec. 3.4).

    clustering = tfcf.modules.cluster(influence_maps, k=3)          # maps: [channels, H, W]
    clustering.members(0)                  # layer channel indices of module 0 (dead ones left out)
    result = tfcf.modules.stability(influence_maps, ks=(2, 3, 4, 5)) # Supplementary Fig. 9

Each map is smoothed with a rectangular sliding window and thresholded at its own 75th percentile
(:func:`preprocess`); the binary rows form the matrix S, which is factorised S = W H by
non-negative matrix factorisation (or clustered with k-means). Each channel joins the template
that contributes to it with the largest weight. :func:`stability` repeats the clustering on two
overlapping two-thirds of the maps and reports how consistently the overlap is labelled.

Pure NumPy / SciPy / scikit-learn: nothing here needs TensorFlow.

Speed. The factorisations are small (a few hundred maps of a few thousand pixels): each fit runs
with one BLAS/OpenMP thread (threadpoolctl), which on a 2-core machine made a fit 10-20x cheaper
in CPU time than the default thread pools, whose threads mostly wait on one another at this size.
:func:`stability` spreads its fits over processes (joblib, ``n_jobs``), each single-threaded, with
the same results as one process.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import sys
import warnings

import numpy as np
from scipy import ndimage, optimize

from tfcf.io import progress_bar

METHODS = ("nmf", "kmeans")
#: NMF settings, chosen by measurement on the face DCGAN's maps (main.8, 128 channels, 64x64)
#: and the planted maps of the tests: "nndsvda" (SVD start, zeros filled with the mean)
#: converges in 15-75 coordinate-descent iterations at tol 1e-4, where "random" needs hundreds
#: and "nndsvd" up to twice as many (its exact zeros stay zero); 1000 iterations leave a wide
#: margin, so NMF does not stop early with a ConvergenceWarning at these settings.
NMF_OPTIONS = {"init": "nndsvda", "max_iter": 1000, "tol": 1e-4}


# ----------------------------------------------------------------------------- preprocessing

def preprocess(maps, window=3, percentile=75):
    """Smooth each map with a ``window`` box mean and binarise it at its own percentile: S.

    Example::

        binary = preprocess(influence_maps)            # [C, H, W] -> [C, H*W] of 0.0 / 1.0
        binary = preprocess(influence_maps, window=(3, 5), percentile=90)

    ``window`` is an int or an ``(h, w)`` pair; 1 means no smoothing. The box mean is the one of
    ``scipy.ndimage.uniform_filter(..., mode="nearest")`` (edge pixels replicated; an even window
    covers one more pixel before the centre than after it), computed as a direct correlation with
    a uniform kernel: ``uniform_filter``'s running sums leave ~1e-17 residues in zero regions,
    which the threshold would count as influence; the direct sum keeps zeros zero and gives
    identical neighbourhoods identical values.

    Threshold and ties: a pixel is 1 where its smoothed value is strictly greater than the map's
    own ``percentile``-th percentile (``np.percentile``, linear interpolation), so a constant map
    (all zeros included) gives an all-zero row, and a map whose top values are tied may give fewer
    ones than ``100 - percentile`` percent of the pixels.
    """
    maps = _check_maps(maps)
    window = _check_window(window)
    percentile = _check_percentile(percentile)
    kernel = np.full((1,) + window, 1.0 / (window[0] * window[1]))
    smoothed = ndimage.correlate(maps, kernel, mode="nearest")
    threshold = np.percentile(smoothed, percentile, axis=(1, 2), keepdims=True)
    binary = (smoothed > threshold).astype("float64")
    constant = maps.max(axis=(1, 2)) == maps.min(axis=(1, 2))
    binary[constant] = 0.0  # the tie rule, held exactly whatever the filter's rounding
    return binary.reshape(len(maps), -1)


# ----------------------------------------------------------------------------- clustering

@dataclasses.dataclass(frozen=True, eq=False)
class Clustering:
    """Modules found by :func:`cluster`: a label per channel, a template per module.

    Example::

        clustering = cluster(influence_maps, k=3)
        clustering.members(2)        # the layer's channel indices of module 2
        clustering.dead              # channels with an all-zero map, in no module
        tfcf.hybrid(g, "main.8", clustering.members(0), base=z1, source=z2)

    ``labels`` [C] gives the module of each map, in the order of the maps, and -1 for a dead
    channel (all-zero map: no influence, left out of the clustering). ``channels`` [C] is the
    layer's channel index of each map (``0..C-1`` unless :func:`cluster` was told otherwise), so
    :meth:`members` and :attr:`dead` are layer channels, ready for :func:`tfcf.hybrid`.

    ``templates`` is [k, H, W]; ``weights`` is [C, k] (zero rows for dead channels). For NMF the
    templates are the rows of H scaled to a peak of 1 and ``weights`` the matching columns of W
    (so ``weights @ templates`` is still the NMF reconstruction of S); for k-means the templates
    are the centroids (the fraction of each module's channels that are on at each pixel) and
    ``weights`` is the one-hot matrix of the labels. Modules are numbered by decreasing size,
    ties by decreasing template mass, so labels are reproducible.
    """

    labels: np.ndarray
    templates: np.ndarray
    weights: np.ndarray
    method: str
    k: int
    channels: np.ndarray = None

    def __post_init__(self):
        if self.channels is None:
            channels = np.arange(len(self.labels))
            channels.setflags(write=False)
            object.__setattr__(self, "channels", channels)

    def members(self, j):
        """Layer channel indices of module ``j``. Example: ``clustering.members(0)``."""
        if not isinstance(j, numbers.Integral) or not 0 <= j < self.k:
            raise ValueError(f"cluster index {j!r} is out of range; valid: 0 to {self.k - 1}")
        return self.channels[self.labels == j]

    @property
    def dead(self):
        """Layer channel indices of the all-zero maps, which are in no module."""
        return self.channels[self.labels < 0]

    @property
    def sizes(self):
        """Number of channels in each module, [k]."""
        return np.bincount(self.labels[self.labels >= 0], minlength=self.k)

    def to_dict(self):
        """Plain lists for JSON. Example: ``save_json("modules.json", clustering.to_dict())``."""
        return {
            "method": self.method,
            "k": self.k,
            "labels": self.labels.tolist(),
            "channels": self.channels.tolist(),
            "dead": self.dead.tolist(),
            "modules": [self.members(j).tolist() for j in range(self.k)],
            "sizes": self.sizes.tolist(),
            "templates": self.templates.tolist(),
            "weights": self.weights.tolist(),
        }


def live_channels(maps):
    """Indices of the maps that are not all zero (a dead unit has no influence to cluster).

    Example::

        live = tfcf.live_channels(maps)              # [C] maps -> indices of the live ones
        result = tfcf.stability(maps[live], ks=(2, 3, 4))

    :func:`cluster` and :func:`stability` leave dead channels out by themselves.
    """
    maps = _check_maps(maps)
    return np.flatnonzero(maps.any(axis=(1, 2)))


DEAD = ("drop", "raise")


def cluster(maps, k, method="nmf", window=3, percentile=75, seed=0, channels=None, dead="drop"):
    """Cluster channels by their influence maps [C, H, W] into ``k`` modules.

    Example::

        clustering = cluster(influence_maps, k=3)                   # NMF, as in the paper
        clustering.members(0)                                       # layer channels of module 0
        clustering = cluster(influence_maps, k=3, method="kmeans")  # the paper's comparison

    ``method="nmf"``: ``sklearn.decomposition.NMF`` (``init="nndsvda"``) on S = W H, where S is
    :func:`preprocess`'s binary matrix; each channel goes to the template with the largest weight
    in its row of W. ``method="kmeans"``: ``sklearn.cluster.KMeans`` (10 initialisations) on the
    same binary rows. ``seed`` fixes both. Influence maps must be finite and non-negative (NMF).

    Dead channels. A channel whose map is all zero (a dead ReLU unit: swapping it changes
    nothing) has no influence to cluster: with ``dead="drop"`` it is left out, labelled -1 and
    listed in ``clustering.dead``; ``dead="raise"`` refuses such maps. Either way the clustering
    speaks in the layer's channel indices: ``channels`` gives the layer's channel of each map
    (default ``0..C-1``; pass it when ``maps`` holds only some of the layer's channels), and
    :meth:`Clustering.members` returns those, ready for :func:`tfcf.hybrid`.
    """
    maps = _check_maps(maps)
    method = _check_method(method)
    channels = _check_channels(channels, len(maps))
    live = _live(maps, method, dead)
    k = _check_k(k, len(live), maps.shape[1] * maps.shape[2],
                 what=(f"the number of live maps ({len(live)} of {len(maps)}; "
                       f"{len(maps) - len(live)} are all zero)" if len(live) < len(maps)
                       else None))
    binary = preprocess(maps[live], window=window, percentile=percentile)
    with _one_thread():
        found = _cluster_binary(binary, maps.shape[1:], k, method, seed)
    if len(live) == len(maps) and channels is None:
        return found
    labels = np.full(len(maps), -1)
    labels[live] = found.labels
    weights = np.zeros((len(maps), k))
    weights[live] = found.weights
    channels = np.arange(len(maps)) if channels is None else channels
    for array in (labels, weights, channels):
        array.setflags(write=False)
    return Clustering(labels=labels, templates=found.templates, weights=weights,
                      method=method, k=k, channels=channels)


def _cluster_binary(binary, shape, k, method, seed):
    """Cluster the rows of a binary matrix; the work behind :func:`cluster`."""
    labels, templates, weights = _cluster_arrays(binary, shape, k, method, seed)
    return Clustering(labels=labels, templates=templates, weights=weights, method=method, k=k)


def _cluster_arrays(binary, shape, k, method, seed):
    """(labels [C], templates [k, H, W], weights [C, k]) of the rows of a binary matrix, read-only.

    Plain arrays, no tfcf class: :func:`stability` sends this function to worker processes."""
    if method == "nmf":
        from sklearn.decomposition import NMF

        # float32: S is 0/1 (exact), and the fit takes ~40% less time than in float64 with the
        # same labels on the maps measured
        model = NMF(n_components=k, random_state=seed, **NMF_OPTIONS)
        weights = model.fit_transform(binary.astype("float32")).astype("float64")
        templates = model.components_.astype("float64")
        peak = templates.max(axis=1)
        scale = np.where(peak > 0, peak, 1.0)
        templates /= scale[:, None]
        weights = weights * scale[None, :]
        labels = np.argmax(weights, axis=1)
    else:
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, n_init=10, random_state=seed)
        with warnings.catch_warnings():
            # k above the number of distinct binary rows: KMeans warns and leaves empty clusters,
            # which is what a stability scan over k is meant to expose, not an error.
            warnings.filterwarnings("ignore", message="Number of distinct clusters")
            labels = model.fit_predict(binary)
        templates = model.cluster_centers_.copy()
        weights = None
    sizes = np.bincount(labels, minlength=k)
    mass = templates.sum(axis=1)
    order = np.lexsort((np.arange(k), -mass, -sizes))  # last key is the primary one
    new_label = np.empty(k, dtype=int)
    new_label[order] = np.arange(k)
    labels = new_label[labels].astype(int)
    templates = templates[order]
    if weights is None:
        weights = np.eye(k)[labels]
    else:
        weights = weights[:, order]
    arrays = (labels, templates.reshape((k,) + tuple(shape)), weights)
    for array in arrays:
        array.setflags(write=False)
    return arrays


# ----------------------------------------------------------------------------- stability

@dataclasses.dataclass(frozen=True, eq=False)
class Stability:
    """Label consistency and template cosine similarity per number of clusters (Supp. Fig. 9).

    Example::

        result = stability(influence_maps, ks=(2, 3, 4))
        result.consistency_mean      # [len(ks)], mean over repeats
        save_json("stability.json", result.to_dict())

    ``consistency`` and ``cosine`` hold the raw values, [len(ks), repeats]; the ``_mean`` and
    ``_std`` properties reduce over repeats (``std`` is the population one, ``ddof=0``).
    """

    ks: tuple
    method: str
    repeats: int
    consistency: np.ndarray
    cosine: np.ndarray
    seed: int = 0
    window: tuple = (3, 3)
    percentile: float = 75.0

    @property
    def consistency_mean(self):
        return self.consistency.mean(axis=1)

    @property
    def consistency_std(self):
        return self.consistency.std(axis=1)

    @property
    def cosine_mean(self):
        return self.cosine.mean(axis=1)

    @property
    def cosine_std(self):
        return self.cosine.std(axis=1)

    def to_dict(self):
        """Plain lists for JSON. Example: ``save_json("stability.json", result.to_dict())``."""
        return {
            "method": self.method,
            "ks": list(self.ks),
            "repeats": self.repeats,
            "seed": self.seed,
            "window": list(self.window),
            "percentile": self.percentile,
            "consistency_mean": self.consistency_mean.tolist(),
            "consistency_std": self.consistency_std.tolist(),
            "cosine_mean": self.cosine_mean.tolist(),
            "cosine_std": self.cosine_std.tolist(),
            "consistency": self.consistency.tolist(),
            "cosine": self.cosine.tolist(),
        }


def stability(maps, ks=(2, 3, 4, 5, 6), method="nmf", repeats=20, seed=0, window=3,
              percentile=75, progress=True, dead="drop", n_jobs=None):
    """Cluster stability across ``ks``: the paper's three-subset protocol, ``repeats`` times.

    Example::

        nmf = stability(influence_maps, ks=range(2, 7))
        kmeans = stability(influence_maps, ks=range(2, 7), method="kmeans")
        fig = tfcf.plots.stability_figure([nmf, kmeans])

    For each repeat the maps are split at random into three near-equal subsets A, B, C (a NumPy
    Generator seeded with ``(seed, repeat)``, so every k sees the same splits); A∪C and B∪C are
    clustered separately (clustering seed ``seed``), the clusters of the second run are matched
    to the first with the Hungarian algorithm so as to maximise the number of maps of C given
    the same label, and

    * consistency = fraction of C with the same matched label;
    * cosine = mean over matched pairs of the cosine similarity of the two runs' templates
      (flattened; 0 for a pair where a template is all zero).

    The binary maps are computed once for all maps (preprocessing is per map). Dead channels
    (all-zero maps) are left out first, as in :func:`cluster` (``dead="raise"`` refuses them).

    ``n_jobs``: processes for the fits (joblib; each fit single-threaded). None: one per core
    when there are at least 16 fit pairs, else this process; 1: this process. Every fit is
    seeded, so the result is the same whatever ``n_jobs``.
    """
    maps = _check_maps(maps)
    method = _check_method(method)
    maps = maps[_live(maps, method, dead)]
    window = _check_window(window)
    percentile = _check_percentile(percentile)
    count = len(maps)
    if count < 3:
        raise ValueError(f"stability needs at least 3 maps to split in 3 subsets, got {count}")
    if not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if n_jobs is not None and (not isinstance(n_jobs, numbers.Integral) or n_jobs == 0
                               or n_jobs < -1):
        raise ValueError(f"n_jobs must be None, -1 (every core) or a positive integer, got "
                         f"{n_jobs!r}")
    run_size = count - int(np.ceil(count / 3))  # the smaller of |A u C| and |B u C|
    ks = tuple(int(_check_k(k, run_size, maps.shape[1] * maps.shape[2],
                            what=f"the {run_size} maps of each stability run"))
               for k in (tuple(ks) if np.ndim(ks) else (ks,)))
    if not ks:
        raise ValueError("ks is empty; give at least one number of clusters, e.g. ks=(2, 3, 4)")
    binary = preprocess(maps, window=window, percentile=percentile)
    shape = maps.shape[1:]
    splits = [_three_way_split(count, seed, repeat) for repeat in range(repeats)]
    tasks = [(i, repeat, k) for i, k in enumerate(ks) for repeat in range(repeats)]
    cores = os.cpu_count() or 1
    jobs = (cores if len(tasks) >= 16 else 1) if n_jobs is None else (
        cores if n_jobs == -1 else int(n_jobs))
    consistency = np.zeros((len(ks), repeats))
    cosine = np.zeros((len(ks), repeats))
    with progress_bar(len(tasks), progress, f"stability ({method})", "fit pair") as bar:
        for (i, repeat, _), value in zip(tasks, _fit_pairs(binary, shape, tasks, splits, method,
                                                           seed, min(jobs, len(tasks)))):
            consistency[i, repeat], cosine[i, repeat] = value
            bar.update(1)
    consistency.setflags(write=False)
    cosine.setflags(write=False)
    return Stability(ks=ks, method=method, repeats=int(repeats), consistency=consistency,
                     cosine=cosine, seed=seed, window=window, percentile=percentile)


def _one_thread():
    """BLAS and OpenMP limited to one thread (see the module docstring: Speed)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def _fit_pair(binary, shape, k, method, seed, split, limit=True):
    """One stability fit pair: cluster A∪C and B∪C, match on C -> (consistency, cosine)."""
    part_a, part_b, part_c = split
    if limit:
        with _one_thread():
            return _fit_pair(binary, shape, k, method, seed, split, limit=False)
    first = _cluster_arrays(binary[np.concatenate([part_a, part_c])], shape, k, method, seed)
    second = _cluster_arrays(binary[np.concatenate([part_b, part_c])], shape, k, method, seed)
    return _match(first, second, len(part_a), len(part_b), len(part_c))


def _fit_pairs(binary, shape, tasks, splits, method, seed, jobs):
    """The fit pairs of ``tasks`` [(k index, repeat, k)], in order, in ``jobs`` processes."""
    if jobs <= 1:
        with _one_thread():
            for _, repeat, k in tasks:
                yield _fit_pair(binary, shape, k, method, seed, splits[repeat], limit=False)
        return
    import cloudpickle
    import joblib

    # The workers get this module's code by value: unpickling it by reference would import
    # tfcf, hence TensorFlow (several seconds per worker), for functions that need only NumPy,
    # SciPy and scikit-learn. The large binary matrix is memory-mapped once by joblib.
    # A few large tasks per process: each task carries this code, the splits and the matrix.
    module = sys.modules[__name__]
    chunks = [chunk for chunk in np.array_split(np.arange(len(tasks)), 4 * jobs) if len(chunk)]
    cloudpickle.register_pickle_by_value(module)
    try:
        for values in joblib.Parallel(n_jobs=jobs, return_as="generator")(
                joblib.delayed(_fit_chunk)(binary, shape, [tasks[i][1:] for i in chunk],
                                           splits, method, seed) for chunk in chunks):
            yield from values
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def _fit_chunk(binary, shape, tasks, splits, method, seed):
    """The fit pairs of ``tasks`` [(repeat, k)] in one process, one thread."""
    with _one_thread():
        return [_fit_pair(binary, shape, k, method, seed, splits[repeat], limit=False)
                for repeat, k in tasks]


def _three_way_split(count, seed, repeat):
    """A random partition of ``range(count)`` into three near-equal parts A, B, C."""
    rng = np.random.default_rng([seed, repeat])
    return np.array_split(rng.permutation(count), 3)


def _match(first, second, size_a, size_b, size_c):
    """Hungarian-match the two runs' clusters on the shared subset C: (consistency, cosine).

    ``first`` and ``second`` are (labels, templates, ...) of the two runs."""
    k = len(first[1])
    labels_1 = first[0][size_a:]   # C is the tail of both runs
    labels_2 = second[0][size_b:]
    overlap = np.zeros((k, k))
    np.add.at(overlap, (labels_1, labels_2), 1)
    rows, columns = optimize.linear_sum_assignment(overlap, maximize=True)
    consistency = overlap[rows, columns].sum() / size_c
    templates_1 = first[1].reshape(k, -1)[rows]
    templates_2 = second[1].reshape(k, -1)[columns]
    norms = np.linalg.norm(templates_1, axis=1) * np.linalg.norm(templates_2, axis=1)
    dots = np.sum(templates_1 * templates_2, axis=1)
    cosines = np.divide(dots, norms, out=np.zeros(k), where=norms > 0)
    return float(consistency), float(cosines.mean())


# ----------------------------------------------------------------------------- validation

def _check_maps(maps):
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"influence maps must be an array [C, H, W] (rank 3), "
                         f"got shape {maps.shape}")
    if not np.issubdtype(maps.dtype, np.number) or np.issubdtype(maps.dtype, np.complexfloating):
        raise ValueError(f"influence maps must be real numbers, got dtype {maps.dtype}")
    if 0 in maps.shape:
        raise ValueError(f"influence maps are empty: shape {maps.shape}")
    maps = maps.astype("float64")
    bad = ~np.isfinite(maps)
    if bad.any():
        channels = np.flatnonzero(bad.any(axis=(1, 2)))
        raise ValueError(f"influence maps contain {int(bad.sum())} NaN or infinite values, in "
                         f"{len(channels)} maps (channels {_few(channels)})")
    return maps


def _live(maps, method, dead):
    """Indices of the maps to cluster: checks the values, drops or refuses all-zero maps."""
    if dead not in DEAD:
        raise ValueError(f"unknown dead={dead!r}; valid: 'drop' (leave all-zero maps out), "
                         "'raise'")
    if method == "nmf" and (maps < 0).any():
        channels = np.flatnonzero((maps < 0).any(axis=(1, 2)))
        raise ValueError(f"NMF needs non-negative influence maps (influence maps are >= 0), but "
                         f"{len(channels)} maps have negative values (minimum {maps.min():g}; "
                         f"channels {_few(channels)})")
    zero = np.flatnonzero(~maps.any(axis=(1, 2)))
    if len(zero) == len(maps) or (len(zero) and dead == "raise"):
        raise ValueError(f"{len(zero)} of {len(maps)} influence maps are all zero (channels "
                         f"{_few(zero)}); influence maps must be non-negative and not all zero"
                         + (": pass dead='drop' to leave those channels (dead units) out"
                            if len(zero) < len(maps) else ": every channel is dead"))
    return np.flatnonzero(maps.any(axis=(1, 2)))


def _check_channels(channels, count):
    """The layer channel index of each map, or None."""
    if channels is None:
        return None
    values = np.asarray(channels)
    if values.ndim != 1 or len(values) != count or (
            len(values) and not np.issubdtype(values.dtype, np.integer)):
        raise ValueError(f"channels must give one integer channel index per map ({count} maps), "
                         f"got {channels!r}")
    if len(np.unique(values)) != len(values):
        raise ValueError(f"channels holds repeated indices: {channels!r}")
    return values.astype(int)


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; valid: 'nmf', 'kmeans'")
    return method


def _check_k(k, count, pixels, what=None):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"number of clusters k must be an integer, got {k!r}")
    what = what or f"the number of maps ({count})"
    if k < 1:
        raise ValueError(f"number of clusters k={k} must be at least 1")
    if k > count:
        raise ValueError(f"number of clusters k={k} is larger than {what}; valid: 1 to {count}")
    if k > pixels:
        raise ValueError(f"number of clusters k={k} is larger than the {pixels} pixels of a map")
    return int(k)


def _check_window(window):
    pair = (window, window) if np.ndim(window) == 0 else tuple(window)
    if len(pair) != 2 or not all(isinstance(w, numbers.Integral) and not isinstance(w, bool)
                                 for w in pair):
        raise ValueError(f"window must be an integer or an (h, w) pair of integers, got {window!r}")
    if min(pair) < 1:
        raise ValueError(f"window {window!r} must be at least 1 (1 = no smoothing)")
    return tuple(int(w) for w in pair)


def _check_percentile(percentile):
    if not isinstance(percentile, numbers.Real) or not 0 <= percentile < 100:
        raise ValueError(f"percentile must be in [0, 100), got {percentile!r} (0 keeps the support: "
                         "every pixel above the map's minimum)")
    return float(percentile)


def _few(indices, shown=8):
    listed = ", ".join(str(int(i)) for i in indices[:shown])
    return listed + (", ..." if len(indices) > shown else "")
