"""Twice-differentiable primitives with a lean backward graph, for training through ``∂V/∂q``.

A Hamiltonian network is trained through the derivative of its output (``HLieResNet``: the loss
sees ``∂V/∂q``, made with ``create_graph=True``), so every layer is differentiated twice and the
graph of the first derivative is kept alive for all solver stages until the loss is
differentiated.  Autograd's generic formulas make that graph large: the first derivative of
``F.silu`` is built from ``sigmoid``, ``1 - s``, ``x (1 - s)``, ``1 + ...`` and two products, each
of which keeps its inputs; a batched matmul's derivative reads transposed views, whose products
and sums take slow strided paths.  The functions here compute the same values and derivatives
(to rounding) with hand-written first *and* second derivatives:

``silu(x)``            Swish ``x σ(x)``; its backward is ``silu_grad(g, x) = g σ(x)(1 + x(1 − σ(x)))``,
                       itself a function that keeps only ``g`` and ``x`` (the first derivative's
                       graph holds one tensor per activation, not six).
``contract(s, g)``     ``torch.bmm(s, g)`` for s (B, m, P), g (B, P, o), whose first derivative
                       ``(G gᵀ, sᵀ G)`` is one node that keeps only its inputs, computes only the
                       gradients the running backward pass uses, and takes every product on
                       contiguous operands.

Higher derivatives (a third) are still correct: every backward is made of differentiable
operations when grad mode is on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .. import native

__all__ = ["silu", "silu_grad", "contract", "point_contract"]


def _wanted(t: Tensor) -> bool:
    """Inside a backward pass: will the engine use a gradient for ``t``?  (False for a parameter
    while ``torch.autograd.grad(V, q)`` differentiates with respect to ``q`` only.)"""
    if not t.requires_grad:
        return False
    try:
        return bool(torch._C._will_engine_execute_node(torch.autograd.graph.get_gradient_edge(t).node))
    except RuntimeError:  # not called from the engine: assume it is
        return True


# ---------------------------------------------------------------------------------------- SiLU
def silu(x: Tensor) -> Tensor:
    """Swish ``x σ(x)`` (the value of ``F.silu``), twice differentiable with a small graph.

    Keeps only ``x`` for backward; the backward is :func:`silu_grad`.  Shapes: any -> the same.
    """
    return _SiLU.apply(x)


def silu_grad(g: Tensor, x: Tensor) -> Tensor:
    """``g · silu'(x)`` with ``silu'(x) = σ(x)(1 + x(1 − σ(x)))``, keeping only ``g`` and ``x``.

    Its own derivatives: ``∂/∂g = silu'(x)``, ``∂/∂x = g · silu''(x)`` with
    ``silu''(x) = σ(x)(1 − σ(x))(2 + x(1 − 2σ(x)))``.  Shapes: g and x the same.
    """
    return _SiLUGrad.apply(g, x)


def _rows(x: Tensor) -> Tensor:
    """x as (rows, last axis) for the native row passes (a view where x is contiguous)."""
    return x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x


def _silu_grad_values(g: Tensor, x: Tensor) -> Tensor:
    """``g silu'(x)`` without a graph: one native pass where it runs (``aten.silu_backward`` else)."""
    if g.shape != x.shape or x.dim() == 0:
        return torch.ops.aten.silu_backward(g, x)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)  # _rows(out) is a view
    native.swish_grad(_rows(g), _rows(x), None, None, None, out=_rows(out))
    return out


class _SiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        if x.dim() == 0:
            return F.silu(x)
        out = torch.empty_like(x, memory_format=torch.contiguous_format)  # _rows(out) is a view
        native.swish(_rows(x), None, None, None, out=_rows(out))
        return out

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _SiLUGrad.apply(g, x)
        return _silu_grad_values(g, x)


class _SiLUGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g: Tensor, x: Tensor) -> Tensor:
        ctx.save_for_backward(g, x)
        return _silu_grad_values(g, x)

    @staticmethod
    def backward(ctx, gg: Tensor):
        g, x = ctx.saved_tensors
        want_g, want_x = ctx.needs_input_grad[:2]
        if not torch.is_grad_enabled():
            return native.swish_grad2(gg, g, x, want_g, want_x)
        grad_g = silu_grad(gg, x) if want_g else None
        grad_x = None
        if want_x:  # a third derivative: plain differentiable operations
            s = torch.sigmoid(x)
            grad_x = gg * g * s * (1 - s) * (2 + x * (1 - 2 * s))
        return grad_g, grad_x


# -------------------------------------------------------------------------------- contraction
def contract(s: Tensor, g: Tensor) -> Tensor:
    """``o = s @ g`` batched: s (B, m, P), g (B, P, o) -> (B, m, o) (the value of ``torch.bmm``).

    Used by the dense (full-neighbourhood) LieConv aggregation, s the kernel values of the m
    queries' P = N·h (neighbour, kernel channel) pairs and g the point features ``W_h f_j``.
    The first derivative ``∂s = G gᵀ, ∂g = sᵀ G`` is one node keeping ``(G, s, g)`` (the tensors
    the forward already keeps, plus G), and its derivative in turn is written out:
    ``∂G = Ā g + s C̄``, ``∂s = G C̄ᵀ``, ``∂g = Āᵀ G`` (Ā, C̄: the gradients of ``∂s``, ``∂g``).
    """
    return _Contract.apply(s, g)


def _ct(x: Tensor) -> Tensor:
    """xᵀ over the last two axes, contiguous (for the small operands; bmm is slow on views)."""
    return x.transpose(1, 2).contiguous()


def _bmm(a: Tensor, b: Tensor, out: Tensor | None = None, *, ta: bool = False, tb: bool = False, acc: bool = False):
    """``op(a) @ op(b)`` batched, op the transpose of the last two axes where ``ta`` / ``tb``, into (or with
    ``acc`` added to) ``out``: ``native.bmm`` where it runs and no graph is recorded, else ``torch``."""
    graph = torch.is_grad_enabled() and (a.requires_grad or b.requires_grad or (out is not None and out.requires_grad))
    if not graph:
        o = out if out is not None else a.new_empty(a.shape[0], a.shape[2 if ta else 1], b.shape[1 if tb else 2])
        if native.bmm(a, b, o, trans_a=ta, trans_b=tb, accumulate=acc) is not None:
            return o
        out = o
    A, B = (_ct(a) if ta else a), (b.transpose(1, 2) if tb else b)
    if acc:
        return torch.baddbmm(out, A, B) if graph else out.baddbmm_(A, B)
    return torch.bmm(A, B) if out is None else torch.bmm(A, B, out=out)


class _Contract(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: Tensor, g: Tensor) -> Tensor:
        ctx.save_for_backward(s, g)
        return _bmm(s, g)

    @staticmethod
    def backward(ctx, G: Tensor):
        s, g = ctx.saved_tensors
        want_s = ctx.needs_input_grad[0] and _wanted(s)
        want_g = ctx.needs_input_grad[1] and _wanted(g)
        if torch.is_grad_enabled() and (want_s or want_g):
            ds, dg = _ContractGrad.apply(G, s, g, want_s, want_g)
            return (ds if want_s else None), (dg if want_g else None)
        ds = _bmm(G, g, tb=True) if want_s else None
        dg = _bmm(s, G, ta=True) if want_g else None
        return ds, dg


class _ContractGrad(torch.autograd.Function):
    """(A, C) = (G gᵀ, sᵀ G): the first derivative of ``contract``; an output not wanted is a
    0-element placeholder."""

    @staticmethod
    def forward(ctx, G: Tensor, s: Tensor, g: Tensor, want_s: bool, want_g: bool):
        ctx.save_for_backward(G, s, g)
        ctx.set_materialize_grads(False)
        A = _bmm(G, g, tb=True) if want_s else G.new_empty(0)
        C = _bmm(s, G, ta=True) if want_g else G.new_empty(0)
        if not want_s:
            ctx.mark_non_differentiable(A)
        if not want_g:
            ctx.mark_non_differentiable(C)
        return A, C

    @staticmethod
    def backward(ctx, gA: Tensor | None, gC: Tensor | None):
        G, s, g = ctx.saved_tensors
        if gA is not None and gA.numel() == 0:
            gA = None
        if gC is not None and gC.numel() == 0:
            gC = None
        dG = ds = dg = None
        need_G, need_s, need_g = ctx.needs_input_grad[:3]
        if need_G:
            if gA is not None:
                dG = _bmm(gA, g)
            if gC is not None:
                dG = _bmm(s, gC) if dG is None else _bmm(s, gC, dG, acc=True)
        if need_s and gC is not None:
            ds = _bmm(G, gC, tb=True)
        if need_g and gA is not None:
            dg = _bmm(gA, G, ta=True)
        return dG, ds, dg, None, None


# ------------------------------------------------------- contraction with the point features
#: floats in one chunk of a (rows, h·o) intermediate of ``point_contract``'s derivatives (~1 MB in
#: float32): the chunk stays in cache, and the full (B, N·h, o) tensor is never formed
_CHUNK = 1 << 18


def point_contract(s: Tensor, f: Tensor, weight: Tensor) -> Tensor:
    """``o = s @ g`` with the point features ``g = (f @ weight).view(B, N·h, o)`` made inside.

    s (B, m, N·h), f (B, N, c), weight (c, h·o) -> (B, m, o): the dense LieConv aggregation
    ``o_i = Σ_{j,h} s_ijh (W_h f_j)`` (``LieConv.point_features`` then :func:`contract`).  Twice
    differentiable; only ``g`` is kept (as by the forward anyway), and the derivatives are worked
    out per chunk of examples (``_CHUNK``), so the other (B, N·h, o) products of the first and
    second derivatives (``sᵀG``, its gradient, the gradient of g) never exist whole:

    * first derivative (``G = ∂L/∂o``): ``∂s = G gᵀ``, ``∂f = (sᵀG) Wᵀ``, ``∂W = fᵀ (sᵀG)``;
    * its derivative, given ``(Ā, F̄, D̄)`` for ``(∂s, ∂f, ∂W)``: with ``C = sᵀG`` and
      ``C̄ = F̄ W + f D̄``: ``∂G = Ā g + s C̄``, ``∂s = G C̄ᵀ``, ``∂f = C D̄ᵀ + (ĀᵀG) Wᵀ``,
      ``∂W = F̄ᵀ C + fᵀ (ĀᵀG)``.  The last terms go through ``g``; they are handed to the
      forward node's backward of the same pass, which adds them to its own ``sᵀ Ḡ`` before one
      product with ``W`` (two matmuls of the block's largest size instead of four).
    """
    return _PointContract.apply(s, f, weight)


def _spans(n: int, step: int, start: int = 0) -> list[tuple[int, int]]:
    """[(a, min(n, a + step)) for a = start, start + step, ... < n]: the chunks of a range."""
    return [(a, min(n, a + step)) for a in range(start, n, step)]


def _chunks(B: int, per_example: int) -> list[tuple[int, int]]:
    return _spans(B, max(1, _CHUNK // max(1, per_example)))


def _to_points(
    lhs: list[Tensor],
    rhs: list[Tensor],
    f: Tensor,
    weight: Tensor,
    want_f: bool,
    want_w: bool,
    ds: tuple[Tensor, Tensor] | None = None,
):
    """``Σ_k lhs_kᵀ rhs_k`` (B, N·h, o), a gradient of g (or C), pulled back through ``g = f W``:
    (``d f = dg Wᵀ`` (B, N, c), ``d W = fᵀ dg`` (c, h·o)), chunk by chunk (None where not wanted).
    ``ds = (G, g)``: also ``G gᵀ`` (B, m, N·h) (the gradient of s), each chunk of g read once, while
    the chunk's other products keep it in cache; returns ``(df, dw, G gᵀ or None)``."""
    B, N, c = f.shape
    pulled = want_f or want_w
    df = f.new_empty(B, N, c) if want_f else None
    dw = weight.new_zeros(weight.shape) if want_w else None
    A = None if ds is None else ds[0].new_empty(B, ds[0].shape[1], ds[1].shape[1])
    spans = _chunks(B, lhs[0].shape[2] * rhs[0].shape[2])
    buf = f.new_empty(spans[0][1], lhs[0].shape[2], rhs[0].shape[2]) if pulled else None  # one chunk's dg
    for b0, b1 in spans:
        if A is not None:
            _bmm(ds[0][b0:b1], ds[1][b0:b1], A[b0:b1], tb=True)
        if not pulled:
            continue
        dg = _bmm(lhs[0][b0:b1], rhs[0][b0:b1], buf[: b1 - b0], ta=True)
        for l, r in zip(lhs[1:], rhs[1:]):
            _bmm(l[b0:b1], r[b0:b1], dg, ta=True, acc=True)
        dg = dg.view((b1 - b0) * N, -1)  # (rows, h·o)
        if want_f:
            torch.mm(dg, weight.t(), out=df[b0:b1].view(-1, c))
        if want_w:
            dw.addmm_(f[b0:b1].reshape(-1, c).t(), dg)
    return df, dw, A


class _PointContract(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: Tensor, f: Tensor, weight: Tensor) -> Tensor:
        B, N, c = f.shape
        P = s.shape[2]
        O = weight.shape[1] * N // P
        g = f.new_empty(B, P, O)
        out = f.new_empty(B, s.shape[1], O)
        for b0, b1 in _chunks(B, P * O):  # each chunk of g is contracted while it is in cache
            torch.mm(f[b0:b1].reshape(-1, c), weight, out=g[b0:b1].view(-1, weight.shape[1]))
            _bmm(s[b0:b1], g[b0:b1], out[b0:b1])
        ctx.save_for_backward(s, f, weight, g)
        ctx.calls, ctx.stash = 0, []
        return out

    @staticmethod
    def backward(ctx, G: Tensor):
        s, f, weight, g = ctx.saved_tensors
        ctx.calls += 1
        want = [ctx.needs_input_grad[i] and _wanted(t) for i, t in enumerate((s, f, weight))]
        stash, ctx.stash = ctx.stash, []
        if torch.is_grad_enabled() and any(want):
            outs = _PointContractGrad.apply(G, s, f, weight, g, ctx, *want)
            return tuple(o if w else None for o, w in zip(outs, want))
        lhs, rhs = [s] + [a for a, _ in stash], [G] + [b for _, b in stash]
        df, dw, ds = _to_points(lhs, rhs, f, weight, want[1], want[2], (G, g) if want[0] else None)
        return ds, df, dw


class _PointContractGrad(torch.autograd.Function):
    """(∂s, ∂f, ∂W) of ``point_contract`` for the output gradient G; an output not wanted is a
    0-element placeholder."""

    @staticmethod
    def forward(ctx, G, s, f, weight, g, fwd, want_s: bool, want_f: bool, want_w: bool):
        ctx.save_for_backward(G, s, f, weight, g)
        ctx.fwd, ctx.fwd_calls = fwd, fwd.calls
        ctx.set_materialize_grads(False)
        df, dw, A = _to_points([s], [G], f, weight, want_f, want_w, (G, g) if want_s else None)
        outs = [G.new_empty(0) if A is None else A, df if want_f else G.new_empty(0), dw if want_w else G.new_empty(0)]
        ctx.mark_non_differentiable(*[o for o, w in zip(outs, (want_s, want_f, want_w)) if not w])
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, gA, gF, gD):
        G, s, f, weight, g = ctx.saved_tensors
        gA, gF, gD = (None if t is None or t.numel() == 0 else t for t in (gA, gF, gD))
        need_G, need_s, need_f, need_w = ctx.needs_input_grad[:4]
        B, N, c = f.shape
        P, O = g.shape[1], g.shape[2]
        through_g = need_G and gA is not None  # the term Ā g of ∂G
        dG = ds = df = dw = None
        if gF is None and gD is None:
            dG = _bmm(gA, g) if through_g else None
        else:  # through C = sᵀG, chunk by chunk (Ā g too, while the chunk of g is in cache)
            ds = s.new_empty(B, s.shape[1], P) if need_s else None
            df = f.new_zeros(f.shape) if need_f and gD is not None else None
            dw = weight.new_zeros(weight.shape) if need_w and gF is not None else None
            dG = (G.new_empty(G.shape) if through_g else G.new_zeros(G.shape)) if need_G else None
            spans = _chunks(B, P * O)
            bufs = g.new_empty(2, spans[0][1], P, O)  # one chunk's C and C̄, written over per chunk
            for b0, b1 in spans:
                if through_g:
                    _bmm(gA[b0:b1], g[b0:b1], dG[b0:b1])
                C = _bmm(s[b0:b1], G[b0:b1], bufs[0, : b1 - b0], ta=True).view((b1 - b0) * N, -1)  # (rows, h·o)
                gC = bufs[1, : b1 - b0].view((b1 - b0) * N, -1)
                if gF is not None:
                    torch.mm(gF[b0:b1].reshape(-1, c), weight, out=gC)
                if gD is not None:
                    fc = f[b0:b1].reshape(-1, c)
                    if gF is None:
                        torch.mm(fc, gD, out=gC)
                    else:
                        gC.addmm_(fc, gD)
                    if df is not None:
                        df[b0:b1].view(-1, c).addmm_(C, gD.t())
                if dw is not None:
                    dw.addmm_(gF[b0:b1].reshape(-1, c).t(), C)
                gC = gC.view(b1 - b0, P, O)
                if ds is not None:
                    _bmm(G[b0:b1], gC, ds[b0:b1], tb=True)
                if dG is not None:
                    _bmm(s[b0:b1], gC, dG[b0:b1], acc=True)
        if gA is not None and (need_f or need_w):  # the terms through g: to the forward node if it runs next
            fwd = ctx.fwd
            if fwd.calls == ctx.fwd_calls and torch._C._will_engine_execute_node(fwd):
                fwd.stash.append((gA, G))
            else:
                df2, dw2, _ = _to_points([gA], [G], f, weight, need_f, need_w)
                df = df2 if df is None else (df + df2 if df2 is not None else df)
                dw = dw2 if dw is None else (dw + dw2 if dw2 is not None else dw)
        return dG, ds, df, dw, None, None, None, None, None
