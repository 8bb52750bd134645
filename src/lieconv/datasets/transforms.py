"""Random rigid-motion augmentations as data transforms (not model code).

Each transform acts on point coordinates ``(..., n, d)`` with an optional mask ``(..., n)``
(True = real point; padding points are returned unchanged).  Every leading batch index gets its own
random element.  A transform also accepts a dict item (e.g. from :class:`lieconv.datasets.qm9.QM9Dataset`)
and then transforms ``item[key]`` using ``item[mask_key]``, returning a new dict.

Rotations are about the origin.  SO(3) rotations are Haar-uniform: a standard normal 4-vector,
normalised, is a uniform unit quaternion, whose rotation matrix is Haar distributed.  Randomness
comes from an optional :class:`torch.Generator` (CPU), so augmentations are reproducible.

>>> import torch
>>> t = RandomSO3(generator=torch.Generator().manual_seed(0))
>>> x = torch.randn(4, 3)
>>> torch.allclose(t(x).norm(dim=-1), x.norm(dim=-1), atol=1e-6)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "RandomTranslation3d",
    "rotation_matrix_2d",
    "quaternion_to_matrix",
    "random_so3",
    "RandomRotation2d",
    "RandomSO3",
    "RandomSE3",
]


def rotation_matrix_2d(angle: Tensor) -> Tensor:
    """Counter-clockwise rotation matrices ``[[cos, -sin], [sin, cos]]``; (...,) -> (..., 2, 2)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices of unit quaternions ``(w, x, y, z)``; (..., 4) -> (..., 3, 3)."""
    w, x, y, z = q.unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def random_so3(
    batch_shape: tuple[int, ...] = (),
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Haar-uniform random rotations, shape ``batch_shape + (3, 3)``."""
    q = torch.randn(*batch_shape, 4, generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return quaternion_to_matrix(q).to(dtype=dtype, device=device)


class _PointTransform:
    """Shared dispatch: tensors or dict items, masks, per-batch-element sampling."""

    dim: int = 3

    def __init__(self, *, generator: torch.Generator | None = None, key: str = "positions", mask_key: str = "mask"):
        self.generator = generator
        self.key = key
        self.mask_key = mask_key

    def sample(
        self, batch_shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str | None
    ) -> tuple[Tensor, Tensor | None]:
        """Draw ``(R, t)``: R ``(*batch_shape, d, d)``, t ``(*batch_shape, d)`` or None."""
        raise NotImplementedError

    def apply(self, coords: Tensor, mask: Tensor | None = None) -> Tensor:
        """Transform coordinates (..., n, d) with optional mask (..., n)."""
        if coords.shape[-1] != self.dim:
            raise ValueError(
                f"{type(self).__name__}: coordinates must have last dimension {self.dim}, "
                f"got shape {tuple(coords.shape)}"
            )
        rot, shift = self.sample(tuple(coords.shape[:-2]), coords.dtype, coords.device)
        out = torch.einsum("...ij,...nj->...ni", rot, coords)
        if shift is not None:
            out = out + shift[..., None, :]
        if mask is not None:
            out = torch.where(mask[..., None].bool(), out, coords)
        return out

    def __call__(self, x: Tensor | Mapping[str, Any], mask: Tensor | None = None):
        if isinstance(x, Mapping):
            item = dict(x)
            item[self.key] = self.apply(item[self.key], item.get(self.mask_key) if mask is None else mask)
            return item
        return self.apply(x, mask)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r})"


class RandomRotation2d(_PointTransform):
    """Rotate 2-d point clouds by an angle uniform in [0, 2π) (one per batch element)."""

    dim = 2

    def sample(self, batch_shape, dtype, device):
        angle = torch.rand(batch_shape, generator=self.generator, dtype=torch.float64) * (2 * math.pi)
        return rotation_matrix_2d(angle).to(dtype=dtype, device=device), None


class RandomSO3(_PointTransform):
    """Rotate 3-d point clouds by Haar-uniform random rotations (one per batch element)."""

    def sample(self, batch_shape, dtype, device):
        return random_so3(batch_shape, generator=self.generator, dtype=dtype, device=device), None


class RandomTranslation3d(_PointTransform):
    """Random translation ``x -> x + t`` with ``t ~ N(0, translation_std² I)`` (one per batch element).

    Parameters
    ----------
    translation_std
        Standard deviation of each translation component (coordinate units, e.g. Å).
    generator, key, mask_key
        See the module docstring.
    """

    def __init__(
        self,
        translation_std: float = 1.0,
        *,
        generator: torch.Generator | None = None,
        key: str = "positions",
        mask_key: str = "mask",
    ):
        super().__init__(generator=generator, key=key, mask_key=mask_key)
        self.translation_std = float(translation_std)

    def sample(self, batch_shape, dtype, device):
        rot = torch.eye(3, dtype=dtype, device=device).expand(*batch_shape, 3, 3)
        t = torch.randn(*batch_shape, 3, generator=self.generator, dtype=torch.float64) * self.translation_std
        return rot, t.to(dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(translation_std={self.translation_std}, key={self.key!r})"


class RandomSE3(RandomTranslation3d):
    """Random rigid motion ``x -> R x + t``: R Haar-uniform, ``t ~ N(0, translation_std² I)``
    (parameters as in :class:`RandomTranslation3d`)."""

    def sample(self, batch_shape, dtype, device):
        rot = random_so3(batch_shape, generator=self.generator, dtype=dtype, device=device)
        return rot, super().sample(batch_shape, dtype, device)[1]
