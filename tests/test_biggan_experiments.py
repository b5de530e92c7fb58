"""fig5, fig6, fig14/16 and table3 end to end on the miniature TF-Hub modules (tiny settings)."""

import csv
import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from tfcf.experiments.cli import main

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="TF-Hub modules need the TensorFlow backend")


def invoke(args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def settings(mini_biggan):
    return ["--biggan", mini_biggan[0], "--blocks", "1", "--samples", 8, "--pairs", 8,
            "--examples", 2, "--k", 2]


@pytest.fixture(scope="module")
def hybrids(mini_biggan):
    """The cached hybrid set the commands share (computed by the first one to need it)."""
    from tfcf.experiments.biggan import hybrid_set

    return hybrid_set(str(mini_biggan[0]), ("koala", "teddy"), [1], 0.5, 2, 8, 8, 2, 0)[1]


def test_fig5_hybrids_and_modules(settings, hybrids, tmp_path):
    invoke(["fig5", *settings, "--pair", "koala,teddy", "--outdir", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    entry = results["results"]["koala-teddy/gblock1"]
    assert entry["modules"] == hybrids["modules"]["1"]
    channels = sorted(c for module in entry["modules"] for c in module[0])
    assert len(set(channels)) == len(channels) and all(0 <= c < 16 for c in channels)
    changes = [np.abs(hybrids["ab_1"][j] - hybrids["originals_a"]).mean() for j in range(2)]
    np.testing.assert_allclose(entry["mean_abs_change_vs_original_1"], changes, rtol=1e-6)
    assert (tmp_path / "hybrids_koala-teddy_gblock1.png").stat().st_size > 10000
    assert (tmp_path / "clusters_koala-teddy_gblock1.png").is_file()


def test_fig6_rates_and_distances(settings, hybrids, mini_classifier, tmp_path):
    from tfcf.imagenet import load_classifier

    invoke(["fig6", *settings, "--classifier", f"resnet_v2_50={mini_classifier[0]}",
            "--outdir", tmp_path])
    with open(tmp_path / "fig6.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    images = np.concatenate([hybrids["ab_1"], hybrids["ba_1"]], axis=1).reshape(-1, 16, 16, 3)
    predicted = load_classifier("resnet_v2_50", handle=str(mini_classifier[0])).predict(
        images).argmax(1)
    best = max(np.mean(predicted == 105), np.mean(predicted == 850))
    assert float(row["rate"]) == pytest.approx(best, abs=1e-4) and row["hybrids"] == "8"
    distance = np.mean([np.abs(hybrids["ab_1"] - hybrids["originals_a"][None]).mean(),
                        np.abs(hybrids["ba_1"] - hybrids["originals_b"][None]).mean()]) / 2
    assert float(row["mean_abs_pixel_difference"]) == pytest.approx(distance, rel=1e-3)
    assert (tmp_path / "fig6.png").stat().st_size > 10000


def test_fig14_entropies_and_table3(settings, hybrids, mini_classifier, tmp_path):
    from tfcf.imagenet import class_name, load_classifier
    from tfcf.metrics import top_class_entropy

    classifier = f"resnet_v2_50={mini_classifier[0]}"
    invoke(["fig14", *settings, "--classifier", classifier, "--top", 5,
            "--outdir", tmp_path / "fig14"])
    with open(tmp_path / "fig14" / "entropy_resnet_v2_50.csv") as handle:
        ours = np.array([float(r["entropy_nats"]) for r in csv.DictReader(handle)])
    model = load_classifier("resnet_v2_50", handle=str(mini_classifier[0]))
    images = np.concatenate([hybrids["ab_1"], hybrids["ba_1"]], axis=1).reshape(-1, 16, 16, 3)
    golden, _ = top_class_entropy(model.predict(images), top=5)
    np.testing.assert_allclose(ours, golden, atol=1e-5)

    invoke(["table3", *settings, "--block", 1, "--count", 3, "--classifier", classifier,
            "--outdir", tmp_path / "table3"])
    results = json.loads((tmp_path / "table3" / "results.json").read_text())
    chosen = np.sort(np.random.default_rng(0).choice(8, 3, replace=False))
    expected = [class_name(p.argmax()) for p in model.predict(images[chosen])]
    assert [d["class"] for d in results["decisions"]["resnet_v2_50"]] == expected
    assert (tmp_path / "table3" / "table3.png").stat().st_size > 5000


def test_missing_module_fails_with_the_folder_to_fill(monkeypatch, tmp_path):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TFCF_OFFLINE", "1")
    result = invoke(["fig5", "--outdir", tmp_path / "out"], code=2)
    assert "biggan-deep-256/1" in result.output and str(tmp_path) in result.output
    result = invoke(["fig5", "--blocks", "four", "--outdir", tmp_path / "out"], code=2)
    assert "Gblocks are comma-separated integers" in result.output


def test_reproduce_runs_from_a_prefilled_hub_cache(mini_biggan, mini_classifier, monkeypatch,
                                                   tmp_path):
    """Modules placed at $TFHUB_CACHE_DIR/<sha1 of the real handle> are used offline."""
    import hashlib
    import shutil

    from tfcf.biggan import BIGGAN_HANDLES
    from tfcf.imagenet import CLASSIFIERS

    cache = tmp_path / "tfhub"
    for handle, source in ((BIGGAN_HANDLES[256], mini_biggan[0]),
                           (CLASSIFIERS["resnet_v2_50"][0], mini_classifier[0])):
        shutil.copytree(source, cache / hashlib.sha1(handle.encode()).hexdigest())
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    monkeypatch.setenv("TFCF_OFFLINE", "1")
    result = invoke(["reproduce", "--tiny", "--only", "fig14", "--only", "fig6",
                     "--outdir", tmp_path / "r"])
    results = json.loads((tmp_path / "r" / "fig14" / "results.json").read_text())
    assert results["run"]["parameters"]["biggan"] == BIGGAN_HANDLES[256]
    assert set(results["results"]) == {"resnet_v2_50"}
    assert not (tmp_path / "r" / "fig6").exists()
    missing = hashlib.sha1(CLASSIFIERS["inception_v3"][0].encode()).hexdigest()
    assert "fig6: skipped" in result.output and missing in result.output
