"""The figure commands with tiny settings, through click's CliRunner: they run and write files."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tfcf.experiments.cli import main


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, tiny_generator):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_generator.save(path)
    return path


def invoke(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


TINY = ["--samples", 12, "--pairs", 12]


def test_fig3b(generator_file, tmp_path):
    invoke(["fig3b", "--model", generator_file, "--layer", "block1", *TINY, "--show", 4,
            "--outdir", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    maps = np.load(tmp_path / "influence_maps.npy")
    assert maps.shape == (8, 16, 16)
    np.testing.assert_allclose(results["individual_influence"], maps.mean(axis=(1, 2)), rtol=1e-5)
    # The channels shown are the most influential ones, strongest first.
    assert results["shown_channels"] == np.argsort(-maps.mean(axis=(1, 2)))[:4].tolist()
    assert (tmp_path / "influence_maps.png").stat().st_size > 5000


@pytest.mark.parametrize("command", ["fig8", "fig11"])
def test_module_figures(command, generator_file, tmp_path):
    invoke([command, "--model", generator_file, "--layer", "block1", *TINY, "--k", 2,
            "--examples", 2, "--ks", "1,2", "--outdir", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(sum(results["modules"], []) + results["dead_channels"]) == list(range(8))
    assert sum(results["module_sizes"]) == 8
    effects = results["causal_effects"]
    assert effects["ks"] == [1, 2] and len(effects["module_sizes"]) == 3
    assert effects["module_sizes"][0] == 8
    for name in ("clusters.png", "hybrids.png", "magnitude.png"):
        assert (tmp_path / name).stat().st_size > 5000


def test_fig9(generator_file, tmp_path):
    invoke(["fig9", "--model", generator_file, "--layer", "block1", *TINY, "--ks", "2,3",
            "--repeats", 2, "--outdir", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    for method in ("nmf", "kmeans"):
        assert results[method]["ks"] == [2, 3]
        assert all(0 <= v <= 1 for v in results[method]["consistency_mean"])
    assert (tmp_path / "stability.png").stat().st_size > 5000


def test_two_layer_figure(generator_file, tmp_path):
    invoke(["fig4", "--model", generator_file, "--layers", "block1,block2", *TINY, "--k", 2,
            "--examples", 2, "--outdir", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    first = sorted(sum((m[0] for m in results["modules"]), []))
    second = sorted(sum((m[1] for m in results["modules"]), []))
    # Every live channel of both layers is in exactly one module (block2 has dead ReLUs).
    assert first == list(range(8))
    assert len(second) == len(set(second)) and set(second) <= set(range(6)) and second


def test_draft_fig7_uses_the_variance_statistic(generator_file, tmp_path):
    invoke(["draft-fig7", "--model", generator_file, "--layer", "block2", *TINY, "--k", 2,
            "--examples", 2, "--outdir", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["run"]["parameters"]["statistic"] == "variance"


def test_model1_identifiability(tmp_path):
    invoke(["model1", "--draws", 2, "--samples", 40, "--pairs", 40, "--outdir", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    for summary in results["adjusted_rand_index"].values():
        assert len(summary["ari"]) == 2
        assert summary["mean"] == pytest.approx(1.0)
    assert (tmp_path / "model1.png").stat().st_size > 5000


def test_refuses_to_overwrite_and_reuses_cached_maps(generator_file, tmp_path):
    args = ["fig3b", "--model", generator_file, "--layer", "block1", *TINY, "--outdir", tmp_path]
    invoke(args)
    first = np.load(tmp_path / "influence_maps.npy")
    again = invoke(args[:-2] + ["--outdir", tmp_path / "again"])
    assert "from the cache" in again.output
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "influence_maps.npy"), first)
    again = CliRunner().invoke(main, [str(a) for a in args])
    assert again.exit_code != 0 and "--overwrite" in again.output


def test_reproduce_runs_commands_and_resumes(tmp_path):
    result = invoke(["reproduce", "--tiny", "--only", "fig3b", "--only", "model1",
                     "--outdir", tmp_path])
    for name in ("fig3b", "model1"):
        assert (tmp_path / name / "results.json").exists()
    page = (tmp_path / "index.html").read_text()
    assert "fig3b: ICLR 2020 Fig. 3b" in page and "model1: ICLR 2020 Prop. 3" in page
    assert page.count("data:image/png;base64,") == 2
    # A second run finds the results and skips both commands.
    again = invoke(["reproduce", "--tiny", "--only", "fig3b", "--only", "model1",
                    "--outdir", tmp_path])
    assert again.output.count("results exist, skipped") == 2
    assert "fig3b" in result.output


class _PixelFeatures:
    """Stand-in for the Inception network: 4x4 average-pooled pixels (48 features)."""

    identity = "test:pixels4x4"

    def __call__(self, x):
        x = np.asarray(x)
        step = x.shape[1] // 4
        pooled = x[:, : 4 * step, : 4 * step].reshape(len(x), 4, step, 4, step, 3).mean(axis=(2, 4))
        return pooled.reshape(len(x), -1)


@pytest.fixture
def fake_inception(monkeypatch):
    from tfcf import metrics

    network = metrics.get_extractor(_PixelFeatures())
    monkeypatch.setattr(metrics, "get_extractor", lambda extractor="auto", **kwargs: network)
    return network


def _write_shards(folder, images):
    folder.mkdir()
    half = len(images) // 2
    np.savez(folder / "part_000.npz", images=images[:half])
    np.savez(folder / "part_001.npz", images=images[half:])


def test_table2_fid_of_hybrids(generator_file, tiny_generator, tmp_path, fake_inception):
    import tfcf
    from tfcf.experiments.table2 import _hybrid_batches
    from tfcf.models.registry import load_generator
    from tfcf.metrics import Statistics, frechet_distance_from_statistics, inception_features

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(60, 16, 16, 3)).astype("uint8")
    _write_shards(tmp_path / "real", real)
    out = tmp_path / "out"
    invoke(["table2", "--model", generator_file, "--layer", "block1", *TINY, "--k", 2, "--num-images", 50,
            "--real", tmp_path / "real", "--fd-method", "eigh", "--outdir", out])
    results = json.loads((out / "results.json").read_text())
    assert results["names"] == ["R", "G", "G'", "C0", "C1"]
    normalised = np.array(results["normalised"])
    np.testing.assert_allclose(normalised, normalised.T)
    assert normalised[1, 0] == pytest.approx(1.0) and np.all(np.diag(normalised) == 0)
    # Golden: C1 (the second module) against G recomputed by hand from the same latent draws.
    spec = load_generator(str(generator_file), layer="block1")
    module = results["modules"][1]
    hybrids = np.concatenate(list(_hybrid_batches(spec, "block1", module, 50, 0, 50)))
    z1, z2 = spec.sample_latent(50, seed=1), spec.sample_latent(50, seed=2)
    np.testing.assert_allclose(hybrids, tfcf.hybrid(tiny_generator, "block1", module, z1, z2), atol=1e-5)
    generated = np.asarray(tiny_generator.predict_on_batch(spec.sample_latent(50, seed=0)))
    a = Statistics.of(inception_features(hybrids, fake_inception, progress=False))
    b = Statistics.of(inception_features(generated, fake_inception, progress=False))
    expected = frechet_distance_from_statistics(a.mean, a.covariance, b.mean, b.covariance)
    fid = np.array(results["fid"])
    assert fid[4, 1] == pytest.approx(expected, rel=1e-4)
    # Control row G': an independent generated set (seed + 3); FID(G, G') is the noise floor.
    control = np.asarray(tiny_generator.predict_on_batch(spec.sample_latent(50, seed=3)))
    c = Statistics.of(inception_features(control, fake_inception, progress=False))
    floor = frechet_distance_from_statistics(c.mean, c.covariance, b.mean, b.covariance)
    assert fid[2, 1] == pytest.approx(floor, rel=1e-4)
    assert results["noise_floor"]["fid"] == pytest.approx(floor, rel=1e-4)
    assert results["noise_floor"]["normalised"] == pytest.approx(floor / fid[1, 0], rel=1e-4)
    names = results["names"]
    expected_noise = {f"{names[i]}-{names[j]}": bool(normalised[i, j] <= normalised[2, 1])
                      for i in range(5) for j in range(i) if (i, j) != (2, 1)}
    assert results["within_noise"] == expected_noise and len(expected_noise) == 9
    assert results["hybrids_to_generated_within_noise"] == [expected_noise["C0-G"],
                                                            expected_noise["C1-G"]]
    assert list(results["paper_normalised_lower"])[:3] == ["G-R", "C0-R", "C0-G"]
    rows = (out / "table2.csv").read_text().splitlines()
    assert rows[0] == ",R,G,G',C0,C1" and rows[2].startswith("G,1,0")
    for name in ("table2.png", "examples.png"):
        assert (out / name).stat().st_size > 5000


def test_table2_needs_real_images(generator_file, tmp_path, monkeypatch):
    monkeypatch.delenv("TFCF_REAL_DATA", raising=False)
    result = CliRunner().invoke(main, ["table2", "--model", str(generator_file), "--outdir", str(tmp_path)])
    assert result.exit_code == 2 and "--real" in result.output
    skipped = invoke(["reproduce", "--tiny", "--only", "table2", "--outdir", tmp_path / "r"])
    assert "table2: skipped, no real images" in skipped.output


def test_reproduce_docs_runs_the_docs_plan_and_copies_its_figures(tmp_path, monkeypatch):
    from tfcf.experiments import reproduce

    monkeypatch.setattr(reproduce, "DOCS", {
        "model1_small": ("model1", ["--draws", "2", "--samples", "40", "--pairs", "40"],
                         {"model1_docs.png": "model1.png"})})
    docs = tmp_path / "docs"
    result = invoke(["reproduce", "--docs", docs, "--outdir", tmp_path / "runs"])
    assert "model1_small: tfcf model1 --draws 2" in result.output
    copied = (docs / "model1_docs.png").read_bytes()
    assert copied == (tmp_path / "runs" / "model1_small" / "model1.png").read_bytes()
    again = invoke(["reproduce", "--docs", docs, "--outdir", tmp_path / "runs"])
    assert "results exist, figures copied again" in again.output
    refused = CliRunner().invoke(main, ["reproduce", "--docs", docs, "--only", "fig9"])
    assert refused.exit_code == 2 and "with --docs, --only names runs of DOCS" in refused.output


def test_docs_plan_names_every_figure_linked_from_the_docs():
    """Every docs/figures PNG that README.md or RESULTS.md links is produced by a DOCS run."""
    import re

    from tfcf.experiments.reproduce import DOCS

    root = Path(__file__).resolve().parent.parent
    linked = set()
    for page in ("README.md", "RESULTS.md"):
        linked |= set(re.findall(r"docs/figures/([\w.-]+\.png)", (root / page).read_text()))
    produced = {doc for _, _, files in DOCS.values() for doc in files}
    assert linked <= produced, sorted(linked - produced)
