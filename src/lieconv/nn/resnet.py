"""LieResNet: lift, a linear embedding, bottleneck LieConv blocks, norm, Swish, Linear, pooling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import check_fraction, check_int
from ..data import Lifted, Points, as_points
from ..groups import get_group
from ..groups.base import LieGroup
from ..lifting import lift
from ..random import resolve_generator
from .blocks import BottleneckBlock, GlobalPool, PointwiseNormAct
from .conv import zero_masked
from .packing import RowPacking

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
        kernel_input: ``"log"`` or ``"smooth"`` (see ``LieConv``).

    Attributes:
        shared_geometry: ``None`` (default) detects batches whose examples share coordinates and
            mask and runs them on the fixed-grid fast path; ``False`` forces the per-example path,
            ``True`` forces the fast path.

    Random draws (lift stabilizer samples, Monte-Carlo neighbourhoods) come from ``generator``:
    None = torch's global RNG in training mode and the fixed evaluation draws in ``eval()`` mode
    (``lieconv.random.resolve_generator``: the same input gives the same output every call), a
    ``torch.Generator``, or a ``lieconv.random.ExampleRandom`` (per-example draws).

    Shapes:
        ``Points`` (coords (B, n, D), values (B, n, chin), mask (B, n)) or an already lifted
        ``Lifted`` -> (B, num_outputs) if ``pool`` else ``Lifted`` with values (B, m, num_outputs).
        A PyTorch Geometric ``Data``/``Batch`` (``pos``, ``x``, ``batch``) is accepted too
        (``lieconv.data.from_pyg``).
    """

    def __init__(
        self,
        chin: int,
        num_outputs: int,
        *,
        group: LieGroup | str,
        k: int | Sequence[int] = 1536,
        num_layers: int = 6,
        num_nbhd: int = 32,
        fill: float | Sequence[float] = 1 / 4,
        ds_frac: float = 1.0,
        liftsamples: int = 1,
        bn: bool = True,
        mean: bool = True,
        knn: bool = False,
        pool: bool = True,
        kernel_input: str = "log",
    ):
        super().__init__()
        self.group = get_group(group) if isinstance(group, str) else group
        if not isinstance(self.group, LieGroup):
            raise ValueError(f"group: expected a LieGroup instance or a registered name, got {group!r}")
        self.group.check_num_samples(liftsamples)
        chin, num_outputs = check_int("chin", chin, minimum=1), check_int("num_outputs", num_outputs, minimum=1)
        num_layers = check_int("num_layers", num_layers, minimum=0)
        num_nbhd = check_int("num_nbhd", num_nbhd, minimum=1)
        ds_frac = check_fraction("ds_frac", ds_frac)
        ks = [check_int("k", v, minimum=4 if num_layers else 1) for v in _per_layer(k, num_layers + 1, "k")]
        if not isinstance(fill, (list, tuple)):
            check_fraction("fill", fill)  # also with num_layers = 0
        fills = [check_fraction("fill", v) for v in _per_layer(fill, num_layers, "fill")]
        self.chin, self.liftsamples, self.pool = chin, liftsamples, pool
        self.embed = nn.Linear(chin, ks[0])
        self.blocks = nn.ModuleList(
            BottleneckBlock(
                ks[i],
                ks[i + 1],
                group=self.group,
                num_nbhd=num_nbhd,
                fill=fills[i],
                ds_frac=ds_frac,
                knn=knn,
                bn=bn,
                mean=mean,
                kernel_input=kernel_input,
            )
            for i in range(num_layers)
        )
        self.head_act = PointwiseNormAct(ks[-1], bn=bn)
        self.head = nn.Linear(ks[-1], num_outputs)
        self.pooling = GlobalPool(mean=mean)
        self.shared_geometry: bool | None = None

    def lift(self, points: Points, generator: torch.Generator | None = None) -> Lifted:
        return lift(points, self.group, self.liftsamples, generator=generator, shared=self.shared_geometry)

    def _embed(self, values: Tensor, mask: Tensor) -> Tensor:
        return torch.where(mask.unsqueeze(-1), self.embed(values), 0.0)  # padding may hold NaN

    def value_features(self, values: Tensor, mask: Tensor) -> Tensor | None:
        """What the network computes from the values alone, before any geometry enters: the first
        block's ``point_features`` (its convolution must have full neighbourhoods, see
        ``LieConv.covers_all``).  Pass it to ``forward(..., value_features=...)`` to evaluate the
        network on many coordinates with the same values (e.g. the stages of an ODE solver)
        without recomputing it.  ``None`` when there is nothing to reuse (no block, lift samples,
        or a first block that searches neighbourhoods).

        Shapes: values (B, n, chin), mask (B, n) -> (B, n * kernel_out, k[1] / 4).
        """
        if not self.blocks or self.liftsamples != 1 or not self.blocks[0].conv.covers_all(mask.shape[1]):
            return None
        e = self._embed(values, mask)
        return self.blocks[0].point_features(Lifted(values.new_zeros(0), values.new_zeros(0), e, mask))

    def forward(
        self, x: Points | Lifted, generator: torch.Generator | None = None, *, value_features: Tensor | None = None
    ) -> Tensor | Lifted:
        x = as_points(x)  # a torch_geometric Data/Batch (pos, x, batch) becomes a padded Points batch
        generator = resolve_generator(generator, self.training)
        if isinstance(x, Points):
            if x.values.shape[-1:] != (self.chin,) and x.values.dim() == 3:
                raise ValueError(f"x.values: expected {self.chin} channels, got {x.values.shape[-1]}")
            x = self.lift(x, generator)
        elif not isinstance(x, Lifted):
            raise TypeError(f"x: expected lieconv.Points or lieconv.Lifted, got {type(x).__name__}")
        else:
            x.check_group(self.group)
        with RowPacking.reused():  # the blocks that keep the mask share its packing
            h = x.replace(values=self._embed(x.values, x.mask))
            for i, block in enumerate(self.blocks):
                h = block(h, generator, features=value_features if i == 0 else None)
            p = RowPacking(h.mask, h.values.shape[0])  # the head on the real rows only (padded batches)
            out = self.head(self.head_act.rows(p.pack(h.values), p.mask))
            h = h.replace(values=p.unpack(out) if p.active else zero_masked(out, h.mask))
        return self.pooling(h) if self.pool else h
