"""The LieConv layer (paper eq. 9, Algorithm 2, PointConv trick of appendix A.1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import native
from .._checks import check_fraction, check_int
from ..data import FarthestOrder, Lifted
from ..groups.base import LieGroup
from ..neighbors import Selection, farthest_point_indices, full_neighborhoods, gather_points, neighborhood_indices
from ..random import resolve_generator
from ..runtime import known_all
from .functional import _spans, contract, point_contract
from .kernels import KernelMLP
from .packing import RowPacking

__all__ = ["LieConv", "KERNEL_INPUTS", "gather_contract_linear", "zero_masked"]

#: ``kernel_input`` choices: the paper's log, or the group's continuous ``rel_embed``.
KERNEL_INPUTS = ("log", "smooth")


class LieConv(nn.Module):
    r"""Group convolution on lifted point data.

    .. math::
        h_i = \frac{1}{n_i} \sum_{j \in \mathrm{nbhd}(i)} k_\theta(a_{ij}) f_j,\qquad
        a_{ij} = [\log(v_j^{-1} u_i), q_i, q_j]

    computed with the PointConv trick: the kernel MLP outputs s_ij (``kernel_out`` channels),
    ``z_i = (1/n_i) sum_j f_j (x) s_ij`` (c_in x kernel_out) and h_i = W z_i, so no
    (c_in x c_out) kernel tensor is ever formed.  The four steps are separate methods
    (``subsample``, ``neighborhood`` — together ``select`` —, ``kernel_inputs``, ``aggregate``) so
    a variant overrides one of them.

    Args:
        chin, chout: input / output channels.
        group: the ``LieGroup``.
        num_nbhd: Monte-Carlo neighbourhood size K.
        fill: fraction of an example's points that form each query's ball.
        ds_frac: keep ``ceil(ds_frac * n)`` query points chosen by farthest-point sampling, n the
            largest number of real points of an example in the batch (1 = no subsampling: the
            queries are the inputs).
        knn: use the K nearest instead of a sample of the ball.
        bn: masked batch norm inside the kernel MLP.
        mean: divide by the number of real neighbours n_i (True) or by K (False).
        kernel_input: ``"log"`` (the paper's ``log(v_j^-1 u_i)``) or ``"smooth"``
            (``group.rel_embed``: the same information, embedded without the jump of the log at a
            rotation angle of ±pi; e.g. (cos, sin) of the angle for SO(2)).  Both are exactly
            invariant, so the layer stays equivariant either way.

    Shapes:
        input ``Lifted`` (elems (Bg, N, E), orbits (Bg, N, q), values (B, N, chin), mask (Bg, N))
        -> ``Lifted`` (elems (Bg, m, E), orbits (Bg, m, q), values (B, m, chout), mask (Bg, m)).
    """

    def __init__(
        self,
        chin: int,
        chout: int,
        *,
        group: LieGroup,
        num_nbhd: int = 32,
        fill: float = 1 / 3,
        ds_frac: float = 1.0,
        knn: bool = False,
        bn: bool = False,
        mean: bool = True,
        kernel_hidden: int = 32,
        kernel_out: int = 16,
        kernel_input: str = "log",
    ):
        super().__init__()
        if not isinstance(group, LieGroup):
            raise ValueError(f"group: expected a LieGroup instance, got {group!r}")
        fill, ds_frac = check_fraction("fill", fill), check_fraction("ds_frac", ds_frac)
        num_nbhd = check_int("num_nbhd", num_nbhd, minimum=1)
        chin, chout = check_int("chin", chin, minimum=1), check_int("chout", chout, minimum=1)
        kernel_hidden = check_int("kernel_hidden", kernel_hidden, minimum=1)
        kernel_out = check_int("kernel_out", kernel_out, minimum=1)
        self.group, self.chin, self.chout = group, chin, chout
        self.num_nbhd, self.fill, self.ds_frac, self.knn, self.mean = (
            int(num_nbhd),
            float(fill),
            float(ds_frac),
            knn,
            mean,
        )
        if kernel_input not in KERNEL_INPUTS:
            raise ValueError(f"kernel_input: expected one of {list(KERNEL_INPUTS)}, got {kernel_input!r}")
        self.kernel_input = kernel_input
        rel_dim = group.embed_dim if kernel_input == "smooth" else group.lie_dim
        self.kernel_out = int(kernel_out)
        self.kernel = KernelMLP(rel_dim + 2 * group.q_dim, kernel_out, hidden=kernel_hidden, bn=bn)
        self.linear = nn.Linear(chin * kernel_out, chout)
        # W (chout, chin * kernel_out) stored transposed, so that both products read it in place:
        # Wᵀ (chin * kernel_out, chout) for the gathered z_i and its view (chin, kernel_out * chout)
        # for the point features; the values, their draws and the state dict are nn.Linear's
        self.linear.weight = nn.Parameter(self.linear.weight.detach().t().contiguous().t())

    def extra_repr(self) -> str:
        return (
            f"{self.chin}, {self.chout}, group={self.group}, num_nbhd={self.num_nbhd}, fill={self.fill:.4g}, "
            f"ds_frac={self.ds_frac:.4g}, knn={self.knn}, kernel_input={self.kernel_input}"
        )

    # ----------------------------------------------------------- selection
    def num_queries(self, n: int) -> int:
        """Queries kept from ``n`` real points: ceil(ds_frac * n) (n itself when ds_frac = 1)."""
        return n if self.ds_frac >= 1 else max(1, math.ceil(self.ds_frac * n))

    def subsample(self, x: Lifted) -> tuple[Tensor | None, Tensor, Tensor, Tensor, FarthestOrder | None]:
        """Farthest-point query points: (query_idx or None, elems, orbits, mask, order) of the queries.

        ``order``: a ``FarthestOrder`` (the queries are in farthest-point order; its ``rows``, the
        sampling's rounded distances from each query to every point (Bg, m, N), or None, are reused by
        the neighbour search and passed on with the output), or None (no subsampling).

        The number of queries comes from the largest count of *real* points in the batch, so
        padding an example with masked points changes nothing.  Points already in farthest-point
        order (``x.farthest``, the output of a subsampling layer) give their first m points and the
        rows from theirs: the same choice without sampling again (see ``lieconv.data.FarthestOrder``).
        """
        if self.ds_frac >= 1:
            return None, x.elems, x.orbits, x.mask, None
        m = self.num_queries(int(x.mask.sum(1).max()))
        keep = not self.covers_all(x.mask.shape[1])  # the search will rank rows
        if x.farthest is None:
            idx, qmask, *kept = farthest_point_indices(self.group, x.elems, x.orbits, x.mask, m, keep_rows=keep)
            rows = kept[0] if kept else None
            qe, qq = gather_points(x.elems, idx), gather_points(x.orbits, idx)
        else:
            Bg = x.mask.shape[0]
            idx = torch.arange(m, device=x.mask.device).expand(Bg, m)
            qe, qq, qmask = x.elems[:, :m], x.orbits[:, :m], x.mask[:, :m]
            rows = None
            if keep and x.farthest.rows is not None:
                prev, cols = x.farthest
                rows = native.gather_columns(prev, cols, m)  # (Bg, m, N)
        return idx, qe, qq, qmask, FarthestOrder(rows, None if rows is None else idx)

    def covers_all(self, n: int) -> bool:
        """True when every neighbourhood holds every real point of an ``n``-point input
        (``num_nbhd >= n`` and ``fill = 1`` or ``knn``): then nothing needs to be searched."""
        return self.num_nbhd >= n and (self.knn or self.fill >= 1)

    def select(self, x: Lifted, generator: torch.Generator | None = None) -> Selection:
        """Queries and their neighbourhoods (no gradients flow through the choice).

        ``generator``: None / torch.Generator / ``lieconv.random.ExampleRandom``; in ``eval()`` mode
        None means the fixed evaluation draws (``lieconv.random.resolve_generator``).
        When ``covers_all`` holds, the neighbourhoods are ``full_neighborhoods`` (every point, in
        index order): the same sets as the search would choose, without searching.
        """
        generator = resolve_generator(generator, self.training)
        qidx, qe, qq, qmask, order = self.subsample(x)
        if self.covers_all(x.mask.shape[1]):
            return Selection(qidx, qmask, *full_neighborhoods(qmask, x.mask), full=True, queries=order)
        nidx, nmask = neighborhood_indices(
            self.group,
            qe,
            qq,
            qmask,
            x.elems,
            x.orbits,
            x.mask,
            num_nbhd=self.num_nbhd,
            fill=self.fill,
            knn=self.knn,
            generator=generator,
            query_rows=None if order is None else order.rows,
        )
        return Selection(qidx, qmask, nidx, nmask, queries=order)

    def pack_queries(self, x: Lifted, sel: Selection) -> tuple[Lifted, Selection, RowPacking] | None:
        """The real queries of a padded batch as one example: (x', sel', packing) or None.

        A batch whose examples have their own masks (molecules of 3-29 atoms padded to 29, ragged point
        clouds) would evaluate the kernel MLP, the gather and the output Linear for padding queries,
        whose result is thrown away.  x' is the batch as one example of ``B N`` points (x'.values
        (1, B N, c)); sel' holds only the P real queries (query and neighbour indices into those
        points, (1, P) and (1, P, K)); ``packing.unpack(h)`` puts the (P, chout) result back in
        (B, m, chout), zeros at the padding.  The kernel's masked batch norm sees the same pairs (a
        padding query has no neighbours), so the result is the same.  None (nothing to pack) when the
        geometry is shared or less than ``MIN_PADDING`` of the queries is padding.
        """
        B, N = x.values.shape[0], x.mask.shape[1]
        packing = RowPacking(sel.query_mask, B)
        if not packing.active:
            return None
        m, K = sel.nbhd_idx.shape[1], sel.nbhd_idx.shape[2]
        offsets = (torch.arange(B, device=x.mask.device) * N).view(B, 1)
        qidx = torch.arange(m, device=x.mask.device).expand(B, m) if sel.query_idx is None else sel.query_idx
        rows = packing.index
        flat = sel._replace(
            query_idx=(qidx + offsets).reshape(-1)[rows].view(1, -1),
            query_mask=sel.query_mask.new_ones(1, rows.shape[0]),
            nbhd_idx=(sel.nbhd_idx + offsets.unsqueeze(-1)).view(B * m, K)[rows].view(1, -1, K),
            nbhd_mask=sel.nbhd_mask.view(B * m, K)[rows].view(1, -1, K),
        )
        xf = x.replace(
            elems=x.elems.reshape(1, B * N, -1),
            orbits=x.orbits.reshape(1, B * N, -1),
            values=x.values.reshape(1, B * N, -1),
            mask=x.mask.reshape(1, B * N),
            farthest=None,
        )
        return xf, flat, packing

    # ------------------------------------------------------------- kernel
    def kernel_inputs(self, x: Lifted, sel: Selection) -> Tensor:
        """a_ij = [log(v_j^-1 u_i), q_i, q_j] for the chosen pairs: (Bg, m, K, lie_dim + 2 q_dim);
        with ``kernel_input="smooth"`` ``rel_embed(u_i, v_j)`` (embed_dim) replaces the log."""
        qe = x.elems if sel.query_idx is None else gather_points(x.elems, sel.query_idx)
        qq = x.orbits if sel.query_idx is None else gather_points(x.orbits, sel.query_idx)
        ne = gather_points(x.elems, sel.nbhd_idx)  # (Bg, m, K, E)
        nq = gather_points(x.orbits, sel.nbhd_idx)  # (Bg, m, K, q)
        rel_fn = self.group.rel_embed if self.kernel_input == "smooth" else self.group.rel_log
        rel = rel_fn(qe.unsqueeze(2), ne)  # (Bg, m, K, lie_dim or embed_dim)
        if not self.group.q_dim:
            return rel
        return torch.cat([rel, qq.unsqueeze(2).expand_as(nq), nq], dim=-1)

    def point_features(self, values: Tensor, mask: Tensor | None = None) -> Tensor:
        """``W_h f_j`` for every point j and kernel channel h, with ``W_h = W[:, (c, h)]``: the pointwise
        half of a full-neighbourhood aggregation.  values (B, N, chin) -> (B, N * kernel_out, chout);
        with ``mask`` (Bg, N) computed on the real points only (``RowPacking``; zeros at padding, which
        the kernel weighs by 0 anyway)."""
        return self._point_features(values, None if mask is None else RowPacking(mask, values.shape[0]))

    def _point_features(self, values: Tensor, p: RowPacking | None) -> Tensor:
        """``point_features`` on the rows of ``p`` (None: all rows)."""
        B, N, _ = values.shape
        o, h = self.chout, self.kernel_out
        w = self._feature_weight()
        if p is None or not p.active:
            return (values @ w).view(B, N * h, o)
        return p.unpack(p.pack(values) @ w).view(B, N * h, o)

    def _feature_weight(self) -> Tensor:
        """``W`` as the (chin, kernel_out * chout) matrix of ``point_features``: column (h, o) holds W_h[o, :]
        (a view of the transposed storage; a copy if the weight was made contiguous since)."""
        return self.linear.weight.t().reshape(self.chin, self.kernel_out * self.chout)

    def aggregate(
        self,
        values: Tensor | None,
        weights: Tensor,
        sel: Selection,
        features: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """h_i = W (sum_j f_j (x) s_ij) / n_i.  values (B, N, c), weights (Bg, m, K, h) -> (B, m, chout).

        Full neighbourhoods (``sel.full``): ``h_i = sum_{j,h} s_ijh (W_h f_j) / n_i + b``, the
        ``point_features`` ``W_h f_j`` (or ``features``, precomputed by the caller, ``values``
        then unused; ``mask``: the points' mask (Bg, N), whose real rows are the ones computed in a
        padded batch, by default those that some query sees) contracted with the kernel by one
        matmul per example
        (``lieconv.nn.functional.point_contract`` / ``contract``: twice differentiable with a small
        graph, for networks trained through their gradient such as ``HLieResNet``).

        Otherwise the neighbour values are gathered as rows, contracted with the kernel and multiplied
        by W chunk by chunk (``gather_contract_linear``: neither the (pairs, c) rows nor the
        (m, c*h) z_i are stored; backward makes each chunk again); with a shared geometry the rows
        are point-major (N, B*c), so one kernel matrix serves the whole batch.
        """
        Bg, m, K, h = weights.shape
        if sel.full and features is not None:
            B, N = features.shape[0], features.shape[1] // h
        else:
            B, N, c = values.shape
        if self.mean:
            n = sel.nbhd_mask.sum(-1, keepdim=True).clamp(min=1).to(weights.dtype)  # (Bg, m, 1)
            scale = 1 / n
        else:
            scale = weights.new_full((1, 1, 1), 1 / K)
        W, b = self.linear.weight, self.linear.bias  # W z / n + b: the 1/n_i on the (small) output side
        if sel.full:
            # every point is a neighbour, in index order: h_i = sum_{j,h} s_ijh (W_h f_j) / n_i + b, with
            # W_h f_j computed once per point, no gather, no (m, c*h) intermediate
            s = weights.reshape(Bg, m, N * h).expand(B, m, N * h)
            p = None if features is not None else RowPacking(sel.nbhd_mask.any(1) if mask is None else mask, B)
            if p is not None and not p.active:  # W_h f_j made inside, its derivatives chunk by chunk
                z = point_contract(s, values, self._feature_weight())
            else:  # precomputed features, or W_h f_j on the real rows only (a padded batch)
                z = contract(s, features if p is None else self._point_features(values, p))
            out = torch.addcmul(b, z, scale)
        elif Bg == 1 and B > 1:  # shared geometry
            rows = values.transpose(0, 1).reshape(N, B * c)
            z = gather_contract_linear(rows, sel.nbhd_idx.reshape(-1), weights[0], W)  # (m, B, chout)
            out = torch.addcmul(b, z, scale[0].unsqueeze(1)).transpose(0, 1)  # (B, m, chout)
        else:
            offsets = (torch.arange(B, device=values.device) * N).view(B, 1, 1)
            z = gather_contract_linear(
                values.reshape(B * N, c), (sel.nbhd_idx + offsets).reshape(-1), weights.reshape(B * m, K, h), W
            )
            out = torch.addcmul(b, z.view(B, m, self.chout), scale)
        return zero_masked(out, sel.query_mask)

    def forward(
        self,
        x: Lifted,
        selection: Selection | None = None,
        generator: torch.Generator | None = None,
        features: Tensor | None = None,
    ) -> Lifted:
        """``features``: ``point_features(x.values)`` computed beforehand (full neighbourhoods only;
        ``x.values`` is then not read), e.g. once for many calls whose values are the same."""
        if not isinstance(x, Lifted):
            raise TypeError(f"x: expected a lieconv.Lifted, got {type(x).__name__}")
        x.check_group(self.group)
        if features is None and x.values.shape[-1] != self.chin:
            raise ValueError(f"x.values: expected {self.chin} channels, got {x.values.shape[-1]}")
        sel = self.select(x, generator) if selection is None else selection
        if features is not None and not sel.full:
            raise ValueError("features: precomputed point features need full neighbourhoods (covers_all)")
        packed = None if sel.full else self.pack_queries(x, sel)
        xs, ss, packing = (x, sel, None) if packed is None else packed
        a = self.kernel_inputs(xs, ss)
        if not known_all(ss.nbhd_mask):  # zero at masked pairs (their points may be non-finite padding)
            a = torch.where(ss.nbhd_mask.unsqueeze(-1), a, 0.0)
        s = self.kernel(a, ss.nbhd_mask)  # zero at masked pairs
        h = self.aggregate(xs.values, s, ss, features, xs.mask)
        if packing is not None:
            h = packing.unpack(h[0])
        if sel.query_idx is None:
            return x.replace(values=h, mask=sel.query_mask, farthest=x.farthest)
        return Lifted(
            gather_points(x.elems, sel.query_idx),
            gather_points(x.orbits, sel.query_idx),
            h,
            sel.query_mask,
            x.group,
            sel.queries,
        )


def zero_masked(values: Tensor, mask: Tensor) -> Tensor:
    """values (B, N, c) with the rows where ``mask`` (Bg, N) is False set to 0 (no copy when none is)."""
    return values if known_all(mask) else values * mask.unsqueeze(-1).to(values.dtype)


#: gathered neighbour elements (a chunk of groups x K x c) contracted at once on CPU: 1 MB of float32,
#: contracted while it is in cache (gathering all (pairs, c) rows first is ~3x slower, from memory
#: traffic); other devices take 64x larger chunks.  And the least number of rows (groups x batches)
#: of one product with W: smaller GEMMs lose speed.
_GATHER_CHUNK = 1 << 18
_LINEAR_ROWS = 512


def gather_contract_linear(rows: Tensor, idx: Tensor, weights: Tensor, weight: Tensor) -> Tensor:
    r"""The PointConv contraction and the layer's Linear in one pass: ``out_{g,b} = W vec(z_{g,b})``,
    ``z_{g,b} = f_{g,b}^T s_g``.

    rows (R, nb*c) (nb batches of c channels side by side: nb > 1 when one neighbourhood serves a
    whole batch), idx (G*K,) long (group g's K neighbour rows are ``idx[g*K:(g+1)*K]``), weights
    (G, K, h) the kernel values s_g, weight W (chout, c*h) -> (G, nb, chout).  The same value as
    ``F.linear(torch.bmm(rows[idx].view(G, K, nb*c).transpose(1, 2), weights).view(G, nb, c*h), W)``,
    computed chunk by chunk of groups: each chunk's neighbour rows are gathered and contracted while
    they are in cache (``_GATHER_CHUNK`` elements), and each chunk of z is multiplied by W at once
    (at least ``_LINEAR_ROWS`` rows).  Neither the (G*K, nb*c) gathered rows nor the (G, nb*c*h)
    z are ever whole or kept for backward: backward gathers and contracts each chunk again for
    ``dL/dW = sum_g G_g^T z_g``, ``dL/ds_g = f_g dz_g`` and ``dL/drows += scatter(s_g dz_g^T)`` with
    ``dz_g = G_g W``.  On CPU (float32, h of 16 or 32) the contraction and those gradients are
    ``lieconv.native.gather_contract`` / ``gather_contract_grad``, which read each neighbour's row
    where it lies (no gathered chunk; one pass gives z, dL/ds and dL/drows).  Twice differentiable
    (a backward with ``create_graph`` is made of differentiable ops on whole tensors).
    """
    return _GatherContractLinear.apply(rows, idx, weights, weight)


class _GatherContractLinear(torch.autograd.Function):
    @staticmethod
    def _steps(rows: Tensor, K: int, h: int, nb: int) -> tuple[int, int]:
        """(groups per gather, groups per product with W: at least ``_LINEAR_ROWS`` rows of it)."""
        budget = _GATHER_CHUNK if rows.device.type == "cpu" else _GATHER_CHUNK << 6
        inner = max(1, budget // max(1, K * rows.shape[1]))
        outer = max(-(-_LINEAR_ROWS // nb), budget // max(1, rows.shape[1] * h))
        return inner, max(inner, outer - outer % inner)

    @staticmethod
    def _contract(rows: Tensor, idx: Tensor, weights: Tensor, g0: int, g1: int, inner: int, out: Tensor) -> Tensor:
        """z_g = f_g^T s_g for the groups g0:g1 into out (g1 - g0, nb*c, h), ``inner`` groups per gather."""
        K = weights.shape[1]
        for a, b in _spans(g1, inner, g0):
            f = rows.index_select(0, idx[a * K : b * K]).view(b - a, K, rows.shape[1])
            torch.bmm(f.transpose(1, 2), weights[a:b], out=out[a - g0 : b - g0])
        return out

    @staticmethod
    def forward(ctx, rows: Tensor, idx: Tensor, weights: Tensor, weight: Tensor) -> Tensor:
        G, K, h = weights.shape
        o, ch = weight.shape
        nb = rows.shape[1] * h // ch
        inner, outer = _GatherContractLinear._steps(rows, K, h, nb)
        out = rows.new_empty(G, nb, o)
        z = rows.new_empty(min(G, outer), rows.shape[1], h)
        for g0, g1 in _spans(G, outer):
            n = g1 - g0
            if native.gather_contract(rows, idx[g0 * K : g1 * K], weights[g0:g1], z[:n]) is None:
                _GatherContractLinear._contract(rows, idx, weights, g0, g1, inner, z[:n])
            torch.mm(z[:n].view(n * nb, ch), weight.t(), out=out[g0:g1].view(n * nb, o))
        ctx.save_for_backward(rows, idx, weights, weight)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        rows, idx, weights, weight = ctx.saved_tensors
        G, K, h = weights.shape
        Bc = rows.shape[1]
        o, ch = weight.shape
        nb = Bc * h // ch
        want_rows, want_s, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        if torch.is_grad_enabled():  # create_graph: the same gradients from differentiable ops
            gc = grad.reshape(G * nb, o)
            f = rows.index_select(0, idx).view(G, K, Bc) if want_w or want_s else None
            gw = gc.t() @ torch.bmm(f.transpose(1, 2), weights).reshape(G * nb, ch) if want_w else None
            dz = (gc @ weight).view(G, Bc, h) if want_rows or want_s else None
            gs = torch.bmm(f, dz) if want_s else None
            gr = None
            if want_rows:
                gr = torch.zeros_like(rows).index_add(0, idx, torch.bmm(weights, dz.transpose(1, 2)).reshape(G * K, Bc))
            return gr, None, gs, gw
        inner, outer = _GatherContractLinear._steps(rows, K, h, nb)
        gr = torch.zeros_like(rows) if want_rows else None
        gs = torch.empty_like(weights) if want_s else None
        gw = torch.zeros_like(weight) if want_w else None
        z = rows.new_empty(min(G, outer), Bc, h) if want_w else None
        for g0, g1 in _spans(G, outer):
            n = g1 - g0
            gc = grad[g0:g1].reshape(n * nb, o)
            dz = (gc @ weight).view(n, Bc, h) if want_rows or want_s else None
            zs, ss = (z[:n] if want_w else None), (gs[g0:g1] if want_s else None)
            if not native.gather_contract_grad(rows, idx[g0 * K : g1 * K], weights[g0:g1], dz, zs, ss, gr):
                _GatherContractLinear._chunk_grads(rows, idx, weights, dz, g0, g1, inner, zs, ss, gr)
            if want_w:
                gw.addmm_(gc.t(), z[:n].view(n * nb, ch))
        return gr, None, gs, gw

    @staticmethod
    def _chunk_grads(rows, idx, weights, dz, g0, g1, inner, z, gs, gr) -> None:
        """``native.gather_contract_grad`` with ``torch``: z, dL/ds and dL/drows of the groups g0:g1
        (each where given), ``inner`` groups per gather."""
        K, Bc = weights.shape[1], rows.shape[1]
        for a, b in _spans(g1, inner, g0):  # one gather per chunk serves z and dL/ds
            i = idx[a * K : b * K]
            if z is not None or gs is not None:
                f = rows.index_select(0, i).view(b - a, K, Bc)
            if z is not None:
                torch.bmm(f.transpose(1, 2), weights[a:b], out=z[a - g0 : b - g0])
            if gs is not None:
                torch.bmm(f, dz[a - g0 : b - g0], out=gs[a - g0 : b - g0])  # (groups, K, h)
            if gr is not None:
                native.index_add_(gr, i, torch.bmm(weights[a:b], dz[a - g0 : b - g0].transpose(1, 2)).view(-1, Bc))
