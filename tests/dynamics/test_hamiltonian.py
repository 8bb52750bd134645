"""State layout, spring energies, analytic gradients and the autograd Hamiltonian vector field."""

import math

import pytest
import torch

from lieconv.dynamics import (
    HamiltonianDynamics,
    SeparableHamiltonian,
    SpringHamiltonian,
    angular_momentum,
    conserved_quantities,
    join_state,
    kinetic_energy,
    linear_momentum,
    split_state,
    spring_energy,
    spring_potential,
    spring_potential_grad,
    symplectic_gradient,
)

F64 = dict(dtype=torch.float64)


def _system(B=3, n=6, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = 0.4 * torch.randn(B, n, d, generator=g, **F64)
    p = 0.6 * torch.randn(B, n, d, generator=g, **F64)
    m = 0.1 + 3 * torch.rand(B, n, generator=g, **F64)
    k = 5 * torch.rand(B, n, generator=g, **F64)
    return q, p, m, k


def test_split_join_roundtrip_and_layout():
    q, p, _, _ = _system()
    z = join_state(q, p)
    assert z.shape == (3, 24)
    torch.testing.assert_close(z[:, :12].reshape(3, 6, 2), q)  # positions first
    q2, p2 = split_state(z, 6)
    torch.testing.assert_close(q2, q)
    torch.testing.assert_close(p2, p)
    # leading dimensions are free
    q3, _ = split_state(z[:, None].expand(3, 5, 24), 6)
    assert q3.shape == (3, 5, 6, 2)
    with pytest.raises(ValueError, match="z"):
        split_state(torch.zeros(3, 25), 6)


def test_spring_potential_matches_pairwise_sum_and_gradient():
    q, _, _, k = _system()
    n = q.shape[1]
    pair = sum(k[:, i] * k[:, j] * (q[:, i] - q[:, j]).pow(2).sum(-1) for i in range(n) for j in range(i + 1, n))
    torch.testing.assert_close(spring_potential(q, k), pair, rtol=1e-12, atol=1e-12)
    qg = q.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(spring_potential(qg, k).sum(), qg)
    torch.testing.assert_close(spring_potential_grad(q, k), g, rtol=1e-12, atol=1e-12)


def test_conserved_quantities_shapes_and_formulas():
    q, p, m, k = _system()
    z = join_state(q, p)
    sp = torch.stack([m, k], -1)
    c = conserved_quantities(z, sp)
    torch.testing.assert_close(c["energy"], kinetic_energy(p, m) + spring_potential(q, k))
    torch.testing.assert_close(c["energy"], spring_energy(z, sp))
    torch.testing.assert_close(kinetic_energy(p, m), (p.pow(2).sum(-1) / (2 * m)).sum(-1))
    torch.testing.assert_close(c["linear_momentum"], p.sum(1))
    torch.testing.assert_close(c["angular_momentum"], (q[..., 0] * p[..., 1] - q[..., 1] * p[..., 0]).sum(-1))
    q3, p3, _, _ = _system(d=3)
    assert angular_momentum(q3, p3).shape == (3, 3)
    assert linear_momentum(p3).shape == (3, 3)


def test_symplectic_gradient_equals_analytic_vector_field():
    q, p, m, k = _system()
    z = join_state(q, p)
    sp = torch.stack([m, k], -1)
    f = HamiltonianDynamics(lambda x: spring_energy(x, sp))
    exact = join_state(p / m[..., None], -spring_potential_grad(q, k))
    torch.testing.assert_close(f(torch.tensor(0.0), z), exact, rtol=1e-12, atol=1e-12)
    assert f.nfe == 1
    torch.testing.assert_close(SpringHamiltonian(m, k)(0.0, z), exact, rtol=1e-12, atol=1e-12)
    autograd_V = SeparableHamiltonian(lambda x: spring_potential(x, k), m)
    torch.testing.assert_close(autograd_V(0.0, z), exact, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(autograd_V.H(z), spring_energy(z, sp))


def test_create_graph_follows_grad_mode():
    w = torch.tensor(2.0, **F64, requires_grad=True)
    z = torch.randn(4, 8, **F64)
    H = lambda x: w * x.pow(2).sum(-1)  # noqa: E731
    out = symplectic_gradient(H, z)
    assert out.requires_grad  # graph kept while training
    (gw,) = torch.autograd.grad(out.sum(), w)
    assert math.isfinite(gw.item())
    with torch.no_grad():
        assert not symplectic_gradient(H, z).requires_grad  # no graph in evaluation
