"""Choosing query points and neighbourhoods on the group, without any N x N tensor.

All selection here is piecewise constant in the inputs, so it runs under ``torch.no_grad()``; the
layers compute kernel inputs with gradients only for the chosen (query, neighbour) pairs.

* ``farthest_point_indices``: farthest-point subsampling on the invariant group distance
  (paper appendix A.4).  m sequential steps; a step only revisits the points that the new point
  can bring closer (pruned through a cell list, below): about O(N log m) distances in all.
* ``neighborhood_indices``: for each query, the ``fill`` fraction of the example's real points
  that are nearest in the invariant distance (the ball whose radius holds that fraction), then a
  uniform Monte-Carlo sample of ``num_nbhd`` of them without replacement (``knn=True``: the
  ``num_nbhd`` nearest).  When every real point is in every neighbourhood no distance is computed.

Exact pruning.  A group may give a Euclidean embedding E with d(u, v) >= ||E(u) - E(v)||
(``LieGroup.distance_lower_bound_coords``).  The points are binned in a cell list on the leading
(up to 3) coordinates of E, cells of about a quarter of a typical k-th nearest distance; a query
compares itself only with the points of a box of cells around its own, sized before any distance
is computed from prefix counts of the points per cell (the smallest box whose inscribed ball
should hold the k needed points), and widens the box once more only if the k-th nearest rounded
distance found is not provably below the distance to anything outside it.  About 3 k candidates
per query, nearly all in one round: the search costs O(m k), whatever N.  The result is
identical to comparing every pair (same rounding, same lowest-index tie breaking, same random
keys): ``prune=False`` does exactly that (one cell per example) and the tests compare the two.
Groups without a bound use one cell, and so does a search whose boxes would hold more than
``_DENSE_FRACTION`` of an example around a typical query (e.g. SE(3), whose nearest distances are
dominated by the rotation part): there comparing every pair is cheaper than the pruning, and
gives the same result.

Distances are rounded to ``TIE_RESOLUTION`` of an invariant per-example scale (the largest
distance from the example's first real point; the step is the nearest power of two), so exact ties
of the maths are ordered by index.  Both depend on the coordinates only through invariant distances
and on random draws only through ``generator`` (with shapes that depend only on the tensor sizes),
so f(x) and f(g x) with the same generator state choose the same indices: the selection is exactly
equivariant in exact arithmetic.

Precision.  The selections of x and g x differ only through the rounding of g x to the input
dtype (half an ulp per coordinate: ~1e-8 of the scale in float32) and the arithmetic of the
distances (float32: about as large; half precision is selected on float64 distances, ``_precise``).
A choice flips when a distance lies that close to another one or to a rounding boundary where the
choice depends on it: the argmax of a farthest-point step, or the edge of a ball (the Monte-Carlo
keys belong to (query, point) pairs, so the order inside the ball does not matter, and the rounding
step is a power of two, so the scale's own rounding moves no boundary).  Measured on random 24-point
float32 clouds with 3 lift samples (``benchmarks/f32_equivariance.py --selection``): about 1 example
in 1,500 for SE(2), fewer for the other groups; the rate scales with the input precision.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from . import native
from . import random as _random
from .groups.base import LieGroup
from .runtime import host_reads_free, known_all

if TYPE_CHECKING:
    from .data import FarthestOrder

__all__ = ["Selection", "farthest_point_indices", "neighborhood_indices", "full_neighborhoods", "gather_points"]

_CHUNK_ELEMENTS = 1 << 22  # elements of the largest temporary in a distance chunk
_DRAW_ELEMENTS = 1 << 18  # (query, candidate) pairs per chunk of the Monte-Carlo draw (its int64 keys stay in cache)
_NEAR_ELEMENTS = 1 << 23  # (query, candidate) pairs per search call: few rounds and wide batches, 64 MB of indices
_SEARCH_ELEMENTS = 1 << 20  # pairs x width per batch of the pruned search (cache-sized)
_GRID_DIMS = 3  # cell-list dimensions (leading coordinates of the lower-bound embedding)
_MAX_CELLS = 1 << 16  # cells per grid dimension at most (linear cell ids stay in int64)
_BOX = 2  # farthest-point sampling: a new point's box reaches this many cells beyond its own
_CELL_FRACTION = 4  # the search's finest cells: a typical k-th nearest distance / this
_COUNT_MARGIN = 1.0  # a first box: its inscribed ball should hold this many times the needed points
_SAT_CELLS = 1 << 22  # cells of a level's count tables at most (int32; a finer level has none)
_FPS_LOOP_POINTS = 4096  # farthest-point sampling of at most this many points: the plain loop
_MAX_RUNS = 289  # a box of more runs (cell rows) than this scans the whole example
_SLACK_EPS = 64  # safety margin of the pruning tests, in units of the dtype's epsilon
_DENSE_FRACTION = 0.1  # the neighbourhood search compares every pair when boxes hold more
_ROWS_ELEMENTS = 1 << 25  # farthest-point rows kept for the neighbour search (Bg * m * N) at most
_KEY_MIN = torch.iinfo(torch.int64).min  # the random key of a non-candidate (hash keys are > this)


class Selection(NamedTuple):
    """Which points a LieConv layer evaluates at and which neighbours each one sums over.

    query_idx (Bg, m) long or None (no subsampling: the queries are all N points),
    query_mask (Bg, m) bool, nbhd_idx (Bg, m, K) long, nbhd_mask (Bg, m, K) bool.
    ``full``: every query's neighbourhood is all N points in index order (``K = N``,
    ``nbhd_idx[b, i, j] = j``), so a layer may skip the gathers (see ``full_neighborhoods``).
    ``queries``: a ``lieconv.data.FarthestOrder`` when the queries are in farthest-point order (the
    layer's output then carries it), else None.
    """

    query_idx: Tensor | None
    query_mask: Tensor
    nbhd_idx: Tensor
    nbhd_mask: Tensor
    full: bool = False
    queries: FarthestOrder | None = None


def _planes(t: Tensor) -> Tensor:
    """``t`` (..., E) as a view of coordinate-major storage: each ``t[..., i]`` is one contiguous
    plane.  Same values; elementwise distance arithmetic on strided coordinate slices is 2-3x
    slower on CPU (SE(3): 93 vs 48 ns per pair)."""
    return t.movedim(-1, 0).contiguous().movedim(0, -1)


def _take(planes: Tensor, idx: Tensor) -> Tensor:
    """``planes[..., idx]`` for coordinate-major planes (E, M) (or one plane (M,)) and any index
    shape: (E, *idx.shape) (or idx.shape), one 1-D ``index_select`` per plane (several times faster
    on CPU than advanced indexing).  ``out.movedim(0, -1)`` views it as points (..., E)."""
    flat = idx.reshape(-1)
    if planes.dim() == 1:
        return planes.index_select(0, flat).view(idx.shape)
    out = planes.new_empty(planes.shape[0], flat.shape[0])
    for i in range(planes.shape[0]):
        torch.index_select(planes[i], 0, flat, out=out[i])
    return out.view(planes.shape[0], *idx.shape)


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """Gather rows along the point axis: x ``(Bx, N, *f)``, idx ``(Bi, *s)`` -> ``(max(Bx, Bi), *s, *f)``.

    A batch of size 1 on either side is broadcast (shared geometry).
    """
    B = max(x.shape[0], idx.shape[0])
    feat = x.shape[2:]
    F = math.prod(feat)
    if F == 0:
        return x.new_zeros(B, *idx.shape[1:], *feat)
    if idx.shape[0] == 1 and x.shape[0] > 1:  # one index set for the batch: plain indexing
        return x[:, idx[0]]
    N = x.shape[1]
    rows = x.reshape(x.shape[0] * N, F)  # one index_select of whole rows: ~2x faster than gather on CPU
    flat = idx.expand(B, *idx.shape[1:]).reshape(B, -1)
    if x.shape[0] > 1:
        flat = flat + (torch.arange(B, device=idx.device) * N).view(B, 1)
    flat = flat.reshape(-1)
    graph = rows.requires_grad and torch.is_grad_enabled()
    out = _GatherRows.apply(rows, flat) if graph else rows.index_select(0, flat)
    return out.view(B, *idx.shape[1:], *feat)


class _GatherRows(torch.autograd.Function):
    """rows.index_select(0, idx) whose backward scatters with ``native.index_add_`` (``torch``'s
    differentiable ``index_add`` under create_graph)."""

    @staticmethod
    def forward(ctx, rows: Tensor, idx: Tensor) -> Tensor:
        ctx.save_for_backward(idx)
        ctx.rows = rows.shape[0]
        return rows.index_select(0, idx)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (idx,) = ctx.saved_tensors
        zeros = grad.new_zeros(ctx.rows, grad.shape[1])
        if torch.is_grad_enabled():
            return zeros.index_add(0, idx, grad), None
        return native.index_add_(zeros, idx, grad), None


#: Relative resolution at which distances count as equal, keyed on the dtype of the *inputs*: exact
#: ties of the maths (the stabilizer samples of one point, pixel grids) come out of the arithmetic in
#: either order, so distances are rounded to this fraction of a per-example scale and equal ones are
#: ordered by index.  Keyed on the input, not on the arithmetic (float16 inputs are selected on
#: float64 distances, see ``_precise``): a tie of the maths between rounded inputs is only a tie up
#: to the rounding of those inputs (g x rounded to float32 moves a distance by up to ~1e-7 of the
#: scale), so the resolution must stay well above the input's own precision: float32 keeps 1e-4.
TIE_RESOLUTION = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}

#: Input dtypes whose selection runs on float64 copies of the elements and orbits (not float32:
#: see ``_precise``).
_UPCAST = (torch.float16, torch.bfloat16)


def _resolution(elems: Tensor, orbits: Tensor) -> float:
    dtype = elems.dtype if elems.is_floating_point() else orbits.dtype
    return TIE_RESOLUTION.get(dtype, 1e-4)


def _precise(t: Tensor) -> Tensor:
    """``t`` in float64 when it is float16 / bfloat16 (``_UPCAST``), else itself.

    The selection only compares distances and returns indices (no gradient, nothing downstream sees
    the dtype), and a choice flips when two distances are nearly tied and the arithmetic moves them
    past each other.  In half precision the distance chain errs by ~1e-3, next to the 1e-2 tie
    resolution, so half inputs are selected on float64 distances.  float32 is not upcast: its
    distance chain (angle wrap, sinc, atan2, sqrt of sums) errs by up to ~3 eps (d + 1) (RxSQ's
    log: ~17), about as much as the rounding of g x itself moves a distance, and float64 distances
    for float32 inputs changed no measurable rate (``benchmarks/f32_equivariance.py --selection``:
    SE(2) 38 vs 39 flips per 60000 clouds) while costing about a third of the selection time.
    Devices without float64 (MPS) keep the input dtype.
    """
    if t.dtype in _UPCAST and t.device.type != "mps":
        return t.to(torch.float64)
    return t


def _example_inv_step(group: LieGroup, elems: Tensor, orbits: Tensor, mask: Tensor, res: float) -> Tensor:
    """``_inv_step`` of the distances from each example's first real point: (Bg,)."""
    ar = torch.arange(mask.shape[0], device=mask.device)
    first = mask.to(torch.uint8).argmax(1)
    d = group.elem_distance(elems, elems[ar, first][:, None], orbits, orbits[ar, first][:, None])
    return _inv_step(d, mask, res)


def _inv_step(d: Tensor, mask: Tensor, res: float) -> Tensor:
    """1 / step, the step the power of two nearest to scale * res (in log scale), with scale the
    largest of the distances d (Bg, N) from an example's first real point (an invariant scale): (Bg,).
    Farthest-point sampling and the neighbour search both round with it, so a farthest-point row is
    exactly what the search would compute.

    A power of two, not ``scale * res`` itself, so that the rounding error of the scale (the same
    input rounding that moves every distance) does not also move every rounding boundary: the step
    is the same for f(x) and f(g x) unless ``scale * res`` lies within that error of a boundary
    2^(k + 1/2), and d / step is exact."""
    scale = d.masked_fill(~mask, 0).amax(1).clamp(min=torch.finfo(d.dtype).tiny)
    return 1.0 / torch.exp2(torch.round(torch.log2(scale * res)))


class _Keys:
    """How distances become sort keys: ``bucket = min(round(d * inv_step), cap)`` (``_inv_step``, per
    example), ``key = bucket * N + j`` for point j, so sorting keys orders by rounded distance, then
    index.  Distances beyond ``cap`` (at least 4 scales) share the last bucket; NaN goes there too.
    Real points' keys are below ``limit`` = (cap + 1) N; a slot that holds no point gets a key at or
    above it: ``inf``, or the key of the index j = ``limit`` itself (any bucket), so a padded slot
    needs no masking pass once its index is ``limit``.  Keys are int32 whenever they fit (cheaper to
    build than int64).
    """

    def __init__(self, res: float, N: int):
        self.N = N
        self.cap = math.ceil(6 / res)  # the step is within sqrt(2) of scale * res
        self.limit = (self.cap + 1) * N
        self.dtype = torch.int32 if (2 * self.cap + 2) * N < 2**31 - 1 else torch.int64
        self.inf = torch.iinfo(self.dtype).max  # the key of a padding slot: after every real point

    def buckets(self, d: Tensor, inv_step: Tensor) -> Tensor:
        """Rounded distances ``d * inv_step`` (broadcast), clamped to [0, cap], as the key dtype."""
        return self.clamp_(torch.round(d * inv_step))

    def buckets_(self, d: Tensor, inv_step: Tensor) -> Tensor:
        """``buckets`` of a temporary d, computed in its storage when it is dense (d is overwritten)."""
        if not d.is_contiguous() or d.shape != torch.broadcast_shapes(d.shape, inv_step.shape):
            return self.buckets(d, inv_step)
        return self.clamp_(d.mul_(inv_step).round_())

    def clamp_(self, r: Tensor) -> Tensor:
        """Rounded distances r clamped to [0, cap] (NaN: cap) in place, as the key dtype."""
        return r.clamp_(0, self.cap).nan_to_num_(nan=float(self.cap)).to(self.dtype)

    def keys(self, buckets: Tensor, j: Tensor) -> Tensor:
        """bucket * N + j (j broadcast, local indices)."""
        return torch.add(j.to(self.dtype), buckets, alpha=self.N)  # one pass, not two

    def index(self, key: Tensor) -> Tensor:
        """The point index j of a key, 0 for padding, as int64."""
        return torch.where(key < self.limit, torch.remainder(key, self.N), 0).long()

    def bucket_of(self, key: Tensor) -> Tensor:
        return torch.div(key, self.N, rounding_mode="floor")


# ----------------------------------------------------------------------------- cell list
class _Grid:
    """A cell list: each example's real points binned in cubic cells of side ``h[b]`` on the
    coordinates ``x`` (Bg, N, s) (s <= 3; s = 0 puts an example in one cell), sorted by the linear
    cell id ((b G0 + c0) G1 + c1) G2 + c2.  Padding sorts last and is in no cell.

    The cells of ``extra`` points (Bg, M, s) (the queries) are in range too, so any point outside the
    box of cells c +- w of a query in cell c is farther than w h from it in some coordinate.
    """

    def __init__(self, x: Tensor, mask: Tensor, h: Tensor, extra: Tensor, extra_mask: Tensor):
        self.Bg, self.N, self.s = x.shape
        big = torch.finfo(x.dtype).max
        pts = torch.cat([x.masked_fill(~mask[..., None], big), extra.masked_fill(~extra_mask[..., None], big)], 1)
        self.lo = pts.amin(1) if self.s else x.new_zeros(self.Bg, 0)  # (Bg, s)
        self.lo = torch.where(torch.isfinite(self.lo) & (self.lo < big), self.lo, 0.0)
        self.h = h
        c = self.cells(x, mask)
        ce = self.cells(extra, extra_mask)
        both = torch.cat([c.flatten(0, 1), ce.flatten(0, 1)])
        top = both.amax(0) if both.shape[0] else both.new_zeros(self.s)
        self.G = [int(g) + 1 for g in top.tolist()]
        ids = self.ids(torch.arange(self.Bg, device=x.device)[:, None], c)
        ids = ids.masked_fill(~mask, math.prod(self.G) * self.Bg)  # padding after every cell
        self.sorted_ids, self.perm = ids.flatten().sort()
        self.extra_cells = ce
        # widest box enumerated run by run (at most _MAX_RUNS runs); wider ones take the example
        self.w_cap = int((_MAX_RUNS ** (1 / (self.s - 1)) - 1) // 2) if self.s > 1 else 1 << 30
        # margins for rounding in the cell and distance arithmetic
        mag = torch.where(pts.abs() < big, pts.abs(), 0).flatten(1).amax(1) if pts[0].numel() else h.new_zeros(self.Bg)
        self.slack = _SLACK_EPS * torch.finfo(x.dtype).eps
        self.abs_slack = self.slack * mag

    def cells(self, x: Tensor, mask: Tensor) -> Tensor:
        c = torch.floor((x - self.lo[:, None]) / self.h[:, None, None]).long()
        return c.masked_fill(~mask[..., None], 0).clamp(min=0)

    def ids(self, b: Tensor, c: Tensor) -> Tensor:
        """Linear ids of cells c (..., t) of examples b over the first t <= s axes."""
        out = b.expand(c.shape[:-1]).clone()
        for d in range(c.shape[-1]):
            out = out * self.G[d] + c[..., d]
        return out

    def box(self, b: Tensor, c: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """Runs of the sorted order covering the cells of c +- w that a point within w h of a point in
        cell c can lie in (per tile: b (T,), c (T, s), w (T,)): (start, length), each (T, R) with
        R = (2 max(w) + 1)^(s - 1) runs along the last axis (empty where none).

        Cell c + delta is at least h ||(|delta| - 1)^+|| from any point of cell c, so only the cells
        with sum_i ((|delta_i| - 1)^+)^2 <= w^2 are listed: a ball of cells, about 0.84 (w = 4) to
        0.70 (w = 8) of the cube's points in 3-D.  What a box leaves out is farther than w h, as for
        the cube."""
        T, s = c.shape
        if s == 0:
            b = b.contiguous()
            start = torch.searchsorted(self.sorted_ids, b)
            return start[:, None], (torch.searchsorted(self.sorted_ids, b, right=True) - start)[:, None]
        whole = w > self.w_cap  # boxes of too many runs: the whole example instead
        wm = int(w.masked_fill(whole, 0).max())
        span = range(-wm, wm + 1)
        off = torch.tensor(list(itertools.product(span, repeat=s - 1)), dtype=torch.long, device=c.device).reshape(
            -1, s - 1
        )  # (R, s-1)
        lead = c[:, None, : s - 1] + off  # (T, R, s-1)
        Gl = torch.tensor(self.G[: s - 1], dtype=torch.long, device=c.device)
        ok = ((lead >= 0) & (lead < Gl) & (off.abs() <= w[:, None, None])).all(-1)
        # the run's half-length along the last axis: the largest |delta_z| <= w with
        # ((|delta_z| - 1)^+)^2 <= w^2 - (the lateral offset's part); no run where that is negative
        rem = w[:, None] ** 2 - (off.abs() - 1).clamp(min=0).pow(2).sum(-1)  # (T, R)
        wz = torch.minimum(w[:, None], _isqrt(rem.clamp(min=0)) + 1)
        ok &= rem >= 0
        zc = c[:, s - 1 : s].expand(T, off.shape[0])
        zlo = (zc - wz).clamp(0, self.G[-1] - 1)
        zhi = (zc + wz).clamp(0, self.G[-1] - 1)
        ok &= (zc + wz >= 0) & (zc - wz <= self.G[-1] - 1)
        lead = lead.clamp(min=0).minimum(Gl - 1)
        row = self.ids(b[:, None], lead)  # (T, R): the run's cell row over the first s - 1 axes
        lo_id, hi_id = row * self.G[-1] + zlo, row * self.G[-1] + zhi
        ok &= ~whole[:, None]
        first = self.cell_starts()
        if first is None:
            start = torch.searchsorted(self.sorted_ids, lo_id)
            end = torch.searchsorted(self.sorted_ids, hi_id, right=True)
        else:
            start, end = _take(first, lo_id).long(), _take(first, hi_id + 1).long()
        length = torch.where(ok, end - start, 0)
        if bool(whole.any()):
            cells = math.prod(self.G)
            first = torch.searchsorted(self.sorted_ids, (b * cells).contiguous())
            last = torch.searchsorted(self.sorted_ids, (b * cells + cells - 1).contiguous(), right=True)
            start[:, 0] = torch.where(whole, first, start[:, 0])
            length[:, 0] = torch.where(whole, last - first, length[:, 0])
        return start, length

    def gather(self, start: Tensor, length: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Concatenate the runs of each tile: positions in the sorted order (T, C), valid (T, C), and
        the count per tile (T,).  (``perm`` maps a position to the flat point index b N + j.)"""
        T, R = length.shape
        total = length.sum(1)
        C = max(1, int(total.max())) if total.numel() else 1
        ends = length.cumsum(1)  # (T, R)
        # the run of position p is the number of runs ending at or before p: marks, then a running sum
        marks = torch.zeros(T, C + 1, dtype=torch.long, device=start.device)
        marks.scatter_add_(1, ends.clamp(max=C), torch.ones_like(ends))
        run = marks[:, :C].cumsum_(1).clamp_(max=R - 1)
        pos = torch.arange(C, device=start.device)
        sorted_pos = (start - (ends - length)).gather(1, run).add_(pos)
        valid = pos < total[:, None]
        return sorted_pos.clamp_(0, self.perm.numel() - 1), valid, total

    def _per_cell(self) -> Tensor | None:
        """Real points per cell, (Bg * cells,) long, or None when there are more than
        ``_SAT_CELLS`` cells."""
        if not hasattr(self, "_cell_counts"):
            cells = self.Bg * math.prod(self.G)
            ids = self.sorted_ids[self.sorted_ids < cells]
            self._cell_counts = torch.bincount(ids, minlength=cells) if cells <= _SAT_CELLS else None
        return self._cell_counts

    def cell_starts(self) -> Tensor | None:
        """The position in the sorted order of each cell's first point, (Bg * cells + 1,) int32 (the
        last entry: the number of real points), or None when there would be more than ``_SAT_CELLS``
        cells (boxes then search the sorted ids)."""
        if not hasattr(self, "_starts"):
            per = self._per_cell()
            self._starts = None if per is None else torch.nn.functional.pad(per.cumsum(0), (1, 0)).to(torch.int32)
        return self._starts

    def counts(self) -> Tensor | None:
        """Prefix counts of the real points per cell, (Bg, G0 + 1, ..., G(s-1) + 1) int32 (a leading
        zero plane per axis), or None when the table would exceed ``_SAT_CELLS`` cells."""
        if not hasattr(self, "_sat"):
            per = self._per_cell()
            self._sat = None
            if per is not None and self.Bg * math.prod(g + 1 for g in self.G) <= _SAT_CELLS:
                c = per.view(self.Bg, *self.G)
                for d in range(self.s):
                    c = c.cumsum(d + 1)
                self._sat = torch.nn.functional.pad(c, (1, 0) * self.s).to(torch.int32)
        return self._sat

    def box_count(self, b: Tensor, c: Tensor, w: Tensor) -> Tensor:
        """The number of real points in cells c +- w of example b (b (n,), c (n, s), w (n,)), from
        the prefix counts (``counts()`` must not be None): (n,) long."""
        sat = self._sat
        G = torch.tensor(self.G, dtype=torch.long, device=c.device)
        lo = (c - w[:, None]).clamp(min=0)  # first cell of the box per axis
        hi = torch.minimum(c + w[:, None], G - 1) + 1  # one past the last
        strides = sat.stride()
        total = torch.zeros_like(w)
        for corner in itertools.product((0, 1), repeat=self.s):
            idx = b * strides[0]
            for d, up in enumerate(corner):
                idx = idx + (hi[:, d] if up else lo[:, d]) * strides[d + 1]
            sign = (-1) ** (self.s - sum(corner))
            total = total + sign * _take(sat.flatten(), idx)
        return total

    def gather_flat(self, start: Tensor, length: Tensor) -> tuple[Tensor, Tensor]:
        """All points of the runs, unpadded: (tile of each (L,), flat point index (L,))."""
        T, R = length.shape
        lens = length.flatten()
        run = torch.repeat_interleave(torch.arange(T * R, device=start.device), lens)
        first = lens.cumsum(0) - lens
        sorted_pos = start.flatten()[run] + torch.arange(run.shape[0], device=start.device) - first[run]
        return torch.div(run, R, rounding_mode="floor"), self.perm[sorted_pos]


def _isqrt(n: Tensor) -> Tensor:
    """floor(sqrt(n)) of integers n >= 0 (< 2^52), exactly."""
    r = torch.sqrt(n.double()).floor().long()
    r = torch.where((r + 1) * (r + 1) <= n, r + 1, r)
    return torch.where(r * r > n, r - 1, r)


def _grid_coords(group: LieGroup, elems: Tensor, orbits: Tensor, prune: bool) -> Tensor | None:
    """The leading coordinates of the lower-bound embedding, or None (one cell)."""
    E = group.distance_lower_bound_coords(elems, orbits) if prune else None
    return None if E is None else E[..., : min(E.shape[-1], _GRID_DIMS)]


def _cell_size(coords: Tensor, mask: Tensor, radius: Tensor) -> Tensor:
    """Cell side per example: ``radius`` (Bg,), at least extent / _MAX_CELLS (and > 0)."""
    big = torch.finfo(coords.dtype).max
    hi = coords.masked_fill(~mask[..., None], -big).amax(1)
    lo = coords.masked_fill(~mask[..., None], big).amin(1)
    ext = (
        torch.where(mask.any(1)[:, None], hi - lo, 0.0).amax(1) if coords.shape[-1] else radius.new_zeros(mask.shape[0])
    )
    h = torch.maximum(radius, ext / (_MAX_CELLS - 2))
    return torch.where(torch.isfinite(h) & (h > 0), h, ext.clamp(min=1.0) + 1.0)


# ------------------------------------------------------------------- nearest candidates
class _Nearest:
    """The k nearest real points (rounded distance, then index) of every query, exactly.

    Built once per call; ``__call__(s, e, k, ordered)`` answers the queries s:e of every example:
    (Bg, e - s, k) local point indices, nearest first (``ordered=False``: the same k in any order),
    0 where fewer real points exist.  ``allin`` (Bg,) examples order their points by index only (every
    point is taken anyway).

    Cell lists at sides h0 2^l (built when first needed), h0 a typical k-th nearest distance /
    ``_CELL_FRACTION``.  A query's first box is the smallest box of cells c +- w around its own
    cell c (at the finest level where w stays within the run limit) whose inscribed ball should hold
    ``_COUNT_MARGIN`` times the needed points if the density were even: the points a box holds come
    from prefix counts per cell, with no distance computed.  The box's need-th rounded distance r
    then bounds the answer's radius: the query is done when everything outside the box is provably
    farther (rounded) than r, else its next box is the smallest one reaching r (one more round).
    """

    def __init__(self, group, qe, qq, qmask, pe, pq, mask, inv_step, allin, k, prune, keys, rows=None):
        self.group, self.qe, self.qq, self.qmask = group, qe, qq, qmask
        self.pe, self.pq, self.mask, self.allin = pe, pq, mask, allin
        self.inv_step, self.keys, self.rows = inv_step, keys, rows
        self.any_allin = not host_reads_free(allin) or bool(allin.any())  # (the masking passes are exact either way)
        self.all_real = known_all(mask)
        Bg, N = mask.shape
        self.n_real = mask.sum(1)
        self.need = torch.clamp(self.n_real, max=k)
        x = None if rows is not None else _grid_coords(group, pe, pq, prune)
        xq = None if x is None or 4 * k >= N else _grid_coords(group, qe, qq, prune)
        if xq is not None:
            radius = self._radius_estimate(k)
            if self._box_fraction(x, xq, radius) > _DENSE_FRACTION:
                xq = None  # pruning would not pay: the boxes hold much of each example
        if xq is None:
            self.x, self.xq = pe.new_zeros(Bg, N, 0), pe.new_zeros(Bg, qmask.shape[1], 0)
            self.h0 = pe.new_ones(Bg)
        else:
            self.x, self.xq = x, xq
            self.h0 = _cell_size(x, mask, radius / _CELL_FRACTION)
        dense = xq is None and rows is None  # ``_dense`` computes distances: on coordinate planes
        self.pe_v, self.pq_v = (_planes(pe), _planes(pq)) if dense else (None, None)
        self.grids: dict[int, _Grid] = {}
        self.sorted: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self.width = max(group.elem_dim, group.q_dim, 1)

    def grid(self, level: int) -> _Grid:
        if level not in self.grids:
            self.grids[level] = _Grid(self.x, self.mask, self.h0 * 2.0**level, self.xq, self.qmask)
        return self.grids[level]

    def sorted_points(self, level: int) -> tuple[Tensor, Tensor, Tensor]:
        """The points in the cell order of ``grid(level)``: coordinate-major elements (E, Bg N) and
        orbits (q, Bg N) and local indices j (Bg N,), so a box's candidates are contiguous runs."""
        if level not in self.sorted:
            perm = self.grid(level).perm
            N = self.mask.shape[1]
            pe_s = self.pe.flatten(0, 1)[perm].T.contiguous()
            pq_s = self.pq.flatten(0, 1)[perm].T.contiguous()
            self.sorted[level] = (pe_s, pq_s, torch.remainder(perm, N).to(self.keys.dtype))
        return self.sorted[level]

    def _radius_estimate(self, k: int, samples: int = 32) -> Tensor:
        """A typical k-th nearest distance per example, from a few queries (only sets the cell
        size: any value gives the same result)."""
        m = self.qmask.shape[1]
        rows = torch.linspace(0, m - 1, min(samples, m), device=self.mask.device).long()
        d = self.group.elem_distance(self.pe[:, None], self.qe[:, rows, None], self.pq[:, None], self.qq[:, rows, None])
        d = d.masked_fill(~self.mask[:, None], math.inf)
        kth = torch.topk(d, min(k, d.shape[-1]), dim=-1, largest=False).values[..., -1]  # (Bg, S)
        kth = torch.where(self.qmask[:, rows] & torch.isfinite(kth), kth, math.nan)
        r = torch.nanquantile(kth, 0.5, dim=1)
        return torch.where(torch.isfinite(r), r, math.inf)

    def _box_fraction(self, x: Tensor, xq: Tensor, radius: Tensor, samples: int = 32) -> float:
        """The fraction of an example's real points that the box of half-side ``radius`` (Bg,) on
        the grid coordinates holds around a typical query (median over a few queries, largest over
        the examples): what the pruned search would compare at least."""
        m = self.qmask.shape[1]
        rows = torch.linspace(0, m - 1, min(samples, m), device=self.mask.device).long()
        far = (x[:, None] - xq[:, rows, None]).abs().amax(-1)  # (Bg, S, N)
        inside = ((far <= radius[:, None, None]) & self.mask[:, None]).sum(-1)
        frac = inside / self.n_real.clamp(min=1)[:, None]
        frac = torch.where(self.qmask[:, rows], frac, math.nan).nanquantile(0.5, dim=1)
        frac = torch.where(torch.isfinite(radius), frac.nan_to_num(0.0), 1.0)
        return float(frac.amax()) if frac.numel() else 0.0

    def _dense(self, s: int, e: int, k: int, ordered: bool) -> Tensor:
        """One cell per example: every query against every point, in chunks of queries (the
        farthest-point rows ``rows`` when given: no distance is computed again)."""
        N = self.mask.shape[1]
        out = []
        j = torch.arange(N, device=self.mask.device)
        for a, z in self.row_chunks(s, e):
            key = self.keys.keys(self.buckets(a, z), j)
            if self.any_allin:
                key = torch.where(self.allin[:, None, None], j.to(key.dtype), key)
            if not self.all_real:
                key = key.masked_fill(~self.mask[:, None, :], self.keys.inf)
            near = _smallest_keys(key, min(k, N), ordered)
            near = torch.where(self.qmask[:, a:z, None], self.keys.index(near), 0)
            out.append(torch.nn.functional.pad(near, (0, k - near.shape[-1])))
        return torch.cat(out, 1)

    def row_chunks(self, s: int, e: int) -> list[tuple[int, int]]:
        """Queries s:e in chunks of the dense search (about ``_SEARCH_ELEMENTS`` distances each)."""
        Bg, N = self.mask.shape
        width = 1 if self.rows is not None else self.width
        step = max(1, _SEARCH_ELEMENTS // max(1, Bg * N * width))
        return [(a, min(e, a + step)) for a in range(s, e, step)]

    def buckets(self, a: int, z: int) -> Tensor:
        """The rounded distances of queries a:z to every point (dense search): (Bg, z - a, N) of the
        key dtype, the farthest-point rows when given."""
        if self.rows is not None:
            return self.rows[:, a:z]
        d = self.group.elem_distance(
            self.pe_v[:, None], self.qe[:, a:z, None], self.pq_v[:, None], self.qq[:, a:z, None]
        )
        return self.keys.buckets(d, self.inv_step[:, None, None])

    def draw(self, s: int, e: int, counts: Tensor, seeds: Tensor, K: int) -> tuple[Tensor, Tensor] | None:
        """The dense search of queries s:e with the Monte-Carlo draw of K of each query's ``counts``
        nearest, fused (``native.nearest_draw``: the points ``neighborhood_indices`` draws, in the same
        order), or None where that kernel does not run (cell lists, int64 keys, other devices)."""
        if self.x.shape[-1] != 0 or self.keys.dtype != torch.int32:
            return None
        mask = None if self.all_real else self.mask
        allin = self.allin if self.any_allin else None
        parts = []
        for a, z in self.row_chunks(s, e):
            got = native.nearest_draw(self.buckets(a, z), mask, allin, self.qmask[:, a:z], counts, seeds[:, a:z], K)
            if got is None:
                return None
            parts.append(got)
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)

    def __call__(self, s: int, e: int, k: int, ordered: bool = True) -> Tensor:
        if self.x.shape[-1] == 0:
            return self._dense(s, e, k, ordered)
        Bg = self.mask.shape[0]
        mc = e - s
        dev = self.mask.device
        out = torch.zeros(Bg * mc, k, dtype=torch.long, device=dev)
        b_of = torch.arange(Bg, device=dev).repeat_interleave(mc)  # (Bg*mc,)
        q_of = torch.arange(s, e, device=dev).repeat(Bg)
        pending = self.qmask[:, s:e].reshape(-1).clone()
        w, level = self._first_boxes(b_of, q_of, pending)
        while bool(pending.any()):
            rows = pending.nonzero().squeeze(1)
            # one pass per (level, box width): a box's runs are as many as its width needs
            lw = level[rows] * (int(w[rows].max()) + 1) + w[rows]
            for key in lw.unique().tolist():
                rl = rows[lw == key]
                self._round(int(level[rl[0]]), rl, b_of, q_of, w, level, out, pending, k, ordered)
        return out.view(Bg, mc, k)

    def _first_boxes(self, b_of: Tensor, q_of: Tensor, pending: Tensor) -> tuple[Tensor, Tensor]:
        """Each query's first box (w, level): at the finest level, the smallest w whose box holds
        every real point of the example or whose inscribed ball (radius w h) would hold
        ``_COUNT_MARGIN`` times the needed points at the box's mean density (a binary search on
        the prefix counts; counts grow with w).  Queries that no box of the run limit satisfies
        try the next level, and so do all queries while a level has too many cells for the counts."""
        n = b_of.shape[0]
        dev = b_of.device
        w = torch.full((n,), _BOX, dtype=torch.long, device=dev)
        level = torch.zeros(n, dtype=torch.long, device=dev)
        todo = pending.nonzero().squeeze(1)
        lv = 0
        while todo.numel():
            g = self.grid(lv)
            if g.counts() is None:  # too many cells for the count table: a coarser level
                if max(g.G) <= 1:
                    level[todo] = lv
                    break
                lv += 1
                continue
            b, c = b_of[todo], g.extra_cells[b_of[todo], q_of[todo]]
            lo = torch.ones_like(b)
            hi = torch.full_like(b, max(1, min(g.w_cap, max(g.G))))
            fits = self._box_holds(g, b, c, hi)
            while bool((lo < hi).any()):  # smallest w in [lo, hi] whose box holds enough
                mid = (lo + hi) // 2
                good = self._box_holds(g, b, c, mid)
                hi = torch.where(good, mid, hi)
                lo = torch.where(good, lo, mid + 1)
            sel = todo[fits]
            w[sel], level[sel] = lo[fits], lv
            todo = todo[~fits]
            if max(g.G) <= 1:  # one cell: nothing coarser exists
                w[todo], level[todo] = 1, lv
                break
            lv += 1
        return w, level

    def _box_holds(self, g: _Grid, b: Tensor, c: Tensor, w: Tensor) -> Tensor:
        """Whether the box of cells c +- w of example b holds every real point of it, or enough
        that its inscribed ball (radius w h, volume fraction V_s w^s / (2w + 1)^s of the box) would
        hold ``_COUNT_MARGIN`` times the needed points at the box's mean density: (n,) bool."""
        cnt = g.box_count(b, c, w)
        wd = w.to(torch.float64)
        unit = math.pi ** (g.s / 2) / math.gamma(g.s / 2 + 1)  # volume of the unit s-ball
        ball = cnt.to(torch.float64) * unit * (wd / (2 * wd + 1)) ** g.s
        return (cnt >= self.n_real[b]) | (ball >= _COUNT_MARGIN * self.need[b])

    def _round(self, lv, rows, b_of, q_of, w, level, out, pending, k, ordered):
        """One pass over the pending queries ``rows`` of level ``lv`` (of one box width): a tile is
        the queries sharing a cell; each query row holds its tile's candidates (padded to the
        batch's widest)."""
        g = self.grid(lv)
        cells = g.extra_cells[b_of[rows], q_of[rows]]
        tile_key = torch.stack([b_of[rows], w[rows]] + list(cells.unbind(-1)), -1)
        uniq, inv = torch.unique(tile_key, dim=0, return_inverse=True)
        start, length = g.box(uniq[:, 0], uniq[:, 2:], uniq[:, 1])
        total = length.sum(1)  # (T,)
        # queries ordered by the candidate count of their tile: batches of similar width
        order = torch.argsort(total[inv] * (inv.shape[0] + 1) + inv, descending=True)
        rows, inv = rows[order], inv[order]
        budget = max(1, _SEARCH_ELEMENTS // self.width)
        for i, j in _batches(total[inv].tolist(), budget):
            tiles, tile_of = torch.unique(inv[i:j], return_inverse=True)
            tile = (tiles, tile_of, start, length, total)
            self._batch(lv, rows[i:j], tile, b_of, q_of, w, level, out, pending, k, ordered)

    def _batch(self, lv, rows, tile, b_of, q_of, w, level, out, pending, k, ordered):
        g = self.grid(lv)
        tiles, tile_of, start, length, total = tile
        pe_s, pq_s, j_s = self.sorted_points(lv)
        pos, cok, _ = g.gather(start[tiles], length[tiles])  # (T', C)
        # the tiles' candidates (coordinates, orbits, indices: keys.limit where no point), then one row
        # copy per query
        u, q_u = _take(pe_s, pos), _take(pq_s, pos)  # (E, T', C), (q, T', C)
        j = _take(j_s, pos).masked_fill_(~cok, self.keys.limit)
        u, q_u, j = u.index_select(1, tile_of), q_u.index_select(1, tile_of), j.index_select(0, tile_of)
        b, qi = b_of[rows], q_of[rows]  # (nq,)
        have = total[tiles][tile_of]
        d = self.group.elem_distance(
            u.movedim(0, -1), self.qe[b, qi][:, None], q_u.movedim(0, -1), self.qq[b, qi][:, None]
        )  # (nq, C)
        inv_step = self.inv_step[b]
        step = 1 / inv_step
        key = self.keys.keys(self.keys.buckets_(d, inv_step[:, None]), j)
        if self.any_allin:
            key = torch.where(self.allin[b][:, None] & (j < self.keys.limit), j.to(key.dtype), key)
        kk = min(k, key.shape[-1])
        near = _smallest_keys(key, kk, ordered)  # (nq, kk)
        # done: the box holds every real point, or the need-th rounded distance r found keeps
        # everything outside the box (farther than w h) at a rounded distance > r
        need = self.need[b]
        if ordered:
            kth = near.gather(-1, (need - 1).clamp(0, kk - 1)[:, None]).squeeze(-1)
        else:  # the largest of the kk nearest; it bounds the radius only when need == kk
            kth = near.amax(-1)
        kb = self.keys.bucket_of(kth)
        r = kb.to(d.dtype)
        h = g.h[b] * (1 - g.slack)
        reach = w[rows] * h - g.abs_slack[b]
        radius = (r + 2) * step * (1 + g.slack) + g.abs_slack[b]
        # enough points for a radius (the last bucket holds every farther distance: it gives none)
        enough = (have >= need) & ~self.allin[b] & (kb < self.keys.cap)
        if not ordered:
            enough &= need == kk
        done = (have >= self.n_real[b]) | (enough & (radius <= reach))
        vals = self.keys.index(near)
        out[rows[done], :kk] = vals[done]
        pending[rows[done]] = False
        # the rest: the finest level whose box of at most w_cap cells reaches the radius found, or
        # the next level up when the box held too few points
        lvl = level[rows]
        need_reach = (radius + g.abs_slack[b]) / h  # in cells of this level
        cap = float(max(1, min(g.w_cap, 1 << 20)))
        up = (lvl + torch.ceil(torch.log2(need_reach / cap)).nan_to_num(0, 0, 0).long()).clamp(min=0)
        new_w = torch.ceil(need_reach / 2.0 ** (up - lvl).double()).long().clamp(min=1)
        stall = (up == lvl) & (new_w <= w[rows])  # the division rounded to the failed box: widen it
        new_w = torch.where(stall, w[rows] + 1, new_w)
        up = torch.where(new_w > cap, up + 1, up)  # rounding at the edge: one level more
        new_w = torch.where(new_w > cap, torch.ceil(new_w / 2.0).long(), new_w)
        new_lv = torch.where(enough, up, lvl + 1)
        new_w = torch.where(enough, new_w, w[rows])
        again = rows[~done]
        level[again] = new_lv[~done]
        w[again] = new_w[~done]


def _smallest_keys(key: Tensor, k: int, ordered: bool) -> Tensor:
    """The k smallest keys of each row: ascending (``ordered``) or in any order (``native.smallest``,
    about twice as fast as ``torch.topk`` on CPU)."""
    if ordered:
        return torch.topk(key, k, dim=-1, largest=False).values
    return native.smallest(key, k)


def _batches(sizes: list[int], budget: int):
    """Consecutive ranges [i, j) of items (sorted by size, largest first) whose count times the
    first size stays within ``budget`` (at least one item each)."""
    i, n = 0, len(sizes)
    while i < n:
        j = min(n, i + max(1, budget // max(1, sizes[i])))
        yield i, j
        i = j


def _fps_loop(
    group: LieGroup, elems: Tensor, orbits: Tensor, mask: Tensor, m: int, res: float, keep_rows: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The plain farthest-point loop: m steps of one distance row each -> (idx, ok, rows).  ``rows``
    (Bg, m, N) when ``keep_rows``: each step's row as ``_Keys.buckets`` (what the neighbour search
    ranks those queries by), else None.  Groups with a ``native_distance`` run the whole loop in
    ``lieconv.native.farthest`` on float32 CPU tensors (the same steps, on that kernel's distances)."""
    Bg, N = mask.shape
    keys = _Keys(res, N)
    if m > 0 and Bg > 0 and N > 0 and group.q_dim == 0 and group.native_distance is not None:
        first = mask.to(torch.uint8).argmax(dim=1)
        d = group.elem_distance(elems, elems[torch.arange(Bg, device=mask.device), first][:, None], orbits, orbits)
        fast = native.farthest(
            group.native_distance,
            elems,
            None if known_all(mask) else mask,
            m,
            first,
            _inv_step(d, mask, res),
            keys.cap,
            keys.dtype if keep_rows else None,
        )
        if fast is not None:
            return fast
    rows = torch.empty(Bg, m, N, dtype=keys.dtype, device=mask.device) if keep_rows else None
    if m == 0:
        z = torch.zeros(Bg, 0, dtype=torch.long, device=mask.device)
        return z, z.bool(), rows
    offsets = torch.arange(Bg, device=mask.device) * N
    # min_dist: rounded distance to the chosen set; -1 marks padding (never the farthest)
    dtype = elems.dtype if elems.is_floating_point() else orbits.dtype
    min_dist = torch.full((Bg, N), math.inf, dtype=dtype, device=mask.device).masked_fill(~mask, -1.0)
    flat_min = min_dist.view(-1)
    current = mask.to(torch.uint8).argmax(dim=1)  # first real point (0 if none)
    chosen, best = [current], [torch.where(mask.any(1), 1.0, 0.0).to(dtype)]
    inv_step = None
    e_cm, q_cm = _planes(elems), _planes(orbits)
    e_rows, q_rows = elems.reshape(Bg * N, elems.shape[-1]), orbits.reshape(Bg * N, orbits.shape[-1])
    all_real = known_all(mask)
    no_orbit = q_rows.new_empty(Bg, 1, 0) if q_rows.shape[1] == 0 else None  # (no gather of nothing)
    for t in range(m):
        at = current + offsets  # flat index of each example's new point
        q_at = no_orbit if no_orbit is not None else q_rows.index_select(0, at)[:, None]
        d = group.elem_distance(e_cm, e_rows.index_select(0, at)[:, None], q_cm, q_at)
        if inv_step is None:  # an invariant per-example scale: the largest distance from the start
            inv_step = _inv_step(d, mask, res)[:, None]
        r = (d * inv_step).round_()
        # NaN (only at padding, whose minimum is -1) ignored; torch.minimum is vectorised, fmin is not
        torch.minimum(min_dist, r if all_real else r.nan_to_num(nan=-1.0), out=min_dist)
        if rows is not None:  # without padding no NaN: the clamp and the cast in the copy
            rows[:, t] = r.clamp_(max=keys.cap) if all_real else keys.clamp_(r)
        flat_min.index_fill_(0, at, 0.0)
        if t + 1 < m:
            top, current = min_dist.max(dim=1)  # first index among equal maxima
            chosen.append(current)
            best.append(top)
    # a step's point is new while its running minimum was > 0 (a real point not chosen before)
    return torch.stack(chosen, 1), torch.stack(best, 1) > 0, rows


def _query_seeds(generator, Bg: int, m: int, device) -> Tensor:
    """One random seed per query of the Monte-Carlo draw, (Bg, m) int64 (53 random bits), drawn at
    once from ``generator`` (None / torch.Generator: ``torch.rand``; ``lieconv.random.ExampleRandom``:
    keyed by example and query index), so the draws do not depend on how the queries are chunked."""
    return (_random.uniform((Bg, m), generator, dtype=torch.float64, device=device) * 2.0**53).long()


def _random_keys(seeds: Tensor, near: Tensor) -> Tensor:
    """Random int64 keys of the Monte-Carlo draw for the candidates ``near`` (Bg, mc, k) (local
    point indices) of queries with ``seeds`` (Bg, mc) (``_query_seeds``): each query's seed hashed
    with each candidate's point index (splitmix64).

    A key belongs to a (query, point) pair, not to a rank in the distance order, so the points
    drawn depend only on which points are candidates: two nearly tied candidates that swap places
    (the rounding of g x can do that) change nothing.  Only the edge of the ball matters.
    """
    return _random.hash_pairs(seeds[..., None], near)


@torch.no_grad()
def farthest_point_indices(
    group: LieGroup, elems: Tensor, orbits: Tensor, mask: Tensor, m: int, *, prune: bool = True, keep_rows: bool = False
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor | None]:
    """Farthest-point subsampling on the group distance.

    Starts at the first real point of each example (an index-based, hence equivariant, choice),
    then repeatedly adds the real point farthest from those chosen (distances rounded to
    ``TIE_RESOLUTION`` of the largest distance from the start, ties going to the lowest index).
    An example with fewer than ``m`` real points repeats points, and the repeats are masked out.

    The result is that of the plain loop (choose the argmax of the running minimum, lower the
    minimum by the distances to the new point), computed in fewer passes: the P largest running
    minima c_1..c_P (by value, then index) are taken at once as long as c_i is no closer (rounded)
    to any earlier c_a than its own running minimum, because then each c_i is the argmax after
    c_1..c_(i-1) were added; and a new point c only lowers the minimum of points closer to it
    than the current largest minimum r, which the cell list finds (the box of cells around c
    within r).  ``prune=False`` updates every point (one cell per example): the same result.

    Small clouds (``N <= _FPS_LOOP_POINTS``) and ``prune=False`` run the plain loop itself.
    ``keep_rows``: also return the loop's distance rows, rounded as the neighbour search rounds
    them, (Bg, m, N) int (``neighborhood_indices(..., query_rows=)`` then computes no distance), or
    None where they are not kept (the pruned passes, or more than ``_ROWS_ELEMENTS`` entries).

    Shapes: elems (Bg, N, E), orbits (Bg, N, q), mask (Bg, N) -> idx (Bg, m) long, mask (Bg, m) bool.
    """
    Bg, N = mask.shape
    res = _resolution(elems, orbits)
    pe, pq = _precise(elems), _precise(orbits)
    if not prune or N <= _FPS_LOOP_POINTS:
        idx, ok, rows = _fps_loop(group, pe, pq, mask, m, res, keep_rows and 0 < Bg * m * N <= _ROWS_ELEMENTS)
        return (idx, ok, rows) if keep_rows else (idx, ok)
    idx, ok = _fps_pruned(group, pe, pq, mask, m, res)
    return (idx, ok, None) if keep_rows else (idx, ok)


def _fps_pruned(group: LieGroup, pe: Tensor, pq: Tensor, mask: Tensor, m: int, res: float) -> tuple[Tensor, Tensor]:
    """Farthest-point sampling in passes of several points, updating the minima through a cell list
    (see ``farthest_point_indices``)."""
    Bg, N = mask.shape
    dev = mask.device
    chosen = torch.zeros(Bg, m, dtype=torch.long, device=dev)
    chosen_ok = torch.zeros(Bg, m, dtype=torch.bool, device=dev)
    if m == 0 or Bg == 0 or N == 0:
        return chosen, chosen_ok
    ar = torch.arange(Bg, device=dev)
    first = mask.to(torch.uint8).argmax(1)  # the first real point (0 if none)
    d = group.elem_distance(pe, pe[ar, first][:, None], pq, pq[ar, first][:, None])
    inv_step = _inv_step(d, mask, res)  # (Bg,), invariant
    # min_dist: rounded distance to the chosen set; -1 marks padding (never the farthest)
    min_dist = torch.full((Bg, N), math.inf, dtype=torch.float64, device=dev).masked_fill(~mask, -1.0)
    min_dist = torch.fmin(min_dist, torch.round(d * inv_step[:, None]))  # fmin: NaN at padding ignored
    min_dist[ar, first] = 0.0
    chosen[:, 0], chosen_ok[:, 0] = first, mask.any(1)
    count = torch.ones(Bg, dtype=torch.long, device=dev)
    flat_min = min_dist.view(-1)
    pe_cm, pq_cm = pe.flatten(0, 1).T.contiguous(), pq.flatten(0, 1).T.contiguous()  # coordinate-major
    x = _grid_coords(group, pe, pq, True)
    if x is None:
        x = pe.new_zeros(Bg, N, 0)
    x_f = x.flatten(0, 1)
    grid = None
    none = x.new_zeros(Bg, 0, x.shape[-1]), mask.new_zeros(Bg, 0)
    budget = max(1, _SEARCH_ELEMENTS // max(group.elem_dim, group.q_dim, 1))
    P = 4
    index_key = N - 1 - torch.arange(N, device=dev)  # larger for lower indices
    slots = torch.arange(m, device=dev)
    while True:
        active = count < m
        if not bool(active.any()):
            break
        P = max(1, min(P, N, budget // max(1, Bg * P) if x.shape[-1] == 0 else N))
        key = (min_dist.long() + 1) * N + index_key  # value, then the lower index, first
        top = torch.topk(key, P, dim=1, sorted=True).indices  # (Bg, P)
        cval = min_dist.gather(1, top)
        ce, cq = pe[ar[:, None], top], pq[ar[:, None], top]
        dd = group.elem_distance(ce[:, None, :, :], ce[:, :, None, :], cq[:, None, :, :], cq[:, :, None, :])
        later = torch.ones(P, P, dtype=torch.bool, device=dev).triu(1)  # a < i
        conflict = ((torch.round(dd * inv_step[:, None, None]) < cval[:, None, :]) & later).any(1)
        bad = conflict | (cval <= 0)
        n_acc = torch.where(bad.any(1), bad.to(torch.uint8).argmax(1), P)
        n_acc = torch.minimum(n_acc, m - count) * active
        # examples with every real point chosen repeat the argmax, masked
        done = active & (cval[:, 0] <= 0)
        if bool(done.any()):
            rest = done[:, None] & (slots >= count[:, None])
            chosen = torch.where(rest, top[:, :1], chosen)
            count = torch.where(done, m, count)
        take = torch.arange(P, device=dev) < n_acc[:, None]  # (Bg, P)
        if not bool(take.any()):
            continue
        pos = count[:, None] + torch.arange(P, device=dev)
        bi = ar[:, None].expand(Bg, P)[take]
        chosen[bi, pos[take]] = top[take]
        chosen_ok[bi, pos[take]] = True
        count = count + n_acc
        P = min(2 * int(n_acc.max()) + 2, 256)
        # lower the running minima: points within (r + 1 step) of a new point, r the largest minimum
        radius = (cval[:, 0] + 1) / inv_step * (1 + _SLACK_EPS * torch.finfo(pe.dtype).eps)
        if grid is None or bool((active & (radius < grid.h * (_BOX / 1.5))).any()):  # cells of about radius / 2
            grid = (
                _Grid(x, mask, _cell_size(x, mask, radius / _BOX), *none)
                if x.shape[-1]
                else _Grid(x, mask, pe.new_ones(Bg), *none)
            )
        new = bi * N + top[take]  # flat indices
        c = torch.floor((x_f[new] - grid.lo[bi]) / grid.h[bi, None]).long().clamp(min=0)
        w = torch.ceil((radius[bi] + grid.abs_slack[bi]) / (grid.h[bi] * (1 - grid.slack))).long().clamp(min=1)
        start, length = grid.box(bi, c, w)
        sizes = length.sum(1).tolist()
        i = 0
        while i < len(sizes):  # tiles in order, about ``budget`` pairs at a time
            j, n = i, 0
            while j < len(sizes) and (j == i or n + sizes[j] <= budget):
                n, j = n + sizes[j], j + 1
            tile, cand = grid.gather_flat(start[i:j], length[i:j])  # (L,), (L,)
            src = new[i:j][tile]
            dn = group.elem_distance(
                _take(pe_cm, cand).T, _take(pe_cm, src).T, _take(pq_cm, cand).T, _take(pq_cm, src).T
            )
            flat_min.scatter_reduce_(0, cand, torch.round(dn * inv_step[bi[i:j]][tile]).to(flat_min.dtype), "amin")
            i = j
        flat_min[new] = 0.0
    return chosen, chosen_ok


def full_neighborhoods(query_mask: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The neighbourhoods that hold every real point, in index order: no search, no draws.

    What :func:`neighborhood_indices` selects when every real point is a candidate of every query
    (``fill = 1`` or ``knn``, and ``num_nbhd >= N``), up to the order of the neighbours (there:
    nearest first; here: by index, the same for every query and independent of the coordinates).

    Shapes: query_mask (Bg, m), mask (Bg, N) -> nbhd_idx (Bg, m, N) long (an expanded view),
    nbhd_mask (Bg, m, N) bool.
    """
    Bg, N = mask.shape
    m = query_mask.shape[1]
    idx = torch.arange(N, device=mask.device).expand(Bg, m, N)
    return idx, query_mask[:, :, None] & mask[:, None, :]


@torch.no_grad()
def neighborhood_indices(
    group: LieGroup,
    query_elems: Tensor,
    query_orbits: Tensor,
    query_mask: Tensor,
    elems: Tensor,
    orbits: Tensor,
    mask: Tensor,
    *,
    num_nbhd: int,
    fill: float,
    knn: bool = False,
    generator: torch.Generator | None = None,
    prune: bool = True,
    query_rows: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Monte-Carlo neighbourhoods of the queries among all points.

    For query i of example b the candidate set is the ``ceil(fill * n_b)`` nearest real points
    (n_b real points in example b; distances rounded to ``TIE_RESOLUTION`` of the example's
    scale, ties going to the lowest index); ``num_nbhd`` of them are drawn uniformly without
    replacement (all of them when fewer): the largest random keys of ``_random_keys``, one per
    (query, point) pair, so the draw depends on the candidate set, not on its distance order; a
    draw lists its points in ascending index order (without one, they come nearest first).
    ``knn=True`` takes the ``num_nbhd`` nearest instead.
    When the neighbourhood is every real point (``num_nbhd >= n_b`` and the ball holds them all)
    they are listed in index order and no distance is computed.  Masked slots hold index 0.
    ``prune=False`` compares every pair (the reference for the exact pruning; same result).
    ``query_rows`` (Bg, m, N): the queries' rounded distances to every point, when the queries are
    farthest points of these points (``farthest_point_indices(..., keep_rows=True)``): the same
    numbers the search would compute, so it only ranks them (same result).

    Shapes: queries (Bg, m, E)/(Bg, m, q)/(Bg, m); points (Bg, N, E)/(Bg, N, q)/(Bg, N)
        -> nbhd_idx (Bg, m, K) long, nbhd_mask (Bg, m, K) bool with K = min(num_nbhd, N).
    """
    Bg, N = mask.shape
    m = query_mask.shape[1]
    K = min(num_nbhd, N)
    dev = mask.device
    n_real = mask.sum(1)  # (Bg,)
    if knn:
        k_cand = torch.clamp(n_real, max=K)
    else:
        k_cand = torch.clamp(torch.ceil(fill * n_real.to(torch.float64)).long(), min=1)
        k_cand = torch.minimum(k_cand, n_real)
    allin = (k_cand >= n_real) & (n_real <= K)  # every real point is in every neighbourhood
    # the candidates per query k_max, and whether every example takes all of them: one host read
    k_max_t = (k_cand.max() if Bg else k_cand.new_ones(())).clamp(min=K).clamp(max=N).clamp(min=1)
    every = ((k_cand == k_max_t) | (n_real == 0)).all()
    k_max, all_in, every = (int(v) for v in torch.stack([k_max_t, allin.all().long(), every.long()]).tolist())
    ranks_all = torch.arange(k_max, device=dev)
    if all_in:  # then k_max == K and no draw is made
        order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices[:, :K]  # real points by index
        ok = (ranks_all[:K] < k_cand[:, None])[:, None, :] & query_mask[..., None]
        return torch.where(ok, order[:, None, :], 0), ok
    res = _resolution(elems, orbits)
    pe, pq, qe, qq = (_precise(t) for t in (elems, orbits, query_elems, query_orbits))
    inv_step = _example_inv_step(group, pe, pq, mask, res) if query_rows is None else None
    keys = _Keys(res, N)
    nearest = _Nearest(group, qe, qq, query_mask, pe, pq, mask, inv_step, allin, k_max, prune, keys, query_rows)
    # a Monte-Carlo draw among all k_max candidates of every query depends on the candidate set only
    # (the random keys belong to (query, point) pairs): their distance order is not needed
    ordered = knn or k_max <= K or not every
    # the search takes many queries per call (its rounds and batches then hold many queries each), the
    # draw cache-sized parts of them
    per_pair = max(1, Bg * k_max)
    chunk, part = max(1, _NEAR_ELEMENTS // per_pair), max(1, _DRAW_ELEMENTS // per_pair)
    seeds = None if knn or k_max <= K else _query_seeds(generator, Bg, m, dev)
    in_cand = ranks_all < k_cand[:, None, None]  # (Bg, 1, k_max)
    nbhd_idx = torch.empty(Bg, m, K, dtype=torch.long, device=dev)
    nbhd_mask = torch.empty(Bg, m, K, dtype=torch.bool, device=dev)
    for s0 in range(0, m, chunk):
        e0 = min(m, s0 + chunk)
        drawn = None if seeds is None else nearest.draw(s0, e0, k_cand, seeds, K)
        if drawn is None:
            found = nearest(s0, e0, k_max, ordered)  # (Bg, mc, k_max)
            drawn = None if seeds is None else native.draw(found, seeds[:, s0:e0], k_cand, K)
        if drawn is not None:  # the draw below, in C++ (the same bits)
            ok = drawn[1] & query_mask[:, s0:e0, None]
            nbhd_idx[:, s0:e0] = torch.where(ok, drawn[0], 0)
            nbhd_mask[:, s0:e0] = ok
            continue
        for s in range(s0, e0, part):
            e = min(e0, s + part)
            near = found[:, s - s0 : e - s0]
            if knn or k_max <= K:
                ok = in_cand[..., :K].expand(Bg, e - s, K)
                points = near[..., :K]
            else:  # K of the candidates, uniformly: the K largest of their keys, in ascending point order
                keys = _random_keys(seeds[:, s:e], near).masked_fill_(~in_cand, _KEY_MIN)
                kv, ranks = torch.topk(keys, K, dim=-1)
                ok = kv > _KEY_MIN  # a prefix of the K slots
                points = torch.where(ok, torch.gather(near, -1, ranks), N).sort(-1).values
            ok = ok & query_mask[:, s:e, None]
            nbhd_idx[:, s:e] = torch.where(ok, points, 0)
            nbhd_mask[:, s:e] = ok
    return nbhd_idx, nbhd_mask
