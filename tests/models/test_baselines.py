"""Baselines FC/HFC/OGN/HOGN, the separable-potential interface and ModelDynamics."""

import pytest
import torch
from torch import nn

from lieconv.datasets.springs import SpringsConfig, sample_systems, spring_exact_solution
from lieconv.dynamics import split_state
from lieconv.dynamics.hamiltonian import angular_momentum, linear_momentum, spring_energy
from lieconv.models.baselines import (
    MODELS,
    PAPER_HPARAMS,
    ModelDynamics,
    PointsPotential,
    PotentialModel,
    SpringPotential,
    build_baseline,
)

F64 = dict(dtype=torch.float64)


def _batch(B=4, seed=0):
    z, m, k = sample_systems(SpringsConfig(n_systems=B), torch.Generator().manual_seed(seed))
    return z, torch.stack([m, k], -1)


def _small(name):
    torch.manual_seed(0)
    return build_baseline(name, hidden=16).double()


def _momentum_errors(traj):
    """Max drift of Σp and Σ q×p, relative to the size of their summands (Σ|p_i|, Σ|q_i||p_i|).

    Relative to the summands, not to |P(0)| or |L(0)|: a system can have L(0) ≈ 0, and rounding
    errors scale with the summands.
    """
    q, p = split_state(traj, 6)  # (B, T, 6, 2)
    P, L = linear_momentum(p), angular_momentum(q, p)
    sP, sL = p.norm(dim=-1).sum(-1), (q.norm(dim=-1) * p.norm(dim=-1)).sum(-1)
    return (((P - P[:, :1]).norm(dim=-1) / sP).max().item(), ((L - L[:, :1]).abs() / sL).max().item())


def test_registry_and_paper_sizes():
    assert set(MODELS) == {"FC", "HFC", "OGN", "HOGN"} == set(PAPER_HPARAMS)
    assert PAPER_HPARAMS["FC"] == {"hidden": 256, "num_layers": 4, "lr": 1e-2}
    assert PAPER_HPARAMS["HOGN"] == {"hidden": 256, "num_layers": 1, "lr": 1e-2}
    fc = build_baseline("FC")
    assert sum(isinstance(m, nn.Linear) for m in fc.modules()) == 5  # 4 hidden + output
    with pytest.raises(ValueError, match=r"unknown baseline 'GNN'; choose from \['FC', 'HFC', 'HOGN', 'OGN'\]"):
        build_baseline("GNN")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_shapes_and_bad_input(name):
    model = _small(name)
    z, sp = _batch()
    assert model(torch.tensor(0.0), z, sp).shape == (4, 24)
    if hasattr(model, "H"):
        assert model.H(z, sp).shape == (4,)
    with pytest.raises(ValueError, match="sys_params"):
        model(0.0, z, sp[:, :5])
    with pytest.raises(ValueError, match="z"):
        model(0.0, z[:, :20], sp)


@pytest.mark.parametrize("name", ["FC", "OGN"])
def test_direct_models_do_not_conserve_linear_momentum(name):
    z, sp = _batch()
    with torch.no_grad():
        traj = ModelDynamics(_small(name))(z, 0.01 * torch.arange(50, **F64), sp)
    dP, _ = _momentum_errors(traj)
    assert dP > 1e-3, dP


def test_hogn_conserves_linear_momentum_and_energy():
    z, sp = _batch()
    model = _small("HOGN")
    ts = 0.01 * torch.arange(50, **F64)
    with torch.no_grad():
        traj = ModelDynamics(model, substeps=2)(z, ts, sp)
    dP, dL = _momentum_errors(traj)
    assert dP < 1e-10, dP  # T(2) invariant H (centred positions)
    assert dL > 1e-6, dL  # not rotation invariant
    H = model.H(traj.reshape(-1, 24), sp.repeat_interleave(50, 0)).reshape(4, 50)
    assert ((H - H[:, :1]).abs() / H[:, :1].abs()).max() < 1e-5  # RK4 truncation error only


@pytest.mark.parametrize("name", ["HFC", "HOGN"])
def test_hamiltonian_models_backprop_through_integrator(name):
    model = _small(name)
    z, sp = _batch()
    target = spring_exact_solution(z, sp[..., 0], sp[..., 1], 0.01 * torch.arange(5, **F64))
    pred = ModelDynamics(model)(z, 0.01 * torch.arange(5, **F64).expand(4, 5), sp)  # collated ts (B, T)
    loss = (pred[:, 1:] - target[:, 1:]).pow(2).mean()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    # H's output bias is an additive constant: ∇H does not depend on it, so it gets no gradient
    # (the DDP find_unused_parameters note in DESIGN.md §7).  Every other weight must get one.
    missing = sorted(n for n, g in grads.items() if g is None)
    assert missing == [list(grads)[-1]] and missing[0].endswith("bias"), missing
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values() if g is not None)


class _PairPotential(nn.Module):
    """A learned, rotation- and translation-invariant potential: Σ_{i<j} φ(|q_i − q_j|², k_i k_j)."""

    def __init__(self):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1))

    def forward(self, q, values):
        d2 = (q.unsqueeze(2) - q.unsqueeze(1)).pow(2).sum(-1)  # (B, n, n)
        kk = values[..., 1].unsqueeze(2) * values[..., 1].unsqueeze(1)
        e = self.phi(torch.stack([d2, kk], -1)).squeeze(-1)
        return torch.triu(e, diagonal=1).sum((-2, -1))


def test_potential_model_with_leapfrog_conserves_both_momenta_exactly():
    torch.manual_seed(0)
    model = PotentialModel(_PairPotential()).double()
    z, sp = _batch()
    ts = 0.01 * torch.arange(100, **F64)
    with torch.no_grad():
        lf = ModelDynamics(model, method="leapfrog")(z, ts, sp)
        rk = ModelDynamics(model, method="rk4")(z, ts, sp)
    dP, dL = _momentum_errors(lf)
    assert dP < 1e-12 and dL < 1e-12, (dP, dL)
    dP4, dL4 = _momentum_errors(rk)
    assert dL4 > 1e3 * max(dL, 1e-16), (dL4, dL)
    # training through leapfrog gives finite gradients
    pred = ModelDynamics(model, method="leapfrog")(z, ts[:5], sp)
    pred[:, 1:].pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert grads[-1] is None  # φ's output bias is an additive constant of V
    assert all(g is not None and torch.isfinite(g).all() for g in grads[:-1])


def test_true_potential_reproduces_ground_truth_and_centering():
    z, sp = _batch()
    ts = 0.01 * torch.arange(5, **F64)
    exact = spring_exact_solution(z, sp[..., 0], sp[..., 1], ts)
    for center in (False, True):  # V is translation invariant: centring is a no-op
        model = PotentialModel(SpringPotential(), center=center)
        torch.testing.assert_close(model.H(z, sp), spring_energy(z, sp))
        with torch.no_grad():
            out = ModelDynamics(model, method="rk4", substeps=8)(z, ts, sp)
        torch.testing.assert_close(out, exact, rtol=0, atol=1e-8)
        with torch.no_grad():
            out = ModelDynamics(model, method="leapfrog", substeps=40)(z, ts, sp)
        torch.testing.assert_close(out, exact, rtol=0, atol=1e-5)


def test_model_dynamics_bad_input():
    with pytest.raises(ValueError, match="leapfrog"):
        ModelDynamics(_small("HOGN"), method="leapfrog")
    with pytest.raises(ValueError, match="method"):
        ModelDynamics(_small("FC"), method="rk45")
    z, sp = _batch(B=2)
    with pytest.raises(ValueError, match="ts"):
        ModelDynamics(_small("FC"))(z, torch.zeros(3, 4, **F64), sp)


@pytest.mark.parametrize("name", ["HFC", "OGN"])
def test_per_item_time_grids_equal_integrating_each_item_alone(name):
    """ts (B, T) with different rows: each item is integrated on its own grid (shifted to 0)."""
    z, sp = _batch(B=5)
    base = 0.01 * torch.arange(4, **F64)
    ts = torch.stack([base, 2 * base, 3.0 + base, 2 * base + 1.0, base * torch.tensor([0, 1, 3, 4], **F64)])
    dyn = ModelDynamics(_small(name))
    out = dyn(z, ts, sp)
    assert out.shape == (5, 4, 24)
    for b in range(5):
        alone = dyn(z[b : b + 1], ts[b] - ts[b, 0], sp[b : b + 1])
        torch.testing.assert_close(out[b : b + 1], alone, rtol=1e-13, atol=1e-13)
    # gradients flow through the regrouped batch
    out[:, 1:].pow(2).mean().backward()
    assert all(p.grad is not None for p in dyn.parameters() if p.requires_grad and p is not list(dyn.parameters())[-1])


def test_points_potential_adapter():
    from lieconv import Points

    class MeanSquare(nn.Module):  # stands in for a LieResNet(2, 1) on Points
        def forward(self, x):
            assert isinstance(x, Points) and x.values.shape[-1] == 2 and x.mask.all()
            return (x.coords.pow(2).sum(-1) * x.values[..., 1]).mean(-1, keepdim=True)  # (B, 1)

    z, sp = _batch()
    model = PotentialModel(PointsPotential(MeanSquare()), center=True)
    out = ModelDynamics(model, method="leapfrog")(z, 0.01 * torch.arange(4, **F64), sp)
    assert out.shape == (4, 4, 24) and torch.isfinite(out).all()
