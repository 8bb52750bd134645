"""Bottleneck residual block and global pooling (paper Figure 5, appendix C.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import native
from ..data import Lifted
from ..neighbors import gather_points
from .conv import LieConv, zero_masked
from .functional import silu, silu_grad
from .norm import MaskBatchNorm
from .packing import RowPacking

__all__ = ["BottleneckBlock", "GlobalPool", "PointwiseNormAct"]


class PointwiseNormAct(nn.Module):
    """Optional masked batch norm then Swish, applied to the values of a ``Lifted``.

    Swish is ``lieconv.nn.functional.silu`` (twice differentiable with a small graph)."""

    def __init__(self, channels: int, *, bn: bool):
        super().__init__()
        self.norm = MaskBatchNorm(channels) if bn else None

    def forward(self, x: Lifted) -> Lifted:
        return x.replace(values=self.rows(x.values, x.mask))

    def rows(self, values: Tensor, mask: Tensor | None) -> Tensor:
        """The same on values (..., c) with ``mask`` (None: every row is real, e.g. packed rows)."""
        if self.norm is None:
            return silu(values)
        if mask is None:
            mask = values.new_ones(values.shape[:-1], dtype=torch.bool)
        scale, shift = self.norm.affine(values, mask)
        return zero_masked(affine_silu(values, scale, shift), mask)


def affine_silu(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """Swish(x * scale + shift) for x (..., c), scale and shift (c,), storing only x for backward
    (the affine output is recomputed there: one tensor of the block's width less per call)."""
    return _AffineSiLU.apply(x, scale, shift)


class _AffineSiLU(torch.autograd.Function):
    """Forward and first backward are one pass each over the rows (``native.swish`` /
    ``native.swish_grad``, the sums of the scale's and the shift's gradients in float64); a backward
    with create_graph is made of differentiable ops."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        ctx.save_for_backward(x, scale, shift)
        if not x.dtype == scale.dtype == shift.dtype:  # mixed precision: the promoting torch formula
            return F.silu(torch.addcmul(shift, x, scale))
        c = x.shape[-1]
        return native.swish(x.reshape(-1, c), scale.contiguous(), shift.contiguous(), None).view(x.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, scale, shift = ctx.saved_tensors
        want_x, want_scale, want_shift = ctx.needs_input_grad
        if torch.is_grad_enabled() or not x.dtype == scale.dtype == shift.dtype:
            y = torch.addcmul(shift, x, scale)
            # create_graph: silu_grad is twice differentiable (aten's fused silu_backward is not)
            dy = silu_grad(grad, y) if torch.is_grad_enabled() else torch.ops.aten.silu_backward(grad.to(y.dtype), y)
            dims = tuple(range(x.dim() - 1))
            grad_x = dy * scale if want_x else None
            grad_scale = (dy * x).sum(dims) if want_scale else None
            grad_shift = dy.sum(dims) if want_shift else None
            return grad_x, grad_scale, grad_shift
        c = x.shape[-1]
        rows = x.reshape(-1, c)
        wanted = want_scale or want_shift
        sums = (x.new_zeros(c, dtype=torch.float64), x.new_zeros(c, dtype=torch.float64)) if wanted else None
        dy = native.swish_grad(
            grad.reshape(-1, c).contiguous(),
            rows,
            scale.contiguous(),
            shift.contiguous(),
            None,
            out=torch.empty_like(rows),
            sums=sums,
        )
        grad_x = dy.mul_(scale).view(x.shape) if want_x else None
        grad_scale = sums[0].to(x.dtype) if want_scale else None
        grad_shift = sums[1].to(x.dtype) if want_shift else None
        return grad_x, grad_scale, grad_shift


class _AddLeading(torch.autograd.Function):
    """out[..., :c] += skip in place (c = skip's channels; out is a fresh product nothing saved), whose
    backward passes the gradient on and its first c channels to skip (no copy of either)."""

    @staticmethod
    def forward(ctx, out: Tensor, skip: Tensor) -> Tensor:
        ctx.c = skip.shape[-1]
        out[..., : ctx.c] += skip
        ctx.mark_dirty(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, grad[..., : ctx.c]


class BottleneckBlock(nn.Module):
    """x -> x|_queries + [BN, Swish, Linear(chin -> chin/4), BN, Swish, LieConv(chin/4 -> chout/4),
    BN, Swish, Linear(chout/4 -> chout)](x).

    The shortcut is taken at exactly the query points the convolution kept (one selection serves
    both), and added to the first ``chin`` output channels (``chout >= chin``) or through a linear
    projection when the block narrows.

    Shapes: ``Lifted`` with values (B, N, chin) -> ``Lifted`` with values (B, m, chout).
    """

    def __init__(
        self,
        chin: int,
        chout: int,
        *,
        group,
        num_nbhd: int,
        fill: float,
        ds_frac: float = 1.0,
        knn: bool = False,
        bn: bool = True,
        mean: bool = True,
        kernel_input: str = "log",
    ):
        super().__init__()
        if chin < 4 or chout < 4:
            raise ValueError(f"chin, chout: expected at least 4 channels for the bottleneck, got {chin}, {chout}")
        self.chin, self.chout = chin, chout
        self.pre = PointwiseNormAct(chin, bn=bn)
        self.down = nn.Linear(chin, chin // 4)
        self.mid = PointwiseNormAct(chin // 4, bn=bn)
        self.conv = LieConv(
            chin // 4,
            chout // 4,
            group=group,
            num_nbhd=num_nbhd,
            fill=fill,
            ds_frac=ds_frac,
            knn=knn,
            bn=bn,
            mean=mean,
            kernel_input=kernel_input,
        )
        self.post = PointwiseNormAct(chout // 4, bn=bn)
        self.up = nn.Linear(chout // 4, chout)
        self.shortcut = nn.Linear(chin, chout) if chout < chin else None

    def conv_input(self, x: Lifted, packing: RowPacking | None = None) -> Lifted:
        """The pointwise half before the convolution: BN, Swish, Linear(chin -> chin/4), BN, Swish
        (on the real rows only: ``packing``, by default ``RowPacking`` of x's mask)."""
        p = RowPacking(x.mask, x.values.shape[0]) if packing is None else packing
        return x.replace(values=p.unpack(self._conv_input_rows(p.pack(x.values), p)))

    def _conv_input_rows(self, rows: Tensor, p: RowPacking) -> Tensor:
        return self.mid.rows(self.down(self.pre.rows(rows, p.mask)), p.mask)

    def point_features(self, x: Lifted) -> Tensor:
        """``conv.point_features`` of ``conv_input(x)``: everything before the kernel that depends on
        the values alone (full neighbourhoods), (B, N * kernel_out, chout / 4)."""
        return self.conv.point_features(self.conv_input(x).values, x.mask)

    def forward(self, x: Lifted, generator: torch.Generator | None = None, features: Tensor | None = None) -> Lifted:
        """``features``: ``point_features(x)`` computed beforehand (e.g. once for many calls with the
        same values and other coordinates), so only the geometry-dependent part runs."""
        sel = self.conv.select(x, generator)
        p = RowPacking(x.mask, x.values.shape[0])
        rows = p.pack(x.values)  # the real rows of x: the convolution's input and the shortcut's
        h = x if features is not None else x.replace(values=p.unpack(self._conv_input_rows(rows, p)))
        h = self.conv(h, sel, features=features)
        skip = rows
        if sel.query_idx is not None:  # the pointwise half after it: on the queries' real rows
            p = RowPacking(h.mask, h.values.shape[0])
            skip = p.pack(gather_points(x.values, sel.query_idx))
        out = self.up(self.post.rows(p.pack(h.values), p.mask))
        if self.shortcut is not None:
            out = out + self.shortcut(skip)
        elif self.chout == self.chin:
            out = out + skip
        else:  # widening: the shortcut on the first chin channels
            out = _AddLeading.apply(out, skip)
        return h.replace(values=p.unpack(out) if p.active else zero_masked(out, h.mask))


class GlobalPool(nn.Module):
    """Average (``mean=True``) or sum of the values over the real points of each example.

    Shapes: ``Lifted`` values (B, N, c), mask (Bg, N) -> (B, c).  An example with no real point
    gives zeros.
    """

    def __init__(self, *, mean: bool = True):
        super().__init__()
        self.mean = mean

    def forward(self, x: Lifted) -> Tensor:
        w = x.mask.to(x.values.dtype).unsqueeze(-1)
        total = (x.values * w).sum(1)
        if not self.mean:
            return total
        return total / w.sum(1).clamp(min=1.0)
