"""The SDR and stretch commands on tiny Keras models, through click's CliRunner."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from tfcf.experiments.cli import main
from tfcf import distortion, spectral


def invoke(args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_generator):
    folder = tmp_path_factory.mktemp("spectral_models")
    tiny_generator.save(folder / "g.keras")
    other = keras.models.clone_model(tiny_generator)
    other.set_weights([w * 0.5 + 0.1 for w in tiny_generator.get_weights()])
    other.save(folder / "g2.keras")
    keras.utils.set_random_seed(3)
    x = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 4, strides=2, padding="same", name="d1")(x)
    h = keras.layers.LeakyReLU(0.2, name="d1_lrelu")(h)
    h = keras.layers.Conv2D(6, 4, strides=2, padding="same", name="d2")(h)
    keras.Model(x, keras.layers.Flatten()(h)).save(folder / "d.keras")
    return folder


def read(folder):
    return json.loads((folder / "results.json").read_text())


def test_pathway_and_histograms(files, tiny_generator, tmp_path):
    invoke(["sdr-fig3a", "--model", files / "g.keras", "--layer", "block1", "--pathway", "1,2,0",
            "--outdir", tmp_path / "a"])
    results = read(tmp_path / "a")
    a = np.asarray(tiny_generator.get_layer("deconv2").kernel)  # (kh, kw, out, in)
    b = np.asarray(tiny_generator.get_layer("deconv3").kernel)
    assert results["rho"] == pytest.approx(spectral.kernel_sdr(b[:, :, 0, 2], a[:, :, 2, 1], 2))
    assert (tmp_path / "a" / "pathway.png").stat().st_size > 20000

    invoke(["sdr-fig4", "--model", files / "g.keras", "--layer", "block1",
            "--other", files / "d.keras", "--outdir", tmp_path / "h"])
    results = read(tmp_path / "h")
    assert results["summary"]["generator"]["16"]["count"] == 8 * 6 * 3
    assert results["summary"]["discriminator"]["16"]["count"] == 3 * 4 * 6
    stored = np.load(tmp_path / "h" / "rho.npz")
    rho = spectral.layer_sdr(tiny_generator, "deconv2", "deconv3")
    np.testing.assert_allclose(stored["generator_16"], rho, rtol=1e-6)
    assert results["summary"]["generator"]["16"]["mean"] == pytest.approx(rho.mean())
    # the histograms' edge bins hold values beyond 0-2.5: their shares, recomputed
    shares = results["beyond_plotted_range"]
    assert shares["range"] == [0.0, 2.5]
    assert shares["shares"]["generator"]["16"] == {"below": pytest.approx(np.mean(rho < 0)),
                                                   "above": pytest.approx(np.mean(rho > 2.5))}


def test_filter_removal_counts(files, tiny_generator, tmp_path):
    invoke(["sdr-fig6", "--model", files / "g.keras", "--layer", "block1", "--keep", 0.5,
            "--low", 0.95, "--high", 1.05, "--examples", 2, "--outdir", tmp_path])
    results = read(tmp_path)
    energy = spectral.contribution_energy(tiny_generator, "deconv2", "deconv3")
    average = np.nanmean(spectral.layer_sdr(tiny_generator, "deconv2", "deconv3"), axis=2)
    kept = energy >= np.quantile(energy, 0.5)
    assert results["kernels"] == 48 and results["kept_by_energy"] == int(kept.sum())
    count = min(int((kept & (average < 0.95)).sum()), int((kept & (average > 1.05)).sum()))
    assert results["removed_each"] == count
    assert results["after_low_removal"] == results["after_high_removal"] == kept.sum() - count


def test_zero_kernels_zeroes_exactly_the_masked_pathways(tiny_generator):
    keep = np.ones((6, 3), bool)  # deconv3: 6 inputs -> 3 outputs
    keep[2, 1] = False
    pruned = spectral.zero_kernels(tiny_generator, "deconv3", keep)
    kernel = np.asarray(pruned.get_layer("deconv3").kernel)  # (kh, kw, out, in)
    assert np.all(kernel[:, :, 1, 2] == 0)
    original = np.asarray(tiny_generator.get_layer("deconv3").kernel)
    kernel[:, :, 1, 2] = original[:, :, 1, 2]
    np.testing.assert_array_equal(kernel, original)
    with pytest.raises(ValueError, match="6 inputs x 3 outputs"):
        spectral.zero_kernels(tiny_generator, "deconv3", np.ones((3, 6), bool))


def test_compare_and_stretch_commands(files, tiny_generator, tmp_path):
    invoke(["sdr-fig7", "--generator", f"one={files / 'g.keras'}",
            "--generator", f"two={files / 'g2.keras'}", "--examples", 2,
            "--outdir", tmp_path / "c"])
    results = read(tmp_path / "c")
    assert set(results["summary"]) == {"one", "two"}
    assert results["summary"]["one"]["16"]["count"] == 144

    invoke(["sdr-fig7", "--generator", "broken", "--outdir", tmp_path / "bad"], code=2)

    invoke(["stretch-fig3", "--model", files / "g.keras", "--layer", "block1", "--levels", 3,
            "--samples", 6, "--examples", 2, "--outdir", tmp_path / "s"])
    results = read(tmp_path / "s")
    assert list(results["mean_error_per_scale"]) == ["block1", "block2"]
    z = np.random.default_rng(0).standard_normal((6, 8)).astype("float32")
    distorted, reference = distortion.distort(tiny_generator, "block2", z)
    errors = distortion.scale_errors(distorted, reference, 3)
    np.testing.assert_allclose(results["mean_error_per_scale"]["block2"], errors.mean(axis=0),
                               rtol=1e-4)
    # standard error over the 6 images: sample standard deviation / sqrt(6)
    np.testing.assert_allclose(results["standard_error_per_scale"]["block2"],
                               errors.std(axis=0, ddof=1) / np.sqrt(6), rtol=1e-4)

    invoke(["stretch-fig4", "--checkpoint", f"100={files / 'g.keras'}",
            "--checkpoint", f"200={files / 'g2.keras'}", "--levels", 3, "--samples", 4,
            "--outdir", tmp_path / "t"])
    results = read(tmp_path / "t")["runs"]["checkpoints"]
    assert results["steps"] == [100, 200] and len(results["per_scale"][0]) == 3
    # the default stretched layer is the second-to-last hidden activation (block1 here)
    distorted, reference = distortion.distort(tiny_generator, "block1", z[:4])
    assert results["total"][0] == pytest.approx(float(np.mean((distorted - reference) ** 2)),
                                                 rel=1e-4)
    # 95 % bootstrap intervals over the 4 images (1000 resamples, seed 0), recomputed in NumPy
    rows = np.random.default_rng(0).integers(0, 4, size=(1000, 4))
    per_image = np.square(distorted.astype("float64") - reference).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(results["total_interval"][0],
                               np.quantile(per_image[rows].mean(axis=1), [0.025, 0.975]),
                               rtol=1e-4)
    errors = distortion.scale_errors(distorted, reference, 3)
    np.testing.assert_allclose(np.array(results["per_scale_interval"][0]).T,
                               np.quantile(errors[rows].mean(axis=1), [0.025, 0.975], axis=0),
                               rtol=1e-4)
    assert all(low <= mean <= high for (low, high), mean in
               zip(results["total_interval"], results["total"]))


def test_dropout_evolution_with_control(files, tiny_generator, tmp_path):
    invoke(["sdr-fig12", "--checkpoint", f"100={files / 'g.keras'}",
            "--checkpoint", f"200={files / 'g2.keras'}", "--control", f"300={files / 'g.keras'}",
            "--examples", 1, "--outdir", tmp_path / "e"])
    results = read(tmp_path / "e")
    rho = spectral.layer_sdr(tiny_generator, "deconv2", "deconv3").ravel()
    rows = np.random.default_rng(0).integers(0, rho.size, size=(1000, rho.size))
    interval = np.quantile(np.median(rho[rows], axis=1), [0.025, 0.975])
    evolution = results["evolution"]["16"]
    assert evolution["steps"] == [100, 200]
    assert evolution["median"][0] == pytest.approx(np.median(rho))
    np.testing.assert_allclose([evolution["median_low"][0], evolution["median_high"][0]],
                               interval, rtol=1e-6)
    # the control (here the step-100 model again, at step 300) is summarised the same way
    control = results["control"]
    assert control["step"] == 300 and control["median"]["16"] == pytest.approx(np.median(rho))
    np.testing.assert_allclose(control["median_interval"]["16"], interval, rtol=1e-6)
    assert "evolution.png" in results["files"]

    invoke(["sdr-fig12", "--checkpoint", f"100={files / 'g.keras'}", "--examples", 1,
            "--outdir", tmp_path / "n"])
    assert read(tmp_path / "n")["control"] is None       # no default control with --checkpoint
    result = invoke(["sdr-fig12", "--checkpoint", f"100={files / 'g.keras'}", "--control",
                     f"late={files / 'g.keras'}", "--outdir", tmp_path / "bad"], code=2)
    assert "training step" in result.output
