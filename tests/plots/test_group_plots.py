"""Lifting / neighbourhood figures: the geometry they show, and that the PNGs are written."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from lieconv.groups import get_group
from lieconv.plots import groups as pg


def _digit():
    img = torch.zeros(28, 28, dtype=torch.float64)
    img[6:22, 12:15] = 1.0  # a bar ...
    img[6:9, 8:20] = 1.0  # ... with a top: a "T"
    return img


def test_transform_image_matches_point_map():
    coords, crop = pg.crop_points()
    assert coords.shape == (648, 2)
    img = torch.zeros(28, 28, dtype=torch.float64)
    img[5, 20] = 1.0
    point = coords[pg.nearest_pixel(torch.tensor([5 * 28 / 27 - 14, 20 * 28 / 27 - 14]))]
    for kind, amount in (("rotation", 90.0), ("translation", (2.0, -3.0)), ("identity", None)):
        A, b = pg.transform_matrix(kind, amount)
        out = pg.transform_image(img, A, b)
        hot = int(out.reshape(-1)[crop].argmax())
        assert hot == pg.nearest_pixel(A @ point + b)
        assert out.max() == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="kind"):
        pg.transform_matrix("shear", 1)
    with pytest.raises(ValueError, match="image"):
        pg.transform_image(torch.zeros(27, 28), *pg.transform_matrix("identity", None))


def test_neighbourhood_sizes():
    ball, drawn = pg.neighbourhood_weights(get_group("T2"), None, 100, fill=0.1, nbhd=25)
    assert int(ball.sum()) == math.ceil(0.1 * 648) and int(drawn.sum()) == 25
    assert bool(((drawn > 0) <= (ball > 0)).all())  # drawn from the ball
    ball2, drawn2 = pg.neighbourhood_weights(get_group("SE2"), None, 100, fill=0.1, nbhd=25, liftsamples=3)
    assert ball2.sum() == pytest.approx(math.ceil(0.1 * 648 * 3) / 3)
    assert drawn2.sum() == pytest.approx(25.0)


@pytest.mark.parametrize("group", ["SO2", "RxSO2", "T2"])
def test_neighbourhood_rotates_with_the_grid(group):
    """A 90° rotation maps the pixel grid onto itself; the rotated query's ball is the rotated ball."""
    coords, _ = pg.crop_points()
    A, b = pg.transform_matrix("rotation", 90.0)
    perm = torch.tensor([pg.nearest_pixel(A @ c, coords) for c in coords])
    q = pg.nearest_pixel(torch.tensor([4.0, 7.0]))
    ball, _ = pg.neighbourhood_weights(get_group(group), None, q, fill=0.1)
    ball_rot, _ = pg.neighbourhood_weights(get_group(group), None, int(perm[q]), fill=0.1)
    moved = torch.zeros_like(ball)
    moved[perm] = ball
    assert torch.equal(moved, ball_rot)


def test_translation_breaks_so2_ball():
    """SO(2) is not translation-equivariant: a shifted query has a differently shaped ball."""
    coords, _ = pg.crop_points()
    q, q2 = pg.nearest_pixel(torch.tensor([2.0, 2.0])), pg.nearest_pixel(torch.tensor([2.0 + 28 / 27 * 4, 2.0]))
    shape1 = coords[pg.neighbourhood_weights(get_group("SO2"), None, q)[0] > 0] - coords[q]
    shape2 = coords[pg.neighbourhood_weights(get_group("SO2"), None, q2)[0] > 0] - coords[q2]
    assert shape1.shape != shape2.shape or not torch.allclose(shape1, shape2)


def test_plots_write_pngs(tmp_path):
    img = _digit()
    p1 = pg.plot_lifting(img, ["T2", "SO2", "SE2"], tmp_path / "lift.png", se2_samples=2)
    p2 = pg.plot_neighbourhoods(img, "RxSO2", tmp_path / "nb.png")
    for p in (p1, p2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_command(tmp_path, capsys):
    from lieconv.tasks import rotmnist as rm

    np.save(tmp_path / "digit.npy", _digit().numpy())
    parser = argparse.ArgumentParser()
    rm.add_figures_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path / "figs"), "--groups", "T2", "SE2", "--image", str(tmp_path / "digit.npy")]
    )
    assert rm.run_figures(args) == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["lifting.png", "neighbourhoods.png", "neighbourhoods_SE2.png", "neighbourhoods_T2.png"]
    assert "wrote" in capsys.readouterr().out
    np.save(tmp_path / "bad.npy", np.zeros((28, 27), dtype=np.float32))
    args.image = str(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="--image: .*bad.npy.*28, 28"):
        rm.run_figures(args)
    args.image = str(tmp_path / "none.npy")
    with pytest.raises(ValueError, match="--image: .*does not exist"):
        rm.run_figures(args)
