"""Generators the experiments can analyse, by name or by file.

    spec = load_generator("face_dcgan")                      # pretrained, offline
    spec = load_generator("vae:paper_celeba", weights="decoder.weights.h5")
    spec = load_generator("my_generator.keras", layer="block3")
    images = spec.model(spec.sample_latent(8, seed=0))
    spec.layer, spec.layer_pair                              # default intervention layers

Names: ``face_dcgan``; ``dcgan:<preset>``, ``vae:<preset>`` (the decoder), ``began:<preset>``
with ``weights`` (a Keras ``.weights.h5`` file or a tensorlayer ``.npz`` checkpoint); or a path
to a Keras ``.keras`` model file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

GENERATORS = ("face_dcgan", "dcgan:<preset>", "vae:<preset>", "began:<preset>", "<file>.keras")


@dataclasses.dataclass
class GeneratorSpec:
    """A generator with its default intervention layers and latent distribution."""

    name: str
    model: object
    layer: str
    layer_pair: tuple = ()
    latent: str = "normal"
    value_range: tuple = (-1.0, 1.0)
    description: str = ""

    def sample_latent(self, num, seed=0):
        """``num`` latent vectors from the generator's prior, reproducible from ``seed``."""
        rng = np.random.default_rng(seed)
        shape = (num,) + tuple(self.model.inputs[0].shape[1:])
        if self.latent == "normal":
            return rng.standard_normal(shape).astype("float32")
        if self.latent == "uniform":
            return rng.uniform(-1.0, 1.0, shape).astype("float32")
        raise ValueError(f"unknown latent distribution {self.latent!r} (valid: normal, uniform)")


def _load_weights(model, weights, name):
    if weights is None:
        raise ValueError(
            f"generator {name!r} needs --weights: a Keras .weights.h5 file or a tensorlayer .npz "
            "checkpoint of that architecture (an untrained network has no modules to find)"
        )
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".npz":
        from models.tensorlayer_io import load_tensorlayer_npz

        load_tensorlayer_npz(model, path)
    else:
        model.load_weights(path)


def load_generator(name, layer=None, weights=None):
    """Load a generator by registry name or from a ``.keras`` file (see the module docstring).

    Example::

        spec = load_generator("face_dcgan")          # pretrained 64x64 face DCGAN
    """
    name = str(name)
    family, _, preset = name.partition(":")
    if name == "face_dcgan":
        from models import face_dcgan

        spec = GeneratorSpec(
            "face_dcgan", face_dcgan.load_pretrained(), face_dcgan.INTERMEDIATE_LAYER,
            layer_pair=("main.8", "main.11"),
            description="pretrained 64x64 face DCGAN (gan-face-generate 1.1.1, DigiFace-1M)",
        )
    elif family in ("dcgan", "vae", "began"):
        from models import began, dcgan, vae

        module = {"dcgan": dcgan, "vae": vae, "began": began}[family]
        preset = preset or next(iter(module.PRESETS))
        if family == "vae":
            model = vae.build_decoder(preset)
        else:
            model = module.build_generator(preset)
        _load_weights(model, weights, name)
        if family == "began":
            pair = tuple(began.INTERMEDIATE_LAYERS[preset])
            spec = GeneratorSpec(name, model, pair[0], layer_pair=pair, latent="uniform",
                                 description=f"BEGAN {preset} generator, weights {weights}")
        else:
            spec = GeneratorSpec(name, model, module.INTERMEDIATE_LAYER[preset],
                                 description=f"{family} {preset} generator, weights {weights}")
    elif name.endswith(".keras") or Path(name).is_file():
        import keras

        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"no Keras model file at {path}")
        model = keras.saving.load_model(path, compile=False)
        if layer is None:
            raise ValueError(f"a model loaded from {path} needs --layer (a layer name of it)")
        spec = GeneratorSpec(path.stem, model, layer, description=f"Keras model file {path}")
    else:
        raise ValueError(f"unknown generator {name!r}: valid names are {list(GENERATORS)}")
    if layer is not None:
        spec.layer = layer
    return spec


INVERSE_NETWORKS = ("dcgan:<preset> (discriminator)", "vae:<preset> (encoder)", "<file>.keras")


def load_inverse_network(name, weights=None):
    """The network that maps images back (a discriminator or an encoder), for SDR comparisons.

    Example::

        discriminator = load_inverse_network("dcgan:tensorlayer", "net_d.npz")
        encoder = load_inverse_network("vae:paper_celeba", "encoder.weights.h5")
    """
    name = str(name)
    family, _, preset = name.partition(":")
    if family in ("dcgan", "vae") and ":" in name:
        from models import dcgan, vae

        module = {"dcgan": dcgan, "vae": vae}[family]
        preset = preset or next(iter(module.PRESETS))
        model = dcgan.build_discriminator(preset) if family == "dcgan" else vae.build_encoder(preset)
        _load_weights(model, weights, name)
        return model
    if name.endswith(".keras"):
        import keras

        if not Path(name).is_file():
            raise FileNotFoundError(f"no Keras model file at {name}")
        return keras.saving.load_model(name, compile=False)
    raise ValueError(f"unknown discriminator/encoder {name!r}: valid names are "
                     f"{list(INVERSE_NETWORKS)}")
