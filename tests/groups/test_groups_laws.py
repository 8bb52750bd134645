"""Group laws, parametrised over the registry (float64)."""

import pytest
import torch
from torch.testing import assert_close

TOL = dict(atol=1e-10, rtol=1e-10)


def test_sizes_are_consistent(group):
    G = group
    if G.lie_dim > 0:  # Trivial(d) uses 1x1 matrices
        assert G.rep_dim == (G.space_dim + 1 if G.affine else G.space_dim)
    e = G.identity_elems(dtype=torch.float64)
    assert e.shape == (G.elem_dim,)
    assert_close(G.elems_to_matrix(e), torch.eye(G.rep_dim, dtype=torch.float64))
    assert G.hat(torch.zeros(G.lie_dim, dtype=torch.float64)).shape == (G.rep_dim, G.rep_dim)


def test_exp_log_roundtrip(group, gen):
    g = group.sample(7, generator=gen)
    assert_close(group.exp(group.log(g)), g, **TOL)


def test_log_exp_inside_injectivity_radius(group, gen, h):
    a = h.small_algebra(group, 7, generator=gen)
    assert_close(group.log(group.exp(a)), a, **TOL)


def test_inverse(group, gen):
    g = group.sample(5, generator=gen)
    eye = group.identity(5, dtype=torch.float64)
    assert_close(group.mul(g, group.inv(g)), eye, **TOL)
    assert_close(group.mul(group.inv(g), g), eye, **TOL)


def test_associativity(group, gen):
    f, g, k = (group.sample(4, generator=gen) for _ in range(3))
    assert_close(group.mul(group.mul(f, g), k), group.mul(f, group.mul(g, k)), **TOL)


@pytest.mark.parametrize("magnitude", [1e-6, 1e-3, 0.1, 1.0, 3.0])
def test_exp_matches_matrix_exp(group, gen, magnitude):
    d = torch.randn(6, group.lie_dim, generator=gen, dtype=torch.float64)
    a = magnitude * d / d.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    assert_close(group.exp(a), torch.linalg.matrix_exp(group.hat(a)), atol=1e-12, rtol=1e-12)


def test_vee_hat(group, gen):
    a = torch.randn(5, group.lie_dim, generator=gen, dtype=torch.float64)
    assert_close(group.vee(group.hat(a)), a, **TOL)


def test_elems_roundtrip(group, gen, h):
    g = group.sample(6, generator=gen)
    assert group.matrix_to_elems(g).shape == (6, group.elem_dim)
    assert_close(group.elems_to_matrix(group.matrix_to_elems(g)), g, **TOL)


def test_rel_log_matches_matrices(group, gen, h):
    u, v = h.elems(group, 8, generator=gen), h.elems(group, 8, generator=gen)
    U, V = group.elems_to_matrix(u), group.elems_to_matrix(v)
    assert_close(group.rel_log(u, v), group.log(torch.linalg.inv(V) @ U), **TOL)


def test_rel_log_broadcasts_like_the_layer(group, gen, h):
    """The conv layer calls rel_log / elem_distance on (B, m, 1, E) x (B, 1, N, E)."""
    u, v = h.elems(group, 2, 3, 1, generator=gen), h.elems(group, 2, 1, 4, generator=gen)
    qu, qv = h.orbits(group, 2, 3, 1, generator=gen), h.orbits(group, 2, 1, 4, generator=gen)
    rel = group.rel_log(u, v)
    assert rel.shape == (2, 3, 4, group.lie_dim)
    assert group.elem_distance(u, v, qu, qv).shape == (2, 3, 4)
    full = group.rel_log(u.expand(2, 3, 4, -1), v.expand(2, 3, 4, -1))
    assert_close(rel, full, **TOL)


def test_rel_log_of_identical_elements_is_zero(group, gen, h):
    u = h.elems(group, 5, generator=gen)
    assert_close(group.rel_log(u, u), torch.zeros(5, group.lie_dim, dtype=torch.float64), atol=1e-12, rtol=0)


def test_elem_distance_matches_distance(group, gen, h):
    u, v = h.elems(group, 9, generator=gen), h.elems(group, 9, generator=gen)
    qu, qv = h.orbits(group, 9, generator=gen), h.orbits(group, 9, generator=gen)
    expected = group.distance(group.rel_log(u, v), qu, qv)
    assert_close(group.elem_distance(u, v, qu, qv), expected, **TOL)
    assert_close(group.elem_distance(u, u, qu, qu), torch.zeros(9, dtype=torch.float64), atol=1e-7, rtol=0)


def test_distance_is_left_invariant(group, gen, h):
    u, v = h.elems(group, 6, generator=gen), h.elems(group, 6, generator=gen)
    qu, qv = h.orbits(group, 6, generator=gen), h.orbits(group, 6, generator=gen)
    g = group.sample(6, generator=gen)
    gu, gv = group.left_mul_elems(g, u), group.left_mul_elems(g, v)
    assert_close(group.rel_log(gu, gv), group.rel_log(u, v), **TOL)
    assert_close(group.elem_distance(gu, gv, qu, qv), group.elem_distance(u, v, qu, qv), **TOL)


def test_left_mul_elems_matches_matrices(group, gen, h):
    e = h.elems(group, 5, generator=gen)
    g = group.sample(5, generator=gen)
    assert_close(group.elems_to_matrix(group.left_mul_elems(g, e)), g @ group.elems_to_matrix(e), **TOL)
    # broadcasting one g over many elements
    e2 = h.elems(group, 3, 4, generator=gen)
    out = group.left_mul_elems(g[0], e2)
    assert out.shape == (3, 4, group.elem_dim)
    assert_close(group.elems_to_matrix(out), g[0] @ group.elems_to_matrix(e2), **TOL)


def test_orbit_is_invariant(group, gen, h):
    x = h.points(group, 6, generator=gen)
    g = group.sample(6, generator=gen, scale=0.5)
    assert_close(group.orbit(group.act(g, x)), group.orbit(x), **TOL)


def test_lift_maps_origin_to_point(group, gen, h):
    x = h.points(group, 2, 5, generator=gen)
    for ns in [1, 2, 5] if group.stabilizer_dim else [1]:
        e, q = group.lift(x, ns, generator=gen)
        assert e.shape == (2, 5 * ns, group.elem_dim)
        assert q.shape == (2, 5 * ns, group.q_dim)
        assert_close(group.act(group.elems_to_matrix(e), group.origin(q)), x.repeat_interleave(ns, dim=1), **TOL)
        assert_close(q, group.orbit(x).repeat_interleave(ns, dim=1), **TOL)


def test_lift_is_reproducible_from_the_generator(group, h):
    x = h.points(group, 4)
    ns = 3 if group.stabilizer_dim else 1
    e1, _ = group.lift(x, ns, generator=torch.Generator().manual_seed(5))
    e2, _ = group.lift(x, ns, generator=torch.Generator().manual_seed(5))
    assert torch.equal(e1, e2)


def test_float32_smoke(group, gen, h):
    x = h.points(group, 2, 6, generator=gen).float()
    # 3 samples, not 2: two stratified SE(2) samples are exactly pi apart, where log jumps
    e, q = group.lift(x, 3 if group.stabilizer_dim else 1, generator=gen)
    assert e.dtype == torch.float32 and q.dtype == torch.float32
    rel = group.rel_log(e[:, :, None], e[:, None, :])
    d = group.elem_distance(e[:, :, None], e[:, None, :], q[:, :, None], q[:, None, :])
    assert rel.dtype == torch.float32 and torch.isfinite(rel).all() and torch.isfinite(d).all()
    ref = group.rel_log(e.double()[:, :, None], e.double()[:, None, :])
    assert_close(rel.double(), ref, atol=1e-4, rtol=1e-4)
