"""A training run in a folder: deterministic batches, atomic checkpoints, exact resume, logs.

    run = Run("runs/vae", VAETrainer(enc, dec, beta=5e-4), images, batch_size=64, seed=0)
    run.train(steps=20000, checkpoint_every=1000)       # continues from runs/vae/latest

A checkpoint (``ckpt-<step>/``: every model's ``.weights.h5``, the optimizers' variables, the
dropout seed-generator states, the step, the trainer's scalar state, the run's configuration and
the sha1 of every file) is written to a temporary folder and moved into place, then the
``latest`` pointer is replaced atomically: killing the process at any moment loses at most the
steps since the last checkpoint. Batches and latent samples are a pure function of (seed, step),
so a resumed run computes exactly what the uninterrupted run would have.

Resuming never restarts silently: a checkpoint whose ``state.json`` is missing or unreadable, or
one of whose files is truncated or altered, is set aside (renamed ``ckpt-<step>.unusable``, with
a warning saying why) and the newest intact checkpoint is used; when checkpoints exist but none
is intact, :class:`CheckpointError` names the bad files. A resume with another seed, batch size
or configuration (data, preset, ...) is refused unless ``force=True``, and then the change is
recorded in ``history``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np

__all__ = ["CheckpointError", "CheckpointWarning", "Run"]


class CheckpointError(ValueError):
    """A run's checkpoints cannot be resumed (none intact, or another configuration)."""


class CheckpointWarning(UserWarning):
    """A checkpoint was unusable and an older one is resumed instead."""


def _file_digest(path):
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extra_variables(model):
    """Variables a checkpoint needs beyond the weights: dropout seed-generator states."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _to_float(value):
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


class Run:
    """A training run in a folder: deterministic batches, checkpoints, resume, logs, samples.

        run = Run("runs/vae", VAETrainer(enc, dec, beta=5e-4), images, batch_size=64, seed=0)
        run.train(steps=20000, checkpoint_every=1000)       # continues from runs/vae/latest

    ``trainer``: a :class:`tfcf.train.Trainer` (its ``models``, ``optimizers``, ``generator``,
    ``latent``, ``latent_dim``, ``train_step(real, noise, step)``, ``noise_draws()``,
    ``state()``/``load_state()``, ``sample()`` and ``optimizer_variables()`` are all it uses).
    ``images``: uint8 ``[N, H, W, C]`` (scaled to [-1, 1] per batch). Batch ``t`` takes the
    examples of a permutation drawn from ``seed`` and the epoch; the latent noise of step ``t``
    is drawn from ``(seed, t)``; so any step can be recomputed after a resume. Writes
    ``log.csv`` (every step's losses), ``samples-<step>.png`` per checkpoint, TensorBoard
    scalars under ``tensorboard/`` (TensorFlow backend) and ``ckpt-<step>/`` folders (the last
    ``keep`` are kept) with a ``latest`` pointer. ``config`` (JSON-serialisable: data, preset,
    ...) is stored in every checkpoint's ``state.json``.
    """

    def __init__(self, folder, trainer, images, batch_size=64, seed=0, keep=3,
                 sample_count=16, progress=True, keep_every=None, config=None):
        self.folder = Path(folder)
        self.trainer, self.images = trainer, images
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} "
                             f"{images.shape}")
        if len(images) < batch_size:
            raise ValueError(f"{len(images)} images are fewer than one batch of {batch_size}")
        self.batch_size, self.seed, self.keep = int(batch_size), int(seed), int(keep)
        self.keep_every = keep_every
        self.config = dict(config or {})
        self.progress = progress
        self.step = 0
        self.steps_per_epoch = len(images) // self.batch_size
        self.sample_z = self._noise(np.random.default_rng([seed, 2**31 - 1]), sample_count)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = None
        self.history = []      # configuration changes accepted with force=True: [{step, changed}]

    # ---- deterministic data
    def _noise(self, rng, count):
        shape = (count, self.trainer.latent_dim)
        if self.trainer.latent == "uniform":
            return rng.uniform(-1.0, 1.0, shape).astype("float32")
        return rng.standard_normal(shape).astype("float32")

    def batch(self, step):
        """Real images of step ``step`` (0-based) in [-1, 1], and its latent draws."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
        rows = np.sort(order[offset * self.batch_size:(offset + 1) * self.batch_size])
        real = self.images[rows].astype("float32") / 127.5 - 1.0
        rng = np.random.default_rng([self.seed, 1, step])
        noise = [self._noise(rng, self.batch_size) for _ in range(self.trainer.noise_draws())]
        return real, noise

    # ---- checkpoints
    def checkpoints(self):
        """``[(step, folder)]`` of the run's ``ckpt-<step>`` folders, oldest first."""
        found = []
        for path in self.folder.glob("ckpt-*"):
            suffix = path.name.split("-", 1)[1]
            if path.is_dir() and suffix.isdigit():
                found.append((int(suffix), path))
        return sorted(found)

    def latest(self):
        """The newest checkpoint folder that passes :meth:`check` (None when there is none).

        The ``latest`` pointer is only a hint: an unusable checkpoint it names is skipped.
        """
        for _, path in reversed(self.checkpoints()):
            if self.check(path) is None:
                return path
        return None

    def check(self, path):
        """None when checkpoint ``path`` is intact, else why not (naming ``ckpt-<step>/<file>``).

            problem = run.check(run.folder / "ckpt-500")     # e.g. "ckpt-500/optimizers.npz ..."
        """
        path = Path(path)
        state_file = path / "state.json"
        if not state_file.is_file():
            return f"{path.name}/state.json is missing"
        try:
            state = json.loads(state_file.read_text())
            int(state["step"])
        except (ValueError, KeyError, TypeError, OSError) as error:
            return f"{path.name}/state.json is unreadable ({type(error).__name__}: {error})"
        needed = [f"{name}.weights.h5" for name in self.trainer.models] + ["optimizers.npz"]
        for name in needed:
            if not (path / name).is_file():
                return f"{path.name}/{name} is missing"
        for name, digest in state.get("files", {}).items():
            if not (path / name).is_file():
                return f"{path.name}/{name} is missing"
            if _file_digest(path / name) != digest:
                return f"{path.name}/{name} is truncated or altered (its sha1 differs from the " \
                       "one written with the checkpoint)"
        return None

    def save(self):
        """Write ``ckpt-<step>`` atomically, then point ``latest`` at it."""
        from tfcf.io import atomic_write, save_figure
        from tfcf.plots import image_grid

        final = self.folder / f"ckpt-{self.step}"
        temporary = Path(tempfile.mkdtemp(prefix=f".ckpt-{self.step}.", dir=self.folder))
        try:
            for name, model in self.trainer.models.items():
                model.save_weights(temporary / f"{name}.weights.h5")
            optimizer_state = {f"{name}/{index}": np.asarray(keras.ops.convert_to_numpy(v))
                               for name, optimizer in self.trainer.optimizers.items()
                               for index, v in enumerate(optimizer.variables)}
            np.savez(temporary / "optimizers.npz", **optimizer_state)
            np.savez(temporary / "rng.npz", **{
                f"{name}/{index}": np.asarray(keras.ops.convert_to_numpy(v))
                for name, model in self.trainer.models.items()
                for index, v in enumerate(_extra_variables(model))})
            files = {item.name: _file_digest(item) for item in sorted(temporary.iterdir())}
            (temporary / "state.json").write_text(json.dumps({
                "step": self.step, "seed": self.seed, "batch_size": self.batch_size,
                "trainer": type(self.trainer).__name__, "trainer_state": self.trainer.state(),
                "backend": keras.backend.backend(), "config": self.config,
                "history": self.history, "files": files}))
            if final.exists():
                shutil.rmtree(final)
            os.replace(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        with atomic_write(self.folder / "latest", "w") as handle:
            handle.write(final.name)
        samples = self.trainer.sample(self.sample_z)
        columns = int(np.ceil(np.sqrt(len(samples))))
        rows = int(np.ceil(len(samples) / columns))
        padded = np.concatenate([samples, np.repeat(samples[-1:], rows * columns - len(samples),
                                                    axis=0)]) if rows * columns > len(samples) \
            else samples
        grid = padded.reshape((rows, columns) + samples.shape[1:])
        save_figure(image_grid(grid, title=f"samples at step {self.step}"),
                    self.folder / f"samples-{self.step}.png")
        self._prune()
        return final

    def _prune(self):
        """Delete old checkpoints beyond ``keep`` (sparing ``keep_every`` multiples), but only
        those older than an intact checkpoint: an intact one is never deleted while no newer
        intact one exists."""
        checkpoints = self.checkpoints()
        intact = [step for step, path in checkpoints if self.check(path) is None]
        if not intact:
            return
        newest_intact = intact[-1]
        for step, path in checkpoints[:-self.keep] if self.keep else []:
            if self.keep_every and step % self.keep_every == 0:
                continue
            if step < newest_intact:
                shutil.rmtree(path, ignore_errors=True)

    def _check_config(self, state, force):
        """Refuse (unless ``force``) a resume whose seed, batch size or config differ."""
        stored = {"seed": state.get("seed"), "batch_size": state.get("batch_size"),
                  **state.get("config", {})}
        current = {"seed": self.seed, "batch_size": self.batch_size, **self.config}
        changed = {key: [stored[key], current[key]] for key in sorted(set(stored) & set(current))
                   if stored[key] != current[key]}
        if changed and not force:
            details = "; ".join(f"{key} was {old!r}, now {new!r}"
                                for key, (old, new) in changed.items())
            raise CheckpointError(
                f"{self.folder} was trained with other settings than this resume: {details}. "
                "Resume with the original settings, choose another folder, or force the change "
                "(it is then recorded in the checkpoints and the model card).")
        return changed

    def set_aside(self, path, reason):
        """Rename an unusable checkpoint to ``ckpt-<step>.unusable`` and warn with ``reason``."""
        target = path.with_name(path.name + ".unusable")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(path, target)
        warnings.warn(CheckpointWarning(f"{reason}: {path.name} is set aside as {target.name}"),
                      stacklevel=3)

    def resume(self, force=False):
        """Restore the newest intact checkpoint; returns its step (0 when there is none).

            step = run.resume()          # warns about each unusable checkpoint it skips

        Raises :class:`CheckpointError` when checkpoints exist but none is intact (naming each
        bad file), or when the run was started with another seed, batch size or configuration
        (unless ``force``).
        """
        problems = []
        for step, path in reversed(self.checkpoints()):
            problem = self.check(path)
            if problem is None:
                try:
                    restored = self.restore(path, force=force)
                except CheckpointError:
                    raise
                except Exception as error:  # noqa: BLE001 - an unreadable file is a bad checkpoint
                    problem = (f"{path.name} cannot be loaded ({type(error).__name__}: "
                               f"{str(error).splitlines()[0][:200]})")
                else:
                    for bad, reason in problems:
                        self.set_aside(bad, f"{reason}; resuming from {path.name} instead")
                    return restored
            problems.append((path, problem))
        if problems:
            raise CheckpointError(
                f"no intact checkpoint in {self.folder}: " + "; ".join(p for _, p in problems)
                + ". Nothing was "
                "deleted; restore the files, or train into another folder.")
        self.step = 0
        self._truncate_log()
        return 0

    def restore(self, path=None, force=False):
        """Load a checkpoint (default: the newest intact one) into the models and optimizers.

            step = run.restore(run.folder / "ckpt-500")
        """
        path = Path(path) if path else self.latest()
        if path is None:
            raise CheckpointError(f"no intact checkpoint in {self.folder}")
        state = json.loads((path / "state.json").read_text())
        changed = self._check_config(state, force)
        for name, model in self.trainer.models.items():
            model.load_weights(path / f"{name}.weights.h5")
        stored = np.load(path / "optimizers.npz", allow_pickle=False)
        for name, optimizer in self.trainer.optimizers.items():
            if not optimizer.built:
                optimizer.build(self.trainer.optimizer_variables(name))
            for index, variable in enumerate(optimizer.variables):
                variable.assign(stored[f"{name}/{index}"])
        if (path / "rng.npz").is_file():
            extra = np.load(path / "rng.npz", allow_pickle=False)
            for name, model in self.trainer.models.items():
                for index, variable in enumerate(_extra_variables(model)):
                    variable.assign(extra[f"{name}/{index}"])
        self.trainer.load_state(state.get("trainer_state", {}))
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        if changed:
            self.history.append({"step": self.step, "changed": changed})
        self._truncate_log()
        return self.step

    def _log_rows(self):
        """``log.csv`` as (header line, [(step, line), ...]); ``(None, [])`` without a log."""
        log = self.folder / "log.csv"
        if not log.is_file():
            return None, []
        header, *lines = log.read_text().splitlines() or [None]
        rows = []
        for line in lines:   # a line cut short by a kill has no parsable step: dropped
            head = line.split(",", 1)[0]
            if head.isdigit() and line.count(",") == header.count(","):
                rows.append((int(head), line))
        return header, rows

    def _truncate_log(self):
        header, rows = self._log_rows()
        if header is None:
            return
        from tfcf.io import atomic_write

        with atomic_write(self.folder / "log.csv", "w") as handle:
            handle.write("\n".join([header] + [line for step, line in rows if step <= self.step])
                         + "\n")

    # ---- training
    def _log(self, logs):
        log = self.folder / "log.csv"
        if not log.is_file():
            log.write_text("step," + ",".join(sorted(logs)) + "\n")
            self._log_keys = None
        if getattr(self, "_log_keys", None) is None:  # the columns of the file, read once
            with open(log) as handle:
                self._log_keys = handle.readline().strip().split(",")[1:]
        keys = self._log_keys
        with open(log, "a") as handle:
            handle.write(f"{self.step}," + ",".join(f"{logs.get(k, float('nan')):.6g}"
                                                    for k in keys) + "\n")
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if self._writer is None:
                self._writer = tf.summary.create_file_writer(str(self.folder / "tensorboard"))
            with self._writer.as_default(step=self.step):
                for key, value in logs.items():
                    tf.summary.scalar(key, value)

    def train(self, steps, checkpoint_every=500, resume=True, force=False):
        """Train until step ``steps`` (a total, not an increment); returns the last losses.

        ``resume``: continue from the newest intact checkpoint (:meth:`resume`; ``force``
        accepts a changed configuration). With ``resume=False`` a folder that already holds
        checkpoints is refused rather than trained over.
        """
        from tfcf.io import progress_bar

        if resume:
            self.resume(force=force)
        elif self.checkpoints():
            raise CheckpointError(f"{self.folder} already holds checkpoints: resume it or choose "
                                  "another folder")
        else:
            self._truncate_log()
        logs = {}
        started, first = time.time(), self.step
        with progress_bar(max(0, steps - self.step), self.progress,
                          f"{type(self.trainer).__name__}", "step") as bar:
            while self.step < steps:
                real, noise = self.batch(self.step)
                raw = self.trainer.train_step(real, noise, self.step)
                logs = {key: _to_float(value) for key, value in raw.items()}
                self.step += 1
                self._log(logs)
                bar.update(1)
                bar.set_postfix_str(" ".join(f"{k} {v:.3g}" for k, v in list(logs.items())[:3]))
                if self.step % checkpoint_every == 0 or self.step == steps:
                    self.save()
        if self._writer is not None:
            self._writer.flush()
        if self.step == first:   # resumed at the target step: report its logged losses, no rate
            return {**self._logged(self.step), "steps_per_second": None}
        logs["steps_per_second"] = (self.step - first) / (time.time() - started)
        return logs

    def _logged(self, step):
        """The losses ``log.csv`` holds for ``step`` (empty if it has none)."""
        header, rows = self._log_rows()
        lines = [line for logged, line in rows if logged == step]
        if not lines:
            return {}
        return {key: float(value) for key, value in
                zip(header.split(",")[1:], lines[-1].split(",")[1:])}
