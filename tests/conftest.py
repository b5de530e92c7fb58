"""Tiny Keras models for golden-label tests (backend-agnostic: run under TF and JAX)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

# The longest test files, longest first (seconds of test time each, measured 2026-11-29 on the
# 2-core CI machine: 77, 73, 47, 33, 32, 29, 25). `make test` runs a file per worker
# (`--dist loadfile --no-loadscope-reorder`), handing out files in collection order, so these go
# first: ordered by number of tests instead (pytest-xdist's default), the one-test JAX file
# (73 s) was handed out among the last and ran alone while the other worker idled (a paired
# run on a clean clone: 341 s that way, 252 s this way).
_LONGEST_FIRST = ("test_train.py", "test_backend_jax.py", "test_influence_shortcut.py",
                  "test_influence.py", "test_packaging.py", "test_generator_catalogue.py",
                  "test_split_architectures.py")


def pytest_collection_modifyitems(session, config, items):
    """The longest test files first, the others in collection order (a stable sort)."""
    rank = {name: place for place, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def randomize_batchnorm(model, seed=0):
    """Give every BatchNormalization non-trivial moving statistics (inference mode matters)."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0, 0.2, beta.shape).astype("float32"),
                rng.normal(0, 0.5, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, var.shape).astype("float32"),
            ])
    return model


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _tiny_generator(seed=0):
    keras.utils.set_random_seed(seed)
    z = keras.Input((8,), name="z")
    h = keras.layers.Dense(4 * 4 * 8, name="lin")(z)
    h = keras.layers.Reshape((4, 4, 8), name="reshape")(h)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU(name="block1")(h)
    h = keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same", name="deconv2")(h)
    h = keras.layers.BatchNormalization(name="bn2")(h)
    h = keras.layers.ReLU(name="block2")(h)
    h = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same", name="deconv3")(h)
    out = keras.layers.Activation("tanh", name="image")(h)
    return randomize_batchnorm(keras.Model(z, out, name="tiny_generator"), seed)


def _conditional_generator(seed=0):
    """Two inputs (z, y); y feeds every block; a skip connection bypasses block2."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((8,), name="z")
    y = keras.Input((5,), name="y")
    h = keras.layers.Dense(4 * 4 * 6, name="lin")(keras.layers.Concatenate(name="zy")([z, y]))
    h = keras.layers.Reshape((4, 4, 6), name="reshape")(h)
    h = keras.layers.ReLU(name="block1")(keras.layers.BatchNormalization(name="bn1")(h))
    up = keras.layers.UpSampling2D(2, name="skip_up")(h)
    h = keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same", name="deconv2")(h)
    cond2 = keras.layers.Reshape((1, 1, 6), name="cond2_reshape")(keras.layers.Dense(6, name="cond2")(y))
    h = keras.layers.Add(name="add_cond2")([h, cond2])
    h = keras.layers.ReLU(name="block2")(h)
    h = keras.layers.Concatenate(name="skip_concat")([h, up])
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv3")(h)
    cond3 = keras.layers.Reshape((1, 1, 4), name="cond3_reshape")(keras.layers.Dense(4, name="cond3")(y))
    h = keras.layers.ReLU(name="block3")(keras.layers.Add(name="add_cond3")([h, cond3]))
    out = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", name="image")(h)
    return randomize_batchnorm(keras.Model([z, y], out, name="conditional_generator"), seed)


def _nested_generator(seed=0):
    """A functional block used as a layer, a Sequential head, and a layer called twice."""
    keras.utils.set_random_seed(seed)
    inner_in = keras.Input((4, 4, 6), name="block_in")
    a = keras.layers.Conv2D(6, 3, padding="same", name="conv_a")(inner_in)
    a = keras.layers.BatchNormalization(name="bn_a")(a)
    a = keras.layers.ReLU(name="relu_a")(a)
    b = keras.layers.Conv2D(6, 3, padding="same", name="conv_b")(a)
    b = keras.layers.Add(name="residual")([b, inner_in])
    block = keras.Model(inner_in, b, name="block")
    stem = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4 * 4 * 6, name="stem_lin"),
         keras.layers.Reshape((4, 4, 6), name="stem_reshape")],
        name="stem",
    )
    shared = keras.layers.Conv2D(6, 1, name="shared")
    z = keras.Input((8,), name="z")
    h = stem(z)
    h = shared(h)
    h = block(h)
    h = shared(h)
    h = keras.layers.ReLU(name="post")(h)
    out = keras.layers.Conv2D(3, 3, padding="same", name="image")(h)
    return randomize_batchnorm(keras.Model(z, out, name="nested_generator"), seed)


def _sequence_model(seed=0):
    """Channels-last tensors of rank 2 (dense units) and rank 3 (1-D maps)."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((6,), name="z")
    h = keras.layers.Dense(10, activation="relu", name="hidden")(z)
    h = keras.layers.Reshape((5, 2), name="to_seq")(h)
    h = keras.layers.Conv1D(7, 3, padding="same", activation="relu", name="conv1d")(h)
    out = keras.layers.Conv1D(2, 3, padding="same", name="out")(h)
    return keras.Model(z, out, name="sequence_model")


@pytest.fixture(scope="session")
def tiny_generator():
    return _tiny_generator()


@pytest.fixture(scope="session")
def conditional_generator():
    return _conditional_generator()


@pytest.fixture(scope="session")
def nested_generator():
    return _nested_generator()


@pytest.fixture(scope="session")
def sequence_model():
    return _sequence_model()


def to_numpy(value):
    """Backend tensor(s) -> writable numpy array(s)."""
    if isinstance(value, (list, tuple)):
        return [to_numpy(v) for v in value]
    return np.array(keras.ops.convert_to_numpy(value))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Caches (converted weights, influence maps) go to a temporary folder, not the user's."""
    previous = os.environ.get("TFCF_CACHE_DIR")
    os.environ["TFCF_CACHE_DIR"] = str(tmp_path_factory.mktemp("tfcf_cache"))
    yield
    if previous is None:
        os.environ.pop("TFCF_CACHE_DIR", None)
    else:
        os.environ["TFCF_CACHE_DIR"] = previous


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def mini_biggan(tmp_path_factory):
    """(path, NumPy weights) of the miniature BigGAN-deep in TF1 Hub format (tests/hub_fixtures)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TF-Hub modules need the TensorFlow backend")
    from hub_fixtures import build_mini_biggan

    path = tmp_path_factory.mktemp("hub") / "mini_biggan"
    return path, build_mini_biggan(path)


@pytest.fixture(scope="session")
def mini_classifier(tmp_path_factory):
    """(path, size, kernel, bias) of a miniature TF-Hub classifier (TF2 SavedModel, 224 px)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TF-Hub modules need the TensorFlow backend")
    from hub_fixtures import build_mini_classifier

    path = tmp_path_factory.mktemp("hub") / "mini_classifier"
    kernel, bias = build_mini_classifier(path, size=224)
    return path, 224, kernel, bias
