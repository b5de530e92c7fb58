"""ImageNet class names and the TF-Hub ImageNet classifiers of the ICLR 2020 paper (Fig. 6, Table 3).

    classifier = load_classifier("resnet_v2_50")        # tfhub.dev, or $TFHUB_CACHE_DIR/<sha1>
    probabilities = classifier.predict(hybrids)          # [N, 1000], hybrids in [-1, 1]
    class_id("teddy"), class_name(850)                   # 850, 'teddy'

Each classifier is a TF-Hub image classification module (TF2 SavedModel, images in [0, 1] at a
fixed size). :class:`HubClassifier` is a Keras 3 layer around it (``hub.KerasLayer`` is a Keras 2
layer and does not fit a Keras 3 model): it maps the generator's value range to [0, 1], resizes
bilinearly to the module's input size (antialiased when shrinking), calls the module and drops
the "background" logit 0 of the 1001-way Google modules, so column ``i`` is ImageNet class ``i``.
TF-Hub modules run under the TensorFlow backend only.
"""

from __future__ import annotations

import functools
from importlib import resources

import keras
import numpy as np

from tfcf.hub import Untracked, load

__all__ = ["CLASSIFIERS", "Classifier", "HubClassifier", "class_id", "class_name",
           "class_names", "load_classifier"]

# name -> (TF-Hub handle, input size). Inputs in [0, 1]; 1001 logits, 0 = background.
CLASSIFIERS = {
    "inception_v3": ("https://tfhub.dev/google/imagenet/inception_v3/classification/5", 299),
    "inception_resnet_v2": (
        "https://tfhub.dev/google/imagenet/inception_resnet_v2/classification/5", 299),
    "nasnet_large": ("https://tfhub.dev/google/imagenet/nasnet_large/classification/5", 331),
    "resnet_v2_50": ("https://tfhub.dev/google/imagenet/resnet_v2_50/classification/5", 224),
}


@functools.lru_cache(maxsize=1)
def class_names():
    """The 1000 ILSVRC-2012 class descriptions in index order ("koala, koala bear, ...").

        class_names()[105]           # 'koala, koala bear, kangaroo bear, native bear, ...'
    """
    text = resources.files("tfcf.resources").joinpath("imagenet_classes.txt").read_text("utf8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt holds {len(names)} classes, expected 1000")
    return tuple(names)


def class_name(index):
    """The short name of class ``index`` (its first synonym).

        class_name(7)                # 'cock'
    """
    index = int(index)
    if not 0 <= index < 1000:
        raise ValueError(f"ImageNet class index {index} is out of range; valid: 0..999")
    return class_names()[index].split(",")[0].strip()


@functools.lru_cache(maxsize=None)
def _synonyms():
    table = {}
    for index, line in enumerate(class_names()):
        for synonym in line.split(","):
            table.setdefault(synonym.strip().lower(), []).append(index)
    return table


def class_id(label):
    """An ImageNet class index from an index or any of its synonyms (case-insensitive).

        class_id("koala"), class_id("teddy bear"), class_id(9)      # 105, 850, 9
    """
    if isinstance(label, (int, np.integer)) or (isinstance(label, str) and label.isdigit()):
        index = int(label)
        class_name(index)
        return index
    matches = _synonyms().get(str(label).strip().lower())
    if not matches:
        close = sorted(name for name in _synonyms() if str(label).strip().lower() in name)[:8]
        raise ValueError(f"unknown ImageNet class {label!r}; give an index 0..999 or a name"
                         + (f", e.g. {', '.join(close)}" if close else ""))
    if len(matches) > 1:
        options = "; ".join(f"{m} ({class_names()[m]})" for m in matches)
        raise ValueError(f"ImageNet class name {label!r} is ambiguous: {options}. Use the index.")
    return matches[0]


class HubClassifier(keras.layers.Layer):
    """Keras 3 layer around a TF-Hub image classifier: images -> 1000 ImageNet logits.

        layer = HubClassifier(tensorflow_hub.load(path), size=224)
        logits = layer(images)                     # images [B, H, W, 3] in value_range
    """

    def __init__(self, module, size, value_range=(-1.0, 1.0), name="hub_classifier", **kwargs):
        super().__init__(name=name, trainable=False, **kwargs)
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("TF-Hub classifiers run under KERAS_BACKEND=tensorflow only; "
                               f"this process uses {keras.backend.backend()!r}")
        self._module = Untracked(module)
        self.size = int(size)
        self.value_range = tuple(float(v) for v in value_range)
        if not self.value_range[1] > self.value_range[0]:
            raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
        self._signature = None
        if getattr(module, "_is_hub_module_v1", False) or not callable(module):
            self._signature = module.signatures["default"]

    def _call_module(self, images):
        if self._signature is None:
            return self._module.value(images)
        keys = list(self._signature.structured_input_signature[1])
        outputs = self._signature(**{keys[0]: images})
        return outputs["default"] if "default" in outputs else outputs["logits"]

    def call(self, images):
        import tensorflow as tf

        low, high = self.value_range
        images = tf.clip_by_value((tf.cast(images, tf.float32) - low) / (high - low), 0.0, 1.0)
        shrink = images.shape[1] is None or images.shape[1] > self.size
        images = tf.image.resize(images, (self.size, self.size), method="bilinear",
                                 antialias=bool(shrink))
        logits = self._call_module(images)
        if logits.shape[-1] == 1001:
            logits = logits[:, 1:]
        return logits

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1000)


class Classifier:
    """A loaded ImageNet classifier: ``.layer`` (Keras 3), ``.predict``, ``.name``, ``.handle``."""

    def __init__(self, name, handle, size, layer):
        self.name, self.handle, self.size, self.layer = name, handle, size, layer

    def logits(self, images, batch_size=32):
        """1000 ImageNet logits per image, computed in batches.

            logits = classifier.logits(images)          # [N, 1000]
        """
        images = np.asarray(images, dtype="float32")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3], got shape {images.shape}")
        outputs = [keras.ops.convert_to_numpy(self.layer(images[start:start + batch_size]))
                   for start in range(0, len(images), batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, 1000), "float32")

    def predict(self, images, batch_size=32):
        """Class probabilities (softmax of the logits), ``[N, 1000]``, float64.

            probabilities = classifier.predict(images)
        """
        logits = self.logits(images, batch_size).astype("float64")
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def __repr__(self):
        return f"Classifier({self.name!r}, handle={self.handle!r}, size={self.size})"


def load_classifier(name, handle=None, value_range=(-1.0, 1.0), offline=None):
    """One of the paper's four TF-Hub ImageNet classifiers, wrapped for generator outputs.

        classifier = load_classifier("inception_v3")
        classifier = load_classifier("resnet_v2_50", handle="/data/resnet_v2_50")  # local copy

    ``name``: inception_v3, inception_resnet_v2, nasnet_large or resnet_v2_50 (its TF-Hub handle
    and input size come from :data:`CLASSIFIERS`). ``handle`` overrides where the module is
    loaded from (a local folder or another URL); the input size stays the named model's.
    Offline, a missing module raises :class:`tfcf.hub.ModuleNotAvailable` naming the folder
    ``$TFHUB_CACHE_DIR/<sha1 of the handle>`` to put it in.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; valid: {', '.join(CLASSIFIERS)}")
    default_handle, size = CLASSIFIERS[name]
    handle = str(handle or default_handle)
    module = load(handle, offline=offline)
    return Classifier(name, handle, size, HubClassifier(module, size, value_range, name=name))
