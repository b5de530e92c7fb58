"""TF-Hub BigGAN-deep and classifiers on miniature modules in the real formats (tests/hub_fixtures)."""

import hashlib
import shutil

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="TF-Hub modules need the TensorFlow backend")

BIGGAN_256 = "https://tfhub.dev/deepmind/biggan-deep-256/1"


@pytest.fixture(scope="module")
def biggan(mini_biggan):
    from tfcf.biggan import load_biggan

    return load_biggan(str(mini_biggan[0]))


@pytest.fixture(scope="module")
def latents():
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(6, 128)) * 0.5).astype("float32")
    y = np.eye(1000, dtype="float32")[[105, 850, 7, 9, 105, 850]]
    return z, y


def test_module_output_matches_numpy_network(biggan, mini_biggan, latents):
    """The TF1 Hub-format export computes the NumPy reference network (fixture sanity)."""
    from hub_fixtures import reference_forward

    z, y = latents
    images = biggan.generate(z, y, truncation=0.37, batch_size=4)
    np.testing.assert_allclose(images, reference_forward(mini_biggan[1], z, y, 0.37), atol=1e-4)
    assert biggan.blocks == [0, 1, 2, 3]
    assert biggan.conv_tensor(2, 1) == "Generator/GBlock_2/conv1/BiasAdd:0"
    assert biggan.conv_tensor(0, 3) == "Generator/GBlock/conv3/BiasAdd:0"


def test_pruned_head_and_tail_compose_to_the_full_module(biggan, latents):
    import tensorflow as tf

    z, y = latents
    truncation = tf.constant(0.5)
    cut = biggan.conv_tensor(1, 2)
    head = biggan.prune([], cut)
    tail = biggan.prune([cut], biggan.output_name)
    state = head(tf.constant(z), tf.constant(y), truncation)[0]
    assert state.shape == (6, 8, 8, 16)
    composed = tail(state, tf.constant(z), tf.constant(y), truncation)[0].numpy()
    np.testing.assert_allclose(composed, biggan.generate(z, y, 0.5), atol=1e-5)
    model = biggan.keras_model(1, 0.5)
    np.testing.assert_allclose(model.predict([z, y], verbose=0), composed, atol=1e-5)


def test_gblock_hybrid_equals_hand_computed_swap(biggan, mini_biggan, latents):
    """Module channels of conv1 and conv2 from the source pass; z, y of the base downstream."""
    import tfcf
    from hub_fixtures import reference_forward

    weights = mini_biggan[1]
    z, y = latents
    base, source = (z[:3], y[:3]), (z[3:], y[3:])
    source_values = {}

    def record(name, value):
        source_values[name] = value
        return value

    reference_forward(weights, *source, 0.6, override=record)
    module = {"GBlock_2/conv1": [0, 3], "GBlock_2/conv2": [5]}

    def swap(name, value):
        if name in module:
            value = value.copy()
            value[..., module[name]] = source_values[name][..., module[name]]
        return value

    golden = reference_forward(weights, *base, 0.6, override=swap)
    model = biggan.keras_model(2, 0.6)
    ours = tfcf.hybrid(model, model.cut_layers, [[0, 3], [5]], list(base), list(source))
    np.testing.assert_allclose(ours, golden, atol=1e-4)
    assert np.abs(golden - reference_forward(weights, *base, 0.6)).max() > 0.05


def test_gblock_influence_map_equals_numpy(biggan, mini_biggan, latents):
    """Eq. 2 for channel 4 of GBlock_1/conv1 over 5 drawn pairs, by hand in NumPy."""
    import tfcf
    from hub_fixtures import reference_forward
    from tfcf.influence import draw_pairs

    weights = mini_biggan[1]
    z, y = latents
    model = biggan.keras_model(1, 0.5)
    ours = tfcf.influence_maps(model, "gblock1_conv1", [z, y], channels=[[4]], num_pairs=5,
                               seed=2, progress=False)
    base_index, source_index = draw_pairs(len(z), 5, 2)
    total = 0.0
    for b, s in zip(base_index, source_index):
        values = {}
        reference_forward(weights, z[s:s + 1], y[s:s + 1], 0.5,
                          override=lambda n, v: values.setdefault(n, v))

        def swap(name, value):
            if name == "GBlock_1/conv1":
                value = value.copy()
                value[..., 4] = values[name][..., 4]
            return value

        hybrid = reference_forward(weights, z[b:b + 1], y[b:b + 1], 0.5, override=swap)
        total = total + np.abs(hybrid - reference_forward(weights, z[b:b + 1], y[b:b + 1], 0.5))
    np.testing.assert_allclose(ours[0], (total[0] / 5).mean(axis=-1), atol=1e-4)


def test_gblock_modules_partition_both_layers(biggan, latents):
    from tfcf.biggan import cross_hybrids, gblock_modules

    z, y = latents
    model = biggan.keras_model(1, 0.5)
    modules, clustering, maps, names = gblock_modules(model, z, y, k=3, num_pairs=6,
                                                      progress=False)
    assert len(modules) == 3 and all(len(m) == 2 for m in modules)
    listed = sorted(f"gblock1_conv{l + 1}:{c}" for m in modules for l, ch in enumerate(m)
                    for c in ch)
    assert listed == sorted(names) and len(set(listed)) == len(listed) == len(maps)
    hybrids = cross_hybrids(model, modules, [z[:2], y[:2]], [z[2:4], y[2:4]])
    assert hybrids.shape == (3, 2, 16, 16, 3)
    import tfcf

    np.testing.assert_allclose(
        hybrids[1], tfcf.hybrid(model, model.cut_layers, modules[1], [z[:2], y[:2]],
                                [z[2:4], y[2:4]]), atol=1e-6)


def test_gblock_modules_bound_the_hybrids_per_call(biggan, latents, monkeypatch):
    """At 256 px a hybrid needs ~140 MB downstream (full-size replica, tools/biggan_replica.py):
    influence_maps' default of 256 per call would peak at ~38 GB. The BigGAN helpers pass
    their own batch_size, 32 by default."""
    import inspect

    import tfcf.influence
    from tfcf.biggan import HYBRID_BATCH, cross_class_hybrids, cross_hybrids, gblock_modules

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        seen.append(kwargs["batch_size"])
        raise Stop

    z, y = latents
    seen = []
    monkeypatch.setattr(tfcf.influence, "influence_maps", spy)
    for batch_size in (5, None):
        with pytest.raises(Stop):
            gblock_modules(biggan.keras_model(1, 0.5), z, y, k=2, num_pairs=6, progress=False,
                           **({"batch_size": batch_size} if batch_size else {}))
    assert seen == [5, HYBRID_BATCH] and HYBRID_BATCH == 32
    for function in (gblock_modules, cross_hybrids, cross_class_hybrids):
        assert inspect.signature(function).parameters["batch_size"].default == HYBRID_BATCH


def test_latents_are_truncated_and_class_major(biggan):
    z, y = biggan.latents(["koala", "teddy bear"], num=50, truncation=0.4, seed=1)
    assert z.shape == (100, 128) and np.abs(z).max() <= 0.8 + 1e-6 and z.std() > 0.2
    np.testing.assert_array_equal(y.argmax(1), [105] * 50 + [850] * 50)
    np.testing.assert_array_equal(y.sum(1), np.ones(100))
    again, _ = biggan.latents(["koala", "teddy bear"], num=50, truncation=0.4, seed=1)
    np.testing.assert_array_equal(z, again)


def test_bad_gblock_and_truncation_are_named(biggan):
    with pytest.raises(ValueError, match=r"no conv1 in Gblock 9 .*Gblocks: \[0, 1, 2, 3\]"):
        biggan.keras_model(9, 0.5)
    with pytest.raises(ValueError, match="truncation must be in"):
        biggan.keras_model(1, 0.0)
    with pytest.raises(ValueError, match="unknown ImageNet class 'kooala'"):
        biggan.latents(["kooala"], 1, 0.5)


def test_biggan_loads_from_the_cache_folder_of_its_handle(mini_biggan, monkeypatch, tmp_path):
    from tfcf.biggan import load_biggan

    folder = tmp_path / hashlib.sha1(BIGGAN_256.encode("utf8")).hexdigest()
    shutil.copytree(mini_biggan[0], folder)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    biggan = load_biggan(offline=True)
    assert biggan.path == folder and biggan.handle == BIGGAN_256
    images = biggan.sample(["cock"], num=2, truncation=0.5, seed=0)
    assert images.shape == (2, 16, 16, 3) and np.abs(images).max() <= 1.0


def test_offline_error_names_the_cache_folder(monkeypatch, tmp_path):
    from tfcf.biggan import load_biggan
    from tfcf.hub import ModuleNotAvailable
    from tfcf.imagenet import load_classifier

    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TFCF_OFFLINE", "1")
    expected = tmp_path / hashlib.sha1(BIGGAN_256.encode("utf8")).hexdigest()
    with pytest.raises(ModuleNotAvailable, match=str(expected)):
        load_biggan()
    handle = "https://tfhub.dev/google/imagenet/nasnet_large/classification/5"
    expected = tmp_path / hashlib.sha1(handle.encode("utf8")).hexdigest()
    with pytest.raises(ModuleNotAvailable, match=str(expected)):
        load_classifier("nasnet_large")


def test_classifier_maps_range_resizes_and_drops_background(mini_classifier):
    """Logits by hand: [-1, 1] -> [0, 1], bilinear resize to 224, 4x4 average pool, dense."""
    import tensorflow as tf

    from tfcf.imagenet import load_classifier

    path, size, kernel, bias = mini_classifier
    classifier = load_classifier("resnet_v2_50", handle=str(path))
    images = np.random.default_rng(0).uniform(-1.3, 1.0, (3, 16, 16, 3)).astype("float32")
    unit = np.clip((images + 1.0) / 2.0, 0.0, 1.0)
    resized = tf.image.resize(unit, (size, size), method="bilinear").numpy()
    pooled = resized.reshape(3, 4, size // 4, 4, size // 4, 3).mean(axis=(2, 4)).reshape(3, -1)
    golden = ((pooled - 0.5) @ kernel + bias)[:, 1:]
    np.testing.assert_allclose(classifier.logits(images, batch_size=2), golden, rtol=1e-4,
                               atol=1e-3)
    probabilities = classifier.predict(images)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(probabilities.argmax(1), golden.argmax(1))
    black = classifier.logits(-np.ones((1, 300, 300, 3), "float32"))
    np.testing.assert_allclose(black, ((0.0 - 0.5) * kernel.sum(0) + bias)[None, 1:], atol=1e-3)


def test_classifier_names_and_errors(mini_classifier):
    from tfcf.imagenet import CLASSIFIERS, class_id, class_name, load_classifier

    assert {n: s for n, (_, s) in CLASSIFIERS.items()} == {
        "inception_v3": 299, "inception_resnet_v2": 299, "nasnet_large": 331,
        "resnet_v2_50": 224}
    assert [class_id(n) for n in ("cock", "ostrich", "koala", "Teddy Bear", "9")] == [
        7, 9, 105, 850, 9]
    assert class_name(850) == "teddy"
    with pytest.raises(ValueError, match="'crane' is ambiguous: 134 .* 517"):
        class_id("crane")
    with pytest.raises(ValueError, match="unknown classifier 'vgg16'; valid: inception_v3"):
        load_classifier("vgg16")
    with pytest.raises(ValueError, match="out of range"):
        class_name(1000)
