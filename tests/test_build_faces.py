"""tools/build_faces.py with a stand-in sampler: shards, card, and an interrupted run that resumes."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location(
    "build_faces", Path(__file__).resolve().parent.parent / "tools" / "build_faces.py")
build_faces = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(build_faces)


class FakeSampler:
    """Images [n, 128, 128, 3] in [-1, 1] drawn from the rng; can fail after some calls."""

    truncation = 0.5

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def sample(self, rng, count):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.calls += 1
        return rng.uniform(-1, 1, (count, 128, 128, 3))


def test_downsample_averages_blocks():
    images = np.random.default_rng(0).uniform(-1, 1, (2, 128, 128, 3))
    small = build_faces.downsample(images, 64)
    golden = (images.reshape(2, 64, 2, 64, 2, 3).mean(axis=(2, 4)) + 1) * 127.5
    np.testing.assert_array_equal(small, np.clip(golden, 0, 255).round().astype(np.uint8))
    with pytest.raises(ValueError, match="not a multiple of 64"):
        build_faces.downsample(np.zeros((1, 100, 100, 3)), 64)


def test_interrupted_build_resumes_to_the_same_faces(tmp_path):
    from tfcf.data import load_images

    straight = build_faces.build(tmp_path / "a", 7, seed=3, shard_size=3, sampler=FakeSampler(),
                                 progress=False)
    assert [p.name for p in straight] == ["faces64_000.npz", "faces64_001.npz", "faces64_002.npz"]
    with pytest.raises(KeyboardInterrupt):
        build_faces.build(tmp_path / "b", 7, seed=3, shard_size=3,
                          sampler=FakeSampler(fail_after=4), progress=False)
    assert sorted(p.name for p in (tmp_path / "b").glob("*.npz")) == ["faces64_000.npz"]
    resumed = FakeSampler()
    build_faces.build(tmp_path / "b", 7, seed=3, shard_size=3, sampler=resumed, progress=False)
    assert resumed.calls == 4  # shards 1 and 2 only
    np.testing.assert_array_equal(load_images(tmp_path / "a"), load_images(tmp_path / "b"))
    card = json.loads((tmp_path / "b" / "CARD.json").read_text())
    assert card["count"] == 7 and card["seed"] == 3 and card["truncation"] == 0.5
    assert load_images(tmp_path / "b").shape == (7, 64, 64, 3)


def _publish_module():
    spec = importlib.util.spec_from_file_location(
        "publish_weights", Path(__file__).resolve().parent.parent / "tools" / "publish_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_publish_copies_the_card_weights_and_samples(tmp_path):
    publish_weights = _publish_module()
    run = tmp_path / "run"
    run.mkdir()
    (run / "g.weights.h5").write_bytes(b"weights")
    (run / "samples-5.png").write_bytes(b"png")
    (run / "MODEL_CARD.json").write_text(json.dumps({"generator_weights": "g.weights.h5",
                                                     "samples": "samples-5.png"}))
    target = publish_weights.publish(run, "toy", root=tmp_path / "weights")
    assert (target / "g.weights.h5").read_bytes() == b"weights"
    assert json.loads((target / "MODEL_CARD.json").read_text())["published_from"] == str(run)
    with pytest.raises(FileNotFoundError, match="no ckpt-<step>"):
        publish_weights.publish(run, "toy", root=tmp_path / "weights", checkpoints=True)
    for step in (10, 5):
        (run / f"ckpt-{step}").mkdir()
        (run / f"ckpt-{step}" / "generator.weights.h5").write_bytes(b"w%d" % step)
    (run / "samples-10.png").write_bytes(b"png10")
    target = publish_weights.publish(run, "toy", root=tmp_path / "weights", checkpoints=True,
                                     note="blurry")
    card = json.loads((target / "MODEL_CARD.json").read_text())
    assert card["note"] == "blurry"
    assert "`--model toy@10`" in (target / "MODEL_CARD.md").read_text()
    assert card["checkpoints"] == {"5": "g.step5.weights.h5", "10": "g.step10.weights.h5"}
    assert card["checkpoint_samples"] == {"5": "samples-5.png", "10": "samples-10.png"}
    assert (target / "g.step10.weights.h5").read_bytes() == b"w10"
    (run / "g.weights.h5").write_bytes(b"0" * (publish_weights.LIMIT + 1))
    with pytest.raises(ValueError, match="over the 10 MB limit"):
        publish_weights.publish(run, "toy", root=tmp_path / "weights")


def test_publish_exports_the_decoder_of_vae_checkpoints(tmp_path):
    import numpy as np

    from tfcf.models.trainers import build_trainer

    publish_weights = _publish_module()
    run = tmp_path / "run"
    (run / "ckpt-4").mkdir(parents=True)
    trainer = build_trainer("vae", "paper_cifar10", beta=1.0, seed=5)
    trainer.generator.set_weights([w + 0.25 for w in trainer.generator.get_weights()])
    trainer.models["vae"].save_weights(run / "ckpt-4" / "vae.weights.h5")
    trainer.generator.save_weights(run / "dec.weights.h5")
    (run / "samples-4.png").write_bytes(b"png")
    (run / "MODEL_CARD.json").write_text(json.dumps({
        "family": "vae", "preset": "paper_cifar10", "beta": 1.0, "seed": 0,
        "generator_weights": "dec.weights.h5", "samples": "samples-4.png"}))
    target = publish_weights.publish(run, "vae", root=tmp_path / "weights", checkpoints=True)
    exported = build_trainer("vae", "paper_cifar10", beta=1.0, seed=9).generator
    exported.load_weights(target / "dec.step4.weights.h5")
    for got, want in zip(exported.get_weights(), trainer.generator.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_publish_best_fid_exports_that_checkpoint_with_its_curve(tmp_path):
    import numpy as np

    from tfcf.models.trainers import build_trainer

    publish_weights = _publish_module()
    run = tmp_path / "run"
    trainers = {}
    for step, shift in ((2, 0.5), (4, 0.25)):
        (run / f"ckpt-{step}").mkdir(parents=True)
        trainer = build_trainer("vae", "paper_cifar10", beta=1.0, seed=5)
        trainer.generator.set_weights([w + shift for w in trainer.generator.get_weights()])
        trainer.models["vae"].save_weights(run / f"ckpt-{step}" / "vae.weights.h5")
        (run / f"samples-{step}.png").write_bytes(b"png")
        trainers[step] = trainer
    trainers[4].generator.save_weights(run / "dec.weights.h5")
    trainers[4].encoder.save_weights(run / "enc.weights.h5")
    (run / "log.csv").write_text("step,kl,loss,mse\n" + "".join(
        f"{s},{1 / s},{2 / s},{1 / s}\n" for s in range(1, 5)))
    (run / "fid.json").write_text(json.dumps({"images": 8, "extractor": "x", "real": "r",
                                              "generated": "g", "by_step": {"2": 50.0,
                                                                            "4": 70.0}}))
    (run / "MODEL_CARD.json").write_text(json.dumps({
        "family": "vae", "preset": "paper_cifar10", "beta": 1.0, "seed": 0, "steps": 4,
        "data": "fashion-mnist", "generator_weights": "dec.weights.h5",
        "encoder_weights": "enc.weights.h5", "samples": "samples-4.png"}))
    target = publish_weights.publish(run, "vae", root=tmp_path / "weights", best_fid=True)
    card = json.loads((target / "MODEL_CARD.json").read_text())
    assert card["steps"] == 2 and card["final_step"] == 4 and card["samples"] == "samples-2.png"
    assert card["fid"]["by_step"] == {"2": 50.0, "4": 70.0} and "lowest FID (50.0)" in \
        card["selected_by"]
    decoder = build_trainer("vae", "paper_cifar10", beta=1.0, seed=9).generator
    decoder.load_weights(target / card["generator_weights"])
    for got, want in zip(decoder.get_weights(), trainers[2].generator.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert (target / card["encoder_weights"]).is_file()
    assert (target / "training_curve.png").stat().st_size > 5000
    markdown = (target / "MODEL_CARD.md").read_text()
    assert "| 2 | 50.0 |" in markdown and "Step 2, chosen by lowest FID" in markdown
