"""tensorlayer .npz checkpoints: hand-written fixtures load into the right Keras weights."""

import zipfile

import keras
import numpy as np
import pytest

from tfcf.models import tensorlayer_io

BN_EPSILON = 1e-5  # tensorlayer's default; the Keras models mirror it


def _object_array(arrays):
    params = np.empty(len(arrays), dtype=object)
    for index, array in enumerate(arrays):
        params[index] = array
    return params


def _small_model():
    z = keras.Input((6,), name="z")
    h = keras.layers.Dense(2 * 2 * 4, name="lin")(z)
    h = keras.layers.Reshape((2, 2, 4), name="reshape")(h)
    h = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="bn1")(h)
    h = keras.layers.ReLU(name="relu1")(h)
    h = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same", name="deconv")(h)
    out = keras.layers.Conv2D(2, 3, padding="same", use_bias=False, name="conv")(h)
    return keras.Model(z, out, name="small")


def _tensorlayer_arrays(seed=0):
    """The small model's weights as tensorlayer lists them (BN: beta, gamma, mean, var)."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.normal(size=shape).astype("float32")  # noqa: E731
    return {
        "lin.kernel": normal(6, 16), "lin.bias": normal(16),
        "bn1.beta": normal(4), "bn1.gamma": rng.uniform(0.5, 1.5, 4).astype("float32"),
        "bn1.moving_mean": normal(4), "bn1.moving_var": rng.uniform(0.5, 2.0, 4).astype("float32"),
        "deconv.kernel": normal(3, 3, 3, 4), "deconv.bias": normal(3),
        "conv.kernel": normal(3, 3, 3, 2),
    }


@pytest.fixture
def fixture_path(tmp_path):
    """A checkpoint exactly as tl.files.save_npz writes it: np.savez(name, params=[...])."""
    path = tmp_path / "net_g.npz"
    np.savez(path, params=_object_array(list(_tensorlayer_arrays().values())))
    return path


def test_hand_written_checkpoint_lands_in_the_right_weights(fixture_path):
    model = tensorlayer_io.load_tensorlayer_npz(_small_model(), fixture_path)
    arrays = _tensorlayer_arrays()
    lin, bn, deconv, conv = (model.get_layer(n) for n in ("lin", "bn1", "deconv", "conv"))
    expected = [
        (lin.kernel, "lin.kernel"), (lin.bias, "lin.bias"),
        (bn.gamma, "bn1.gamma"), (bn.beta, "bn1.beta"),
        (bn.moving_mean, "bn1.moving_mean"), (bn.moving_variance, "bn1.moving_var"),
        (deconv.kernel, "deconv.kernel"), (deconv.bias, "deconv.bias"), (conv.kernel, "conv.kernel"),
    ]
    for variable, name in expected:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), arrays[name], err_msg=name)

    z = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    x = (z @ arrays["lin.kernel"] + arrays["lin.bias"]).reshape(3, 2, 2, 4)
    golden = (arrays["bn1.gamma"] * (x - arrays["bn1.moving_mean"])
              / np.sqrt(arrays["bn1.moving_var"] + BN_EPSILON) + arrays["bn1.beta"])
    probe = keras.Model(model.input, model.get_layer("bn1").output)
    np.testing.assert_allclose(np.asarray(probe(z, training=False)), golden, rtol=1e-5, atol=1e-5)


def test_wrong_count_and_wrong_shape_are_refused_and_leave_the_model_untouched(tmp_path):
    model = _small_model()
    before = [np.array(w) for w in model.get_weights()]
    arrays = list(_tensorlayer_arrays().values())

    short = tmp_path / "short.npz"
    np.savez(short, params=_object_array(arrays[:-1]))
    with pytest.raises(ValueError, match=r"holds 8 arrays.*has 9 weights.*'conv'.*\(3, 3, 3, 2\)"):
        tensorlayer_io.load_tensorlayer_npz(model, short)

    wrong = tmp_path / "wrong.npz"
    bad = list(arrays)
    bad[3] = np.ones(5, dtype="float32")  # gamma of bn1
    np.savez(wrong, params=_object_array(bad))
    with pytest.raises(ValueError, match=r"array 3 .*shape \(5,\).*'bn1'.*\(4,\)"):
        tensorlayer_io.load_tensorlayer_npz(model, wrong)

    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_nested_models_are_walked_in_order(tmp_path):
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="inner_lin"),
         keras.layers.BatchNormalization(epsilon=BN_EPSILON, center=False, name="inner_bn")],
        name="inner",
    )
    z = keras.Input((5,))
    out = keras.layers.Dense(2, name="head")(inner(keras.layers.Dense(4, name="stem")(z)))
    model = keras.Model(z, out)
    rng = np.random.default_rng(2)
    shapes = [(5, 4), (4,), (4, 3), (3,), (3,), (3,), (3,), (3, 2), (2,)]  # bn without beta
    arrays = [rng.normal(size=s).astype("float32") for s in shapes]
    path = tmp_path / "nested.npz"
    np.savez(path, params=_object_array(arrays))
    tensorlayer_io.load_tensorlayer_npz(model, path)
    bn = inner.get_layer("inner_bn")
    np.testing.assert_array_equal(np.asarray(inner.get_layer("inner_lin").kernel), arrays[2])
    np.testing.assert_array_equal(np.asarray(bn.gamma), arrays[4])
    np.testing.assert_array_equal(np.asarray(bn.moving_variance), arrays[6])
    np.testing.assert_array_equal(np.asarray(model.get_layer("head").bias), arrays[8])


def test_old_numpy_stacked_params_load(tmp_path):
    """numpy < 1.24 turned a list of equal-shaped arrays into one float array."""
    z = keras.Input((2, 2, 3))
    model = keras.Model(z, keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="bn")(z))
    beta, gamma, mean, var = np.arange(12, dtype="float32").reshape(4, 3) + 1
    path = tmp_path / "stacked.npz"
    np.savez(path, params=np.stack([beta, gamma, mean, var]))
    tensorlayer_io.load_tensorlayer_npz(model, path)
    for value, expected in zip(model.get_layer("bn").get_weights(), [gamma, beta, mean, var]):
        np.testing.assert_array_equal(value, expected)


def test_save_writes_the_exact_format_and_round_trips(tmp_path):
    seed_path = _write(tmp_path, _tensorlayer_arrays(3))
    source = tensorlayer_io.load_tensorlayer_npz(_small_model(), seed_path)
    path = tmp_path / "saved.npz"
    tensorlayer_io.save_tensorlayer_npz(source, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.npz", "seed.npz"]  # no temp file
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["params.npy"]
        header = archive.read("params.npy")[:128]
    assert b"'descr': '|O'" in header and b"'shape': (9,)" in header
    target = tensorlayer_io.load_tensorlayer_npz(_small_model(), path)
    for old, new in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(old, new)


def _write(tmp_path, arrays):
    path = tmp_path / "seed.npz"
    np.savez(path, params=_object_array(list(arrays.values())))
    return path


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0, 0.05, shape)
        variable.assign(value.astype("float32"))
    return model


def test_dcgan_generator_round_trips(tmp_path):
    dcgan = pytest.importorskip("tfcf.models.dcgan")
    source = _randomize(dcgan.build_generator("paper_celeba", seed=1), seed=4)
    path = tmp_path / "net_g.npz"
    tensorlayer_io.save_tensorlayer_npz(source, path)
    names = [layer.name for layer, _ in tensorlayer_io.tensorlayer_order(source)]
    assert names[:6] == ["g_h0_lin", "g_h0_lin", "g_h0_batch_norm", "g_h0_batch_norm",
                         "g_h0_batch_norm", "g_h0_batch_norm"]
    assert names[6:8] == ["g_h1_decon2d", "g_h1_decon2d"]
    target = tensorlayer_io.load_tensorlayer_npz(dcgan.build_generator("paper_celeba", seed=2), path)
    z = np.random.default_rng(5).normal(size=(2, 150)).astype("float32")
    np.testing.assert_array_equal(
        np.asarray(target(z, training=False)), np.asarray(source(z, training=False))
    )


def test_real_tensorlayer_generator_matches_keras(tmp_path):
    """tensorlayer 2.2.5 builds the DCGAN generator (the 1.x layout with biases, as models/dcgan.py);
    its weights, saved by hand in tl.files.save_npz's format, give our Keras model its outputs."""
    dcgan = pytest.importorskip("tfcf.models.dcgan")
    tl = pytest.importorskip("tensorlayer")
    import tensorflow as tf
    from tensorlayer.layers import BatchNorm2d, DeConv2d, Dense, Input, Reshape

    z_dim, channels = 100, (512, 256, 128, 64, 3)
    w_init = tf.random_normal_initializer(stddev=0.02)
    gamma_init = tf.random_normal_initializer(1.0, 0.02)
    ni = Input([None, z_dim])
    nn = Dense(n_units=channels[0] * 4 * 4, W_init=w_init, name="g_h0_lin")(ni)
    nn = Reshape(shape=[-1, 4, 4, channels[0]], name="g_h0_reshape")(nn)
    nn = BatchNorm2d(decay=0.9, act=tf.nn.relu, gamma_init=gamma_init, name="g_h0_batch_norm")(nn)
    for index in range(1, 5):
        nn = DeConv2d(channels[index], (5, 5), (2, 2), W_init=w_init, name=f"g_h{index}_decon2d",
                      act=tf.nn.tanh if index == 4 else None)(nn)
        if index < 4:
            nn = BatchNorm2d(decay=0.9, act=tf.nn.relu, gamma_init=gamma_init,
                             name=f"g_h{index}_batch_norm")(nn)
    generator = tl.models.Model(inputs=ni, outputs=nn, name="generator")
    rng = np.random.default_rng(6)
    for weight in generator.all_weights:  # non-trivial batch-norm statistics and biases
        name = weight.name
        if "moving_var" in name:
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
        elif "moving_mean" in name or "beta" in name or "bias" in name:
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))
    generator.eval()
    z = rng.normal(size=(2, z_dim)).astype("float32")
    expected = generator(tf.constant(z)).numpy()

    path = tmp_path / "net_g.npz"  # tl.files.save_npz, which numpy 2 breaks, done by hand
    np.savez(path, params=_object_array([np.asarray(w.numpy()) for w in generator.all_weights]))
    ours = tensorlayer_io.load_tensorlayer_npz(dcgan.build_generator("tensorlayer"), path)
    diff = np.abs(np.asarray(ours(z, training=False)) - expected).max()
    print(f"tensorlayer {tl.__version__} vs Keras: max |diff| image {diff:.2e} "
          f"(image std {expected.std():.3f})")
    assert 0.02 < expected.std() and np.abs(expected).max() < 0.999  # informative, not saturated
    assert diff <= 1e-4
