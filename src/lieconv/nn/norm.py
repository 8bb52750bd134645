"""Batch norm over the real (unmasked) entries only (paper appendix C.3)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MaskBatchNorm"]


class MaskBatchNorm(nn.Module):
    """Per-channel batch norm whose statistics count only entries where ``mask`` is True.

    y = (x - mean) / sqrt(var + eps) * weight + bias, with mean / var over the real entries of the
    batch in training (running averages updated there, and only there) and the running averages
    in evaluation.

    Shapes:
        x (..., c); mask broadcastable to x.shape[:-1] (e.g. (1, N) against (B, N, c) for a shared
        geometry).  Masked entries of the output are zero.
    """

    def __init__(self, channels: int, *, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        w = mask.to(x.dtype).unsqueeze(-1)
        if self.training:
            dims = tuple(range(x.dim() - 1))
            count = torch.broadcast_to(w, x.shape[:-1] + (1,)).sum(dims)
            n = count.clamp(min=1.0)
            mean = (x * w).sum(dims) / n
            var = (((x - mean) ** 2) * w).sum(dims) / n
            with torch.no_grad():  # no update from a batch with fewer than two real entries
                keep = count <= 1
                unbiased = (var * count / (count - 1).clamp(min=1.0)).to(self.running_var.dtype)
                rm, rv = self.running_mean, self.running_var
                rm.copy_(torch.where(keep, rm, rm.lerp(mean.detach().to(rm.dtype), self.momentum)))
                rv.copy_(torch.where(keep, rv, rv.lerp(unbiased, self.momentum)))
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        return y * w
