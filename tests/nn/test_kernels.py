"""The fused pieces of the LieConv layer against their plain definitions (float64)."""

from __future__ import annotations

import copy

import pytest
import torch

from lieconv.nn import KernelMLP, MaskBatchNorm, kernels


def _rows(R=40, d=5, seed=0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(R, d, generator=g, dtype=torch.float64) + offset
    mask = torch.rand(R, generator=g) < 0.7
    return x * mask.unsqueeze(-1), mask


@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_sums_affine_is_batch_norm_of_the_linear_at_real_rows(offset):
    """The norm of t + b (t = x W^T, b the Linear's bias) as t * scale + shift from the masked sums of t."""
    x, mask = _rows()
    lin = torch.nn.Linear(5, 7).double()
    bn = MaskBatchNorm(7).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
        lin.bias.add_(offset)
    ref_bn = copy.deepcopy(bn)
    t = x @ lin.weight.t()
    w = mask.unsqueeze(-1).double()
    s1, s2 = (t * w).sum(0), (t * t * w).sum(0)
    scale, shift = bn.sums_affine(s1, s2, mask.sum(), lin.bias)
    ref = ref_bn(lin(x), mask)
    assert torch.allclose((t * scale + shift)[mask], ref[mask], atol=1e-9)
    assert torch.allclose(bn.running_mean, ref_bn.running_mean, atol=1e-10)
    assert torch.allclose(bn.running_var, ref_bn.running_var, atol=1e-10)
    bn.eval(), ref_bn.eval()
    scale, shift = bn.sums_affine(None, None, 0, lin.bias)
    assert torch.allclose((t * scale + shift)[mask], ref_bn(lin(x), mask)[mask], atol=1e-9)


@pytest.mark.parametrize("case", ["plain", "clamped", "empty", "one"])
def test_sums_affine_grad_is_autograd_through_sums_affine(case):
    """The closed-form derivatives of the kernel MLP's batch norm against autograd: ordinary sums, a
    variance clamped at zero (S2 / n < mean^2 by rounding), no real row, a single real row."""
    from lieconv.nn.norm import MaskBatchNorm

    g = torch.Generator().manual_seed(7)
    bn = MaskBatchNorm(6, zero_masked=False)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(6, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(6, generator=g))
    count = {"plain": 40, "clamped": 40, "empty": 0, "one": 1}[case]
    s1 = torch.randn(6, dtype=torch.float64, generator=g) * 40
    s2 = s1 * s1 / max(count, 1) + torch.rand(6, dtype=torch.float64, generator=g) * 30
    if case == "clamped":
        s2[:3] = s1[:3] * s1[:3] / count * (1 - 1e-9)
    gs, gc = torch.randn(6, generator=g), torch.randn(6, generator=g)
    leaves = (s1.clone().requires_grad_(), s2.clone().requires_grad_())
    scale, shift = bn.sums_affine(*leaves, count, update_stats=False)
    want = torch.autograd.grad((scale, shift), [bn.weight, bn.bias, *leaves], (gs, gc))
    got = bn.sums_affine_grad(s1, s2, count, gs, gc)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and torch.allclose(a, b, rtol=1e-5, atol=1e-7 * (1 + b.abs().max().item()))


def test_mask_batch_norm_statistics_count_only_real_entries():
    x, mask = _rows()
    bn = MaskBatchNorm(5).double()
    y = bn(x.view(4, 10, 5), mask.view(4, 10))
    real = y.view(40, 5)[mask]
    assert torch.allclose(real.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(real.var(0, correction=0), torch.ones(5, dtype=torch.float64), atol=1e-4)
    assert (y.view(40, 5)[~mask] == 0).all()


def _same_grads(mlp, plain):
    """Equal parameter gradients (a Linear's bias before batch norm in training: zero in the recomputed
    backward, zero up to rounding in the plain graph, where it cancels)."""
    for (name, p), q in zip(mlp.named_parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10), name


@pytest.mark.parametrize("bn", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("row_chunk", [8192, 7, 1])  # one chunk; ragged chunks; one row at a time
@pytest.mark.parametrize("keep", [True, False])  # the products t_l kept from the forward, or recomputed
def test_kernel_mlp_recomputed_backward_equals_plain_autograd(bn, training, padded, row_chunk, keep, monkeypatch):
    monkeypatch.setattr(kernels, "_ROW_CHUNK", row_chunk)
    monkeypatch.setattr(kernels, "_KEEP_BYTES", 1 << 28 if keep else 0)
    torch.manual_seed(0)
    mlp = KernelMLP(4, 6, hidden=8, bn=bn).double().train(training)
    a, mask = _rows(R=60, d=4)
    if not padded:
        mask = torch.ones_like(mask)
    a, mask = a.view(3, 4, 5, 4) + 2.0, mask.view(3, 4, 5)  # an offset: the centred Gram matrix matters
    a = torch.where(mask.unsqueeze(-1), a, 0.0)
    plain = copy.deepcopy(mlp)
    out = mlp(a, mask)  # parameters need grads, a does not
    w = None if not padded else mask.reshape(-1, 1).double()
    ref = plain._rows(a.reshape(-1, 4), w).view(3, 4, 5, 6)  # plain autograd graph
    assert torch.allclose(out, ref, atol=1e-12)
    assert (out[~mask] == 0).all()
    g = torch.randn_like(out)
    (out * g).sum().backward(retain_graph=True)
    (ref * g).sum().backward(retain_graph=True)
    _same_grads(mlp, plain)
    (out * g).sum().backward()  # again: the first backward released the kept products: recomputed
    (ref * g).sum().backward()
    _same_grads(mlp, plain)
    for b1, b2 in zip(mlp.buffers(), plain.buffers()):  # running statistics updated once, not twice
        assert torch.allclose(b1, b2, atol=1e-12)


@pytest.mark.parametrize(
    "chunk, linear_rows, nb, steps",
    [
        (1 << 18, 256, 1, None),
        (45, 3, 1, (3, 6)),
        (15, 1, 1, (1, 2)),
        (1, 1, 1, (1, 1)),
        (90, 4, 2, (3, 6)),
        (1, 12, 2, (1, 6)),
    ],
)  # (groups per gather, per product with W): all in one chunk; 3 and 6 (ragged last chunks); 1 and 2; one
# group at a time; two batches side by side (a shared geometry) in several chunks, also by the row minimum
def test_gather_contract_linear_equals_gather_bmm_linear_twice_differentiable(
    monkeypatch, chunk, linear_rows, nb, steps
):
    import lieconv.nn.conv as conv

    monkeypatch.setattr(conv, "_GATHER_CHUNK", chunk)
    monkeypatch.setattr(conv, "_LINEAR_ROWS", linear_rows)
    g = torch.Generator().manual_seed(0)
    G, K, c, h, o = 10, 5, 3, 2, 3
    rows = torch.randn(7, nb * c, dtype=torch.float64, generator=g, requires_grad=True)
    if steps is not None:
        assert conv._GatherContractLinear._steps(rows, K, h, nb) == steps
    idx = torch.randint(0, 7, (G * K,), generator=g)
    weights = torch.randn(G, K, h, dtype=torch.float64, generator=g, requires_grad=True)
    W = torch.randn(o, c * h, dtype=torch.float64, generator=g, requires_grad=True)
    z = torch.bmm(rows[idx].view(G, K, nb * c).transpose(1, 2), weights).reshape(G, nb, c * h)
    ref = z @ W.t()
    out = conv.gather_contract_linear(rows, idx, weights, W)
    assert out.shape == (G, nb, o) and torch.allclose(out, ref, atol=1e-12)
    grad = torch.randn(G, nb, o, dtype=torch.float64, generator=g)
    got = torch.autograd.grad(out, (rows, weights, W), grad)
    want = torch.autograd.grad(ref, (rows, weights, W), grad)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-12)
    fn = lambda r, w, lin: conv.gather_contract_linear(r, idx, w, lin)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (rows, weights, W))
    assert torch.autograd.gradgradcheck(fn, (rows, weights, W))


@pytest.mark.parametrize(("nb", "chunk"), [(1, 1 << 18), (1, 700), (3, 700)])
def test_gather_contract_linear_in_float32_takes_the_native_contraction(monkeypatch, nb, chunk):
    """float32 CPU with 16 kernel channels (``native.gather_contract``): the value and the three
    gradients of the float64 formula, in one chunk and in ragged chunks, one batch or three side by side."""
    import lieconv.nn.conv as conv
    from lieconv import native

    if not native.available():
        pytest.skip("no C++ compiler: the torch contraction is the only one")
    monkeypatch.setattr(conv, "_GATHER_CHUNK", chunk)
    calls = []
    for name in ("gather_contract", "gather_contract_grad"):
        fn = getattr(native, name)
        monkeypatch.setattr(native, name, lambda *a, _fn=fn, _n=name, **k: calls.append(_n) or _fn(*a, **k))
    g = torch.Generator().manual_seed(3)
    G, K, c, h, o = 40, 7, 5, 16, 6
    rows = torch.randn(30, nb * c, generator=g, requires_grad=True)
    idx = torch.randint(0, 30, (G * K,), generator=g)
    weights = torch.randn(G, K, h, generator=g, requires_grad=True)
    W = torch.randn(o, c * h, generator=g, requires_grad=True)
    out = conv.gather_contract_linear(rows, idx, weights, W)
    grad = torch.randn(G, nb, o, generator=g)
    got = torch.autograd.grad(out, (rows, weights, W), grad)
    r64, w64, W64 = (t.detach().double().requires_grad_() for t in (rows, weights, W))
    ref = torch.bmm(r64[idx].view(G, K, nb * c).transpose(1, 2), w64).reshape(G, nb, c * h) @ W64.t()
    want = torch.autograd.grad(ref, (r64, w64, W64), grad.double())
    assert {"gather_contract", "gather_contract_grad"} <= set(calls)
    for a, b in ((out, ref), *zip(got, want)):
        assert torch.allclose(a.double(), b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_affine_silu_in_float32_and_in_mixed_precision_matches_autograd():
    """The native pass each way (float32) and the promoting torch formula (bfloat16 values, float32
    parameters) against autograd through silu in float64."""
    from lieconv.nn.blocks import affine_silu

    g = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.bfloat16):
        x = (torch.randn(300, 37, generator=g) * 3).to(dtype).requires_grad_()
        scale = (torch.rand(37, generator=g) + 0.5).requires_grad_()
        shift = torch.randn(37, generator=g, requires_grad=True)
        y = affine_silu(x, scale, shift)
        grad = torch.randn(y.shape, generator=g)
        got = torch.autograd.grad(y, (x, scale, shift), grad)
        x64, s64, c64 = (t.detach().double().requires_grad_() for t in (x, scale, shift))
        ref = torch.nn.functional.silu(x64 * s64 + c64)
        want = torch.autograd.grad(ref, (x64, s64, c64), grad.double())
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        assert y.dtype == torch.float32 and got[0].dtype == dtype
        for a, b in ((y, ref), *zip(got, want)):
            assert torch.allclose(a.double(), b, rtol=tol, atol=tol * b.abs().max().item())


def test_affine_silu_matches_autograd_twice_differentiable():
    from lieconv.nn.blocks import affine_silu

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    scale = torch.rand(4, dtype=torch.float64, generator=g).add(0.5).requires_grad_()
    shift = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.allclose(affine_silu(x, scale, shift), torch.nn.functional.silu(x * scale + shift), atol=1e-12)
    assert torch.autograd.gradcheck(affine_silu, (x, scale, shift))
    assert torch.autograd.gradgradcheck(affine_silu, (x, scale, shift))


@pytest.mark.parametrize("a_needs_grad", [False, True])  # the recomputed backward; plain autograd
def test_kernel_mlp_without_real_pairs_gives_zeros_and_finite_gradients(a_needs_grad):
    torch.manual_seed(0)
    mlp = KernelMLP(4, 6, hidden=8, bn=True).double().train()
    a = torch.zeros(2, 3, 5, 4, dtype=torch.float64, requires_grad=a_needs_grad)
    mask = torch.zeros(2, 3, 5, dtype=torch.bool)
    out = mlp(a, mask)
    assert (out == 0).all()
    out.sum().backward()
    for name, p in mlp.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
