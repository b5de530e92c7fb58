"""Every `Examples:` line of every command's --help runs as written, with tiny settings appended.

The files the examples name (g.weights.h5, net_g.npz, gen.keras, faces64/, a TF-Hub cache, ...)
are made in a temporary working folder: random weights of the architecture each example names,
the miniature BigGAN and classifier of tests/hub_fixtures.py, a few aligned faces.
"""

import gzip
import os
import re
import shlex
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from tfcf.experiments.cli import COMMANDS, main

# option -> tiny value, appended when the command has the option (click keeps the last value)
TINY = {"--samples": "16", "--pairs": "16", "--repeats": "2", "--examples": "2", "--show": "4",
        "--num-images": "8", "--draws": "2", "--steps": "2", "--batch-size": "8",
        "--checkpoint-every": "1", "--blocks": "1", "--block": "1", "--ks": "2,3",
        "--extractor": "port", "--batch-size-fid": None}
BIGGAN_COMMANDS = ("fig5", "fig6", "fig14", "fig16", "table3")


def examples():
    """(command, example line) for every Examples: line of every command."""
    import click

    context = click.Context(main)
    found = []
    for name in COMMANDS:
        command = main.get_command(context, name)
        text = command.help or ""
        if "Examples:" not in text:
            continue
        for line in text.split("Examples:", 1)[1].splitlines():
            line = line.split("  #")[0].strip()
            if "tfcf " in line:
                found.append((name, line))
    return found


def _write_idx(folder, count=32):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", count), ("t10k", 8)):
        pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(struct.pack(">IIII", 2051, n, 28, 28) + pixels.tobytes())
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(struct.pack(">II", 2049, n) + rng.integers(0, 10, n, np.uint8).tobytes())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, mini_biggan, mini_classifier):
    """A working folder holding every file the examples name."""
    import hashlib
    import shutil

    import keras

    from tfcf.biggan import BIGGAN_HANDLES
    from tfcf.imagenet import CLASSIFIERS
    from tfcf.models import began, dcgan, vae
    from tfcf.models.tensorlayer_io import save_tensorlayer_npz

    root = tmp_path_factory.mktemp("examples")
    cwd = root / "work"
    cwd.mkdir()
    dcgan.build_generator("paper_celeba", seed=1).save_weights(cwd / "g.weights.h5")
    dcgan.build_discriminator("paper_celeba", seed=1).save_weights(cwd / "d.weights.h5")
    dcgan.build_generator("paper_cifar10", seed=1).save_weights(cwd / "cifar_g.weights.h5")
    began.build_generator("celeba64", seed=1).save_weights(cwd / "began.weights.h5")
    for name in ("decoder", "a", "b"):
        vae.build_decoder("paper_celeba", seed=len(name)).save_weights(cwd / f"{name}.weights.h5")
    vae.build_encoder("paper_celeba", seed=1).save_weights(cwd / "encoder.weights.h5")
    save_tensorlayer_npz(dcgan.build_generator("tensorlayer", seed=1), cwd / "net_g.npz")
    z = keras.Input((16,), name="z")
    x = keras.layers.Dense(4 * 4 * 8, activation="relu", name="block1")(z)
    x = keras.layers.Reshape((4, 4, 8))(x)
    x = keras.layers.Conv2DTranspose(8, 4, 2, padding="same", activation="relu", name="block2")(x)
    x = keras.layers.Conv2DTranspose(3, 4, 2, padding="same", activation="tanh", name="rgb")(x)
    keras.Model(z, x).save(cwd / "gen.keras")
    faces = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    for folder in (cwd / "faces64", root / "shared" / "data" / "faces64"):
        folder.mkdir(parents=True)
        np.savez(folder / "faces64_000.npz", images=faces)
    celeba = cwd / "img_align_celeba"
    celeba.mkdir()
    from PIL import Image

    for index in range(12):
        Image.fromarray(np.repeat(faces[index], 3, axis=0)[:218, :178]).save(
            celeba / f"{index:06d}.jpg")
    _write_idx(root / "fashion-mnist")
    hub_cache = root / "tfhub"
    for handle in (BIGGAN_HANDLES[256], BIGGAN_HANDLES[128]):
        shutil.copytree(mini_biggan[0], hub_cache / hashlib.sha1(handle.encode()).hexdigest())
    from hub_fixtures import build_mini_classifier

    for name, (handle, size) in CLASSIFIERS.items():  # each at its own input size
        build_mini_classifier(hub_cache / hashlib.sha1(handle.encode()).hexdigest(), size=size)
    shutil.copytree(mini_classifier[0], hub_cache / "resnet_v2_50")
    return root, cwd, hub_cache


def _arguments(name, line, workspace):
    root, cwd, hub_cache = workspace
    words = shlex.split(line.replace("/data/tfhub", str(hub_cache)))
    environment = {}
    while "=" in words[0] and not words[0].startswith("-"):
        key, value = words.pop(0).split("=", 1)
        environment[key] = value
    assert words[0] == "tfcf" and words[1] == name, line
    arguments = words[2:]
    import click

    command = main.get_command(click.Context(main), name)
    options = {opt for parameter in command.params for opt in parameter.opts}
    tiny = [item for option, value in TINY.items() if option in options and value is not None
            for item in (option, value)]
    if name == "reproduce":
        tiny = ["--only", "model1"] + (["--tiny"] if "--full" not in arguments else [])
    if name == "train":
        tiny += ["--count", "16"]
    if name == "fig5":
        tiny += ["--pair", "1,2"]
    if name == "stylegan-modules":   # a 1024-px generator: the smallest settings it takes
        tiny = ["--resolution", "64", "--map-size", "32", "--samples", "3", "--pairs", "1",
                "--channel-stride", "64", "--ks", "2", "--stability-ks", "2", "--repeats", "1",
                "--magnitude-ks", "", "--examples", "1", "--locality-pairs", "1"]
    if "--outdir" not in arguments:
        tiny += ["--outdir", str(cwd / "outputs" / re.sub(r"\W+", "_", line))]
    return arguments + tiny, environment


EXAMPLES = examples()


def test_every_command_has_examples():
    assert {name for name, _ in EXAMPLES} == set(COMMANDS)


@pytest.mark.slow  # every example of every command: several minutes on 2 cores
@pytest.mark.parametrize("name, line", EXAMPLES, ids=[line for _, line in EXAMPLES])
def test_the_example_runs(name, line, workspace, monkeypatch):
    import tfcf.data

    import importlib.util

    if name == "stylegan-modules" and importlib.util.find_spec("random_face") is None:
        pytest.skip("random-face is not installed (make installs it with --no-deps)")
    root, cwd, hub_cache = workspace
    arguments, environment = _arguments(name, line, workspace)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(hub_cache))
    monkeypatch.setenv("TFCF_OFFLINE", "1")
    monkeypatch.setattr(tfcf.data, "FASHION_MNIST_DIR", root / "fashion-mnist")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, [name] + arguments)
    assert result.exit_code == 0, (arguments, result.output[-3000:], repr(result.exception))
