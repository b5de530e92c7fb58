"""Trained models committed under models/weights/: loading by name, checkpoints, command defaults."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfcf.experiments.cli import main
from tfcf.models import dcgan, registry


@pytest.fixture()
def toy_root(tmp_path, monkeypatch):
    """A committed DCGAN (paper_cifar10) with final weights and two checkpoints."""
    folder = tmp_path / "toy_dcgan"
    folder.mkdir()
    generator = dcgan.build_generator("paper_cifar10", seed=1)
    generator.save_weights(folder / "g.weights.h5")
    dcgan.build_discriminator("paper_cifar10", seed=2).save_weights(folder / "d.weights.h5")
    for step, scale in ((5, 0.5), (10, 2.0)):
        copy = dcgan.build_generator("paper_cifar10", seed=1)
        copy.set_weights([w * scale for w in generator.get_weights()])
        copy.save_weights(folder / f"g.step{step}.weights.h5")
    card = {"family": "dcgan", "preset": "paper_cifar10", "data": "fashion-mnist", "steps": 20,
            "dropout": None, "generator_weights": "g.weights.h5",
            "discriminator_weights": "d.weights.h5",
            "checkpoints": {"5": "g.step5.weights.h5", "10": "g.step10.weights.h5"}}
    (folder / "MODEL_CARD.json").write_text(json.dumps(card))
    monkeypatch.setattr(registry, "WEIGHTS_ROOT", tmp_path)
    return tmp_path, generator


def test_committed_models_load_by_name_and_step(toy_root):
    _, generator = toy_root
    assert list(registry.committed_models()) == ["toy_dcgan"]
    spec = registry.load_generator("toy_dcgan")
    assert spec.layer == dcgan.INTERMEDIATE_LAYER["paper_cifar10"]
    assert "fashion-mnist for 20 steps" in spec.description
    for got, want in zip(spec.model.get_weights(), generator.get_weights()):
        np.testing.assert_array_equal(got, want)
    early = registry.load_generator("toy_dcgan@5")
    assert early.name == "toy_dcgan@5"
    for got, want in zip(early.model.get_weights(), generator.get_weights()):
        np.testing.assert_allclose(got, want * 0.5)
    with pytest.raises(ValueError, match=r"no checkpoint at step '7'; committed steps: \[5, 10\]"):
        registry.load_generator("toy_dcgan@7")
    with pytest.raises(ValueError, match="committed model with its own weights"):
        registry.load_generator("toy_dcgan", weights="x.weights.h5")
    with pytest.raises(ValueError, match=r"committed: toy_dcgan"):
        registry.load_generator("toy_gan")
    discriminator = registry.load_inverse_network("toy_dcgan")
    assert discriminator.inputs[0].shape[1:] == (32, 32, 3)


def test_commands_take_committed_checkpoints(toy_root, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["sdr-fig12", "--checkpoint", "5=toy_dcgan@5", "--checkpoint",
                                  "20=toy_dcgan", "--examples", "2", "--outdir",
                                  str(tmp_path / "f12")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "f12" / "results.json").read_text())
    assert set(results["summary"]) == {"5", "20"}
    assert "evolution.png" in results["files"] and (tmp_path / "f12" / "evolution.png").is_file()
    result = runner.invoke(main, ["stretch-fig4", "--model", "toy_dcgan", "--levels", "3",
                                  "--samples", "4", "--outdir", str(tmp_path / "s4")])
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "s4" / "results.json").read_text())["runs"]["toy_dcgan"]
    assert run["steps"] == [5, 10] and len(run["per_scale"][1]) == 3
    # with every weight doubled the stretch error differs from the halved checkpoint's
    assert run["total"][0] != pytest.approx(run["total"][1])
    result = runner.invoke(main, ["stretch-fig4", "--model", "nope", "--outdir",
                                  str(tmp_path / "bad")])
    assert result.exit_code == 2 and "'nope' is not a committed model" in result.output
    result = runner.invoke(main, ["sdr-fig4", "--model", "toy_dcgan", "--outdir",
                                  str(tmp_path / "f4")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "f4" / "results.json").read_text())["summary"]
    assert set(summary) == {"generator", "discriminator"}   # its own D by default


def test_every_default_names_a_committed_model():
    from tfcf.experiments import _common, spectral_figures

    cards = registry.committed_models()
    names = [_common.FACE_VAE, _common.FACE_DCGAN, _common.CIFAR_DCGAN, _common.FACE_BEGAN,
             spectral_figures.DROPOUT_DCGAN, *spectral_figures.STRETCH_RUNS,
             *(entry.split("=")[1] for entry in spectral_figures.SDR_VARIANTS)]
    missing = [name for name in names if name not in cards]
    assert not missing, f"defaults without committed weights: {missing}"
    for name in (spectral_figures.DROPOUT_DCGAN, *spectral_figures.STRETCH_RUNS):
        assert len(cards[name]["checkpoints"]) >= 4, name
    for name, card in cards.items():
        folder = registry.WEIGHTS_ROOT / name
        files = [card["generator_weights"], card["samples"], *card.get("checkpoints", {}).values()]
        for file in files:
            assert (folder / file).stat().st_size <= 10 * 2**20, (name, file)
        spec = registry.load_generator(name)
        image = np.asarray(spec.model(spec.sample_latent(2, seed=0)))
        assert np.isfinite(image).all() and image.min() >= -1 and image.max() <= 1


@pytest.fixture()
def toy_vae(tmp_path, monkeypatch):
    """A committed VAE (paper_cifar10) trained on 40 'faces' of which the last 10 are held out."""
    from tfcf.models import vae

    data = tmp_path / "data"
    data.mkdir()
    images = np.random.default_rng(3).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    np.savez(data / "part_000.npz", images=images)
    folder = tmp_path / "weights" / "toy_vae"
    folder.mkdir(parents=True)
    vae.build_decoder("paper_cifar10", seed=1).save_weights(folder / "dec.weights.h5")
    encoder = vae.build_encoder("paper_cifar10", seed=2)
    encoder.save_weights(folder / "enc.weights.h5")
    card = {"family": "vae", "preset": "paper_cifar10", "data": f"faces64:{data}", "steps": 3,
            "holdout": 10, "objective": "mse", "generator_weights": "dec.weights.h5",
            "encoder_weights": "enc.weights.h5"}
    (folder / "MODEL_CARD.json").write_text(json.dumps(card))
    monkeypatch.setattr(registry, "WEIGHTS_ROOT", tmp_path / "weights")
    return images, encoder


def test_vae_latents_are_encoder_means_of_held_out_images(toy_vae):
    from tfcf.experiments._common import draw_latents

    images, encoder = toy_vae
    spec = registry.load_generator("toy_vae")
    drawn = draw_latents(spec, 6, seed=4, latents="auto")
    assert drawn.source == "encoder" and "held out" in drawn.note
    rows = np.sort(np.random.default_rng(4).choice(10, 6, replace=False))
    np.testing.assert_array_equal(drawn.images, images[30:][rows])
    mean, _ = encoder(images[30:][rows].astype("float32") / 127.5 - 1.0, training=False)
    np.testing.assert_allclose(drawn.z, np.asarray(mean), atol=1e-6)
    prior = draw_latents(spec, 6, seed=4, latents="prior")
    np.testing.assert_array_equal(prior.z, spec.sample_latent(6, seed=4))
    with pytest.raises(ValueError, match="fewer than 20"):
        draw_latents(spec, 20, seed=0, latents="encoder")
    assert draw_latents(spec, 20, seed=0, latents="auto").source == "prior"   # falls back
    early_gan = registry.GeneratorSpec("g", spec.model, spec.layer)
    assert draw_latents(early_gan, 4, 0).source == "prior"


def test_fig8_shows_real_faces_and_reconstructions(toy_vae, tmp_path):
    result = CliRunner().invoke(main, ["fig8", "--model", "toy_vae", "--samples", "10",
                                       "--pairs", "8", "--examples", "2", "--ks", "",
                                       "--outdir", str(tmp_path / "fig8")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "fig8" / "results.json").read_text())
    assert results["run"]["parameters"]["latents"] == "encoder"
    assert "held out" in results["latents"] and results["objective"] == "mse"
    assert results["module_names"] == ["C0", "C1", "C2"]
    refused = CliRunner().invoke(main, ["fig8", "--model", "toy_vae", "--samples", "40",
                                        "--latents", "encoder", "--outdir", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "fewer than 40" in refused.output
