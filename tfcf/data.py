"""Image sets on disk as uint8 arrays: folders of .npz shards (key ``images``) or of image files.

    from tfcf.data import load_images
    real = load_images("faces64/", count=2048, seed=0)             # (2048, 64, 64, 3) uint8
    real = load_images("img_align_celeba/", count=2048, size=64)   # centre-cropped, resized
    faces = load_celeba("img_align_celeba/", recipe="dcgan")       # crop 108 -> 64 (or "vae": 148)
    images, labels = load_cifar10("cifar-10-batches-py")            # (50000, 32, 32, 3) uint8
    clothes, labels = load_fashion_mnist()                          # padded to 32x32, 3 channels
    batches = pipeline(images, batch_size=64, seed=0)               # tf.data, [-1, 1] floats

The ``.npz`` shards are read with :func:`tfcf.safeload.load_npz` (no pickles run). Unreadable image
files are counted and skipped with a warning; more than 1% of them is an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = ["CELEBA_CROPS", "FASHION_MNIST_DIR", "IMAGE_SUFFIXES", "list_images", "load_celeba",
           "load_cifar10", "load_dataset", "load_fashion_mnist", "load_images", "pipeline"]

CELEBA_CROPS = {"dcgan": 108, "vae": 148}
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(path):
    """The image files under ``path`` (recursive, sorted), or the .npz shards of a shard folder.

        files = list_images("img_align_celeba")
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such folder: {str(path)!r} (expected a folder of images or of "
                                f".npz shards with an 'images' array)")
    shards = sorted(path.glob("*.npz"))
    if shards:
        return shards
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{str(path)!r} holds no .npz shards and no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def square_resize(image, size, crop=None):
    """The centred square crop (side ``crop``, else the short side) of a uint8 image, resized
    to ``size`` x ``size`` (bicubic; None keeps the crop's size).

        face = square_resize(celeba_image, 64, crop=108)       # the DCGAN recipe
    """
    from PIL import Image

    height, width = image.shape[:2]
    side = min(height, width) if crop is None else min(int(crop), height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top:top + side, left:left + side]
    if size is not None and side != size:
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
    return image


def load_images(path, count=None, seed=0, size=None, crop=None):
    """``count`` images (all when None) from a folder, as a uint8 array (N, H, W, 3).

        images = load_images("faces64", count=1000, seed=0)

    A random subset (fixed by ``seed``) when ``count`` is smaller than what is there. ``size``
    centre-crops to a square and resizes image files (bicubic); shards are returned as stored
    unless their size differs from ``size``. ``crop`` takes a centred square of that side
    first (CelebA recipes: 108 for the DCGAN, 148 for the VAE).
    """
    from tfcf.safeload import load_npz

    files = list_images(path)
    rng = np.random.default_rng(seed)
    if files[0].suffix == ".npz":
        arrays = []
        for shard in files:
            stored = load_npz(shard)
            if "images" not in stored:
                raise ValueError(f"{str(shard)!r} has no 'images' array; it has {sorted(stored)}")
            arrays.append(np.asarray(stored["images"]))
        images = np.concatenate(arrays)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"shards in {str(path)!r} hold {images.dtype} {images.shape}, expected uint8 (N, H, W, 3)")
        if count is not None and count < len(images):
            images = images[np.sort(rng.choice(len(images), count, replace=False))]
        if size is not None and images.shape[1:3] != (size, size):
            images = np.stack([square_resize(image, size) for image in images])
        return images
    from PIL import Image

    if count is not None and count < len(files):
        files = [files[i] for i in np.sort(rng.choice(len(files), count, replace=False))]
    images, bad = [], []
    for file in files:
        try:
            with Image.open(file) as handle:
                image = np.asarray(handle.convert("RGB"))
        except (OSError, ValueError) as error:
            bad.append(f"{file.name}: {error}")
            continue
        images.append(square_resize(image, size, crop)
                      if size is not None or crop is not None else image)
    if bad:
        warnings.warn(f"{len(bad)} unreadable image(s) skipped in {str(path)!r}, e.g. {bad[0]}", stacklevel=2)
        if len(bad) > 0.01 * len(files):
            raise ValueError(f"{len(bad)} of {len(files)} images in {str(path)!r} are unreadable (more than 1%)")
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"images in {str(path)!r} have different shapes {sorted(shapes)[:3]}: pass size=")
    return np.stack(images)


def load_celeba(path, recipe="dcgan", size=64, count=None, seed=0):
    """CelebA's ``img_align_celeba`` JPEGs, centre-cropped (108 DCGAN, 148 VAE) and resized.

        faces = load_celeba("data/img_align_celeba", recipe="vae", count=10000)
    """
    if recipe not in CELEBA_CROPS:
        raise ValueError(f"unknown CelebA recipe {recipe!r}; valid: {', '.join(CELEBA_CROPS)}")
    return load_images(path, count=count, seed=seed, size=size, crop=CELEBA_CROPS[recipe])


def load_cifar10(path, split="train"):
    """CIFAR-10 from ``cifar-10-batches-py`` (restricted unpickler): (images uint8 NHWC, labels).

        images, labels = load_cifar10("data/cifar-10-batches-py", split="test")
    """
    from tfcf.safeload import load_pickle

    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    if split not in names:
        raise ValueError(f"unknown split {split!r}; valid: train, test")
    folder = Path(path)
    missing = [n for n in names[split] if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{str(folder)!r} lacks {', '.join(missing)}: expected the "
                                "extracted cifar-10-python.tar.gz (cifar-10-batches-py/)")
    images, labels = [], []
    for name in names[split]:
        batch = load_pickle(folder / name, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _read_idx(path, magic):
    import gzip

    with gzip.open(path, "rb") as handle:
        data = handle.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{str(path)!r} is not an idx file with magic {magic} (found {found})")
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{str(path)!r} is truncated: {array.size} values for shape {shape}")
    return array.reshape(shape)


def load_fashion_mnist(path=FASHION_MNIST_DIR, split="train", size=32, mode="pad"):
    """Fashion-MNIST idx ``.gz`` files as uint8 (N, size, size, 3) and labels.

        clothes, labels = load_fashion_mnist()      # Debian package dataset-fashion-mnist

    28x28 grey images are zero-padded (``mode="pad"``, centred) or resized (``"resize"``) to
    ``size`` and repeated over 3 channels, the shape of the 2019 draft's CIFAR-10 models.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"unknown split {split!r}; valid: train, test")
    folder = Path(path)
    files = [folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{str(folder)!r} lacks {', '.join(missing)}: install the Debian "
                                "package dataset-fashion-mnist or pass the folder of the idx files")
    images, labels = _read_idx(files[0], 2051), _read_idx(files[1], 2049)
    if mode == "pad":
        if size < 28:
            raise ValueError(f"cannot pad 28x28 images to {size}; use mode='resize'")
        before = (size - 28) // 2
        images = np.pad(images, ((0, 0), (before, size - 28 - before),
                                 (before, size - 28 - before)))
    elif mode == "resize":
        from PIL import Image

        images = np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.BICUBIC))
                           for i in images])
    else:
        raise ValueError(f"unknown mode {mode!r}; valid: pad, resize")
    return np.repeat(images[..., None], 3, axis=-1), labels.astype(np.int64)


def load_dataset(spec, count=None, seed=0):
    """Images (uint8 NHWC) named by a data spec, as the training command takes them.

        load_dataset("faces64:../shared/data/faces64")   # npz shards or an image folder
        load_dataset("celeba:data/img_align_celeba:vae") ; load_dataset("cifar10:data/cifar")
        load_dataset("fashion-mnist")                    # the Debian package's folder
    """
    kind, _, rest = str(spec).partition(":")
    if kind == "celeba":
        folder, _, recipe = rest.partition(":")
        return load_celeba(folder, recipe or "dcgan", count=count, seed=seed)
    if kind == "cifar10":
        images = load_cifar10(rest)[0]
    elif kind == "fashion-mnist":
        images = load_fashion_mnist(rest or FASHION_MNIST_DIR)[0]
    elif kind in ("faces64", "folder"):
        return load_images(rest, count=count, seed=seed)
    elif Path(spec).exists():
        return load_images(spec, count=count, seed=seed)
    else:
        raise ValueError(f"unknown data {spec!r}; valid: a folder, folder:<path>, faces64:<path>, "
                         "celeba:<path>[:dcgan|vae], cifar10:<path>, fashion-mnist[:<path>]")
    if count is not None and count < len(images):
        rng = np.random.default_rng(seed)
        images = images[np.sort(rng.choice(len(images), count, replace=False))]
    return images


def training_images(images, holdout=0, count=None, seed=0):
    """The images a run trains on: all but the last ``holdout`` (then ``count`` of them).

        train = training_images(load_dataset("faces64:data/faces64"), holdout=1000)
        held_out = held_out_images(load_dataset("faces64:data/faces64"), holdout=1000)

    The held-out images are the last ``holdout`` in loading order (file order), so a model
    card's data spec and ``holdout`` name them exactly.
    """
    holdout = int(holdout)
    if holdout < 0 or holdout >= len(images):
        raise ValueError(f"holdout {holdout} must be in [0, {len(images)}) for {len(images)} "
                         "images")
    images = images[:len(images) - holdout]
    if count is not None and count < len(images):
        rng = np.random.default_rng(seed)
        images = images[np.sort(rng.choice(len(images), count, replace=False))]
    return images


def held_out_images(images, holdout):
    """The last ``holdout`` images, those :func:`training_images` leaves out.

        faces = held_out_images(load_dataset(card["data"]), card["holdout"])
    """
    holdout = int(holdout)
    if holdout <= 0 or holdout >= len(images):
        raise ValueError(f"holdout {holdout} must be in [1, {len(images)}) for {len(images)} "
                         "images")
    return images[len(images) - holdout:]


def pipeline(images, batch_size=64, seed=0, repeat=True):
    """A deterministic tf.data pipeline: seeded shuffle (reshuffled each epoch), batches of
    float32 in [-1, 1], prefetch.

        for batch in pipeline(images, 64, seed=0).take(100): ...
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(np.asarray(images, dtype=np.uint8))
    data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    data = data.batch(batch_size, drop_remainder=True)
    data = data.map(lambda x: tf.cast(x, tf.float32) / 127.5 - 1.0,
                    num_parallel_calls=1, deterministic=True)
    return data.prefetch(2)
