"""SE(2): rigid motions of the plane, acting affinely on R^2."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import native
from ._common import expand_samples, uniform_angles
from ._series import cosc_sq, half_cot_sq, sinc_sq, wrap_angle
from .base import LieGroup

__all__ = ["SE2"]


def _v_inv_apply(theta: Tensor, t: Tensor) -> Tensor:
    """V(theta)^-1 t for t (..., 2): V^-1 = [[a, b], [-b, a]], a = (theta/2) cot(theta/2), b = theta/2."""
    a = half_cot_sq(theta * theta)
    b = theta / 2
    return torch.stack([a * t[..., 0] + b * t[..., 1], -b * t[..., 0] + a * t[..., 1]], -1)


class SE2(LieGroup):
    """Rigid motions g = T(t) R(theta) of R^2 (Eade, "Lie groups for 2D and 3D transformations").

    * algebra: a = (theta, v1, v2), hat(a) = [[0, -theta, v1], [theta, 0, v2], [0, 0, 0]];
      exp(a) = [[R(theta), V v], [0, 1]] with V = [[A, -B], [B, A]], A = sin(theta)/theta,
      B = (1 - cos theta)/theta; log(g) = (theta, V^-1 t) with theta = atan2(g10, g00) and
      V^-1 = [[h, theta/2], [-theta/2, h]], h = (theta/2) cot(theta/2).
    * elements: (theta, t1, t2) (``elem_dim = 3``).  ``rel_log(u, v) = log(v^-1 u)`` is
      ``phi = wrap(theta_u - theta_v)``, ``v = V(phi)^-1 R(-theta_v)(t_u - t_v)``: elementwise maths.
    * orbits: one (``q_dim = 0``), origin 0.  The stabilizer of a point is SO(2)
      (``stabilizer_dim = 1``): ``lift(x)`` gives T(x) R(theta_s) with stratified angles
      ``theta_s = offset + 2 pi s / num_samples`` (one uniform offset per point), wrapped to
      [-pi, pi).
    """

    space_dim = 2
    lie_dim = 3
    rep_dim = 3
    q_dim = 0
    stabilizer_dim = 1
    affine = True
    name = "SE(2)"
    native_distance = "se2"

    @property
    def elem_dim(self) -> int:
        return 3

    def hat(self, a: Tensor) -> Tensor:
        A = a.new_zeros(*a.shape[:-1], 3, 3)
        A[..., 0, 1] = -a[..., 0]
        A[..., 1, 0] = a[..., 0]
        A[..., 0, 2] = a[..., 1]
        A[..., 1, 2] = a[..., 2]
        return A

    def vee(self, A: Tensor) -> Tensor:
        return torch.stack([(A[..., 1, 0] - A[..., 0, 1]) / 2, A[..., 0, 2], A[..., 1, 2]], -1)

    def exp(self, a: Tensor) -> Tensor:
        th, v = a[..., 0], a[..., 1:]
        t2 = th * th
        A, B = sinc_sq(t2), th * cosc_sq(t2)
        t = torch.stack([A * v[..., 0] - B * v[..., 1], B * v[..., 0] + A * v[..., 1]], -1)
        return self.elems_to_matrix(torch.cat([th.unsqueeze(-1), t], -1))

    def log(self, g: Tensor) -> Tensor:
        th = torch.atan2(g[..., 1, 0], g[..., 0, 0])
        return torch.cat([th.unsqueeze(-1), _v_inv_apply(th, g[..., :2, 2])], -1)

    def inv(self, g: Tensor) -> Tensor:
        R = g[..., :2, :2].transpose(-1, -2)
        t = -(R @ g[..., :2, 2:3])
        bottom = g[..., 2:3, :]
        return torch.cat([torch.cat([R, t], -1), bottom], -2)

    def elems_to_matrix(self, e: Tensor) -> Tensor:
        th = e[..., 0]
        c, s = torch.cos(th), torch.sin(th)
        z, o = torch.zeros_like(c), torch.ones_like(c)
        rows = [torch.stack([c, -s, e[..., 1]], -1), torch.stack([s, c, e[..., 2]], -1), torch.stack([z, z, o], -1)]
        return torch.stack(rows, -2)

    def matrix_to_elems(self, g: Tensor) -> Tensor:
        th = torch.atan2(g[..., 1, 0], g[..., 0, 0])
        return torch.cat([th.unsqueeze(-1), g[..., :2, 2]], -1)

    def left_mul_elems(self, g: Tensor, e: Tensor) -> Tensor:
        th_g = torch.atan2(g[..., 1, 0], g[..., 0, 0])
        t = self.act(g, e[..., 1:])
        return torch.cat([wrap_angle(th_g + e[..., 0]).unsqueeze(-1), t], -1)

    def lift(self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        theta = uniform_angles(x.shape[:-1], num_samples, generator, x, stratified=True)
        theta = theta.reshape(*x.shape[:-2], -1, 1)  # (..., n*ns, 1)
        elems = torch.cat([theta, expand_samples(x, num_samples)], -1)  # (..., n*ns, 3)
        return elems, elems.new_zeros(*elems.shape[:-1], 0)

    def rel_log(self, u: Tensor, v: Tensor) -> Tensor:
        phi = wrap_angle(u[..., 0] - v[..., 0])
        c, s = torch.cos(v[..., 0]), torch.sin(v[..., 0])
        d1, d2 = u[..., 1] - v[..., 1], u[..., 2] - v[..., 2]
        t = torch.stack([c * d1 + s * d2, -s * d1 + c * d2], -1)  # R(-theta_v)(t_u - t_v)
        return torch.cat([phi.unsqueeze(-1), _v_inv_apply(phi, t)], -1)

    @property
    def embed_dim(self) -> int:
        return 4

    def rel_embed(self, u: Tensor, v: Tensor) -> Tensor:
        """The relative element ``v^-1 u = (R(phi), R(-theta_v)(t_u - t_v))`` itself, as
        ``(cos phi, sin phi, R(-theta_v)(t_u - t_v))``: smooth everywhere, unlike the log, whose
        angle and ``V(phi)^-1`` translation both jump at phi = ±pi."""
        phi = u[..., 0] - v[..., 0]
        c, s = torch.cos(v[..., 0]), torch.sin(v[..., 0])
        d1, d2 = u[..., 1] - v[..., 1], u[..., 2] - v[..., 2]
        return torch.stack([torch.cos(phi), torch.sin(phi), c * d1 + s * d2, -s * d1 + c * d2], -1)

    def elem_distance(self, u: Tensor, v: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        """||log(v^-1 u)|| in closed form: V^-1 is a scaled rotation, so no rotation is needed:
        ``||log||^2 = phi^2 + (h(phi)^2 + phi^2 / 4) ||t_u - t_v||^2 = phi^2 + ||t_u - t_v||^2 /
        sinc(phi / 2)^2`` (no gradients: used only to choose neighbourhoods); float32 on CPU:
        ``lieconv.native.distance``."""
        d = native.distance(self.native_distance, u, v)
        if d is not None:
            return d
        # phi / 2 in [-pi / 2, pi / 2], exactly a / 2 for |a| < pi (the distance is even in phi: the
        # branch at +-pi does not matter)
        half = (u[..., 0] - v[..., 0]).mul_(0.5)
        half = half.add_(torch.div(half, math.pi).round_(), alpha=-math.pi)
        # 1 / sinc(phi / 2), squared (not torch.sinc: unvectorised on CPU, 7x slower than sin); 0 / 0
        # only at phi = 0
        s = torch.sin(half)
        inv_s2 = torch.div(half, s, out=s).nan_to_num_(nan=1.0).square_()
        d1, d2 = u[..., 1] - v[..., 1], u[..., 2] - v[..., 2]  # no .sum over a size-2 axis: slow on CPU
        return d1.square_().addcmul_(d2, d2).mul_(inv_s2).addcmul_(half, half, value=4.0).sqrt_()

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor:
        """E = (t1, t2, cos theta, sin theta).

        Why d >= ||E_u - E_v||::

            ``||log(v^-1 u)||^2 = phi^2 + ||t_u - t_v||^2 / sinc(phi / 2)^2`` (see ``elem_distance``)
            with |phi| <= pi, so sinc(phi / 2) is in [2 / pi, 1] and the translation term is at
            least ||t_u - t_v||^2; the angle term is at least the squared chord
            |e^{i theta_u} - e^{i theta_v}|^2 = 4 sin(phi / 2)^2.  Hence d >= ||E_u - E_v||.
        """
        th = elems[..., 0]
        return torch.stack([elems[..., 1], elems[..., 2], torch.cos(th), torch.sin(th)], -1)
