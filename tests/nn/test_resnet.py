"""LieResNet behaviour: padding, empty clouds, batch sizes, copies, the fixed-grid fast path."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from lieconv import Points
from lieconv.groups import get_group
from lieconv.lifting import lift
from lieconv.nn import LieResNet

from .helpers import random_points


def gen(seed=5):
    return torch.Generator().manual_seed(seed)


def net_for(group, **kw):
    torch.manual_seed(0)
    opts = dict(k=16, num_layers=2, num_nbhd=6, fill=0.5, ds_frac=0.6, liftsamples=1)
    opts.update(kw)
    return LieResNet(2, 3, group=group, **opts).double()


@pytest.mark.parametrize("training", [True, False])
def test_masked_padding_changes_no_real_output(training):
    group = get_group("T2")
    net = net_for(group).train(training)
    pts = random_points(group, B=2, n=20, n_real=[20, 13])
    pad = 7
    noise = torch.randn(2, pad, 2, dtype=torch.float64) * 50
    padded = Points(
        torch.cat([pts.coords, noise], 1),
        torch.cat([pts.values, noise], 1),
        torch.cat([pts.mask, torch.zeros(2, pad, dtype=torch.bool)], 1),
    )
    torch.testing.assert_close(net(pts, generator=gen()), net(padded, generator=gen()), rtol=0, atol=1e-12)


def test_all_masked_cloud_gives_zeros_not_nan():
    group = get_group("T2")
    net = net_for(group)
    pts = random_points(group, B=3, n=10, n_real=[10, 0, 4])
    out = net(pts, generator=gen())
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros(3, dtype=torch.float64))
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    empty = random_points(group, B=2, n=6, n_real=[0, 0])
    assert torch.equal(net(empty, generator=gen()), torch.zeros(2, 3, dtype=torch.float64))


def test_batch_size_can_change_between_calls():
    group = get_group("T2")
    net = net_for(group)
    assert net(random_points(group, B=4), generator=gen()).shape == (4, 3)
    assert net(random_points(group, B=3, n=30), generator=gen()).shape == (3, 3)


def test_deepcopy_and_state_dict_round_trip():
    group = get_group("T2")
    net = net_for(group)
    pts = random_points(group)
    net(pts, generator=gen())  # update the batch-norm statistics once
    net.eval()
    ref = net(pts, generator=gen())
    torch.testing.assert_close(copy.deepcopy(net)(pts, generator=gen()), ref, rtol=0, atol=0)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    other = net_for(group).eval()
    other.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    torch.testing.assert_close(other(pts, generator=gen()), ref, rtol=0, atol=0)


@pytest.mark.parametrize("full", [False, True])
def test_conv_weight_is_read_in_place_and_any_layout_loads(full):
    """LieConv keeps W transposed in memory (the point features read a view of it); a state dict
    whose W is contiguous (older checkpoints, or one made so) loads to the same outputs, and a
    contiguous W in the module itself still gives them (by a copy).  Searched neighbourhoods (the
    gathered product with Wᵀ) and full ones (the point features)."""
    group = get_group("T2")
    opts = dict(num_nbhd=40, fill=1.0, ds_frac=1.0) if full else {}
    net = net_for(group, **opts).eval()
    pts = random_points(group)
    ref = net(pts, generator=gen())
    conv = next(m for m in net.modules() if hasattr(m, "_feature_weight"))
    assert conv._feature_weight().data_ptr() == conv.linear.weight.data_ptr()
    assert conv.covers_all(pts.coords.shape[1]) == full
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    other = net_for(group, **opts).eval()
    other.load_state_dict(state)
    torch.testing.assert_close(other(pts, generator=gen()), ref, rtol=0, atol=0)
    for m in other.modules():
        if hasattr(m, "_feature_weight"):
            m.linear.weight = torch.nn.Parameter(m.linear.weight.detach().contiguous())
    torch.testing.assert_close(other(pts, generator=gen()), ref, rtol=1e-12, atol=1e-12)


def grid_points(B, dtype=torch.float64):
    ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    coords = torch.stack([xs, ys], -1).reshape(1, 36, 2).to(dtype)
    coords = coords + 0.01 * torch.randn(1, 36, 2, generator=gen(9), dtype=dtype)  # off-grid: no exact ties
    values = torch.randn(B, 36, 2, generator=gen(11), dtype=dtype)
    mask = torch.ones(1, 36, dtype=torch.bool)
    mask[0, :3] = False
    return Points(coords.expand(B, 36, 2), values, mask.expand(B, 36))


@pytest.mark.parametrize("group_name", ["T2", "Trivial2"])
@pytest.mark.parametrize("bn", [False, True])
def test_fixed_grid_path_equals_per_example_path(group_name, bn):
    """Shared geometry (one lift, one selection, one kernel for the batch) gives exactly what each
    example gives on its own with the same draws."""
    group = get_group(group_name)
    net = net_for(group, bn=bn).eval()
    pts = grid_points(4)
    shared = lift(pts, group, 1, generator=gen(1))
    assert shared.shared_geometry and shared.elems.shape[0] == 1
    fast = net(shared, generator=gen(2))
    for b in range(4):
        one = Points(pts.coords[b : b + 1], pts.values[b : b + 1], pts.mask[b : b + 1])
        torch.testing.assert_close(
            net(lift(one, group, 1, generator=gen(1)), generator=gen(2)), fast[b : b + 1], rtol=1e-12, atol=1e-12
        )


def test_fixed_grid_path_matches_unshared_batch_in_training_mode():
    """With nearest-neighbour selection (no draws) the shared path equals the per-example path on
    the whole batch, batch-norm statistics included."""
    group = get_group("T2")
    net = net_for(group, knn=True)
    pts = grid_points(3)
    fast = net(lift(pts, group, shared=True))
    slow = net(lift(pts, group, shared=False))
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)


def test_fixed_grid_draws_are_redrawn_every_call():
    group = get_group("T2")
    net = net_for(group)
    pts = grid_points(3)
    assert not torch.allclose(net(pts), net(pts))  # no frozen neighbourhoods across steps


def test_padding_that_lifts_to_non_finite_elements_is_harmless():
    """Zeros padding a cloud for RxSQ (whose lift takes log of the coordinates) and NaN values in
    the padding change nothing: masked pairs never reach the kernel or the sums."""
    group = get_group("RxSQ")
    net = net_for(group).eval()
    pts = random_points(group, B=2, n=12, n_real=[12, 8])
    coords, values = pts.coords.clone(), pts.values.clone()
    coords[1, 8:] = 0.0
    values[1, 8:] = float("nan")
    out = net(pts.replace(coords=coords, values=values), generator=gen())
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, net(pts, generator=gen()), rtol=0, atol=1e-12)
