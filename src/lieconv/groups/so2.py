"""SO(2): rotations of the plane, acting linearly on R^2."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import polar, rot2
from ._series import wrap_angle
from .base import LieGroup

__all__ = ["SO2"]


class SO2(LieGroup):
    """Rotations of R^2.

    * algebra: a = theta, hat(theta) = [[0, -theta], [theta, 0]]; exp = R(theta),
      log(g) = atan2(g10, g00) in (-pi, pi].
    * elements: the angle theta (``elem_dim = 1``), so
      ``rel_log(u, v) = wrap(theta_u - theta_v)`` (elementwise, no matrices).
    * orbits: circles, q(x) = ||x|| (``q_dim = 1``), origin o_q = (q, 0).
    * lift: u = R(atan2(y, x)), unique (trivial stabilizer); x = 0 lifts to the angle 0.
    """

    space_dim = 2
    lie_dim = 1
    rep_dim = 2
    q_dim = 1
    stabilizer_dim = 0
    affine = False
    name = "SO(2)"

    @property
    def elem_dim(self) -> int:
        return 1

    def hat(self, a: Tensor) -> Tensor:
        z = torch.zeros_like(a[..., 0])
        th = a[..., 0]
        return torch.stack([torch.stack([z, -th], -1), torch.stack([th, z], -1)], -2)

    def vee(self, A: Tensor) -> Tensor:
        return ((A[..., 1, 0] - A[..., 0, 1]) / 2).unsqueeze(-1)

    def exp(self, a: Tensor) -> Tensor:
        return rot2(a[..., 0])

    def log(self, g: Tensor) -> Tensor:
        return torch.atan2(g[..., 1, 0], g[..., 0, 0]).unsqueeze(-1)

    def inv(self, g: Tensor) -> Tensor:
        return g.transpose(-1, -2)

    def elems_to_matrix(self, e: Tensor) -> Tensor:
        return rot2(e[..., 0])

    def matrix_to_elems(self, g: Tensor) -> Tensor:
        return self.log(g)

    def left_mul_elems(self, g: Tensor, e: Tensor) -> Tensor:
        return wrap_angle(self.log(g) + e)

    def orbit(self, x: Tensor) -> Tensor:
        return polar(x)[0].unsqueeze(-1)

    def origin(self, q: Tensor) -> Tensor:
        return torch.cat([q, torch.zeros_like(q)], -1)

    def lift(self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        r, theta = polar(x)
        return theta.unsqueeze(-1), r.unsqueeze(-1)

    def rel_log(self, u: Tensor, v: Tensor) -> Tensor:
        return wrap_angle(u - v)

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor:
        """E = ((1 - alpha) r, alpha cos theta, alpha sin theta).

        Why d >= ||E_u - E_v||::

            d = alpha |phi| + (1 - alpha) |r_u - r_v| with phi = wrap(theta_u - theta_v); the chord
            |e^{i theta_u} - e^{i theta_v}| = 2 |sin(phi / 2)| <= |phi|, and a + b >= sqrt(a^2 + b^2)
            for a, b >= 0, so d >= ||E_u - E_v||.
        """
        th = elems[..., 0]
        a = self.alpha
        return torch.stack([(1 - a) * orbits[..., 0], a * torch.cos(th), a * torch.sin(th)], -1)

    @property
    def embed_dim(self) -> int:
        return 2

    def rel_embed(self, u: Tensor, v: Tensor) -> Tensor:
        """``(cos d, sin d)`` of the relative angle ``d = theta_u - theta_v``: continuous at ±pi."""
        d = (u - v)[..., 0]
        return torch.stack([torch.cos(d), torch.sin(d)], -1)
