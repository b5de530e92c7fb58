"""tfcf.biggan on a replica of biggan-deep-256/1 (tools/biggan_replica.py), checked in NumPy.

The default tests use the replica with 8-channel units (the module's graph, names and 256-px
sizes, 16x fewer channels); the ``slow`` ones build the full-size replica (128-channel units,
~200 MB) and run the ICLR 2020 BigGAN commands on it.
"""

import csv
import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="TF-Hub modules need the TensorFlow backend")

SPEC = importlib.util.spec_from_file_location(
    "biggan_replica", Path(__file__).resolve().parent.parent / "tools" / "biggan_replica.py")
replica = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(replica)

# Output width in px of conv1/conv2 of Gblocks 0..11 (upsampling comes before conv1).
SIZES = [4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256]


def build(tmp_path_factory, channels):
    from tfcf.biggan import load_biggan

    path = tmp_path_factory.mktemp("replica") / f"biggan_deep_256_x{channels}"
    weights, tables = replica.build_replica(path, channels=channels)
    return load_biggan(str(path)), weights, tables


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    """(BigGAN, weights, statistics tables) of the replica with 8-channel units."""
    return build(tmp_path_factory, 8)


@pytest.fixture(scope="module")
def latents():
    from tfcf.biggan import truncated_z

    z = truncated_z(4, truncation=0.37, seed=5)
    y = np.eye(1000, dtype="float32")[[105, 850, 7, 9]]
    return z, y


def hand_hybrid(weights, tables, base, source, truncation, module):
    """Golden hybrid: conv outputs of the source pass copied into the base pass, in NumPy.
    ``module`` maps a conv name ("GBlock_5/conv1") to the channels taken from the source."""
    from biggan_replica_reference import reference_forward

    recorded = {}

    def record(name, value):
        recorded[name] = value
        return value

    def swap(name, value):
        if name in module:
            value = value.copy()
            value[..., module[name]] = recorded[name][..., module[name]]
        return value

    reference_forward(weights, tables, *source, truncation, override=record)
    return reference_forward(weights, tables, *base, truncation, override=swap)


def test_variables_are_named_and_shaped_like_the_module():
    """The converter's variable map, full size: names, shapes, and the counts per scope."""
    shapes = replica.variable_shapes(128)
    assert len(shapes) == 354   # 12 x (4 BN x 2 x (w, u0) + 4 conv x (w, b, u0)) + 18 others
    assert {n: s for n, s in shapes.items() if n.startswith("Generator/GBlock_3/conv")} == {
        "Generator/GBlock_3/conv0/w/ema_0.9999": (1, 1, 2048, 512),
        "Generator/GBlock_3/conv0/b/ema_0.9999": (512,), "Generator/GBlock_3/conv0/u0": (1, 512),
        "Generator/GBlock_3/conv1/w/ema_0.9999": (3, 3, 512, 512),
        "Generator/GBlock_3/conv1/b/ema_0.9999": (512,), "Generator/GBlock_3/conv1/u0": (1, 512),
        "Generator/GBlock_3/conv2/w/ema_0.9999": (3, 3, 512, 512),
        "Generator/GBlock_3/conv2/b/ema_0.9999": (512,), "Generator/GBlock_3/conv2/u0": (1, 512),
        "Generator/GBlock_3/conv3/w/ema_0.9999": (1, 1, 512, 1024),
        "Generator/GBlock_3/conv3/b/ema_0.9999": (1024,), "Generator/GBlock_3/conv3/u0": (1, 1024)}
    assert shapes["Generator/GBlock_3/BatchNorm_2/scale/w/ema_0.9999"] == (256, 512)
    assert shapes["Generator/GBlock_3/BatchNorm/offset/u0"] == (1, 2048)
    assert {n: s for n, s in shapes.items() if "GBlock" not in n} == {
        "linear/w/ema_0.9999": (1000, 128),
        "Generator/GenZ/G_linear/w/ema_0.9999": (256, 32768),
        "Generator/GenZ/G_linear/b/ema_0.9999": (32768,), "Generator/GenZ/G_linear/u0": (1, 32768),
        "Generator/attention/gamma/ema_0.9999": (1,),
        "Generator/attention/g/w/ema_0.9999": (1, 1, 512, 256),
        "Generator/attention/g/u0": (1, 256),
        "Generator/attention/o_conv/w/ema_0.9999": (1, 1, 256, 512),
        "Generator/attention/o_conv/u0": (1, 512),
        "Generator/attention/phi/w/ema_0.9999": (1, 1, 512, 64),
        "Generator/attention/phi/u0": (1, 64),
        "Generator/attention/theta/w/ema_0.9999": (1, 1, 512, 64),
        "Generator/attention/theta/u0": (1, 64),
        "Generator/BatchNorm/offset/ema_0.9999": (128,),
        "Generator/BatchNorm/scale/ema_0.9999": (128,),
        "Generator/conv_to_rgb/w/ema_0.9999": (3, 3, 128, 128),
        "Generator/conv_to_rgb/b/ema_0.9999": (128,), "Generator/conv_to_rgb/u0": (1, 128)}
    widths = [shapes[f"Generator/{replica.block_scope(b)}/conv1/b/ema_0.9999"][0]
              for b in range(12)]
    assert widths == [512] * 4 + [256] * 4 + [128] * 2 + [64] * 2


def test_replica_matches_its_numpy_reference(narrow, latents):
    """The exported graph computes the network of the public description (off-grid truncation:
    the statistics are interpolated), and its images are neither flat nor saturated."""
    import tensorflow as tf
    from biggan_replica_reference import reference_forward

    biggan, weights, tables = narrow
    z, y = latents
    images = biggan.generate(z, y, truncation=0.37)
    np.testing.assert_allclose(images, reference_forward(weights, tables, z, y, 0.37), atol=1e-3)
    assert images.shape == (4, 256, 256, 3) and 0.15 < images.std() and np.mean(
        np.abs(images) > 0.99) < 0.1
    assert np.abs(images[0] - images[1]).mean() > 0.1
    assert np.abs(biggan.generate(z, y, truncation=0.39) - images).max() > 0.01
    stored = dict(tf.train.list_variables(str(biggan.path / "variables" / "variables")))
    assert stored == {n: list(s) for n, s in replica.variable_shapes(8).items()}


def test_statistics_are_stack_tensors_where_the_converter_reads_them(narrow):
    """``stack_<10i+1,3,6,8>``: mean and variance tables [51, C] of the 49 batch norms, in
    Gblock order then the final one (read with no input fed, as the PyTorch converter does)."""
    biggan, _, tables = narrow
    graph = biggan.hub_module.graph
    names = [f"stack_{i * 10 + j}:0" for i in range(50) for j in (1, 3, 6, 8)]
    found = []
    for name in names:
        try:
            found.append(graph.get_tensor_by_name(name))
        except KeyError:
            break
    order = [prefix for prefix, _, _ in replica.batchnorms(8)]
    assert len(found) == 2 * len(order) == 98
    assert [tuple(found[i].shape) for i in (8, 10, -1)] == [(51, 128), (51, 32), (51, 8)]
    read = biggan.hub_module.prune(feeds=[], fetches=found[:4] + found[-2:])
    values = [v.numpy() for v in read()]
    expected = list(tables[order[0]]) + list(tables[order[1]]) + list(tables[order[-1]])
    for value, table in zip(values, expected):
        np.testing.assert_array_equal(value, table)


def test_finds_conv1_and_conv2_of_every_gblock(narrow):
    """Ops under ``Generator_1/`` (the variables are ``Generator/``); each conv's output is the
    ``add_<n>`` of its bias after the spectral-norm ops of its scope."""
    biggan, _, _ = narrow
    graph = biggan.hub_module.graph
    assert biggan.blocks == list(range(12))
    for block, size in enumerate(SIZES):
        width = replica.blocks(8)[block]["middle"]
        for conv in (1, 2):
            name = biggan.conv_tensor(block, conv)
            assert name == f"Generator_1/{replica.block_scope(block)}/conv{conv}/add_2:0"
            tensor = graph.get_tensor_by_name(name)
            assert tensor.op.type == "AddV2" and tensor.op.inputs[0].op.type == "Conv2D"
            assert tuple(tensor.shape) == (None, size, size, width)


@pytest.mark.slow
def test_gblock_hybrid_equals_hand_computed_swap_and_parts_compose(narrow, latents):
    """Gblock 7: conv1 channels [0, 5] and conv2 channel [3] from the source, then the tail
    through the attention block, at 256 px, against the NumPy reference. Without a swap the
    pruned pieces (head -> conv1 -> conv2 -> image) give the module's images, up to float32
    rounding (4e-5 seen: the pieces are optimised apart), at the truncation baked in."""
    import tfcf

    biggan, weights, tables = narrow
    z, y = latents
    model = biggan.keras_model(7, 0.37)
    np.testing.assert_allclose(model.predict([z, y], batch_size=2, verbose=0),
                               biggan.generate(z, y, 0.37), atol=1e-4)
    base, source = (z[:2], y[:2]), (z[2:], y[2:])
    golden = hand_hybrid(weights, tables, base, source, 0.37,
                         {"GBlock_7/conv1": [0, 5], "GBlock_7/conv2": [3]})
    ours = tfcf.hybrid(model, model.cut_layers, [[0, 5], [3]], list(base), list(source))
    np.testing.assert_allclose(ours, golden, atol=1e-3)
    assert np.abs(ours - biggan.generate(*base, 0.37)).max() > 0.1


# ------------------------------------------------------------------ full size (slow)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """(BigGAN, weights, statistics tables) of the full-size replica (128-channel units)."""
    return build(tmp_path_factory, 128)


@pytest.mark.slow
def test_full_size_replica_matches_reference_and_composes(full, latents):
    from biggan_replica_reference import reference_forward

    biggan, weights, tables = full
    z, y = latents[0][:2], latents[1][:2]
    images = biggan.generate(z, y, 0.37)
    np.testing.assert_allclose(images, reference_forward(weights, tables, z, y, 0.37), atol=2e-3)
    assert 0.15 < images.std() and np.abs(images[0] - images[1]).mean() > 0.1
    for block in (0, 7, 8, 11):   # the first, around the attention block, the last
        model = biggan.keras_model(block, 0.37)
        np.testing.assert_allclose(model.predict([z, y], batch_size=2, verbose=0), images,
                                   atol=1e-4, err_msg=f"Gblock {block}")


@pytest.mark.slow
def test_full_size_gblock5_hybrid_equals_hand_computed_swap(full, latents):
    """The paper's Gblock 5 (32 px, 256 channels per conv), 256-px images, against NumPy."""
    import tfcf

    biggan, weights, tables = full
    z, y = latents
    base, source = (z[:1], y[:1]), (z[2:3], y[2:3])
    module = [[1, 17, 200], [4, 255]]
    golden = hand_hybrid(weights, tables, base, source, 0.37,
                         {"GBlock_5/conv1": module[0], "GBlock_5/conv2": module[1]})
    model = biggan.keras_model(5, 0.37)
    ours = tfcf.hybrid(model, model.cut_layers, module, list(base), list(source))
    np.testing.assert_allclose(ours, golden, atol=2e-3)
    assert np.abs(ours - biggan.generate(*base, 0.37)).max() > 0.05


@pytest.mark.slow
def test_figures_run_end_to_end_on_the_full_size_replica(full, mini_classifier, tmp_path):
    """fig5, fig6, fig14, fig16 and table3 with tiny settings on Gblock 11 (the cheapest tail:
    64 channels per conv at 256 px, one pair per map), all on koala/teddy so that they share
    one hybrid set; the numbers are recomputed from the cached set."""
    from click.testing import CliRunner

    from tfcf.experiments.biggan import hybrid_set
    from tfcf.experiments.cli import main
    from tfcf.imagenet import load_classifier

    biggan = full[0]
    settings = ["--biggan", str(biggan.path), "--blocks", "11", "--samples", "4", "--pairs", "1",
                "--examples", "1", "--k", "2", "--pair", "koala,teddy"]
    classifier = f"resnet_v2_50={mini_classifier[0]}"
    for command, extra in (("fig5", []), ("fig6", ["--classifier", classifier]),
                           ("fig14", ["--classifier", classifier]),
                           ("fig16", ["--classifier", classifier]),
                           ("table3", ["--block", "11", "--count", "2",
                                       "--classifier", classifier])):
        result = CliRunner().invoke(main, [command, *settings, *extra,
                                           "--outdir", str(tmp_path / command)])
        assert result.exit_code == 0, result.output + repr(result.exception)
    _, data = hybrid_set(str(biggan.path), ("koala", "teddy"), [11], 0.5, 2, 4, 1, 1, 0)
    assert data["ab_11"].shape == (2, 1, 256, 256, 3)
    results = json.loads((tmp_path / "fig5" / "results.json").read_text())
    entry = results["results"]["koala-teddy/gblock11"]
    assert entry["modules"] == data["modules"]["11"]
    np.testing.assert_allclose(entry["mean_abs_change_vs_original_1"],
                               [np.abs(h - data["originals_a"]).mean() for h in data["ab_11"]],
                               rtol=1e-6)
    images = np.concatenate([data["ab_11"], data["ba_11"]], axis=1).reshape(-1, 256, 256, 3)
    predicted = load_classifier("resnet_v2_50", handle=str(mini_classifier[0])).predict(
        images).argmax(1)
    with open(tmp_path / "fig6" / "fig6.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["rate"]) == pytest.approx(
        max(np.mean(predicted == 105), np.mean(predicted == 850)), abs=1e-4)
    assert (tmp_path / "fig16" / "entropy_resnet_v2_50.csv").is_file()
    assert (tmp_path / "table3" / "table3.png").stat().st_size > 5000
