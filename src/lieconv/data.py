"""Named containers for the data that flows between layers, and their validation.

``Points``  — a padded batch of point clouds ``{(x_i, f_i)}``:
    coords (B, n, D) float, values (B, n, c) float, mask (B, n) bool (True = real point).

``Lifted``  — the same data lifted to the group, ``{(u_i, q_i, f_i)}``:
    elems  (Bg, N, E)  group elements in the group's flat parametrisation (``group.elem_dim``),
    orbits (Bg, N, q_dim) orbit embeddings q,
    values (B, N, c),
    mask   (Bg, N) bool,
    group  the ``LieGroup`` the data was lifted to (None for a hand-made ``Lifted``; layers then
           check only the element and orbit sizes),
    with N = n * num_samples.  ``Bg`` is either ``B`` (every example has its own geometry) or ``1``
    (*shared geometry*: every example of the batch sits on the same points, e.g. images on a pixel
    grid).  Layers broadcast the geometry over the batch in the second case, which is the fixed-grid
    fast path.

Both are frozen dataclasses with ``.replace(**fields)``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Points", "Lifted", "check_points", "pad_ragged"]


@dataclass(frozen=True)
class Points:
    coords: Tensor
    values: Tensor
    mask: Tensor

    def __post_init__(self):
        for name in ("coords", "values", "mask"):
            v = getattr(self, name)
            if not isinstance(v, Tensor):
                hint = " (Points.from_coords fills in values and mask)" if name != "coords" else ""
                raise TypeError(f"Points.{name}: expected a torch.Tensor, got {type(v).__name__}{hint}")

    def replace(self, **fields) -> "Points":
        return dataclasses.replace(self, **fields)

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @classmethod
    def from_coords(cls, coords: Tensor, values: Tensor | None = None, mask: Tensor | None = None) -> "Points":
        """Fill in ``values`` (a single channel of ones) and ``mask`` (all True) when omitted."""
        if values is None:
            values = torch.ones(*coords.shape[:-1], 1, dtype=coords.dtype, device=coords.device)
        if mask is None:
            mask = torch.ones(coords.shape[:-1], dtype=torch.bool, device=coords.device)
        return cls(coords, values, mask)


@dataclass(frozen=True)
class Lifted:
    elems: Tensor
    orbits: Tensor
    values: Tensor
    mask: Tensor
    group: Any = None

    def replace(self, **fields) -> "Lifted":
        return dataclasses.replace(self, **fields)

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def shared_geometry(self) -> bool:
        """True when one geometry (elems, orbits, mask) serves the whole batch of values."""
        return self.elems.shape[0] == 1 and self.values.shape[0] != 1

    @property
    def num_points(self) -> int:
        return self.elems.shape[1]

    def check_group(self, group, name: str = "x") -> None:
        """Raise ``ValueError`` when this data was lifted to another group than ``group``.

        Compares the group's name when known, else the element and orbit sizes
        (``elems`` (.., group.elem_dim), ``orbits`` (.., group.q_dim)).
        """
        if self.group is not None and getattr(self.group, "name", None) != getattr(group, "name", None):
            raise ValueError(f"{name}: this Lifted was lifted to {self.group!r}, but the layer's group is {group!r}; "
                             "lift the points with the layer's group")
        if self.elems.dim() != 3 or self.elems.shape[-1] != group.elem_dim or self.orbits.dim() != 3 \
                or self.orbits.shape[-1] != group.q_dim:
            raise ValueError(f"{name}: elems {tuple(self.elems.shape)} / orbits {tuple(self.orbits.shape)} do not fit "
                             f"{group!r} (expected (Bg, N, {group.elem_dim}) / (Bg, N, {group.q_dim}))")


def _fail(name: str, got: str, expected: str) -> None:
    raise ValueError(f"{name}: expected {expected}, got {got}")


def check_points(points: Points, space_dim: int | None = None, name: str = "points") -> None:
    """Validate a ``Points`` batch before any work is done.

    Raises ``ValueError`` naming the field, what it got and what was expected: rank, point
    dimension (``space_dim``, the dimension the group acts on), floating dtype, NaN/inf coordinates,
    mask shape and dtype, and matching batch / point counts.
    """
    if not isinstance(points, Points):
        _fail(name, type(points).__name__, "a lieconv.Points(coords, values, mask)")
    c, v, m = points.coords, points.values, points.mask
    if not isinstance(c, Tensor) or c.dim() != 3:
        _fail(f"{name}.coords", f"shape {tuple(getattr(c, 'shape', ()))}", "a tensor of shape (B, n, D)")
    if not c.is_floating_point():
        _fail(f"{name}.coords", f"dtype {c.dtype}", "a floating dtype")
    if c.shape[0] == 0:
        _fail(f"{name}.coords", f"an empty batch (shape {tuple(c.shape)})", "at least one example (B >= 1)")
    if space_dim is not None and c.shape[-1] != space_dim:
        _fail(f"{name}.coords", f"points of dimension {c.shape[-1]} (shape {tuple(c.shape)})",
              f"points of dimension {space_dim}, the dimension this group acts on")
    if not isinstance(v, Tensor) or v.dim() != 3:
        _fail(f"{name}.values", f"shape {tuple(getattr(v, 'shape', ()))}", "a tensor of shape (B, n, c)")
    if v.shape[:2] != c.shape[:2]:
        _fail(f"{name}.values", f"shape {tuple(v.shape)}", f"(B, n, c) = ({c.shape[0]}, {c.shape[1]}, c) to match coords")
    if not v.is_floating_point():
        _fail(f"{name}.values", f"dtype {v.dtype}", "a floating dtype")
    if not isinstance(m, Tensor) or m.shape != c.shape[:2]:
        _fail(f"{name}.mask", f"shape {tuple(getattr(m, 'shape', ()))}", f"shape (B, n) = {tuple(c.shape[:2])}")
    if m.dtype != torch.bool:
        _fail(f"{name}.mask", f"dtype {m.dtype}", "dtype torch.bool")
    bad_values = ~torch.isfinite(v).all(-1) & m
    if bad_values.any():
        bad = bad_values.nonzero()[0].tolist()
        _fail(f"{name}.values", f"NaN or inf at a real point (first at batch {bad[0]}, point {bad[1]})",
              "finite values wherever mask is True")
    if not torch.isfinite(c).all():
        bad = (~torch.isfinite(c)).any(-1).nonzero()[0].tolist()
        _fail(f"{name}.coords", f"NaN or inf (first at batch {bad[0]}, point {bad[1]})", "finite coordinates")


def pad_ragged(clouds: list[Tensor], values: list[Tensor] | None = None) -> Points:
    """Pad a list of clouds ``(n_b, D)`` (and values ``(n_b, c)``) into one masked ``Points`` batch."""
    if not clouds:
        raise ValueError("clouds: expected at least one point cloud, got an empty list")
    n = max(x.shape[0] for x in clouds)
    B, D = len(clouds), clouds[0].shape[-1]
    coords = clouds[0].new_zeros(B, n, D)
    mask = torch.zeros(B, n, dtype=torch.bool, device=coords.device)
    if values is None:
        values = [x.new_ones(x.shape[0], 1) for x in clouds]
    vals = values[0].new_zeros(B, n, values[0].shape[-1])
    for b, (x, f) in enumerate(zip(clouds, values)):
        coords[b, : x.shape[0]] = x
        vals[b, : x.shape[0]] = f
        mask[b, : x.shape[0]] = True
    return Points(coords, vals, mask)
