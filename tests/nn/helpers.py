"""Shared fixtures for layer tests: random off-grid points in each group's domain."""

from __future__ import annotations

import torch

from lieconv import Points
from lieconv.groups import GROUPS, get_group

# Registered names that stand for the same group as another name (tested once).
ALIASES = {"T", "Trivial"}
GROUP_NAMES = sorted(n for n in GROUPS if n not in ALIASES)


# Groups with a stabilizer are tested with 3 lift samples: with 2, the two samples of one point
# are exactly pi apart, where log jumps (atan2), so rounding may flip the sign of that kernel input.
def lift_samples(group) -> int:
    return 3 if group.stabilizer_dim > 0 else 1


def random_points(group, B=3, n=24, c=2, *, dtype=torch.float64, seed=0, n_real=None) -> Points:
    """Off-grid random points in the group's domain (positive quadrant for RxSQ)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, group.space_dim, generator=gen, dtype=dtype)
    if "SQ" in group.name:
        x = x.abs() + 0.2
    v = torch.randn(B, n, c, generator=gen, dtype=dtype)
    mask = torch.ones(B, n, dtype=torch.bool)
    if n_real is not None:
        for b, k in enumerate(n_real):
            mask[b, k:] = False
    return Points(x, v, mask)


def make_group(name):
    return get_group(name)


def padded_batch(seed=0) -> Points:
    """4 clouds of 3, 9, 5 and 12 real points in R^3 padded to 12 (a third padding), 5 channels, float64."""
    g = torch.Generator().manual_seed(seed)
    n = torch.tensor([3, 9, 5, 12])
    mask = torch.arange(12)[None] < n[:, None]
    coords = torch.randn(4, 12, 3, generator=g, dtype=torch.float64)
    values = torch.randn(4, 12, 5, generator=g, dtype=torch.float64)
    return Points(coords, values, mask)
