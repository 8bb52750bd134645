"""Lifting and neighbourhood figures for images (paper Figures 2, 3 and 10).

Everything is computed with the library's own code path: the pixels inside the radius-15 crop of
``lieconv.models.image.pixel_grid`` (the 648 points ``ImageLieResNet`` sees), ``lieconv.lifting.lift``
and the neighbourhood selection of ``lieconv.nn.LieConv.select`` with the first layer's ``fill`` and ``nbhd``.

* :func:`plot_lifting` (Figure 2): the digit's pixels in the input space and their lifted
  embeddings ``[u, q]`` per group (u drawn in the group's coordinates, e.g. (θ, r) for SO(2),
  (θ, log r) for R*×SO(2), (θ, t) for SE(2), where the lift is multi-valued).
* :func:`neighbourhood_weights`: for one query pixel, which pixels enter the convolution (computed by
  ``lieconv.neighbors.neighborhood_indices``, what ``LieConv.select`` runs, for the query's rows): the ball of
  the ``fill`` fraction of nearest lifted points (the region the Monte-Carlo sample is drawn from)
  and the ``nbhd`` points drawn.  For SE(2) the pixel's several lift samples each have their
  own ball; the weights are the fraction of (query sample, pixel sample) pairs in a ball, i.e. the
  distribution over lift samples that the paper draws.
* :func:`plot_neighbourhoods` (Figure 3 for R*×SO(2), one panel of Figure 10 per group): rows are
  translations, rotations and scalings of the image (resampled on the fixed pixel grid), columns
  the original and two amounts; the query is the pixel nearest to the transformed query point.
  For a group that contains the transformation the coloured region moves with the digit.
* :func:`plot_neighbourhood_overview`: one figure, groups as columns, one amount of each
  transformation as rows.

Coordinates: a pixel's point is (row, column) centred on the image (``pixel_grid``); figures show
column to the right and row downwards, so images appear upright.  matplotlib is imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ._figure import pyplot, save_figure

__all__ = [
    "GROUP_LABELS",
    "TRANSFORMS",
    "crop_points",
    "transform_matrix",
    "transform_image",
    "nearest_pixel",
    "choose_query",
    "lifted_chart",
    "neighbourhood_weights",
    "plot_lifting",
    "plot_neighbourhoods",
    "plot_neighbourhood_overview",
]

#: Display names (as in the paper's tables).
GROUP_LABELS = {
    "Trivial2": "Trivial",
    "T2": "T(2)",
    "Tx": "T(1)x",
    "Ty": "T(1)y",
    "SO2": "SO(2)",
    "RxSO2": "R*×SO(2)",
    "SE2": "SE(2)",
}

#: Transformations of the neighbourhood figures: ``{kind: (amount 1, amount 2)}``: a shift in pixels
#: (rows, columns), an angle in degrees, a scale factor.
TRANSFORMS = {"translation": ((3.0, -4.0), (-4.0, 5.0)), "rotation": (60.0, 150.0), "scaling": (0.75, 1.3)}

_SIDE, _RADIUS = 28, 15.0


def _check_image(image) -> Tensor:
    image = torch.as_tensor(image)
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    if not image.is_floating_point() or tuple(image.shape) != (_SIDE, _SIDE):
        raise ValueError(
            f"image: expected a float (28, 28) or (1, 28, 28) digit with pixels in [0, 1], "
            f"got {image.dtype} {tuple(image.shape)}"
        )
    return image.to(torch.float64)


def crop_points() -> tuple[Tensor, Tensor]:
    """The model's points: coords (648, 2) float64 (row, column) and the crop mask (784,) over the image."""
    from ..models.image import pixel_grid

    coords, crop = pixel_grid(_SIDE, _SIDE, _RADIUS)
    return coords[crop].to(torch.float64), crop


def transform_matrix(kind: str, amount) -> tuple[Tensor, Tensor]:
    """``(A (2, 2), b (2,))`` of the map x -> A x + b on pixel coordinates (row, column).

    ``kind``: "identity", "translation" (amount = (rows, columns) in pixels), "rotation" (degrees,
    counter-clockwise as displayed) or "scaling" (factor about the centre).
    """
    step = _SIDE / (_SIDE - 1)  # pixel_grid's spacing
    A, b = torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    if kind == "translation":
        b = torch.tensor([float(amount[0]), float(amount[1])], dtype=torch.float64) * step
    elif kind == "rotation":
        t = math.radians(float(amount))
        # counter-clockwise on screen (column right, row down): row' = c row - s col, col' = s row + c col
        A = torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], dtype=torch.float64)
    elif kind == "scaling":
        A = A * float(amount)
    elif kind != "identity":
        raise ValueError(f"kind: unknown transformation {kind!r}; choose from identity, {', '.join(TRANSFORMS)}")
    return A, b


def transform_image(image: Tensor, A: Tensor, b: Tensor) -> Tensor:
    """Resample a (28, 28) image under x -> A x + b (bilinear, zero padding), on the same pixel grid."""
    image = _check_image(image)
    half = _SIDE / 2  # pixel_grid runs over [-14, 14]: normalised = coord / 14
    Ainv = torch.linalg.inv(A)
    src_lin, src_off = Ainv, -Ainv @ b / half  # output p (normalised) samples input Ainv (p - b)
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)  # (row, col) <-> (x=col, y=row)
    theta = torch.cat([swap @ src_lin @ swap, (swap @ src_off)[:, None]], 1)[None]
    grid = F.affine_grid(theta, [1, 1, _SIDE, _SIDE], align_corners=True)
    out = F.grid_sample(image[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[0, 0]


def nearest_pixel(point: Tensor, coords: Tensor | None = None) -> int:
    """Index (among the crop points) of the pixel nearest to ``point`` (row, column)."""
    coords = crop_points()[0] if coords is None else coords
    return int((coords - torch.as_tensor(point, dtype=coords.dtype)).norm(dim=-1).argmin())


def choose_query(image: Tensor, radius: float = 7.0) -> Tensor:
    """A point on the digit's stroke away from the centre: the bright pixel nearest to ``radius``."""
    image = _check_image(image)
    coords, crop = crop_points()
    values = image.reshape(-1)[crop]
    bright = values > 0.5 * float(values.max())
    score = (coords.norm(dim=-1) - radius).abs() + 1e3 * (~bright).to(torch.float64)
    return coords[int(score.argmin())].clone()


def lifted_chart(group, elems: Tensor, orbits: Tensor) -> Tensor:
    """Coordinates of lifted points ``[u, q]``: u in the group's own parameters when they are
    coordinates of the group (SO(2): θ; R*×SO(2): (log r, θ); SE(2): (θ, t); T(2): t), else log u."""
    if group.elem_dim == group.lie_dim:
        u = elems
    else:
        u = group.log(group.elems_to_matrix(elems))
    return torch.cat([u, orbits], -1)


# (chart index shown on x, sign, chart index on y, sign, x label, y label) per group
_CHART_AXES = {
    "Trivial2": (1, 1, 0, -1, "q₂ (column)", "−q₁ (row)"),
    "T2": (1, 1, 0, -1, "t₂ (column)", "−t₁ (row)"),
    "Tx": (1, 1, 0, -1, "q = column", "−a (row translation)"),
    "Ty": (0, 1, 1, -1, "a (column translation)", "−q = −row"),
    "SO2": (0, 1, 1, 1, "u: angle θ", "q: radius r"),
    "RxSO2": (1, 1, 0, 1, "angle θ", "log r"),
}


def _group(name: str, alpha: float):
    from ..groups import get_group

    return get_group(name, alpha=alpha)


def neighbourhood_weights(
    group, image: Tensor | None, query: int, *, fill: float = 0.1, nbhd: int = 25, liftsamples: int = 1, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Which crop pixels enter the convolution at pixel ``query``.

    Parameters
    ----------
    group : LieGroup
    image : (28, 28) tensor or None
        Pixel values (only carried along; the selection depends on the coordinates alone).
    query : int
        Index of the query pixel among the crop points.
    fill, nbhd : float, int
        The first LieConv layer's neighbourhood fraction and Monte-Carlo sample size.
    liftsamples : int
        Lift samples per pixel (> 1 only for SE(2)).
    seed : int
        Seed of the stabilizer draws and of the Monte-Carlo sample.

    Returns
    -------
    ball : (648,) float64
        Fraction of (query lift sample, pixel lift sample) pairs with the pixel in the query sample's
        ball (0/1 for groups with a unique lift).
    drawn : (648,) float64
        How often the pixel was among the ``nbhd`` points drawn, per query lift sample.
    """
    from ..data import Points
    from ..lifting import lift
    from ..neighbors import neighborhood_indices

    coords, crop = crop_points()
    n = coords.shape[0]
    values = torch.zeros(n, dtype=torch.float64) if image is None else _check_image(image).reshape(-1)[crop]
    gen = torch.Generator().manual_seed(seed)
    lifted = lift(
        Points(coords[None], values[None, :, None], torch.ones(1, n, dtype=torch.bool)),
        group,
        liftsamples,
        generator=gen,
    )
    N = lifted.num_points
    rows = torch.arange(query * liftsamples, (query + 1) * liftsamples)
    # what LieConv.select does for these query rows (ds_frac = 1: the queries are the lifted points)
    q_args = (
        lifted.elems[:, rows],
        lifted.orbits[:, rows],
        lifted.mask[:, rows],
        lifted.elems,
        lifted.orbits,
        lifted.mask,
    )
    out = []
    for k, knn in ((max(1, math.ceil(fill * N)), True), (nbhd, False)):  # the ball, then the Monte-Carlo draw
        idx, mask = neighborhood_indices(group, *q_args, num_nbhd=k, fill=fill, knn=knn, generator=gen)
        out.append(torch.bincount(idx[0][mask[0]] // liftsamples, minlength=n).to(torch.float64) / liftsamples)
    ball, drawn = out
    return ball / liftsamples, drawn


# ------------------------------------------------------------------------------------------- figures


def plot_lifting(
    image: Tensor,
    groups: Sequence[str],
    path,
    *,
    query: Tensor | None = None,
    alpha: float = 0.2,
    se2_samples: int = 4,
    seed: int = 0,
) -> Path:
    """Figure 2: the digit in the input space X and its lift ``[u, q]`` to each group.

    The pixel ``query`` (default: :func:`choose_query`) and all of its lifts are marked in red.
    For SE(2) each pixel has ``se2_samples`` lifts (a 3-D panel over (column, row, θ)).
    """
    from ..data import Points
    from ..lifting import lift

    plt = pyplot()
    image = _check_image(image)
    coords, crop = crop_points()
    values = image.reshape(-1)[crop]
    q_idx = nearest_pixel(choose_query(image) if query is None else query, coords)
    fig = plt.figure(figsize=(3.3 * (len(groups) + 1), 3.4))
    ax = fig.add_subplot(1, len(groups) + 1, 1)
    ax.scatter(coords[:, 1], -coords[:, 0], c=values, cmap="gray_r", s=9, vmin=0, vmax=1)
    ax.scatter([coords[q_idx, 1]], [-coords[q_idx, 0]], c="red", s=40, marker="o")
    ax.set(title="(a) input X (648 pixels)", xlabel="column", ylabel="−row", aspect="equal")
    gen = torch.Generator().manual_seed(seed)
    for i, name in enumerate(groups):
        group = _group(name, alpha)
        ns = se2_samples if group.stabilizer_dim > 0 else 1
        pts = Points(coords[None], values[None, :, None], torch.ones(1, len(coords), dtype=torch.bool))
        lifted = lift(pts, group, ns, generator=gen)
        chart = lifted_chart(group, lifted.elems[0], lifted.orbits[0])
        vals = lifted.values[0, :, 0]
        mine = torch.arange(q_idx * ns, (q_idx + 1) * ns)
        title = f"({chr(ord('b') + i)}) {GROUP_LABELS.get(name, name)}"
        if chart.shape[-1] == 3:  # SE(2): (θ, t1, t2)
            ax = fig.add_subplot(1, len(groups) + 1, i + 2, projection="3d")
            keep = vals > 0.25
            ax.scatter(
                chart[keep, 2],
                -chart[keep, 1],
                chart[keep, 0],
                c=vals[keep],
                cmap="gray_r",
                s=4,
                vmin=0,
                vmax=1,
                depthshade=False,
            )
            ax.scatter(chart[mine, 2], -chart[mine, 1], chart[mine, 0], c="red", s=30, depthshade=False)
            ax.set(xlabel="t₂ (column)", ylabel="−t₁ (row)", zlabel="θ")
            ax.set_title(f"{title}: {ns} lifts per pixel", fontsize=9)
            continue
        ax = fig.add_subplot(1, len(groups) + 1, i + 2)
        ix, sx, iy, sy, lx, ly = _CHART_AXES.get(name, (0, 1, 1, 1, "coordinate 1", "coordinate 2"))
        ax.scatter(sx * chart[:, ix], sy * chart[:, iy], c=vals, cmap="gray_r", s=9, vmin=0, vmax=1)
        ax.scatter(sx * chart[mine, ix], sy * chart[mine, iy], c="red", s=40)
        ax.set(title=f"{title}: [u, q]", xlabel=lx, ylabel=ly)
    fig.suptitle("Lifting the pixels of a digit to each group (red: one pixel and its lifts)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _draw_panel(ax, image: Tensor, ball: Tensor, drawn: Tensor, query: int, title: str) -> None:
    coords, _ = crop_points()
    e = _SIDE / 2 + _SIDE / (_SIDE - 1) / 2
    ax.imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=1, extent=(-e, e, -e, e), origin="upper")
    on = ball > 0
    w = (ball[on] / ball.max()).clamp(0.15, 1).numpy()
    ax.scatter(
        coords[on, 1], -coords[on, 0], s=16, c=[(0.1, 0.45, 0.95, float(a)) for a in w], marker="s", linewidths=0
    )
    hit = drawn > 0
    ax.scatter(coords[hit, 1], -coords[hit, 0], s=11, c="orange", edgecolors="black", linewidths=0.3)
    ax.scatter([coords[query, 1]], [-coords[query, 0]], s=45, c="red", marker="X", linewidths=0)
    ax.set_xlim(-e, e)
    ax.set_ylim(-e, e)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def _amount_text(kind: str, amount) -> str:
    if kind == "translation":
        return f"shift ({amount[0]:+.0f}, {amount[1]:+.0f}) px"
    if kind == "rotation":
        return f"rotate {amount:.0f}°"
    if kind == "scaling":
        return f"scale ×{amount:g}"
    return "original"


def _panel_data(image: Tensor, query_point: Tensor, kind: str, amount, group, fill, nbhd, liftsamples, seed):
    A, b = transform_matrix(kind, amount)
    img = transform_image(image, A, b)
    q = nearest_pixel(A @ query_point + b)
    ball, drawn = neighbourhood_weights(group, img, q, fill=fill, nbhd=nbhd, liftsamples=liftsamples, seed=seed)
    return img, ball, drawn, q


def plot_neighbourhoods(
    image: Tensor,
    group_name: str,
    path,
    *,
    query: Tensor | None = None,
    fill: float = 0.1,
    nbhd: int = 25,
    liftsamples: int | None = None,
    alpha: float = 0.2,
    seed: int = 0,
) -> Path:
    """Figures 3 / 10 for one group: rows = translation, rotation, scaling; columns = original, two amounts.

    Blue: the ball (``fill`` of the lifted points; for SE(2) shaded by the fraction of lift samples),
    orange: the ``nbhd`` points drawn, red cross: the query (the transformed query point).
    ``liftsamples`` defaults to 8 for SE(2) (a smooth distribution) and 1 otherwise.
    """
    plt = pyplot()
    image = _check_image(image)
    group = _group(group_name, alpha)
    ns = liftsamples or (8 if group.stabilizer_dim > 0 else 1)
    query_point = choose_query(image) if query is None else torch.as_tensor(query, dtype=torch.float64)
    fig, axes = plt.subplots(3, 3, figsize=(7.2, 7.6))
    for r, (kind, amounts) in enumerate(TRANSFORMS.items()):
        for c, amount in enumerate((None,) + tuple(amounts)):
            k = "identity" if amount is None else kind
            img, ball, drawn, q = _panel_data(image, query_point, k, amount, group, fill, nbhd, ns, seed)
            _draw_panel(axes[r, c], img, ball, drawn, q, _amount_text(k, amount))
    label = GROUP_LABELS.get(group_name, group_name)
    fig.suptitle(
        f"{label}: pixels entering the convolution at the red point\n(fill {fill:g}, {nbhd} drawn"
        + (f", {ns} lift samples" if ns > 1 else "")
        + ")",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_neighbourhood_overview(
    image: Tensor,
    groups: Sequence[str],
    path,
    *,
    query: Tensor | None = None,
    fill: float = 0.1,
    nbhd: int = 25,
    alpha: float = 0.2,
    seed: int = 0,
) -> Path:
    """Figure 10 in one picture: groups as columns; rows: original, then the second amount of each transformation."""
    plt = pyplot()
    image = _check_image(image)
    query_point = choose_query(image) if query is None else torch.as_tensor(query, dtype=torch.float64)
    rows = [("identity", None)] + [(k, a[1]) for k, a in TRANSFORMS.items()]
    fig, axes = plt.subplots(len(rows), len(groups), figsize=(2.3 * len(groups), 2.4 * len(rows)), squeeze=False)
    for c, name in enumerate(groups):
        group = _group(name, alpha)
        ns = 8 if group.stabilizer_dim > 0 else 1
        for r, (kind, amount) in enumerate(rows):
            img, ball, drawn, q = _panel_data(image, query_point, kind, amount, group, fill, nbhd, ns, seed)
            title = f"{GROUP_LABELS.get(name, name)}: {_amount_text(kind, amount)}"
            _draw_panel(axes[r, c], img, ball, drawn, q, title)
    fig.suptitle("Neighbourhood of the red point per group (blue: ball, orange: points drawn)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
