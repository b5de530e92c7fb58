"""Image sets on disk as uint8 arrays: folders of .npz shards (key ``images``) or of image files.

    from tfcf.data import load_images
    real = load_images("faces64/", count=2048, seed=0)             # (2048, 64, 64, 3) uint8
    real = load_images("img_align_celeba/", count=2048, size=64)   # centre-cropped, resized

The ``.npz`` shards are read with :func:`tfcf.safeload.load_npz` (no pickles run). Unreadable image
files are counted and skipped with a warning; more than 1% of them is an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "list_images", "load_images"]

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


def _square_resize(image, size):
    from PIL import Image

    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top:top + side, left:left + side]
    if side != size:
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
    return image


def load_images(path, count=None, seed=0, size=None):
    """``count`` images (all when None) from a folder, as a uint8 array (N, H, W, 3).

        images = load_images("faces64", count=1000, seed=0)

    A random subset (fixed by ``seed``) when ``count`` is smaller than what is there. ``size``
    centre-crops to a square and resizes image files (bicubic); shards are returned as stored
    unless their size differs from ``size``.
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
            images = np.stack([_square_resize(image, size) for image in images])
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
        images.append(_square_resize(image, size) if size is not None else image)
    if bad:
        warnings.warn(f"{len(bad)} unreadable image(s) skipped in {str(path)!r}, e.g. {bad[0]}", stacklevel=2)
        if len(bad) > 0.01 * len(files):
            raise ValueError(f"{len(bad)} of {len(files)} images in {str(path)!r} are unreadable (more than 1%)")
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"images in {str(path)!r} have different shapes {sorted(shapes)[:3]}: pass size=")
    return np.stack(images)
