"""Golden-label tests of tfcf.split / tfcf.hybrid / tfcf.intervene (run under TF and JAX)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import tfcf
from conftest import to_numpy
from tfcf.graph import FlatGraph


def layers_by_hand(model, names, x):
    """Run the named layers of ``model`` one after the other, in inference mode."""
    for name in names:
        x = model.get_layer(name)(x, training=False)
    return to_numpy(x)


def forward(model, inputs):
    return to_numpy(model(inputs, training=False))


def latent(rng, batch, dim=8):
    return rng.normal(size=(batch, dim)).astype("float32")


# ----------------------------------------------------------------------------- split
@pytest.mark.parametrize(
    "fixture",
    ["tiny_generator", "conditional_generator", "nested_generator", "sequence_model"],
)
def test_tail_of_head_equals_model_at_every_layer(fixture, request, rng):
    model = request.getfixturevalue(fixture)
    inputs = [rng.normal(size=(3,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    expected = forward(model, inputs)
    names = FlatGraph(model).op_names()
    assert len(names) >= 4
    for name in names:
        head, tail = tfcf.split(model, name)
        np.testing.assert_allclose(forward(tail, head(inputs)), expected, atol=1e-6, err_msg=name)


def test_head_returns_the_layer_activation(tiny_generator, rng):
    z = latent(rng, 4)
    head, _ = tfcf.split(tiny_generator, "block1")
    by_hand = layers_by_hand(tiny_generator, ["lin", "reshape", "bn1", "block1"], z)
    np.testing.assert_allclose(forward(head, z), by_hand, atol=1e-6)


def test_split_carries_inputs_and_skips(conditional_generator, rng):
    split = tfcf.split(conditional_generator, "block2")
    assert split.cut == ["block2:0"]
    # Block 3 still needs y (through cond3) and the skip connection from block 1.
    assert set(split.carried) == {"skip_up:0", "cond3_reshape:0"}
    z, y = latent(rng, 3), rng.normal(size=(3, 5)).astype("float32")
    outputs = split.head([z, y])
    assert len(outputs) == 3
    np.testing.assert_allclose(
        forward(split.tail, outputs), forward(conditional_generator, [z, y]), atol=1e-6
    )


def test_split_accepts_tensorlayer_spelling():
    z = keras.Input((4,))
    h = keras.layers.Dense(8, name="g_h0_lin")(z)
    out = keras.layers.Dense(2, name="g_h1_lin")(h)
    model = keras.Model(z, out)
    split = tfcf.split(model, "g/h0/lin")
    assert split.cut == ["g_h0_lin:0"]


# ----------------------------------------------------------------------------- hybrid
def test_hybrid_equals_manual_channel_swap(tiny_generator, rng):
    """Channels 1 and 3 from the source sample, the rest from the base sample."""
    z_base, z_source = latent(rng, 4), latent(rng, 4)
    upstream = ["lin", "reshape", "bn1", "block1"]
    downstream = ["deconv2", "bn2", "block2", "deconv3", "image"]
    golden = layers_by_hand(tiny_generator, upstream, z_base)
    golden[..., [1, 3]] = layers_by_hand(tiny_generator, upstream, z_source)[..., [1, 3]]
    expected = layers_by_hand(tiny_generator, downstream, golden)
    ours = tfcf.hybrid(tiny_generator, "block1", [1, 3], base=z_base, source=z_source)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert np.abs(ours - forward(tiny_generator, z_base)).max() > 1e-3


def test_clean_run_equals_plain_forward(tiny_generator, rng):
    z_base, z_source = latent(rng, 5), latent(rng, 5)
    plain = forward(tiny_generator, z_base)
    no_channels = tfcf.hybrid(tiny_generator, "block2", [], base=z_base, source=z_source)
    np.testing.assert_allclose(no_channels, plain, atol=1e-6)
    all_channels = tfcf.hybrid(tiny_generator, "block2", range(6), base=z_base, source=z_source)
    np.testing.assert_allclose(all_channels, forward(tiny_generator, z_source), atol=1e-6)


def test_batch_norm_runs_in_inference_mode(tiny_generator, rng):
    z = latent(rng, 6)
    ours = tfcf.hybrid(tiny_generator, "block1", range(8), base=latent(rng, 6), source=z)
    np.testing.assert_allclose(ours, to_numpy(tiny_generator(z, training=False)), atol=1e-6)
    assert np.abs(ours - to_numpy(tiny_generator(z, training=True))).max() > 1e-3


def test_hybrid_batches_give_the_same_result(tiny_generator, rng):
    z_base, z_source = latent(rng, 7), latent(rng, 7)
    whole = tfcf.hybrid(tiny_generator, "block2", [0, 2], z_base, z_source, batch_size=64)
    pieces = tfcf.hybrid(tiny_generator, "block2", [0, 2], z_base, z_source, batch_size=3)
    np.testing.assert_allclose(whole, pieces, atol=1e-6)


def test_default_batch_keeps_a_call_within_budget(tiny_generator, rng, monkeypatch):
    """batch_size=None: 256 samples a call, fewer where the largest tensor of a call (base and
    source together when the source is read) would pass _CALL_BYTES; here the largest per
    sample is the image, 16 x 16 x 3 float32 = 3,072 bytes."""
    module = sys.modules["tfcf.intervene"]
    run, calls = module._run, []

    def counted(model, inputs):
        calls.append(len(inputs[0]))
        return run(model, inputs)

    z_base, z_source = latent(rng, 7), latent(rng, 7)
    expected = tfcf.hybrid(tiny_generator, "block2", [0, 2], z_base, z_source, batch_size=7)
    monkeypatch.setattr(module, "_run", counted)
    tfcf.hybrid(tiny_generator, "block2", [0, 2], z_base, z_source)
    assert calls == [14, 7]                  # 256 a call: all 7 pairs, base and source together
    monkeypatch.setattr(module, "_CALL_BYTES", 3072 * 6)
    calls.clear()
    out = tfcf.hybrid(tiny_generator, "block2", [0, 2], z_base, z_source)
    assert calls == [6, 3, 6, 3, 2, 1]       # 3 pairs a call: 6 samples through the head
    np.testing.assert_allclose(out, expected, atol=1e-6)
    calls.clear()
    tfcf.intervene(tiny_generator, {"block2": tfcf.SetChannels([0], 0.0)}, z_base)
    assert calls == [6, 6, 1, 1]             # no source: 6 samples a call
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or None"):
        tfcf.hybrid(tiny_generator, "block2", [0], z_base, z_source, batch_size=0)


def test_hybrid_multi_input_feeds_y_downstream(conditional_generator, rng):
    model = conditional_generator
    z1, z2 = latent(rng, 3), latent(rng, 3)
    y1, y2 = (np.eye(5, dtype="float32")[[0, 1, 2]], np.eye(5, dtype="float32")[[3, 4, 0]])
    swap = [0, 4]

    def upstream(z, y):
        h = layers_by_hand(model, ["lin", "reshape", "bn1", "block1"],
                           model.get_layer("zy")([z, y]))
        cond2 = layers_by_hand(model, ["cond2", "cond2_reshape"], y)
        up = layers_by_hand(model, ["skip_up"], h)
        b2 = layers_by_hand(model, ["deconv2"], h)
        b2 = layers_by_hand(model, ["block2"], model.get_layer("add_cond2")([b2, cond2]))
        return b2, up

    b2_base, up_base = upstream(z1, y1)
    b2_source, _ = upstream(z2, y2)
    b2_base[..., swap] = b2_source[..., swap]
    h = layers_by_hand(model, ["conv3"], model.get_layer("skip_concat")([b2_base, up_base]))
    cond3 = layers_by_hand(model, ["cond3", "cond3_reshape"], y1)
    h = layers_by_hand(model, ["block3", "image"], model.get_layer("add_cond3")([h, cond3]))
    ours = tfcf.hybrid(model, "block2", swap, base=[z1, y1], source=[z2, y2])
    np.testing.assert_allclose(ours, h, atol=1e-5)


def test_two_successive_layers_follow_do_semantics(tiny_generator, rng):
    """Layer 1's channels from the source, then layer 2 recomputed, then its channels swapped."""
    z_base, z_source = latent(rng, 4), latent(rng, 4)
    m = tiny_generator
    b1_source = layers_by_hand(m, ["lin", "reshape", "bn1", "block1"], z_source)
    b2_source = layers_by_hand(m, ["deconv2", "bn2", "block2"], b1_source)
    b1 = layers_by_hand(m, ["lin", "reshape", "bn1", "block1"], z_base)
    b1[..., [0, 5]] = b1_source[..., [0, 5]]
    b2 = layers_by_hand(m, ["deconv2", "bn2", "block2"], b1)
    b2[..., [2]] = b2_source[..., [2]]
    expected = layers_by_hand(m, ["deconv3", "image"], b2)
    ours = tfcf.hybrid(m, ["block1", "block2"], [[0, 5], [2]], base=z_base, source=z_source)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # The order of the list does not matter: the graph decides which layer comes first.
    reversed_order = tfcf.hybrid(m, ["block2", "block1"], [[2], [0, 5]], z_base, z_source)
    np.testing.assert_allclose(reversed_order, expected, atol=1e-5)


def test_nested_submodel_layer(nested_generator, rng):
    m = nested_generator
    z1, z2 = latent(rng, 3), latent(rng, 3)
    block = m.get_layer("block")
    stem, shared = m.get_layer("stem"), m.get_layer("shared")

    def relu_a(z):
        h = to_numpy(shared(stem(z, training=False)))
        return h, layers_by_hand(block, ["conv_a", "bn_a", "relu_a"], h)

    h_base, a_base = relu_a(z1)
    _, a_source = relu_a(z2)
    a_base[..., [1, 2]] = a_source[..., [1, 2]]
    b = to_numpy(block.get_layer("residual")([layers_by_hand(block, ["conv_b"], a_base), h_base]))
    expected = layers_by_hand(m, ["shared", "post", "image"], b)
    ours = tfcf.hybrid(m, "block/relu_a", [1, 2], base=z1, source=z2)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # The leaf name alone is enough when it is unique.
    np.testing.assert_allclose(tfcf.hybrid(m, "relu_a", [1, 2], z1, z2), expected, atol=1e-6)


def test_layer_called_twice(nested_generator, rng):
    m = nested_generator
    z1, z2 = latent(rng, 3), latent(rng, 3)
    assert "shared:0" in FlatGraph(m).op_names() and "shared:1" in FlatGraph(m).op_names()
    stem, block, shared = m.get_layer("stem"), m.get_layer("block"), m.get_layer("shared")

    def second_call(z):
        return to_numpy(shared(block(shared(stem(z, training=False)), training=False)))

    golden = second_call(z1)
    golden[..., [3]] = second_call(z2)[..., [3]]
    expected = layers_by_hand(m, ["post", "image"], golden)
    ours = tfcf.hybrid(m, "shared:1", [3], base=z1, source=z2)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # A plain name cuts every call of the layer: head returns both activations.
    split = tfcf.split(m, "shared")
    assert split.cut == ["shared:0", "shared:1"]


def test_rank2_and_rank3_channels(sequence_model, rng):
    m = sequence_model
    z1, z2 = rng.normal(size=(4, 6)).astype("float32"), rng.normal(size=(4, 6)).astype("float32")
    hidden = layers_by_hand(m, ["hidden"], z1)
    hidden[..., [2, 7]] = layers_by_hand(m, ["hidden"], z2)[..., [2, 7]]
    expected = layers_by_hand(m, ["to_seq", "conv1d", "out"], hidden)
    np.testing.assert_allclose(tfcf.hybrid(m, "hidden", [2, 7], z1, z2), expected, atol=1e-5)
    maps = layers_by_hand(m, ["hidden", "to_seq", "conv1d"], z1)
    maps[..., [6]] = layers_by_hand(m, ["hidden", "to_seq", "conv1d"], z2)[..., [6]]
    np.testing.assert_allclose(
        tfcf.hybrid(m, "conv1d", [6], z1, z2), layers_by_hand(m, ["out"], maps), atol=1e-5
    )


# ----------------------------------------------------------------------------- interventions
def test_set_channels_and_transform(tiny_generator, rng):
    z = latent(rng, 3)
    b1 = layers_by_hand(tiny_generator, ["lin", "reshape", "bn1", "block1"], z)
    downstream = ["deconv2", "bn2", "block2", "deconv3", "image"]
    zeroed = b1.copy()
    zeroed[..., [4]] = 0.5
    ours = tfcf.intervene(tiny_generator, {"block1": tfcf.SetChannels([4], 0.5)}, base=z)
    np.testing.assert_allclose(ours, layers_by_hand(tiny_generator, downstream, zeroed), atol=1e-5)

    flipped = b1[:, :, ::-1, :]
    ours = tfcf.intervene(
        tiny_generator, {"block1": tfcf.Transform(lambda maps: maps[:, :, ::-1, :])}, base=z
    )
    np.testing.assert_allclose(ours, layers_by_hand(tiny_generator, downstream, flipped), atol=1e-5)

    ours = tfcf.intervene(tiny_generator, [("block1", lambda base, source: 2 * base)], base=z)
    np.testing.assert_allclose(ours, layers_by_hand(tiny_generator, downstream, 2 * b1), atol=1e-5)


# ----------------------------------------------------------------------------- errors
def test_unknown_layer_lists_valid_names(tiny_generator):
    with pytest.raises(ValueError, match=r"unknown layer 'blok1'.*Did you mean.*block1.*Valid"):
        tfcf.split(tiny_generator, "blok1")


def test_channel_out_of_range(tiny_generator, rng):
    with pytest.raises(ValueError, match=r"channel index 8 .* 'block1'.* 8 channels .*0\.\.7"):
        tfcf.hybrid(tiny_generator, "block1", [1, 8], latent(rng, 2), latent(rng, 2))
    with pytest.raises(ValueError, match="channel index -1"):
        tfcf.hybrid(tiny_generator, "block1", [-1], latent(rng, 2), latent(rng, 2))


def test_batch_and_shape_mismatch(tiny_generator, conditional_generator, rng):
    with pytest.raises(ValueError, match="batch sizes differ: 2 vs 3"):
        tfcf.hybrid(tiny_generator, "block1", [1], latent(rng, 2), latent(rng, 3))
    with pytest.raises(ValueError, match=r"shape \(2, 7\).*expects \(batch, 8\)"):
        tfcf.hybrid(tiny_generator, "block1", [1], latent(rng, 2, 7), latent(rng, 2, 7))
    with pytest.raises(ValueError, match="2 array"):
        tfcf.hybrid(conditional_generator, "block1", [1], latent(rng, 2), latent(rng, 2))
    with pytest.raises(ValueError, match="different batch sizes"):
        z, y = latent(rng, 2), np.zeros((3, 5), "float32")
        tfcf.hybrid(conditional_generator, "block1", [1], [z, y], [z, y])


def test_subclassed_model_is_refused():
    class Generator(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return self.dense(x)

    model = Generator()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(TypeError, match="functional"):
        tfcf.split(model, "dense")


def test_several_layers_need_one_channel_list_each(tiny_generator, rng):
    with pytest.raises(ValueError, match="one channel list per layer"):
        tfcf.hybrid(tiny_generator, ["block1", "block2"], [1, 2], latent(rng, 2), latent(rng, 2))


def test_missing_source(tiny_generator, rng):
    with pytest.raises(ValueError, match="source"):
        tfcf.intervene(tiny_generator, {"block1": tfcf.SwapChannels([1])}, base=latent(rng, 2))


# ----------------------------------------------------------------------------- logging
def test_importing_tfcf_leaves_the_tensorflow_logger_alone():
    script = (
        "import logging, keras\n"
        "logger = logging.getLogger('tensorflow')\n"
        "before = list(logger.filters)\n"
        "import tfcf.intervene\n"
        "assert logger.filters == before, logger.filters\n"
        "print('UNCHANGED')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "UNCHANGED" in result.stdout


def test_the_tfcf_command_drops_retracing_warnings_once():
    from click.testing import CliRunner

    from tfcf.experiments.cli import main
    from tfcf.intervene import RetracingWarningFilter

    logger = logging.getLogger("tensorflow")
    saved = list(logger.filters)
    for existing in saved:
        logger.removeFilter(existing)
    try:
        for _ in range(2):
            assert CliRunner().invoke(main, ["demo", "--help"]).exit_code == 0
        assert [type(f) for f in logger.filters] == [RetracingWarningFilter]

        def record(message):
            return logging.LogRecord("tensorflow", logging.WARNING, __file__, 0, message, None,
                                     None)

        retracing = record("5 out of the last 5 calls to <function f> triggered tf.function "
                           "retracing. Tracing is expensive.")
        assert not logger.filters[0].filter(retracing)
        assert logger.filters[0].filter(record("Some other warning"))
    finally:
        logger.filters[:] = saved
