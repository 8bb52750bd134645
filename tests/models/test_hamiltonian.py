"""HLieResNet (HLieConv) and LieResNetDynamics (LieConv-T(2)): shapes, symmetries, separability, bad input."""

import math

import pytest
import torch

from lieconv import Points
from lieconv.datasets.springs import SpringsConfig, sample_systems
from lieconv.dynamics import join_state, split_state, symplectic_gradient
from lieconv.models.baselines import ModelDynamics
from lieconv.models.hamiltonian import HGROUPS, HLieResNet, LieResNetDynamics, parse_group
from lieconv.nn import MaskBatchNorm

F64 = dict(dtype=torch.float64)


def _batch(B=3, seed=0):
    z, m, k = sample_systems(SpringsConfig(n_systems=B), torch.Generator().manual_seed(seed))
    q, p = split_state(z, 6)
    return q, p, torch.stack([m, k], -1)


def _small(group, cls=HLieResNet):
    torch.manual_seed(0)
    return cls(group, k=16, num_layers=1).double()


def _rot(theta):
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], **F64)


def test_paper_defaults_and_no_batchnorm():
    model = HLieResNet()
    assert model.group_name == "SO2*" and model.center
    net = model.net.net
    assert len(net.blocks) == 4 and net.embed.out_features == 384
    assert not any(isinstance(m, MaskBatchNorm) for m in model.modules())
    assert all(b.conv.fill == 1.0 and b.conv.num_nbhd >= 6 for b in net.blocks)


def test_shapes_and_vector_field_is_J_grad_H():
    q, p, sp = _batch()
    model = _small("T2")
    z = join_state(q, p)
    assert model.V(q, sp).shape == (3,) and model.H(z, sp).shape == (3,)
    f = model(torch.tensor(0.0), z, sp)
    assert f.shape == (3, 24)
    ref = symplectic_gradient(lambda x: model.H(x, sp), z)
    torch.testing.assert_close(f, ref)
    dq, _ = split_state(f, 6)
    torch.testing.assert_close(dq, p / sp[..., :1])  # ∂H/∂p = p/m: the kinetic energy is analytic


@pytest.mark.parametrize(
    "group,translation,rotation",
    [("Trivial2", False, False), ("T2", True, False), ("SO2", False, True), ("SO2*", True, True)],
)
def test_potential_symmetries(group, translation, rotation):
    q, _, sp = _batch()
    model = _small(group)
    with torch.no_grad():
        v = model.V(q, sp)
        vt = model.V(q + torch.tensor([0.7, -0.3], **F64), sp)
        vr = model.V(q @ _rot(0.9).T, sp)
        perm = torch.tensor([3, 0, 5, 1, 4, 2])
        vp = model.V(q[:, perm], sp[:, perm])
    torch.testing.assert_close(vp, v, atol=1e-12, rtol=1e-10)  # particles are a set
    assert torch.allclose(vt, v, atol=1e-12, rtol=1e-10) == translation
    assert torch.allclose(vr, v, atol=1e-12, rtol=1e-10) == rotation


def test_potential_is_deterministic_and_leapfrog_rk4_agree():
    q, p, sp = _batch()
    model = _small("SO2*")
    z, ts = join_state(q, p), 0.01 * torch.arange(6, **F64)
    with torch.no_grad():
        a = ModelDynamics(model, method="leapfrog")(z, ts, sp)
        b = ModelDynamics(model, method="leapfrog")(z, ts, sp)
        c = ModelDynamics(model, method="rk4")(z, ts, sp)
    assert torch.equal(a, b)  # no Monte-Carlo resampling
    assert (a - c).abs().max() < 1e-5  # both solve the same ODE


@pytest.mark.parametrize("method", ["rk4", "leapfrog"])
def test_trains_through_the_integrator(method):
    """Second derivatives reach every parameter: the loss on RK4 / leapfrog states depends on ∇V."""
    q, p, sp = _batch()
    model = HLieResNet("SO2*", k=8, num_layers=1)
    out = ModelDynamics(model, method=method)(join_state(q, p).float(), 0.01 * torch.arange(3), sp.float())
    out.pow(2).mean().backward()
    missing = [n for n, prm in model.named_parameters() if prm.grad is None]
    assert missing == ["net.net.head.bias"]  # a constant in V has no ∇V
    grads = [prm.grad for prm in model.parameters() if prm.grad is not None]
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_direct_lieconv_t2_is_translation_equivariant():
    q, p, sp = _batch()
    model = _small("T2", LieResNetDynamics)
    with torch.no_grad():
        f = model(0.0, join_state(q, p), sp)
        ft = model(0.0, join_state(q + torch.tensor([1.0, 2.0], **F64), p), sp)
    assert f.shape == (3, 24)
    torch.testing.assert_close(ft, f, atol=1e-12, rtol=1e-10)
    assert not hasattr(model, "H")  # not Hamiltonian


def test_parse_group():
    assert parse_group("SO2*") == ("SO2", True) and parse_group("T2") == ("T2", False)
    assert HGROUPS == ("Trivial2", "T2", "SO2", "SO2*")


def test_bad_input():
    with pytest.raises(ValueError, match=r"group: unknown group 'SE2'"):
        HLieResNet("SE2")
    with pytest.raises(ValueError, match="group"):
        LieResNetDynamics("SO2")
    with pytest.raises(ValueError, match="num_nbhd"):
        HLieResNet("T2", k=8, num_layers=1, num_nbhd=4)
    with pytest.raises(ValueError, match="k"):
        HLieResNet("T2", k=2)
    model = _small("T2")
    q, p, sp = _batch()
    z = join_state(q, p)
    with pytest.raises(ValueError, match="sys_params"):
        model(0.0, z, sp[:, :5])
    with pytest.raises(ValueError, match="z"):
        model(0.0, z[:, :20], sp)
    with pytest.raises(ValueError, match="q"):
        model.V(q[:, :5], sp)
    ts = 0.01 * torch.arange(3, **F64)
    bad_m = sp.clone()
    bad_m[0, 2, 0] = 0.0
    with pytest.raises(ValueError, match="sys_params: expected positive masses"):
        ModelDynamics(model, method="leapfrog")(z, ts, bad_m)
    z_nan = z.clone()
    z_nan[1, 3] = float("nan")
    with pytest.raises(ValueError, match="z0"):
        ModelDynamics(model)(z_nan, ts, sp)
    with pytest.raises(ValueError, match="sys_params"):
        ModelDynamics(model)(z, ts, sp[:2])


def _across_pi(delta):
    """Six centred positions where particles 0 and 1 sit at a relative angle of pi + delta."""
    x = torch.randn(1, 6, 2, generator=torch.Generator().manual_seed(3), **F64)
    d = torch.tensor(delta, **F64)
    x[0, 0] = torch.tensor([1.0, 0.0], **F64)
    x[0, 1] = -2 * torch.stack([torch.cos(d), torch.sin(d)])
    x[0, 5] = -x[0, :5].sum(0)  # centroid 0: centring changes nothing
    return x


@pytest.mark.parametrize("kernel_input", ["smooth", "log"])
def test_potential_is_continuous_across_a_relative_angle_of_pi(kernel_input):
    """With (cos, sin) kernel inputs V has no jump where a relative angle crosses pi; with the
    wrapped log angle it jumps (issue: a trained checkpoint jumped by 3.5e-4 across 2e-9 rad)."""
    torch.manual_seed(0)
    model = HLieResNet("SO2*", k=32, num_layers=2, kernel_input=kernel_input).double()
    sp = 0.1 + torch.rand(1, 6, 2, generator=torch.Generator().manual_seed(1), **F64)
    with torch.no_grad():
        jump = (model.V(_across_pi(1e-9), sp) - model.V(_across_pi(-1e-9), sp)).abs().item()
        slope = (model.V(_across_pi(1e-3), sp) - model.V(_across_pi(-1e-3), sp)).abs().item() / 2e-3
    if kernel_input == "smooth":
        assert jump < 1e-8 and jump < 10 * slope * 2e-9 + 1e-13
    else:
        assert jump > 1e-7


def test_full_neighbourhoods_skip_the_search_and_match_it():
    """fill = 1 and num_nbhd >= n: every neighbourhood is the whole system, selected without search
    (Selection.full, index order) — the same sets the search picks, so the same model output."""
    from lieconv.neighbors import neighborhood_indices

    q, p, sp = _batch()
    model = _small("SO2*")
    conv = model.net.net.blocks[0].conv
    x = model.net.net.lift(Points.from_coords(q, sp))
    sel = conv.select(x)
    assert sel.full and sel.nbhd_idx.shape == (3, 6, 6) and bool(sel.nbhd_mask.all())
    idx, mask = neighborhood_indices(
        conv.group, x.elems, x.orbits, x.mask, x.elems, x.orbits, x.mask, num_nbhd=conv.num_nbhd, fill=conv.fill
    )
    assert torch.equal(idx.sort(-1).values, sel.nbhd_idx) and torch.equal(mask, sel.nbhd_mask)
    with torch.no_grad():
        v = model.V(q, sp)
        for b in model.net.net.blocks:
            b.conv.covers_all = lambda n: False  # force the search + gather path
        torch.testing.assert_close(model.V(q, sp), v, atol=1e-12, rtol=1e-12)


def test_value_features_are_reused_across_stages_with_the_same_result():
    """separable() computes the (m, k)-only part once per rollout; states and parameter gradients
    equal those of evaluating the whole network at every stage."""
    from lieconv.dynamics import SeparableHamiltonian, odeint

    q, p, sp = _batch()
    model = _small("SO2*")
    z, ts = join_state(q, p), 0.01 * torch.arange(4, **F64)
    assert model.net.value_features(sp) is not None
    for method in ("rk4", "leapfrog"):
        out = ModelDynamics(model, method=method)(z, ts, sp)
        plain = SeparableHamiltonian(lambda x: model.V(x, sp), sp[..., 0])
        ref = odeint(plain, z, ts, method=method).transpose(0, 1)
        torch.testing.assert_close(out, ref, atol=1e-13, rtol=1e-12)
        params = [prm for n, prm in model.named_parameters() if n != "net.net.head.bias"]
        g1 = torch.autograd.grad(out.pow(2).sum(), params)
        g2 = torch.autograd.grad(ref.pow(2).sum(), params)
        for a, b in zip(g1, g2):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
        model.recompute = True  # checkpointed stages: same gradients
        g3 = torch.autograd.grad(ModelDynamics(model, method=method)(z, ts, sp).pow(2).sum(), params)
        model.recompute = False
        for a, b in zip(g3, g2):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
