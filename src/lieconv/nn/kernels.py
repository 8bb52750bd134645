"""The continuous convolution kernel: an MLP on the Lie algebra (paper §4.2, appendix C.3)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .. import native
from ..runtime import known_all
from .functional import _spans, silu
from .norm import MaskBatchNorm, masked_moments

__all__ = ["KernelMLP"]


class KernelMLP(nn.Module):
    """k_theta(a_ij): three Linear layers (``hidden`` units), each followed by an optional masked
    batch norm and Swish, mapping kernel inputs a_ij = [log(v_j^-1 u_i), q_i, q_j] to ``out``
    channels (the "cmco" of the PointConv trick).

    Layer l maps x_l (R, d_l) to t_l = x_l W_l^T and x_(l+1) = Swish(t_l * a_l + c_l) * w, w the mask:
    with batch norm in training (a_l, c_l) come from the masked sums S1 = sum_r t_l, S2 = sum_r t_l^2
    (``MaskBatchNorm.sums_affine``; the Linear's bias only moves the running mean), otherwise they
    are folded into the product (one ``addmm``: W_l a_l and the bias).  The first layer's input is
    centred on its masked mean first (BN is blind to the shift; it keeps S2 / n - mean^2 accurate for
    inputs whose mean dwarfs their spread, such as raw coordinates).  The rows of every layer input
    are kept zero at masked pairs, so t_l is zero there and its plain sums are the masked ones.

    When the parameters need gradients and the inputs do not (the usual case: coordinates are data),
    the forward runs without a graph and backward is written by hand (``_Recomputed``): it keeps the
    products t_l (not the activations, which one Swish pass gives again) when they take at most
    ``_KEEP_BYTES`` per call, and recomputes them chunk by chunk otherwise (large clouds).  Its passes over the
    per-pair rows are ``lieconv.native``'s fused ones (affine + Swish + mask, the sums).  Inputs that
    need gradients (Hamiltonian networks differentiate with respect to positions, twice) take plain
    autograd (``_rows``), with the same formulas.

    Shapes: a (Bg, m, K, in_dim), zero at masked pairs, mask (Bg, m, K) -> (Bg, m, K, out), zero at
    masked pairs.
    """

    def __init__(self, in_dim: int, out: int = 16, *, hidden: int = 32, bn: bool = False):
        super().__init__()
        dims = [in_dim, hidden, hidden, out]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.norms = nn.ModuleList(MaskBatchNorm(b, zero_masked=False) for b in dims[1:]) if bn else None

    def forward(self, a: Tensor, mask: Tensor) -> Tensor:
        x = a.reshape(-1, a.shape[-1])
        w = None if known_all(mask) else mask.reshape(-1, 1).to(x.dtype)
        params = list(self.parameters())
        if torch.is_grad_enabled() and not a.requires_grad and any(p.requires_grad for p in params):
            out = _Recomputed.apply(self, x, w, *params)
        else:
            out = self._rows(x, w)
        return out.view(*a.shape[:-1], out.shape[-1])

    def _batch_norm(self) -> bool:
        """Whether the layers normalise with batch statistics (batch norm, in training)."""
        return self.norms is not None and self.training

    def _input(self, x: Tensor, w: Tensor | None, count: Tensor | int) -> tuple[Tensor, Tensor | None]:
        """The first layer's input and the first t's offset: (x - mu) * w and W_0 mu + b_0 with mu the
        masked mean of x (batch statistics; not under synchronised batch norm, whose sums are
        all-reduced and must share one centre), else (x, b_0)."""
        lin = self.linears[0]
        if not self._batch_norm() or any(n.sync for n in self.norms):
            return x, lin.bias
        n = count.clamp(min=1) if isinstance(count, Tensor) else max(count, 1)
        mu = x.detach().sum(0) / n  # any centre will do (the norm is blind to it): float sums
        xc = x - mu
        return (xc if w is None else xc * w), lin.bias + lin.weight.detach() @ mu

    def _folded(self, i: int) -> tuple[Tensor, Tensor]:
        """(weight, bias) of layer i with its normalisation folded in (no batch statistics)."""
        lin = self.linears[i]
        if self.norms is None:
            return lin.weight, lin.bias
        scale, shift = self.norms[i].sums_affine(None, None, 0, lin.bias)
        return lin.weight * scale.unsqueeze(1), shift

    def _rows(self, x: Tensor, w: Tensor | None, *, update_stats: bool = True) -> Tensor:
        """The MLP on rows by plain autograd: x (R, in_dim) zero at masked rows, w (R, 1) 0/1 or None
        -> (R, out)."""
        count = x.shape[0] if w is None else w.sum()
        x, offset = self._input(x, w, count)
        for i, lin in enumerate(self.linears):
            if self._batch_norm():  # t with the bias (its gradient, zero up to rounding, is autograd's)
                t = torch.addmm(lin.bias, x, lin.weight.t())
                s1, s2 = masked_moments(t, w)
                centre = None if i > 0 or offset is lin.bias else offset - lin.bias
                scale, shift = self.norms[i].sums_affine(s1, s2, count, centre, update_stats=update_stats)
                x = silu(torch.addcmul(shift, t, scale))
            else:
                weight, bias = self._folded(i)
                x = silu(torch.addmm(bias, x, weight.t()))
            if w is not None:
                x = x * w
        return x


class _Recomputed(torch.autograd.Function):
    """KernelMLP._rows without a graph, with a hand-written backward (gradients for the parameters
    only; x and w are data).

    forward(mlp, x, w, *params): per layer, in chunks of rows, x_l = Swish(t_(l-1) a + c) * w (fused,
    ``native.swish``), t_l = x_l W^T (one product) and, with batch statistics, the sums S1, S2 of t_l
    (``native.moments_``); (a, c) of t_l then follow from its sums (``sums_affine``; running
    statistics updated once).  The t_l are kept (R x (hidden + hidden + out) floats) when they fit in
    ``_KEEP_BYTES``, else only the last one (R x out), and backward makes the others again chunk by
    chunk from x where a pass needs them (large clouds: the memory of a layer's pairs stays a few
    (R x hidden) tensors).
    backward: see ``_chunked_backward``; the affine maps (a, c) are made again from the kept sums,
    differentiably, and autograd through them (tiny (d,) tensors) gives dL/dgamma, dL/dbeta, dL/dS1,
    dL/dS2 from the column sums of the gradient.
    """

    @staticmethod
    def forward(ctx, mlp: KernelMLP, x: Tensor, w: Tensor | None, *params: Tensor) -> Tensor:
        ctx.mlp, ctx.training = mlp, mlp.training
        R = x.shape[0]
        count = R if w is None else w.sum()
        stats = mlp._batch_norm()
        widths = [lin.out_features for lin in mlp.linears]
        keep = _keeps(x, mlp.linears)
        with torch.no_grad():
            x0, offset = mlp._input(x, w, count)
            ctx.offsets, ctx.sums, ts = [], [], []
            h, act = x0, None  # h's pending affine + Swish (scale, shift), None: h is the layer's input
            for i, lin in enumerate(mlp.linears):
                weight, bias = (lin.weight, None) if stats else mlp._folded(i)
                sums = (
                    (x.new_zeros(widths[i], dtype=torch.float64), x.new_zeros(widths[i], dtype=torch.float64))
                    if stats
                    else None
                )
                # t over h where h is not kept and has t's width (each chunk of h is read first)
                over = h if i > 0 and not keep and h.shape[1] == widths[i] else None
                t = _layer(h, act, w, weight, bias, sums, out=over)
                offset = offset if i == 0 else lin.bias
                ctx.offsets.append(offset.detach())
                if stats:
                    ctx.sums.append(sums)
                    act = mlp.norms[i].sums_affine(*sums, count, offset)
                else:
                    act = (None, None)
                ts.append(t if keep else None)
                h = t
            out = native.swish(h, *act, w)
        ctx.save_for_backward(x0, w)
        ctx.count, ctx.kept = count, ts if keep else None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x0, w = ctx.saved_tensors
        mlp, count = ctx.mlp, ctx.count
        was = mlp.training
        mlp.train(ctx.training)
        try:
            stats = mlp._batch_norm()
            layers = []  # per layer: _Maps
            with torch.enable_grad():
                for i, lin in enumerate(mlp.linears):
                    linear = [p for p in lin.parameters() if p.requires_grad]
                    norm = [] if mlp.norms is None else [p for p in mlp.norms[i].parameters() if p.requires_grad]
                    if stats and not mlp.norms[i].sync:  # the statistics' derivatives in closed form
                        bn, sums = mlp.norms[i], ctx.sums[i]
                        with torch.no_grad():
                            scale, shift = bn.sums_affine(*sums, count, ctx.offsets[i], update_stats=False)
                        grads = functools.partial(_stats_grads, bn, sums, count)
                        layers.append(_Maps(lin.weight, None, scale, shift, linear, norm, sums, grads))
                    elif stats:  # through the all-reduce: autograd
                        sums = tuple(t.detach().requires_grad_() for t in ctx.sums[i])
                        scale, shift = mlp.norms[i].sums_affine(*sums, count, ctx.offsets[i], update_stats=False)
                        layers.append(_Maps(lin.weight, None, scale, shift, linear, norm, sums))
                    else:
                        weight, bias = mlp._folded(i)
                        layers.append(_Maps(weight, bias, None, None, linear, norm, None))
        finally:
            mlp.train(was)
        ts, ctx.kept = ctx.kept, None  # released during backward: a second backward recomputes
        if ts is None:
            ts = _products(x0, w, layers, _keeps(x0, layers))
        grads = dict(_chunked_backward(x0, w, grad, layers, ts))
        return (None, None, None, *[grads.get(p) for p in mlp.parameters()])


class _Maps(NamedTuple):
    """One kernel-MLP layer in backward: t = x weight^T (+ bias), x_next = Swish(t scale + shift) * w;
    (scale, shift) None when folded into (weight, bias); ``linear``, ``norm``: the Linear's and the
    norm's parameters that need gradients; ``sums`` the sums (S1, S2) the affine map comes from: leaves
    of its graph, or with ``stats_grad`` (``_stats_grads``: gs, gc -> ([(norm parameter, gradient)],
    dL/dS1, dL/dS2)) plain tensors."""

    weight: Tensor
    bias: Tensor | None
    scale: Tensor | None
    shift: Tensor | None
    linear: list[Tensor]
    norm: list[Tensor]
    sums: tuple[Tensor, Tensor] | None
    stats_grad: Callable | None = None


def _stats_grads(bn, sums: tuple[Tensor, Tensor], count, gs: Tensor, gc: Tensor):
    """``MaskBatchNorm.sums_affine_grad`` as ([(parameter, gradient)] for those of gamma, beta that
    need one, dL/dS1, dL/dS2)."""
    g_gamma, g_beta, d1, d2 = bn.sums_affine_grad(*sums, count, gs, gc)
    return [(p, g) for p, g in ((bn.weight, g_gamma), (bn.bias, g_beta)) if p.requires_grad], d1, d2


#: rows per chunk of the kernel MLP's passes on CPU: the per-row temporaries of a chunk stay in cache;
#: other devices take 64x larger chunks (fewer kernel launches)
_ROW_CHUNK = 8192
#: the kernel MLP keeps its products t_l for backward when they take at most this many bytes (per
#: call), and recomputes them otherwise (large clouds)
_KEEP_BYTES = 1 << 28


def _row_chunk(x: Tensor) -> int:
    return _ROW_CHUNK if x.device.type == "cpu" else _ROW_CHUNK << 6


def _layer(
    h: Tensor,
    act: tuple[Tensor | None, Tensor | None] | None,
    w: Tensor | None,
    weight: Tensor,
    bias: Tensor | None,
    sums: tuple[Tensor, Tensor] | None,
    out: Tensor | None = None,
) -> Tensor:
    """t = Swish(h scale + shift) * w @ weight^T (+ bias) in chunks of rows (``act`` None: h itself is
    the input), and with ``sums`` the column sums of t and t^2 added to them.  h (R, d_in) -> (R, d_out),
    into ``out`` when given (which may be h when ``act`` is given: each chunk is read before it is written)."""
    R = h.shape[0]
    t = h.new_empty(R, weight.shape[0]) if out is None else out
    bias = None if bias is None else bias.detach()
    chunk = _row_chunk(h)
    if native.mlp_forward(h, act, w, weight.detach(), bias, sums, t, chunk):
        return t
    wt = weight.detach().t()
    scratch = h.new_empty(min(R, chunk), h.shape[1]) if act is not None else None
    for a, b in _spans(R, chunk):
        x = h[a:b] if act is None else native.swish(h[a:b], *act, None if w is None else w[a:b], out=scratch[: b - a])
        if bias is None:
            torch.mm(x, wt, out=t[a:b])
        else:
            torch.addmm(bias, x, wt, out=t[a:b])
        if sums is not None:
            native.moments_(t[a:b], *sums)
    return t


def _detached(m: _Maps) -> tuple[Tensor | None, Tensor | None]:
    return (None, None) if m.scale is None else (m.scale.detach(), m.shift.detach())


def _keeps(x: Tensor, layers: list) -> bool:
    """Whether every t_l of a call is kept (``_KEEP_BYTES``), or only the last one."""
    return x.shape[0] * sum(m.weight.shape[0] for m in layers) * x.element_size() <= _KEEP_BYTES


def _products(x0: Tensor, w: Tensor | None, layers: list[_Maps], keep: bool) -> list[Tensor | None]:
    """The t_l of the forward again (no statistics: the affine maps are known); all of them, or the
    last one only (the others are then made chunk by chunk where backward needs them)."""
    ts, h, act = [], x0, None
    with torch.no_grad():
        for i, m in enumerate(layers):
            over = h if i > 0 and not keep and h.shape[1] == m.weight.shape[0] else None
            h = _layer(h, act, w, m.weight, m.bias, None, out=over)
            ts.append(h if keep or i + 1 == len(layers) else None)
            act = _detached(m)
    return ts


def _chunked_backward(
    x0: Tensor, w: Tensor | None, grad: Tensor, layers: list[_Maps], ts: list[Tensor | None]
) -> list[tuple[Tensor, Tensor]]:
    """The parameter gradients of ``_Recomputed`` in passes over chunks of rows: [(leaf, gradient)].

    Layer l: t_l = x_l W_l^T (+ b_l when folded), y_l = t_l a_l + c_l, x_(l+1) = Swish(y_l) * w.  With
    G_l = dL/dy_l (zero at masked rows)::

        G_(L-1) = silu'(y_(L-1)) * w * dL/dx_L
        dL/da_l = sum_r G_l t_l,   dL/dc_l = sum_r G_l    -> (autograd through sums_affine) dL/dS1, dL/dS2
        dL/dt_l = G_l a_l + w dL/dS1 + 2 t_l dL/dS2       (folded layers: dL/dt_l = G_l)
        dL/dW_l = (dL/dt_l)^T x_l,   G_(l-1) = silu'(y_(l-1)) * (dL/dt_l W_l)

    One pass per layer: chunk c of dL/dt_l (``native.norm_grad``, over G_l in place), its product
    with W_l, then ``native.swish_grad`` gives chunk c of G_(l-1), of x_l (the same sigmoid) and of
    the column sums of the layer below.  Whole at any time: the kept t_l, G_l and G_(l-1) (written
    over t_l where their widths agree); a t_l not kept is made again per chunk from t_(l-1) (itself
    kept or made again, down to x_0).
    """
    R, L = x0.shape[0], len(layers)
    chunk = _row_chunk(x0)
    spans = _spans(R, chunk)
    acts = [_detached(m) for m in layers]
    wv = (lambda a, b: None) if w is None else (lambda a, b: w[a:b])

    def t_rows(l: int, a: int, b: int, below: Tensor | None = None) -> Tensor:
        """t_l at rows a:b: kept, or made from t_(l-1) there (``below``, else made too)."""
        if ts[l] is not None:
            return ts[l][a:b]
        if l == 0:
            h = x0[a:b]
        else:
            h = native.swish(t_rows(l - 1, a, b) if below is None else below, *acts[l - 1], wv(a, b))
        wt = layers[l].weight.detach().t()
        bias = layers[l].bias
        return torch.mm(h, wt) if bias is None else torch.addmm(bias.detach(), h, wt)

    def column_sums(m: _Maps, d: int) -> tuple[Tensor, Tensor] | None:
        return None if m.scale is None else (x0.new_zeros(d, dtype=torch.float64), x0.new_zeros(d, dtype=torch.float64))

    G = torch.empty_like(ts[-1])
    sums = column_sums(layers[-1], G.shape[1])
    native.swish_grad(grad, ts[-1], *acts[-1], w, out=G, sums=sums)
    out: list[tuple[Tensor, Tensor]] = []
    for l in reversed(range(L)):
        m = layers[l]
        d1 = d2 = None
        if m.scale is not None:  # the batch statistics' gradients, and gamma's and beta's
            gs, gc = (s.to(m.scale.dtype) for s in sums)
            if m.stats_grad is not None:
                pairs, d1, d2 = m.stats_grad(gs, gc)
                out += pairs
            else:
                gsums = torch.autograd.grad((m.scale, m.shift), [*m.norm, *m.sums], [gs, gc])
                out += list(zip(m.norm, gsums[: len(m.norm)]))
                d1, d2 = gsums[len(m.norm) :]
            d1, d2 = d1.to(x0.dtype), d2.to(x0.dtype)
            scale = m.scale.detach()
        wd = m.weight.detach()
        accT = x0.new_zeros(wd.shape[1], wd.shape[0])  # (dL/dW)^T
        accb = x0.new_zeros(wd.shape[0]) if m.bias is not None else None
        below = layers[l - 1] if l > 0 else None
        Gn = None  # G_(l-1): into t_l's storage where the widths agree (t_l's chunk is read first)
        if l > 0:
            width = layers[l].weight.shape[1]
            fits = ts[l] is not None and ts[l].shape[1] == width
            Gn = ts[l] if fits else x0.new_empty(R, width)
        nsums = column_sums(below, Gn.shape[1]) if l > 0 else None
        norm = None if d1 is None else (scale, d1, d2)
        lower = None if l == 0 else (ts[l - 1], *acts[l - 1], Gn, nsums)
        kept = all(t is not None for t in ts[: l + 1])  # the native loop makes no t again
        native_loop = kept and native.mlp_backward(
            G, ts[l], norm, w, wd, lower, x0 if l == 0 else None, (accT, accb), chunk
        )
        xs = x0.new_empty(min(R, chunk), wd.shape[1]) if l > 0 and not native_loop else None
        for a, b in [] if native_loop else spans:
            tp = t_rows(l - 1, a, b) if l > 0 else None  # t_(l-1), then t_l from it where not kept
            if d1 is not None:
                dt = native.norm_grad(G[a:b], t_rows(l, a, b, tp), scale, d1, d2, wv(a, b), out=G[a:b])
            else:
                dt = G[a:b]
            if l == 0:
                xl = x0[a:b]
            else:
                xl = xs[: b - a]
                torch.mm(dt, wd, out=Gn[a:b])
                native.swish_grad(Gn[a:b], tp, *acts[l - 1], wv(a, b), out=Gn[a:b], x_out=xl, sums=nsums)
            accT.addmm_(xl.t(), dt)  # (x^T G)^T: MKL is ~7x slower on G^T x when x is narrow
            if accb is not None:
                accb += dt.sum(0)
        if m.scale is not None:  # the Linear's bias cancels in the norm: its gradient is zero
            out += [(p, accT.t() if p is m.weight else torch.zeros_like(p)) for p in m.linear]
        else:
            leaves = m.linear + m.norm
            gw = torch.autograd.grad((m.weight, m.bias), leaves, (accT.t(), accb), allow_unused=True)
            out += [(p, g) for p, g in zip(leaves, gw) if g is not None]
        ts[l] = None
        G, sums = Gn, nsums
    return out
