"""tfcf.models.mobile_stylegan: the Keras import of random-face's MobileStyleGAN matches OpenVINO.

The real-package tests skip when random-face or OpenVINO is missing. OpenVINO's CPU plugin runs
in bfloat16 by default on CPUs that have it (this one does): the reference here is its float32
mode (INFERENCE_PRECISION_HINT f32). The 1024-px synthesis match on 4 samples is `slow` (about a
minute); the mapping network, the cache, the generator's wiring and the command run by default.
"""

import importlib.util
import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import tfcf
from tfcf.models import mobile_stylegan

HAS_PACKAGE = importlib.util.find_spec("random_face") is not None
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_package = pytest.mark.skipif(
    not (HAS_PACKAGE and HAS_OPENVINO),
    reason=f"needs random-face and OpenVINO: {mobile_stylegan.PIP_INSTALL}")


def _openvino(network, inputs):
    import openvino as ov

    path = mobile_stylegan.data_dir() / f"{mobile_stylegan.NETWORKS[network]}.xml"
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.concatenate([np.asarray(compiled(inputs[i:i + 1])[0]) for i in range(len(inputs))])


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFCF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mobile_stylegan"


@needs_package
def test_mapping_matches_openvino(private_cache):
    z = np.random.default_rng(0).standard_normal((4, 512)).astype("float32")
    ours = np.asarray(mobile_stylegan.load_mapping()(z))
    np.testing.assert_allclose(ours, _openvino("mapping", z), atol=1e-5, rtol=0)


@needs_package
@pytest.mark.slow
def test_synthesis_matches_openvino_on_four_samples():
    """The 1024-px image, channels-last, from the mapped styles of 4 samples."""
    z = np.random.default_rng(0).standard_normal((4, 512)).astype("float32")
    styles = np.asarray(mobile_stylegan.load_mapping()(z))
    synthesis = mobile_stylegan.load_synthesis()
    ours = synthesis.predict(styles, batch_size=2, verbose=0)
    reference = _openvino("synthesis", styles).transpose(0, 2, 3, 1)
    assert ours.shape == (4, 1024, 1024, 3)
    assert np.abs(ours - reference).max() <= 1e-3
    assert np.mean(np.abs(reference) <= 1.0) > 0.95 and np.abs(reference).max() < 2.5  # ~[-1, 1]


@needs_package
@pytest.mark.slow
def test_linear_shortcut_inside_a_synthesis_block():
    """At Conv_387 (the modulated depthwise convolution of the 64-px block) the shortcut forms
    the hybrids at the pointwise Conv_388; at a block's first LeakyReLU (LeakyRelu_409) it passes
    the style modulation Mul_419 and the depthwise Conv_420 to the pointwise Conv_421; both equal
    the generic path (about 40 s). At the blocks' last LeakyReLU outputs it does not apply (the
    wavelet bands fan out)."""
    from tfcf.influence import shortcut_layer

    synthesis = mobile_stylegan.load_synthesis()
    assert shortcut_layer(synthesis, "LeakyRelu_442") is None
    z = np.random.default_rng(0).standard_normal((4, 512)).astype("float32")
    styles = np.asarray(mobile_stylegan.load_mapping()(z))
    options = dict(channels=[[0], [5], [7, 9]], num_pairs=4, progress=False, batch_size=4)
    for cut, mixing in (("Conv_387", "Conv_388"), ("LeakyRelu_409", "Conv_421")):
        assert shortcut_layer(synthesis, cut) == mixing
        ours, record = tfcf.influence_maps(synthesis, cut, styles, return_record=True,
                                           **options)
        generic = tfcf.influence_maps(synthesis, cut, styles, method="generic", **options)
        assert record.shortcut == mixing
        np.testing.assert_allclose(ours, generic, rtol=1e-4, atol=2e-5)


def test_cache_is_reused_then_rebuilt_when_the_package_files_change(private_cache, tmp_path,
                                                                    monkeypatch):
    import shutil

    from tfcf import openvino_import

    folder = tmp_path / "data"
    folder.mkdir()
    for suffix in (".xml", ".bin"):
        shutil.copy(mobile_stylegan.data_dir() / f"MappingNetwork{suffix}", folder)
    monkeypatch.setattr(mobile_stylegan, "data_dir", lambda: folder)
    calls = []
    original = openvino_import.from_openvino
    monkeypatch.setattr(openvino_import, "from_openvino",
                        lambda *a, **k: calls.append(a) or original(*a, **k))
    first = mobile_stylegan.load_mapping()
    second = mobile_stylegan.load_mapping()
    assert len(calls) == 1 and len(list(private_cache.glob("mapping-*.keras"))) == 1
    z = np.random.default_rng(1).standard_normal((2, 512)).astype("float32")
    np.testing.assert_array_equal(np.asarray(first(z)), np.asarray(second(z)))
    assert second.get_layer("mapping_MatMul_8").name == "mapping_MatMul_8"
    with open(folder / "MappingNetwork.xml", "a") as handle:   # a new package version
        handle.write("\n")
    mobile_stylegan.load_mapping()
    assert len(calls) == 2 and len(list(private_cache.glob("mapping-*.keras"))) == 2
    newest = max(private_cache.glob("mapping-*.keras"), key=lambda p: p.stat().st_mtime)
    newest.write_bytes(b"not a keras file")                   # a corrupt cache is rebuilt
    with pytest.warns(UserWarning, match="unusable"):
        mobile_stylegan.load_mapping()
    assert len(calls) == 3


def _fake_networks(monkeypatch, size=64):
    """Small stand-ins: a mapping 512 -> 512 and a synthesis 512 -> [size, size, 3] with a
    layer named like the real one."""
    keras.utils.set_random_seed(0)
    z = keras.Input((512,))
    mapping = keras.Model(z, keras.layers.Dense(512, name="mapping_MatMul_8")(z), name="mapping")
    style = keras.Input((512,))
    h = keras.layers.Reshape((4, 4, 8))(keras.layers.Dense(128)(style))
    h = keras.layers.LeakyReLU(0.2, name="LeakyRelu_342")(h)
    h = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same")(h)
    image = keras.layers.UpSampling2D(size // 8, interpolation="bilinear")(h)
    synthesis = keras.Model(style, image, name="synthesis")
    monkeypatch.setattr(mobile_stylegan, "load_mapping", lambda: mapping)
    monkeypatch.setattr(mobile_stylegan, "load_synthesis", lambda: synthesis)
    monkeypatch.setattr(mobile_stylegan, "style_mean",
                        lambda **_: np.full((1, 512), 0.25, dtype="float32"))
    return mapping, synthesis


def test_generator_chains_mapping_truncation_synthesis_and_pooling(monkeypatch):
    mapping, synthesis = _fake_networks(monkeypatch)
    generator = mobile_stylegan.load_generator(truncation=0.5, output_size=16)
    z = np.random.default_rng(0).standard_normal((3, 512)).astype("float32")
    style = 0.25 + 0.5 * (np.asarray(mapping(z)) - 0.25)
    full = np.asarray(synthesis(style))
    golden = full.reshape(3, 16, 4, 16, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(np.asarray(generator(z)), golden, atol=1e-5)
    untruncated = mobile_stylegan.load_generator(truncation=None)
    np.testing.assert_allclose(np.asarray(untruncated(z)), np.asarray(synthesis(mapping(z))),
                               atol=1e-6)
    with pytest.raises(ValueError, match="truncation"):
        mobile_stylegan.load_generator(truncation=1.5)
    with pytest.raises(ValueError, match="output_size"):
        mobile_stylegan.load_generator(output_size=100)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps random-face"):
        mobile_stylegan.data_dir()


def test_registry_names(monkeypatch):
    from tfcf.models.registry import load_generator

    _fake_networks(monkeypatch, size=64)
    spec = load_generator("mobile_stylegan:32")
    assert spec.layer == "LeakyRelu_342" and spec.layer_pair == ("LeakyRelu_342", "LeakyRelu_442")
    assert spec.model.output.shape[1:] == (32, 32, 3)
    assert spec.sample_latent(2).shape == (2, 512)
    with pytest.raises(ValueError, match="divisor of 1024"):
        load_generator("mobile_stylegan:big")


def test_stylegan_modules_command_on_a_stand_in(monkeypatch, tmp_path):
    """The command end to end on the small stand-in: files, modules, locality numbers."""
    from tfcf.experiments.cli import main

    _fake_networks(monkeypatch, size=64)
    monkeypatch.setenv("TFCF_CACHE_DIR", str(tmp_path / "cache"))
    outdir = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "stylegan-modules", "--resolution", "64", "--map-size", "32", "--samples", "4",
        "--pairs", "2", "--ks", "2", "--stability-ks", "2", "--repeats", "2",
        "--magnitude-ks", "1,2", "--examples", "2", "--locality-pairs", "3",
        "--outdir", str(outdir)])
    assert result.exit_code == 0, result.output
    results = json.loads((outdir / "results.json").read_text())
    for name in results["files"]:
        assert (outdir / name).stat().st_size > 1000
    module = results["modules"]["2"]
    sizes = module["clustering"]["sizes"]
    assert sum(sizes) == len(results["channels"]) and len(module["locality"]["inside"]) == 2
    assert results["run"]["parameters"]["pairs"] == 2
    bad = CliRunner().invoke(main, ["stylegan-modules", "--examples", "5",
                                    "--locality-pairs", "2", "--outdir", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--locality-pairs" in bad.output
