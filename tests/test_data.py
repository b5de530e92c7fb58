"""Dataset loaders on tiny fixtures in each exact on-disk format."""

import gzip
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from tfcf import data


def test_celeba_folder_crop_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    faces = rng.integers(0, 256, (3, 218, 178, 3), dtype=np.uint8)
    for index, face in enumerate(faces):
        Image.fromarray(face).save(folder / f"{index + 1:06d}.png")
    images = data.load_celeba(folder, recipe="dcgan")
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    top, left = (218 - 108) // 2, (178 - 108) // 2
    golden = np.asarray(Image.fromarray(faces[1][top:top + 108, left:left + 108]).resize(
        (64, 64), Image.BICUBIC))
    np.testing.assert_array_equal(images[1], golden)
    top, left = (218 - 148) // 2, (178 - 148) // 2
    golden = np.asarray(Image.fromarray(faces[0][top:top + 148, left:left + 148]).resize(
        (64, 64), Image.BICUBIC))
    np.testing.assert_array_equal(data.load_celeba(folder, recipe="vae")[0], golden)
    with pytest.raises(ValueError, match="unknown CelebA recipe 'gan'; valid: dcgan, vae"):
        data.load_celeba(folder, recipe="gan")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        data.load_celeba(tmp_path / "missing")


def test_cifar10_pickle_batches(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        rows = images.transpose(0, 3, 1, 2).reshape(4, 3072)  # R plane, G plane, B plane
        batch = {b"batch_label": name.encode(), b"labels": [1, 2, 3, 4], b"data": rows,
                 b"filenames": [b"a.png"] * 4}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        expected.append(images)
    images, labels = data.load_cifar10(folder)
    np.testing.assert_array_equal(images, np.concatenate(expected[:5]))
    assert labels.tolist() == [1, 2, 3, 4] * 5
    np.testing.assert_array_equal(data.load_cifar10(folder, "test")[0], expected[5])
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3"):
        data.load_cifar10(folder)


def _write_idx(path, array, magic):
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        handle.write(array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, 2051)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8), 2049)
    clothes, labels = data.load_fashion_mnist(tmp_path)
    assert clothes.shape == (5, 32, 32, 3) and labels.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(clothes[3, 2:30, 2:30, 1], images[3])
    assert clothes[:, :2].max() == 0 and clothes[:, :, 30:].max() == 0
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, 2049)  # wrong magic
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8), 2049)
    with pytest.raises(ValueError, match="not an idx file with magic 2051"):
        data.load_fashion_mnist(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.load_fashion_mnist(tmp_path / "nothing")


def test_pipeline_is_deterministic_given_the_seed():
    images = np.random.default_rng(3).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    first = [b.numpy() for b in data.pipeline(images, 8, seed=5).take(7)]
    again = [b.numpy() for b in data.pipeline(images, 8, seed=5).take(7)]
    other = [b.numpy() for b in data.pipeline(images, 8, seed=6).take(7)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))
    epoch = np.concatenate(first[:5])  # 40 images = 5 batches: each image once, in [-1, 1]
    np.testing.assert_allclose(np.sort(epoch.reshape(40, -1), axis=0),
                               np.sort(images.reshape(40, -1) / 127.5 - 1.0, axis=0), atol=1e-6)
    with pytest.raises(ValueError, match="unknown data 'imagenet:x'"):
        data.load_dataset("imagenet:x")
