"""MatrixLieGroup: numeric exp / log against the closed forms, and the R* x SQ example."""

import math

import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.testing import assert_close

from lieconv.groups import SE2, SO3, MatrixLieGroup, get_group, matrix_log


def _from(G, affine):
    basis = G.hat(torch.eye(G.lie_dim, dtype=torch.float64))
    return MatrixLieGroup(basis, lift_fn=torch.diag_embed, affine=affine, name=f"numeric {G.name}")


def test_numeric_so3_matches_closed_form(gen):
    G = SO3()
    M = _from(G, affine=False)
    a = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    a = a / a.norm(dim=-1, keepdim=True) * torch.linspace(1e-6, 2.8, 16, dtype=torch.float64)[:, None]
    assert_close(M.exp(a), G.exp(a), atol=1e-12, rtol=0)
    assert_close(M.log(G.exp(a)), a, atol=1e-10, rtol=0)


def test_numeric_se2_matches_closed_form(gen):
    G = SE2()
    M = _from(G, affine=True)
    assert M.space_dim == 2
    a = torch.randn(12, 3, generator=gen, dtype=torch.float64).clamp(-2.5, 2.5)
    assert_close(M.exp(a), G.exp(a), atol=1e-12, rtol=0)
    assert_close(M.log(G.exp(a)), G.log(G.exp(a)), atol=1e-10, rtol=0)
    u, v = G.sample(5, generator=gen), G.sample(5, generator=gen)
    assert_close(
        M.rel_log(M.matrix_to_elems(u), M.matrix_to_elems(v)),
        G.rel_log(G.matrix_to_elems(u), G.matrix_to_elems(v)),
        atol=1e-10,
        rtol=0,
    )


def test_matrix_log_generic_matrices(gen):
    A = torch.linalg.matrix_exp(0.6 * torch.randn(6, 4, 4, generator=gen, dtype=torch.float64))
    assert_close(torch.linalg.matrix_exp(matrix_log(A)), A, atol=1e-11, rtol=1e-11)
    near = torch.eye(4, dtype=torch.float64) + 1e-7 * torch.randn(4, 4, generator=gen, dtype=torch.float64)
    assert_close(torch.linalg.matrix_exp(matrix_log(near)), near, atol=1e-15, rtol=0)
    assert_close(matrix_log(torch.eye(3, dtype=torch.float64)), torch.zeros(3, 3, dtype=torch.float64))


def test_matrix_log_is_twice_differentiable(gen):
    for A in (
        torch.eye(3, dtype=torch.float64),
        torch.linalg.matrix_exp(0.5 * torch.randn(3, 3, generator=gen, dtype=torch.float64)),
    ):
        A = A.clone().requires_grad_(True)
        assert gradcheck(matrix_log, (A,), eps=1e-6, atol=1e-5, rtol=1e-4)
        assert gradgradcheck(matrix_log, (A,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_rxsq_hyperbolic_coordinates(gen):
    G = get_group("RxSQ")
    x = torch.rand(1, 6, 2, generator=gen, dtype=torch.float64) * 3 + 0.1
    e, q = G.lift(x)
    assert q.shape == (1, 6, 0)
    assert_close(G.act(G.elems_to_matrix(e), G.origin(q)), x)
    r, s = torch.sqrt(x[..., 0] * x[..., 1]), torch.sqrt(x[..., 0] / x[..., 1])
    rel = G.rel_log(e[:, :, None], e[:, None, :])
    expected = torch.stack([torch.log(r[:, :, None] / r[:, None, :]), torch.log(s[:, :, None] / s[:, None, :])], -1)
    assert_close(rel, expected, atol=1e-12, rtol=0)


def test_rxsq_rel_log_invariant_under_squeeze_and_scale(gen):
    G = get_group("RxSQ")
    x = torch.rand(1, 5, 2, generator=gen, dtype=torch.float64) + 0.2
    g = G.exp(torch.tensor([0.7, -0.4], dtype=torch.float64))
    e, _ = G.lift(x)
    eg, _ = G.lift(G.act(g, x))
    assert_close(G.rel_log(eg[:, :, None], eg[:, None, :]), G.rel_log(e[:, :, None], e[:, None, :]), atol=1e-12, rtol=0)
    assert math.isclose(float(G.distance(torch.tensor([3.0, 4.0]), None, None)), 5.0)
