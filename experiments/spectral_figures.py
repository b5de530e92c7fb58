"""The SDR papers' figures: spectral dependency between layers, filter removal, stretch distortion.

    tfcf sdr-fig3a                 # one pathway of the generator: kernels, spectra, rho
    tfcf sdr-fig4                  # G vs D histograms of the committed face DCGAN
    tfcf sdr-fig5                  # decoder vs encoder of the committed face beta-VAE
    tfcf sdr-fig6                  # remove low-energy, then low/high-SDR filters of layer 3
    tfcf sdr-fig7                  # the four committed VAE variants (32/64 ch x beta 1/0.1)
    tfcf sdr-fig12                 # the dropout DCGAN's committed checkpoints along training
    tfcf stretch-fig3              # workshop Fig. 3a-d: stretch each level, errors per scale
    tfcf stretch-fig4              # workshop Fig. 4: error along training, plain vs SDR penalty

Defaults: the tensorlayer-architecture pretrained face DCGAN for the single-generator SDR figures
(3a, 6, 10: the SDR paper's network), and the models trained here and committed under
``models/weights/`` where a discriminator, an encoder, variants or checkpoints along training are
needed. ``--model``/``--weights`` (or LABEL=MODEL[@WEIGHTS] entries) take any other.
"""

from __future__ import annotations

import click

from tfcf.experiments._common import (FACE_DCGAN, FACE_VAE, cli_errors, draw_latents, finish,
                                 latent_option, load_spec, model_options, outdir_options,
                                 prepare, step)

SDR_VARIANTS = ("32ch beta 1=vae_sdr_c32_b1_fashion", "32ch beta 0.1=vae_sdr_c32_b0.1_fashion",
                "64ch beta 1=vae_sdr_c64_b1_fashion", "64ch beta 0.1=vae_sdr_c64_b0.1_fashion")
DROPOUT_DCGAN = "dcgan_dropout_fashion"
STRETCH_RUNS = ("vae_plain_fashion", "vae_sdrpenalty_fashion")
DROPOUT_CONTROL = "dcgan_paper_cifar10_fashion"   # the same GAN without dropout (final only)
RESAMPLES, CONFIDENCE = 1000, 0.95                  # bootstrap bands of the curves along training


def committed_checkpoints(ctx, name):
    """``STEP=name@STEP`` entries for every checkpoint of a committed model, in step order."""
    from tfcf.models.registry import committed_models

    cards = committed_models()
    if name not in cards:
        ctx.fail(f"{name!r} is not a committed model (models/weights/: "
                 f"{sorted(cards) or 'none'})")
    steps = sorted(int(key) for key in cards[name].get("checkpoints", {}))
    if not steps:
        ctx.fail(f"{name} has no committed checkpoints along training")
    return [f"{step_}={name}@{step_}" for step_ in steps]


def _generator_pairs(spec):
    from tfcf import spectral

    pairs = spectral.conv_pairs(spec.model)
    if not pairs:
        raise ValueError(f"{spec.name} has no successive conv layers")
    return pairs


@click.command("sdr-fig3a")
@model_options
@click.option("--layers", default=None,
              help="Two successive conv layers a,b.  [default: the first strided pair]")
@click.option("--pathway", default=None,
              help="i,m,o channels.  [default: a random pathway among the strongest half]")
@outdir_options("outputs/sdr-fig3a")
@click.pass_context
@cli_errors
def sdr_fig3a(ctx, model_name, weights, layer, layers, pathway, outdir, seed, overwrite):
    """SDR paper Fig. 3a: one pathway between two generator layers, in space and frequency.

    \b
    Examples:
      tfcf sdr-fig3a
      tfcf sdr-fig3a --model dcgan:tensorlayer --weights net_g.npz --layers g_h1_decon2d,g_h2_decon2d
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    from tfcf import spectral
    from tfcf.io import save_figure
    from tfcf.plots_spectral import pathway_figure

    spec = load_spec(ctx, model_name, weights, layer)
    if layers:
        pair = tuple(layers.split(","))
    else:
        # the first strided pair after the projection from z (whose input is 1x1)
        pair = next((p for p in _generator_pairs(spec)
                     if spectral.pair_layout(spec.model, *p)[2] > 1 and _input_side(spec.model, p[0]) > 1),
                    _generator_pairs(spec)[0])
    rho = spectral.layer_sdr(spec.model, *pair)
    fine_name, _, stride = spectral.pair_layout(spec.model, *pair)
    if pathway:
        i, m, o = (int(v) for v in pathway.split(","))
    else:
        energy = spectral.contribution_energy(spec.model, *pair)[:, :, None] * np.ones_like(rho)
        strong = np.flatnonzero(energy.ravel() >= np.median(energy))
        i, m, o = np.unravel_index(np.random.default_rng(seed).choice(strong), rho.shape)
    fine, coarse, stride = spectral.pathway(spec.model, *pair, i, m, o)
    value = spectral.kernel_sdr(fine, coarse, stride)
    save_figure(pathway_figure(fine, coarse, stride, value, title=(
        f"SDR Fig. 3a: {pair[0]} ({i}->{m}) then {pair[1]} ({m}->{o}), rho = {value:.3f}")),
        outdir / "pathway.png")
    finish(outdir, started, seed, {"model": model_name, "weights": weights, "layers": pair,
                                    "pathway": [int(i), int(m), int(o)]},
            {"figure": "SDR paper Fig. 3a", "generator": spec.description, "rho": value,
             "stride": stride, "fine_layer": pair[1] if fine_name == "b" else pair[0],
             "layer_pair": spectral.summarize(rho), "files": ["pathway.png"]})


def _input_side(model, layer):
    """The spatial side of the tensor ``layer`` reads (1 for the projection from z)."""
    from tfcf.graph import flat_graph

    graph = flat_graph(model)
    return graph.specs[graph.op_named(layer).inputs[0]].shape[1]


def _histogram_command(name, figure, other_label, default_other, default_model, example):
    @click.command(name)
    @model_options(default=default_model)
    @click.option("--other", "other_name", default=None,
                  help=f"The {other_label}: {default_other}, a committed model or a .keras file, "
                       f"'none' to skip.  [default: the committed model's own {other_label}]")
    @click.option("--other-weights", type=click.Path(dir_okay=False), default=None,
                  help=f"Weights of the {other_label}.")
    @outdir_options(f"outputs/{name}")
    @click.pass_context
    @cli_errors
    def command(ctx, model_name, weights, layer, other_name, other_weights, outdir, seed,
                overwrite):
        outdir, started = prepare(ctx, outdir, overwrite)
        from tfcf import spectral
        from tfcf.models.registry import load_inverse_network
        from tfcf.io import atomic_write, save_figure
        from tfcf.plots_spectral import sdr_histograms_figure

        from tfcf.models.registry import committed_models

        spec = load_spec(ctx, model_name, weights, layer)
        if other_name is None and model_name in committed_models():
            other_name = model_name
        elif other_name == "none":
            other_name = None
        step("[1/2] SDR of every pathway of the generator")
        groups = {"generator" if other_label == "discriminator" else "decoder":
                  spectral.sdr_by_resolution(spec.model)}
        if other_name:
            step(f"[2/2] SDR of every pathway of the {other_label}")
            try:
                other = load_inverse_network(other_name, other_weights)
            except FileNotFoundError as error:
                ctx.fail(str(error))
            groups[other_label] = spectral.sdr_by_resolution(other)
        else:
            step(f"[2/2] no --other: the {other_label} is not analysed")
        save_figure(sdr_histograms_figure(groups, title=(
            f"{figure}: SDR per resolution level, {' vs '.join(groups)}")),
            outdir / "sdr_histograms.png")
        import numpy as np

        with atomic_write(outdir / "rho.npz") as handle:
            np.savez(handle, **{f"{net}_{level}": values.astype("float32")
                                for net, levels in groups.items()
                                for level, values in levels.items()})
        finish(outdir, started, seed,
                {"model": model_name, "weights": weights, "other": other_name,
                 "other_weights": other_weights},
                {"figure": figure, "generator": spec.description,
                 "summary": {net: {str(level): spectral.summarize(values) for level, values in
                                   levels.items()} for net, levels in groups.items()},
                 "beyond_plotted_range": _beyond_plotted_range(groups),
                 "note": "" if other_name else f"no {other_label} given (--other)",
                 "files": ["sdr_histograms.png", "rho.npz"]})

    command.help = f"""{figure}: histograms of the SDR of every pathway, per resolution level,
    generator vs {other_label} superimposed.

    \b
    Examples:
      tfcf {name}
      tfcf {name} {example}
    """
    return command


sdr_fig4 = _histogram_command(
    "sdr-fig4", "SDR paper Fig. 4", "discriminator", "dcgan:<preset>", FACE_DCGAN,
    "--model dcgan:paper_celeba --weights g.weights.h5 --other dcgan:paper_celeba "
    "--other-weights d.weights.h5")
sdr_fig5 = _histogram_command(
    "sdr-fig5", "SDR paper Fig. 5", "encoder", "vae:<preset>", FACE_VAE,
    "--model vae:paper_celeba --weights decoder.weights.h5 --other vae:paper_celeba "
    "--other-weights encoder.weights.h5")


def _beyond_plotted_range(groups):
    """Per network and resolution, the shares of rho below and above the histograms' range."""
    from tfcf.plots_spectral import SDR_RANGE, beyond_range

    shares = {net: {str(level): dict(zip(("below", "above"), beyond_range(values, *SDR_RANGE)))
                    for level, values in levels.items()} for net, levels in groups.items()}
    return {"range": list(SDR_RANGE), "shares": shares}


def _removal_command(name, figure, default_examples):
    @click.command(name)
    @model_options
    @click.option("--layers", default=None,
                  help="The last-but-one and last conv layers.  [default: the model's last pair]")
    @click.option("--keep", type=click.FloatRange(0, 1), default=0.52, show_default=True,
                  help="Fraction of the layer's kernels kept by energy (paper: 4,260 of 8,192).")
    @click.option("--low", type=float, default=0.9, show_default=True,
                  help="Kernels whose average rho is below this are the 'low' set.")
    @click.option("--high", type=float, default=1.45, show_default=True,
                  help="Kernels whose average rho is above this are the 'high' set.")
    @click.option("--examples", type=click.IntRange(1, 32), default=default_examples,
                  show_default=True)
    @outdir_options(f"outputs/{name}")
    @click.pass_context
    @cli_errors
    def command(ctx, model_name, weights, layer, layers, keep, low, high, examples, outdir,
                seed, overwrite):
        outdir, started = prepare(ctx, outdir, overwrite)
        import numpy as np

        from tfcf import spectral
        from tfcf.io import save_figure
        from tfcf.plots import image_grid

        spec = load_spec(ctx, model_name, weights, layer)
        pair = tuple(layers.split(",")) if layers else _generator_pairs(spec)[-1]
        rho = spectral.layer_sdr(spec.model, *pair)
        energy = spectral.contribution_energy(spec.model, *pair)       # [in, mid]
        average = np.nanmean(rho, axis=2)                              # [in, mid]
        kept = energy >= np.quantile(energy, 1.0 - keep)
        low_set = kept & (average < low)
        high_set = kept & (average > high)
        count = int(min(low_set.sum(), high_set.sum()))
        order = np.argsort(np.where(kept, average, np.nan), axis=None)
        finite = order[np.isfinite(np.where(kept, average, np.nan).ravel()[order])]
        lowest, highest = finite[:count], finite[::-1][:count]
        without_low, without_high = kept.copy(), kept.copy()
        without_low.ravel()[lowest] = False
        without_high.ravel()[highest] = False
        z = spec.sample_latent(examples, seed=seed)
        columns = [np.asarray(spec.model.predict(z, verbose=0))]
        for mask in (kept, without_low, without_high):
            columns.append(np.asarray(spectral.zero_kernels(spec.model, pair[0], mask).predict(
                z, verbose=0)))
        total = int(energy.size)
        titles = [f"original\n({total} kernels)", f"low energy removed\n({int(kept.sum())})",
                  f"+ {count} lowest rho\n({int(without_low.sum())})",
                  f"+ {count} highest rho\n({int(without_high.sum())})"]
        save_figure(image_grid(np.stack(columns, axis=1), column_titles=titles, title=(
            f"{figure}: removing kernels of {pair[0]} (rho with {pair[1]})")),
            outdir / "removal.png")
        finish(outdir, started, seed,
                {"model": model_name, "weights": weights, "layers": pair, "keep": keep,
                 "low": low, "high": high, "examples": examples},
                {"figure": figure, "generator": spec.description, "kernels": total,
                 "kept_by_energy": int(kept.sum()), "below_low": int(low_set.sum()),
                 "above_high": int(high_set.sum()), "removed_each": count,
                 "after_low_removal": int(without_low.sum()),
                 "after_high_removal": int(without_high.sum()),
                 "mean_abs_change": {
                     "energy": float(np.abs(columns[1] - columns[0]).mean()),
                     "low_rho": float(np.abs(columns[2] - columns[1]).mean()),
                     "high_rho": float(np.abs(columns[3] - columns[1]).mean())},
                 "files": ["removal.png"]})

    command.help = f"""{figure}: zero the low-energy kernels of the last-but-one generator
    layer, then additionally the kernels with the lowest (< --low) or the highest (> --high)
    average rho with the last layer, in equal numbers; sample grids of each.

    \b
    Examples:
      tfcf {name}
      tfcf {name} --model dcgan:tensorlayer --weights net_g.npz
    """
    return command


sdr_fig6 = _removal_command("sdr-fig6", "SDR paper Fig. 6", 4)
sdr_fig10 = _removal_command("sdr-fig10", "SDR paper Fig. 10", 10)


def _parse_models(ctx, entries, what):
    """LABEL=NAME[@WEIGHTS] -> [(label, spec)]; for a committed model, @STEP is a checkpoint."""
    from pathlib import Path

    from tfcf.models.registry import GeneratorSpec, committed_models

    specs = []
    for entry in entries:
        label, equals, rest = entry.partition("=")
        if not equals or not rest:
            ctx.fail(f"{what} {entry!r} must read LABEL=MODEL[@WEIGHTS]")
        name, _, weights = (part.strip() for part in rest.partition("@"))
        if name.endswith(".keras"):
            import keras

            if not Path(name).is_file():
                ctx.fail(f"no Keras model file at {name}")
            model = keras.saving.load_model(name, compile=False)
            spec = GeneratorSpec(Path(name).stem, model, stretch_levels(model)[-1],
                                 description=f"Keras model file {name}")
        elif name in committed_models():
            spec = load_spec(ctx, f"{name}@{weights}" if weights else name, None, None)
        else:
            spec = load_spec(ctx, name, weights or None, None)
        specs.append((label.strip(), spec))
    return specs


def _compare_command(name, figure, option, help_text, defaults, control_default=None):
    def command(ctx, entries, examples, outdir, seed, overwrite, control=None):
        outdir, started = prepare(ctx, outdir, overwrite)
        import numpy as np

        from tfcf import spectral
        from tfcf.io import save_figure
        from tfcf.plots import image_grid
        from tfcf.plots_spectral import sdr_histograms_figure

        defaulted = not entries
        if defaulted:
            entries = (committed_checkpoints(ctx, defaults) if isinstance(defaults, str)
                       else defaults)
        if control is None and defaulted:
            control = control_default
        if control is not None and control.strip().lower() == "none":
            control = None
        specs = _parse_models(ctx, entries, option)
        along_training = option == "checkpoint" and all(label.isdigit() for label, _ in specs)
        if control and not along_training:
            ctx.fail(f"--control needs --{option} labels that are training steps (integers)")
        control_spec, control_step = _control_model(ctx, control) if control else (None, None)
        groups, rows = {}, []
        for label, spec in specs:
            step(f"    {label}: SDR of every pathway, {examples} samples")
            groups[label] = spectral.sdr_by_resolution(spec.model)
            rows.append(np.asarray(spec.model.predict(spec.sample_latent(examples, seed=seed),
                                                      verbose=0)))
        save_figure(sdr_histograms_figure(groups, title=f"{figure}: SDR per resolution level"),
                    outdir / "sdr_histograms.png")
        save_figure(image_grid(np.stack(rows), row_titles=[label for label, _ in specs],
                               title=f"{figure}: samples"), outdir / "samples.png")
        files = ["sdr_histograms.png", "samples.png"]
        payload = {"figure": figure,
                   "summary": {label: {str(level): spectral.summarize(values)
                                       for level, values in levels.items()}
                               for label, levels in groups.items()},
                   "beyond_plotted_range": _beyond_plotted_range(groups)}
        if along_training:
            from tfcf.plots_spectral import sdr_evolution_figure, sdr_evolution_summary

            steps = [int(label) for label in groups]
            bootstrap = {"resamples": RESAMPLES, "confidence": CONFIDENCE, "seed": seed,
                         "statistic": "median of rho", "over": "the pathways of a resolution"}
            summary = sdr_evolution_summary(steps, list(groups.values()), RESAMPLES, CONFIDENCE,
                                            seed)
            payload["bootstrap"] = bootstrap
            payload["evolution"] = {str(level): entry for level, entry in summary.items()}
            shown_control = None
            payload["control"] = None
            if control_spec is not None:
                step(f"    control {control} (step {control_step}): SDR of every pathway")
                rhos = spectral.sdr_by_resolution(control_spec.model)
                shown_control = (f"{control_spec.name} (no dropout)" if control == DROPOUT_CONTROL
                                 else control_spec.name, control_step, rhos)
                entry = sdr_evolution_summary([control_step], [rhos], RESAMPLES, CONFIDENCE, seed)
                payload["control"] = {
                    "model": control, "generator": control_spec.description, "step": control_step,
                    "median": {str(level): e["median"][0] for level, e in entry.items()},
                    "median_interval": {str(level): [e["median_low"][0], e["median_high"][0]]
                                        for level, e in entry.items()},
                    "summary": {str(level): spectral.summarize(values)
                                for level, values in rhos.items()}}
            save_figure(sdr_evolution_figure(steps, list(groups.values()),
                                             title=f"{figure}: SDR along training",
                                             control=shown_control, resamples=RESAMPLES,
                                             confidence=CONFIDENCE, seed=seed, summary=summary),
                        outdir / "evolution.png")
            files.append("evolution.png")
        payload["files"] = files
        params = {option: list(entries), "examples": examples}
        if control_default is not None:
            params["control"] = control
        finish(outdir, started, seed, params, payload)

    if control_default is None:
        command.__doc__ = f"""{figure}: samples and SDR histograms of several generators.

        \b
        Examples:
          tfcf {name}
          tfcf {name} --{option} "a=vae:paper_celeba@a.weights.h5" --{option} "b=vae:paper_celeba@b.weights.h5"
        """
    else:
        command.__doc__ = f"""{figure}: samples and SDR histograms of checkpoints along training.

        evolution.png: per resolution, the median rho over pathways at each step with its 95 %
        bootstrap interval (1000 resamples of the pathways, seeded by --seed) and the 5-95 %
        quantiles; --control, the same network trained without the intervention, as a star at
        its own step.

        \b
        Examples:
          tfcf {name}
          tfcf {name} --control none
          tfcf {name} --{option} 500=dcgan:paper_cifar10@cifar_g.weights.h5 --control {control_default}
        """
    decorators = [
        click.command(name),
        click.option(f"--{option}", "entries", multiple=True,
                     help=f"{help_text}: LABEL=MODEL[@WEIGHTS]; repeat.  [default: " + (
                         f"every committed checkpoint of {defaults}" if isinstance(defaults, str)
                         else ", ".join(defaults)) + "]")]
    if control_default is not None:
        decorators.append(click.option(
            "--control", default=None,
            help="The same network trained without the intervention, drawn at its step on "
                 "evolution.png: a committed model (its final step) or STEP=MODEL[@WEIGHTS]; "
                 f"'none' to skip.  [default: {control_default} with the default checkpoints, "
                 f"none with --{option}]"))
    decorators += [click.option("--examples", type=click.IntRange(1, 32), default=6,
                                show_default=True),
                   outdir_options(f"outputs/{name}"), click.pass_context, cli_errors]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def _control_model(ctx, control):
    """(spec, training step) of --control: a committed model, or STEP=MODEL[@WEIGHTS]."""
    from tfcf.models.registry import committed_models

    if "=" in control:
        (label, spec), = _parse_models(ctx, [control], "--control")
        if not label.isdigit():
            ctx.fail(f"--control {control!r}: the label must be the training step (an integer)")
        return spec, int(label)
    cards = committed_models()
    if control not in cards:
        ctx.fail(f"--control {control!r} is neither STEP=MODEL[@WEIGHTS] nor a committed model "
                 f"(models/weights/: {sorted(cards) or 'none'})")
    return load_spec(ctx, control, None, None), int(cards[control]["steps"])


sdr_fig7 = _compare_command("sdr-fig7", "SDR paper Figs. 7-9 (VAE variants)", "generator",
                            "A VAE variant (32 or 64 channels x beta 1 or 0.1)", SDR_VARIANTS)
sdr_fig12 = _compare_command("sdr-fig12", "SDR paper Figs. 12-13 (dropout along training)",
                             "checkpoint", "A checkpoint of the DCGAN trained with dropout",
                             DROPOUT_DCGAN, control_default=DROPOUT_CONTROL)


@click.command("sdr-fig8")
@click.option("--encoder", "entries", multiple=True,
              help="LABEL=COMMITTED_VAE: a committed VAE whose encoder is analysed; repeat.  "
                   "[default: " + ", ".join(SDR_VARIANTS) + "]")
@outdir_options("outputs/sdr-fig8")
@click.pass_context
@cli_errors
def sdr_fig8(ctx, entries, outdir, seed, overwrite):
    """SDR paper Fig. 8: SDR histograms of the ENCODERS of the four VAE variants.

    The anti-causal direction: the encoder's successive convolutions, per resolution level,
    for each variant (32 or 64 channels x beta 1 or 0.1), beside Fig. 7's decoders.

    \b
    Examples:
      tfcf sdr-fig8
      tfcf sdr-fig8 --encoder "paper=vae_paper_celeba_mse"
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    from tfcf import spectral
    from tfcf.io import save_figure
    from tfcf.models.registry import committed_models, load_inverse_network
    from tfcf.plots_spectral import sdr_histograms_figure

    groups = {}
    for entry in entries or SDR_VARIANTS:
        label, equals, name = (part.strip() for part in entry.partition("="))
        if not equals or name not in committed_models():
            ctx.fail(f"--encoder {entry!r} must read LABEL=COMMITTED_VAE (committed: "
                     f"{', '.join(sorted(committed_models()))})")
        step(f"    {label}: SDR of every pathway of the encoder of {name}")
        groups[label] = spectral.sdr_by_resolution(load_inverse_network(name))
    save_figure(sdr_histograms_figure(groups, title="SDR paper Fig. 8: encoder SDR per "
                                                    "resolution level"),
                outdir / "sdr_histograms.png")
    finish(outdir, started, seed, {"encoders": list(entries or SDR_VARIANTS)},
           {"figure": "SDR paper Fig. 8",
            "summary": {label: {str(level): spectral.summarize(values)
                                for level, values in levels.items()}
                        for label, levels in groups.items()},
            "beyond_plotted_range": _beyond_plotted_range(groups),
            "files": ["sdr_histograms.png"]})


@click.command("sdr-fig11")
@model_options(default=FACE_VAE)
@click.option("--count", type=click.IntRange(1, 256), default=64, show_default=True,
              help="Random samples shown.")
@outdir_options("outputs/sdr-fig11")
@click.pass_context
@cli_errors
def sdr_fig11(ctx, model_name, weights, layer, count, outdir, seed, overwrite):
    """SDR paper Fig. 11: random examples generated by the trained VAE (prior samples).

    \b
    Examples:
      tfcf sdr-fig11
      tfcf sdr-fig11 --model vae_sdr_c64_b0.1_fashion --count 32
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    from tfcf.io import save_figure
    from tfcf.plots import image_grid

    spec = load_spec(ctx, model_name, weights, layer)
    images = np.asarray(spec.model.predict(spec.sample_latent(count, seed=seed), verbose=0))
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    padded = np.concatenate([images, np.full((rows * columns - count,) + images.shape[1:],
                                             spec.value_range[0], images.dtype)])
    save_figure(image_grid(padded.reshape((rows, columns) + images.shape[1:]),
                           title=f"SDR paper Fig. 11: {count} random samples of {spec.name}",
                           value_range=spec.value_range), outdir / "samples.png")
    finish(outdir, started, seed, {"model": model_name, "weights": weights, "count": count},
           {"figure": "SDR paper Fig. 11", "generator": spec.description,
            "files": ["samples.png"]})


def stretch_levels(model):
    """The generator's hidden activation layers with spatial maps (at most the last four)."""
    import keras

    activations = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
                   keras.layers.Activation)
    output = model.outputs[0]
    layers = [layer for layer in model.layers if isinstance(layer, activations)
              and len(layer.output.shape) == 4 and layer.output is not output]
    return [layer.name for layer in layers][-4:]


def _distortion_errors(spec, layers, z, factor, levels):
    """Per layer: per-scale errors [N, levels], (distorted, reference) images, total MSE, and
    the total MSE of each image [N] (whose mean the total is)."""
    import numpy as np

    from tfcf import distortion

    errors, images, totals, per_image = {}, {}, {}, {}
    for layer_name in layers:
        distorted, reference = distortion.distort(spec.model, layer_name, z, factor=factor)
        errors[layer_name] = distortion.scale_errors(distorted, reference, levels)
        images[layer_name] = (distorted, reference)
        difference = np.asarray(distorted, dtype=np.float64) - np.asarray(reference,
                                                                          dtype=np.float64)
        per_image[layer_name] = np.square(difference).reshape(len(difference), -1).mean(axis=1)
        totals[layer_name] = float(per_image[layer_name].mean())
    return errors, images, totals, per_image


@click.command("stretch-fig3")
@model_options(default=FACE_VAE)
@click.option("--layers", default=None, help="Layers to stretch, comma-separated, coarse to "
              "fine.  [default: the last four hidden activation layers]")
@click.option("--factor", type=float, default=1.5, show_default=True)
@click.option("--levels", type=click.IntRange(1), default=5, show_default=True,
              help="Wavelet scales (components).")
@click.option("--samples", type=click.IntRange(1), default=64, show_default=True)
@click.option("--examples", type=click.IntRange(1, 16), default=4, show_default=True)
@latent_option
@outdir_options("outputs/stretch-fig3")
@click.pass_context
@cli_errors
def stretch_fig3(ctx, model_name, weights, layer, layers, factor, levels, samples, examples, latents,
                 outdir, seed, overwrite):
    """Workshop Fig. 3a-d: stretch every map of one layer, compare with the stretched output.

    Writes distortions.png (rows: original, each distorted level, stretched original),
    scale_differences.png (one example: difference per wavelet scale and level) and
    scale_errors.png (bars: the per-scale squared error, mean and standard error over --samples
    images, one colour per stretched layer).

    \b
    Examples:
      tfcf stretch-fig3
      tfcf stretch-fig3 --model vae:paper_celeba --weights decoder.weights.h5
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    from tfcf import distortion
    from tfcf.io import save_figure
    from tfcf.plots import image_grid
    from tfcf.plots_spectral import scale_errors_figure, standard_error

    spec = load_spec(ctx, model_name, weights, layer)
    names = layers.split(",") if layers else stretch_levels(spec.model)
    if not names:
        ctx.fail(f"{spec.name} has no hidden activation layer (ReLU, LeakyReLU, ELU) with spatial "
                 "maps to stretch: name the layers with --layers")
    drawn = draw_latents(spec, samples, seed, latents)
    z = drawn.z
    step(f"[1/2] stretching {', '.join(names)} by {factor} on {samples} samples")
    errors, images, totals, _ = _distortion_errors(spec, names, z, factor, levels)
    originals = np.asarray(spec.model.predict(z[:examples], verbose=0))
    reference = images[names[0]][1][:examples]
    rows = [originals] + [images[n][0][:examples] for n in names] + [reference]
    step("[2/2] figures")
    save_figure(image_grid(np.stack(rows), row_titles=["original"] + names + ["stretched\noriginal"],
                           title=f"Stretch by {factor} of each layer's maps"),
                outdir / "distortions.png")
    differences = np.stack([distortion.scale_components(images[n][0][:1] - images[n][1][:1],
                                                        levels)[:, 0] for n in names])
    scale = float(np.abs(differences).max()) or 1.0
    save_figure(image_grid(differences / scale, row_titles=names,
                           column_titles=[f"scale {j + 1}" for j in range(levels)],
                           title="distorted - stretched original, per wavelet scale "
                                 "(1 = coarsest)"), outdir / "scale_differences.png")
    save_figure(scale_errors_figure(errors, title=f"Stretch by {factor}: per-scale squared error "
                                                  f"of each perturbed layer ({samples} images)"),
                outdir / "scale_errors.png")
    finish(outdir, started, seed,
            {"model": model_name, "weights": weights, "layers": names, "factor": factor,
             "levels": levels, "samples": samples, "latents": drawn.source},
            {"figure": "ICML 2018 workshop Fig. 3a-d", "generator": spec.description,
             "latents": drawn.note, "objective": (spec.card or {}).get("objective"),
             "mean_error_per_scale": {n: errors[n].mean(axis=0).tolist() for n in names},
             "standard_error_per_scale": {  # std (ddof 1) / sqrt(samples); null for 1 image
                 n: [None if np.isnan(v) else float(v) for v in
                     np.atleast_1d(standard_error(errors[n]))] for n in names},
             "total_mean_squared_error": totals,
             "files": ["distortions.png", "scale_differences.png", "scale_errors.png"]})


@click.command("stretch-fig4")
@click.option("--model", "runs", multiple=True,
              help="A committed model: every checkpoint of it is one point; repeat to compare "
                   "runs (Fig. 4c: with the SDR penalty).  [default: " + " vs ".join(STRETCH_RUNS)
                   + "]")
@click.option("--checkpoint", "entries", multiple=True,
              help="STEP=MODEL@WEIGHTS, one per checkpoint along training; repeat (one series "
                   "instead of --model).")
@click.option("--layer", default=None, help="The stretched (fine-level) layer.  [default: the "
              "second-to-last hidden activation layer]")
@click.option("--factor", type=float, default=1.5, show_default=True)
@click.option("--levels", type=click.IntRange(1), default=5, show_default=True)
@click.option("--samples", type=click.IntRange(1), default=64, show_default=True)
@outdir_options("outputs/stretch-fig4")
@click.pass_context
@cli_errors
def stretch_fig4(ctx, runs, entries, layer, factor, levels, samples, outdir, seed, overwrite):
    """Workshop Fig. 4a/b/c: the stretch error of the fine level along training, per scale.

    Each run is a series: per_scale.png has one panel per run (4a; per_scale_N.png for several
    runs, on a shared y axis), total.png the error of the complete picture of every run
    superimposed (4b; 4c is the run trained with the SDR penalty). Every point is a mean over
    --samples images, shaded with its 95 % bootstrap interval over the images (1000 resamples,
    seeded by --seed).

    \b
    Examples:
      tfcf stretch-fig4
      tfcf stretch-fig4 --model vae_paper_celeba_mse
      tfcf stretch-fig4 --checkpoint 500=vae:paper_celeba@a.weights.h5 --checkpoint 2500=vae:paper_celeba@b.weights.h5
    """
    outdir, started = prepare(ctx, outdir, overwrite)
    import numpy as np

    from tfcf.io import save_figure
    from tfcf.plots_spectral import bootstrap_interval, series_figure

    if runs and entries:
        ctx.fail("give --model or --checkpoint, not both")
    if entries:
        series = {"checkpoints": list(entries)}
    else:
        series = {run: committed_checkpoints(ctx, run) for run in (runs or STRETCH_RUNS)}
    results = {}
    for run, run_entries in series.items():
        specs = _parse_models(ctx, run_entries, "checkpoint")
        try:
            steps = [int(label) for label, _ in specs]
        except ValueError:
            ctx.fail("--checkpoint labels must be training steps (integers)")
        per_scale, total, per_scale_interval, total_interval = [], [], [], []
        for (label, spec) in specs:
            step(f"    {run}: step {label}")
            name = layer or stretch_levels(spec.model)[-2]
            z = spec.sample_latent(samples, seed=seed)
            errors, _, totals, per_image = _distortion_errors(spec, [name], z, factor, levels)
            per_scale.append(errors[name].mean(axis=0).tolist())
            total.append(totals[name])
            low, high = bootstrap_interval(errors[name], np.mean, RESAMPLES, CONFIDENCE, seed)
            per_scale_interval.append(np.stack([low, high], axis=1).tolist())
            low, high = bootstrap_interval(per_image[name], np.mean, RESAMPLES, CONFIDENCE, seed)
            total_interval.append([float(low), float(high)])
        results[run] = {"steps": steps, "layer": name, "per_scale": per_scale, "total": total,
                        "per_scale_interval": per_scale_interval,
                        "total_interval": total_interval}
    band = f"95 % bootstrap interval over the {samples} images"
    shared = np.concatenate([np.ravel(result[key]) for result in results.values()
                             for key in ("per_scale", "per_scale_interval")])
    scale_names = [f"scale {j + 1}" + (" (coarsest)" if j == 0 and levels > 1 else
                                       " (finest)" if j == levels - 1 and levels > 1 else "")
                   for j in range(levels)]
    files = []
    for index, (run, result) in enumerate(results.items()):
        per_scale = np.array(result["per_scale"])
        interval = np.array(result["per_scale_interval"])       # [steps, scales, 2]
        file = "per_scale.png" if len(results) == 1 else f"per_scale_{index + 1}.png"
        save_figure(series_figure(
            result["steps"], {label: per_scale[:, j] for j, label in enumerate(scale_names)},
            f"mean squared error ({samples} images)",
            bands={label: (interval[:, j, 0], interval[:, j, 1])
                   for j, label in enumerate(scale_names)},
            band_label=band, shared_values=shared,
            title=f"{run}: stretch error of {result['layer']} per wavelet scale"), outdir / file)
        files.append(file)
    steps_union = sorted({s_ for result in results.values() for s_ in result["steps"]})

    def along(result, values):
        return [dict(zip(result["steps"], values)).get(s_, np.nan) for s_ in steps_union]

    curves = {run: along(result, result["total"]) for run, result in results.items()}
    bands = {run: tuple(np.array(along(result, [bound[side] for bound in
                                                result["total_interval"]]))
                        for side in (0, 1)) for run, result in results.items()}
    save_figure(series_figure(steps_union, curves, f"mean squared error ({samples} images)",
                              bands=bands, band_label=band,
                              title="stretch error of the complete picture (all scales)"),
                outdir / "total.png")
    finish(outdir, started, seed, {"models": list(series), "checkpoints": list(entries),
                                    "layer": layer, "factor": factor, "levels": levels,
                                    "samples": samples},
            {"figure": "ICML 2018 workshop Fig. 4a/b/c", "runs": results,
             "bootstrap": {"resamples": RESAMPLES, "confidence": CONFIDENCE, "seed": seed,
                           "statistic": "mean squared error", "over": f"the {samples} images",
                           "intervals": "per_scale_interval [checkpoint][scale] = [low, high], "
                                        "total_interval [checkpoint] = [low, high]"},
             "files": files + ["total.png"]})
