"""The selection's loops never wait for the device: no host synchronisation per step.

On CUDA, ``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()`` or ``nonzero`` make the host wait for
every queued kernel.  They are counted here on the CPU through the ATen operators that do it
(``SYNCS``) and ``Tensor.tolist``: the count of a farthest-point sampling must not grow with its
number of steps, nor that of a neighbour search with its number of query chunks; under
``lieconv.runtime.avoid_host_reads()`` (what a GPU computes) a network reads only what decides a
shape, a few values per layer, and gives the same result as on the default CPU path.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import lieconv.neighbors as nb
from lieconv import LieResNet, Points
from lieconv.groups import get_group
from lieconv.lifting import lift
from lieconv.runtime import avoid_host_reads

from .nn.helpers import padded_batch

#: the ATen operators that copy a device value to the host
SYNCS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default"}


class _SyncCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += str(func) in SYNCS
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self._tolist = torch.Tensor.tolist
        count = self

        def tolist(t):  # reads a CPU tensor without an ATen operator
            count.n += 1
            return count._tolist(t)

        torch.Tensor.tolist = tolist
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Tensor.tolist = self._tolist
        return super().__exit__(*exc)


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
    assert syncs(lambda: t.tolist()) == 1


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


def _resnet_step(group, lifts, fill, nbhd, ds_frac, num_layers=2, bn=True):
    pts = padded_batch()

    def step():
        torch.manual_seed(0)
        net = LieResNet(
            5,
            2,
            group=group,
            k=16,
            num_layers=num_layers,
            num_nbhd=nbhd,
            fill=fill,
            ds_frac=ds_frac,
            liftsamples=lifts,
            bn=bn,
        ).double()
        out = net(pts, generator=torch.Generator().manual_seed(3))
        out.square().sum().backward()
        return out, [p.grad for p in net.parameters()]

    return step


CONFIGS = [
    ("T3", 1, 1.0, 16, 1.0),  # full neighbourhoods
    ("T3", 1, 0.5, 4, 1.0),  # searched neighbourhoods
    ("T3", 1, 0.5, 4, 0.5),  # farthest-point subsampled queries
    ("SE3", 2, 0.5, 4, 1.0),  # lifted
]


@pytest.mark.parametrize("group, lifts, fill, nbhd, ds_frac", CONFIGS)
def test_avoiding_host_reads_gives_the_same_values_and_gradients(group, lifts, fill, nbhd, ds_frac):
    step = _resnet_step(group, lifts, fill, nbhd, ds_frac)
    out, grads = step()
    with avoid_host_reads():
        out2, grads2 = step()
    assert torch.allclose(out, out2, atol=1e-12)
    for a, b in zip(grads, grads2):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("group, lifts, fill, nbhd, ds_frac", CONFIGS)
def test_without_host_reads_a_layer_reads_only_its_shapes(group, lifts, fill, nbhd, ds_frac):
    """Per block: nothing with full neighbourhoods, the search's sizes (one read) with searched ones, and
    with subsampling also the query count and the packing of the new mask; no mask is read to skip a pass."""
    counts = []
    for layers in (1, 3):
        step = _resnet_step(group, lifts, fill, nbhd, ds_frac, num_layers=layers)
        with avoid_host_reads():
            counts.append(syncs(step))
    per_block = (counts[1] - counts[0]) / 2
    assert per_block <= (0 if fill >= 1 else 1 if ds_frac >= 1 else 3), counts


def hamiltonian_step_syncs(num_layers: int, device="cpu") -> int:
    """Host reads of one HLieResNet-SO(2)* RK4 training step (2 steps, 8 evaluations) under
    ``avoid_host_reads``, after a warm-up step."""
    from lieconv.models.baselines import ModelDynamics
    from lieconv.models.hamiltonian import HLieResNet

    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(3, 24, generator=g, dtype=torch.float64).to(device)
    sys_params = (0.5 + torch.rand(3, 6, 2, generator=g, dtype=torch.float64)).to(device)
    ts = (0.01 * torch.arange(3.0, dtype=torch.float64)).to(device)
    torch.manual_seed(0)
    model = ModelDynamics(HLieResNet("SO2*", k=16, num_layers=num_layers), method="rk4").double().to(device)

    def step():
        model(z0, ts, sys_params).square().sum().backward()

    with avoid_host_reads():
        step()
        return syncs(step)


#: the reads of that step: 2 per evaluation (a packing count, the input check) and the entry checks
HAMILTONIAN_STEP_READS = 2 * 8 + 8


def test_a_hamiltonian_step_without_host_reads_reads_two_values_per_evaluation():
    counts = [hamiltonian_step_syncs(layers) for layers in (1, 3)]
    assert counts[0] == counts[1] and counts[0] <= HAMILTONIAN_STEP_READS, counts
