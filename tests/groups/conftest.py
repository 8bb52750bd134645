"""Fixtures for the group tests: every registered group (ids = registry name) and small helpers."""

from types import SimpleNamespace

import pytest
import torch

from lieconv.groups import GROUPS, get_group

NAMES = sorted(GROUPS)


def points(G, *shape, generator=None, dtype=torch.float64):
    """Random points in the space G acts on (the positive quadrant for RxSQ, away from 0)."""
    x = torch.randn(*shape, G.space_dim, generator=generator, dtype=dtype)
    if G.name == "RxSQ":
        x = x.abs() + 0.2
    return x


def elems(G, *shape, generator=None, scale=0.7, dtype=torch.float64):
    """Random group elements in G's flat parametrisation."""
    return G.matrix_to_elems(G.sample(*shape, generator=generator, scale=scale, dtype=dtype))


def orbits(G, *shape, generator=None, dtype=torch.float64):
    return G.orbit(points(G, *shape, generator=generator, dtype=dtype))


def small_algebra(G, *shape, generator=None, scale=0.5, dtype=torch.float64):
    """Algebra vectors well inside the injectivity radius (angles below ~2.5)."""
    a = torch.randn(*shape, G.lie_dim, generator=generator, dtype=dtype) * scale
    return a.clamp(-0.8, 0.8)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(params=NAMES, ids=NAMES)
def group(request):
    return get_group(request.param, alpha=0.3)


@pytest.fixture
def h():
    """Helpers: points, elems, orbits, small_algebra."""
    return SimpleNamespace(points=points, elems=elems, orbits=orbits, small_algebra=small_algebra)
