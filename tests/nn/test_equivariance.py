"""Equivariance of the LieConv layer and of LieResNet for every registered group."""

from __future__ import annotations

import pytest
import torch

from lieconv.groups import LieGroup
from lieconv.nn import LieConv, LieResNet
from lieconv.testing import assert_equivariant

from .helpers import GROUP_NAMES, lift_samples, make_group, random_points


def small_resnet(group, *, chin=2, knn=False, ds_frac=0.6, bn=True):
    return LieResNet(
        chin,
        3,
        group=group,
        k=16,
        num_layers=2,
        num_nbhd=6,
        fill=0.5,
        ds_frac=ds_frac,
        liftsamples=lift_samples(group),
        bn=bn,
        knn=knn,
    )


def equivariant_names():
    return [n for n in GROUP_NAMES if not n.startswith("Trivial")]


def smooth_names():
    """Groups with their own ``rel_embed``; for the others it is ``rel_log`` (tests/groups/test_rel_embed.py),
    so ``kernel_input="smooth"`` is the "log" layer that the other tests already cover."""
    return [n for n in equivariant_names() if type(make_group(n)).rel_embed is not LieGroup.rel_embed]


@pytest.mark.parametrize(
    "name,ds_frac,kernel_input",
    [(n, f, "log") for n in equivariant_names() for f in (1.0, 0.5)] + [(n, 0.5, "smooth") for n in smooth_names()],
)
def test_conv_layer_equivariant_float64(name, ds_frac, kernel_input):
    group = make_group(name)
    torch.manual_seed(0)
    conv = LieConv(
        2, 5, group=group, num_nbhd=7, fill=0.4, ds_frac=ds_frac, bn=True, kernel_input=kernel_input
    ).double()
    pts = random_points(group)
    err = assert_equivariant(
        lambda x, generator: conv(x, generator=generator), group, pts, num_samples=lift_samples(group), invariant=False
    )
    assert err <= 1e-9


@pytest.mark.parametrize("name", equivariant_names())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_resnet_invariant(name, dtype):
    group = make_group(name)
    torch.manual_seed(0)
    net = small_resnet(group).to(dtype)
    pts = random_points(group, dtype=dtype, n_real=[24, 17, 9])
    assert_equivariant(net, group, pts, num_samples=lift_samples(group))
    net.eval()
    assert_equivariant(net, group, pts, num_samples=lift_samples(group))


@pytest.mark.parametrize("name", smooth_names())
def test_resnet_smooth_kernel_inputs_invariant_float64(name):
    """kernel_input="smooth" (rel_embed) keeps the network exactly invariant, with full neighbourhoods
    (fill = 1: no search, the dense aggregation) and with Monte-Carlo ones."""
    group = make_group(name)
    for fill in (1.0, 0.5):
        torch.manual_seed(0)
        net = LieResNet(
            2,
            3,
            group=group,
            k=16,
            num_layers=2,
            num_nbhd=24 if fill == 1 else 6,
            fill=fill,
            liftsamples=lift_samples(group),
            kernel_input="smooth",
        ).double()
        assert net.blocks[0].conv.covers_all(24 * lift_samples(group)) == (fill == 1 and lift_samples(group) == 1)
        assert_equivariant(net, group, random_points(group, n_real=[24, 17, 9]), num_samples=lift_samples(group))


@pytest.mark.parametrize("name", equivariant_names())
def test_resnet_per_point_equivariant(name):
    group = make_group(name)
    torch.manual_seed(0)
    net = LieResNet(
        2,
        3,
        group=group,
        k=16,
        num_layers=2,
        num_nbhd=6,
        fill=0.5,
        ds_frac=0.6,
        liftsamples=lift_samples(group),
        pool=False,
    ).double()
    assert_equivariant(net, group, random_points(group), num_samples=lift_samples(group), invariant=False)


@pytest.mark.parametrize("name", [n for n in ("T2", "T3", "SO2", "RxSO2", "Tx", "Ty", "Rx") if n in GROUP_NAMES])
def test_unique_lift_groups_need_no_shared_draws(name):
    """With a unique lift and nearest-neighbour neighbourhoods nothing is random: the model is run on
    the raw points g x with no generator at all."""
    group = make_group(name)
    torch.manual_seed(0)
    net = small_resnet(group, knn=True).double()
    assert_equivariant(lambda x, generator: net(x), group, random_points(group), transform="points")


@pytest.mark.parametrize("name", [n for n in GROUP_NAMES if n.startswith("Trivial")])
def test_trivial_group_is_not_equivariant(name):
    """The check can fail: the Trivial model sees absolute coordinates, so rotating them and
    translating them changes its output.  (Without batch norm: in training mode the kernel's batch
    norm would subtract the batch mean of the coordinates, which makes even Trivial translation
    invariant.)"""
    group = make_group(name)
    torch.manual_seed(0)
    net = small_resnet(group, bn=False).double()
    pts = random_points(group)
    d = group.space_dim
    moved = pts.replace(coords=pts.coords.flip(-1) * torch.linspace(0.5, 2.0, d, dtype=torch.float64) + 0.7)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert not torch.allclose(net(pts, generator=gen()), net(moved, generator=gen()), atol=1e-6)
    from lieconv.groups import get_group

    se = (
        get_group("SE2" if d == 2 else "SE3")
        if ("SE2" in GROUP_NAMES and d == 2) or ("SE3" in GROUP_NAMES and d == 3)
        else get_group(f"T{d}")
    )
    with pytest.raises(AssertionError, match="not invariant"):
        assert_equivariant(lambda x, generator: net(x, generator=generator), se, pts, transform="points")


@pytest.mark.parametrize("name", equivariant_names())
def test_bottleneck_block_and_pool_equivariant(name):
    """The block (with farthest-point downsampling and its shortcut) is equivariant per point and
    global pooling of its output is invariant."""
    from lieconv.nn import BottleneckBlock, GlobalPool

    group = make_group(name)
    torch.manual_seed(0)
    block = BottleneckBlock(8, 12, group=group, num_nbhd=6, fill=0.5, ds_frac=0.5, bn=True).double()
    pts = random_points(group, c=8)
    n = lift_samples(group)
    assert_equivariant(lambda x, generator: block(x, generator), group, pts, num_samples=n, invariant=False)
    pool = GlobalPool()
    assert_equivariant(lambda x, generator: pool(block(x, generator)), group, pts, num_samples=n)
