"""The trainer of a model family and preset, and the model card of a finished run.

    trainer = build_trainer("vae", "paper_celeba", seed=0)            # beta, objective: preset's
    run = Run("runs/vae", trainer, images, batch_size=64, seed=0)     # tfcf.train.Run
    logs = run.train(steps=20000)
    card = write_card(run, "vae", "paper_celeba", "celeba:<folder>", logs, 0, "tfcf train ...")

The families and their networks, trainers and options come from
:data:`tfcf.models.registry.FAMILIES`; ``tfcf train`` and the tools (benchmarks, weight
publishing) build their trainers here.
"""

from __future__ import annotations

from tfcf.models.registry import build_network, get_family

__all__ = ["build_trainer", "write_card"]


def build_trainer(family, preset, beta=None, dropout=None, seed=0, sdr_layers=(), objective=None):
    """The :class:`tfcf.train.Trainer` of a model family and preset, networks seeded by ``seed``.

        trainer = build_trainer("dcgan", "paper_celeba", dropout=0.2, seed=1)
        trainer = build_trainer("vae", "sdr_c64", beta=0.1, sdr_layers=["g_h3_decon2d"])

    ``keras.utils.set_random_seed(seed)`` is called first. BEGAN: ``gamma`` from the preset. VAE options: ``beta`` and
    ``objective`` (``None``: the preset's), ``sdr_layers``; DCGAN: ``dropout`` (generator). A
    family's trainer ignores the options of the others. A ValueError names the valid families or
    presets.
    """
    import keras

    from tfcf import train

    keras.utils.set_random_seed(seed)
    entry = get_family(family)
    config = entry.preset(preset)
    given = {"beta": beta, "objective": objective, "sdr_layers": sdr_layers}
    options = {key: config[key] if given.get(key) is None and key in config else given.get(key)
               for key in entry.trainer_options}
    networks = [build_network(family, preset, part, dropout=dropout, seed=seed)
                for part in entry.trainer_networks]
    return getattr(train, entry.trainer)(*networks, **options)


def write_card(run, family, preset, data, logs, seed, command, beta=None, dropout=None,
               sdr_layers=None, holdout=0):
    """Export the generator weights and a model card (JSON + Markdown) beside the run.

        card = write_card(run, "dcgan", "paper_celeba", "faces64:data", logs, 0, "tfcf train ...")
        card["generator_weights"]          # "dcgan_paper_celeba.generator.weights.h5"

    Also exports the network that maps images back (``<family>_<preset>.<role>.weights.h5``,
    role ``discriminator`` or ``encoder``, card key ``<role>_weights``); a VAE's card records the
    trainer's ``objective`` and ``beta``. ``logs``: what :meth:`tfcf.train.Run.train` returned.
    Files are written atomically; returns the card (``MODEL_CARD.json``).
    """
    import keras

    from tfcf.io import atomic_path, atomic_write, save_json, versions

    entry = get_family(family)
    generator = run.trainer.generator
    weights = run.folder / f"{family}_{preset}.generator.weights.h5"
    with atomic_path(weights) as temporary:
        generator.save_weights(temporary)
    extra = {}
    if "objective" in entry.trainer_options:
        extra["objective"] = run.trainer.objective
        beta = run.trainer.beta
    role = entry.inverse_role
    inverse = run.folder / f"{family}_{preset}.{role}.weights.h5"
    with atomic_path(inverse) as temporary:
        getattr(run.trainer, role).save_weights(temporary)
    extra[f"{role}_weights"] = inverse.name
    card = {"family": family, "preset": preset, "data": data, "steps": run.step,
            "batch_size": run.batch_size, "seed": seed, "backend": keras.backend.backend(),
            "final_losses": {k: v for k, v in logs.items() if k != "steps_per_second"},
            "steps_per_second": logs.get("steps_per_second"), "command": command,
            "generator_weights": weights.name, "samples": f"samples-{run.step}.png",
            "beta": beta, "dropout": dropout, "sdr_layers": sdr_layers or [],
            "holdout": int(holdout), "training_images": int(len(run.images)),
            "history": list(run.history),
            "versions": versions(), **extra}
    save_json(run.folder / "MODEL_CARD.json", card)
    lines = [f"# {family} `{preset}` trained by tfcf", "",
             f"- data: `{data}`" + (f" (the last {holdout} images held out)" if holdout else ""),
             *([f"- objective: {extra['objective']}, beta {beta:g}"] if "objective" in extra
               else []),
             f"- steps: {run.step} (batch {run.batch_size}), seed {seed}, "
             f"backend {card['backend']}",
             "- final losses: " + ", ".join(f"{k} {v:.4g}"
                                            for k, v in card["final_losses"].items()),
             *[f"- resumed at step {entry['step']} with changed settings (forced): "
               + ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in
                           entry["changed"].items()) for entry in run.history],
             f"- command: `{command}`", f"- generator weights: `{weights.name}`",
             f"- samples: ![samples]({card['samples']})", ""]
    with atomic_write(run.folder / "MODEL_CARD.md", "w") as handle:
        handle.write("\n".join(lines))
    return card
