"""Golden-label tests for tfcf.modules: preprocessing, clustering, stability; and their plots."""

import itertools
import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from tfcf import modules, plots
from tfcf.io import save_figure

SIZES = (12, 9, 7)  # channels per planted module: distinct, so the size ordering is known


def planted_templates(size=16):
    """Three disjoint spatial templates: top band, middle blob, bottom band."""
    y, x = np.mgrid[:size, :size]
    top = y < 4
    blob = (y >= 6) & (y < 10) & (x >= 4) & (x < 12)
    bottom = y >= 12
    return np.stack([top, blob, bottom]).astype("float64")


def planted_maps(noise=0.02, seed=0):
    """Maps = positive gain x template + small uniform noise, shuffled; returns maps, truth."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), SIZES)
    gains = rng.uniform(0.5, 2.0, len(truth))
    maps = gains[:, None, None] * planted_templates()[truth]
    maps = maps + noise * rng.random(maps.shape)
    order = rng.permutation(len(truth))
    return maps[order], truth[order]


def hand_box_mean(image, height, width):
    """Mean over the box [i - h//2, i - h//2 + h) x [j - w//2, ...), edges replicated."""
    rows, cols = image.shape
    out = np.empty_like(image)
    for i in range(rows):
        for j in range(cols):
            values = [image[min(max(a, 0), rows - 1), min(max(b, 0), cols - 1)]
                      for a in range(i - height // 2, i - height // 2 + height)
                      for b in range(j - width // 2, j - width // 2 + width)]
            out[i, j] = sum(values) / len(values)
    return out


# ----------------------------------------------------------------------------- preprocess

@pytest.mark.parametrize("window, percentile", [(3, 75), ((2, 4), 60), (1, 75), ((1, 3), 90)])
def test_preprocess_equals_hand_box_mean_and_percentile(window, percentile):
    maps = np.random.default_rng(1).random((3, 5, 6))
    height, width = (window, window) if np.ndim(window) == 0 else window
    golden = []
    for image in maps:
        smooth = hand_box_mean(image, height, width)
        golden.append((smooth > np.percentile(smooth, percentile)).ravel())
    ours = modules.preprocess(maps, window=window, percentile=percentile)
    assert ours.shape == (3, 30) and ours.dtype == np.float64
    np.testing.assert_array_equal(ours, np.array(golden, dtype="float64"))


def test_preprocess_constant_map_is_all_zero_and_zeros_stay_zero():
    """A constant map has no pixel above its percentile; zero regions are not smoothed into ones.

    At the 50th percentile the smoothed band's and blob's thresholds are 0 (most pixels are
    untouched), so their ones are exactly the pixels the 3x3 box reaches: the support grown by
    one pixel, whatever the gain. (``uniform_filter``'s running sums leave ~1e-17 residues in the
    zero region after 0.61 x blob, and 119 pixels instead of 60 would come out.)
    """
    band, blob = planted_templates()[:2]
    maps = np.stack([np.full((16, 16), 0.37), 1.37 * band, 0.61 * blob])
    ours = modules.preprocess(maps, window=3, percentile=50).reshape(3, 16, 16)
    grown_band, grown_blob = np.zeros((2, 16, 16))
    grown_band[:5] = 1.0
    grown_blob[5:11, 3:13] = 1.0
    np.testing.assert_array_equal(ours[0], 0.0)
    np.testing.assert_array_equal(ours[1], grown_band)
    np.testing.assert_array_equal(ours[2], grown_blob)


# ----------------------------------------------------------------------------- cluster

@pytest.mark.parametrize("method", ["nmf", "kmeans"])
def test_cluster_recovers_planted_modules(method):
    maps, truth = planted_maps()
    clustering = modules.cluster(maps, k=3, method=method)
    assert adjusted_rand_score(truth, clustering.labels) == 1.0
    # modules numbered by decreasing size: the planted sizes 12 > 9 > 7 are the planted order
    np.testing.assert_array_equal(clustering.labels, truth)
    np.testing.assert_array_equal(clustering.sizes, SIZES)
    planted_support = modules.preprocess(planted_templates()).reshape(3, 16, 16)
    np.testing.assert_array_equal(clustering.templates > 0.5, planted_support > 0.5)
    for j in range(3):
        np.testing.assert_array_equal(clustering.members(j), np.flatnonzero(truth == j))
    assert clustering.templates.shape == (3, 16, 16) and clustering.weights.shape == (28, 3)
    assert clustering.method == method and clustering.k == 3


@pytest.mark.parametrize("method", ["nmf", "kmeans"])
def test_dead_channels_are_left_out_and_members_are_layer_channels(method):
    """Dead channels interleaved with the planted ones: the live maps cluster as they do alone,
    and members() names the layer's channels, not the rows of the live maps."""
    maps, truth = planted_maps()
    layer = np.zeros((len(maps) + 6,) + maps.shape[1:])
    dead = np.array([0, 4, 5, 17, 30, 33])
    live = np.setdiff1d(np.arange(len(layer)), dead)
    layer[live] = maps
    clustering = modules.cluster(layer, k=3, method=method)
    alone = modules.cluster(maps, k=3, method=method)
    np.testing.assert_array_equal(clustering.dead, dead)
    np.testing.assert_array_equal(clustering.labels[dead], -1)
    np.testing.assert_array_equal(clustering.labels[live], alone.labels)
    np.testing.assert_array_equal(clustering.templates, alone.templates)
    np.testing.assert_array_equal(clustering.sizes, SIZES)
    for j in range(3):
        # by hand: the layer channels holding the maps of planted module j
        np.testing.assert_array_equal(clustering.members(j), live[truth == j])
    assert clustering.weights.shape == (34, 3) and not clustering.weights[dead].any()
    assert clustering.to_dict()["dead"] == dead.tolist()
    # maps of some of the layer's channels: members() speaks in those channels
    picked = np.arange(100, 100 + len(layer))
    named = modules.cluster(layer, k=3, method=method, channels=picked)
    for j in range(3):
        np.testing.assert_array_equal(named.members(j), picked[live[truth == j]])
    np.testing.assert_array_equal(named.dead, picked[dead])
    # stability drops the dead maps the same way
    result = modules.stability(layer, ks=(3,), method=method, repeats=2, progress=False)
    expected = modules.stability(maps, ks=(3,), method=method, repeats=2, progress=False)
    np.testing.assert_array_equal(result.consistency, expected.consistency)


def test_nmf_templates_and_weights_factorise_clean_binary_maps():
    """Noise-free maps: S has exactly three distinct rows; W H reproduces it, W is one-hot."""
    maps, truth = planted_maps(noise=0.0)
    clustering = modules.cluster(maps, k=3, method="nmf")
    binary = modules.preprocess(maps)
    np.testing.assert_allclose(clustering.weights @ clustering.templates.reshape(3, -1), binary,
                               atol=1e-3)
    np.testing.assert_allclose(clustering.weights, np.eye(3)[truth], atol=1e-3)
    np.testing.assert_allclose(clustering.templates.reshape(3, -1), binary[[
        np.flatnonzero(truth == j)[0] for j in range(3)]], atol=1e-3)


def test_kmeans_weights_are_one_hot_and_templates_centroids():
    maps, truth = planted_maps()
    clustering = modules.cluster(maps, k=3, method="kmeans")
    binary = modules.preprocess(maps)
    np.testing.assert_array_equal(clustering.weights, np.eye(3)[truth])
    for j in range(3):
        np.testing.assert_allclose(clustering.templates[j].ravel(),
                                   binary[truth == j].mean(axis=0), atol=1e-12)


@pytest.mark.parametrize("method", ["nmf", "kmeans"])
def test_labels_reproducible_and_independent_of_channel_order(method):
    maps, _ = planted_maps(seed=3)
    first = modules.cluster(maps, k=3, method=method, seed=7)
    again = modules.cluster(maps, k=3, method=method, seed=7)
    np.testing.assert_array_equal(first.labels, again.labels)
    np.testing.assert_array_equal(first.templates, again.templates)
    order = np.random.default_rng(0).permutation(len(maps))
    permuted = modules.cluster(maps[order], k=3, method=method, seed=7)
    np.testing.assert_array_equal(permuted.labels, first.labels[order])


def test_equal_sizes_are_ordered_by_template_mass():
    """Two modules of 5 channels: the one with the larger support is module 0, in any order."""
    templates = planted_templates()[[1, 0]]  # blob (60 smoothed pixels) first, top band (64) second
    truth = np.array([0, 1] * 5)
    maps = np.random.default_rng(0).uniform(0.5, 2, (10, 1, 1)) * templates[truth]
    for method in ("nmf", "kmeans"):
        clustering = modules.cluster(maps, k=2, method=method)
        np.testing.assert_array_equal(clustering.labels, 1 - truth)


# ----------------------------------------------------------------------------- stability

@pytest.mark.parametrize("method", ["nmf", "kmeans"])
def test_stability_is_one_on_separable_maps_and_lower_for_wrong_k(method):
    maps, _ = planted_maps(noise=0.0)
    result = modules.stability(maps, ks=(2, 3), method=method, repeats=5, progress=False)
    assert result.ks == (2, 3) and result.consistency.shape == (2, 5)
    np.testing.assert_array_equal(result.consistency[1], 1.0)
    np.testing.assert_allclose(result.cosine[1], 1.0, atol=1e-6)
    # k = 2 must merge two of the three modules; which two depends on the random thirds
    assert result.consistency_mean[0] < 0.99 and result.cosine_mean[0] < 0.99
    np.testing.assert_allclose(result.consistency_std, result.consistency.std(axis=1))
    record = json.loads(json.dumps(result.to_dict()))
    assert record["method"] == method and record["ks"] == [2, 3] and len(record["cosine"][0]) == 5
    np.testing.assert_allclose(record["cosine_mean"], result.cosine_mean)


def test_stability_equals_brute_force_matching_on_the_overlap():
    """Repeat 0 by hand: thirds from default_rng([seed, 0]); best of all k! label matchings."""
    maps, _ = planted_maps(noise=1.0, seed=0)
    k, seed = 4, 2
    result = modules.stability(maps, ks=(k,), repeats=1, seed=seed, progress=False)
    part_a, part_b, part_c = np.array_split(np.random.default_rng([seed, 0]).permutation(28), 3)
    first = modules.cluster(maps[np.concatenate([part_a, part_c])], k, seed=seed)
    second = modules.cluster(maps[np.concatenate([part_b, part_c])], k, seed=seed)
    labels_1, labels_2 = first.labels[len(part_a):], second.labels[len(part_b):]
    best = max(itertools.permutations(range(k)),
               key=lambda p: np.mean(np.array(p)[labels_1] == labels_2))
    consistency = np.mean(np.array(best)[labels_1] == labels_2)
    cosines = [np.dot(first.templates[a].ravel(), second.templates[best[a]].ravel())
               / np.linalg.norm(first.templates[a]) / np.linalg.norm(second.templates[best[a]])
               for a in range(k)]
    assert 0 < consistency < 1  # a case where the matching matters
    assert result.consistency[0, 0] == pytest.approx(consistency, abs=1e-12)
    assert result.cosine[0, 0] == pytest.approx(np.mean(cosines), abs=1e-12)


# ----------------------------------------------------------------------------- bad input

MAPS, _ = planted_maps()


def _zeroed():
    maps = MAPS.copy()
    maps[[3, 8]] = 0.0
    return maps


def _with_nan():
    maps = MAPS.copy()
    maps[5, 2, 2] = np.nan
    return maps


@pytest.mark.parametrize("call, message", [
    (lambda: modules.cluster(MAPS[0], 3), r"\[C, H, W\].*got shape \(16, 16\)"),
    (lambda: modules.preprocess(MAPS[None]), r"got shape \(1, 28, 16, 16\)"),
    (lambda: modules.cluster(MAPS, 0), r"k=0 must be at least 1"),
    (lambda: modules.cluster(MAPS, 29), r"k=29 is larger than the number of maps \(28\)"),
    (lambda: modules.cluster(MAPS, 3, method="pca"), r"'pca'.*'nmf', 'kmeans'"),
    (lambda: modules.cluster(_zeroed(), 3, dead="raise"),
     r"2 of 28 influence maps are all zero \(channels 3, 8\).*non-negative and not all zero"
     r".*dead='drop'"),
    (lambda: modules.cluster(np.zeros((4, 5, 5)), 2), r"4 of 4 .*all zero.*every channel is dead"),
    (lambda: modules.cluster(_zeroed(), 27), r"k=27 is larger than the number of live maps "
                                             r"\(26 of 28; 2 are all zero\)"),
    (lambda: modules.cluster(MAPS, 3, dead="keep"), r"dead='keep'.*'drop'.*'raise'"),
    (lambda: modules.cluster(MAPS, 3, channels=range(27)), r"one integer channel index per map "
                                                           r"\(28 maps\)"),
    (lambda: modules.cluster(MAPS, 3, channels=[0] * 28), r"repeated indices"),
    (lambda: modules.cluster(MAPS - 0.5, 3),
     r"NMF needs non-negative.*28 maps have negative values \(minimum -0\.49"),
    (lambda: modules.cluster(MAPS, 3, percentile=100), r"in \[0, 100\), got 100"),
    (lambda: modules.preprocess(MAPS, percentile=-1), r"in \[0, 100\), got -1"),
    (lambda: modules.preprocess(MAPS, window=0), r"window 0 must be at least 1"),
    (lambda: modules.preprocess(MAPS, window=(3, 0)), r"window \(3, 0\) must be at least 1"),
    (lambda: modules.cluster(_with_nan(), 3), r"1 NaN.*channels 5"),
    (lambda: modules.stability(MAPS, ks=(2, 20), progress=False),
     r"k=20 is larger than the 18 maps of each stability run"),
    (lambda: modules.stability(MAPS, method="spectral", progress=False), r"'spectral'"),
    (lambda: modules.cluster(MAPS, 3).members(3), r"cluster index 3.*0 to 2"),
])
def test_bad_input_names_the_bad_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- plots

def test_plots_have_their_panels_titles_and_save(tmp_path):
    maps, _ = planted_maps()
    clustering = modules.cluster(maps, k=3)
    figure = plots.cluster_figure(maps, clustering, examples=2, title="planted")
    # 3 rows x (template + 2 examples) + a template colour bar per row + one shared bar
    assert len(figure.axes) == 3 * 3 + 3 + 1
    assert [figure.axes[0].get_ylabel(), figure.axes[0].get_title()] == [
        "C0 (12 channels)", "C0 template"]
    assert all(a.get_title().startswith("ch ") for a in figure.axes[1:3])
    # one absolute colour scale for every example map by default, per-map only on request
    shown = [image for axis in figure.axes for image in axis.get_images()
             if image.get_cmap().name == "viridis"]
    assert len({image.get_clim() for image in shown}) == 1
    assert shown[0].get_clim()[1] == pytest.approx(max(image.get_array().max() for image in shown))
    per_map = plots.cluster_figure(maps, clustering, examples=2, normalise=True)
    assert any("per map" in axis.get_ylabel() for axis in per_map.axes)
    assert save_figure(figure, tmp_path / "clusters.png").stat().st_size > 5000

    results = [modules.stability(maps, ks=(2, 3), method=m, repeats=2, progress=False)
               for m in ("nmf", "kmeans")]
    figure = plots.stability_figure(results)
    assert len(figure.axes) == 2
    assert [a.get_xlabel() for a in figure.axes] == ["number of clusters"] * 2
    assert [a.get_ylim() for a in figure.axes] == [(0, 1.05)] * 2
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels == ["NMF (2 repeats)", "k-means (2 repeats)"]
    assert save_figure(figure, tmp_path / "stability.png").stat().st_size > 5000

    figure = plots.magnitude_figure([2, 3], [0.5, 0.4], [[10, 20], [5, 10, 15]],
                                    [[1.0, 2.0], [0.5, 1.0, 1.5]])
    top, bottom = figure.axes
    assert top.get_ylabel() == "average module influence"
    legend = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert "least squares: slope 0.1, $R^2$ = 1.00" in legend  # y = x / 10 exactly
    assert save_figure(figure, tmp_path / "magnitude.png").stat().st_size > 5000

    figure = plots.influence_maps_figure(maps, channels=range(10), columns=4)
    assert len(figure.axes) == 10 + 1
    assert [a.get_title() for a in figure.axes[:3]] == ["ch 0", "ch 1", "ch 2"]
    assert save_figure(figure, tmp_path / "maps.png").stat().st_size > 5000


def test_module_hybrid_figure_shows_each_change_on_one_scale(tmp_path):
    rng = np.random.default_rng(0)
    original_1 = rng.uniform(-1, 1, (3, 8, 8, 3))
    original_2 = rng.uniform(-1, 1, (3, 8, 8, 3))
    hybrids = np.stack([original_1, original_1 + 0.5 * (original_2 - original_1)])
    hybrids[0, :, :4] = original_2[:, :4]             # module C0 changes the top half only
    templates = rng.uniform(0, 1, (2, 4, 4))
    reals = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    figure = plots.module_hybrids_figure((original_1, original_2), hybrids, templates,
                                         reals=reals, sizes=[5, 7], title="t")
    labels = [axis.get_ylabel() for axis in figure.axes if axis.get_ylabel()]
    assert labels[:4] == ["Real 1", "Original 1\n(reconstruction)", "Real 2",
                          "Original 2\n(reconstruction)"]
    assert "C0 hybrid, 5 ch" in labels and "C1 |hybrid -\nOriginal 1|" in labels
    differences = [image for axis in figure.axes for image in axis.get_images()
                   if image.get_cmap().name == "magma" and image.get_array().shape == (8, 8)]
    assert len(differences) == 6 and len({image.get_clim() for image in differences}) == 1
    expected = np.abs(hybrids - original_1).mean(axis=-1)
    np.testing.assert_allclose(differences[0].get_array(), expected[0, 0])
    assert differences[0].get_clim() == (0, pytest.approx(expected.max()))
    assert np.all(differences[0].get_array()[4:] == 0)       # the bottom half is untouched
    assert [axis.get_title() for axis in figure.axes if "template" in axis.get_title()] == [
        "C0 template", "C1 template"]
    assert save_figure(figure, tmp_path / "hybrids.png").stat().st_size > 5000


# ----------------------------------------------------------------------------- speed settings

def realistic_maps(count=96, size=32, seed=0):
    """Maps like a DCGAN layer's: smooth blobs of varied size, place and strength, overlapping
    modules, a floor of diffuse influence everywhere, noise, and a few dead channels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    centres = rng.uniform(0.15, 0.85, (5, 2))
    maps = np.empty((count, size, size))
    for index in range(count):
        weights = rng.dirichlet(np.full(len(centres), 0.3))
        image = np.zeros((size, size))
        for weight, (cy, cx) in zip(weights, centres + rng.normal(0, 0.05, centres.shape)):
            width = rng.uniform(0.08, 0.25)
            image += weight * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width ** 2))
        maps[index] = rng.gamma(2.0, 0.02) * (image + 0.1 + 0.05 * rng.random((size, size)))
    maps[rng.choice(count, 3, replace=False)] = 0.0
    return maps


def test_stability_in_two_processes_equals_the_serial_run():
    maps = realistic_maps(count=48, size=16)
    for method in ("nmf", "kmeans"):
        serial = modules.stability(maps, ks=(2, 4), repeats=3, method=method, seed=5,
                                   progress=False, n_jobs=1)
        parallel = modules.stability(maps, ks=(2, 4), repeats=3, method=method, seed=5,
                                     progress=False, n_jobs=2)
        np.testing.assert_array_equal(parallel.consistency, serial.consistency)
        np.testing.assert_array_equal(parallel.cosine, serial.cosine)
        assert serial.consistency.min() < 1.0            # not trivially all ones


def test_default_settings_raise_no_convergence_warning():
    from sklearn.exceptions import ConvergenceWarning
    import warnings

    maps = realistic_maps()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for k in (2, 3, 4, 5, 6):
            assert modules.cluster(maps, k).k == k
            assert modules.cluster(maps, k, method="kmeans").k == k
        assert modules.stability(maps, repeats=3, progress=False, n_jobs=1).repeats == 3
        assert modules.stability(maps, repeats=3, method="kmeans", progress=False,
                                 n_jobs=1).repeats == 3
