"""The lean twice-differentiable primitives (lieconv.nn.functional) against autograd's own formulas,
and the Hamiltonian training gradients they give against plain autograd (float64)."""

import pytest
import torch
import torch.nn.functional as F

import lieconv.nn.blocks as blocks_mod
import lieconv.nn.conv as conv_mod
import lieconv.nn.kernels as kernels_mod
from lieconv.models.baselines import ModelDynamics
from lieconv.models.hamiltonian import HLieResNet
from lieconv.nn.functional import contract, silu, silu_grad

F64 = dict(dtype=torch.float64)


def test_silu_value_and_derivatives_to_third_order():
    x = torch.randn(5, 7, **F64, requires_grad=True)
    assert torch.equal(silu(x), F.silu(x))
    assert torch.autograd.gradcheck(silu, (x,))
    assert torch.autograd.gradgradcheck(silu, (x,))
    g = torch.randn(5, 7, **F64, requires_grad=True)
    assert torch.autograd.gradcheck(silu_grad, (g, x))
    assert torch.autograd.gradgradcheck(silu_grad, (g, x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_silu_on_strided_inputs(dtype):
    """Transposed and expanded inputs (and gradients): the values and first and second derivatives of
    F.silu (float32 takes the native passes)."""
    base = torch.randn(33, 4, 5, dtype=dtype)
    for x in (base.permute(2, 0, 1), base.transpose(0, 1), base[:, :1].expand(33, 4, 5), base[::2], base[0].t()):
        x = x.detach().requires_grad_()
        g = torch.randn(x.shape[::-1], dtype=dtype).permute(*reversed(range(x.dim())))  # strided too
        got, want = [], []
        for f, res in ((silu, got), (F.silu, want)):
            y = f(x)
            (d1,) = torch.autograd.grad(y, x, g, create_graph=True)
            res += [y.detach(), d1.detach(), *torch.autograd.grad((d1 * d1).sum(), x)]
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got, want, **tol)


def test_silu_derivatives_equal_autograds():
    x = torch.randn(40, **F64, requires_grad=True)
    v = torch.randn(40, **F64)
    out = []
    for f in (silu, F.silu):
        (d1,) = torch.autograd.grad(f(x), x, v, create_graph=True)
        (d2,) = torch.autograd.grad((d1 * d1).sum(), x)
        out.append((d1.detach(), d2))
    torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("Bs", [3, 1])  # Bs = 1: one kernel for the batch (an expanded s)
def test_contract_is_bmm_and_twice_differentiable(Bs):
    s0 = torch.randn(Bs, 2, 5, **F64, requires_grad=True)
    g = torch.randn(3, 5, 4, **F64, requires_grad=True)

    def f(s0, g):
        return contract(s0.expand(3, 2, 5), g)

    torch.testing.assert_close(f(s0, g), torch.matmul(s0, g))
    assert torch.autograd.gradcheck(f, (s0, g))
    assert torch.autograd.gradgradcheck(f, (s0, g))


def test_contract_first_derivative_for_one_input_only():
    """autograd.grad with respect to s alone (the engine skips g's gradient), then differentiated
    again into s and g: the same as bmm."""
    s = torch.randn(3, 2, 5, **F64, requires_grad=True)
    g = torch.randn(3, 5, 4, **F64, requires_grad=True)
    G = torch.randn(3, 2, 4, **F64)
    res = []
    for f in (contract, torch.bmm):
        o = f(s, g)
        (ds,) = torch.autograd.grad(o, s, G, create_graph=True)
        res.append((ds.detach(), *torch.autograd.grad(ds.pow(3).sum() + o.pow(2).sum(), (s, g))))
    torch.testing.assert_close(res[0], res[1], rtol=1e-12, atol=1e-12)


def _plain_point_contract(s, f, w):
    B, N, c = f.shape
    return torch.matmul(s, (f.reshape(B * N, c) @ w).view(B, s.shape[2], -1))


def _training_grads(group):
    torch.manual_seed(0)
    model = ModelDynamics(HLieResNet(group, k=16, num_layers=2).double(), method="rk4")
    g = torch.Generator().manual_seed(1)
    z0 = 0.5 * torch.randn(4, 24, generator=g, **F64)
    sp = torch.stack([0.1 + torch.rand(4, 6, generator=g, **F64), torch.rand(4, 6, generator=g, **F64)], -1)
    loss = model(z0, 0.05 * torch.arange(3, **F64), sp).pow(2).mean()
    return [
        loss.detach(),
        *torch.autograd.grad(loss, list(model.parameters()), allow_unused=True, materialize_grads=True),
    ]


@pytest.mark.parametrize("group", ["SO2*", "T2"])
def test_training_gradients_equal_plain_autograd(group, monkeypatch):
    """The loss through RK4 (dV/dq, double backward) and its parameter gradients: the lean
    primitives give what F.silu and torch.matmul give (plain autograd)."""
    lean = _training_grads(group)
    monkeypatch.setattr(blocks_mod, "silu", F.silu)
    monkeypatch.setattr(kernels_mod, "silu", F.silu)
    monkeypatch.setattr(conv_mod, "contract", torch.matmul)
    monkeypatch.setattr(conv_mod, "point_contract", _plain_point_contract)
    plain = _training_grads(group)
    assert len(lean) == len(plain) > 10
    for a, b in zip(lean, plain):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("Bs", [3, 1])
def test_point_contract_is_contract_of_the_point_features_and_twice_differentiable(Bs, monkeypatch):
    import lieconv.nn.functional as fn

    monkeypatch.setattr(fn, "_CHUNK", 2 * 5 * 4)  # chunks of 2 examples (of 3): the loops run
    s0 = torch.randn(Bs, 2, 6, **F64, requires_grad=True)  # N = 3 points, h = 2 kernel channels
    f = torch.randn(3, 3, 4, **F64, requires_grad=True)
    w = torch.randn(4, 2 * 5, **F64, requires_grad=True)  # o = 5

    def pc(s0, f, w):
        return fn.point_contract(s0.expand(3, 2, 6), f, w)

    ref = torch.matmul(s0, (f.reshape(9, 4) @ w).view(3, 6, 5))
    torch.testing.assert_close(pc(s0, f, w), ref)
    assert torch.autograd.gradcheck(pc, (s0, f, w))
    assert torch.autograd.gradgradcheck(pc, (s0, f, w))


def test_point_contract_second_pass_through_both_nodes(monkeypatch):
    """A loss of the output and of its first derivative (as in training through dV/dq): the terms
    through g handed from the derivative's node to the forward node give autograd's gradients."""
    import lieconv.nn.functional as fn

    monkeypatch.setattr(fn, "_CHUNK", 2 * 5 * 4)
    s = torch.randn(3, 2, 6, **F64, requires_grad=True)
    f = torch.randn(3, 3, 4, **F64, requires_grad=True)
    w = torch.randn(4, 10, **F64, requires_grad=True)
    G = torch.randn(3, 2, 5, **F64)
    res = []
    for pc in (fn.point_contract, lambda s, f, w: torch.bmm(s, (f.reshape(9, 4) @ w).view(3, 6, 5))):
        o = pc(s, f, w)
        ds, df = torch.autograd.grad(o, (s, f), G, create_graph=True)
        loss = o.pow(2).sum() + ds.pow(2).sum() + (df * f).sum()
        res.append(torch.autograd.grad(loss, (s, f, w)))
    torch.testing.assert_close(res[0], res[1], rtol=1e-12, atol=1e-12)


def test_float32_training_gradients_are_the_same_with_and_without_the_native_products(monkeypatch):
    """An HLieResNet step in float32 (RK4, double backward) whose aggregation shapes the native
    batched products take (16 kernel channels, 16 output channels): its loss and parameter
    gradients equal those of torch.bmm to float32 rounding."""
    from lieconv import native

    monkeypatch.setattr(native, "BMM_ANYWHERE", True)
    ran = []
    real = native.bmm

    def counted(*args, **kwargs):
        out = real(*args, **kwargs)
        ran.append(out is not None)
        return out

    monkeypatch.setattr(native, "bmm", counted)

    def grads():
        torch.manual_seed(0)
        model = ModelDynamics(HLieResNet("T2", k=64, num_layers=2), method="rk4")
        g = torch.Generator().manual_seed(1)
        z0 = 0.5 * torch.randn(8, 24, generator=g)
        sp = torch.stack([0.1 + torch.rand(8, 6, generator=g), torch.rand(8, 6, generator=g)], -1)
        loss = model(z0, 0.05 * torch.arange(3.0), sp).pow(2).mean()
        params = list(model.parameters())
        return [loss.detach(), *torch.autograd.grad(loss, params, materialize_grads=True, allow_unused=True)]

    native_run = grads()
    assert sum(ran) > 20  # the products of forward, backward and double backward
    monkeypatch.setattr(native, "bmm", lambda *a, **k: None)
    plain = grads()
    for a, b in zip(native_run, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item() + 1e-7)
