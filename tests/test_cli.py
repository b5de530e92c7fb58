"""The `tfcf` click group and the demo command, through click's CliRunner."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfcf.experiments.cli import COMMANDS, main


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, tiny_generator):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_generator.save(path)
    return path


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_demo_on_a_user_generator_file(generator_file, tmp_path, tiny_generator):
    outdir = tmp_path / "demo"
    args = ["demo", "--model", str(generator_file), "--layer", "block1", "--examples", "2",
            "--blocks", "2", "--samples", "12", "--pairs", "12", "--k", "2", "--repeats", "2",
            "--outdir", str(outdir), "--seed", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    results = json.loads((outdir / "results.json").read_text())
    assert len(results["files"]) == 9
    page = (outdir / "report.html").read_text()
    for section in ("1. Hybrids", "2. Elementary influence maps", "3. Modules",
                    "4. Module hybrids", "5. Are the modules stable?",
                    "6. Magnitude of causal effects", "7. Spectral independence",
                    "8. Parameters"):
        assert section in page
    assert page.count("data:image/png;base64,") == 7
    # every pathway: 8 inputs of deconv2 -> its 6 outputs -> 3 outputs of deconv3, at 16 px
    assert results["sdr"]["16"]["count"] == 8 * 6 * 3
    for name in results["files"]:
        assert (outdir / name).stat().st_size > 1000, name
    assert results["layer"] == "block1"
    assert results["layer_shape"] == [4, 4, 8]
    assert results["channel_blocks"] == [[0, 3], [4, 7]]
    assert results["run"]["seed"] == 3
    assert results["run"]["versions"]["numpy"] == np.__version__
    # Swapping half of the channels changes the image, but less than swapping all of them.
    changes = list(results["mean_abs_change_from_original_1"].values())
    assert all(0 < change < 1 for change in changes)
    assert sorted(sum(results["modules"], []) + results["dead_channels"]) == list(range(8))
    assert results["stability"]["nmf"]["ks"] == [2, 3, 4, 5]
    assert results["causal_effects"]["ks"] == [1, 2, 3, 4, 5]

    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert CliRunner().invoke(main, args + ["--overwrite"]).exit_code == 0


def test_demo_bad_layer_names_the_valid_ones(generator_file, tmp_path):
    result = CliRunner().invoke(main, ["demo", "--model", str(generator_file), "--layer", "nope",
                                       "--outdir", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "unknown layer 'nope'" in result.output and "block2" in result.output


def test_demo_unknown_model(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--model", "stylegan9", "--outdir", str(tmp_path)])
    assert result.exit_code != 0 and "face_dcgan" in result.output


def test_demo_default_model_reduced(tmp_path):
    """`tfcf demo` on its built-in default (the pretrained face DCGAN), fewer pairs and repeats."""
    outdir = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--outdir", str(outdir), "--samples", "16",
                                       "--pairs", "16", "--repeats", "2", "--examples", "2"])
    assert result.exit_code == 0, result.output
    results = json.loads((outdir / "results.json").read_text())
    assert results["layer"] == "main.8" and results["layer_shape"] == [16, 16, 128]
    assert sorted(sum(results["modules"], []) + results["dead_channels"]) == list(range(128))
    assert results["stability"]["kmeans"]["ks"] == [2, 3, 4, 5, 6]
    page = (outdir / "report.html").read_text()
    assert "the modules of face_dcgan" in page and page.count("data:image/png;base64,") == 7
    assert results["sdr"]["64"]["count"] == 64 * 3 * 128  # main.9 -> main.12 pathways


def _model1(outdir, *extra):
    from tfcf.experiments.cli import main

    return CliRunner().invoke(main, ["model1", "--draws", "1", "--size", "8", "--units", "2",
                                     "--samples", "16", "--pairs", "16", "--outdir", str(outdir),
                                     *extra])


def test_a_failed_overwrite_leaves_the_previous_run_whole(tmp_path, monkeypatch):
    """Everything is staged beside --outdir: a run that dies before publishing changes nothing."""
    import json

    from tfcf.experiments import _common

    outdir = tmp_path / "model1"
    assert _model1(outdir).exit_code == 0
    before = {p.name: p.read_bytes() for p in outdir.iterdir()}
    assert json.loads(before["results.json"])["run"]["seed"] == 0

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after writing its figures, before publishing

    monkeypatch.setattr(_common, "publish", killed)
    import tfcf.experiments.model1 as model1

    monkeypatch.setattr(model1, "publish", killed)
    result = _model1(outdir, "--overwrite", "--seed", "1")
    assert result.exit_code != 0
    assert {p.name: p.read_bytes() for p in outdir.iterdir()} == before
    assert not list(tmp_path.glob(".model1.partial-*"))     # the failed run's staging is gone
    monkeypatch.undo()
    assert _model1(outdir, "--overwrite", "--seed", "1").exit_code == 0
    assert json.loads((outdir / "results.json").read_text())["run"]["seed"] == 1
    assert sorted(p.name for p in outdir.iterdir()) == sorted(before)


def test_publish_removes_the_previous_results_first_and_stale_files(tmp_path):
    import json

    from tfcf.experiments import _common

    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "results.json").write_text(json.dumps({"files": ["old.png", "kept.png"]}))
    (outdir / "old.png").write_bytes(b"old")
    (outdir / "kept.png").write_bytes(b"old")
    (outdir / "notes.txt").write_text("the user's own file")
    staging = tmp_path / ".out.partial-1-x"
    staging.mkdir()
    (staging / "kept.png").write_bytes(b"new")
    _common._STAGED[staging] = outdir
    path = _common.publish(staging, {"files": ["kept.png"]})
    assert path == outdir / "results.json" and not staging.exists()
    assert sorted(p.name for p in outdir.iterdir()) == ["kept.png", "notes.txt", "results.json"]
    assert (outdir / "kept.png").read_bytes() == b"new"


def test_leftover_staging_of_a_dead_process_is_cleaned(tmp_path):
    leftover = tmp_path / ".model1.partial-999999999-abc"
    leftover.mkdir()
    (leftover / "model1.png").write_bytes(b"partial")
    assert _model1(tmp_path / "model1").exit_code == 0
    assert not leftover.exists()
