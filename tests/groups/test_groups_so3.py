"""SO(3) / SE(3) specifics: the log near pi, quaternions, the lift's stabilizer samples."""

import math

import pytest
import torch
from torch.testing import assert_close

from lieconv.groups import SE3, SO3
from lieconv.groups._quaternion import matrix_to_quat, quat_log, quat_random, quat_to_matrix
from lieconv.groups.so3 import align_e1, so3_exp, so3_log


def _axes(n, gen):
    k = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return k / k.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("delta", [1e-7, 1e-6, 1e-5, 1e-4, 1e-3])
def test_so3_log_accurate_near_pi(delta, gen):
    a = (math.pi - delta) * _axes(64, gen)
    assert_close(so3_log(so3_exp(a)), a, atol=1e-13, rtol=0)
    b = torch.cat([a, torch.randn(64, 3, generator=gen, dtype=torch.float64)], -1)
    assert_close(SE3().log(SE3().exp(b)), b, atol=1e-12, rtol=0)


def test_so3_log_at_pi_up_to_sign(gen):
    a = math.pi * _axes(64, gen)
    r = so3_log(so3_exp(a))
    err = torch.minimum((r - a).abs().amax(-1), (r + a).abs().amax(-1))
    assert err.max() < 1e-12
    assert_close(so3_exp(r), so3_exp(a), atol=1e-12, rtol=0)


def test_quaternion_matrix_roundtrip_every_branch(gen):
    # random rotations plus half turns about each axis (each Shepperd branch) and the identity
    q = torch.cat(
        [
            quat_random(32, generator=gen),
            torch.eye(4, dtype=torch.float64),
            torch.tensor([[1e-9, 1.0, 0.0, 0.0]], dtype=torch.float64),
        ]
    )
    q = q / q.norm(dim=-1, keepdim=True)
    R = quat_to_matrix(q)
    assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-14, rtol=0)
    q2 = matrix_to_quat(R)
    err = torch.minimum((q2 - q).abs().amax(-1), (q2 + q).abs().amax(-1))
    assert err.max() < 1e-14
    assert_close(so3_exp(quat_log(q)), R, atol=1e-13, rtol=0)


def test_align_e1_every_direction(gen):
    x = torch.cat(
        [
            torch.randn(20, 3, generator=gen, dtype=torch.float64),
            torch.tensor([[-1.0, 0, 0], [-2.0, 1e-9, 0], [1.0, 0, 0], [0, 0, 3.0]], dtype=torch.float64),
        ]
    )
    q, r = align_e1(x)
    e1 = torch.tensor([1.0, 0, 0], dtype=torch.float64)
    assert_close(quat_to_matrix(q) @ e1 * r[:, None], x, atol=1e-13, rtol=0)
    q0, r0 = align_e1(torch.zeros(1, 3, dtype=torch.float64))
    assert torch.isfinite(q0).all() and r0.item() == 0


@pytest.mark.parametrize("shape", [(3, 3), (3, 3, 3), (1, 3, 3)])
def test_so3_lift_batches_of_three(shape, gen):
    """torch.cross without dim picks the first axis of size 3: a batch of 3 must still work."""
    G = SO3()
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    e, q = G.lift(x, 2, generator=gen)
    assert_close(G.act(G.elems_to_matrix(e), G.origin(q)), x.repeat_interleave(2, dim=-2), atol=1e-13, rtol=0)


def test_so3_lift_samples_differ_by_the_stabilizer(gen):
    G = SO3()
    x = torch.randn(1, 1, 3, generator=gen, dtype=torch.float64)
    e, _ = G.lift(x, 64, generator=gen)
    U = G.elems_to_matrix(e[0])  # (64, 3, 3)
    rel = U[0].T @ U  # u_0^-1 u_s fixes e1
    e1 = torch.tensor([1.0, 0, 0], dtype=torch.float64)
    assert_close(rel @ e1, e1.expand(64, 3), atol=1e-13, rtol=0)
    angles = torch.atan2(rel[:, 2, 1], rel[:, 1, 1])  # rotation angle about e1
    assert angles.std() > 1.0  # spread over the circle


def test_se3_lift_rotations_are_haar(gen):
    """Uniform rotations: E[R] = 0 and the trace of a Haar rotation has mean 0."""
    G = SE3()
    e, _ = G.lift(torch.zeros(1, 1, 3, dtype=torch.float64), 4000, generator=gen)
    R = G.elems_to_matrix(e[0])[:, :3, :3]
    assert R.mean(0).abs().max() < 0.06
