"""Unit quaternions q = (w, x, y, z) (Hamilton convention), the flat parametrisation of SO(3) and
the rotation part of SE(3).  q and -q are the same rotation; every function here accepts either.
All functions broadcast over leading dimensions and are twice differentiable away from their
documented branch points.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import random as _random
from ._series import atanc_sq

__all__ = [
    "quat_mul",
    "quat_conj",
    "quat_rotate",
    "quat_to_matrix",
    "matrix_to_quat",
    "quat_log",
    "quat_angle",
    "quat_random",
]


def quat_mul(p: Tensor, q: Tensor) -> Tensor:
    """Hamilton product p q: (..., 4) x (..., 4) -> (..., 4), broadcasting."""
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        -1,
    )


def quat_conj(q: Tensor) -> Tensor:
    """The conjugate (w, -v), the inverse of a unit quaternion."""
    return torch.cat([q[..., :1], -q[..., 1:]], -1)


def quat_rotate(q: Tensor, x: Tensor) -> Tensor:
    """R(q) x for unit q: x + 2 w (v x x) + 2 v x (v x x).  (..., 4), (..., 3) -> (..., 3)."""
    w, v = q[..., :1], q[..., 1:]
    v = v.expand(torch.broadcast_shapes(v.shape, x.shape))
    c = torch.linalg.cross(v, x.expand(v.shape), dim=-1)
    return x + 2 * w * c + 2 * torch.linalg.cross(v, c, dim=-1)


def quat_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrix (..., 3, 3) of a unit quaternion (..., 4)."""
    w, x, y, z = q.unbind(-1)
    rows = [
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ]
    return torch.stack(rows, -2)


def matrix_to_quat(R: Tensor) -> Tensor:
    """Unit quaternion (..., 4) of a rotation matrix (..., 3, 3) (Shepperd's method).

    The branch uses the largest of 4w^2 = 1 + tr R and 4x^2 = 1 + R00 - R11 - R22 (etc.), so every
    division is by a number >= 1/2 and the result is accurate for every angle, including pi.  The
    other branches are evaluated at a clamped (safe) argument, so gradients stay finite.
    """
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    d = torch.stack(
        [1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1
    )  # 4 * (w, x, y, z)^2
    c = torch.sqrt(torch.clamp(d, min=0.25)) / 2  # (..., 4)
    k = 1 / (4 * c)
    a, b, e = r21 - r12, r02 - r20, r10 - r01  # 4w(x, y, z)
    f, g, h = r01 + r10, r02 + r20, r12 + r21  # 4(xy, xz, yz)
    cand = torch.stack(
        [
            torch.stack([c[..., 0], a * k[..., 0], b * k[..., 0], e * k[..., 0]], -1),
            torch.stack([a * k[..., 1], c[..., 1], f * k[..., 1], g * k[..., 1]], -1),
            torch.stack([b * k[..., 2], f * k[..., 2], c[..., 2], h * k[..., 2]], -1),
            torch.stack([e * k[..., 3], g * k[..., 3], h * k[..., 3], c[..., 3]], -1),
        ],
        -2,
    )  # (..., branch, 4)
    idx = d.argmax(-1)[..., None, None].expand(*d.shape[:-1], 1, 4)
    return cand.gather(-2, idx).squeeze(-2)


def quat_log(q: Tensor) -> Tensor:
    """Rotation vector omega (..., 3) of a unit quaternion (..., 4), |omega| in [0, pi].

    With q flipped to w >= 0: omega = 2 atan2(|v|, w) v / |v|, evaluated as
    (2 / w) atanc(|v|^2 / w^2) v for w > 1/2 (smooth at the identity through atanc's Taylor branch)
    and as 2 atan2(s, w) / s v otherwise (s = |v| >= 0.86 there).  Near pi (w -> 0,
    |v| -> 1) both are well conditioned: no division by sin(theta).
    """
    sign = torch.where(q[..., :1] < 0, -torch.ones_like(q[..., :1]), torch.ones_like(q[..., :1]))
    q = q * sign
    w, v = q[..., 0], q[..., 1:]
    s2 = (v * v).sum(-1)
    near = w > 0.5  # angle < 2 pi / 3
    w_safe = torch.where(near, w, torch.ones_like(w))
    s_safe = torch.sqrt(torch.where(near, torch.ones_like(s2), s2))
    coef_near = 2 / w_safe * atanc_sq(torch.where(near, s2, torch.zeros_like(s2)) / (w_safe * w_safe))
    coef_far = 2 * torch.atan2(s_safe, torch.where(near, torch.zeros_like(w), w)) / s_safe
    return torch.where(near, coef_near, coef_far).unsqueeze(-1) * v


def quat_angle(q: Tensor) -> Tensor:
    """Rotation angle in [0, pi] of unit quaternions (..., 4): 2 atan2(|v|, |w|)."""
    return 2 * torch.atan2(torch.linalg.vector_norm(q[..., 1:], dim=-1), q[..., 0].abs())


def quat_random(*shape, generator=None, dtype=torch.float64, device=None) -> Tensor:
    """Haar-uniform random rotations as unit quaternions: a normalised 4-D Gaussian."""
    g = _random.normal((*shape, 4), generator, dtype=dtype, device=device)
    return g / torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
