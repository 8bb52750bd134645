"""RxSO(2): rotations and positive scalings of the plane, acting linearly on R^2 minus 0."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import polar, rot2
from ._series import wrap_angle
from .base import LieGroup

__all__ = ["RxSO2"]


class RxSO2(LieGroup):
    """Rotation-scalings M(r, theta) = r R(theta) of R^2 (paper appendix A.2, log-polar coordinates).

    * algebra: a = (s, theta) with s = log r; hat(a) = s I + theta J = [[s, -theta], [theta, s]];
      exp(a) = e^s R(theta); log(g) = (log ‖g e1‖, atan2(g10, g00)).
    * elements: the algebra coordinates (s, theta) themselves (``elem_dim = 2``), so
      ``rel_log(u, v) = (s_u - s_v, wrap(theta_u - theta_v))``.
    * orbits: one orbit (``q_dim = 0``), origin (1, 0); the lift u = (log ||x||, atan2(y, x)) is
      unique.  The point 0 is not in the space; it lifts to a finite (very small) scale.
    """

    space_dim = 2
    lie_dim = 2
    rep_dim = 2
    q_dim = 0
    stabilizer_dim = 0
    affine = False
    name = "RxSO(2)"

    @property
    def elem_dim(self) -> int:
        return 2

    def hat(self, a: Tensor) -> Tensor:
        s, th = a[..., 0], a[..., 1]
        return torch.stack([torch.stack([s, -th], -1), torch.stack([th, s], -1)], -2)

    def vee(self, A: Tensor) -> Tensor:
        s = (A[..., 0, 0] + A[..., 1, 1]) / 2
        th = (A[..., 1, 0] - A[..., 0, 1]) / 2
        return torch.stack([s, th], -1)

    def exp(self, a: Tensor) -> Tensor:
        return torch.exp(a[..., 0])[..., None, None] * rot2(a[..., 1])

    def log(self, g: Tensor) -> Tensor:
        s = torch.log(g[..., 0, 0] ** 2 + g[..., 1, 0] ** 2) / 2
        return torch.stack([s, torch.atan2(g[..., 1, 0], g[..., 0, 0])], -1)

    def inv(self, g: Tensor) -> Tensor:
        det = g[..., 0, 0] ** 2 + g[..., 1, 0] ** 2
        return g.transpose(-1, -2) / det[..., None, None]

    def elems_to_matrix(self, e: Tensor) -> Tensor:
        return self.exp(e)

    def matrix_to_elems(self, g: Tensor) -> Tensor:
        return self.log(g)

    def left_mul_elems(self, g: Tensor, e: Tensor) -> Tensor:
        a = self.log(g) + e
        return torch.stack([a[..., 0], wrap_angle(a[..., 1])], -1)

    def origin(self, q: Tensor) -> Tensor:
        o = q.new_zeros(*q.shape[:-1], 2)
        o[..., 0] = 1
        return o

    def lift(self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        sq = (x * x).sum(-1)
        tiny = torch.finfo(x.dtype).tiny
        s = torch.log(torch.clamp(sq, min=tiny)) / 2
        theta = polar(x)[1]
        return torch.stack([s, theta], -1), self.orbit(x)

    def rel_log(self, u: Tensor, v: Tensor) -> Tensor:
        d = u - v
        return torch.stack([d[..., 0], wrap_angle(d[..., 1])], -1)

    #: elem coordinates i with rel_log(u, v)[i] = u[i] - v[i] (the log-scale; the angle wraps)
    difference_coords = (0,)

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor:
        """E = (s, cos theta, sin theta).

        Why d >= ||E_u - E_v||::

            d^2 = (s_u - s_v)^2 + phi^2 and the chord
            |e^{i theta_u} - e^{i theta_v}| = 2 |sin(phi / 2)| <= |phi| (phi = wrap(theta_u - theta_v)).
        """
        th = elems[..., 1]
        return torch.stack([elems[..., 0], torch.cos(th), torch.sin(th)], -1)

    @property
    def embed_dim(self) -> int:
        return 3

    def rel_embed(self, u: Tensor, v: Tensor) -> Tensor:
        """``(s_u - s_v, cos d, sin d)``, ``d = theta_u - theta_v``: the log-scale and the rotation on
        the circle (continuous at ±pi)."""
        d = u - v
        return torch.stack([d[..., 0], torch.cos(d[..., 1]), torch.sin(d[..., 1])], -1)
