"""Named containers for the data that flows between layers, and their validation.

``Points``  — a padded batch of point clouds ``{(x_i, f_i)}``:
    coords (B, n, D) float, values (B, n, c) float, mask (B, n) bool (True = real point).

``Lifted``  — the same data lifted to the group, ``{(u_i, q_i, f_i)}``:
    elems  (Bg, N, E)  group elements in the group's flat parametrisation (``group.elem_dim``),
    orbits (Bg, N, q_dim) orbit embeddings q,
    values (B, N, c),
    mask   (Bg, N) bool,
    group  the ``LieGroup`` the data was lifted to (None for a hand-made ``Lifted``: layers then
    check only the element and orbit sizes),
    farthest  None, or ``FarthestOrder``: the points are in farthest-point order (set by a
    subsampling LieConv layer; the next layer's subsampling is then a prefix, see below),
    with N = n * num_samples.  ``Bg`` is either ``B`` (every example has its own geometry) or ``1``
    (*shared geometry*: every example of the batch sits on the same points, e.g. images on a pixel
    grid).  Layers broadcast the geometry over the batch in the second case, which is the fixed-grid
    fast path.

Both are frozen dataclasses with ``.replace(**fields)``; a ``replace`` of elems, orbits or mask drops
``farthest`` (it describes those points).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "FarthestOrder",
    "Points",
    "Lifted",
    "check_points",
    "pad_ragged",
    "ragged_to_points",
    "points_to_ragged",
    "from_pyg",
    "is_pyg_data",
    "as_points",
]


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

    def replace(self, **fields) -> Points:
        return dataclasses.replace(self, **fields)

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @classmethod
    def from_coords(cls, coords: Tensor, values: Tensor | None = None, mask: Tensor | None = None) -> Points:
        """Fill in ``values`` (a single channel of ones) and ``mask`` (all True) when omitted."""
        if values is None:
            values = torch.ones(*coords.shape[:-1], 1, dtype=coords.dtype, device=coords.device)
        if mask is None:
            mask = torch.ones(coords.shape[:-1], dtype=torch.bool, device=coords.device)
        return cls(coords, values, mask)

    @classmethod
    def from_ragged(
        cls, pos: Tensor, x: Tensor | None = None, batch: Tensor | None = None, *, batch_size: int | None = None
    ) -> Points:
        """Concatenated clouds with a ``batch`` vector (the PyG / e3nn layout) -> a padded batch.

        See :func:`ragged_to_points`.
        """
        return ragged_to_points(pos, x, batch, batch_size=batch_size)

    def to_ragged(self) -> tuple[Tensor, Tensor, Tensor]:
        """The real points as ``(pos (P, D), x (P, c), batch (P,))``; see :func:`points_to_ragged`."""
        return points_to_ragged(self)


class FarthestOrder(NamedTuple):
    """What a subsampling layer knows of the points it outputs (its farthest-point queries).

    The points are in farthest-point order of *themselves*: starting at the first real point, each
    real point is the farthest (rounded distance, then lowest index) from those before it, as
    ``lieconv.neighbors.farthest_point_indices`` orders them, real points first.  Farthest-point
    sampling of these points is then their first m points: each c_t was the farthest among a superset
    holding all of them, and the rounding scale (the largest distance from the first point, reached
    at the second) is the same.  ``rows`` (Bg, m, N_prev) int, ``cols`` (Bg, m) long, or both None:
    ``rows[b, i, cols[b, j]]`` is the rounded distance between points i and j (``_Keys.buckets``),
    what the next neighbour search would compute.
    """

    rows: Tensor | None = None
    cols: Tensor | None = None


@dataclass(frozen=True)
class Lifted:
    elems: Tensor
    orbits: Tensor
    values: Tensor
    mask: Tensor
    group: Any = None
    farthest: FarthestOrder | None = dataclasses.field(default=None, repr=False, compare=False)

    def replace(self, **fields) -> Lifted:
        if "farthest" not in fields and any(k in fields for k in ("elems", "orbits", "mask")):
            fields["farthest"] = None  # it described the old points
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
            raise ValueError(
                f"{name}: this Lifted was lifted to {self.group!r}, but the layer's group is {group!r}; "
                "lift the points with the layer's group"
            )
        if (
            self.elems.dim() != 3
            or self.elems.shape[-1] != group.elem_dim
            or self.orbits.dim() != 3
            or self.orbits.shape[-1] != group.q_dim
        ):
            raise ValueError(
                f"{name}: elems {tuple(self.elems.shape)} / orbits {tuple(self.orbits.shape)} do not fit "
                f"{group!r} (expected (Bg, N, {group.elem_dim}) / (Bg, N, {group.q_dim}))"
            )


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
        _fail(
            f"{name}.coords",
            f"points of dimension {c.shape[-1]} (shape {tuple(c.shape)})",
            f"points of dimension {space_dim}, the dimension this group acts on",
        )
    if not isinstance(v, Tensor) or v.dim() != 3:
        _fail(f"{name}.values", f"shape {tuple(getattr(v, 'shape', ()))}", "a tensor of shape (B, n, c)")
    if v.shape[:2] != c.shape[:2]:
        _fail(
            f"{name}.values", f"shape {tuple(v.shape)}", f"(B, n, c) = ({c.shape[0]}, {c.shape[1]}, c) to match coords"
        )
    if not v.is_floating_point():
        _fail(f"{name}.values", f"dtype {v.dtype}", "a floating dtype")
    if not isinstance(m, Tensor) or m.shape != c.shape[:2]:
        _fail(f"{name}.mask", f"shape {tuple(getattr(m, 'shape', ()))}", f"shape (B, n) = {tuple(c.shape[:2])}")
    if m.dtype != torch.bool:
        _fail(f"{name}.mask", f"dtype {m.dtype}", "dtype torch.bool")
    bad_values = ~torch.isfinite(v).all(-1) & m
    if not bool((bad_values.any() | ~torch.isfinite(c).all()).item()):  # one host read for both checks
        return
    if bad_values.any():
        bad = bad_values.nonzero()[0].tolist()
        _fail(
            f"{name}.values",
            f"NaN or inf at a real point (first at batch {bad[0]}, point {bad[1]})",
            "finite values wherever mask is True",
        )
    if not torch.isfinite(c).all():
        bad = (~torch.isfinite(c)).any(-1).nonzero()[0].tolist()
        _fail(f"{name}.coords", f"NaN or inf (first at batch {bad[0]}, point {bad[1]})", "finite coordinates")


def pad_ragged(clouds: list[Tensor], values: list[Tensor] | None = None) -> Points:
    """Pad a list of clouds ``(n_b, D)`` (and values ``(n_b, c)``) into one masked ``Points`` batch."""
    if not clouds:
        raise ValueError("clouds: expected at least one point cloud, got an empty list")
    sizes = torch.tensor([x.shape[0] for x in clouds], device=clouds[0].device)
    batch = torch.repeat_interleave(torch.arange(len(clouds), device=sizes.device), sizes)
    x = torch.cat(values) if values is not None else None
    return ragged_to_points(torch.cat(clouds), x, batch, batch_size=len(clouds))


# ------------------------------------------------------------------------------- ragged (PyG) layout


def ragged_to_points(
    pos: Tensor, x: Tensor | None = None, batch: Tensor | None = None, *, batch_size: int | None = None
) -> Points:
    """Concatenated point clouds with a ``batch`` vector -> one padded, masked ``Points`` batch.

    The layout of PyTorch Geometric and e3nn: the ``P`` points of all clouds stacked, and
    ``batch[p]`` the cloud of point ``p``.  Cloud ``b`` becomes row ``b`` of the padded batch, its
    points in the order they appear in ``pos`` (``batch`` need not be sorted), padded with zeros and
    ``mask`` False up to ``n = max_b n_b`` points.  ``Points.to_ragged`` is the inverse.

    Args:
        pos: coordinates ``(P, D)``, floating.
        x: values ``(P, c)`` or ``(P,)`` (one channel); ``None`` gives one channel of ones.  A
            non-floating ``x`` (e.g. atom types) is converted to ``pos``'s dtype.
        batch: cloud index ``(P,)`` of every point, integers in ``[0, batch_size)``; ``None`` means
            one cloud.
        batch_size: number of clouds ``B`` (default ``batch.max() + 1``); clouds without points
            give rows with no real point.

    Shapes:
        ``pos (P, D), x (P, c), batch (P,)`` -> ``Points`` with coords ``(B, n, D)``, values
        ``(B, n, c)``, mask ``(B, n)``.
    """
    if not isinstance(pos, Tensor) or pos.dim() != 2:
        _fail("pos", f"shape {tuple(getattr(pos, 'shape', ()))}", "a tensor of shape (P, D)")
    if not pos.is_floating_point():
        _fail("pos", f"dtype {pos.dtype}", "a floating dtype")
    P = pos.shape[0]
    if x is None:
        x = pos.new_ones(P, 1)
    if not isinstance(x, Tensor) or x.dim() not in (1, 2) or x.shape[0] != P:
        _fail("x", f"shape {tuple(getattr(x, 'shape', ()))}", f"a tensor of shape (P, c) or (P,) with P = {P}")
    x = x.unsqueeze(-1) if x.dim() == 1 else x
    if not x.is_floating_point():
        x = x.to(pos.dtype)
    if batch is None:
        batch = torch.zeros(P, dtype=torch.long, device=pos.device)
    if not isinstance(batch, Tensor) or batch.shape != (P,) or batch.is_floating_point() or batch.dtype == torch.bool:
        _fail(
            "batch",
            f"{getattr(batch, 'dtype', type(batch).__name__)} of shape {tuple(getattr(batch, 'shape', ()))}",
            f"an integer tensor of shape (P,) = ({P},)",
        )
    batch = batch.long()
    if P and int(batch.min()) < 0:
        _fail("batch", f"a negative cloud index {int(batch.min())}", "indices >= 0")
    needed = int(batch.max()) + 1 if P else 0
    if batch_size is None:
        batch_size = needed
    elif batch_size < needed:
        _fail("batch_size", str(batch_size), f"at least batch.max() + 1 = {needed}")
    counts = torch.bincount(batch, minlength=batch_size)  # (B,)
    n = int(counts.max()) if batch_size else 0
    order = torch.argsort(batch, stable=True)  # points grouped by cloud
    starts = torch.cumsum(counts, 0) - counts  # (B,) first slot of each cloud
    slot = torch.empty_like(batch)
    slot[order] = torch.arange(P, device=pos.device) - starts[batch[order]]  # (P,) index within its cloud
    coords = pos.new_zeros(batch_size, n, pos.shape[1])
    values = x.new_zeros(batch_size, n, x.shape[1])
    mask = torch.zeros(batch_size, n, dtype=torch.bool, device=pos.device)
    coords[batch, slot] = pos
    values[batch, slot] = x
    mask[batch, slot] = True
    return Points(coords, values, mask)


def points_to_ragged(points: Points) -> tuple[Tensor, Tensor, Tensor]:
    """The real points of a padded batch, concatenated: ``(pos (P, D), x (P, c), batch (P,))``.

    Row by row, in each row's order; ``P = mask.sum()``.  ``ragged_to_points`` of the result gives
    ``points`` back (up to the padding's contents) when each row's real points precede its padding.
    """
    check_points(points)
    B, n = points.mask.shape
    batch = torch.arange(B, device=points.mask.device).unsqueeze(1).expand(B, n)
    return points.coords[points.mask], points.values[points.mask], batch[points.mask]


def is_pyg_data(obj: object) -> bool:
    """True for a PyTorch Geometric ``Data`` / ``Batch`` (checked by type, without importing PyG)."""
    return any(k.__module__.split(".")[0] == "torch_geometric" for k in type(obj).__mro__)


def from_pyg(data) -> Points:
    """A PyTorch Geometric ``Data`` (one cloud) or ``Batch`` -> a padded ``Points`` batch.

    Reads ``data.pos`` (required), ``data.x`` (optional: values; ``None`` gives ones) and
    ``data.batch`` (``None`` for a single ``Data``: one cloud); the number of clouds is
    ``data.num_graphs``.  Edges are ignored: LieConv chooses its own neighbourhoods.  PyG itself is
    not imported.
    """
    pos = getattr(data, "pos", None)
    if pos is None:
        raise ValueError(
            f"data: expected a torch_geometric Data/Batch with a 'pos' attribute, got "
            f"{type(data).__name__} without positions"
        )
    batch = getattr(data, "batch", None)
    num = getattr(data, "num_graphs", None) if batch is not None else 1
    return ragged_to_points(pos, getattr(data, "x", None), batch, batch_size=num)


def as_points(x):
    """``from_pyg(x)`` for a PyG ``Data``/``Batch``; anything else is returned unchanged.

    Models call it first, so they accept PyG batches as well as ``Points``.
    """
    return from_pyg(x) if is_pyg_data(x) else x
