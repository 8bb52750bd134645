"""Small helpers shared by the group files (not public)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import random as _random

__all__ = ["safe_norm", "polar", "uniform_angles", "expand_samples", "rot2"]


def safe_norm(x: Tensor, keepdim: bool = False) -> Tensor:
    """Euclidean norm over the last axis with a finite (zero) gradient at the origin."""
    sq = (x * x).sum(-1, keepdim=keepdim)
    small = sq < 1e-30
    return torch.where(small, torch.zeros_like(sq), torch.sqrt(torch.where(small, torch.ones_like(sq), sq)))


def polar(x: Tensor) -> tuple[Tensor, Tensor]:
    """(r, theta) of 2-D points (..., 2); the origin maps to (0, 0) with finite gradients."""
    sq = (x * x).sum(-1)
    small = sq < 1e-30
    xs = torch.where(small, torch.ones_like(x[..., 0]), x[..., 0])
    ys = torch.where(small, torch.zeros_like(x[..., 1]), x[..., 1])
    theta = torch.where(small, torch.zeros_like(sq), torch.atan2(ys, xs))
    return safe_norm(x), theta


def uniform_angles(shape, num_samples: int, generator, like: Tensor, stratified: bool) -> Tensor:
    """Haar-uniform angles (*shape, num_samples) in [-pi, pi).

    With ``stratified`` one uniform offset per point is drawn and the samples are spread
    ``2 pi / num_samples`` apart (then wrapped); otherwise each angle is independent.
    ``generator``: None, a torch.Generator or a ``lieconv.random.ExampleRandom``.
    """
    n_draw = 1 if stratified else num_samples
    u = _random.uniform((*shape, n_draw), generator, dtype=like.dtype, device=like.device)
    theta = 2 * math.pi * u - math.pi
    if stratified and num_samples > 1:
        steps = torch.arange(num_samples, dtype=like.dtype, device=like.device) * (2 * math.pi / num_samples)
        theta = theta + steps
        theta = theta - 2 * math.pi * torch.floor((theta + math.pi) / (2 * math.pi))
    return theta


def expand_samples(t: Tensor, num_samples: int) -> Tensor:
    """(..., n, k) -> (..., n * num_samples, k), point-major (each row repeated in place)."""
    if num_samples == 1:
        return t
    return t.repeat_interleave(num_samples, dim=-2)


def rot2(theta: Tensor) -> Tensor:
    """Rotation matrices (..., 2, 2) from angles (...)."""
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
