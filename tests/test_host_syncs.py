"""The selection's loops never wait for the device: no host synchronisation per step.

On CUDA, ``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()`` or ``nonzero`` make the host wait for
every queued kernel.  They are counted here on the CPU through the ATen operators that do it
(``SYNCS``): the count of a farthest-point sampling must not grow with its number of steps, nor
that of a neighbour search with its number of query chunks.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import lieconv.neighbors as nb
from lieconv import Points
from lieconv.groups import get_group
from lieconv.lifting import lift

#: the ATen operators that copy a device value to the host
SYNCS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default"}


class _SyncCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += str(func) in SYNCS
        return func(*args, **(kwargs or {}))


def syncs(fn) -> int:
    with _SyncCount() as count:
        fn()
    return count.n


def _cloud(name: str, n: int = 150):
    G = get_group(name)
    gen = torch.Generator().manual_seed(0)
    coords = torch.randn(3, n, 3 if name in ("T3", "SE3") else 2, generator=gen, dtype=torch.float64)
    mask = torch.ones(3, n, dtype=torch.bool)
    mask[-1, 100:] = False
    return G, lift(Points.from_coords(coords, mask=mask), G, 2 if G.stabilizer_dim else 1, generator=gen)


def test_the_counter_sees_a_host_read():
    t = torch.ones(3)
    assert syncs(lambda: bool(t.all())) == 1 and syncs(lambda: t.nonzero()) == 1 and syncs(lambda: t * 2) == 0


@pytest.mark.parametrize("name", ["T2", "SE2", "SE3"])
def test_farthest_point_loop_syncs_do_not_grow_with_its_steps(name):
    G, x = _cloud(name)
    for keep_rows in (False, True):
        counts = [
            syncs(lambda m=m, k=keep_rows: nb.farthest_point_indices(G, x.elems, x.orbits, x.mask, m, keep_rows=k))
            for m in (3, 60)
        ]
        assert counts[0] == counts[1], (name, keep_rows, counts)


@pytest.mark.parametrize("name", ["T2", "SE2", "SE3"])
@pytest.mark.parametrize("knn", [False, True])
def test_dense_search_syncs_do_not_grow_with_its_query_chunks(name, knn, monkeypatch):
    G, x = _cloud(name)
    idx, qmask = nb.farthest_point_indices(G, x.elems, x.orbits, x.mask, 40)
    q = (nb.gather_points(x.elems, idx), nb.gather_points(x.orbits, idx), qmask)

    def search():
        gen = torch.Generator().manual_seed(1)
        return nb.neighborhood_indices(
            G, *q, x.elems, x.orbits, x.mask, num_nbhd=8, fill=0.2, knn=knn, generator=gen, prune=False
        )

    whole = syncs(search)
    monkeypatch.setattr(nb, "_CHUNK_ELEMENTS", 1)  # one query per chunk
    monkeypatch.setattr(nb, "_SEARCH_ELEMENTS", 1)
    assert syncs(search) == whole
