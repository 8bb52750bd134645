"""ImageLieResNet and MoleculeLieResNet: shapes, schedule, invariances, bad input."""

from __future__ import annotations

import pytest
import torch

from lieconv import Points
from lieconv.groups import get_group
from lieconv.models.image import ImageLieResNet
from lieconv.models.molecule import MoleculeLieResNet
from lieconv.testing import assert_equivariant


def small_image_net(group="T2", **kw):
    torch.manual_seed(0)
    opts = dict(k=16, total_ds=0.1, fill=0.1, nbhd=5, num_layers=3)
    opts.update(kw)
    return ImageLieResNet(1, 10, group=group, **opts)


def test_paper_grid_has_648_points_and_schedule():
    assert ImageLieResNet.num_points() == 648
    net = ImageLieResNet(1, 10, group="T2", k=128, total_ds=0.1, fill=0.1, nbhd=25, num_layers=6)
    convs = [b.conv for b in net.net.blocks]
    s = 0.1 ** (1 / 6)
    assert [b.chin for b in net.net.blocks] == [int(128 / s ** (i / 2)) for i in range(6)]
    assert convs[0].fill == pytest.approx(0.1) and convs[5].fill == pytest.approx(0.1 / s**5)
    assert all(c.ds_frac == pytest.approx(s) for c in convs)


def test_image_net_batches_of_any_size_and_no_frozen_state():
    net = small_image_net()
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert net(torch.rand(2, 28, 28)).shape == (2, 10)
    assert not any(name.startswith("_cache") for name, _ in net.named_buffers())


def test_image_net_bad_input():
    net = small_image_net()
    with pytest.raises(ValueError, match=r"images: expected shape \(B, 1, 28, 28\)"):
        net(torch.rand(2, 1, 27, 28))
    with pytest.raises(ValueError, match="images: expected a floating tensor"):
        net(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_molecule_net_translation_invariant_and_masks():
    torch.manual_seed(0)
    model = MoleculeLieResNet(15, group="T3", k=16, num_layers=2, nbhd=5, fill=1.0).double()
    B, n = 3, 7
    pos = torch.randn(B, n, 3, dtype=torch.float64)
    feat = torch.randn(B, n, 15, dtype=torch.float64)
    mask = torch.ones(B, n, dtype=torch.bool)
    mask[2, 4:] = False
    pts = Points(pos, feat, mask)
    fn = lambda p, generator: model(p.coords, p.values, p.mask, generator=generator)  # noqa: E731
    assert_equivariant(fn, get_group("T3"), pts, transform="points")
    assert fn(pts, torch.Generator().manual_seed(0)).shape == (B,)


def test_molecule_net_centering_makes_so3_model_translation_invariant():
    if "SO3" not in __import__("lieconv").GROUPS:
        pytest.skip("SO3 not registered")
    torch.manual_seed(0)
    model = MoleculeLieResNet(15, group="SO3", k=16, num_layers=1, nbhd=5, center=True).double()
    pts = Points.from_coords(torch.randn(2, 6, 3, dtype=torch.float64), torch.randn(2, 6, 15, dtype=torch.float64))
    fn = lambda p, generator: model(p.coords, p.values, p.mask, generator=generator)  # noqa: E731
    assert_equivariant(fn, get_group("T3"), pts, transform="points")


def test_molecule_net_rejects_planar_group():
    with pytest.raises(ValueError, match="group: expected a group acting on R\\^3"):
        MoleculeLieResNet(15, group="T2")


def test_image_net_on_clouds_of_its_own_takes_the_per_example_path():
    """``model.net`` on clouds that differ per example must lift each at its own points (a forced
    shared geometry would silently use the first example's points for all)."""
    torch.manual_seed(0)
    model = ImageLieResNet(1, 3, group="T2", k=16, nbhd=6, num_layers=2, knn=True).double().eval()
    images = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    grid = model.to_points(images)
    coords = grid.coords + 0.3 * torch.randn(grid.coords.shape, dtype=torch.float64)
    pts = Points(coords, grid.values, torch.ones(3, coords.shape[1], dtype=torch.bool))
    batch = model.net(pts)
    alone = torch.cat([model.net(Points(coords[i : i + 1], grid.values[i : i + 1], pts.mask[:1])) for i in range(3)])
    torch.testing.assert_close(batch, alone, rtol=1e-9, atol=1e-9)
    # images keep the fixed-grid path, a batch of one included, and match the per-example path
    one = torch.cat([model(images[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(model(images), one, rtol=1e-9, atol=1e-9)


def test_lift_refuses_a_forced_shared_geometry_on_different_clouds():
    from lieconv.lifting import lift

    pts = Points.from_coords(torch.randn(2, 5, 2), torch.randn(2, 5, 1))
    with pytest.raises(ValueError, match="shared"):
        lift(pts, get_group("T2"), shared=True)
