"""Integrators: convergence orders on a harmonic oscillator, exact momentum conservation of leapfrog."""

import math

import pytest
import torch

from lieconv.datasets.springs import SpringsConfig, sample_systems
from lieconv.dynamics import SOLVERS, SeparableHamiltonian, SpringHamiltonian, join_state, leapfrog, odeint, split_state
from lieconv.dynamics.hamiltonian import angular_momentum, linear_momentum, spring_potential

F64 = dict(dtype=torch.float64)


def _oscillator(omega=2.0, m=1.5):
    """H = p²/(2m) + ½ m ω² q², one body in 1-D; exact q(t) = q0 cos ωt + p0/(mω) sin ωt."""
    masses = torch.full((1, 1), m, **F64)
    f = SeparableHamiltonian(
        lambda q: 0.5 * m * omega**2 * q.pow(2).sum((-2, -1)), masses, dV_dq=lambda q: m * omega**2 * q
    )
    z0 = torch.tensor([[1.0, 0.5]], **F64)  # q0 = 1, p0 = 0.5

    def exact(t):
        q = math.cos(omega * t) + 0.5 / (m * omega) * math.sin(omega * t)
        p = -m * omega * math.sin(omega * t) + 0.5 * math.cos(omega * t)
        return torch.tensor([[q, p]], **F64)

    return f, z0, exact


@pytest.mark.parametrize("method,order", [("euler", 1), ("leapfrog", 2), ("rk4", 4)])
def test_convergence_order_harmonic_oscillator(method, order):
    f, z0, exact = _oscillator()
    T = 2.0
    ts = torch.tensor([0.0, T], **F64)
    errs = []
    steps = [20, 40, 80] if method != "euler" else [200, 400, 800]
    for n in steps:
        z = odeint(f, z0, ts, method=method, substeps=n)
        assert z.shape == (2, 1, 2)
        errs.append((z[-1] - exact(T)).norm().item())
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
    assert all(abs(r - order) < 0.25 for r in rates), (method, errs, rates)


def test_dopri5_and_rk4_match_exact_solution():
    f, z0, exact = _oscillator()
    ts = torch.linspace(0, 3, 7, **F64)
    z = odeint(f, z0, ts, method="dopri5", rtol=1e-11, atol=1e-11)
    for i, t in enumerate(ts.tolist()):
        torch.testing.assert_close(z[i], exact(t), rtol=0, atol=1e-9)
    z = odeint(f, z0, ts, method="rk4", substeps=50)
    torch.testing.assert_close(z[-1], exact(3.0), rtol=0, atol=1e-7)  # measured 2.2e-8 (ωh = 0.02)


def _springs(B=8, seed=0):
    return sample_systems(SpringsConfig(n_systems=B), torch.Generator().manual_seed(seed))


def _momentum_drift(z):
    """Max drift of Σp and Σ q×p relative to the size of their summands (Σ|p_i|, Σ|q_i||p_i|),
    the scale of their rounding errors (a system may have L(0) ≈ 0)."""
    q, p = split_state(z, 6)  # (T, B, 6, 2)
    P, L = linear_momentum(p), angular_momentum(q, p)
    sP, sL = p.norm(dim=-1).sum(-1), (q.norm(dim=-1) * p.norm(dim=-1)).sum(-1)
    return ((P - P[:1]).norm(dim=-1) / sP).max().item(), ((L - L[:1]).abs() / sL).max().item()


def test_leapfrog_conserves_momenta_exactly_rk4_does_not():
    z0, m, k = _springs()
    ts = 0.01 * torch.arange(200, **F64)
    f = SpringHamiltonian(m, k)
    dP, dL = _momentum_drift(odeint(f, z0, ts, method="leapfrog"))
    assert dP < 1e-12 and dL < 1e-12, (dP, dL)
    # autograd potential (as a learned V would be) conserves them just as well
    fa = SeparableHamiltonian(lambda q: spring_potential(q, k), m)
    dPa, dLa = _momentum_drift(odeint(fa, z0, ts, method="leapfrog"))
    assert dPa < 1e-12 and dLa < 1e-12, (dPa, dLa)
    # RK4 keeps the linear invariant Σp to rounding too, but not the quadratic Σ q×p
    dP4, dL4 = _momentum_drift(odeint(f, z0, ts, method="rk4"))
    assert dP4 < 1e-12
    assert dL4 > 1e3 * max(dL, 1e-15), (dL4, dL)


def test_leapfrog_function_interface():
    z0, m, k = _springs(B=2)
    f = SpringHamiltonian(m, k)
    q0, p0 = split_state(z0, 6)
    ts = 0.01 * torch.arange(5, **F64)
    qs, ps = leapfrog(f.dV_dq, f.dK_dp, q0, p0, ts, substeps=2)
    assert qs.shape == ps.shape == (5, 2, 6, 2)
    torch.testing.assert_close(join_state(qs, ps), odeint(f, z0, ts, method="leapfrog", substeps=2))
    assert f.nfe == 2 * 4 * 2 + 2  # one force per step (+1 initial per call)


def test_bad_inputs():
    z0, m, k = _springs(B=2)
    f = SpringHamiltonian(m, k)
    ts = torch.linspace(0, 1, 3, **F64)
    assert set(SOLVERS) == {"euler", "rk4", "leapfrog", "dopri5"}
    with pytest.raises(ValueError, match=r"method.*choose from \['dopri5', 'euler', 'leapfrog', 'rk4'\]"):
        odeint(f, z0, ts, method="rk45")
    with pytest.raises(ValueError, match="leapfrog"):
        odeint(lambda t, z: -z, z0, ts, method="leapfrog")
    with pytest.raises(ValueError, match="ts"):
        odeint(f, z0, ts.flip(0))
    with pytest.raises(ValueError, match="z0"):
        odeint(f, z0 * float("nan"), ts)
    with pytest.raises(ValueError, match="substeps"):
        odeint(f, z0, ts, substeps=0)
