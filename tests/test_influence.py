"""Golden-label tests of tfcf.influence_maps: eq. 2 and the variance statistic by hand."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tfcf
from conftest import to_numpy
from tfcf.influence import draw_pairs

UPSTREAM = ["lin", "reshape", "bn1", "block1"]
DOWNSTREAM = ["deconv2", "bn2", "block2", "deconv3", "image"]


def by_hand(model, names, x):
    for name in names:
        x = model.get_layer(name)(x, training=False)
    return to_numpy(x)


def hand_maps(model, z, modules, num_pairs, seed, statistic="mean_abs", keep_color=False):
    """Eq. 2 (or the per-pixel variance) computed with NumPy from hand-made hybrids at block1."""
    base, source = draw_pairs(len(z), num_pairs, seed)
    activations = by_hand(model, UPSTREAM, z)
    originals = by_hand(model, DOWNSTREAM, activations)
    maps = []
    for module in modules:
        hybrid = activations[base].copy()
        hybrid[..., module] = activations[source][..., module]
        outputs = by_hand(model, DOWNSTREAM, hybrid).astype("float64")
        if statistic == "mean_abs":
            value = np.abs(outputs - originals[base]).mean(axis=0)
        else:
            value = outputs.var(axis=0)
        maps.append(value if keep_color else value.mean(axis=-1))
    return np.stack(maps)


@pytest.fixture
def z(rng):
    return rng.normal(size=(12, 8)).astype("float32")


def test_draw_pairs_distinct_and_reproducible():
    base, source = draw_pairs(5, 1000, seed=3)
    assert np.all(base != source)
    assert set(base) == set(range(5)) and set(source) == set(range(5))
    again = draw_pairs(5, 1000, seed=3)
    np.testing.assert_array_equal(again[0], base)
    np.testing.assert_array_equal(again[1], source)


@pytest.mark.parametrize("method", ["generic", "linear"])
def test_elementary_maps_equal_eq2_by_hand(tiny_generator, z, method):
    expected = hand_maps(tiny_generator, z, [[c] for c in range(8)], num_pairs=20, seed=1)
    ours, record = tfcf.influence_maps(tiny_generator, "block1", z, num_pairs=20, seed=1,
                                       batch_size=48, method=method, progress=False,
                                       return_record=True)
    assert ours.shape == (8, 16, 16)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)
    assert record.method == method


@pytest.mark.parametrize("method", ["generic", "linear"])
def test_variance_statistic_by_hand(tiny_generator, z, method):
    expected = hand_maps(tiny_generator, z, [[c] for c in range(8)], num_pairs=15, seed=2,
                         statistic="variance", keep_color=True)
    ours = tfcf.influence_maps(tiny_generator, "block1", z, statistic="variance", num_pairs=15,
                               seed=2, keep_color=True, batch_size=7, method=method,
                               progress=False)
    assert ours.shape == (8, 16, 16, 3)
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-6)


def test_module_maps_by_hand(tiny_generator, z):
    modules = [[0, 3], [1, 2, 4, 5], [6, 7]]
    expected = hand_maps(tiny_generator, z, modules, num_pairs=10, seed=0)
    ours = tfcf.influence_maps(tiny_generator, "block1", z, channels=modules, num_pairs=10,
                               progress=False)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)


def test_record_says_where_the_time_went(tiny_generator, z):
    """Samples through the model, module parts (only when precomputed), steps: each >= 0 and
    together within the call's seconds."""
    modules = [[0, 3], [1, 2, 4, 5], [6, 7]]
    for num_pairs, precomputed in ((4, False), (30, True)):   # 5 and 12 samples used
        expected = hand_maps(tiny_generator, z, modules, num_pairs=num_pairs, seed=0)
        ours, record = tfcf.influence_maps(tiny_generator, "block1", z, channels=modules,
                                           num_pairs=num_pairs, progress=False,
                                           return_record=True)
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)
        phases = (record.seconds_per_sample, record.seconds_parts, record.seconds_steps)
        assert min(phases) >= 0 and sum(phases) <= record.seconds + 1e-3
        assert (record.seconds_parts > 0) == precomputed and record.seconds_steps > 0
        assert record.samples == len(np.unique(np.concatenate(draw_pairs(12, num_pairs))))


def test_multi_input_model_matches_hybrids(conditional_generator, rng):
    z = [rng.normal(size=(9, 8)).astype("float32"), np.eye(5, dtype="float32")[rng.integers(0, 5, 9)]]
    base, source = draw_pairs(9, 14, seed=4)
    originals = to_numpy(conditional_generator([a[base] for a in z], training=False))
    expected = []
    for channel in range(6):
        hybrid = tfcf.hybrid(conditional_generator, "block2", [channel],
                             [a[base] for a in z], [a[source] for a in z])
        expected.append(np.abs(hybrid - originals).mean(axis=(0, 3)))
    ours = tfcf.influence_maps(conditional_generator, "block2", z, num_pairs=14, seed=4,
                               progress=False)
    np.testing.assert_allclose(ours, np.stack(expected), rtol=1e-4, atol=1e-6)


def test_two_layer_modules_match_hybrids(tiny_generator, z):
    base, source = draw_pairs(len(z), 10, seed=0)
    modules = [[[0, 1], [2]], [[5], [0, 3, 4]]]
    originals = to_numpy(tiny_generator(z[base], training=False))
    expected = [
        np.abs(tfcf.hybrid(tiny_generator, ["block1", "block2"], m, z[base], z[source])
               - originals).mean(axis=(0, 3))
        for m in modules
    ]
    ours = tfcf.influence_maps(tiny_generator, ["block1", "block2"], z, channels=modules,
                               num_pairs=10, batch_size=4, progress=False)
    np.testing.assert_allclose(ours, np.stack(expected), rtol=1e-4, atol=1e-6)


def test_individual_influence_is_the_pixel_mean(tiny_generator, z):
    maps = tfcf.influence_maps(tiny_generator, "block2", z, num_pairs=6, progress=False)
    np.testing.assert_allclose(tfcf.individual_influence(maps), maps.mean(axis=(1, 2)), rtol=1e-6)
    assert np.all(maps >= 0) and maps.max() > 0


def test_bad_arguments(tiny_generator, z):
    with pytest.raises(ValueError, match="unknown statistic 'var'.*mean_abs, variance"):
        tfcf.influence_maps(tiny_generator, "block1", z, statistic="var")
    with pytest.raises(ValueError, match="at least 2 samples"):
        tfcf.influence_maps(tiny_generator, "block1", z[:1])
    with pytest.raises(ValueError, match="num_pairs must be >= 1"):
        tfcf.influence_maps(tiny_generator, "block1", z, num_pairs=0)
    with pytest.raises(ValueError, match="channel index 9 .* 8 channels"):
        tfcf.influence_maps(tiny_generator, "block1", z, channels=[[1, 9]])
    with pytest.raises(ValueError, match="unknown layer"):
        tfcf.influence_maps(tiny_generator, "block9", z)
    with pytest.raises(ValueError, match="method='linear' needs a linear channel-mixing layer"):
        tfcf.influence_maps(tiny_generator, "deconv3", z, method="linear")   # only tanh after it
    with pytest.raises(ValueError, match="unknown method 'fast'; valid: auto, generic, linear"):
        tfcf.influence_maps(tiny_generator, "block1", z, method="fast")
    for bad in (0, 2.5, "8"):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or None"):
            tfcf.influence_maps(tiny_generator, "block1", z, batch_size=bad)


def test_default_step_keeps_the_largest_tensor_after_the_cut_within_budget(tiny_generator, z,
                                                                          monkeypatch):
    """batch_size=None: hybrids per step = the budget (tfcf.intervene's _CALL_BYTES) // the
    largest tensor after the hybrids (here the image, 16 x 16 x 3 float32 = 3,072 bytes), at most
    _MAX_STEP; the maps are those of that batch size given explicitly."""
    influence, intervene = sys.modules["tfcf.influence"], sys.modules["tfcf.intervene"]

    for budget, cap, shape in ((10, 1024, (1, 6)), (100, 1024, (8, 6)), (10**6, 20, (3, 6))):
        monkeypatch.setattr(intervene, "_CALL_BYTES", 3072 * budget)
        monkeypatch.setattr(influence, "_MAX_STEP", cap)
        maps, record = tfcf.influence_maps(tiny_generator, "block1", z, num_pairs=6,
                                           progress=False, return_record=True)
        assert (record.maps_per_step, record.pairs_per_step) == shape
        explicit = tfcf.influence_maps(tiny_generator, "block1", z, num_pairs=6, progress=False,
                                       batch_size=min(budget, cap))
        np.testing.assert_array_equal(maps, explicit)


def test_default_step_with_sizes_unknown_until_run_time_stays_at_256():
    """A tensor of unknown spatial size: the step is capped at the old default."""
    import keras

    from tfcf.graph import flat_graph
    from tfcf.intervene import default_batch

    x = keras.Input((None, None, 4))
    model = keras.Model(x, keras.layers.Conv2D(3, 1)(x))
    assert default_batch(flat_graph(model), most=1024) == 256
    fixed = keras.Input((8, 8, 4))
    fixed_model = keras.Model(fixed, keras.layers.Conv2D(3, 1)(fixed))
    assert default_batch(flat_graph(fixed_model), most=1024) == 1024
    assert default_batch(flat_graph(fixed_model), copies=2) == 256


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="tf.distribute needs the TensorFlow backend")
def test_two_logical_devices_give_the_same_maps():
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
        import sys; sys.path.insert(0, "tests")
        from conftest import _tiny_generator
        import tfcf
        g = _tiny_generator()
        z = np.random.default_rng(0).normal(size=(12, 8)).astype("float32")
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        for method in ("generic", "linear"):
            one = tfcf.influence_maps(g, "block1", z, num_pairs=20, method=method, progress=False)
            two = tfcf.influence_maps(g, "block1", z, num_pairs=20, method=method,
                                      strategy=strategy, progress=False)
            np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-7)
        print("SAME", float(np.abs(two - one).max()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=300,
                            env=dict(os.environ, KERAS_BACKEND="tensorflow"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SAME" in result.stdout


@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_data_parallel_gives_the_same_maps():
    script = textwrap.dedent("""
        import keras, numpy as np, jax, sys
        assert len(jax.devices("cpu")) == 2, jax.devices()
        sys.path.insert(0, "tests")
        from conftest import _tiny_generator
        import tfcf
        g = _tiny_generator()
        z = np.random.default_rng(0).normal(size=(12, 8)).astype("float32")
        one = {m: tfcf.influence_maps(g, "block1", z, num_pairs=20, method=m, progress=False)
               for m in ("generic", "linear")}
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        for method, expected in one.items():
            two = tfcf.influence_maps(g, "block1", z, num_pairs=20, method=method, progress=False)
            np.testing.assert_allclose(two, expected, rtol=1e-5, atol=1e-7)
        print("SAME")
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SAME" in result.stdout


def test_non_finite_inputs_are_refused_before_any_work(tiny_generator, conditional_generator,
                                                       z, rng, monkeypatch):
    import tfcf.influence

    def no_work(*args, **kwargs):
        raise AssertionError("a model ran before the inputs were checked")

    monkeypatch.setattr(tfcf.influence, "_predict", no_work)
    bad = z.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"z array for input 0 \(z\) holds 1 NaN or infinite "
                                         r"value\(s\) \(samples 3\)"):
        tfcf.influence_maps(tiny_generator, "block1", bad, progress=False)
    y = np.eye(5, dtype="float32")[rng.integers(0, 5, 12)]
    y[7, 0] = -np.inf
    with pytest.raises(ValueError, match=r"input 1 \(y\) holds 1 NaN or infinite value\(s\) "
                                         r"\(samples 7\)"):
        tfcf.influence_maps(conditional_generator, "block1", [z, y], progress=False)


def test_more_pairs_than_distinct_pairs_warns(tiny_generator, z):
    import warnings

    with pytest.warns(UserWarning, match=r"num_pairs=7 is more than the 6 distinct pairs "
                                         r"\(ordered, base != source\) of the 3 samples"):
        maps = tfcf.influence_maps(tiny_generator, "block1", z[:3], num_pairs=7, progress=False)
    np.testing.assert_allclose(maps, hand_maps(tiny_generator, z[:3], [[c] for c in range(8)],
                                               7, 0), atol=1e-5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tfcf.influence_maps(tiny_generator, "block1", z[:3], num_pairs=6, progress=False)
    assert not [w for w in caught if "distinct pairs" in str(w.message)]
