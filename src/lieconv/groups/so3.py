"""SO(3): rotations of space, acting linearly on R^3; the shared ``so3_*`` maps used by SE(3)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import expand_samples, safe_norm, uniform_angles
from ._quaternion import matrix_to_quat, quat_angle, quat_conj, quat_log, quat_mul, quat_to_matrix
from ._series import cosc_sq, sinc_sq
from .base import LieGroup

__all__ = ["SO3", "so3_hat", "so3_vee", "so3_exp", "so3_log", "align_e1"]


def so3_hat(w: Tensor) -> Tensor:
    """(..., 3) -> skew matrices (..., 3, 3) with hat(w) x = w x x."""
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2)


def so3_vee(A: Tensor) -> Tensor:
    """Skew part of (..., 3, 3) -> (..., 3), the least-squares inverse of ``so3_hat``."""
    return torch.stack([A[..., 2, 1] - A[..., 1, 2], A[..., 0, 2] - A[..., 2, 0], A[..., 1, 0] - A[..., 0, 1]], -1) / 2


def so3_exp(w: Tensor) -> Tensor:
    """Rodrigues: exp(hat w) = I + sinc(theta) W + (1 - cos theta)/theta^2 W^2, theta = |w|.

    Written with t = w.w and ``W^2 = w w^T - t I`` so it is smooth (all orders) at w = 0.
    Shapes: (..., 3) -> (..., 3, 3).
    """
    t = (w * w).sum(-1)
    A, B = sinc_sq(t)[..., None, None], cosc_sq(t)[..., None, None]
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    W2 = w.unsqueeze(-1) * w.unsqueeze(-2) - t[..., None, None] * eye
    return eye + A * so3_hat(w) + B * W2


def so3_log(R: Tensor) -> Tensor:
    """Principal log of rotation matrices (..., 3, 3) -> rotation vectors (..., 3), |w| <= pi.

    Goes through the quaternion (Shepperd's method, which reads the axis from the symmetric part
    / diagonal when the angle is large) and ``quat_log``: no division by sin(theta), accurate and
    differentiable up to the angle pi (where the sign of w is genuinely ambiguous).
    """
    return quat_log(matrix_to_quat(R))


def align_e1(x: Tensor) -> tuple[Tensor, Tensor]:
    """A unit quaternion u (..., 4) with R(u) e1 = x / |x|, and |x| (...).

    The half-way quaternion (1 + n.e1, e1 x n) is used for n_x > -1/2; otherwise the half-way
    quaternion from -e1 composed with the half turn about z (which maps e1 to -e1): every branch
    is evaluated at a safe argument, so the map is twice differentiable away from x = 0 and the
    branch switch.  x = 0 gives the identity.
    """
    r = safe_norm(x)
    e1 = torch.zeros_like(x)
    e1[..., 0] = 1
    small = (r < 1e-15).unsqueeze(-1)
    xs = torch.where(small, e1, x)
    n = xs / torch.linalg.vector_norm(xs, dim=-1, keepdim=True)
    front = n[..., :1] > -0.5
    na = torch.where(front, n, e1)
    nb = torch.where(front, -e1, n)
    qa = torch.stack([1 + na[..., 0], torch.zeros_like(na[..., 0]), -na[..., 2], na[..., 1]], -1)
    qa = qa / torch.sqrt(2 * (1 + na[..., :1]))
    qb = torch.stack([1 - nb[..., 0], torch.zeros_like(nb[..., 0]), nb[..., 2], -nb[..., 1]], -1)
    qb = qb / torch.sqrt(2 * (1 - nb[..., :1]))
    half_turn_z = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=x.dtype, device=x.device)
    return torch.where(front, qa, quat_mul(qb, half_turn_z)), r


class SO3(LieGroup):
    """Rotations of R^3.

    * algebra: rotation vectors w (``lie_dim = 3``), hat(w) x = w x x; exp by Rodrigues, log via
      the quaternion (stable up to pi).
    * elements: unit quaternions (w, x, y, z) (``elem_dim = 4``; q and -q are the same element).
      ``rel_log(u, v) = quat_log(conj(v) u)``: 16 multiplications and an atan2, no 3x3 products.
    * orbits: spheres, q(x) = ‖x‖ (``q_dim = 1``), origin o_q = (q, 0, 0).
    * lift: u = A(x) H(phi) with A(x) e1 = x/‖x‖ and H(phi) the rotation by phi about e1 (the
      stabilizer of the origin, ``stabilizer_dim = 1``), phi uniform (Haar) and independent per
      sample.
    """

    space_dim = 3
    lie_dim = 3
    rep_dim = 3
    q_dim = 1
    stabilizer_dim = 1
    affine = False
    name = "SO(3)"

    @property
    def elem_dim(self) -> int:
        return 4

    def hat(self, a: Tensor) -> Tensor:
        return so3_hat(a)

    def vee(self, A: Tensor) -> Tensor:
        return so3_vee(A)

    def exp(self, a: Tensor) -> Tensor:
        return so3_exp(a)

    def log(self, g: Tensor) -> Tensor:
        return so3_log(g)

    def inv(self, g: Tensor) -> Tensor:
        return g.transpose(-1, -2)

    def elems_to_matrix(self, e: Tensor) -> Tensor:
        return quat_to_matrix(e)

    def matrix_to_elems(self, g: Tensor) -> Tensor:
        return matrix_to_quat(g)

    def left_mul_elems(self, g: Tensor, e: Tensor) -> Tensor:
        return quat_mul(matrix_to_quat(g), e)

    def orbit(self, x: Tensor) -> Tensor:
        return safe_norm(x, keepdim=True)

    def origin(self, q: Tensor) -> Tensor:
        return torch.cat([q, torch.zeros_like(q), torch.zeros_like(q)], -1)

    def lift(self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        a, r = align_e1(x)  # (..., n, 4), (..., n)
        phi = uniform_angles(x.shape[:-1], num_samples, generator, x, stratified=False)
        h = torch.stack([torch.cos(phi / 2), torch.sin(phi / 2)] + [torch.zeros_like(phi)] * 2, -1)
        elems = quat_mul(a.unsqueeze(-2), h)  # (..., n, ns, 4)
        elems = elems.reshape(*x.shape[:-2], -1, 4)
        return elems, expand_samples(r.unsqueeze(-1), num_samples)

    def rel_log(self, u: Tensor, v: Tensor) -> Tensor:
        return quat_log(quat_mul(quat_conj(v), u))

    @property
    def embed_dim(self) -> int:
        return 9

    def rel_embed(self, u: Tensor, v: Tensor) -> Tensor:
        """The 9 entries of the relative rotation matrix ``R_v^T R_u``: smooth, and the same for the
        quaternions ``p`` and ``-p`` (the matrix is quadratic in them), unlike the log at angle pi."""
        R = quat_to_matrix(quat_mul(quat_conj(v), u))
        return R.reshape(*R.shape[:-2], 9)

    def elem_distance(self, u: Tensor, v: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        """Uses ‖log(v^-1 u)‖ = the angle of conj(v) u, 2 atan2(‖vec‖, abs(w))."""
        theta = quat_angle(quat_mul(quat_conj(v), u))
        return self.distance(theta.unsqueeze(-1), q_u, q_v)

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor:
        """E = ((1 - alpha) r, alpha R / sqrt(2)) (1 + 9 coordinates).

        Why d >= ||E_u - E_v||::

            d = alpha th + (1 - alpha) |r_u - r_v| with th the angle of conj(v) u;
            ||R_u - R_v||_F = 2 sqrt(2) sin(th / 2) <= sqrt(2) th, and a + b >= sqrt(a^2 + b^2) for
            a, b >= 0, so d >= ||E_u - E_v||.
        """
        R = quat_to_matrix(elems).flatten(-2) * (self.alpha * 0.7071067811865476)
        return torch.cat([(1 - self.alpha) * orbits, R], -1)
