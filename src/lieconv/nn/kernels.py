"""The continuous convolution kernel: an MLP on the Lie algebra (paper §4.2, appendix C.3)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .functional import silu
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
            x = silu(torch.addmm(bias, x, weight.t()))
            if w is not None:
                x = x * w
        return x


class _Recomputed(torch.autograd.Function):
    """KernelMLP._rows with a hand-written backward that recomputes the activations (gradients for
    the parameters only; x and w are data).

    forward(mlp, x, w, *params): the MLP without a graph; per layer the input's sum S_x and Gram
    matrix G (``MaskBatchNorm.input_stats``, tiny) are kept and the running statistics updated once.
    backward: y_l = x_l Wf_l^T + bf_l again (Wf, bf: the folded weight and bias, ``fold_stats``), then
    per layer, last first, with g the gradient of the layer's output (zero at masked rows)::

        g_y = silu'(y_l) * g,    dL/dWf = g_y^T x_l,    dL/dbf = sum_r g_y
        dL/dx_l = g_y Wf_l + x_l (dL/dG + dL/dG^T) + w (dL/dS_x)^T

    where dL/dG, dL/dS_x and the parameter gradients come from autograd through the small fold
    (d x d tensors only).  The last term puts the sum's gradient on the real rows only, so g stays
    zero at masked rows without a masking pass.
    """

    @staticmethod
    def forward(ctx, mlp: KernelMLP, x: Tensor, w: Tensor | None, *params: Tensor) -> Tensor:
        ctx.mlp, ctx.training = mlp, mlp.training
        ctx.save_for_backward(x, w)
        count = x.shape[0] if w is None else w.sum()
        ctx.count, ctx.stats = count, []
        with torch.no_grad():
            for i, lin in enumerate(mlp.linears):
                weight, bias = lin.weight, lin.bias
                if mlp.norms is not None:
                    stats = mlp.norms[i].input_stats(x, w, count, center=i == 0) if mlp.training else (None, None)
                    ctx.stats.append(stats)
                    weight, bias = mlp.norms[i].fold_stats(lin, *stats, count)
                x = F.silu(torch.addmm(bias, x, weight.t()), inplace=True)
                if w is not None:
                    x.mul_(w)
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, w = ctx.saved_tensors
        mlp, count = ctx.mlp, ctx.count
        was = mlp.training
        mlp.train(ctx.training)
        try:
            folds = []  # per layer: (folded weight, bias, parameter leaves, differentiable (S_x, G) or None)
            with torch.enable_grad():
                for i, lin in enumerate(mlp.linears):
                    leaves = [p for p in lin.parameters() if p.requires_grad]
                    if mlp.norms is None:
                        folds.append((lin.weight, lin.bias, leaves, None))
                        continue
                    norm = mlp.norms[i]
                    leaves += [p for p in norm.parameters() if p.requires_grad]
                    stats = (None, None)
                    if ctx.training:
                        stats = tuple(t.detach().requires_grad_(i > 0) for t in ctx.stats[i])
                    weight, bias = norm.fold_stats(lin, *stats, count, update_stats=False)
                    folds.append((weight, bias, leaves, stats if ctx.training and i > 0 else None))
        finally:
            mlp.train(was)

        # pre-activations only, and not the first layer's: its input x is narrow (the kernel inputs),
        # so y_0 = x Wf_0^T + bf_0 is recomputed where it is needed; a layer's input is recomputed from
        # the pre-activation below it, and g_y overwrites y (one (R x hidden) tensor less each)
        def first() -> Tensor:
            weight, bias = folds[0][0], folds[0][1]
            return torch.addmm(bias.detach(), x, weight.detach().t())

        ys: list[Tensor | None] = [None]
        y = first()
        for weight, bias, _, _ in folds[1:]:
            y = torch.addmm(bias.detach(), _activation(y, w, inplace=len(ys) == 1), weight.detach().t())
            ys.append(y)
        y = None
        g = grad if w is None else grad * w
        grads: dict[Tensor, Tensor] = {}
        for i in reversed(range(len(folds))):
            weight, bias, leaves, stats = folds[i]
            y = ys.pop()
            y = first() if y is None else y
            gy = torch.ops.aten.silu_backward.grad_input(g, y, grad_input=y)  # in place of y
            y = g = None  # freed before the next (R x hidden) tensors are made
            if i == 0:
                xi = x
            elif ys[-1] is None:
                xi = _activation(first(), w, inplace=True)
            else:
                xi = _activation(ys[-1], w)
            targets = leaves + (list(stats) if stats is not None else [])
            if targets:  # (x^T g_y)^T: MKL is ~7x slower on g_y^T x when x is narrow (the first layer)
                outs = torch.autograd.grad((weight, bias), targets, ((xi.t() @ gy).t(), gy.sum(0)), allow_unused=True)
                grads.update((p, gp) for p, gp in zip(leaves, outs) if gp is not None)
            if i == 0:
                break
            gx = gy @ weight.detach()
            del gy
            if stats is not None:
                g_sx, g_gram = outs[len(leaves) :]
                if g_gram is not None:
                    gx.addmm_(xi, (g_gram + g_gram.t()).to(gx.dtype))
                if g_sx is not None:
                    g_sx = g_sx.to(gx.dtype)
                    gx = gx.add_(g_sx) if w is None else gx.addcmul_(w, g_sx)
            g = gx  # the same tensor: no copy
            del xi
        return (None, None, None, *[grads.get(p) for p in mlp.parameters()])


def _activation(y: Tensor, w: Tensor | None, *, inplace: bool = False) -> Tensor:
    """Swish(y), zero at the masked rows (w (R, 1) 0/1, or None: every row real); ``inplace``: in y."""
    a = F.silu(y, inplace=inplace)
    return a if w is None else a.mul_(w)
