"""Lifting a point cloud to the group: ``lift(points, group, num_samples) -> Lifted``.

Each point x_i becomes ``num_samples`` pairs (u_is, q_i) with ``u_is o_{q_i} = x_i`` (paper
Algorithm 1); the stabilizer samples are drawn by Haar measure from ``generator``.  Values and the
mask are repeated so that sample s of point i sits at index ``i * num_samples + s``.

Shared geometry (the fixed-grid fast path): when every example of the batch has the same
coordinates and mask (images on a pixel grid), the lift is computed once and the returned
``Lifted`` carries elems / orbits / mask with batch size 1 while values keep the full batch.
"""

from __future__ import annotations

import torch

from .data import Lifted, Points, check_points
from .groups.base import LieGroup
from .random import ExampleRandom
from .runtime import known_all

__all__ = ["lift", "has_shared_geometry"]


def has_shared_geometry(points: Points) -> bool:
    """True when all examples share coordinates and mask (and the batch has more than one)."""
    if points.coords.shape[0] < 2:
        return False
    return bool((points.coords == points.coords[:1]).all() and (points.mask == points.mask[:1]).all())


def lift(
    points: Points,
    group: LieGroup,
    num_samples: int = 1,
    *,
    generator: torch.Generator | None = None,
    shared: bool | None = None,
) -> Lifted:
    """Lift ``points`` to ``group`` (paper Algorithm 1).

    Args:
        points: ``Points`` with coords (B, n, D), values (B, n, c), mask (B, n).
        group: the group; D must equal ``group.space_dim``.
        num_samples: lift samples per point (> 1 only for groups with a stabilizer).
        generator: source of the stabilizer draws: None (torch's global RNG), a ``torch.Generator``
            or a ``lieconv.random.ExampleRandom`` (per-example draws, independent of the batch).
        shared: take (True) or forbid (False) the shared-geometry fast path; ``None`` detects it.
            ``True`` on a batch whose examples have different coordinates or masks is refused
            (it would silently lift every example at the first one's points).

    Shapes:
        returns ``Lifted`` with elems (Bg, n*ns, group.elem_dim), orbits (Bg, n*ns, q_dim),
        values (B, n*ns, c), mask (Bg, n*ns), where Bg = 1 for shared geometry and B otherwise.
    """
    check_points(points, group.space_dim)
    group.check_num_samples(num_samples)
    if shared is None:
        shared = has_shared_geometry(points)
    elif shared and points.coords.shape[0] > 1 and not has_shared_geometry(points):
        raise ValueError(
            "shared: True asks for one geometry for the whole batch, but its examples have "
            "different coordinates or masks (use shared=None to detect, or False)"
        )
    coords, mask = (points.coords[:1], points.mask[:1]) if shared else (points.coords, points.mask)
    if not known_all(mask):
        # padding sits anywhere (often 0, outside RxSQ's quadrant): lift the first real point there instead
        first = mask.reshape(-1).to(torch.uint8).argmax().view(1)  # 0 when there is none
        coords = torch.where(mask.unsqueeze(-1), coords, coords.reshape(-1, coords.shape[-1]).index_select(0, first))
    if isinstance(generator, ExampleRandom):
        generator.shared = bool(shared)  # shared draws are keyed by SHARED_ID, not an example id
    elems, orbits = group.lift(coords, num_samples, generator)
    values = points.values
    if num_samples > 1:
        values = values.repeat_interleave(num_samples, dim=1)
        mask = mask.repeat_interleave(num_samples, dim=1)
    return Lifted(elems.to(values.dtype), orbits.to(values.dtype), values, mask, group)
