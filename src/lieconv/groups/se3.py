"""SE(3): rigid motions of space, acting affinely on R^3 (built from the shared SO(3) maps)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import expand_samples
from ._quaternion import (
    matrix_to_quat,
    quat_conj,
    quat_log,
    quat_mul,
    quat_random,
    quat_rotate,
    quat_to_matrix,
)
from ._series import cosc_sq, sinc3_sq, vinv3_sq
from .base import LieGroup
from .so3 import so3_exp, so3_hat, so3_log, so3_vee

__all__ = ["SE3"]


def _cross(a: Tensor, b: Tensor) -> Tensor:
    shape = torch.broadcast_shapes(a.shape, b.shape)
    return torch.linalg.cross(a.expand(shape), b.expand(shape), dim=-1)


def _v_inv_apply(w: Tensor, t: Tensor) -> Tensor:
    """V(w)^-1 t = t - (w x t)/2 + c(theta) w x (w x t), c = (1 - (theta/2) cot(theta/2)) / theta^2."""
    wt = _cross(w, t)
    c = vinv3_sq((w * w).sum(-1)).unsqueeze(-1)
    return t - wt / 2 + c * _cross(w, wt)


class SE3(LieGroup):
    """Rigid motions g = T(t) R of R^3 (Eade, "Lie groups for 2D and 3D transformations").

    * algebra: a = (w, v) (``lie_dim = 6``; rotation first), hat(a) = [[W, v], [0, 0]];
      exp(a) = [[exp(W), V v], [0, 1]] with V = I + (1 - cos th)/th^2 W + (th - sin th)/th^3 W^2;
      log(g) = (w, V^-1 t) with w = so3_log(R), V^-1 = I - W/2 + (1 - (th/2) cot(th/2))/th^2 W^2.
    * elements: (unit quaternion, t) (``elem_dim = 7``).  ``rel_log(u, v)`` = quat_log of
      conj(q_v) q_u and V^-1 R_v^T (t_u - t_v), with elementwise maths.
    * orbits: one (``q_dim = 0``), origin 0.  Stabilizer SO(3) (``stabilizer_dim = 3``):
      ``lift(x) = T(x) R`` with R Haar-uniform (a normalised 4-D Gaussian quaternion).
    """

    space_dim = 3
    lie_dim = 6
    rep_dim = 4
    q_dim = 0
    stabilizer_dim = 3
    affine = True
    name = "SE(3)"

    @property
    def elem_dim(self) -> int:
        return 7

    def hat(self, a: Tensor) -> Tensor:
        top = torch.cat([so3_hat(a[..., :3]), a[..., 3:].unsqueeze(-1)], -1)
        return torch.cat([top, a.new_zeros(*a.shape[:-1], 1, 4)], -2)

    def vee(self, A: Tensor) -> Tensor:
        return torch.cat([so3_vee(A[..., :3, :3]), A[..., :3, 3]], -1)

    def _compose(self, R: Tensor, t: Tensor) -> Tensor:
        top = torch.cat([R, t.unsqueeze(-1)], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 3] = 1
        return torch.cat([top, bottom], -2)

    def exp(self, a: Tensor) -> Tensor:
        w, v = a[..., :3], a[..., 3:]
        th2 = (w * w).sum(-1, keepdim=True)
        wv = _cross(w, v)
        t = v + cosc_sq(th2) * wv + sinc3_sq(th2) * _cross(w, wv)
        return self._compose(so3_exp(w), t)

    def log(self, g: Tensor) -> Tensor:
        w = so3_log(g[..., :3, :3])
        return torch.cat([w, _v_inv_apply(w, g[..., :3, 3])], -1)

    def inv(self, g: Tensor) -> Tensor:
        Rt = g[..., :3, :3].transpose(-1, -2)
        return self._compose(Rt, -(Rt @ g[..., :3, 3:]).squeeze(-1))

    def elems_to_matrix(self, e: Tensor) -> Tensor:
        return self._compose(quat_to_matrix(e[..., :4]), e[..., 4:])

    def matrix_to_elems(self, g: Tensor) -> Tensor:
        return torch.cat([matrix_to_quat(g[..., :3, :3]), g[..., :3, 3]], -1)

    def left_mul_elems(self, g: Tensor, e: Tensor) -> Tensor:
        q = quat_mul(matrix_to_quat(g[..., :3, :3]), e[..., :4])
        return torch.cat([q, self.act(g, e[..., 4:])], -1)

    def lift(self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        q = quat_random(*x.shape[:-1], num_samples, generator=generator, dtype=x.dtype, device=x.device)
        q = q.reshape(*x.shape[:-2], -1, 4)  # (..., n*ns, 4)
        elems = torch.cat([q, expand_samples(x, num_samples)], -1)
        return elems, elems.new_zeros(*elems.shape[:-1], 0)

    def rel_log(self, u: Tensor, v: Tensor) -> Tensor:
        qv_inv = quat_conj(v[..., :4])
        w = quat_log(quat_mul(qv_inv, u[..., :4]))
        t = quat_rotate(qv_inv, u[..., 4:] - v[..., 4:])
        w = w.expand(*t.shape[:-1], 3)
        return torch.cat([w, _v_inv_apply(w, t)], -1)

    @property
    def embed_dim(self) -> int:
        return 12

    def rel_embed(self, u: Tensor, v: Tensor) -> Tensor:
        """The relative element ``v^-1 u = (R_v^T R_u, R_v^T (t_u - t_v))`` itself: 9 rotation-matrix
        entries and 3 translation coordinates, smooth (the log's ``V(w)^-1`` translation is not)."""
        qv_inv = quat_conj(v[..., :4])
        R = quat_to_matrix(quat_mul(qv_inv, u[..., :4]))
        t = quat_rotate(qv_inv, u[..., 4:] - v[..., 4:])
        R = R.reshape(*R.shape[:-2], 9).expand(*t.shape[:-1], 9)
        return torch.cat([R, t], -1)

    def elem_distance(self, u: Tensor, v: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        """||log(v^-1 u)|| without rotating the translation:  with p = q_u conj(q_v) (world axis
        k, angle th, ``|p_vec| = sin(th/2)``) and d = t_u - t_v,
        ``||log||^2 = th^2 + |d|^2 + ((th/2)^2 / sin(th/2)^2 - 1) |d_perp|^2``, ``d_perp`` the part
        of d orthogonal to k (V^-1 fixes the axis and acts as the scaled rotation
        [[h, th/2], [-th/2, h]] across it, h = (th/2) cot(th/2), so h^2 + (th/2)^2 - 1 is that
        coefficient).  Computed coordinate by coordinate (no stacked quaternion products and no
        sums over short last axes: several times faster on CPU; no gradients, selection only)."""
        aw, ax, ay, az = (u[..., i] for i in range(4))
        bw, bx, by, bz = (v[..., i] for i in range(4))
        pw = aw * bw + ax * bx + ay * by + az * bz
        px = ax * bw - aw * bx + az * by - ay * bz
        py = ay * bw - aw * by + ax * bz - az * bx
        pz = az * bw - aw * bz + ay * bx - ax * by
        pv2 = px * px + py * py + pz * pz
        dx, dy, dz = (u[..., i] - v[..., i] for i in (4, 5, 6))
        d2 = dx * dx + dy * dy + dz * dz
        along = px * dx + py * dy + pz * dz
        inv = 1 / pv2.clamp_min(torch.finfo(pv2.dtype).tiny)
        half = torch.atan2(torch.sqrt(pv2), pw.abs())  # th / 2
        half2 = half * half
        perp2 = (d2 - along * along * inv).clamp_min(0)
        coef = (half2 * inv - 1).clamp_min(0)  # (th/2)^2 / sin(th/2)^2 - 1 >= 0; 0 at th = 0
        return torch.sqrt(4 * half2 + d2 + coef * perp2)

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor:
        """E = (t, R / sqrt(2)) (3 + 9 coordinates, R the rotation matrix of the quaternion).

        Why d >= ||E_u - E_v||::

            ``||log(v^-1 u)||^2 = th^2 + ||V(w)^-1 R_v^T (t_u - t_v)||^2``.  V(w) fixes the axis and
            scales the orthogonal plane by |sin(th / 2) / (th / 2)| <= 1, so every singular value of
            V^-1 is >= 1 and the translation term is >= ||t_u - t_v||^2 (equivalently, in
            ``elem_distance``, h^2 + th^2 / 4 = (th / 2)^2 / sin(th / 2)^2 >= 1).  The angle term:
            ||R_u - R_v||_F = 2 sqrt(2) sin(th / 2) <= sqrt(2) th.  Hence d >= ||E_u - E_v||.
        """
        R = quat_to_matrix(elems[..., :4]).flatten(-2) * 0.7071067811865476
        return torch.cat([elems[..., 4:], R], -1)
