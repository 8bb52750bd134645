"""The continuous convolution kernel: an MLP on the Lie algebra (paper §4.2, appendix C.3)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .norm import MaskBatchNorm

__all__ = ["KernelMLP"]


class KernelMLP(nn.Module):
    """k_theta(a_ij): three Linear layers (``hidden`` units), each followed by an optional masked
    batch norm and Swish, mapping kernel inputs a_ij = [log(v_j^-1 u_i), q_i, q_j] to ``out``
    channels (the "cmco" of the PointConv trick).

    With batch norm every layer is one ``addmm``: the normalisation of Linear(x) is folded into the
    Linear's weight and bias (``MaskBatchNorm.fold_linear``, statistics from the sum and Gram matrix
    of x), so the per-pair tensors are touched only by the matmul and the Swish.  The rows of every
    layer input are kept zero at masked pairs (that is what makes the Gram matrix the masked one).

    When the parameters need gradients and the inputs do not (the usual case: coordinates are data),
    the hidden per-pair activations are not stored for backward but recomputed there from ``a``
    (``_Recomputed``): the memory of a layer's pairs is then its input and output only.  Inputs that
    need gradients (Hamiltonian networks differentiate with respect to positions, twice) take plain
    autograd.

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
        w = None if bool(mask.all()) else mask.reshape(-1, 1).to(x.dtype)
        params = list(self.parameters())
        if torch.is_grad_enabled() and not a.requires_grad and any(p.requires_grad for p in params):
            out = _Recomputed.apply(self, x, w, *params)
        else:
            out = self._rows(x, w)
        return out.view(*a.shape[:-1], out.shape[-1])

    def _rows(self, x: Tensor, w: Tensor | None, *, update_stats: bool = True) -> Tensor:
        """The MLP on rows: x (R, in_dim) zero at masked rows, w (R, 1) 0/1 or None -> (R, out)."""
        count = x.shape[0] if w is None else w.sum()
        for i, lin in enumerate(self.linears):
            if self.norms is None:
                weight, bias = lin.weight, lin.bias
            else:  # the first input (log coordinates, orbits) may have any offset: centre its Gram matrix
                weight, bias = self.norms[i].fold_linear(lin, x, w, count, center=i == 0, update_stats=update_stats)
            x = F.silu(torch.addmm(bias, x, weight.t()))
            if w is not None:
                x = x * w
        return x


class _Recomputed(torch.autograd.Function):
    """KernelMLP._rows whose backward recomputes the activations (gradients for the parameters only).

    forward(mlp, x, w, *params): the MLP without a graph (running statistics updated once, here; the
    parameters are inputs only so that autograd asks for their gradients);
    backward: the same rows again with a graph (statistics recomputed, not updated) and
    ``torch.autograd.grad`` for the parameters.  x and w are data (no gradient).
    """

    @staticmethod
    def forward(ctx, mlp: KernelMLP, x: Tensor, w: Tensor | None, *params: Tensor) -> Tensor:
        ctx.mlp, ctx.training = mlp, mlp.training
        ctx.save_for_backward(x, w)
        with torch.no_grad():
            return mlp._rows(x, w)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, w = ctx.saved_tensors
        mlp = ctx.mlp
        params = list(mlp.parameters())
        was = mlp.training
        mlp.train(ctx.training)
        try:
            with torch.enable_grad():
                out = mlp._rows(x, w, update_stats=False)
                need = [p for p in params if p.requires_grad]
                grads = iter(torch.autograd.grad(out, need, grad, allow_unused=True))
        finally:
            mlp.train(was)
        return (None, None, None, *[next(grads) if p.requires_grad else None for p in params])
