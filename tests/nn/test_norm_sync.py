"""MaskBatchNorm under DDP: with ``sync`` two gloo processes normalise with the global batch's statistics."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from lieconv.nn import LieResNet
from lieconv.nn.norm import MaskBatchNorm
from lieconv.random import ExampleRandom

from .helpers import random_points

B = 4


def _model():
    torch.manual_seed(0)
    return LieResNet(2, 3, group="SE2", k=8, num_layers=2, num_nbhd=4, fill=0.5, liftsamples=2, bn=True).double()


def _points():
    from lieconv.groups import get_group

    pts = random_points(get_group("SE2"), B=B, n=12, n_real=[12, 9, 12, 5])
    return pts


def _step(model, pts, ids):
    model.train()
    out = model(pts, generator=ExampleRandom(3, ids))
    out.sum().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    stats = torch.cat([b.reshape(-1) for n, b in model.named_buffers() if "running" in n])
    return out.detach(), grads, stats


def _worker(rank: int, world: int, init: str, sync: bool, results):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        from lieconv import Points

        pts = _points()
        half = slice(rank * B // world, (rank + 1) * B // world)
        mine = Points(pts.coords[half], pts.values[half], pts.mask[half])
        model = MaskBatchNorm.convert_sync(_model(), sync)
        out, grads, stats = _step(model, mine, torch.arange(B)[half])
        dist.all_reduce(grads)  # what DDP does (as a sum)
        results[rank] = (out, grads, stats)
    finally:
        dist.destroy_process_group()


def _two_processes(tmp_path, sync: bool):
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        init = f"file://{tmp_path / ('pg-sync' if sync else 'pg')}"
        procs = [ctx.Process(target=_worker, args=(r, 2, init, sync, results)) for r in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        return dict(results)


def test_synced_mask_batch_norm_in_two_processes_matches_one_process(tmp_path):
    out1, grads1, stats1 = _step(_model(), _points(), torch.arange(B))
    two = _two_processes(tmp_path, sync=True)
    out2 = torch.cat([two[0][0], two[1][0]])
    torch.testing.assert_close(out2, out1, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(two[0][1], grads1, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(two[0][2], stats1, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(two[1][2], stats1, rtol=1e-9, atol=1e-10)


def test_convert_sync_sets_every_mask_batch_norm():
    model = MaskBatchNorm.convert_sync(_model())
    norms = [m for m in model.modules() if isinstance(m, MaskBatchNorm)]
    assert norms and all(m.sync for m in norms)
    # without a process group, sync changes nothing
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    mask = torch.ones(2, 5, dtype=torch.bool)
    a, b = MaskBatchNorm(3).double(), MaskBatchNorm(3).double()
    b.sync = True
    torch.testing.assert_close(a(x, mask), b(x, mask))


@pytest.mark.parametrize("masked", [False, True])
def test_masked_moments_match_autograd_sums_twice_differentiable(masked):
    from lieconv.nn.norm import masked_moments

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = (torch.rand(3, 5, 1, generator=g) > 0.3).double() if masked else None
    xw = x if w is None else x * w
    ref = (xw.sum((0, 1)), (xw * x).sum((0, 1)))
    got = masked_moments(x, w)
    for a, b in zip(got, ref):
        assert torch.allclose(a, b, atol=1e-12)
    g1, g2 = torch.randn(4, dtype=torch.float64, generator=g), torch.randn(4, dtype=torch.float64, generator=g)
    want = torch.autograd.grad(ref, x, (g1, g2))[0]
    assert torch.allclose(torch.autograd.grad(got, x, (g1, g2))[0], want, atol=1e-12)
    first = torch.autograd.grad(masked_moments(x, w)[0], x, g1)[0]  # only S1 used: g2 is None
    assert torch.allclose(first, torch.autograd.grad((x if w is None else x * w).sum((0, 1)), x, g1)[0], atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: masked_moments(t, w), (x,))
    assert torch.autograd.gradgradcheck(lambda t: masked_moments(t, w), (x,))
    x32 = x.detach().float()  # float32 inputs are accumulated in float64
    assert masked_moments(x32, None)[1].dtype == torch.float64
