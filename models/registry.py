"""Generators the experiments can analyse, by name or by file.

    spec = load_generator("face_dcgan")                      # pretrained, offline
    spec = load_generator("vae:paper_celeba", weights="decoder.weights.h5")
    spec = load_generator("my_generator.keras", layer="block3")
    images = spec.model(spec.sample_latent(8, seed=0))
    spec.layer, spec.layer_pair                              # default intervention layers

Names: ``face_dcgan``; ``mobile_stylegan`` (1024 px faces; ``mobile_stylegan:128`` averages them
to 128 px inside the model); a model trained by tfcf and committed under ``models/weights/`` by its
folder name (``dcgan_paper_celeba_faces``), or one of its checkpoints along training
(``dcgan_dropout_fashion@500``: the step); ``dcgan:<preset>``, ``vae:<preset>`` (the decoder),
``began:<preset>`` with ``weights`` (a Keras ``.weights.h5`` file or a tensorlayer ``.npz``
checkpoint); or a path to a Keras ``.keras`` model file.

The families tfcf builds and trains (``dcgan``, ``vae``, ``began``) are described once, in
:data:`FAMILIES`: their builders, the network that maps images back, their trainer and latent
prior. :func:`build_network` builds their networks; ``tfcf.models.trainers`` their trainers.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np

GENERATORS = ("face_dcgan", "mobile_stylegan[:<size>]", "<committed>[@<step>]", "dcgan:<preset>",
              "vae:<preset>",
              "began:<preset>", "<file>.keras")
WEIGHTS_ROOT = Path(__file__).resolve().parent / "weights"
WEIGHTS_ENVIRONMENT = "TFCF_WEIGHTS_DIR"


def weights_root():
    """Where the committed trained models are looked for: ``$TFCF_WEIGHTS_DIR``, else the
    ``weights/`` folder shipped inside the installed package (``tfcf/models/weights``).

        weights_root() / "dcgan_paper_celeba_faces" / "MODEL_CARD.json"
    """
    import os

    configured = os.environ.get(WEIGHTS_ENVIRONMENT)
    return Path(configured) if configured else WEIGHTS_ROOT


def _short(error):
    """The first line of an error message, cut to 300 characters (no dumped arrays)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{type(error).__name__}: {text[:300]}"


def load_weights_file(model, path, expected):
    """Load a Keras ``.weights.h5`` (or tensorlayer ``.npz``) file into ``model``, or raise a
    one-paragraph ValueError naming the file and what was expected.

        load_weights_file(model, "g.weights.h5", "the dcgan:paper_celeba generator")
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path} (expected {expected})")
    try:
        if path.suffix == ".npz":
            from tfcf.models.tensorlayer_io import load_tensorlayer_npz

            load_tensorlayer_npz(model, path)
            return
        if not path.name.endswith(".weights.h5"):
            raise ValueError("Keras 3 weights files end in .weights.h5")
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001 - h5py, Keras and numpy raise many kinds
        shapes = ", ".join(str(tuple(w.shape)) for w in model.weights[:3])
        raise ValueError(
            f"cannot load the weights file {path} ({_short(error)}). Expected {expected}: a Keras "
            f".weights.h5 file (or a tensorlayer .npz checkpoint) holding {len(model.weights)} "
            f"arrays for the model {model.name!r}, the first of shapes {shapes}.") from None


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
    card: dict = None        # committed models: their model card
    folder: str = None       # committed models: their folder under the weights root
    step: int = None         # committed models: the checkpoint's step (None: the final weights)

    @property
    def has_encoder(self):
        """True for a committed VAE's final weights, whose encoder maps real images to latents
        (only the final encoder is published, so not for a checkpoint ``name@step``)."""
        return bool(self.card) and self.step is None and "encoder_weights" in self.card \
            and get_family(self.card["family"]).inverse_role == "encoder"

    def real_latents(self, num, seed=0):
        """``(z, images, note)``: encoder means of ``num`` real images the VAE was not trained on.

            z, faces, note = spec.real_latents(64, seed=0)    # faces: uint8 [64, H, W, 3]

        The images are the held-out part of the model's training data (the card's ``data`` and
        ``holdout``: the last ``holdout`` images; for Fashion-MNIST the test split), drawn with
        ``seed``; ``note`` says which, and says so when the card holds out nothing (then the
        images come from the training set). Raises LookupError when the model has no encoder
        or its data cannot be found (:func:`resolve_data` says where it looked).
        """
        if not self.has_encoder:
            raise LookupError(f"{self.name} has no encoder (only committed VAEs have one)")
        pool, note = held_out_images(self.card)
        if len(pool) < num:
            raise LookupError(f"{self.name}: {note} holds {len(pool)} images, fewer than {num}")
        rows = np.sort(np.random.default_rng(seed).choice(len(pool), num, replace=False))
        images = pool[rows]
        size = int(self.model.outputs[0].shape[1])
        if images.shape[1] != size:
            from tfcf.data import square_resize

            images = np.stack([square_resize(image, size) for image in images])
        encoder = load_inverse_network(self.folder)
        mean, _ = encoder(images.astype("float32") / 127.5 - 1.0, training=False)
        return np.asarray(mean, dtype="float32"), images, note

    def sample_latent(self, num, seed=0):
        """``num`` latent vectors from the generator's prior, reproducible from ``seed``."""
        rng = np.random.default_rng(seed)
        shape = (num,) + tuple(self.model.inputs[0].shape[1:])
        if self.latent == "normal":
            return rng.standard_normal(shape).astype("float32")
        if self.latent == "uniform":
            return rng.uniform(-1.0, 1.0, shape).astype("float32")
        raise ValueError(f"unknown latent distribution {self.latent!r} (valid: normal, uniform)")


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family tfcf builds and trains: an entry of :data:`FAMILIES`.

        family = get_family("vae")
        family.module.PRESETS["paper_celeba"], family.inverse_role     # ..., "encoder"

    ``generator`` and ``inverse`` name the builders in ``tfcf.models.<name>`` of the generator
    (the VAE's decoder) and of the network that maps images back, whose role (``"discriminator"``
    or ``"encoder"``) is also the trainer's attribute holding it and the model card's
    ``<role>_weights`` key. ``trainer`` is the :mod:`tfcf.train` class, taking the networks in
    the order ``trainer_networks``, and the options ``trainer_options`` (those the preset holds,
    e.g. the VAE's beta, default to its values); ``generator_options`` are the options only the
    generator builder takes.
    """

    name: str
    generator: str
    inverse: str
    inverse_role: str
    trainer: str
    trainer_networks: tuple = ("generator", "inverse")
    trainer_options: tuple = ()
    generator_options: tuple = ()
    latent: str = "normal"

    @property
    def module(self):
        """The family's module, ``tfcf.models.<name>`` (its PRESETS and builders)."""
        return importlib.import_module(f"tfcf.models.{self.name}")

    def preset(self, preset):
        """The configuration of ``preset``; a ValueError naming the valid ones otherwise."""
        presets = self.module.PRESETS
        if preset not in presets:
            raise ValueError(f"unknown {self.name} preset {preset!r}; valid: {', '.join(presets)}")
        return presets[preset]


FAMILIES = {family.name: family for family in (
    Family("dcgan", "build_generator", "build_discriminator", "discriminator", "GANTrainer",
           generator_options=("dropout",)),
    Family("vae", "build_decoder", "build_encoder", "encoder", "VAETrainer",
           trainer_networks=("inverse", "generator"),
           trainer_options=("beta", "objective", "sdr_layers")),
    Family("began", "build_generator", "build_discriminator", "discriminator", "BEGANTrainer",
           latent="uniform", trainer_options=("gamma",)),
)}


def get_family(name):
    """The :class:`Family` called ``name``; a ValueError naming the valid ones otherwise.

        get_family("began").latent                   # "uniform"
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def build_network(family, preset, part="generator", dropout=None, seed=0):
    """An untrained network of a family: its generator (the VAE's decoder), or with
    ``part="inverse"`` the network that maps images back (discriminator or encoder).

        decoder = build_network("vae", "paper_celeba", seed=1)
        discriminator = build_network("dcgan", "paper_cifar10", part="inverse")

    ``seed`` seeds the initialisers; ``dropout`` is for the generators that take it (DCGAN) and
    ignored by the others.
    """
    entry = get_family(family)
    if part not in ("generator", "inverse"):
        raise ValueError(f"unknown part {part!r}; valid: generator, inverse")
    options = {"seed": seed}
    if part == "generator" and dropout is not None and "dropout" in entry.generator_options:
        options["dropout"] = dropout
    return getattr(entry.module, getattr(entry, part))(preset, **options)


def _load_weights(model, weights, name):
    if weights is None:
        raise ValueError(
            f"generator {name!r} needs --weights: a Keras .weights.h5 file or a tensorlayer .npz "
            "checkpoint of that architecture (an untrained network has no modules to find)"
        )
    load_weights_file(model, weights, f"weights of the {name} architecture")


def committed_models(root=None):
    """``{folder name: model card}`` of the trained models committed under ``models/weights/``.

    Example::

        cards = committed_models()
        cards["dcgan_paper_celeba_faces"]["steps"], cards["vae_sdr_c64_b0.1_fashion"]["beta"]
    """
    import json

    root = Path(root) if root is not None else weights_root()
    cards = {}
    for path in sorted(root.glob("*/MODEL_CARD.json")):
        cards[path.parent.name] = json.loads(path.read_text())
    return cards


def resolve_data(spec):
    """A data spec (``faces64:<folder>``, ``fashion-mnist``...) whose folder exists here.

        resolve_data("faces64:../shared/data/faces64")    # as written, else found elsewhere

    The folder as written (relative to the working folder), else relative to the repository
    checkout the package runs from, else (for faces64) ``$TFCF_REAL_DATA`` or
    ``<tfcf cache>/faces64``. Raises LookupError naming every place it looked.
    """
    import os

    from tfcf.io import cache_dir

    kind, _, rest = str(spec).partition(":")
    if kind == "fashion-mnist":
        return spec
    candidates = [Path(rest)]
    if not Path(rest).is_absolute():
        candidates.append(WEIGHTS_ROOT.parent.parent / rest)
    if kind == "faces64":
        if os.environ.get("TFCF_REAL_DATA"):
            candidates.append(Path(os.environ["TFCF_REAL_DATA"]))
        candidates.append(cache_dir() / "faces64")
    for candidate in candidates:
        if candidate.is_dir():
            return f"{kind}:{candidate}"
    raise LookupError(f"the data {spec!r} was not found; looked in "
                      + ", ".join(str(c) for c in candidates)
                      + " (set $TFCF_REAL_DATA to the aligned faces' folder)")


def held_out_images(card):
    """``(images, note)``: the real images a committed model was not trained on.

        faces, note = held_out_images(committed_models()["vae_paper_celeba_mse"])
    """
    from tfcf.data import held_out_images as last_images, load_dataset, load_fashion_mnist

    data = resolve_data(card["data"])
    holdout = int(card.get("holdout") or 0)
    if data.startswith("fashion-mnist"):
        folder = data.partition(":")[2]
        images = load_fashion_mnist(folder, split="test")[0] if folder else \
            load_fashion_mnist(split="test")[0]
        return images, "the Fashion-MNIST test split (not trained on)"
    images = load_dataset(data)
    if holdout:
        return last_images(images, holdout), f"the last {holdout} images of {card['data']} " \
                                             "(held out of training)"
    return images, f"{card['data']} (this model was trained on all of it: no held-out images)"


def _committed_listing():
    """The committed models' names, or where they were looked for and how to get them."""
    names = sorted(committed_models())
    if names:
        return ", ".join(names)
    return (f"none were found in {weights_root()} (${WEIGHTS_ENVIRONMENT}, else the package's "
            "tfcf/models/weights). They ship with tfcf: install it from its repository "
            "(`pip install <checkout>` or the wheel built from it), or point "
            f"${WEIGHTS_ENVIRONMENT} at a copy of the repository's models/weights folder")


def _split_committed(name):
    """``(folder, card, step)`` when ``name`` is ``<committed>[@<step>]``, else None."""
    folder, at, step = name.partition("@")
    cards = committed_models()
    if folder not in cards:
        return None
    card = cards[folder]
    if not at:
        return folder, card, None
    available = sorted(int(key) for key in card.get("checkpoints", {}))
    if not step.isdigit() or int(step) not in available:
        raise ValueError(f"{folder} has no checkpoint at step {step!r}; committed steps: "
                         f"{available or 'none'} (or no @step for the final weights)")
    return folder, card, int(step)


def _family_spec(name, family, preset, model, description):
    """The spec of a dcgan/vae/began generator: its preset's default intervention layers."""
    entry = get_family(family)
    module = entry.module
    if hasattr(module, "INTERMEDIATE_LAYERS"):  # a pair (BEGAN)
        pair = tuple(module.INTERMEDIATE_LAYERS[preset])
        return GeneratorSpec(name, model, pair[0], layer_pair=pair, latent=entry.latent,
                             description=description)
    return GeneratorSpec(name, model, module.INTERMEDIATE_LAYER[preset], latent=entry.latent,
                         description=description)


def _committed_spec(folder, card, step):
    model = build_network(card["family"], card["preset"], dropout=card.get("dropout"))
    file = card["generator_weights"] if step is None else card["checkpoints"][str(step)]
    load_weights_file(model, weights_root() / folder / file,
                      f"the committed {card['family']}:{card['preset']} generator")
    description = (f"{card['family']} {card['preset']} trained by tfcf on {card['data']} for "
                   f"{card['steps'] if step is None else step} steps (models/weights/{folder})")
    spec = _family_spec(folder if step is None else f"{folder}@{step}", card["family"],
                        card["preset"], model, description)
    spec.card, spec.folder, spec.step = card, folder, step
    return spec


def _mobile_stylegan_spec(name, size):
    """MobileStyleGAN (random-face, 1024 px), truncation 0.7; ``mobile_stylegan:<size>`` averages
    the image down to ``size`` px inside the model (influence maps of 512 channels at 1024 px
    would need 13 GB)."""
    from tfcf.models import mobile_stylegan

    if size and not size.isdigit():
        raise ValueError(f"{name!r}: the part after ':' is the output size in pixels, a divisor "
                         "of 1024 (e.g. mobile_stylegan:128)")
    model = mobile_stylegan.load_generator(truncation=mobile_stylegan.DEFAULT_TRUNCATION,
                                           output_size=int(size) if size else None)
    shown = f", averaged to {size} px" if size else ""
    return GeneratorSpec(
        name, model, mobile_stylegan.INTERMEDIATE_LAYER, layer_pair=mobile_stylegan.LAYER_PAIR,
        description=("MobileStyleGAN (random-face 2021.7.21.1, FFHQ 1024 px, OpenVINO IR "
                     f"imported into Keras), truncation {mobile_stylegan.DEFAULT_TRUNCATION}"
                     f"{shown}"))


def load_generator(name, layer=None, weights=None):
    """Load a generator by registry name or from a ``.keras`` file (see the module docstring).

    Example::

        spec = load_generator("face_dcgan")          # pretrained 64x64 face DCGAN
    """
    name = str(name)
    family, _, preset = name.partition(":")
    committed = _split_committed(name)
    if committed is not None:
        if weights is not None:
            raise ValueError(f"{name!r} is a committed model with its own weights; pass --weights "
                             f"with {committed[1]['family']}:{committed[1]['preset']} instead")
        spec = _committed_spec(*committed)
    elif name == "face_dcgan":
        from tfcf.models import face_dcgan

        spec = GeneratorSpec(
            "face_dcgan", face_dcgan.load_pretrained(), face_dcgan.INTERMEDIATE_LAYER,
            layer_pair=("main.8", "main.11"),
            description="pretrained 64x64 face DCGAN (gan-face-generate 1.1.1, DigiFace-1M)",
        )
    elif family == "mobile_stylegan":
        spec = _mobile_stylegan_spec(name, preset)
    elif family in FAMILIES:
        preset = preset or next(iter(FAMILIES[family].module.PRESETS))
        model = build_network(family, preset)
        _load_weights(model, weights, name)
        spec = _family_spec(name, family, preset, model,
                            f"{family} {preset} generator, weights {weights}")
    elif name.endswith(".keras") or Path(name).is_file():
        import keras

        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"no Keras model file at {path}")
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"cannot load the Keras model file {path} ({_short(error)}); "
                             "expected a model saved with model.save('<name>.keras')") from None
        if layer is None:
            raise ValueError(f"a model loaded from {path} needs --layer (a layer name of it)")
        spec = GeneratorSpec(path.stem, model, layer, description=f"Keras model file {path}")
    else:
        raise ValueError(f"unknown generator {name!r}: valid names are {list(GENERATORS)}; "
                         f"committed: {_committed_listing()}")
    if layer is not None:
        spec.layer = layer
    return spec


INVERSE_NETWORKS = ("<committed> (its discriminator or encoder)", "dcgan:<preset> (discriminator)",
                    "vae:<preset> (encoder)", "<file>.keras")


def load_inverse_network(name, weights=None):
    """The network that maps images back (a discriminator or an encoder), for SDR comparisons.

    Example::

        discriminator = load_inverse_network("dcgan:tensorlayer", "net_d.npz")
        encoder = load_inverse_network("vae:paper_celeba", "encoder.weights.h5")
    """
    name = str(name)
    family, _, preset = name.partition(":")
    committed = _split_committed(name)
    if committed is not None:
        folder, card, step = committed
        role = get_family(card["family"]).inverse_role
        key = f"{role}_weights"
        if step is not None or key not in card:
            raise ValueError(f"{name!r}: only the final {role} of a committed model is published")
        model = build_network(card["family"], card["preset"], part="inverse")
        load_weights_file(model, weights_root() / folder / card[key],
                          f"the committed {card['family']}:{card['preset']} {role}")
        return model
    if family in ("dcgan", "vae") and ":" in name:  # BEGAN's: as a committed model only
        preset = preset or next(iter(FAMILIES[family].module.PRESETS))
        model = build_network(family, preset, part="inverse")
        _load_weights(model, weights, name)
        return model
    if name.endswith(".keras"):
        import keras

        if not Path(name).is_file():
            raise FileNotFoundError(f"no Keras model file at {name}")
        try:
            return keras.saving.load_model(name, compile=False)
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"cannot load the Keras model file {name} ({_short(error)}); "
                             "expected a model saved with model.save('<name>.keras')") from None
    raise ValueError(f"unknown discriminator/encoder {name!r}: valid names are "
                     f"{list(INVERSE_NETWORKS)}")
