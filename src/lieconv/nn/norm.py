"""Batch norm over the real (unmasked) entries only (paper appendix C.3)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MaskBatchNorm"]


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _synced_stats(rows: Tensor) -> tuple[Tensor, Tensor, int]:
    """Mean and (biased) variance of the real rows (n_p, c) of all processes, differentiably.

    Two all-reduces (``torch.distributed.nn.functional.all_reduce``, whose backward all-reduces the
    gradients): [sum_p sum x, sum_p n_p] -> mean, then sum_p sum (x - mean)^2 -> var; the same
    numbers as one process holding every row, up to summation order.
    """
    from torch.distributed.nn.functional import all_reduce

    c = rows.shape[1]
    local = torch.cat([rows.sum(0), rows.new_full((1,), float(rows.shape[0]))])
    total = all_reduce(local)
    count = int(total[c].detach())
    if count == 0:
        return rows.new_zeros(c), rows.new_ones(c), 0
    mean = total[:c] / count
    var = all_reduce(((rows - mean) ** 2).sum(0)) / count
    return mean, var, count


class MaskBatchNorm(nn.Module):
    """Per-channel batch norm whose statistics count only entries where ``mask`` is True.

    y = (x - mean) / sqrt(var + eps) * weight + bias, with mean / var over the real entries of the
    batch in training (running averages updated there, and only there) and the running averages
    in evaluation.

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
        if self.training:
            mean, var = self._batch_stats(x, mask)
        else:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        scale = self.weight * torch.rsqrt(var + self.eps)
        y = torch.addcmul(self.bias - mean * scale, x, scale)
        return y * mask.unsqueeze(-1).to(y.dtype) if self.zero_masked else y

    def _batch_stats(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        c = x.shape[-1]
        rows = x.reshape(-1, c)
        keep = torch.broadcast_to(mask, x.shape[:-1]).reshape(-1)
        if not bool(keep.all()):
            rows = rows[keep]
        count = rows.shape[0]
        if self.sync and _world_size() > 1:
            mean, var, count = _synced_stats(rows)
        elif count == 0:
            return x.new_zeros(c), x.new_ones(c)
        else:
            var, mean = torch.var_mean(rows, dim=0, correction=0)
        if count > 1:
            with torch.no_grad():
                unbiased = var * (count / (count - 1))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
        return mean, var
