"""lieconv.native: the compiled selection gives exactly what torch.topk gives, with and without it."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lieconv import native


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize(
    ("n", "k"), [(1296, 130), (648, 65), (3000, 1000), (300, 299), (257, 1), (100, 7), (5, 5), (8, 0)]
)
@pytest.mark.parametrize("spread", [1, 40, 2**30])  # two values / many ties / almost none
def test_smallest_is_the_multiset_topk_gives(dtype, n, k, spread):
    x = torch.randint(-spread, spread, (301, n), dtype=dtype, generator=torch.Generator().manual_seed(n + k))
    got = native.smallest(x, k)
    assert got.shape == (301, k) and got.dtype == dtype
    ref = torch.topk(x, k, dim=-1, largest=False).values
    assert torch.equal(got.sort(-1).values, ref.sort(-1).values)


def test_smallest_handles_batched_and_strided_rows_and_threads():
    x = torch.randint(0, 1000, (3, 700, 600), generator=torch.Generator().manual_seed(0)).transpose(1, 2)
    threads = torch.get_num_threads()
    try:
        for t in (1, 3):
            torch.set_num_threads(t)
            got = native.smallest(x, 70)
            assert torch.equal(got.sort(-1).values, torch.topk(x, 70, largest=False).values.sort(-1).values)
    finally:
        torch.set_num_threads(threads)


def test_the_compiled_selection_is_in_use_where_a_compiler_is():
    if not native.compiler():
        pytest.skip("no C++ compiler on this machine: torch.topk stands in")
    assert native.available()


def test_without_the_native_kernel_the_search_chooses_the_same(tmp_path):
    """LIECONV_NATIVE=0 (torch.topk) and the compiled kernel choose the same neighbourhoods (float64
    points: the distances are the group's torch formula either way, the ranking and draw native or not)."""
    code = (
        "import torch, sys; from lieconv import native, get_group, lift, Points; from lieconv import neighbors as nb\n"
        "g = torch.Generator().manual_seed(0)\n"
        "c = torch.randn(3, 400, 2, generator=g, dtype=torch.float64)\n"
        "x = lift(Points.from_coords(c), get_group('SE2'), 2, generator=g)\n"
        "out = nb.neighborhood_indices(get_group('SE2'), x.elems, x.orbits, x.mask, x.elems, x.orbits, x.mask,"
        " num_nbhd=9, fill=0.2, generator=torch.Generator().manual_seed(1))\n"
        "torch.save((native.available(), out), sys.argv[1])\n"
    )
    results = []
    for flag in ("1", "0"):
        path = tmp_path / f"out{flag}.pt"
        env = {**os.environ, "LIECONV_NATIVE": flag}
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env)
        results.append(torch.load(path))
    assert results[0][0] is native.available() and results[1][0] is False
    assert torch.equal(results[0][1][0], results[1][1][0]) and torch.equal(results[0][1][1], results[1][1][1])


# ------------------------------------------------------------------ the kernel MLP's row passes
def _swish_inputs(R, d, seed, masked):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(R, d, generator=g) * 4
    scale = torch.rand(d, generator=g) + 0.5
    shift = torch.randn(d, generator=g)
    mask = (torch.rand(R, 1, generator=g) < 0.8).float() if masked else None
    grad = torch.randn(R, d, generator=g)
    return t, scale, shift, mask, grad


def _f64(*ts):
    return [None if t is None else t.double() for t in ts]


@pytest.mark.parametrize(("R", "d"), [(1, 1), (37, 5), (300, 32), (9000, 16)])  # 9000: split over threads
@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_row_passes_equal_their_torch_formulas(R, d, masked, affine, threads):
    """native.swish / moments_ / swish_grad / norm_grad in float32 against the same formulas in float64
    (float64 takes the torch path)."""
    t, scale, shift, mask, grad = _swish_inputs(R, d, R + d, masked)
    if not affine:
        scale = shift = None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = native.swish(t, scale, shift, mask)
        s1, s2 = torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
        native.moments_(t, s1, s2)
        out, x2 = torch.empty_like(t), torch.empty_like(t)
        sums = (torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64))
        native.swish_grad(grad, t, scale, shift, mask, out, x_out=x2, sums=sums)
        inplace = grad.clone()
        native.swish_grad(inplace, t, scale, shift, mask, inplace)  # out may be g
        d1, d2 = torch.randn(d, dtype=torch.float64).float(), torch.randn(d, dtype=torch.float64).float()
        sc = torch.ones(d) if scale is None else scale
        ng = native.norm_grad(grad, t, sc, d1, d2, mask, torch.empty_like(t))
    finally:
        torch.set_num_threads(before)
    t6, sc6, sh6, m6, g6 = _f64(t, scale, shift, mask, grad)
    x_ref = native.swish(t6, sc6, sh6, m6)
    o_ref, x2_ref = torch.empty_like(t6), torch.empty_like(t6)
    sums_ref = (torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64))
    native.swish_grad(g6, t6, sc6, sh6, m6, o_ref, x_out=x2_ref, sums=sums_ref)
    close = dict(rtol=1e-5, atol=1e-5)
    assert torch.allclose(x.double(), x_ref, **close) and torch.allclose(x2.double(), x_ref, **close)
    assert torch.allclose(out.double(), o_ref, **close) and torch.allclose(inplace.double(), o_ref, **close)
    assert torch.allclose(s1, t6.sum(0), rtol=1e-6, atol=1e-4) and torch.allclose(s2, (t6 * t6).sum(0), rtol=1e-6)
    for got, want in zip(sums, sums_ref):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-3)
    ng_ref = native.norm_grad(g6, t6, sc.double(), d1.double(), d2.double(), m6, torch.empty_like(t6))
    assert torch.allclose(ng.double(), ng_ref, **close)
    if mask is not None:
        real = mask.squeeze(1) > 0
        assert (x[~real] == 0).all() and (out[~real] == 0).all()


@pytest.mark.parametrize("n", [1, 37, 9000])
@pytest.mark.parametrize("threads", [1, 2])
def test_swish_grad2_is_the_second_derivative_formula(n, threads):
    """native.swish_grad2 in float32 against autograd's derivatives of g silu'(y) in float64, over
    y from -100 to 100 (the sigmoid's clamped range included), either output alone."""
    gen = torch.Generator().manual_seed(n)
    y = torch.cat([torch.randn(n, generator=gen) * 4, torch.tensor([-100.0, -30.0, 0.0, 30.0, 100.0])])
    h, g = torch.randn(y.shape, generator=gen), torch.randn(y.shape, generator=gen)
    g6, y6 = g.double().requires_grad_(), y.double().requires_grad_()
    dy_ = torch.autograd.grad(F.silu(y6), y6, torch.ones_like(y6), create_graph=True)[0]
    want_g, want_y = torch.autograd.grad(g6 * dy_, (g6, y6), h.double())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dg, dy = native.swish_grad2(h, g, y)
        only_g, none_y = native.swish_grad2(h, g, y, want_y=False)
        none_g, only_y = native.swish_grad2(h, g, y, want_g=False)
    finally:
        torch.set_num_threads(before)
    assert none_y is None and none_g is None
    assert torch.equal(dg, only_g) and torch.equal(dy, only_y)
    for got, want in ((dg, want_g), (dy, want_y)):  # silu'' crosses zero: absolute error at its scale
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6 * want.abs().max().item())


@pytest.mark.parametrize("bn", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_kernel_mlp_in_float32_is_the_same_with_and_without_the_native_passes(monkeypatch, bn, training):
    """The recomputed kernel MLP (forward, parameter gradients, running statistics) on float32 CPU
    rows, native passes against torch's, chunked (``_ROW_CHUNK``): the whole loops native (one thread,
    ``native.mlp_forward`` / ``mlp_backward``), the passes native in Python loops (two threads), and
    with its products recomputed."""
    import copy

    from lieconv.nn import KernelMLP, kernels

    ran = []
    for name in ("mlp_forward", "mlp_backward"):
        real = getattr(native, name)
        monkeypatch.setattr(native, name, lambda *a, _f=real, **k: ran.append(_f(*a, **k)) or ran[-1])
    monkeypatch.setattr(kernels, "_ROW_CHUNK", 500)
    torch.manual_seed(0)
    mlp = KernelMLP(3, 16, hidden=32, bn=bn).train(training)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 300, 5, 3, generator=g) + 3.0
    mask = torch.rand(4, 300, 5, generator=g) < 0.9
    a = torch.where(mask.unsqueeze(-1), a, 0.0)
    grad = torch.randn(4, 300, 5, 16, generator=g)
    results = []
    was = torch.get_num_threads()
    try:
        for use_native, keep, threads in ((True, 1 << 28, 1), (False, 1 << 28, 1), (True, 0, 1), (True, 1 << 28, 2)):
            torch.set_num_threads(threads)
            with monkeypatch.context() as mp:
                if not use_native:
                    mp.setattr(native, "_library", lambda: None)
                mp.setattr(kernels, "_KEEP_BYTES", keep)
                ran.clear()
                m = copy.deepcopy(mlp)
                out = m(a, mask)
                (out * grad).sum().backward()
            results.append((out, [p.grad for p in m.parameters()], list(m.buffers())))
            loops = native.available() and native._state.get("sgemm") and use_native and threads == 1
            assert any(ran) == bool(loops)  # the native loops ran where they can
    finally:
        torch.set_num_threads(was)
    ref = results[1]
    for out, grads, buffers in (results[0], results[2], results[3]):
        assert torch.allclose(out, ref[0], rtol=1e-4, atol=1e-5)
        for p, q in zip(grads, ref[1]):
            assert torch.allclose(p, q, rtol=1e-3, atol=1e-4 * q.abs().max().item())
        for p, q in zip(buffers, ref[2]):
            assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("k", "K", "count"), [(130, 25, 130), (130, 25, 100), (40, 25, 10), (25, 25, 25), (9, 3, 0)])
def test_draw_is_the_torch_draw(k, K, count):
    """native.draw: the points of the K largest hash keys of each query's first ``count`` candidates,
    in ascending order."""
    from lieconv import random as _random

    g = torch.Generator().manual_seed(k + K + count)
    B, m = 3, 50
    near = torch.stack([torch.stack([torch.randperm(5000, generator=g)[:k] for _ in range(m)]) for _ in range(B)])
    seeds = torch.randint(-(2**62), 2**62, (B, m), generator=g)
    counts = torch.tensor([count, max(count - 3, 0), count])
    drawn = native.draw(near, seeds, counts, K)
    if not native.available():
        assert drawn is None
        return
    keys = _random.hash_pairs(seeds[..., None], near)
    keys = keys.masked_fill(torch.arange(k) >= counts[:, None, None], torch.iinfo(torch.int64).min)
    kv, ranks = torch.topk(keys, K, dim=-1)
    ok = kv > torch.iinfo(torch.int64).min
    assert torch.equal(drawn[1], ok)
    points = torch.where(ok, near.gather(-1, ranks), 5000).sort(-1).values
    assert torch.equal(drawn[0], torch.where(ok, points, 0))


@pytest.mark.parametrize("spread", [3, 20000])  # many ties at the k-th bucket / few
def test_nearest_draw_is_the_ranking_then_the_draw(spread):
    """native.nearest_draw on bucket rows: the counts[b] smallest (bucket, index) of each row
    (padding never, ``allin`` examples by index), then native.draw of K of them."""
    g = torch.Generator().manual_seed(spread)
    B, m, N, K = 4, 40, 300, 25
    rows = torch.randint(0, spread, (B, m + 7, N), dtype=torch.int32, generator=g)[:, 3 : m + 3]  # strided
    mask = torch.rand(B, N, generator=g) > 0.2
    mask[3] = True
    allin = torch.tensor([False, True, False, False])
    qmask = torch.rand(B, m, generator=g) > 0.1
    counts = torch.tensor([30, int(mask[1].sum()), 10, 200])
    seeds = torch.randint(-(2**62), 2**62, (B, m), generator=g)
    got = native.nearest_draw(rows, mask, allin, qmask, counts, seeds, K)
    if not native.available():
        assert got is None
        return
    j = torch.arange(N)
    key = torch.where(allin[:, None, None], j.expand(B, m, N), rows.long() * N + j).masked_fill(~mask[:, None], 2**62)
    near = torch.sort(key, -1).indices  # nearest first
    ref = native.draw(near, seeds, counts, K)
    ok = ref[1] & qmask[..., None]
    assert torch.equal(got[1], ok)
    assert torch.equal(got[0], torch.where(ok, ref[0], 0))


# ------------------------------------------------------------------ distances and farthest points
def _elements(name, shape, g):
    from lieconv import get_group
    from lieconv.groups import T

    G = T(1) if name == "T1" else get_group(name)
    e = torch.randn(*shape, G.elem_dim, generator=g) * 3
    if name == "SE2":
        e[..., 0] = torch.rand(*shape, generator=g) * 8 - 4  # angles past +-pi: the wrap
    return G, e


@pytest.mark.parametrize("name", ["SE2", "T1", "T2", "T3"])
def test_native_distance_is_the_group_formula_to_float_rounding_and_the_same_bits_in_any_layout(name):
    g = torch.Generator().manual_seed(3)
    G, u = _elements(name, (4, 300), g)
    v = u[:, 7:8].clone()
    v[1, 0, 0] = u[1, 5, 0]  # a zero angle difference (0 / 0 in 1 / sinc)
    got = native.distance(G.native_distance, u, v)
    if not native.available():
        assert got is None
        return
    assert got.shape == (4, 300) and got.dtype == torch.float32
    ref = G.elem_distance(u.double(), v.double(), None, None)
    assert torch.all((got.double() - ref).abs() <= 4e-7 * (ref + 1)), (got.double() - ref).abs().max()
    assert torch.equal(got, G.elem_distance(u, v, None, None))  # the group's elem_distance in float32
    for other in (
        native.distance(G.native_distance, v, u),  # symmetric
        native.distance(G.native_distance, u, v.expand_as(u).contiguous()),  # pairs
        native.distance(G.native_distance, u.transpose(0, 1), v.transpose(0, 1)).T,  # strided
        native.distance(G.native_distance, u.movedim(-1, 0).contiguous().movedim(0, -1), v),  # coordinate planes
    ):
        assert torch.equal(got, other)


def test_native_distance_declines_what_it_has_no_kernel_for():
    u = torch.randn(5, 3)
    assert native.distance(None, u, u) is None
    assert native.distance("se2", u.double(), u.double()) is None
    assert native.distance("euclid", torch.randn(5, 4), torch.randn(5, 4)) is None  # 4 coordinates


@pytest.mark.parametrize("name", ["SE2", "T2", "T3"])
@pytest.mark.parametrize("rows", [True, False])
def test_native_farthest_points_are_the_loop_on_the_same_distances(monkeypatch, name, rows):
    """The compiled loop and the torch loop (both on the native distances) give the same points,
    flags and rows: padding, an example without real points, more steps than real points, ties."""
    from lieconv import neighbors as nb

    g = torch.Generator().manual_seed(4)
    G, e = _elements(name, (5, 90), g)
    e[2, :40] = e[2, :40].round()  # exact distance ties
    mask = torch.ones(5, 90, dtype=torch.bool)
    mask[1, 30:] = False
    mask[3] = False
    mask[4, :10] = False  # the first real point is not point 0
    q = e.new_zeros(5, 90, 0)
    for msk in (mask, torch.ones_like(mask)):
        got = nb.farthest_point_indices(G, e, q, msk, 60, keep_rows=rows)
        monkeypatch.setattr(native, "farthest", lambda *a, **k: None)
        ref = nb.farthest_point_indices(G, e, q, msk, 60, keep_rows=rows)
        monkeypatch.undo()
        for a, b in zip(got, ref):
            assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_index_add_is_torchs_in_the_same_order(threads):
    """Rows scattered with repeats, many rows per thread, and the torch stand-in on what it declines."""
    g = torch.Generator().manual_seed(5)
    was = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for R, n, d in ((7, 40, 3), (9000, 70000, 19)):
            idx = torch.randint(0, R, (n,), generator=g)
            src = torch.randn(n, d, generator=g)
            base = torch.randn(R, d, generator=g)
            assert torch.equal(native.index_add_(base.clone(), idx, src), base.clone().index_add_(0, idx, src))
            wide = torch.randn(n, d + 5, generator=g)[:, 2 : 2 + d]  # rows d + 5 apart: read in place
            assert torch.equal(native.index_add_(base.clone(), idx, wide), base.clone().index_add_(0, idx, wide))
            cols = torch.randn(d, n, generator=g).t()  # transposed: torch's
            assert torch.equal(native.index_add_(base.clone(), idx, cols), base.clone().index_add_(0, idx, cols))
        out = torch.zeros(5, 4, dtype=torch.float64)  # not float32: torch's own
        src64 = torch.randn(6, 4, dtype=torch.float64, generator=g)
        idx = torch.tensor([0, 4, 4, 1, 0, 2])
        assert torch.equal(native.index_add_(out, idx, src64), torch.zeros_like(out).index_add_(0, idx, src64))
    finally:
        torch.set_num_threads(was)


@pytest.mark.parametrize(("R", "C", "n", "K", "H"), [(500, 38, 300, 25, 16), (40, 800, 37, 9, 16), (30, 7, 129, 3, 32)])
@pytest.mark.parametrize("threads", [1, 2])
def test_gather_contract_and_its_gradients_are_the_gathered_products(R, C, n, K, H, threads):
    """z = f^T s, dL/ds = f dz and dL/drows = scatter(s dz^T) against the gather and torch.bmm: channel
    widths with and without a tail of 16, repeated rows, 16 and 32 kernel channels, threads."""
    g = torch.Generator().manual_seed(6)
    rows, s, dz = torch.randn(R, C, generator=g), torch.randn(n, K, H, generator=g), torch.randn(n, C, H, generator=g)
    idx = torch.randint(0, R, (n * K,), generator=g)
    f = rows[idx].view(n, K, C).double()
    want_z = torch.bmm(f.transpose(1, 2), s.double())
    want_ds = torch.bmm(f, dz.double())
    want_rows = torch.zeros(R, C, dtype=torch.float64).index_add_(
        0, idx, torch.bmm(s.double(), dz.double().transpose(1, 2)).view(-1, C)
    )
    was = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        z = native.gather_contract(rows, idx, s, torch.empty(n, C, H))
        z2, ds, gr = torch.empty(n, C, H), torch.empty(n, K, H), torch.zeros(R, C)
        assert native.gather_contract_grad(rows, idx, s, dz, z2, ds, gr)
        gr_only = torch.zeros(R, C)
        assert native.gather_contract_grad(rows, idx, s, dz, grad_rows=gr_only)
    finally:
        torch.set_num_threads(was)
    assert z is not None and torch.equal(z, z2)  # the same sums in forward and backward
    assert torch.equal(gr, gr_only)
    for got, want in ((z, want_z), (ds, want_ds), (gr, want_rows)):
        assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_gather_contract_declines_what_it_has_no_kernel_for():
    rows, idx = torch.randn(10, 4), torch.zeros(6, dtype=torch.int64)
    assert native.gather_contract(rows, idx, torch.randn(2, 3, 8), torch.empty(2, 4, 8)) is None  # 8 channels
    assert native.gather_contract(rows.double(), idx, torch.randn(2, 3, 16).double(), torch.empty(2, 4, 16)) is None
    assert not native.gather_contract_grad(rows, idx.int(), torch.randn(2, 3, 16), torch.randn(2, 4, 16))


@pytest.mark.parametrize(("n", "m", "k", "p"), [(5, 6, 96, 96), (3, 25, 40, 48), (9, 1, 16, 16), (2, 13, 7, 80)])
@pytest.mark.parametrize("threads", [1, 2])
def test_bmm_is_torchs_for_every_layout(monkeypatch, n, m, k, p, threads):
    """op(a) @ op(b) (+ out) against torch.bmm in float64: plain, a transposed (k small), b transposed
    (k a multiple of 16), accumulated, on slices of a larger batch (row and batch strides), every
    row and column tail of the tiles, threads; on any CPU (BMM_ANYWHERE)."""
    monkeypatch.setattr(native, "BMM_ANYWHERE", True)
    g = torch.Generator().manual_seed(7)
    a, at = torch.randn(n + 2, m, k + 3, generator=g)[1:-1, :, :k], torch.randn(n, k, m, generator=g)
    b, bt = torch.randn(n, k, p + 16, generator=g)[..., 16:], torch.randn(n, p, k, generator=g)
    start = torch.randn(n, m, p, generator=g)
    was = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cases = [((a, b), {}), ((at, b), dict(trans_a=True))]
        if k % 16 == 0:
            cases.append(((a, bt), dict(trans_b=True)))
        for (x, y), kw in cases:
            want = torch.bmm(
                x.double().transpose(1, 2) if kw.get("trans_a") else x.double(),
                y.double().transpose(1, 2) if kw.get("trans_b") else y.double(),
            )
            for acc in (False, True):
                out = start.clone()
                assert native.bmm(x, y, out, accumulate=acc, **kw) is out
                ref = want + start.double() if acc else want
                torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5 * k)
    finally:
        torch.set_num_threads(was)


def test_bmm_declines_what_it_has_no_kernel_for(monkeypatch):
    monkeypatch.setattr(native, "BMM_ANYWHERE", True)
    a, b = torch.randn(2, 3, 16), torch.randn(2, 16, 16)
    assert native.bmm(a, b, torch.empty(2, 3, 16)) is not None
    assert native.bmm(a.double(), b.double(), torch.empty(2, 3, 16, dtype=torch.float64)) is None
    assert native.bmm(a, b[..., :8], torch.empty(2, 3, 8)) is None  # p not a multiple of 16
    assert native.bmm(a, b.transpose(1, 2), torch.empty(2, 3, 16)) is None  # b's rows not contiguous
    assert native.bmm(torch.randn(2, 3, 8), torch.randn(2, 16, 8), torch.empty(2, 3, 16), trans_b=True) is None
    assert native.bmm(a, b, torch.empty(2, 4, 16)) is None  # shapes that do not match


@pytest.mark.parametrize("n", [1, 2, 40])
def test_bn_affine_is_sums_affine_in_torch(monkeypatch, n):
    """native.bn_affine (scale, shift, running statistics moved towards mean + offset and the unbiased
    variance, none for a single row) against MaskBatchNorm.sums_affine's torch formula; a variance
    clamped at zero included."""
    from lieconv.nn.norm import MaskBatchNorm

    g = torch.Generator().manual_seed(n)
    s1 = torch.randn(20, dtype=torch.float64, generator=g) * n
    s2 = s1 * s1 / n + torch.rand(20, dtype=torch.float64, generator=g) * n
    s2[:4] = s1[:4] * s1[:4] / n * (1 - 1e-12)
    offset = torch.randn(20, generator=g)
    bns = []
    for use_native in (True, False):
        bn = MaskBatchNorm(20)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(3))
            bn.bias.normal_(generator=torch.Generator().manual_seed(4))
            bn.running_mean.normal_(generator=torch.Generator().manual_seed(5))
        with monkeypatch.context() as mp, torch.no_grad():
            if not use_native:
                mp.setattr(native, "bn_affine", lambda *a, **k: None)
            scale, shift = bn.sums_affine(s1, s2, n, offset)
        bns.append((scale, shift, bn.running_mean.clone(), bn.running_var.clone()))
    for got, want in zip(*bns):
        torch.testing.assert_close(got, want, rtol=2e-6, atol=1e-6)
    w = torch.ones(20)
    assert (native.bn_affine(s1, s2, n, w, w, 1e-5) is not None) == native.available()  # the native one ran


def test_gather_columns_is_torchs_gather():
    """The farthest-point rows' column gather against torch.gather: strided rows (a slice of a wider
    tensor), int32 natively, int64 by torch."""
    g = torch.Generator().manual_seed(9)
    src = torch.randint(0, 1000, (3, 12, 30), generator=g, dtype=torch.int32)[:, :, 2:27]
    cols = torch.randint(0, 25, (3, 9), generator=g)
    for s in (src, src.long()):
        want = s[:, :7].gather(2, cols[:, None, :].expand(3, 7, 9))
        assert torch.equal(native.gather_columns(s, cols, 7), want)
