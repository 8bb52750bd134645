"""``LieGroup.rel_embed``: a continuous, invariant embedding of v^-1 u (the smooth kernel input)."""

import math

import pytest
import torch
from torch.testing import assert_close

from lieconv.groups import get_group

TOL = dict(atol=1e-9, rtol=1e-9)
#: groups whose log wraps at a rotation angle of ±pi, and the rotation coordinate of their log
ROTATION = {"SO2": 0, "RxSO2": 1, "SE2": 0, "SO3": None, "SE3": None}


def test_sizes_and_invariance(group, gen, h):
    u, v = h.elems(group, 6, generator=gen), h.elems(group, 6, generator=gen)
    e = group.rel_embed(u, v)
    assert e.shape == (6, group.embed_dim) and torch.isfinite(e).all()
    g = group.sample(6, generator=gen)
    assert_close(group.rel_embed(group.left_mul_elems(g, u), group.left_mul_elems(g, v)), e, **TOL)
    # broadcasting as in the layer: queries (m, 1, E) against neighbours (1, K, E)
    pairs = group.rel_embed(u[:2, None], v[None, :4])
    assert pairs.shape == (2, 4, group.embed_dim)
    assert_close(pairs[1, 3], group.rel_embed(u[1], v[3]), **TOL)


def test_embedding_determines_the_relative_element(group, gen, h):
    """The embedding is a function of v^-1 u that separates elements: equal embeddings, equal v^-1 u."""
    u, v = h.elems(group, 6, generator=gen), h.elems(group, 6, generator=gen)
    rel = group.mul(group.inv(group.elems_to_matrix(v)), group.elems_to_matrix(u))
    ident = group.identity_elems(6, dtype=torch.float64)
    # rel_embed(w, e) for the element w = v^-1 u itself must equal rel_embed(u, v)
    assert_close(group.rel_embed(group.matrix_to_elems(rel), ident), group.rel_embed(u, v), **TOL)
    if group.embed_dim == group.lie_dim and group.name not in ROTATION:
        assert_close(group.rel_embed(u, v), group.rel_log(u, v), **TOL)  # default: the log itself


@pytest.mark.parametrize("name", sorted(ROTATION))
def test_continuous_where_the_log_jumps(name):
    """Across a relative rotation angle of pi the log jumps by ~2 pi, the embedding by ~eps."""
    G = get_group(name)
    eps = 1e-9
    if name in ("SO3", "SE3"):
        ax = torch.tensor([0.48, -0.6, 0.64], dtype=torch.float64)
        rot = [torch.cat([ax * (math.pi + s)]) for s in (-eps, eps)]
        mats = [
            G.exp(torch.cat([r, torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)]) if name == "SE3" else r)
            for r in rot
        ]
    else:
        k = ROTATION[name]
        mats = []
        for s in (-eps, eps):
            a = torch.tensor([0.3, 0.0, 0.0][: G.lie_dim] if G.lie_dim > 1 else [0.0], dtype=torch.float64)
            if name == "SE2":
                a = torch.tensor([0.0, 0.7, -0.4], dtype=torch.float64)
            a[k] = math.pi + s
            mats.append(G.exp(a))
    u = [G.matrix_to_elems(m) for m in mats]
    ident = G.identity_elems(dtype=torch.float64)
    logs = [G.rel_log(x, ident) for x in u]
    embs = [G.rel_embed(x, ident) for x in u]
    assert (logs[0] - logs[1]).abs().max() > 1.0  # the principal log wraps
    assert (embs[0] - embs[1]).abs().max() < 1e-7  # the embedding does not
