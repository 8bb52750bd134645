"""The continuous convolution kernel: an MLP on the Lie algebra (paper §4.2, appendix C.3)."""
from __future__ import annotations

from torch import Tensor, nn

from .norm import MaskBatchNorm

__all__ = ["KernelMLP"]


class KernelMLP(nn.Module):
    """k_theta(a_ij): three Linear layers (``hidden`` units), each followed by an optional masked
    batch norm and Swish, mapping kernel inputs a_ij = [log(v_j^-1 u_i), q_i, q_j] to ``out``
    channels (the "cmco" of the PointConv trick).

    Shapes: a (Bg, m, K, in_dim), mask (Bg, m, K) -> (Bg, m, K, out).  Outputs at masked pairs
    are left as they are: the layer multiplies the kernel by the neighbourhood mask.
    """

    def __init__(self, in_dim: int, out: int = 16, *, hidden: int = 32, bn: bool = False):
        super().__init__()
        dims = [in_dim, hidden, hidden, out]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(MaskBatchNorm(b, zero_masked=False) for b in dims[1:]) if bn else None
        self.act = nn.SiLU()

    def forward(self, a: Tensor, mask: Tensor) -> Tensor:
        h = a
        for i, lin in enumerate(self.linears):
            h = lin(h)
            if self.norms is not None:
                h = self.norms[i](h, mask)
            h = self.act(h)
        return h
