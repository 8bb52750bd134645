"""Choosing query points and neighbourhoods on the group, without any N x N tensor.

All selection here is piecewise constant in the inputs, so it runs under ``torch.no_grad()``; the
layers compute kernel inputs with gradients only for the chosen (query, neighbour) pairs.

* ``farthest_point_indices``: farthest-point subsampling on the invariant group distance
  (paper appendix A.4).  m steps, each an O(N) distance row: O(m N) time, O(N) memory.
* ``neighborhood_indices``: for each query, the ``fill`` fraction of the example's real points
  that are nearest in the invariant distance (the ball whose radius holds that fraction), then a
  uniform Monte-Carlo sample of ``num_nbhd`` of them without replacement (``knn=True``: the
  ``num_nbhd`` nearest).  Distances are computed in chunks of queries: O(chunk N) memory.

Both depend on the coordinates only through invariant distances and on random draws only through
``generator`` (with shapes that depend only on the tensor sizes), so f(x) and f(g x) with the same
generator state choose the same indices: the selection is exactly equivariant.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .groups.base import LieGroup

__all__ = ["Selection", "farthest_point_indices", "neighborhood_indices", "full_neighborhoods", "gather_points"]

_CHUNK_ELEMENTS = 1 << 22  # elements of the largest temporary in a distance chunk


class Selection(NamedTuple):
    """Which points a LieConv layer evaluates at and which neighbours each one sums over.

    query_idx (Bg, m) long or None (no subsampling: the queries are all N points),
    query_mask (Bg, m) bool, nbhd_idx (Bg, m, K) long, nbhd_mask (Bg, m, K) bool.
    ``full``: every query's neighbourhood is all N points in index order (``K = N``,
    ``nbhd_idx[b, i, j] = j``), so a layer may skip the gathers (see ``full_neighborhoods``).
    """
    query_idx: Tensor | None
    query_mask: Tensor
    nbhd_idx: Tensor
    nbhd_mask: Tensor
    full: bool = False


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """Gather rows along the point axis: x (Bx, N, *f), idx (Bi, *s) -> (max(Bx, Bi), *s, *f).

    A batch of size 1 on either side is broadcast (shared geometry).
    """
    B = max(x.shape[0], idx.shape[0])
    feat = x.shape[2:]
    F = math.prod(feat)
    if F == 0:
        return x.new_zeros(B, *idx.shape[1:], *feat)
    if idx.shape[0] == 1 and x.shape[0] > 1:  # one index set for the batch: plain indexing
        return x[:, idx[0]]
    x = x.expand(B, *x.shape[1:]).reshape(B, x.shape[1], F)
    flat = idx.expand(B, *idx.shape[1:]).reshape(B, -1)
    out = torch.gather(x, 1, flat.unsqueeze(-1).expand(B, flat.shape[1], F))
    return out.reshape(B, *idx.shape[1:], *feat)


#: Relative resolution at which distances count as equal: exact ties of the maths (the stabilizer
#: samples of one point, pixel grids) come out of the arithmetic in either order, so distances are
#: rounded to this fraction of a per-example scale and equal ones are ordered by index.
TIE_RESOLUTION = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def _quantize(d: Tensor, scale: Tensor) -> Tensor:
    """Round distances to ``TIE_RESOLUTION * scale`` (inf and negative sentinels kept)."""
    step = scale * TIE_RESOLUTION.get(d.dtype, 1e-4)
    return torch.where(torch.isfinite(d) & (d >= 0), torch.round(d / step), d)


def _distance_rows(group: LieGroup, qe: Tensor, qq: Tensor, elems: Tensor, orbits: Tensor) -> Tensor:
    """Distances between queries (Bg, mc, E)/(Bg, mc, q) and all points (Bg, N, E)/(Bg, N, q)."""
    return group.elem_distance(elems[:, None, :, :], qe[:, :, None, :], orbits[:, None, :, :], qq[:, :, None, :])


@torch.no_grad()
def farthest_point_indices(group: LieGroup, elems: Tensor, orbits: Tensor, mask: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """Farthest-point subsampling on the group distance.

    Starts at the first real point of each example (an index-based, hence equivariant, choice),
    then repeatedly adds the real point farthest from those chosen (distances rounded to
    ``TIE_RESOLUTION``, ties going to the lowest index).  An example with fewer than
    ``m`` real points repeats points, and the repeats are masked out.

    Shapes: elems (Bg, N, E), orbits (Bg, N, q), mask (Bg, N) -> idx (Bg, m) long, mask (Bg, m) bool.
    """
    Bg, N = mask.shape
    dtype = elems.dtype if elems.is_floating_point() else orbits.dtype
    arange = torch.arange(Bg, device=mask.device)
    # min_dist: rounded distance to the chosen set; -1 marks padding (never the farthest)
    min_dist = torch.full((Bg, N), math.inf, dtype=dtype, device=mask.device).masked_fill(~mask, -1.0)
    current = mask.to(torch.uint8).argmax(dim=1)  # first real point (0 if none)
    ok = mask.any(1)
    chosen, chosen_ok = [], []
    inv_step = None
    for _ in range(m):
        chosen.append(current)
        chosen_ok.append(ok)
        d = group.elem_distance(elems, elems[arange, current][:, None], orbits, orbits[arange, current][:, None])
        if inv_step is None:  # an invariant per-example scale: the largest distance from the start
            scale = d.masked_fill(~mask, 0).amax(1, keepdim=True).clamp(min=torch.finfo(d.dtype).tiny)
            inv_step = 1.0 / (scale * TIE_RESOLUTION.get(d.dtype, 1e-4))
        min_dist = torch.fmin(min_dist, torch.round(d * inv_step).to(dtype))  # fmin: NaN at padding ignored
        min_dist[arange, current] = 0.0
        best, current = min_dist.max(dim=1)  # first index among equal maxima
        ok = best > 0  # a real point not chosen before
    return torch.stack(chosen, 1), torch.stack(chosen_ok, 1)


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
def neighborhood_indices(group: LieGroup, query_elems: Tensor, query_orbits: Tensor, query_mask: Tensor,
                         elems: Tensor, orbits: Tensor, mask: Tensor, *, num_nbhd: int, fill: float,
                         knn: bool = False, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Monte-Carlo neighbourhoods of the queries among all points.

    For query i of example b the candidate set is the ``ceil(fill * n_b)`` nearest real points
    (n_b real points in example b; distances rounded to ``TIE_RESOLUTION`` of the row's largest,
    ties going to the lowest index); ``num_nbhd`` of them are drawn uniformly without replacement
    (all of them when fewer).  ``knn=True`` takes the ``num_nbhd`` nearest instead.

    Shapes: queries (Bg, m, E)/(Bg, m, q)/(Bg, m); points (Bg, N, E)/(Bg, N, q)/(Bg, N)
        -> nbhd_idx (Bg, m, K) long, nbhd_mask (Bg, m, K) bool with K = min(num_nbhd, N).
    """
    Bg, N = mask.shape
    m = query_mask.shape[1]
    K = min(num_nbhd, N)
    n_real = mask.sum(1)  # (Bg,)
    if knn:
        k_cand = torch.clamp(n_real, max=K)
    else:
        k_cand = torch.clamp(torch.ceil(fill * n_real.to(torch.float64)).long(), min=1)
        k_cand = torch.minimum(k_cand, n_real)
    k_max = max(1, min(N, int(max(int(k_cand.max()) if Bg else 1, K))))
    width = max(group.elem_dim, group.q_dim, 1)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, Bg * N * width))
    nbhd_idx = torch.empty(Bg, m, K, dtype=torch.long, device=mask.device)
    nbhd_mask = torch.empty(Bg, m, K, dtype=torch.bool, device=mask.device)
    ranks_all = torch.arange(k_max, device=mask.device)
    for s in range(0, m, chunk):
        e = min(m, s + chunk)
        d = _distance_rows(group, query_elems[:, s:e], query_orbits[:, s:e], elems, orbits)
        d = d.masked_fill(~mask[:, None, :], math.inf)
        scale = d.masked_fill(~mask[:, None, :], 0).amax(-1, keepdim=True).clamp(min=torch.finfo(d.dtype).tiny)
        # unique keys (rounded distance, then index) make topk's choice and order deterministic
        key = _quantize(d, scale).to(torch.float64) * N + torch.arange(N, device=d.device, dtype=torch.float64)
        near = torch.topk(key, k_max, dim=-1, largest=False, sorted=True).indices  # (Bg, mc, k_max)
        in_cand = ranks_all < k_cand[:, None, None]                           # (Bg, 1, k_max)
        if knn or K >= k_max:
            ranks = ranks_all[:K].expand(Bg, e - s, K)
            ok = in_cand[..., :K].expand(Bg, e - s, K)
        else:
            keys = torch.rand(Bg, e - s, k_max, generator=generator, device=mask.device)
            keys = keys.masked_fill(~in_cand, -1.0)
            kv, ranks = torch.topk(keys, K, dim=-1)
            ok = kv >= 0
        nbhd_idx[:, s:e] = torch.gather(near, -1, ranks)
        nbhd_mask[:, s:e] = ok & query_mask[:, s:e, None]
    return nbhd_idx, nbhd_mask
