"""Training loops: a step learns, resume is exact, a killed run resumes, checkpoints cross backends."""

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tfcf.models import began, dcgan, vae
from tfcf.models.trainers import build_trainer
from tfcf.run import CheckpointError, CheckpointWarning
from tfcf.train import BEGANTrainer, GANTrainer, Run, Trainer, VAETrainer

ROOT = Path(__file__).resolve().parent.parent


def images(count=24, size=32, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (4, size, size, 3))
    return np.clip(base[rng.integers(0, 4, count)] + rng.integers(-20, 20, (count, size, size, 3)),
                   0, 255).astype(np.uint8)


def make(kind):
    keras.utils.set_random_seed(0)
    if kind == "vae":
        return VAETrainer(vae.build_encoder("paper_cifar10"), vae.build_decoder("paper_cifar10"),
                          beta=5e-4)
    if kind == "gan":
        return GANTrainer(dcgan.build_generator("paper_cifar10", dropout=0.2),
                          dcgan.build_discriminator("paper_cifar10"))
    return BEGANTrainer(began.build_generator("celeba64", hidden=4, z_dim=8),
                        began.build_discriminator("celeba64", hidden=4, embedding=8))


def test_vae_steps_reduce_the_loss(tmp_path):
    run = Run(tmp_path, make("vae"), images(16), batch_size=16, progress=False)
    run.train(25, checkpoint_every=100)
    log = np.loadtxt(tmp_path / "log.csv", delimiter=",", skiprows=1)
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    loss = log[:, header.index("loss")]
    assert log[:, 0].tolist() == list(range(1, 26))
    assert loss[-5:].mean() < 0.8 * loss[:3].mean()


def test_began_equilibrium_update(tmp_path):
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1), from the logged losses."""
    run = Run(tmp_path, make("began"), images(8, 64), batch_size=8, progress=False)
    run.train(2, checkpoint_every=100)
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    log = np.loadtxt(tmp_path / "log.csv", delimiter=",", skiprows=1)
    k = 0.0
    for row in log:
        real, fake = row[header.index("loss_real")], row[header.index("loss_fake")]
        k = float(np.clip(k + 1e-3 * (0.4 * real - fake), 0.0, 1.0))
        assert row[header.index("k")] == pytest.approx(k, abs=1e-6)
    assert run.trainer.state() == {"k": pytest.approx(k, abs=1e-6)}


@pytest.mark.parametrize("kind", ["gan"])
def test_resume_recomputes_the_uninterrupted_run(kind, tmp_path):
    """A GAN with dropout: weights, optimizer moments and the dropout RNG are restored."""
    data = images(16, 32)
    straight = Run(tmp_path / "a", make(kind), data, batch_size=8, progress=False)
    straight.train(6, checkpoint_every=3)
    resumed = Run(tmp_path / "a", make(kind), data, batch_size=8, progress=False)
    assert resumed.restore(tmp_path / "a" / "ckpt-3") == 3
    resumed.folder = tmp_path / "b"
    resumed.folder.mkdir()
    resumed.train(6, checkpoint_every=3, resume=False)
    for a, b in zip(straight.trainer.generator.get_weights(),
                    resumed.trainer.generator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert resumed.trainer.state() == straight.trainer.state()
    # a run resumed at its target step trains nothing and reports the losses it logged there
    again = Run(tmp_path / "b", make(kind), data, batch_size=8, progress=False)
    logs = again.train(6, checkpoint_every=3)
    with open(tmp_path / "b" / "log.csv") as handle:
        last = list(csv.DictReader(handle))[-1]
    assert again.step == 6 and logs["steps_per_second"] is None
    assert logs["d_loss"] == pytest.approx(float(last["d_loss"])) and last["step"] == "6"
    state = json.loads((tmp_path / "a" / "ckpt-6" / "state.json").read_text())
    assert state["step"] == 6 and (tmp_path / "a" / "latest").read_text() == "ckpt-6"
    assert (tmp_path / "a" / "samples-6.png").stat().st_size > 2000


def _shards(folder, count=24):
    folder.mkdir()
    np.savez(folder / "part_000.npz", images=images(count))
    return folder


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="one backend is enough for the subprocess kill test")
def test_killed_training_resumes_from_its_last_checkpoint(tmp_path):
    data = _shards(tmp_path / "data")
    outdir = tmp_path / "run"
    command = [sys.executable, "-c", "from tfcf.experiments.cli import main; main()", "train", "vae",
               "--data",
               f"folder:{data}", "--preset", "paper_cifar10", "--steps", "400",
               "--batch-size", "8", "--checkpoint-every", "4", "--outdir", str(outdir)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if (outdir / "ckpt-8" / "state.json").exists() or process.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    latest = json.loads(((outdir / (outdir / "latest").read_text()) / "state.json").read_text())
    saved = latest["step"]
    assert 8 <= saved < 400 and saved % 4 == 0
    from click.testing import CliRunner

    from tfcf.experiments.cli import main

    arguments = command[3:]
    arguments[arguments.index("400")] = str(saved + 4)
    result = CliRunner().invoke(main, arguments + ["--resume"])
    assert result.exit_code == 0, result.output
    steps = np.loadtxt(outdir / "log.csv", delimiter=",", skiprows=1)[:, 0]
    assert steps.tolist() == list(range(1, saved + 5))
    card = json.loads((outdir / "MODEL_CARD.json").read_text())
    assert card["steps"] == saved + 4 and card["family"] == "vae"
    # the resumed run computed what an uninterrupted run computes
    straight = Run(tmp_path / "straight", make("vae"), images(24), batch_size=8, progress=False)
    straight.train(saved + 4, checkpoint_every=1000)
    trained = vae.build_decoder("paper_cifar10")
    trained.load_weights(outdir / card["generator_weights"])
    for a, b in zip(trained.get_weights(), straight.trainer.generator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    again = CliRunner().invoke(main, command[3:])
    assert again.exit_code == 2 and "--resume" in again.output


@pytest.mark.jax
@pytest.mark.slow  # a fresh JAX interpreter: about 30 s
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="writes under TensorFlow")
def test_checkpoint_written_under_tensorflow_resumes_under_jax(tmp_path):
    run = Run(tmp_path, make("gan"), images(16), batch_size=8, progress=False)
    run.train(2, checkpoint_every=2)
    z = np.random.default_rng(0).standard_normal((2, 150)).astype("float32")
    expected = np.asarray(run.trainer.generator(z, training=False))
    np.save(tmp_path / "z.npy", z)
    script = (
        "import numpy as np, sys; sys.path.insert(0, 'tests');"
        "from test_train import make, images; from tfcf.train import Run;"
        f"run = Run(r'{tmp_path}', make('gan'), images(16), batch_size=8, progress=False);"
        "print('step', run.restore());"
        f"z = np.load(r'{tmp_path / 'z.npy'}');"
        f"np.save(r'{tmp_path / 'jax.npy'}', np.asarray(run.trainer.generator(z, training=False)))")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 2" in result.stdout
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), expected, atol=1e-4)


def test_sdr_penalty_steps_lower_the_penalty_and_resume(tmp_path):
    """Workshop §5.2: extra steps on the decoder kernels lower eq. 9 for those kernels."""
    from tfcf.spectral import sdr_penalty

    def trainer():
        keras.utils.set_random_seed(0)
        return VAETrainer(vae.build_encoder("paper_cifar10"), vae.build_decoder("paper_cifar10"),
                          beta=5e-4, sdr_layers=["g_h3_decon2d", "g_h2_decon2d"],
                          sdr_learning_rate=1e-2)

    data = images(16)
    run = Run(tmp_path, trainer(), data, batch_size=8, progress=False)
    layer = run.trainer.generator.get_layer("g_h3_decon2d")
    feeder = keras.Model(run.trainer.generator.inputs, layer.input)
    real, _ = run.batch(0)
    mean, _ = run.trainer.encoder(real, training=False)

    def penalty():
        kernel = keras.ops.transpose(layer.kernel, (0, 1, 3, 2))
        return float(keras.ops.convert_to_numpy(sdr_penalty(feeder(mean), kernel, 2)))

    before = penalty()
    for _ in range(6):
        run.trainer._sdr_steps[0](mean)
    assert penalty() < 0.9 * before
    run.train(4, checkpoint_every=2)
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert "sdr_g_h3_decon2d" in header and "sdr_g_h2_decon2d" in header
    resumed = Run(tmp_path, trainer(), data, batch_size=8, progress=False)
    resumed.restore(tmp_path / "ckpt-2")
    assert resumed.trainer.state() == {"sdr_turn": 2}


def test_vae_objectives_are_the_per_pixel_mean_and_the_per_image_sum():
    """mse: mean over batch, pixels, colours (vae-celebA); sse: per-image sum; + beta * KL."""
    keras.utils.set_random_seed(0)
    encoder, decoder = vae.build_encoder("paper_cifar10"), vae.build_decoder("paper_cifar10")
    real = images(4, 32).astype("float32") / 127.5 - 1.0
    noise = np.random.default_rng(1).standard_normal((4, 128)).astype("float32")
    losses = {}
    for objective in ("mse", "sse"):
        trainer = VAETrainer(encoder, decoder, beta=0.25, objective=objective)
        reconstruction, mean, log_var = (keras.ops.convert_to_numpy(t).astype(np.float64)
                                         for t in trainer.vae([real, noise], training=True))
        loss, logs = trainer._loss(real, noise)
        squared = (reconstruction - real) ** 2
        kl = np.mean(-0.5 * np.sum(1 + log_var - mean ** 2 - np.exp(log_var), axis=1))
        error = squared.mean() if objective == "mse" else squared.sum(axis=(1, 2, 3)).mean()
        np.testing.assert_allclose(float(logs[objective]), error, rtol=1e-5)
        np.testing.assert_allclose(float(logs["kl"]), kl, rtol=1e-5)
        np.testing.assert_allclose(float(loss), error + 0.25 * kl, rtol=1e-5)
        losses[objective] = float(logs[objective])
    np.testing.assert_allclose(losses["sse"], losses["mse"] * 32 * 32 * 3, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown VAE objective 'l1'; valid: mse, sse"):
        VAETrainer(encoder, decoder, beta=1.0, objective="l1")


def test_holdout_leaves_the_last_images_out():
    from tfcf.data import held_out_images, training_images

    data = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    assert training_images(data, 3).ravel().tolist() == list(range(7))
    assert held_out_images(data, 3).ravel().tolist() == [7, 8, 9]
    assert len(training_images(data, 3, count=4, seed=0)) == 4
    assert set(training_images(data, 3, count=4).ravel()) <= set(range(7))
    with pytest.raises(ValueError, match="holdout 10 must be in"):
        training_images(data, 10)


class _Recorder(Trainer):
    """A trainer that learns nothing and records what Run hands it."""

    def __init__(self, draws=2):
        keras.utils.set_random_seed(0)
        self.generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4 * 4 * 3),
                                           keras.layers.Reshape((4, 4, 3))])
        self.models, self.optimizers, self.latent_dim = {"generator": self.generator}, {}, 3
        self.draws, self.calls = draws, []

    def train_step(self, real, noise, step):
        self.calls.append((step, len(noise), noise[0].shape))
        return {"loss": float(step)}

    def noise_draws(self):
        return self.draws


def test_run_hands_every_trainer_its_step_and_noise_draws(tmp_path):
    data = images(8, 4)
    run = Run(tmp_path, _Recorder(), data, batch_size=4, progress=False)
    run.train(3, checkpoint_every=2)
    assert run.trainer.calls == [(0, 2, (4, 3)), (1, 2, (4, 3)), (2, 2, (4, 3))]
    resumed = Run(tmp_path, _Recorder(draws=1), data, batch_size=4, progress=False)
    assert resumed.train(5, checkpoint_every=2)["loss"] == 4.0
    assert [step for step, _, _ in resumed.trainer.calls] == [3, 4]


def test_the_trainer_interface_names_what_a_subclass_lacks():
    class Half(Trainer):
        pass

    half = Half()
    with pytest.raises(NotImplementedError,
                       match=r"Half must implement train_step\(real, noise, step\)"):
        half.train_step(None, [], 0)
    with pytest.raises(NotImplementedError, match=r"Half must implement noise_draws\(\)"):
        half.noise_draws()
    with pytest.raises(AttributeError, match="Half has no 'models': a Trainer sets models, "
                                             "optimizers, generator, latent_dim"):
        half.models
    assert not hasattr(half, "generator") and half.latent == "normal" and half.state() == {}


def test_compiled_gradients_are_kept_on_their_owner_and_die_with_it():
    """The JAX step cache: one entry per (owner, method, variables), freed with its owner; a new
    owner never gets another's, even at a reused id()."""
    import gc
    import weakref

    from tfcf.train import _cached

    class Owner:
        def loss(self):
            return 0.0

        def other_loss(self):
            return 0.0

    count = [0]

    def compiler(loss_fn):
        def compile_function():
            count[0] += 1
            return lambda *args: loss_fn(*args)   # holds the loss function, as jax.jit(pure) does
        return compile_function

    variables = [keras.Variable(1.0), keras.Variable(2.0)]
    first, second = Owner(), Owner()
    compiled = _cached(first.loss, variables, [], compiler(first.loss))
    assert _cached(first.loss, variables, [], compiler(first.loss)) is compiled  # new bound method
    assert _cached(first.other_loss, variables, [], compiler(first.other_loss)) is not compiled
    assert _cached(first.loss, variables[:1], variables[1:], compiler(first.loss)) is not compiled
    assert _cached(second.loss, variables, [], compiler(second.loss)) is not compiled
    assert count[0] == 4

    def step(x):
        return x

    assert _cached(step, variables, [], compiler(step)) is _cached(step, variables, [],
                                                                   compiler(step))
    assert count[0] == 5
    reference = weakref.ref(first)
    del first, compiled
    gc.collect()
    assert reference() is None   # the cache does not keep its owner alive
    fresh = [Owner() for _ in range(100)]   # some may reuse the freed id
    for owner in fresh:
        _cached(owner.loss, variables, [], compiler(owner.loss))
    assert count[0] == 5 + 100


def test_build_trainer_builds_the_presets_networks_and_options():
    """The trainer's networks are the family builders' at ``seed``; VAE options default to the
    preset's; bad names are refused with the valid ones."""
    trainer = build_trainer("vae", "sdr_c64", seed=3)
    assert type(trainer) is VAETrainer
    assert (trainer.beta, trainer.objective) == (1.0, "sse")   # vae.PRESETS["sdr_c64"]
    for got, want in zip(trainer.encoder.get_weights(),
                         vae.build_encoder("sdr_c64", seed=3).get_weights()):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(trainer.generator.get_weights(),
                         vae.build_decoder("sdr_c64", seed=3).get_weights()):
        np.testing.assert_array_equal(got, want)
    trainer = build_trainer("vae", "paper_cifar10", beta=0.25, objective="sse",
                            sdr_layers=["g_h3_decon2d"])
    assert (trainer.beta, trainer.objective) == (0.25, "sse")
    assert [layer.name for layer in trainer.sdr_layers] == ["g_h3_decon2d"]
    gan = build_trainer("dcgan", "paper_cifar10", dropout=0.2, seed=1)
    assert type(gan) is GANTrainer
    assert [layer.rate for layer in gan.generator.layers
            if isinstance(layer, keras.layers.Dropout)] == [0.2]
    for got, want in zip(gan.discriminator.get_weights(),
                         dcgan.build_discriminator("paper_cifar10", seed=1).get_weights()):
        np.testing.assert_array_equal(got, want)
    assert type(build_trainer("began", "celeba64_small")) is BEGANTrainer
    with pytest.raises(ValueError, match="unknown model family 'gan'; valid: dcgan, vae, began"):
        build_trainer("gan", "paper_cifar10")
    with pytest.raises(ValueError, match="unknown vae preset 'celeba'; valid: repo, paper_celeba"):
        build_trainer("vae", "celeba")


def test_began_trainer_takes_the_presets_gamma():
    """BEGAN-tensorflow uses gamma 0.4 at 64 px and 0.7 at 128 px."""
    from tfcf.models.trainers import build_trainer

    assert build_trainer("began", "celeba64_small").gamma == 0.4
    assert build_trainer("began", "celeba128").gamma == 0.7


# --- faults injected into a run's checkpoints (resume never restarts silently) --------------


def _vae_run(folder, seed=0, batch_size=8, config=None, keep=5):
    return Run(folder, make("vae"), images(16), batch_size=batch_size, seed=seed, progress=False,
               keep=keep, config=config if config is not None else {"preset": "paper_cifar10"})


def _trained_run(folder, steps=6, every=2):
    run = _vae_run(folder)
    run.train(steps, checkpoint_every=every)
    return run


@pytest.fixture(scope="module")
def six_step_run(tmp_path_factory):
    """A VAE run with checkpoints at steps 2, 4, 6 and its final decoder weights (trained once)."""
    folder = tmp_path_factory.mktemp("six") / "run"
    return folder, [w.copy() for w in _trained_run(folder).trainer.generator.get_weights()]


@pytest.mark.parametrize("fault", ["state_missing", "state_garbage", "weights_truncated",
                                   "optimizer_truncated"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, fault, six_step_run):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(six_step_run[0], folder)
    expected = make("vae")
    expected.vae.load_weights(folder / "ckpt-4" / "vae.weights.h5")
    newest = folder / "ckpt-6"
    target = {"state_missing": "state.json", "state_garbage": "state.json",
              "weights_truncated": "vae.weights.h5", "optimizer_truncated": "optimizers.npz"}[fault]
    if fault == "state_missing":
        (newest / target).unlink()
    elif fault == "state_garbage":
        (newest / target).write_text("{not json")
    else:
        data = (newest / target).read_bytes()
        (newest / target).write_bytes(data[: len(data) // 2])
    resumed = _vae_run(folder)
    with pytest.warns(CheckpointWarning, match=f"ckpt-6/{target}"):
        assert resumed.resume() == 4
    for a, b in zip(resumed.trainer.generator.get_weights(), expected.generator.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert (folder / "ckpt-6.unusable").is_dir() and not newest.exists()
    assert [step for step, _ in resumed.checkpoints()] == [2, 4]      # intact ones all kept
    header, rows = resumed._log_rows()
    assert [step for step, _ in rows] == [1, 2, 3, 4]                 # no duplicated rows
    resumed.train(6, checkpoint_every=2)
    steps = np.loadtxt(folder / "log.csv", delimiter=",", skiprows=1)[:, 0]
    assert steps.tolist() == [1, 2, 3, 4, 5, 6]
    for a, b in zip(resumed.trainer.generator.get_weights(), six_step_run[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_no_intact_checkpoint_is_an_error_naming_the_files_and_nothing_is_deleted(tmp_path,
                                                                                six_step_run):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(six_step_run[0], folder)
    shutil.rmtree(folder / "ckpt-6")
    for step in (2, 4):
        (folder / f"ckpt-{step}" / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"ckpt-4/state\.json is missing.*ckpt-2/state\.json"):
        _vae_run(folder).train(6, checkpoint_every=2)
    assert (folder / "ckpt-2").is_dir() and (folder / "ckpt-4").is_dir()
    assert len((folder / "log.csv").read_text().splitlines()) == 7   # header + 6 rows, untouched


@pytest.mark.parametrize("change", [{"seed": 1}, {"batch_size": 4},
                                    {"config": {"preset": "sdr_c32"}}])
def test_resume_with_other_settings_is_refused_unless_forced(tmp_path, change, six_step_run):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(six_step_run[0], folder)
    for step in (4, 6):
        shutil.rmtree(folder / f"ckpt-{step}")
    other = _vae_run(folder, **change)
    key, (old, new) = {"seed": ("seed", (0, 1)), "batch_size": ("batch_size", (8, 4)),
                       "config": ("preset", ("paper_cifar10", "sdr_c32"))}[next(iter(change))]
    with pytest.raises(CheckpointError, match=f"{key} was {old!r}, now {new!r}"):
        other.train(4, checkpoint_every=2)
    assert other.step == 0
    forced = _vae_run(folder, **change)
    forced.train(4, checkpoint_every=2, force=True)
    assert forced.history == [{"step": 2, "changed": {key: [old, new]}}]
    state = json.loads((folder / "ckpt-4" / "state.json").read_text())
    assert state["history"] == forced.history


def test_a_folder_with_checkpoints_is_not_trained_over(six_step_run):
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        _vae_run(six_step_run[0]).train(8, resume=False)


def test_pruning_never_deletes_the_newest_intact_checkpoint(tmp_path, six_step_run):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(six_step_run[0], folder)
    (folder / "ckpt-6" / "optimizers.npz").write_bytes(b"")    # the newest breaks
    run = _vae_run(folder, keep=1)
    run._prune()                                               # ckpt-4 is the newest intact
    assert [step for step, _ in run.checkpoints()] == [4, 6]


def test_cli_resume_with_a_broken_checkpoint_says_what_it_did(tmp_path):
    from click.testing import CliRunner

    from tfcf.experiments.cli import main

    data = _shards(tmp_path / "data")
    arguments = ["train", "vae", "--data", f"folder:{data}", "--preset", "paper_cifar10",
                 "--steps", "4", "--batch-size", "8", "--checkpoint-every", "2",
                 "--outdir", str(tmp_path / "run")]
    assert CliRunner().invoke(main, arguments).exit_code == 0
    (tmp_path / "run" / "ckpt-4" / "state.json").unlink()
    result = CliRunner().invoke(main, arguments + ["--resume"])
    assert result.exit_code == 0, result.output
    assert "ckpt-4/state.json is missing" in result.output and "ckpt-2" in result.output
    refused = CliRunner().invoke(main, arguments + ["--resume", "--seed", "3"])
    assert refused.exit_code == 2 and "seed was 0, now 3" in refused.output
    assert "Traceback" not in refused.output
