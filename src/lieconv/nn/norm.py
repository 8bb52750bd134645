"""Batch norm over the real (unmasked) entries only (paper appendix C.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import native
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

    ``sums_affine`` gives the normalisation as an affine map from sums the caller accumulated (the
    kernel MLP sums its per-pair tensors chunk by chunk, in one fused pass with the product that
    makes them).

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

    def sums_affine(
        self,
        s1: Tensor | None,
        s2: Tensor | None,
        count: Tensor | int,
        offset: Tensor | None = None,
        *,
        update_stats: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """(scale, shift), both (c,), with ``self(t + offset, mask) = t * scale + shift`` at the real rows.

        In training from the masked sums of t, S1 = sum_r w_r t_r and S2 = sum_r w_r t_r^2 (float64), over
        ``count`` real rows: mean_t = S1 / n, var = S2 / n - mean_t^2, and the running mean tracks
        mean_t + offset (the kernel MLP keeps t = x W^T, the Linear's output without its bias
        ``offset``: BN removes the mean, so the bias only moves the running mean).  In evaluation the
        running statistics (``s1``, ``s2`` unused).  Differentiable in the parameters, s1 and s2.
        """
        dtype = self.weight.dtype
        if self.training and not self.sync and not torch.is_grad_enabled() and not isinstance(count, Tensor):
            running = (self.running_mean, self.running_var) if update_stats else None
            off = None if offset is None else offset.detach()
            out = native.bn_affine(
                s1, s2, count, self.weight.detach(), self.bias.detach(), self.eps, off, running, self.momentum
            )
            if out is not None:
                return out
        offset = torch.zeros_like(self.weight) if offset is None else offset
        if self.training:
            mean, var = self._batch_stats(s1, s2, count, update=update_stats, offset=offset)
            mean, var = mean.to(dtype), var.to(dtype)
        else:
            mean, var = self.running_mean.to(dtype) - offset, self.running_var.to(dtype)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return scale, self.bias - mean * scale

    def sums_affine_grad(
        self, s1: Tensor, s2: Tensor, count: Tensor | int, grad_scale: Tensor, grad_shift: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The derivatives of ``sums_affine`` with batch statistics (not under ``sync``): from dL/dscale
        and dL/dshift (c,), (dL/dweight, dL/dbias, dL/dS1, dL/dS2), the last two in S1's dtype.

        With n the count, mean = S1 / n, v = S2 / n - mean^2, var = max(v, 0), r = (var + eps)^(-1/2),
        scale = weight r, shift = bias - mean scale (n < 1: mean 0, var 1, constants)::

            dL/dbias = gc,   dL/dweight = (gs - gc mean) r,   dL/dvar = -(gs - gc mean) weight r^3 / 2
            dL/dS2 = [v >= 0] dL/dvar / n,   dL/dS1 = (-gc scale - 2 mean [v >= 0] dL/dvar) / n

        (the same numbers autograd gives through ``sums_affine``, without building its graph)."""
        dtype = self.weight.dtype
        if not isinstance(count, Tensor):
            out = native.bn_affine_grad(s1, s2, count, self.weight.detach(), self.eps, grad_scale, grad_shift)
            if out is not None:
                return out[0], grad_shift, out[1], out[2]
        mean, var = self._batch_stats(s1, s2, count, update=False)
        n = torch.as_tensor(count, dtype=s1.dtype, device=s1.device)
        safe, empty = n.clamp(min=1), n < 1
        clamped = s2 / safe - mean * mean < 0  # v < 0 (where not empty: mean is S1 / n there)
        mean_c, r = mean.to(dtype), torch.rsqrt(var.to(dtype) + self.eps)
        g_total = grad_scale - grad_shift * mean_c
        g_var = (g_total * self.weight.detach() * r.pow(3) * -0.5).to(s1.dtype)
        g_var = torch.where(empty | clamped, torch.zeros_like(g_var), g_var)
        g_mean = torch.where(empty, torch.zeros_like(g_var), (-grad_shift * self.weight.detach() * r).to(s1.dtype))
        return g_total * r, grad_shift, (g_mean - 2 * mean * g_var) / safe, g_var / safe

    def _batch_stats(
        self,
        total: Tensor,
        total_sq: Tensor,
        count: Tensor | int,
        *,
        update: bool = True,
        offset: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(mean, biased var) from the masked sums S1, S2 and the count n; updates the running averages
        (with the unbiased variance; the mean plus ``offset``, when given) when n > 1 and ``update``.
        n = 0 gives mean 0 and var 1.
        With ``sync`` under DDP the sums and the count are first all-reduced over the processes."""
        if self.sync and _world_size() > 1:
            total, total_sq, count = _all_reduce_sums(total, total_sq, count)
        if not isinstance(count, Tensor):  # known on the host: the same numbers with scalar arithmetic
            return self._host_count_stats(total, total_sq, int(count), update, offset)
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
            many = (n > 1).to(total.dtype)  # no update from a single (or no) real entry
            self._update_running(mean, var * (n / (n - 1).clamp(min=1)), offset, self.momentum * many)
        return mean, var

    def _host_count_stats(
        self, total: Tensor, total_sq: Tensor, n: int, update: bool, offset: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """``_batch_stats`` for a count n known on the host (a Python number): no tensors for the count
        and no masks of the empty case (a dozen small operators fewer per call)."""
        if n < 1:  # mean 0, var 1, still functions of the sums (zero derivatives, as from the masks)
            return total * 0.0, total_sq * 0.0 + 1.0
        mean = total / float(n)
        var = (total_sq / float(n) - mean * mean).clamp(min=0)
        if update and n > 1:
            with torch.no_grad():
                self._update_running(mean, var * (float(n) / (n - 1)), offset, self.momentum)
        return mean, var

    def _update_running(self, mean: Tensor, unbiased: Tensor, offset: Tensor | None, m: Tensor | float) -> None:
        """The running averages moved by m (a number or a 0-d tensor) towards mean + offset and the
        unbiased variance (under ``no_grad``)."""
        shifted = mean.detach() if offset is None else mean.detach() + offset.detach().to(mean.dtype)
        for buf, value in ((self.running_mean, shifted), (self.running_var, unbiased.detach())):
            buf.lerp_(value.to(buf.dtype), m.to(buf.dtype) if isinstance(m, Tensor) else m)


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
        if x.dtype == torch.float32:  # one pass (native.moments_: float32 blocks of rows, summed in float64)
            s1, s2 = x.new_zeros(x.shape[-1], dtype=acc), x.new_zeros(x.shape[-1], dtype=acc)
            native.moments_(xw.reshape(-1, x.shape[-1]), s1, s2)  # w is 0/1: (w x)^2 = w x^2
            return s1, s2
        return xw.sum(dims, dtype=acc), (xw * x).sum(dims, dtype=acc)

    @staticmethod
    def backward(ctx, g1: Tensor | None, g2: Tensor | None):
        x, w = ctx.saved_tensors
        if g1 is None and g2 is None:
            return None, None
        g1 = x.new_zeros(x.shape[-1]) if g1 is None else g1.to(x.dtype)
        gx = g1.expand_as(x) if g2 is None else torch.addcmul(g1, x, 2 * g2.to(x.dtype))
        return (gx if w is None else gx * w), None
