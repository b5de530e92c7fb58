"""Generators the experiments can analyse, by name or by file.

    spec = load_generator("face_dcgan")
    images = spec.model(spec.sample_latent(8, seed=0))
    spec.layer                              # the default layer to intervene on
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

GENERATORS = ("face_dcgan",)


@dataclasses.dataclass
class GeneratorSpec:
    """A generator with its default intervention layer and latent distribution."""

    name: str
    model: object
    layer: str
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


def load_generator(name, layer=None):
    """Load a generator by registry name or from a ``.keras`` file.

    Example::

        spec = load_generator("face_dcgan")          # pretrained 64x64 face DCGAN
        spec = load_generator("my_generator.keras", layer="block3")
    """
    if name == "face_dcgan":
        from models import face_dcgan

        model = face_dcgan.load_pretrained()
        spec = GeneratorSpec(
            "face_dcgan", model, face_dcgan.INTERMEDIATE_LAYER,
            description="pretrained 64x64 face DCGAN (gan-face-generate 1.1.1, DigiFace-1M)",
        )
    elif str(name).endswith(".keras") or Path(str(name)).is_file():
        import keras

        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"no Keras model file at {path}")
        model = keras.saving.load_model(path, compile=False)
        if layer is None:
            raise ValueError(f"a model loaded from {path} needs --layer (a layer name of it)")
        spec = GeneratorSpec(path.stem, model, layer, description=f"Keras model file {path}")
    else:
        raise ValueError(
            f"unknown generator {name!r}: valid names are {list(GENERATORS)}, or a path to a "
            "Keras .keras model file"
        )
    if layer is not None:
        spec.layer = layer
    return spec
