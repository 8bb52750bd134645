"""Named errors of the Python API (each of these crashed or was silently accepted before)."""

from __future__ import annotations

import pytest
import torch

from lieconv import Points
from lieconv.groups import get_group
from lieconv.lifting import lift
from lieconv.nn import LieConv, LieResNet
from lieconv.testing import assert_equivariant


def _net(**kw):
    return LieResNet(1, 2, group=kw.pop("group", "SE2"), **{"k": 16, "num_layers": 1, **kw})


@pytest.mark.parametrize(
    "kw, error, name",
    [
        ({"k": -1}, ValueError, "k"),
        ({"k": 16.5}, TypeError, "k"),
        ({"num_layers": -1}, ValueError, "num_layers"),
        ({"fill": "0.5"}, TypeError, "fill"),
        ({"num_nbhd": 2.7}, TypeError, "num_nbhd"),
        ({"num_nbhd": "8"}, TypeError, "num_nbhd"),
        ({"ds_frac": 0}, ValueError, "ds_frac"),
    ],
)
def test_bad_model_options_are_named(kw, error, name):
    with pytest.raises(error, match=rf"^{name}: "):
        _net(**kw)


@pytest.mark.parametrize(
    "kw, name", [({"num_nbhd": 2.7}, "num_nbhd"), ({"num_nbhd": "8"}, "num_nbhd"), ({"fill": "0.5"}, "fill")]
)
def test_bad_conv_options_are_named(kw, name):
    with pytest.raises(TypeError, match=rf"^{name}: "):
        LieConv(4, 4, group=get_group("SE2"), **kw)


def test_empty_batch_and_missing_values_are_named():
    with pytest.raises(ValueError, match="points.coords: expected at least one example"):
        _net()(Points.from_coords(torch.randn(0, 10, 2)))
    with pytest.raises(TypeError, match="Points.values"):
        Points(torch.randn(2, 10, 2), None, torch.ones(2, 10, dtype=torch.bool))


def test_rxsq_point_outside_its_quadrant_is_named():
    with pytest.raises(ValueError, match="points.coords: RxSQ acts on the open positive quadrant"):
        _net(group="RxSQ")(Points.from_coords(torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])))


def test_lifted_of_another_group_is_refused():
    lifted = lift(Points.from_coords(torch.randn(2, 10, 3)), get_group("SO3"))
    with pytest.raises(ValueError, match="lifted to SO"):
        _net()(lifted)
    with pytest.raises(ValueError, match="lifted to SO"):
        LieConv(1, 4, group=get_group("SE2"))(lifted)
    hand_made = lifted.replace(group=None)  # no group recorded: the element sizes still differ
    with pytest.raises(ValueError, match="do not fit"):
        _net()(hand_made)


def test_assert_equivariant_with_no_trials_is_an_error():
    net = _net().double()
    pts = Points.from_coords(torch.randn(2, 10, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="ntrials"):
        assert_equivariant(net, get_group("SE2"), pts, ntrials=0)
