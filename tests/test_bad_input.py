"""Bad input raises ValueError naming the argument, before any computation."""

from __future__ import annotations

import pytest
import torch

from lieconv import Points
from lieconv.groups import GROUPS, get_group
from lieconv.nn import LieConv, LieResNet


def net(group="T2", **kw):
    return LieResNet(2, 3, group=group, k=8, num_layers=1, num_nbhd=4, **kw).double()


def pts(B=2, n=5, D=2):
    return Points.from_coords(torch.randn(B, n, D, dtype=torch.float64), torch.randn(B, n, 2, dtype=torch.float64))


def test_nan_and_inf_coordinates():
    p = pts()
    p.coords[1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"coords.*NaN or inf.*batch 1, point 3"):
        net()(p)
    p.coords[1, 3, 0] = float("inf")
    with pytest.raises(ValueError, match="coords"):
        net()(p)


def test_wrong_rank():
    p = pts()
    with pytest.raises(ValueError, match=r"coords.*\(B, n, D\)"):
        net()(p.replace(coords=p.coords[0]))


def test_point_dimension_the_group_does_not_act_on():
    name = "SE2" if "SE2" in GROUPS else "T2"
    with pytest.raises(ValueError, match=r"coords: expected points of dimension 2.*got points of dimension 3"):
        net(name)(pts(D=3))


def test_mask_shape_and_dtype():
    p = pts()
    with pytest.raises(ValueError, match=r"mask.*shape"):
        net()(p.replace(mask=p.mask[:, :3]))
    with pytest.raises(ValueError, match=r"mask.*torch.bool"):
        net()(p.replace(mask=p.mask.float()))


def test_values_shape():
    p = pts()
    with pytest.raises(ValueError, match="values"):
        net()(p.replace(values=p.values[:, :4]))
    with pytest.raises(ValueError, match="values"):
        net()(p.replace(values=torch.randn(2, 5, 3, dtype=torch.float64)))


def test_unknown_group_lists_choices():
    with pytest.raises(ValueError, match=r"unknown group 'SE4'.*choose from.*T2"):
        get_group("SE4")
    with pytest.raises(ValueError, match="group"):
        net("nope")


def test_num_samples_for_trivial_stabilizer():
    with pytest.raises(ValueError, match=r"num_samples.*trivial stabilizer"):
        net("T2", liftsamples=2)


def test_bad_layer_options():
    g = get_group("T2")
    with pytest.raises(ValueError, match="fill"):
        LieConv(4, 4, group=g, fill=0)
    with pytest.raises(ValueError, match="ds_frac"):
        LieConv(4, 4, group=g, ds_frac=1.5)
    with pytest.raises(ValueError, match="group"):
        LieConv(4, 4, group=type(g))
    with pytest.raises(ValueError, match="k"):
        LieResNet(2, 3, group=g, k=[8, 8, 8], num_layers=1)


def test_nan_values_at_real_points():
    p = pts()
    p.values[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"values.*NaN or inf at a real point.*batch 0, point 2"):
        net()(p)
    p.mask[0, 2] = False  # the same NaN in padding is fine
    assert torch.isfinite(net()(p)).all()
