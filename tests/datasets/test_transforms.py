"""Random rigid-motion augmentations: group membership, masks, dict items, seeding, Haar sanity."""

from __future__ import annotations

import math

import pytest
import torch

from lieconv.datasets.transforms import (
    RandomRotation2d,
    RandomSE3,
    RandomSO3,
    RandomTranslation3d,
    quaternion_to_matrix,
    random_so3,
    rotation_matrix_2d,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_matrices_are_rotations():
    r = random_so3((64,), generator=gen(), dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    torch.testing.assert_close(r @ r.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(quaternion_to_matrix(torch.tensor([1.0, 0, 0, 0])), torch.eye(3))
    # quaternion (cos θ/2, 0, 0, sin θ/2) is a rotation by θ about z
    th = torch.tensor(0.7)
    rz = quaternion_to_matrix(torch.stack([torch.cos(th / 2), th * 0, th * 0, torch.sin(th / 2)]))
    torch.testing.assert_close(rz[:2, :2], rotation_matrix_2d(th))
    r2 = rotation_matrix_2d(torch.rand(10, generator=gen(), dtype=torch.float64) * 2 * math.pi)
    torch.testing.assert_close(torch.linalg.det(r2), torch.ones(10, dtype=torch.float64))


def test_haar_sanity():
    # E[R] = 0 and E[tr R] = 0 for the Haar measure on SO(3) (std of each entry is 1/sqrt(3))
    r = random_so3((20_000,), generator=gen(1), dtype=torch.float64)
    assert r.mean(0).abs().max() < 0.03
    assert r.diagonal(dim1=-2, dim2=-1).sum(-1).mean().abs() < 0.03
    # rotation angle density (1 - cos θ)/π has mean π/2 + 2/π
    angle = torch.arccos(((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))
    assert abs(angle.mean().item() - (math.pi / 2 + 2 / math.pi)) < 0.03


@pytest.mark.parametrize("cls,dim", [(RandomRotation2d, 2), (RandomSO3, 3), (RandomSE3, 3), (RandomTranslation3d, 3)])
def test_rigid_seeded_masked(cls, dim):
    x = torch.randn(4, 7, dim, generator=gen(2), dtype=torch.float64)
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[:, 5:] = False
    y = cls(generator=gen(3))(x, mask)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y[:, 5:], x[:, 5:])  # padding untouched
    d = lambda p: torch.cdist(p[:, :5], p[:, :5])  # noqa: E731
    torch.testing.assert_close(d(y), d(x))  # rigid motion
    if cls not in (RandomSE3, RandomTranslation3d):
        torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))  # about the origin
    assert torch.equal(cls(generator=gen(3))(x, mask), y)  # reproducible
    assert not torch.allclose(cls(generator=gen(4))(x, mask), y)
    same = cls(generator=gen(3))(x[:1].expand(4, 7, dim))  # one element per batch entry
    assert not torch.allclose(same[0], same[1])


def test_dict_items_and_errors():
    item = {"positions": torch.randn(29, 3, generator=gen()), "mask": torch.arange(29) < 5, "U0": torch.tensor(1.0)}
    out = RandomSE3(translation_std=2.0, generator=gen())(item)
    assert out is not item and torch.equal(out["U0"], item["U0"]) and torch.equal(item["positions"], item["positions"])
    assert torch.equal(out["positions"][5:], item["positions"][5:])
    assert not torch.allclose(out["positions"][:5], item["positions"][:5])
    with pytest.raises(ValueError, match="last dimension 2"):
        RandomRotation2d()(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="last dimension 3"):
        RandomSO3()(torch.zeros(5, 2))


def test_se3_translation_scale():
    x = torch.zeros(5000, 1, 3, dtype=torch.float64)
    t = RandomSE3(translation_std=0.5, generator=gen(5))(x)[:, 0]
    assert abs(t.std().item() - 0.5) < 0.02 and t.mean(0).abs().max() < 0.03
