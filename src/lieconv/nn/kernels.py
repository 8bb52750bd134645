"""The continuous convolution kernel: an MLP on the Lie algebra (paper §4.2, appendix C.3)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..runtime import known_all
from .functional import _spans, silu
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
    backward is written by hand (``_Recomputed``): it keeps the hidden per-pair activations (not the
    pre-activations, which one ``addmm`` gives again) when they take at most ``_KEEP_BYTES`` per
    call, and recomputes them too from ``a`` otherwise (large clouds), so that the memory of a
    layer's pairs is then its input and output only.  Inputs that need gradients (Hamiltonian
    networks differentiate with respect to positions, twice) take plain autograd.

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

    forward(mlp, x, w, *params): the MLP without a graph, in chunks of rows (unless they are kept, a
    layer's output overwrites its input where their widths agree, so one (R x hidden) tensor holds
    both); per layer
    the input's sum S_x and Gram matrix G (``MaskBatchNorm.input_stats``, tiny; accumulated over the
    chunks of the layer below) are kept and the running statistics updated once.  The hidden
    activations x_1..x_(L-1) are kept too when they fit in ``_KEEP_BYTES`` (R x 64 floats for the
    default MLP): backward then recomputes no Swish, only the pre-activations (one ``addmm`` each;
    about a third of its time saved).
    backward: y_l = x_l Wf_l^T + bf_l again where not kept (Wf, bf: the folded weight and bias,
    ``fold_stats``), then per layer, last first, with g the gradient of the layer's output (zero at
    masked rows)::

        g_y = silu'(y_l) * g,    dL/dWf = g_y^T x_l,    dL/dbf = sum_r g_y
        dL/dx_l = g_y Wf_l + x_l (dL/dG + dL/dG^T) + w (dL/dS_x)^T

    where dL/dG, dL/dS_x and the parameter gradients come from autograd through the small fold
    (d x d tensors only).  The last term puts the sum's gradient on the real rows only, so g stays
    zero at masked rows without a masking pass.  Computed in passes over chunks of rows
    (``_chunked_backward``): besides the engine's gradient, only the hidden pre-activations and one
    gradient are whole (R x hidden) tensors at any time.
    """

    @staticmethod
    def forward(ctx, mlp: KernelMLP, x: Tensor, w: Tensor | None, *params: Tensor) -> Tensor:
        ctx.mlp, ctx.training = mlp, mlp.training
        ctx.save_for_backward(x, w)
        count = x.shape[0] if w is None else w.sum()
        ctx.count, ctx.stats = count, []
        bn = mlp.norms is not None
        L = len(mlp.linears)
        hidden = [lin.out_features for lin in mlp.linears[:-1]]
        keep = x.shape[0] * sum(hidden) * x.element_size() <= _KEEP_BYTES
        kept = []
        with torch.no_grad():
            stats = MaskBatchNorm.input_stats(x, w, count, center=True) if bn and mlp.training else (None, None)
            h, spans = x, _spans(x.shape[0], _row_chunk(x))
            for i, lin in enumerate(mlp.linears):
                weight, bias = lin.weight, lin.bias
                if bn:
                    ctx.stats.append(stats)
                    weight, bias = mlp.norms[i].fold_stats(lin, *stats, count)
                wt, width = weight.t(), weight.shape[0]
                # the output overwrites the input chunk by chunk when it may (same width, not x itself,
                # not kept)
                out = h if not keep and h is not x and h.shape[1] == width else x.new_empty(x.shape[0], width)
                want = bn and mlp.training and i + 1 < L  # the next layer's input statistics
                sx = x.new_zeros(width) if want else None
                gram = x.new_zeros(width, width, dtype=torch.float64) if want else None
                for a, b in spans:
                    wc = None if w is None else w[a:b]
                    y = torch.addmm(bias, h[a:b], wt) if out is h else torch.addmm(bias, h[a:b], wt, out=out[a:b])
                    y = _activation(y, wc, inplace=True)
                    if out is h:
                        out[a:b] = y
                    if want:
                        sx += y.sum(0)
                        gram += (y.t() @ y).double()
                stats, h = (sx, gram), out
                if keep and i + 1 < L:
                    kept.append(out)
        ctx.kept = kept if keep else None
        return h

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

        kept, ctx.kept = ctx.kept, None  # released during backward: a second backward recomputes
        grads = dict(_chunked_backward(x, w, grad, folds, kept))
        return (None, None, None, *[grads.get(p) for p in mlp.parameters()])


#: rows per chunk of the kernel MLP's backward passes on CPU: the per-row temporaries of a chunk stay
#: in cache; other devices take 64x larger chunks (fewer kernel launches)
_ROW_CHUNK = 8192
#: the kernel MLP keeps its hidden activations for backward when they take at most this many bytes
#: (per call), and recomputes them otherwise (large clouds)
_KEEP_BYTES = 1 << 28


def _row_chunk(x: Tensor) -> int:
    return _ROW_CHUNK if x.device.type == "cpu" else _ROW_CHUNK << 6


def _chunked_backward(
    x: Tensor, w: Tensor | None, grad: Tensor, folds: list, kept: list[Tensor] | None = None
) -> list[tuple[Tensor, Tensor]]:
    """The parameter gradients of ``_Recomputed`` in passes over chunks of rows: [(leaf, gradient)].

    Layer l maps x_l (R, d_l) to y_l = x_l Wf_l^T + bf_l and x_(l+1) = Swish(y_l) * w.  With
    G_l = dL/dy_l, the reductions dL/dWf_l = G_l^T x_l and dL/dbf_l = sum_r G_l give (through the
    small fold, by autograd) the parameter gradients and dL/dG, dL/dS_x of the layer's input
    statistics, and then::

        G_(l-1) = silu'(y_(l-1)) * (G_l Wf_l + x_l (dL/dG + dL/dG^T) + w (dL/dS_x)^T)

    Chunk c of G_(l-1) needs only chunk c of G_l and of y_(l-1), so it overwrites G_l (or the stored
    y_(l-1), which has its width) chunk by chunk.  Stored whole are only the hidden pre-activations
    (or the kept activations) and one G.  With ``kept`` [x_1..x_(L-1)] from the forward,
    y_(l-1) = x_(l-1) Wf^T + bf comes again chunk by chunk in the pass that needs it; else
    y_1..y_(L-2) are recomputed once, in the first pass, y_0 again from the narrow x in every pass,
    and each x_l = Swish(y_(l-1)) * w one chunk at a time like every temporary.
    """
    R, L = x.shape[0], len(folds)
    Wd = [f[0].detach() for f in folds]
    bd = [f[1].detach() for f in folds]
    spans = _spans(R, _row_chunk(x))
    xs: list[Tensor | None] | None = [x, *kept] if kept is not None else None
    ys: list[Tensor | None] = (
        [None] * (L - 1) if xs is not None else [None] + [x.new_empty(R, Wd[l].shape[0]) for l in range(1, L - 1)]
    )

    def pre(l: int, xc: Tensor, out: Tensor | None = None) -> Tensor:
        return torch.addmm(bd[l], xc, Wd[l].t()) if out is None else torch.addmm(bd[l], xc, Wd[l].t(), out=out)

    def y_of(l: int, a: int, b: int) -> Tensor:  # y_l at rows a:b: stored, or recomputed from x_l
        return pre(l, x_of(l, a, b)) if ys[l] is None else ys[l][a:b]

    def x_of(l: int, a: int, b: int) -> Tensor:  # x_l at rows a:b: the input, kept, or a new tensor
        if l == 0 or xs is not None:
            return (x if l == 0 else xs[l])[a:b]
        return _activation(y_of(l - 1, a, b), None if w is None else w[a:b])

    # first pass: y_1..y_(L-2) again, G_(L-1) = silu'(y_(L-1)) * dL/dx_L and its reductions
    G = x.new_empty(R, Wd[-1].shape[0])
    accT = x.new_zeros(Wd[-1].shape[1], Wd[-1].shape[0])  # (dL/dWf)^T
    accb = x.new_zeros(Wd[-1].shape[0])
    for a, b in spans:
        wc = None if w is None else w[a:b]
        if kept is not None:
            xc = x_of(L - 1, a, b)
        else:
            xc = x[a:b]
            for l in range(L - 1):
                y = pre(l, xc, None if l == 0 else ys[l][a:b])
                xc = _activation(y, wc, inplace=l == 0)
        gc = grad[a:b] if w is None else grad[a:b] * wc
        gy = torch.ops.aten.silu_backward.grad_input(gc, pre(L - 1, xc), grad_input=G[a:b])
        accT.addmm_(xc.t(), gy)  # (x^T G)^T: MKL is ~7x slower on G^T x when x is narrow
        accb += gy.sum(0)
    out: list[tuple[Tensor, Tensor]] = []
    for l in reversed(range(L)):
        weight, bias, leaves, stats = folds[l]
        targets = leaves + (list(stats) if stats is not None else [])
        outs = torch.autograd.grad((weight, bias), targets, (accT.t(), accb), allow_unused=True) if targets else []
        out += [(p, gp) for p, gp in zip(leaves, outs) if gp is not None]
        if l == 0:
            break
        g_sx, g_gram = outs[len(leaves) :] if stats is not None else (None, None)
        M = None if g_gram is None else (g_gram + g_gram.t()).to(x.dtype)
        s = None if g_sx is None else g_sx.to(x.dtype)
        width = Wd[l].shape[1]  # d_l: G_(l-1)'s width
        target = ys[l - 1] if ys[l - 1] is not None else (G if G.shape[1] == width else x.new_empty(R, width))
        accT = x.new_zeros(Wd[l - 1].shape[1], width)
        accb = x.new_zeros(width)
        for a, b in spans:
            wc = None if w is None else w[a:b]
            y = y_of(l - 1, a, b)
            gx = G[a:b] @ Wd[l]
            if M is not None:
                gx.addmm_(x_of(l, a, b), M)
            if s is not None:
                gx = gx.add_(s) if wc is None else gx.addcmul_(wc, s)
            gy = torch.ops.aten.silu_backward.grad_input(gx, y, grad_input=target[a:b])
            accT.addmm_(x_of(l - 1, a, b).t(), gy)
            accb += gy.sum(0)
        G = target
        ys[l - 1] = None
        if xs is not None:
            xs[l] = None
    return out


def _activation(y: Tensor, w: Tensor | None, *, inplace: bool = False) -> Tensor:
    """Swish(y), zero at the masked rows (w (R, 1) 0/1, or None: every row real); ``inplace``: in y."""
    a = F.silu(y, inplace=inplace)
    return a if w is None else a.mul_(w)
