"""LieResNet: lift, a linear embedding, bottleneck LieConv blocks, norm, Swish, Linear, pooling."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..data import Lifted, Points
from ..groups import get_group
from ..groups.base import LieGroup
from ..lifting import lift
from .blocks import BottleneckBlock, GlobalPool, PointwiseNormAct
from .conv import zero_masked

__all__ = ["LieResNet"]


def _per_layer(value, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}: expected {n} values (one per layer), got {len(value)}")
        return list(value)
    return [value] * n


class LieResNet(nn.Module):
    """The paper's LieConv ResNet (Figure 5, appendix C.3).

    points --lift--> Linear(chin -> k[0]) -> L x BottleneckBlock(k[i] -> k[i+1]) -> BN -> Swish
    -> Linear(k[-1] -> num_outputs) -> GlobalPool (mean over real points) when ``pool``.

    Args:
        chin: input channels.  num_outputs: output channels.
        group: a ``LieGroup`` instance or a registered name (required, keyword-only).
        k: channels, an int or ``num_layers + 1`` values.
        num_layers: number of bottleneck blocks L.
        num_nbhd: Monte-Carlo neighbourhood size.
        fill: neighbourhood fraction, an int-free float or one per layer.
        ds_frac: farthest-point downsampling fraction per block (1 = none).
        liftsamples: lift samples per point (groups with a stabilizer only).
        bn: masked batch norm.  mean: mean (True) or sum pooling and neighbourhood normalisation.
        knn: nearest-neighbour instead of Monte-Carlo neighbourhoods.
        pool: pool to one vector per example (False: return the per-point ``Lifted``).

    Attributes:
        shared_geometry: ``None`` (default) detects batches whose examples share coordinates and
            mask and runs them on the fixed-grid fast path; ``False`` forces the per-example path,
            ``True`` forces the fast path.

    Shapes:
        ``Points`` (coords (B, n, D), values (B, n, chin), mask (B, n)) or an already lifted
        ``Lifted`` -> (B, num_outputs) if ``pool`` else ``Lifted`` with values (B, m, num_outputs).
    """

    def __init__(self, chin: int, num_outputs: int, *, group: LieGroup | str, k: int | Sequence[int] = 1536,
                 num_layers: int = 6, num_nbhd: int = 32, fill: float | Sequence[float] = 1 / 4,
                 ds_frac: float = 1.0, liftsamples: int = 1, bn: bool = True, mean: bool = True,
                 knn: bool = False, pool: bool = True):
        super().__init__()
        self.group = get_group(group) if isinstance(group, str) else group
        if not isinstance(self.group, LieGroup):
            raise ValueError(f"group: expected a LieGroup instance or a registered name, got {group!r}")
        self.group.check_num_samples(liftsamples)
        ks = _per_layer(k, num_layers + 1, "k")
        fills = _per_layer(fill, num_layers, "fill")
        self.chin, self.liftsamples, self.pool = chin, liftsamples, pool
        self.embed = nn.Linear(chin, ks[0])
        self.blocks = nn.ModuleList(
            BottleneckBlock(ks[i], ks[i + 1], group=self.group, num_nbhd=num_nbhd, fill=fills[i], ds_frac=ds_frac,
                            knn=knn, bn=bn, mean=mean)
            for i in range(num_layers))
        self.head_act = PointwiseNormAct(ks[-1], bn=bn)
        self.head = nn.Linear(ks[-1], num_outputs)
        self.pooling = GlobalPool(mean=mean)
        self.shared_geometry: bool | None = None

    def lift(self, points: Points, generator: torch.Generator | None = None) -> Lifted:
        return lift(points, self.group, self.liftsamples, generator=generator, shared=self.shared_geometry)

    def forward(self, x: Points | Lifted, generator: torch.Generator | None = None) -> Tensor | Lifted:
        if isinstance(x, Points):
            if x.values.shape[-1:] != (self.chin,) and x.values.dim() == 3:
                raise ValueError(f"x.values: expected {self.chin} channels, got {x.values.shape[-1]}")
            x = self.lift(x, generator)
        elif not isinstance(x, Lifted):
            raise ValueError(f"x: expected lieconv.Points or lieconv.Lifted, got {type(x).__name__}")
        v = self.embed(x.values)
        h = x.replace(values=v if bool(x.mask.all()) else torch.where(x.mask.unsqueeze(-1), v, 0.0))  # padding may hold NaN
        for block in self.blocks:
            h = block(h, generator)
        h = self.head_act(h)
        h = h.replace(values=zero_masked(self.head(h.values), h.mask))
        return self.pooling(h) if self.pool else h
