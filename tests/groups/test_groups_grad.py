"""First and second derivatives of exp, log and rel_log: at the identity, near pi, at random points.

``gradcheck`` / ``gradgradcheck`` in float64 compare autograd with finite differences; the
perturbations leave the group (a 3x3 matrix off SO(3), a quaternion off the sphere), so this
also checks that every branch is smooth in a full neighbourhood.
"""

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from lieconv.groups import GROUPS, get_group

NAMES = [n for n in sorted(GROUPS) if get_group(n).lie_dim > 0]
ROTATING = ["SO2", "RxSO2", "SE2", "SO3", "SE3"]  # groups with an angle (log branch cut at pi)


def _check(fn, *inputs):
    inputs = tuple(t.detach().clone().requires_grad_(True) for t in inputs)
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def _algebra_points(G, gen):
    """a = 0 exactly, 1e-8 in a random direction, and a random vector (angles < ~1.3)."""
    d = torch.randn(G.lie_dim, generator=gen, dtype=torch.float64)
    return {
        "zero": torch.zeros(1, G.lie_dim, dtype=torch.float64),
        "tiny": (1e-8 * d / d.norm()).unsqueeze(0),
        "random": (0.5 * torch.randn(2, G.lie_dim, generator=gen, dtype=torch.float64)).clamp(-0.75, 0.75),
    }


def _near_pi(G, gen, delta=1e-4):
    """An algebra vector whose rotation angle is pi - delta."""
    a = 0.3 * torch.randn(1, G.lie_dim, generator=gen, dtype=torch.float64)
    if G.name in ("SO(2)", "SE(2)"):
        a[:, 0] = math.pi - delta
    elif G.name == "RxSO(2)":
        a[:, 1] = math.pi - delta
    else:  # SO(3), SE(3): rotation vector first
        w = a[:, :3] / a[:, :3].norm()
        a[:, :3] = (math.pi - delta) * w
    return a


@pytest.mark.parametrize("where", ["zero", "tiny", "random"])
@pytest.mark.parametrize("name", NAMES)
def test_exp_grad(name, where, gen):
    G = get_group(name)
    _check(G.exp, _algebra_points(G, gen)[where])


@pytest.mark.parametrize("where", ["zero", "tiny", "random"])
@pytest.mark.parametrize("name", NAMES)
def test_log_grad(name, where, gen):
    G = get_group(name)
    _check(G.log, G.exp(_algebra_points(G, gen)[where]))


@pytest.mark.parametrize("where", ["zero", "tiny", "random"])
@pytest.mark.parametrize("name", NAMES)
def test_rel_log_grad(name, where, gen):
    G = get_group(name)
    v = G.matrix_to_elems(G.sample(1, generator=gen, scale=0.7))
    u = G.left_mul_elems(G.elems_to_matrix(v), G.matrix_to_elems(G.exp(_algebra_points(G, gen)[where][:1])))
    _check(G.rel_log, u, v)


@pytest.mark.parametrize("name", ROTATING)
def test_grads_near_pi(name, gen):
    G = get_group(name)
    a = _near_pi(G, gen)
    _check(G.exp, a)
    _check(G.log, G.exp(a))
    e = G.matrix_to_elems(G.exp(a))
    _check(G.rel_log, e, G.identity_elems(1, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
def test_grads_finite_at_identity(name):
    """Plain backward twice (as the Hamiltonian models do) through exp, log and rel_log at 0."""
    G = get_group(name)
    a = torch.zeros(2, G.lie_dim, dtype=torch.float64, requires_grad=True)
    for out in (G.exp(a), G.log(G.exp(a)), G.rel_log(G.matrix_to_elems(G.exp(a)), G.identity_elems(2, dtype=a.dtype))):
        (g1,) = torch.autograd.grad(out.pow(2).sum() + out.sum(), a, create_graph=True)
        (g2,) = torch.autograd.grad(g1.sum(), a)
        assert torch.isfinite(g1).all() and torch.isfinite(g2).all()


@pytest.mark.parametrize("name", NAMES)
def test_lift_grad(name, gen):
    """The lift is differentiable in the points (the Hamiltonian models need d/dx twice)."""
    G = get_group(name)
    x = torch.randn(1, 3, G.space_dim, generator=gen, dtype=torch.float64)
    if G.name == "RxSQ":
        x = x.abs() + 0.2
    seed = 7

    def f(x):
        e, q = G.lift(x, 1, generator=torch.Generator().manual_seed(seed))
        return G.rel_log(e[:, :, None], e[:, None, :]).sum(-1) + q.sum(-1)[:, :, None]

    _check(f, x)
