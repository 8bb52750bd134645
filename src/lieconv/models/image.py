"""ImageLieResNet: an image read as the points of a pixel grid (paper §5.1, appendix C.3, C.5)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data import Points
from ..groups import get_group
from ..groups.base import LieGroup
from ..lifting import lift
from ..nn import LieResNet
from ..random import resolve_generator

__all__ = ["ImageLieResNet", "pixel_grid"]


def pixel_grid(height: int, width: int, radius: float | None) -> tuple[Tensor, Tensor]:
    """Centred pixel coordinates and the circular crop.

    Coordinates run over ``linspace(-h/2, h/2, h)`` x ``linspace(-w/2, w/2, w)`` (row, column); the
    crop keeps pixels with ‖x‖ < radius (all pixels when ``radius`` is None).  For 28 x 28 and
    radius 15 that is 648 points.

    Returns: coords (h*w, 2) float32 and crop (h*w,) bool, both row-major over the image.
    """
    i = torch.linspace(-height / 2, height / 2, height)
    j = torch.linspace(-width / 2, width / 2, width)
    coords = torch.stack(torch.meshgrid(i, j, indexing="ij"), dim=-1).reshape(-1, 2)
    crop = torch.ones(height * width, dtype=torch.bool) if radius is None else coords.norm(dim=-1) < radius
    return coords, crop


class ImageLieResNet(nn.Module):
    """LieResNet over the pixels of an image, with the paper's downsampling schedule.

    Six (``num_layers``) bottleneck blocks; the total farthest-point downsampling ``total_ds`` is
    split geometrically, s = total_ds^(1/L) per block; block i has fill ``fill / s^i`` (capped at 1)
    so that neighbourhoods keep the same absolute size, and channels ``k / s^(i/2)``.

    The pixel grid and crop are buffers built in ``__init__``: nothing is cached from a batch.
    Every image of a batch shares the same points, so the whole network runs on the fixed-grid
    fast path (one lift, one set of neighbourhoods and kernel weights per step, redrawn every call).

    Shapes: images (B, chin, H, W) or (B, H, W) -> logits (B, num_targets).
    """

    def __init__(
        self,
        chin: int = 1,
        num_targets: int = 10,
        *,
        group: LieGroup | str = "SE2",
        k: int = 128,
        total_ds: float = 0.1,
        fill: float = 0.1,
        nbhd: int = 25,
        num_layers: int = 6,
        liftsamples: int = 1,
        bn: bool = True,
        knn: bool = False,
        increase_channels: bool = True,
        image_size: tuple[int, int] = (28, 28),
        crop_radius: float | None = 15.0,
    ):
        super().__init__()
        group = get_group(group) if isinstance(group, str) else group
        if not 0 < total_ds <= 1:
            raise ValueError(f"total_ds: expected a fraction in (0, 1], got {total_ds!r}")
        s = total_ds ** (1 / num_layers)
        fills = [min(1.0, fill / s**i) for i in range(num_layers)]
        ks = [int(k / s ** (i / 2)) if increase_channels else k for i in range(num_layers + 1)]
        self.chin, self.image_size = chin, tuple(image_size)
        coords, crop = pixel_grid(*self.image_size, crop_radius)
        self.register_buffer("coords", coords[crop], persistent=False)
        self.register_buffer("crop", crop, persistent=False)
        self.net = LieResNet(
            chin,
            num_targets,
            group=group,
            k=ks,
            num_layers=num_layers,
            num_nbhd=nbhd,
            fill=fills,
            ds_frac=s,
            liftsamples=liftsamples,
            bn=bn,
            knn=knn,
            mean=True,
        )

    @property
    def group(self) -> LieGroup:
        return self.net.group

    def to_points(self, images: Tensor) -> Points:
        """(B, chin, H, W) images -> Points on the cropped grid (coordinates shared by the batch)."""
        if not isinstance(images, Tensor) or not images.is_floating_point():
            raise ValueError(f"images: expected a floating tensor, got {getattr(images, 'dtype', type(images))}")
        if images.dim() == 3 and self.chin == 1:
            images = images.unsqueeze(1)
        if images.dim() != 4 or tuple(images.shape[1:]) != (self.chin, *self.image_size):
            raise ValueError(
                f"images: expected shape (B, {self.chin}, {self.image_size[0]}, {self.image_size[1]}), "
                f"got {tuple(images.shape)}"
            )
        B = images.shape[0]
        values = images.reshape(B, self.chin, -1)[:, :, self.crop].transpose(1, 2)
        coords = self.coords.to(images.dtype).expand(B, *self.coords.shape)
        mask = torch.ones(1, coords.shape[1], dtype=torch.bool, device=images.device).expand(B, -1)
        return Points(coords, values, mask)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Logits (B, num_targets) of images (B, chin, H, W).

        Every image lies on the same pixel grid, so the batch takes the fixed-grid path, a batch of
        one included (its random draws are then the shared ones, as in any larger batch), unless
        ``net.shared_geometry`` is ``False`` (the per-example path, same maths).  ``self.net`` called
        on ``Points`` of your own detects shared geometry itself.
        """
        generator = resolve_generator(generator, self.training)
        shared = self.net.shared_geometry is not False
        x = lift(self.to_points(images), self.net.group, self.net.liftsamples, generator=generator, shared=shared)
        return self.net(x, generator=generator)

    @staticmethod
    def num_points(image_size=(28, 28), crop_radius=15.0) -> int:
        return int(pixel_grid(*image_size, crop_radius)[1].sum())
