"""SE(2), SO(2), RxSO(2) and subgroup specifics."""

import math

import torch
from torch.testing import assert_close

from lieconv.groups import SE2, SO2, RxSO2, get_group
from lieconv.groups._series import wrap_angle


def test_se2_stratified_lift_samples_are_evenly_spaced(gen):
    G = SE2()
    x = torch.randn(2, 5, 2, generator=gen, dtype=torch.float64)
    for ns in (2, 3, 8):
        e, _ = G.lift(x, ns, generator=gen)
        theta = e[..., 0].reshape(2, 5, ns)
        assert (theta >= -math.pi).all() and (theta < math.pi).all()
        steps = wrap_angle(theta[..., 1:] - theta[..., :-1])
        steps = torch.where(steps <= 0, steps + 2 * math.pi, steps)  # ns = 2: the step is pi
        assert_close(steps, torch.full_like(steps, 2 * math.pi / ns), atol=1e-12, rtol=0)
        # one independent offset per point
        assert theta[..., 0].unique().numel() == 10


def test_se2_rel_log_formula():
    G = SE2()
    u = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)
    v = torch.tensor([-0.2, 0.5, -1.0], dtype=torch.float64)
    rel = G.rel_log(u, v)
    assert_close(rel[0], torch.tensor(0.5, dtype=torch.float64))
    assert_close(G.exp(rel), torch.linalg.inv(G.elems_to_matrix(v)) @ G.elems_to_matrix(u), atol=1e-14, rtol=0)


def test_angle_wraps_into_principal_branch():
    a = torch.tensor([math.pi, -math.pi, 3 * math.pi, 0.5, -7.0], dtype=torch.float64)
    w = wrap_angle(a)
    assert (w > -math.pi).all() and (w <= math.pi + 1e-15).all()
    assert_close(torch.cos(w), torch.cos(a))
    assert_close(torch.sin(w), torch.sin(a), atol=1e-14, rtol=0)
    assert_close(SO2().rel_log(torch.tensor([3.0]), torch.tensor([-3.0])), torch.tensor([6.0 - 2 * math.pi]))


def test_so2_and_rxso2_lift_the_origin_gracefully():
    x = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    for G in (SO2(), RxSO2()):
        e, q = G.lift(x)
        (g,) = torch.autograd.grad((e.sum() + q.sum()), x)
        assert torch.isfinite(e).all() and torch.isfinite(q).all() and torch.isfinite(g).all()


def test_rxso2_log_polar_rel_log():
    G = RxSO2()
    x = torch.tensor([[[2.0, 0.0], [0.0, 0.5]]], dtype=torch.float64)
    e, _ = G.lift(x)
    rel = G.rel_log(e[:, 0], e[:, 1])
    assert_close(rel, torch.tensor([[math.log(4.0), -math.pi / 2]], dtype=torch.float64))


def test_tx_ty_orbits_are_the_other_coordinate():
    x = torch.tensor([[1.5, -2.0]], dtype=torch.float64)
    tx, ty = get_group("Tx"), get_group("Ty")
    e, q = tx.lift(x)
    assert_close(tx.rel_log(e, tx.identity_elems(1, dtype=x.dtype)), x[:, :1])
    assert_close(q, x[:, 1:])
    e, q = ty.lift(x)
    assert_close(ty.rel_log(e, ty.identity_elems(1, dtype=x.dtype)), x[:, 1:])
    assert_close(q, x[:, :1])


def test_rx_orbit_is_the_direction():
    G = get_group("Rx")
    x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    e, q = G.lift(x)
    assert_close(q, x / 5)
    assert_close(G.rel_log(e, G.identity_elems(1, dtype=x.dtype)), torch.tensor([[math.log(5.0)]], dtype=torch.float64))
    assert G.lie_dim == 1 and G.q_dim == 2
