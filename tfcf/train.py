"""Training loops (DCGAN, beta-VAE, BEGAN) with atomic checkpoints and exact resume, TF or JAX.

    trainer = GANTrainer(generator, discriminator)              # tensorlayer DCGAN recipe
    run = Run("runs/dcgan", trainer, images, batch_size=64, seed=0)
    run.train(steps=5000, checkpoint_every=500)                 # resumes from runs/dcgan if any

Every model is a Keras 3 model and every step goes through :func:`gradients`, which uses a
``tf.GradientTape`` (inside ``tf.function``) under the TensorFlow backend and ``jax.value_and_grad``
of a stateless function (jitted) under JAX, so the same trainer runs on both. A checkpoint
(``ckpt-<step>/``: every model's ``.weights.h5``, the optimizers' variables, the dropout
seed-generator states, the step, the trainer's scalar state) is written to a temporary folder and moved into place, then the
``latest`` pointer is replaced atomically: killing the process at any moment loses at most the
steps since the last checkpoint. Batches and latent samples are a pure function of (seed, step),
so a resumed run computes exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

__all__ = ["BEGANTrainer", "GANTrainer", "Run", "VAETrainer", "gradients"]


# --------------------------------------------------------------------------- gradients


def gradients(loss_fn, trainable, non_trainable, *args):
    """(loss, logs, grads) of ``loss_fn(*args) -> (loss, logs)`` w.r.t. ``trainable``.

        loss, logs, grads = gradients(lambda x: ..., model.trainable_variables,
                                      model.non_trainable_variables, batch)

    ``non_trainable`` must list every other variable ``loss_fn`` reads (under JAX the function
    is jitted and anything not passed in would be frozen as a constant); those it updates
    (batch-norm statistics) keep their new values under both backends.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, logs = loss_fn(*args)
        return loss, logs, tape.gradient(loss, trainable)
    if backend == "jax":
        import jax

        def pure(train_values, fixed_values, *inputs):
            mapping = list(zip(trainable, train_values)) + list(zip(non_trainable, fixed_values))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                loss, logs = loss_fn(*inputs)
            updated = [scope.get_current_value(v) for v in non_trainable]
            updated = [u if u is not None else f for u, f in zip(updated, fixed_values)]
            return loss, (logs, updated)

        owner = getattr(loss_fn, "__self__", None)  # bound methods are new objects per access
        key = ((id(owner), loss_fn.__name__) if owner is not None else id(loss_fn),
               len(trainable))
        compiled = _JAX_CACHE.get(key)
        if compiled is None:
            compiled = _JAX_CACHE[key] = jax.jit(jax.value_and_grad(pure, has_aux=True))
        (loss, (logs, updated)), grads = compiled(
            [v.value for v in trainable], [v.value for v in non_trainable], *args)
        for variable, value in zip(non_trainable, updated):
            variable.assign(value)
        return loss, logs, grads
    raise RuntimeError(f"training supports the tensorflow and jax backends, not {backend!r}")


_JAX_CACHE: dict = {}


def _compiled(function):
    """tf.function under TensorFlow (no XLA: slower on CPU); the plain function otherwise."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(function, reduce_retracing=True)
    return function


def _adam(learning_rate, beta_1):
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


# --------------------------------------------------------------------------- trainers


class _Trainer:
    """Common parts: named models and optimizers, a step, samples for the grid, scalar state."""

    latent = "normal"
    models: dict
    optimizers: dict
    latent_dim: int

    def state(self):
        """Scalar state saved with a checkpoint (e.g. BEGAN's k_t)."""
        return {}

    def load_state(self, state):
        pass

    def sample(self, z):
        return np.asarray(keras.ops.convert_to_numpy(self.generator(z, training=False)))

    def optimizer_variables(self, name):
        """The variables optimizer ``name`` updates (its state is saved in that order)."""
        return self.models[name].trainable_variables

    def _apply(self, name, loss_fn, *args):
        model = self.models[name]
        # every other variable the loss reads (the other network) is passed too: under JAX a
        # jitted function must not capture variables as constants
        others = [v for key, m in self.models.items() if key != name for v in m.variables]
        loss, logs, grads = gradients(loss_fn, model.trainable_variables,
                                      list(model.non_trainable_variables) + others, *args)
        self.optimizers[name].apply_gradients(zip(grads, model.trainable_variables))
        return loss, logs


class GANTrainer(_Trainer):
    """DCGAN, the tensorlayer recipe: Adam(2e-4, beta1 0.5), non-saturating losses on logits,
    the generator updated ``generator_steps`` times per discriminator step.

        trainer = GANTrainer(build_generator("paper_celeba"), build_discriminator("paper_celeba"))
    """

    def __init__(self, generator, discriminator, learning_rate=2e-4, beta_1=0.5,
                 generator_steps=2):
        self.generator, self.discriminator = generator, discriminator
        self.models = {"generator": generator, "discriminator": discriminator}
        self.optimizers = {"generator": _adam(learning_rate, beta_1),
                           "discriminator": _adam(learning_rate, beta_1)}
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.generator_steps = int(generator_steps)
        self._d_step = _compiled(self._discriminator_step)
        self._g_step = _compiled(self._generator_step)

    def _d_loss(self, real, z):
        from keras import ops

        fake = self.generator(z, training=True)
        real_logits = self.discriminator(real, training=True)
        fake_logits = self.discriminator(fake, training=True)
        bce = keras.losses.binary_crossentropy
        loss_real = ops.mean(bce(ops.ones_like(real_logits), real_logits, from_logits=True))
        loss_fake = ops.mean(bce(ops.zeros_like(fake_logits), fake_logits, from_logits=True))
        loss = loss_real + loss_fake
        return loss, {"d_loss": loss, "d_real": ops.mean(ops.sigmoid(real_logits))}

    def _g_loss(self, z):
        from keras import ops

        logits = self.discriminator(self.generator(z, training=True), training=True)
        loss = ops.mean(keras.losses.binary_crossentropy(ops.ones_like(logits), logits,
                                                         from_logits=True))
        return loss, {"g_loss": loss}

    def _discriminator_step(self, real, z):
        return self._apply("discriminator", self._d_loss, real, z)[1]

    def _generator_step(self, z):
        return self._apply("generator", self._g_loss, z)[1]

    def train_step(self, real, noise):
        logs = dict(self._d_step(real, noise[0]))
        for index in range(self.generator_steps):
            logs.update(self._g_step(noise[min(index + 1, len(noise) - 1)]))
        return logs

    def noise_draws(self):
        return 1 + self.generator_steps


class VAETrainer(_Trainer):
    """beta-VAE (vae-celebA): Gaussian posterior, loss = SSE per image + beta * KL, batch mean.

        trainer = VAETrainer(build_encoder("paper_celeba"), build_decoder("paper_celeba"), beta=5e-4)
        trainer = VAETrainer(enc, dec, beta=5e-3, sdr_layers=["g_h4_decon2d", "g_h3_decon2d",
                                                              "g_h2_decon2d"])

    ``sdr_layers`` (ICML 2018 workshop, section 5.2): after every VAE step, one extra step
    moves the kernels of one of these decoder layers (in turn) down the gradient of
    :func:`tfcf.spectral.sdr_penalty` between them and the activation maps they read (for the
    batch's latent codes, held fixed), with its own Adam (``sdr_learning_rate``).
    """

    def __init__(self, encoder, decoder, beta, learning_rate=1e-3, beta_1=0.5, sdr_layers=(),
                 sdr_learning_rate=1e-4):
        from keras import layers

        self.encoder, self.generator, self.beta = encoder, decoder, float(beta)
        image = keras.Input(encoder.inputs[0].shape[1:])
        noise = keras.Input(decoder.inputs[0].shape[1:])
        mean, log_var = encoder(image)
        z = layers.Add()([mean, layers.Multiply()([keras.ops.exp(0.5 * log_var), noise])])
        self.vae = keras.Model([image, noise], [decoder(z), mean, log_var], name="vae")
        self.models = {"vae": self.vae}
        self.optimizers = {"vae": _adam(learning_rate, beta_1)}
        self.latent_dim = int(decoder.inputs[0].shape[-1])
        self._step = _compiled(self._vae_step)
        self.sdr_layers = [decoder.get_layer(name) for name in sdr_layers]
        self._sdr_feeders = [keras.Model(decoder.inputs, layer.input) for layer in self.sdr_layers]
        self._sdr_optimizers = []
        for index, layer in enumerate(self.sdr_layers):
            optimizer = _adam(sdr_learning_rate, 0.9)
            optimizer.build([layer.kernel])
            self._sdr_optimizers.append(optimizer)
            self.optimizers[f"sdr{index}"] = optimizer
        self._sdr_steps = [_compiled(self._make_sdr_step(i)) for i in range(len(self.sdr_layers))]
        self._turn = 0

    def _make_sdr_step(self, index):
        from tfcf.spectral import sdr_penalty

        layer = self.sdr_layers[index]
        stride = int(layer.strides[0])
        transposed = isinstance(layer, keras.layers.Conv2DTranspose)

        def loss_fn(activations):
            kernel = layer.kernel
            if transposed:
                kernel = keras.ops.transpose(kernel, (0, 1, 3, 2))
            penalty = sdr_penalty(activations, kernel, stride)
            return penalty, {f"sdr_{layer.name}": penalty}

        def step(z):
            activations = keras.ops.stop_gradient(self._sdr_feeders[index](z, training=False))
            loss, logs, grads = gradients(loss_fn, [layer.kernel], [], activations)
            self._sdr_optimizers[index].apply_gradients(zip(grads, [layer.kernel]))
            return logs

        step.__name__ = f"sdr_step_{index}"
        return step

    def optimizer_variables(self, name):
        if name.startswith("sdr"):
            return [self.sdr_layers[int(name[3:])].kernel]
        return super().optimizer_variables(name)

    def state(self):
        return {"sdr_turn": self._turn} if self.sdr_layers else {}

    def load_state(self, state):
        self._turn = int(state.get("sdr_turn", 0))

    def _loss(self, real, noise):
        from keras import ops

        reconstruction, mean, log_var = self.vae([real, noise], training=True)
        sse = ops.mean(ops.sum(ops.square(reconstruction - real), axis=(1, 2, 3)))
        kl = ops.mean(-0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var),
                                     axis=1))
        loss = sse + self.beta * kl
        return loss, {"loss": loss, "sse": sse, "kl": kl}

    def _vae_step(self, real, noise):
        return self._apply("vae", self._loss, real, noise)[1]

    def train_step(self, real, noise):
        logs = dict(self._step(real, noise[0]))
        if self.sdr_layers:
            logs.update({f"sdr_{layer.name}": float("nan") for layer in self.sdr_layers})
            index = self._turn % len(self.sdr_layers)
            mean, _ = self.encoder(real, training=False)
            logs.update(self._sdr_steps[index](mean))
            self._turn += 1
        return logs

    def noise_draws(self):
        return 1


class BEGANTrainer(_Trainer):
    """BEGAN (Berthelot et al.; BEGAN-tensorflow): autoencoder discriminator, L(x) = |x - D(x)|,
    L_D = L(x) - k_t L(G(z)), L_G = L(G(z)), k_t += lambda_k (gamma L(x) - L(G(z))) clipped to
    [0, 1]; learning rate halved every ``decay_every`` steps.

        trainer = BEGANTrainer(build_generator("celeba64"), build_discriminator("celeba64"))
    """

    def __init__(self, generator, discriminator, learning_rate=8e-5, gamma=0.4, lambda_k=1e-3,
                 decay_every=100_000, lower_bound=2e-5):
        self.latent = "uniform"
        self.generator, self.discriminator = generator, discriminator
        self.models = {"generator": generator, "discriminator": discriminator}
        self.optimizers = {"generator": _adam(learning_rate, 0.5),
                           "discriminator": _adam(learning_rate, 0.5)}
        self.learning_rate, self.lower_bound = float(learning_rate), float(lower_bound)
        self.gamma, self.lambda_k, self.decay_every = float(gamma), float(lambda_k), decay_every
        self.k = 0.0
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self._d_step = _compiled(self._discriminator_step)
        self._g_step = _compiled(self._generator_step)

    def state(self):
        return {"k": self.k}

    def load_state(self, state):
        self.k = float(state.get("k", 0.0))

    def _reconstruction(self, images):
        from keras import ops

        return ops.mean(ops.abs(images - self.discriminator(images, training=True)))

    def _d_loss(self, real, z, k):
        fake = self.generator(z, training=True)
        loss_real, loss_fake = self._reconstruction(real), self._reconstruction(fake)
        return loss_real - k * loss_fake, {"d_loss": loss_real - k * loss_fake,
                                           "loss_real": loss_real, "loss_fake": loss_fake}

    def _g_loss(self, z):
        loss = self._reconstruction(self.generator(z, training=True))
        return loss, {"g_loss": loss}

    def _discriminator_step(self, real, z, k):
        return self._apply("discriminator", self._d_loss, real, z, k)[1]

    def _generator_step(self, z):
        return self._apply("generator", self._g_loss, z)[1]

    def train_step(self, real, noise, step=0):
        rate = max(self.learning_rate * 0.5 ** (step // self.decay_every), self.lower_bound)
        for optimizer in self.optimizers.values():
            optimizer.learning_rate.assign(rate)
        logs = dict(self._d_step(real, noise[0], np.float32(self.k)))
        logs.update(self._g_step(noise[1]))
        real_loss, fake_loss = float(logs["loss_real"]), float(logs["loss_fake"])
        balance = self.gamma * real_loss - fake_loss
        self.k = float(np.clip(self.k + self.lambda_k * balance, 0.0, 1.0))
        logs.update(k=self.k, convergence=real_loss + abs(balance))
        return logs

    def noise_draws(self):
        return 2


# --------------------------------------------------------------------------- runs


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

    ``images``: uint8 ``[N, H, W, C]`` (scaled to [-1, 1] per batch). Batch ``t`` takes the
    examples of a permutation drawn from ``seed`` and the epoch; the latent noise of step ``t``
    is drawn from ``(seed, t)``; so any step can be recomputed after a resume. Writes
    ``log.csv`` (every step's losses), ``samples-<step>.png`` per checkpoint, TensorBoard
    scalars under ``tensorboard/`` (TensorFlow backend) and ``ckpt-<step>/`` folders (the last
    ``keep`` are kept) with a ``latest`` pointer.
    """

    def __init__(self, folder, trainer, images, batch_size=64, seed=0, keep=3,
                 sample_count=16, progress=True, keep_every=None):
        self.folder = Path(folder)
        self.trainer, self.images = trainer, images
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} "
                             f"{images.shape}")
        if len(images) < batch_size:
            raise ValueError(f"{len(images)} images are fewer than one batch of {batch_size}")
        self.batch_size, self.seed, self.keep = int(batch_size), int(seed), int(keep)
        self.keep_every = keep_every
        self.progress = progress
        self.step = 0
        self.steps_per_epoch = len(images) // self.batch_size
        self.sample_z = self._noise(np.random.default_rng([seed, 2**31 - 1]), sample_count)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = None

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
    def latest(self):
        """The latest checkpoint folder, or None."""
        pointer = self.folder / "latest"
        if not pointer.is_file():
            return None
        path = self.folder / pointer.read_text().strip()
        return path if (path / "state.json").is_file() else None

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
            (temporary / "state.json").write_text(json.dumps({
                "step": self.step, "seed": self.seed, "batch_size": self.batch_size,
                "trainer": type(self.trainer).__name__, "trainer_state": self.trainer.state(),
                "backend": keras.backend.backend()}))
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
        checkpoints = sorted((int(p.name.split("-")[1]), p) for p in self.folder.glob("ckpt-*")
                             if p.name.split("-")[1].isdigit())
        for step, path in checkpoints[:-self.keep] if self.keep else []:
            if self.keep_every and step % self.keep_every == 0:
                continue
            shutil.rmtree(path, ignore_errors=True)

    def restore(self, path=None):
        """Load a checkpoint (default: the latest) into the models and optimizers."""
        path = Path(path) if path else self.latest()
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {self.folder} (no 'latest' pointer)")
        state = json.loads((path / "state.json").read_text())
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
        self._truncate_log()
        return self.step

    def _truncate_log(self):
        log = self.folder / "log.csv"
        if not log.is_file():
            return
        lines = log.read_text().splitlines()
        kept = lines[:1] + [line for line in lines[1:] if int(line.split(",")[0]) <= self.step]
        from tfcf.io import atomic_write

        with atomic_write(log, "w") as handle:
            handle.write("\n".join(kept) + "\n")

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

    def train(self, steps, checkpoint_every=500, resume=True):
        """Train until step ``steps`` (a total, not an increment); returns the last losses."""
        from tfcf.io import progress_bar

        if resume and self.latest() is not None:
            self.restore()
        logs = {}
        started, first = time.time(), self.step
        with progress_bar(max(0, steps - self.step), self.progress,
                          f"{type(self.trainer).__name__}", "step") as bar:
            while self.step < steps:
                real, noise = self.batch(self.step)
                if isinstance(self.trainer, BEGANTrainer):
                    raw = self.trainer.train_step(real, noise, self.step)
                else:
                    raw = self.trainer.train_step(real, noise)
                logs = {key: _to_float(value) for key, value in raw.items()}
                self.step += 1
                self._log(logs)
                bar.update(1)
                bar.set_postfix_str(" ".join(f"{k} {v:.3g}" for k, v in list(logs.items())[:3]))
                if self.step % checkpoint_every == 0 or self.step == steps:
                    self.save()
        if self._writer is not None:
            self._writer.flush()
        elapsed = time.time() - started
        logs["steps_per_second"] = (self.step - first) / elapsed if elapsed > 0 else 0.0
        return logs
