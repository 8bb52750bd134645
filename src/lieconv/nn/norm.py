"""Batch norm over the real (unmasked) entries only (paper appendix C.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..runtime import known_all

__all__ = ["MaskBatchNorm", "masked_moments"]


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce_sums(total: Tensor, total_sq: Tensor, count: Tensor | int) -> tuple[Tensor, Tensor, Tensor]:
    """Sum the masked sums S1, S2 (c,) and the count n over all processes, differentiably.

    One all-reduce (``torch.distributed.nn.functional.all_reduce``, whose backward all-reduces the
    gradients) of [S1, S2, n]: every process then holds the sums of the global batch, so the
    statistics are those of one process holding every row, up to summation order.
    """
    from torch.distributed.nn.functional import all_reduce

    c = total.shape[0]
    n = torch.as_tensor(count, dtype=total.dtype, device=total.device).reshape(1)
    out = all_reduce(torch.cat([total, total_sq, n]))
    return out[:c], out[c : 2 * c], out[2 * c]


class MaskBatchNorm(nn.Module):
    """Per-channel batch norm whose statistics count only entries where ``mask`` is True.

    y = (x - mean) / sqrt(var + eps) * weight + bias, with mean / var over the real entries of the
    batch in training (running averages updated there, and only there) and the running averages
    in evaluation.  The statistics come from masked sums, S1 = sum_r w_r x_r, S2 = sum_r w_r x_r^2 and
    the count n = sum_r w_r (w the mask): mean = S1 / n, var = S2 / n - mean^2 (``_batch_stats``, the
    one place that turns sums into statistics), so no copy of the real rows is made.

    ``fold_linear`` gives the same normalisation of the output of a ``Linear`` as one affine map of its
    *input* (the sums of the output follow from the input's sum and Gram matrix): the kernel MLP then
    needs one matmul per layer and no pass over the per-pair tensors for the statistics.

    Args:
        channels: c.
        zero_masked: multiply the output by the mask (False when the caller masks it anyway, as
            the LieConv kernel does: it saves a pass over the largest tensors of the layer).

    Under DDP, ``sync = True`` (``MaskBatchNorm.convert_sync(model)``; Lightning's ``sync_batchnorm``
    only converts torch's own batch norms) all-reduces the masked sums and counts, so every
    process normalises with the statistics of the global batch.

    Shapes:
        x (..., c); mask broadcastable to x.shape[:-1] (e.g. (1, N) against (B, N, c) for a shared
        geometry).
    """

    def __init__(self, channels: int, *, eps: float = 1e-5, momentum: float = 0.1, zero_masked: bool = True):
        super().__init__()
        self.eps, self.momentum, self.zero_masked = eps, momentum, zero_masked
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        #: all-reduce the statistics over the default process group in training (see ``convert_sync``)
        self.sync = False

    @staticmethod
    def convert_sync(module: nn.Module, sync: bool = True) -> nn.Module:
        """Set ``sync`` on every ``MaskBatchNorm`` inside ``module`` (the analogue of torch's
        ``SyncBatchNorm.convert_sync_batchnorm``; the trainer calls it under DDP).  Returns ``module``."""
        for m in module.modules():
            if isinstance(m, MaskBatchNorm):
                m.sync = bool(sync)
        return module

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        scale, shift = self.affine(x, mask)
        y = torch.addcmul(shift, x, scale)
        return y * mask.unsqueeze(-1).to(y.dtype) if self.zero_masked and not known_all(mask) else y

    def affine(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(scale, shift), both (c,), with ``self(x, mask) = x * scale + shift`` at the real entries."""
        full = known_all(mask)
        w = None if full else mask.unsqueeze(-1).to(x.dtype)
        if self.training:
            count = x.shape[:-1].numel() if full else torch.broadcast_to(mask, x.shape[:-1]).sum()
            mean, var = self._batch_stats(*masked_moments(x, w), count)
            mean, var = mean.to(x.dtype), var.to(x.dtype)
        else:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return scale, self.bias - mean * scale

    def fold_linear(
        self,
        linear: nn.Linear,
        x: Tensor,
        w: Tensor | None,
        count: Tensor | int,
        *,
        center: bool = False,
        update_stats: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """(weight, bias) with ``x @ weight.T + bias == self(linear(x), mask)`` at the real rows.

        x (R, d) must be zero at the masked rows, w (R, 1) the mask as 0/1 (None: every row is real),
        ``count`` the number of real rows.  ``fold_stats`` of ``input_stats``.
        """
        stats = self.input_stats(x, w, count, center=center) if self.training else (None, None)
        return self.fold_stats(linear, *stats, count, update_stats=update_stats)

    @staticmethod
    def input_stats(x: Tensor, w: Tensor | None, count: Tensor | int, *, center: bool = False) -> tuple[Tensor, Tensor]:
        """(S_x, G): the column sum of x (R, d) (zero at masked rows) and its Gram matrix x^T x in float64.

        ``center``: G computed as (x - S_x/n)^T (x - S_x/n) + S_x S_x^T / n (the same matrix, one more
        pass over x; accurate for inputs whose mean may dwarf their spread, such as raw coordinates).
        """
        sx = x.sum(0)
        if not center:
            return sx, (x.t() @ x).double()
        n = count.clamp(min=1) if isinstance(count, Tensor) else max(count, 1)  # no real row: S_x = 0, G = 0
        xc = x - sx / n
        if w is not None:
            xc = xc * w  # masked rows stay zero
        return sx, (xc.t() @ xc).double() + torch.outer(sx, sx).double() / n

    def fold_stats(
        self,
        linear: nn.Linear,
        sx: Tensor | None,
        gram: Tensor | None,
        count: Tensor | int,
        *,
        update_stats: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """(weight, bias) of the Linear followed by this norm, from its input's sum S_x and Gram matrix G.

        In training the statistics of y = x W^T + b are S1 = W S_x + n b and
        S2 = diag(W G W^T) + 2 b * (W S_x) + n b^2 (combined in float64); in evaluation the running
        ones (``sx``, ``gram`` unused).  Then weight = W * s, bias = beta + (b - mean) * s with
        s = gamma / sqrt(var + eps).  Differentiable in the parameters, ``sx`` and ``gram``.
        """
        W, b = linear.weight, linear.bias
        if b is None:
            b = W.new_zeros(W.shape[0])
        if self.training:
            Wd, bd, sxd = W.double(), b.double(), sx.double()
            wsx = Wd @ sxd
            s1 = wsx + count * bd
            s2 = ((Wd @ gram) * Wd).sum(1) + 2 * bd * wsx + count * bd * bd
            mean, var = self._batch_stats(s1, s2, count, update=update_stats)
            mean, var = mean.to(W.dtype), var.to(W.dtype)
        else:
            mean, var = self.running_mean.to(W.dtype), self.running_var.to(W.dtype)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return W * scale.unsqueeze(1), self.bias + (b - mean) * scale

    def _batch_stats(
        self, total: Tensor, total_sq: Tensor, count: Tensor | int, *, update: bool = True
    ) -> tuple[Tensor, Tensor]:
        """(mean, biased var) from the masked sums S1, S2 and the count n; updates the running averages
        (with the unbiased variance) when n > 1 and ``update``.  n = 0 gives mean 0 and var 1.
        With ``sync`` under DDP the sums and the count are first all-reduced over the processes."""
        if self.sync and _world_size() > 1:
            total, total_sq, count = _all_reduce_sums(total, total_sq, count)
        n = torch.as_tensor(count, dtype=total.dtype, device=total.device)
        safe = n.clamp(min=1)
        mean = total / safe
        var = (total_sq / safe - mean * mean).clamp(min=0)
        empty = n < 1
        mean = torch.where(empty, torch.zeros_like(mean), mean)
        var = torch.where(empty, torch.ones_like(var), var)
        if not update:
            return mean, var
        with torch.no_grad():
            many = (n > 1).to(total.dtype)
            unbiased = var * (n / (n - 1).clamp(min=1))
            m = self.momentum * many  # no update from a single (or no) real entry
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m.to(self.running_mean.dtype))
            self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), m.to(self.running_var.dtype))
        return mean, var


def masked_moments(x: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
    """(S1, S2) = (sum_r w_r x_r, sum_r w_r x_r^2) over every axis but the last, accumulated in float64
    for floating inputs of lower precision.  x (..., c), w broadcastable to x (0/1; None: all ones)
    -> two (c,) tensors.

    The value of ``((x w).sum(dims), (x w x).sum(dims))`` with a lean derivative: autograd's
    would broadcast each (c,) gradient to x's shape, cast it and multiply it by x in separate passes
    (five passes over x); here ``dL/dx = w (g1 + 2 x g2)`` is one ``addcmul`` (and one product with w
    when some rows are masked).  Differentiable again (the backward is made of differentiable ops).
    """
    return _MaskedMoments.apply(x, w)


class _MaskedMoments(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor | None):
        dims = tuple(range(x.dim() - 1))
        acc = torch.float64 if x.dtype in (torch.float16, torch.bfloat16, torch.float32) else x.dtype
        xw = x if w is None else x * w
        ctx.save_for_backward(x, w)
        return xw.sum(dims, dtype=acc), (xw * x).sum(dims, dtype=acc)

    @staticmethod
    def backward(ctx, g1: Tensor | None, g2: Tensor | None):
        x, w = ctx.saved_tensors
        if g1 is None and g2 is None:
            return None, None
        g1 = x.new_zeros(x.shape[-1]) if g1 is None else g1.to(x.dtype)
        gx = g1.expand_as(x) if g2 is None else torch.addcmul(g1, x, 2 * g2.to(x.dtype))
        return (gx if w is None else gx * w), None
