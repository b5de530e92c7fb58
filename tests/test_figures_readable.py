"""Figures a researcher can read at a glance: the numbers they draw, recomputed in NumPy."""

import numpy as np
import pytest

from tfcf.plots import distance_table_figure, plt
from tfcf.plots_spectral import (SDR_RANGE, beyond_range, bootstrap_interval, scale_errors_figure,
                                 sdr_evolution_figure, sdr_evolution_summary,
                                 sdr_histograms_figure, series_figure, standard_error)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def numpy_bootstrap(values, statistic, resamples, confidence, seed):
    rows = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    tail = (1 - confidence) / 2
    return np.quantile(statistic(values[rows], axis=1), [tail, 1 - tail], axis=0)


def legend_texts(axis):
    return [text.get_text() for text in axis.get_legend().get_texts()]


def test_bootstrap_interval_matches_numpy():
    values = np.random.default_rng(1).lognormal(size=(7, 3))
    low, high = bootstrap_interval(values, np.mean, resamples=1000, confidence=0.95, seed=3)
    np.testing.assert_allclose([low, high], numpy_bootstrap(values, np.mean, 1000, 0.95, 3))
    assert np.all(low <= values.mean(axis=0)) and np.all(values.mean(axis=0) <= high)
    # 5,000 values are resampled in chunks: the same stream as one draw
    rho = np.random.default_rng(2).normal(1.0, 0.3, 5000)
    np.testing.assert_allclose(bootstrap_interval(rho, np.median, 1000, 0.9, seed=0),
                               numpy_bootstrap(rho, np.median, 1000, 0.9, 0))
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval(np.zeros(0))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval(rho, confidence=95)


def test_scale_error_bars_are_means_with_standard_errors():
    rng = np.random.default_rng(0)
    errors = {"coarse": rng.uniform(0.5, 1.5, (5, 3)) * [1.0, 0.1, 0.001],
              "fine": rng.uniform(0.5, 1.5, (5, 3)) * [0.01, 0.01, 0.01]}
    np.testing.assert_allclose(standard_error(errors["fine"]),
                               errors["fine"].std(axis=0, ddof=1) / np.sqrt(5))
    assert np.isnan(standard_error(np.ones((1, 3)))).all()
    figure = scale_errors_figure(errors, title="stretch")
    (axis,) = figure.axes
    groups = [c for c in axis.containers if type(c).__name__ == "BarContainer"]
    assert len(groups) == 2                    # one group of bars per perturbed level
    for container, values in zip(groups, errors.values()):
        np.testing.assert_allclose([bar.get_height() for bar in container], values.mean(axis=0))
        segments = container.errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose([segment[:, 1] for segment in segments],
                                   np.stack([values.mean(axis=0) - standard_error(values),
                                             values.mean(axis=0) + standard_error(values)], 1))
    colours = {container.patches[0].get_facecolor() for container in groups}
    assert len(colours) == 2
    assert axis.get_yscale() == "log" and "log scale" in axis.get_ylabel()   # 3 decades
    ticks = [label.get_text() for label in axis.get_xticklabels()]
    assert ticks[0] == "1\n(coarsest)" and ticks[-1] == "3\n(finest)"
    assert axis.get_xlabel() == "wavelet scale"
    assert axis.get_legend().get_title().get_text() == "perturbed layer"
    flat = scale_errors_figure({"one": rng.uniform(1.0, 2.0, (4, 3))}).axes[0]
    assert flat.get_yscale() == "linear" and "log" not in flat.get_ylabel()


def test_histograms_state_the_share_beyond_the_range():
    data = np.array([-0.5, 0.1, 1.0, 2.0, 3.0, 4.0, np.nan])
    assert beyond_range(data, *SDR_RANGE) == pytest.approx((1 / 6, 2 / 6))
    assert np.isnan(beyond_range([np.nan], 0, 1)).all()
    figure = sdr_histograms_figure({"generator": {32: data, 16: np.ones(4)},
                                    "discriminator": {32: np.full(5, 2.0)}})
    assert [axis.get_title() for axis in figure.axes] == ["32x32 resolution",
                                                          "16x16 resolution"]
    texts = legend_texts(figure.axes[0])
    assert "16.7% < 0, 33.3% > 2.5" in texts[0] and "0.0% < 0, 0.0% > 2.5" in texts[1]
    assert figure.axes[0].get_legend().get_title().get_text() == "share beyond the plotted range"


def test_series_bands_and_shared_axis():
    steps = [100, 200, 300]
    series = {"plain": np.array([1.0, 2.0, 3.0]), "penalty": np.array([1.0, 1.5, 2.0])}
    bands = {name: (values * 0.9, values * 1.1) for name, values in series.items()}
    figure = series_figure(steps, series, "mean squared error", bands=bands,
                           band_label="95 % bootstrap interval", shared_values=[0.001, 5.0])
    axis = figure.axes[0]
    shaded = [c for c in axis.collections if type(c).__name__ in ("PolyCollection",
                                                                    "FillBetweenPolyCollection")]
    assert len(shaded) == 2
    assert legend_texts(axis) == ["plain", "penalty", "95 % bootstrap interval"]
    # the shared values span 3.7 decades: log axis covering them, like any figure sharing them
    assert axis.get_yscale() == "log" and "(log scale)" in axis.get_ylabel()
    low, high = axis.get_ylim()
    assert low <= 0.001 and high >= 5.0
    other = series_figure(steps, {"x": [0.01, 0.02, 0.03]}, "y", shared_values=[0.001, 5.0])
    assert other.axes[0].get_yscale() == "log"


def test_sdr_evolution_band_and_control():
    rng = np.random.default_rng(0)
    groups = [{16: rng.normal(1.0, 0.2, 301)}, {16: rng.normal(1.2, 0.3, 301)}]
    summary = sdr_evolution_summary([100, 200], groups, resamples=200, seed=4)
    entry = summary[16]
    assert entry["steps"] == [100, 200] and entry["count"] == [301, 301]
    np.testing.assert_allclose(entry["median"], [np.median(g[16]) for g in groups])
    np.testing.assert_allclose(entry["q95"], [np.quantile(g[16], 0.95) for g in groups])
    np.testing.assert_allclose([entry["median_low"][1], entry["median_high"][1]],
                               numpy_bootstrap(groups[1][16], np.median, 200, 0.95, 4))
    control = {16: rng.normal(0.9, 0.2, 301)}
    figure = sdr_evolution_figure([100, 200], groups, control=("no dropout", 400, control),
                                  resamples=200, seed=4, summary=summary)
    axis = figure.axes[0]
    stars = [line for line in axis.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [400]
    assert stars[0].get_ydata()[0] == pytest.approx(np.median(control[16]))
    texts = legend_texts(axis)
    assert "16x16" in texts and any(text.startswith("control: no dropout") for text in texts)
    assert any("95 % bootstrap interval of the median" in text for text in texts)
    assert axis.get_xlabel() == "training step"


def test_distance_table_marks_cells_within_the_noise_floor():
    from tfcf.experiments.table2 import PAPER_NAMES, paper_table, within_noise

    names = ["R", "G", "G'", "C0", "C1"]
    lower = {("G", "R"): 1.0, ("G'", "R"): 1.01, ("G'", "G"): 0.1, ("C0", "R"): 1.05,
             ("C0", "G"): 0.05, ("C0", "G'"): 0.12, ("C1", "R"): 1.1, ("C1", "G"): 0.1,
             ("C1", "G'"): 0.3, ("C1", "C0"): 0.2}
    table = np.zeros((5, 5))
    for (a, b), value in lower.items():
        table[names.index(a), names.index(b)] = table[names.index(b), names.index(a)] = value
    expected = {f"{a}-{b}": value <= 0.1 for (a, b), value in lower.items()
                if (a, b) != ("G'", "G")}
    assert within_noise(names, table) == expected
    assert sorted(k for k, v in expected.items() if v) == ["C0-G", "C1-G"]   # 0.1 is "at"
    assert PAPER_NAMES == ("R", "G", "C0", "C1", "C2")
    assert paper_table()[PAPER_NAMES.index("C0"), PAPER_NAMES.index("G")] == 0.036

    figure = distance_table_figure(names, table, reference=paper_table(),
                                   reference_names=PAPER_NAMES, floor=("G'", "G"), title="t")
    ours, paper = (axis for axis in figure.axes if axis.get_xlabel() == "image set")
    (colour_bar,) = (axis for axis in figure.axes if axis not in (ours, paper))
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ours.texts}
    marked = sorted(f"{names[r]}-{names[c]}" for (r, c), text in cells.items()
                    if text.endswith("within noise"))
    assert marked == ["C0-G", "C1-G"]
    assert cells[(2, 1)] == "0.100\nnoise floor"
    assert len(ours.images) == 1 and len(paper.images) == 0       # the paper: text only
    assert [label.get_text() for label in paper.get_yticklabels()] == list(PAPER_NAMES)
    assert {t.get_text() for t in paper.texts} >= {"0.036", "1.158", "0.045"}
    assert colour_bar.get_ylabel() == "FID / FID(R, G)"
    with pytest.raises(ValueError, match="floor must be two of the names"):
        distance_table_figure(names, table, floor=("G2", "G"))
