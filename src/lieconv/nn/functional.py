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

__all__ = ["silu", "silu_grad", "contract"]


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


class _SiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return F.silu(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _SiLUGrad.apply(g, x)
        return torch.ops.aten.silu_backward(g, x)


class _SiLUGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g: Tensor, x: Tensor) -> Tensor:
        ctx.save_for_backward(g, x)
        return torch.ops.aten.silu_backward(g, x)

    @staticmethod
    def backward(ctx, gg: Tensor):
        g, x = ctx.saved_tensors
        grad_g = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_g = silu_grad(gg, x) if torch.is_grad_enabled() else torch.ops.aten.silu_backward(gg, x)
        if ctx.needs_input_grad[1]:
            if torch.is_grad_enabled():  # a third derivative: plain differentiable operations
                s = torch.sigmoid(x)
                grad_x = gg * g * s * (1 - s) * (2 + x * (1 - 2 * s))
            else:  # the same, in place on two temporaries
                s = torch.sigmoid(x)
                v = torch.mul(s, s).neg_().add_(s)  # s (1 - s)
                grad_x = s.mul_(-2).add_(1).mul_(x).add_(2).mul_(v).mul_(g).mul_(gg)
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


class _Contract(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: Tensor, g: Tensor) -> Tensor:
        ctx.save_for_backward(s, g)
        return torch.bmm(s, g)

    @staticmethod
    def backward(ctx, G: Tensor):
        s, g = ctx.saved_tensors
        want_s = ctx.needs_input_grad[0] and _wanted(s)
        want_g = ctx.needs_input_grad[1] and _wanted(g)
        if torch.is_grad_enabled() and (want_s or want_g):
            ds, dg = _ContractGrad.apply(G, s, g, want_s, want_g)
            return (ds if want_s else None), (dg if want_g else None)
        ds = torch.bmm(G, g.transpose(1, 2)) if want_s else None
        dg = torch.bmm(_ct(s), G) if want_g else None
        return ds, dg


class _ContractGrad(torch.autograd.Function):
    """(A, C) = (G gᵀ, sᵀ G): the first derivative of ``contract``; an output not wanted is a
    0-element placeholder."""

    @staticmethod
    def forward(ctx, G: Tensor, s: Tensor, g: Tensor, want_s: bool, want_g: bool):
        ctx.save_for_backward(G, s, g)
        ctx.set_materialize_grads(False)
        A = torch.bmm(G, g.transpose(1, 2)) if want_s else G.new_empty(0)
        C = torch.bmm(_ct(s), G) if want_g else G.new_empty(0)
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
                dG = torch.bmm(gA, g)
            if gC is not None:
                dG = torch.bmm(s, gC) if dG is None else torch.baddbmm(dG, s, gC)
        if need_s and gC is not None:
            ds = torch.bmm(G, gC.transpose(1, 2))
        if need_g and gA is not None:
            dg = torch.bmm(_ct(gA), G)
        return dG, ds, dg, None, None
