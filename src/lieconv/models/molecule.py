"""MoleculeLieResNet: a molecule read as the points of its atoms (paper §5.2, appendix C.5)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data import Points, from_pyg, is_pyg_data
from ..groups import get_group
from ..groups.base import LieGroup
from ..nn import LieResNet

__all__ = ["MoleculeLieResNet", "center_points"]


def center_points(points: Points) -> Points:
    """Subtract each example's mean real-atom position (x_i - x̄): adds translation invariance.

    Shapes: coords (B, n, D), mask (B, n); an example with no real point is left at the origin.
    """
    w = points.mask.to(points.coords.dtype).unsqueeze(-1)
    mean = (points.coords * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)
    return points.replace(coords=(points.coords - mean) * w)


class MoleculeLieResNet(nn.Module):
    """Predict one scalar property of a molecule from its atoms.

    The atoms are points in R^3 (Å) with featurised values (15 channels: one-hot species times
    (1, Z/9, (Z/9)^2)); a ``LieResNet`` with global mean pooling gives one output per molecule.
    No subsampling (molecules are small); ``fill`` 1 takes all atoms as the neighbourhood
    (r = inf in the paper).

    Args:
        chin: input channels (15).  group: a group acting on R^3 (T3, SO3, SE3, Trivial3, ...).
        k, num_layers, nbhd, fill, liftsamples, bn: as in ``LieResNet``.
        center: subtract the mean atom position first (translation invariance for any group).

    Shapes: forward(positions (B, n, 3), features (B, n, chin), mask (B, n) bool) -> (B,), or
    forward(batch) with a torch_geometric ``Batch`` (``pos (P, 3)``, ``x (P, chin)``, ``batch (P,)``).
    """

    def __init__(
        self,
        chin: int = 15,
        *,
        group: LieGroup | str = "T3",
        k: int = 1536,
        num_layers: int = 6,
        nbhd: int = 100,
        fill: float = 1.0,
        liftsamples: int = 1,
        bn: bool = True,
        center: bool = False,
    ):
        super().__init__()
        group = get_group(group) if isinstance(group, str) else group
        if group.space_dim != 3:
            raise ValueError(f"group: expected a group acting on R^3, got {group} (acting on R^{group.space_dim})")
        self.center = center
        self.net = LieResNet(
            chin,
            1,
            group=group,
            k=k,
            num_layers=num_layers,
            num_nbhd=nbhd,
            fill=fill,
            ds_frac=1.0,
            liftsamples=liftsamples,
            bn=bn,
            mean=True,
        )

    @property
    def group(self) -> LieGroup:
        return self.net.group

    def forward(
        self,
        positions: Tensor,
        features: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if is_pyg_data(positions):  # a torch_geometric Batch: pos = positions, x = features
            points = from_pyg(positions)
        else:
            if features is None or mask is None:
                raise ValueError("features, mask: required unless positions is a torch_geometric Data/Batch")
            points = Points(positions, features, mask)
        if self.center:
            points = center_points(points)
        return self.net(points, generator=generator).squeeze(-1)
