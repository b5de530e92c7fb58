"""Training loops (DCGAN, beta-VAE, BEGAN) with atomic checkpoints and exact resume, TF or JAX.

    trainer = GANTrainer(generator, discriminator)              # tensorlayer DCGAN recipe
    run = Run("runs/dcgan", trainer, images, batch_size=64, seed=0)
    run.train(steps=5000, checkpoint_every=500)                 # resumes from runs/dcgan if any

Every trainer implements :class:`Trainer`, the interface :class:`Run` (``tfcf/run.py``,
re-exported here) drives with atomic checkpoints and exact resume. Every model is a Keras 3 model
and every step goes through :func:`gradients`, which uses a ``tf.GradientTape`` (inside
``tf.function``) under the TensorFlow backend and ``jax.value_and_grad`` of a stateless function
(jitted) under JAX, so the same trainer runs on both.
"""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["BEGANTrainer", "GANTrainer", "Run", "Trainer", "VAE_OBJECTIVES", "VAETrainer",
           "gradients"]


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

        compiled = _cached(loss_fn, trainable, non_trainable,
                           lambda: jax.jit(jax.value_and_grad(pure, has_aux=True)))
        (loss, (logs, updated)), grads = compiled(
            [v.value for v in trainable], [v.value for v in non_trainable], *args)
        for variable, value in zip(non_trainable, updated):
            variable.assign(value)
        return loss, logs, grads
    raise RuntimeError(f"training supports the tensorflow and jax backends, not {backend!r}")


def _cached(loss_fn, trainable, non_trainable, compile_function):
    """``compile_function()`` once per loss function and variables; the result kept on its owner.

        compiled = _cached(self._loss, model.trainable_variables, [], lambda: jax.jit(...))

    The results live in a dict attribute (``_compiled_gradients``) of the object a bound method
    belongs to (a new bound-method object is made at every attribute access), or of the function
    itself: they live and die with it, and no other object can be handed them (a global dict
    keyed on ``id()`` could: ids are reused after garbage collection). Within that dict the key is
    the method's name and the identities of the variables, which the entry holds (so those ids
    stay unique while it exists). Compiles every time for an owner without a ``__dict__``.
    """
    owner = getattr(loss_fn, "__self__", loss_fn)
    try:
        cache = vars(owner).setdefault("_compiled_gradients", {})
    except TypeError:  # no __dict__ to keep it in
        return compile_function()
    key = (getattr(loss_fn, "__name__", None), tuple(map(id, trainable)),
           tuple(map(id, non_trainable)))
    if key not in cache:
        cache[key] = (compile_function(), list(trainable), list(non_trainable))
    return cache[key][0]


def _compiled(function):
    """tf.function under TensorFlow (no XLA: slower on CPU); the plain function otherwise."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(function, reduce_retracing=True)
    return function


def _adam(learning_rate, beta_1):
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


# --------------------------------------------------------------------------- trainers


class Trainer:
    """The interface :class:`Run` drives; :class:`GANTrainer`, :class:`VAETrainer` and
    :class:`BEGANTrainer` implement it.

        class MyTrainer(Trainer):          # set models, optimizers, generator, latent_dim
            def train_step(self, real, noise, step): ...   # one step; returns {name: scalar}
            def noise_draws(self): return 1                # latent arrays per step

    A trainer sets, in its constructor:

    - ``models``: ``{name: keras.Model}``, every network whose weights a checkpoint saves
      (``<name>.weights.h5``);
    - ``optimizers``: ``{name: optimizer}``; optimizer ``name`` updates ``models[name]``'s
      trainable variables unless :meth:`optimizer_variables` says otherwise (its state is saved
      in that order);
    - ``generator``: the network mapping latent codes to images in [-1, 1] (:meth:`sample`);
    - ``latent_dim``: the length of a latent code;
    - ``latent``: the latent prior, ``"normal"`` (standard normal, the default) or
      ``"uniform"`` (on [-1, 1]);

    and implements :meth:`train_step` and :meth:`noise_draws`. :meth:`state` and
    :meth:`load_state` carry scalar state (BEGAN's ``k_t``) through a checkpoint.
    """

    latent = "normal"
    models: dict
    optimizers: dict
    generator: keras.Model
    latent_dim: int

    _REQUIRED = ("models", "optimizers", "generator", "latent_dim")

    def __getattr__(self, name):  # only called when the attribute is missing
        if name in Trainer._REQUIRED:
            raise AttributeError(f"{type(self).__name__} has no {name!r}: a Trainer sets "
                                 f"{', '.join(Trainer._REQUIRED)} in its constructor")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def train_step(self, real, noise, step):
        """One step: ``real`` images ``[B, H, W, C]`` in [-1, 1], ``noise`` a list of
        :meth:`noise_draws` latent arrays ``[B, latent_dim]``, ``step`` the 0-based step (for
        schedules; trainers without one ignore it). Returns ``{name: scalar}`` losses."""
        raise NotImplementedError(f"{type(self).__name__} must implement "
                                  "train_step(real, noise, step)")

    def noise_draws(self):
        """How many latent arrays of a batch :meth:`train_step` takes (``len(noise)``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement noise_draws()")

    def state(self):
        """Scalar state saved with a checkpoint (e.g. BEGAN's k_t); JSON-serialisable."""
        return {}

    def load_state(self, state):
        """Restore what :meth:`state` returned (keys it lacks keep their initial values)."""

    def sample(self, z):
        """Images of latent codes ``z`` (inference mode), as a NumPy array."""
        return np.asarray(keras.ops.convert_to_numpy(self.generator(z, training=False)))

    def optimizer_variables(self, name):
        """The variables optimizer ``name`` updates (its state is saved in that order)."""
        return self.models[name].trainable_variables

    def _apply(self, name, loss_fn, *args):
        """Step optimizer ``name`` down the gradient of ``loss_fn(*args) -> (loss, logs)``."""
        model = self.models[name]
        # every other variable the loss reads (the other network) is passed too: under JAX a
        # jitted function must not capture variables as constants
        others = [v for key, m in self.models.items() if key != name for v in m.variables]
        loss, logs, grads = gradients(loss_fn, model.trainable_variables,
                                      list(model.non_trainable_variables) + others, *args)
        self.optimizers[name].apply_gradients(zip(grads, model.trainable_variables))
        return loss, logs


class GANTrainer(Trainer):
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

    def train_step(self, real, noise, step):
        """One discriminator step, then ``generator_steps`` generator steps; ``step`` is unused
        (no schedule)."""
        logs = dict(self._d_step(real, noise[0]))
        for index in range(self.generator_steps):
            logs.update(self._g_step(noise[min(index + 1, len(noise) - 1)]))
        return logs

    def noise_draws(self):
        return 1 + self.generator_steps


VAE_OBJECTIVES = {
    "mse": "vae-celebA's train_vae.py: mean over batch, pixels and colours of the squared error "
           "+ beta * KL (KL summed over latent dimensions, averaged over the batch)",
    "sse": "per-image sum of squared errors + beta * KL, both averaged over the batch",
}


class VAETrainer(Trainer):
    """beta-VAE (vae-celebA): Gaussian posterior, reconstruction error + beta * KL.

        trainer = VAETrainer(build_encoder("paper_celeba"), build_decoder("paper_celeba"), beta=5e-4)
        trainer = VAETrainer(enc, dec, beta=1.0, objective="sse")   # per-image sum of squares
        trainer = VAETrainer(enc, dec, beta=5e-3, sdr_layers=["g_h4_decon2d", "g_h3_decon2d",
                                                              "g_h2_decon2d"])

    ``objective`` (:data:`VAE_OBJECTIVES`): ``"mse"`` is the loss of the code the ICLR 2020
    paper used (vae-celebA ``train_vae.py``): ``MSE + beta * KL`` where MSE is the mean over the
    batch, pixels and colours of the squared error and KL is summed over the latent dimensions and
    averaged over the batch, with Table 1's beta 0.0005. ``"sse"`` replaces the MSE by the
    per-image sum of squared errors (averaged over the batch): the same KL weight is then
    ``H * W * C`` times weaker (beta 1 on ``"sse"`` is beta 1/12288 on ``"mse"`` at 64x64x3).

    ``sdr_layers`` (ICML 2018 workshop, section 5.2): after every VAE step, one extra step
    moves the kernels of one of these decoder layers (in turn) down the gradient of
    :func:`tfcf.spectral.sdr_penalty` between them and the activation maps they read (for the
    batch's latent codes, held fixed), with its own Adam (``sdr_learning_rate``).
    """

    def __init__(self, encoder, decoder, beta, learning_rate=1e-3, beta_1=0.5, sdr_layers=(),
                 sdr_learning_rate=1e-4, objective="mse"):
        from keras import layers

        if objective not in VAE_OBJECTIVES:
            raise ValueError(f"unknown VAE objective {objective!r}; valid: "
                             f"{', '.join(VAE_OBJECTIVES)}")
        self.objective = objective
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
        squared = ops.square(reconstruction - real)
        if self.objective == "mse":
            error = ops.mean(squared)
        else:
            error = ops.mean(ops.sum(squared, axis=(1, 2, 3)))
        kl = ops.mean(-0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var),
                                     axis=1))
        loss = error + self.beta * kl
        return loss, {"loss": loss, self.objective: error, "kl": kl}

    def _vae_step(self, real, noise):
        return self._apply("vae", self._loss, real, noise)[1]

    def train_step(self, real, noise, step):
        """One VAE step, then one SDR step on the next of ``sdr_layers`` (if any); ``step`` is
        unused (no schedule)."""
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


class BEGANTrainer(Trainer):
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

    def train_step(self, real, noise, step):
        """One discriminator and one generator step at the learning rate of ``step``, then the
        k_t update."""
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


from tfcf.run import Run  # noqa: E402  (the run loop lives in tfcf/run.py)
