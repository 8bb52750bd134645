"""``distance_lower_bound_coords``: d(u, v) >= ||E(u) - E(v)|| on random pairs (float64), near pi too."""

import math

import pytest
import torch

from lieconv.groups import get_group

from .conftest import NAMES, elems, orbits

#: algebra coordinates of the rotation part (set to angles close to pi below)
ROTATION = {"SO2": [0], "Rot": [0], "SE2": [0], "RxSO2": [1], "SO3": [0, 1, 2], "SE3": [0, 1, 2]}
#: groups whose bound is known; every other registered group must answer None (brute force)
BOUNDED = {
    "T",
    "T2",
    "T3",
    "Trivial",
    "Trivial2",
    "Trivial3",
    "Tx",
    "Ty",
    "Rx",
    "Scale",
    "SO2",
    "Rot",
    "RxSO2",
    "SE2",
    "SO3",
    "SE3",
}


def _right_mul(G, u, a):
    """u exp(a) in flat parameters (the same orbit as u, relative element exp(a)^-1)."""
    return G.matrix_to_elems(G.mul(G.elems_to_matrix(u), G.exp(a)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("alpha", [0.2, 0.9])
def test_lower_bound_holds_on_random_pairs(name, alpha):
    G = get_group(name, alpha=alpha)
    gen = torch.Generator().manual_seed(7)
    n = 400
    u, v = elems(G, n, generator=gen, scale=1.5), elems(G, n, generator=gen, scale=1.5)
    qu, qv = orbits(G, n, generator=gen), orbits(G, n, generator=gen)
    if G.lie_dim:  # the same orbit, relative rotation angles close to pi (and exactly pi)
        a = torch.randn(n, G.lie_dim, generator=gen, dtype=torch.float64)
        rot = ROTATION.get(name, [])
        if rot:
            axis = a[:, rot] / a[:, rot].norm(dim=-1, keepdim=True)
            delta = torch.tensor([0.0, 1e-12, 1e-7, 1e-3, 0.1], dtype=torch.float64).repeat(n // 5)
            a[:, rot] = axis * (math.pi - delta)[:, None]
        u = torch.cat([u, u])
        v = torch.cat([v, _right_mul(G, u[:n], a)])
        qu, qv = torch.cat([qu, qu]), torch.cat([qv, qu])
    E = G.distance_lower_bound_coords(u, qu)
    if name not in BOUNDED:
        assert E is None
        return
    bound = (E - G.distance_lower_bound_coords(v, qv)).norm(dim=-1)
    for d in (G.elem_distance(u, v, qu, qv), G.distance(G.rel_log(u, v), qu, qv)):
        assert torch.isfinite(d).all()
        assert (d >= bound * (1 - 1e-12) - 1e-12).all(), (name, float((bound - d).max()))
    # the bound is not vacuous: it is within a factor of the distance for nearby pairs
    assert float(bound.sum()) > 0.1 * float(G.elem_distance(u, v, qu, qv).sum())


def test_translation_bound_is_exact():
    G = get_group("T3")
    gen = torch.Generator().manual_seed(0)
    u, v = (
        torch.randn(50, 3, generator=gen, dtype=torch.float64),
        torch.randn(50, 3, generator=gen, dtype=torch.float64),
    )
    q = u.new_zeros(50, 0)
    E = G.distance_lower_bound_coords
    assert torch.allclose((E(u, q) - E(v, q)).norm(dim=-1), G.elem_distance(u, v, q, q), rtol=1e-14, atol=0)
