"""Every path on a GPU: the same values and gradients as on the CPU, equivariance, few host reads.

Runs where ``torch.cuda.is_available()`` (skipped elsewhere, e.g. in CI).  ``LIECONV_TEST_DEVICE``
names another device to run on; ``LIECONV_TEST_DEVICE=cpu`` is a dry run of this module on a machine
without a GPU: the "device" side then runs under ``lieconv.runtime.avoid_host_reads()``, the path a
GPU takes, and is compared with the default CPU path.

Each model runs in float64 with the same draws on both sides (CPU ``torch.Generator`` seeds, which
``lieconv.random`` honours on any device), and its output and parameter gradients must agree.
"""

from __future__ import annotations

import contextlib
import copy
import os

import pytest
import torch

import lieconv.neighbors as nb
from lieconv import LieResNet, Points
from lieconv.groups import get_group
from lieconv.models.baselines import ModelDynamics
from lieconv.models.hamiltonian import HLieResNet
from lieconv.models.image import ImageLieResNet
from lieconv.models.molecule import MoleculeLieResNet
from lieconv.runtime import avoid_host_reads
from lieconv.testing import assert_equivariant

DEVICE = os.environ.get("LIECONV_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(DEVICE is None, reason="no GPU (LIECONV_TEST_DEVICE names a device to run on)")


def _on_device():
    """The context of the device side: on the CPU (a dry run), the GPU's path."""
    return avoid_host_reads() if torch.device(DEVICE).type == "cpu" else contextlib.nullcontext()


def _to(x, dev):
    if isinstance(x, torch.Tensor):
        return x.to(dev)
    if isinstance(x, Points):
        return Points(x.coords.to(dev), x.values.to(dev), x.mask.to(dev))
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, dev) for v in x)
    return x


def _compare(model, inputs, loss, *, draws=True, atol=1e-8):
    """model(*inputs, generator=...) (``draws=False``: model(*inputs)) and its parameter gradients
    on the CPU and on DEVICE agree."""
    results = []
    for dev, ctx in (("cpu", contextlib.nullcontext()), (DEVICE, _on_device())):
        m = copy.deepcopy(model).to(dev)
        kw = {"generator": torch.Generator().manual_seed(3)} if draws else {}
        with ctx:
            out = m(*_to(inputs, dev), **kw)
            loss(out).backward()
        results.append((out.detach().cpu(), [None if p.grad is None else p.grad.cpu() for p in m.parameters()]))
    (a, ga), (b, gb) = results
    assert torch.allclose(a, b, atol=atol, rtol=1e-6), (a - b).abs().max()
    for x, y in zip(ga, gb):
        assert (x is None) == (y is None)
        if x is not None:
            assert torch.allclose(x, y, atol=atol, rtol=1e-6), (x - y).abs().max()


def _padded_clouds(B=3, n=40, dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    coords = torch.randn(B, n, dim, generator=g, dtype=torch.float64)
    values = torch.randn(B, n, 2, generator=g, dtype=torch.float64)
    mask = torch.ones(B, n, dtype=torch.bool)
    mask[-1, n // 2 :] = False
    return Points(coords, values, mask)


@pytest.mark.parametrize(
    "group, lifts, fill, ds_frac",
    [("T3", 1, 1.0, 1.0), ("T3", 1, 0.3, 0.5), ("SE3", 2, 0.3, 0.5), ("SE2", 2, 0.3, 0.5)],
)
def test_lieresnet_on_device_matches_the_cpu(group, lifts, fill, ds_frac):
    torch.manual_seed(0)
    net = LieResNet(2, 3, group=group, k=16, num_layers=2, num_nbhd=8, fill=fill, ds_frac=ds_frac, liftsamples=lifts)
    pts = _padded_clouds(dim=get_group(group).space_dim)
    _compare(net.double(), (pts,), lambda out: out.square().sum())


def test_pruned_farthest_points_and_search_on_device_match_the_cpu(monkeypatch):
    """The cell-list paths (taken for large clouds) on a small one."""
    monkeypatch.setattr(nb, "_FPS_LOOP_POINTS", 16)
    torch.manual_seed(0)
    net = LieResNet(2, 3, group="T3", k=8, num_layers=2, num_nbhd=6, fill=0.05, ds_frac=0.5)
    _compare(net.double(), (_padded_clouds(n=400),), lambda out: out.square().sum())


def test_image_model_fixed_grid_and_per_example_on_device_match_the_cpu():
    torch.manual_seed(0)
    model = ImageLieResNet(1, 10, group="SE2", k=16, total_ds=0.3, fill=0.1, nbhd=8, num_layers=2, liftsamples=2)
    model = model.double()
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _compare(model, (images,), lambda out: out.logsumexp(-1).sum())
    grid = model.to_points(images)
    angle = torch.tensor([0.3, 2.0], dtype=torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    clouds = Points(grid.coords @ rot.transpose(1, 2), grid.values, grid.mask)  # a geometry per example
    _compare(model.net, (clouds,), lambda out: out.logsumexp(-1).sum())


@pytest.mark.parametrize("group, lifts, nbhd, fill", [("T3", 1, 100, 1.0), ("SE3", 2, 6, 0.5)])
def test_molecule_model_on_a_padded_batch_on_device_matches_the_cpu(group, lifts, nbhd, fill):
    torch.manual_seed(0)
    model = MoleculeLieResNet(15, group=group, k=16, num_layers=2, nbhd=nbhd, fill=fill, liftsamples=lifts).double()
    g = torch.Generator().manual_seed(2)
    n = torch.tensor([3, 9, 5, 12])
    mask = torch.arange(12)[None] < n[:, None]  # a third padding: the packed layout on the CPU
    pos = torch.randn(4, 12, 3, generator=g, dtype=torch.float64)
    feat = torch.randn(4, 12, 15, generator=g, dtype=torch.float64)
    _compare(model, (pos, feat, mask), lambda out: out.square().sum())


@pytest.mark.parametrize("method", ["rk4", "leapfrog"])
def test_hamiltonian_training_step_on_device_matches_the_cpu(method):
    torch.manual_seed(0)
    model = ModelDynamics(HLieResNet("SO2*", k=16, num_layers=2), method=method).double()
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(3, 24, generator=g, dtype=torch.float64)
    sys_params = 0.5 + torch.rand(3, 6, 2, generator=g, dtype=torch.float64)
    ts = 0.01 * torch.arange(3.0, dtype=torch.float64)
    _compare(model, (z0, ts, sys_params), lambda out: out.square().sum(), draws=False)  # no neighbourhood draws


@pytest.mark.parametrize("group, lifts", [("T3", 1), ("SE3", 2), ("SE2", 2)])
def test_equivariance_on_device(group, lifts):
    G = get_group(group)
    torch.manual_seed(0)
    net = LieResNet(2, 3, group=G, k=16, num_layers=2, num_nbhd=8, fill=0.3, ds_frac=0.5, liftsamples=lifts)
    net = net.double().to(DEVICE)
    pts = _to(_padded_clouds(dim=G.space_dim), DEVICE)
    with _on_device():
        assert_equivariant(net, G, pts, num_samples=lifts, ntrials=2)


def test_a_hamiltonian_step_on_device_reads_few_values_on_the_host():
    """On the device the masks are not read (``lieconv.runtime.known_all``): an RK4 step reads the
    entry checks and two values per evaluation, however many blocks the network has."""
    from tests.test_host_syncs import HAMILTONIAN_STEP_READS, hamiltonian_step_syncs

    counts = [hamiltonian_step_syncs(layers, DEVICE) for layers in (1, 3)]
    assert counts[0] == counts[1] and counts[0] <= HAMILTONIAN_STEP_READS, counts


def test_training_runs_on_the_device(tmp_path):
    from lieconv.training import fit, load_model
    from tests.training.conftest import TINY

    if torch.device(DEVICE).type == "cpu":
        pytest.skip("the trainer's device option is tested on the CPU elsewhere")
    out = tmp_path / "run"
    fit("toy", overrides=dict(TINY, out=str(out), device=DEVICE), print_lines=False)
    model, _ = load_model(out / "checkpoints" / "last.ckpt")
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_a_springs_rollout_report_runs_on_the_models_device(tmp_path):
    from lieconv.datasets.springs import SpringsDataset
    from lieconv.tasks.springs import rollout_report

    torch.manual_seed(0)
    model = ModelDynamics(HLieResNet("T2", k=8, num_layers=1), method="rk4").double()
    test_set = SpringsDataset("test", size=2, root=tmp_path / "cache", n_steps=30, dtype=torch.float64)
    ref = rollout_report(model, test_set, n_systems=2, n_steps=5)
    with _on_device():
        out = rollout_report(model.to(DEVICE), test_set, n_systems=2, n_steps=5)
    assert out["pred"].device.type == "cpu" and torch.allclose(out["pred"], ref["pred"], atol=1e-10)
