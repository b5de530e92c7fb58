"""`tfcf demo`: the main job. Hybrids of the pretrained face DCGAN at its intermediate layer.

    tfcf demo --outdir outputs/demo
"""

import time
from pathlib import Path

import click


@click.command()
@click.option("--outdir", type=click.Path(file_okay=False), default="outputs/demo",
              show_default=True, help="Folder for the figure and results.json.")
@click.option("--model", "model_name", default="face_dcgan", show_default=True,
              help="Generator: a registry name (face_dcgan) or a Keras .keras file.")
@click.option("--layer", default=None,
              help="Layer to intervene on.  [default: the generator's intermediate layer]")
@click.option("--pairs", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Pairs (Original 1, Original 2) shown, one per row.")
@click.option("--blocks", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Contiguous channel blocks; one hybrid column per block.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latent samples.")
@click.option("--overwrite", is_flag=True, help="Replace results already in --outdir.")
@click.pass_context
def demo(ctx, outdir, model_name, layer, pairs, blocks, seed, overwrite):
    """Hybrids: channel blocks of an intermediate layer taken from Original 2.

    Each row holds Original 1 (base sample), Original 2 (source sample) and, per channel block,
    the hybrid whose block of channels takes its values from Original 2 while every other
    channel keeps the value it had for Original 1 (ICLR 2020, section 3.2, Fig. 3a).

    \b
    Examples:
      tfcf demo                                    # pretrained face DCGAN, outputs/demo
      tfcf demo --outdir out --blocks 4 --seed 1
      tfcf demo --model gen.keras --layer block2 --overwrite
    """
    started = time.time()
    outdir = Path(outdir)
    results = outdir / "results.json"
    if results.exists() and not overwrite:
        ctx.fail(f"{results} exists: choose another --outdir or pass --overwrite")

    import numpy as np
    from tqdm import tqdm

    import tfcf
    from models.registry import load_generator
    from tfcf.io import run_metadata, save_figure, save_json
    from tfcf.plots import image_grid

    click.echo(f"[1/3] loading generator {model_name!r}", err=True)
    try:
        spec = load_generator(model_name, layer=layer)
        head, _ = tfcf.split(spec.model, spec.layer)
    except (ValueError, FileNotFoundError, ImportError) as error:
        ctx.fail(str(error))
    layer_shape = [int(d) for d in head.outputs[0].shape[1:]]
    num_channels = layer_shape[-1]
    if blocks > num_channels:
        ctx.fail(f"--blocks {blocks} exceeds the {num_channels} channels of layer {spec.layer!r}")
    channel_blocks = [block.tolist() for block in np.array_split(np.arange(num_channels), blocks)]

    z = spec.sample_latent(2 * pairs, seed=seed)
    z_base, z_source = z[:pairs], z[pairs:]
    click.echo(f"[2/3] hybrids at layer {spec.layer!r} ({num_channels} channels, "
               f"{blocks} blocks, {pairs} pairs)", err=True)
    originals_base = np.asarray(spec.model.predict_on_batch(z_base))
    originals_source = np.asarray(spec.model.predict_on_batch(z_source))
    columns = [originals_base, originals_source]
    changes = []
    for block in tqdm(channel_blocks, desc="hybrid blocks", unit="block", leave=True):
        hybrids = tfcf.hybrid(spec.model, spec.layer, block, base=z_base, source=z_source)
        columns.append(hybrids)
        changes.append(float(np.abs(hybrids - originals_base).mean()))

    click.echo("[3/3] writing figure and results", err=True)
    titles = ["Original 1", "Original 2"] + [
        f"Hybrid: ch {block[0]}-{block[-1]}" for block in channel_blocks
    ]
    figure = image_grid(
        np.stack(columns, axis=1), column_titles=titles,
        row_titles=[f"pair {i + 1}" for i in range(pairs)],
        title=f"{spec.name}: channels of {spec.layer} from Original 2 (seed {seed})",
        value_range=spec.value_range, column_groups=[0, 1] + [2 + i for i in range(blocks)],
    )
    figure_path = save_figure(figure, outdir / "hybrids.png")
    save_json(results, {
        "command": "tfcf demo",
        "generator": spec.description or spec.name,
        "layer": spec.layer,
        "layer_shape": layer_shape,
        "channel_blocks": [[block[0], block[-1]] for block in channel_blocks],
        "mean_abs_change_from_original_1": dict(zip(titles[2:], changes)),
        "figure": figure_path.name,
        "run": run_metadata(seed, {"model": model_name, "layer": spec.layer, "pairs": pairs,
                                   "blocks": blocks}, started=started),
    })
    click.echo(f"wrote {figure_path} and {results} in {time.time() - started:.1f} s", err=True)
