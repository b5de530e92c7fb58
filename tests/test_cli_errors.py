"""Every command, given a corrupt file or an impossible option, stops with one paragraph and exit
code 2, before any expensive work, and never with a traceback."""

import numpy as np
import pytest
from click.testing import CliRunner

from tfcf.experiments.cli import COMMANDS, main


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    corrupt = folder / "corrupt.weights.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)        # truncated HDF5
    text = folder / "notes.weights.h5"
    text.write_text("these are not weights")
    module = folder / "module"
    module.mkdir()
    (module / "saved_model.pb").write_bytes(b"\x00\x01not a protobuf" * 10)
    empty = folder / "empty"
    empty.mkdir()
    return {"corrupt": corrupt, "text": text, "module": module, "empty": empty, "folder": folder}


def _corrupt_arguments(name, files):
    """The arguments that hand command ``name`` a corrupt file (None: it reads no file)."""
    weights = str(files["corrupt"])
    if name in ("fig5", "fig6", "fig14", "fig16", "table3"):
        return ["--biggan", str(files["module"])]
    if name == "sdr-fig7":
        return ["--generator", f"a=vae:paper_cifar10@{weights}"]
    if name == "sdr-fig12":
        return ["--checkpoint", f"a=dcgan:paper_cifar10@{weights}"]
    if name == "stretch-fig4":
        return ["--checkpoint", f"100=vae:paper_cifar10@{weights}"]
    if name == "table2":
        return ["--model", "dcgan:paper_cifar10", "--weights", weights, "--real",
                str(files["empty"])]
    if name == "train":
        return ["vae", "--data", f"folder:{files['empty']}", "--steps", "1"]
    if name == "sdr-fig8":   # committed encoders only: an unknown one is refused by name
        return ["--encoder", "a=corrupt.weights.h5"]
    if name in ("model1", "reproduce", "stylegan-modules"):   # they read no weights file
        return None
    if name in ("fig4", "fig12"):
        return ["--model", "began:celeba64_small", "--weights", str(files["text"])]
    return ["--model", "dcgan:paper_cifar10", "--weights", weights]


def _invoke(arguments):
    return CliRunner().invoke(main, arguments)


def _assert_clean_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, repr(result.exception))
    assert "Traceback" not in result.output
    output = " ".join(result.output.split())
    for needle in needles:
        assert needle in output, output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_corrupt_file_is_named_with_exit_code_2(name, bad_files, tmp_path):
    arguments = _corrupt_arguments(name, bad_files)
    if arguments is None:
        pytest.skip(f"{name} reads no weights file")
    result = _invoke([name, *arguments, "--outdir", str(tmp_path / "out")])
    needle = {"train": "empty"}.get(name)
    named = [str(bad_files[k]) for k in ("corrupt", "text", "module") if str(bad_files[k]) in
             " ".join(arguments)]
    _assert_clean_error(result, *(named if needle is None else [needle]))
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_impossible_option_has_exit_code_2(name, tmp_path):
    arguments = ["vae"] if name == "train" else []
    result = _invoke([name, *arguments, "--seed", "many"])
    _assert_clean_error(result, "many")


@pytest.mark.parametrize("name", ["fig3b", "fig8", "fig11", "sdr-fig3a", "stretch-fig3",
                                  "demo"])
def test_an_unknown_layer_or_model_is_refused_before_any_work(name, tmp_path):
    result = _invoke([name, "--layer", "no_such_layer", "--outdir", str(tmp_path / "a")]
                     if name != "sdr-fig3a" else
                     [name, "--layers", "no_such_layer,other", "--outdir", str(tmp_path / "a")])
    _assert_clean_error(result, "no_such_layer")
    result = _invoke([name, "--model", "no_such_model", "--outdir", str(tmp_path / "b")])
    _assert_clean_error(result, "no_such_model")


def test_table2_refuses_an_empty_real_folder_before_the_maps(tmp_path, monkeypatch):
    import tfcf.influence

    def no_maps(*args, **kwargs):
        raise AssertionError("influence maps were computed before the real data was checked")

    monkeypatch.setattr(tfcf.influence, "influence_maps", no_maps)
    (tmp_path / "empty").mkdir()
    result = _invoke(["table2", "--real", str(tmp_path / "empty"), "--outdir",
                      str(tmp_path / "out")])
    _assert_clean_error(result, str(tmp_path / "empty"))


@pytest.mark.parametrize("name", ["fig8", "demo"])
def test_an_outdir_that_cannot_be_written_is_refused_before_the_maps(name, tmp_path,
                                                                    monkeypatch):
    import tfcf.influence

    def no_maps(*args, **kwargs):
        raise AssertionError("influence maps were computed before --outdir was checked")

    monkeypatch.setattr(tfcf.influence, "influence_maps", no_maps)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    outdir = blocker / "out"   # its parent is a file: no folder can be made there
    result = _invoke([name, "--outdir", str(outdir)])
    _assert_clean_error(result, f"cannot write --outdir {outdir}", "choose a folder")
    assert blocker.read_text() == "not a folder"
