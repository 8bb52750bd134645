"""Classify your own 3-D point clouds with a rotation-invariant LieConv network.

Four shapes (sphere, cube, cylinder, cone) are sampled as point clouds on their surfaces. Two
networks are trained on the shapes in one fixed orientation:

* an SE(3) LieResNet: invariant to rotations and translations by construction;
* a T(3) LieResNet: invariant to translations only (a PointConv-like baseline).

Both are then tested on the same test clouds, once as they are and once randomly rotated. The
SE(3) model's accuracy does not care about the rotation; the T(3) model's does.

    python examples/point_clouds.py          # about 40 s of CPU time
    python examples/point_clouds.py --tiny   # a few seconds: a smoke test (accuracy is meaningless)
"""

from __future__ import annotations

import argparse
import copy
import math

import torch

from lieconv import LieResNet, Points, assert_equivariant, get_group
from lieconv.datasets.transforms import random_so3

SHAPES = ("sphere", "cube", "cylinder", "cone")


def sample_shape(kind: str, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` points on the surface of a shape of size ~1 centred at the origin, shape (n, 3)."""
    u = torch.rand(n, 2, generator=g)
    if kind == "sphere":
        x = torch.randn(n, 3, generator=g)
        return x / x.norm(dim=-1, keepdim=True)
    if kind == "cube":
        x = torch.rand(n, 3, generator=g) * 2 - 1
        face = torch.randint(0, 3, (n,), generator=g)  # push one coordinate to +-1
        sign = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
        x[torch.arange(n), face] = sign
        return x * 0.8
    theta = 2 * math.pi * u[:, 0]
    if kind == "cylinder":  # radius 0.6, height 2
        return torch.stack([0.6 * theta.cos(), 0.6 * theta.sin(), 2 * u[:, 1] - 1], -1)
    if kind == "cone":  # apex at z = 1, base radius 0.8
        h = u[:, 1].sqrt()  # uniform on the lateral surface
        return torch.stack([0.8 * h * theta.cos(), 0.8 * h * theta.sin(), 1 - 2 * h], -1)
    raise ValueError(f"kind: unknown shape {kind!r}; choose from {SHAPES}")


def make_dataset(num: int, n_points: int, seed: int) -> tuple[Points, torch.Tensor]:
    """``num`` clouds of ``n_points`` points (random scale and noise, fixed orientation) and labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % len(SHAPES)
    clouds = []
    for y in labels.tolist():
        x = sample_shape(SHAPES[y], n_points, g)
        x = x * (0.8 + 0.4 * torch.rand(1, generator=g)) + 0.02 * torch.randn(n_points, 3, generator=g)
        clouds.append(x + 0.5 * torch.randn(1, 3, generator=g))  # and a random position
    coords = torch.stack(clouds)
    # One value channel per point: its distance to the cloud's centre, invariant to rotations and
    # translations (both models see it).  Constant values (Points.from_coords' ones) would leave the
    # first batch norm nothing to normalise, and its running statistics would not settle.
    radius = (coords - coords.mean(1, keepdim=True)).norm(dim=-1, keepdim=True)
    return Points.from_coords(coords, radius), labels


def rotate(points: Points, R: torch.Tensor) -> Points:
    """Rotate every cloud about its own centre: x -> R (x - c) + c."""
    c = points.coords.mean(1, keepdim=True)
    return points.replace(coords=(points.coords - c) @ R.transpose(-1, -2) + c)  # values (radii) unchanged


def train(model: torch.nn.Module, data: Points, labels: torch.Tensor, *, epochs: int, batch_size: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    # Cosine decay to 0: besides helping the fit, it lets the batch norms' running statistics (used
    # in eval mode) catch up with the weights by the end of training.
    steps = epochs * math.ceil(len(labels) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(labels))
        total = 0.0
        for i in range(0, len(labels), batch_size):
            idx = perm[i : i + batch_size]
            batch = Points(data.coords[idx], data.values[idx], data.mask[idx])
            loss = torch.nn.functional.cross_entropy(model(batch), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: train loss {total / len(labels):.3f}")


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: Points, labels: torch.Tensor, batch_size: int = 50) -> float:
    model.eval()
    right = 0
    for i in range(0, len(labels), batch_size):
        batch = Points(data.coords[i : i + batch_size], data.values[i : i + batch_size], data.mask[i : i + batch_size])
        right += int((model(batch).argmax(-1) == labels[i : i + batch_size]).sum())
    return right / len(labels)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: tiny data and model (smoke test)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    size = (
        dict(n_train=16, n_test=8, n_points=24, epochs=1, k=8, layers=1, nbhd=8)
        if args.tiny
        else dict(n_train=256, n_test=128, n_points=48, epochs=8, k=32, layers=2, nbhd=16)
    )
    train_set, train_y = make_dataset(size["n_train"], size["n_points"], seed=1)
    test_set, test_y = make_dataset(size["n_test"], size["n_points"], seed=2)
    rotations = random_so3((size["n_test"],), generator=torch.Generator().manual_seed(3))  # Haar-uniform
    rotated = rotate(test_set, rotations)

    results, models = {}, {}
    for group, liftsamples in (("SE3", 2), ("T3", 1)):
        print(f"{group}: training on {size['n_train']} clouds in one orientation")
        model = LieResNet(
            1,
            len(SHAPES),
            group=group,
            k=size["k"],
            num_layers=size["layers"],
            num_nbhd=size["nbhd"],
            fill=0.25,
            liftsamples=liftsamples,
        )
        train(model, train_set, train_y, epochs=size["epochs"], batch_size=16)
        results[group] = {"test": accuracy(model, test_set, test_y), "rotated test": accuracy(model, rotated, test_y)}
        models[group] = model

    # Why SE(3) does not care: given the same Monte-Carlo draws (lift samples, neighbourhoods) its
    # output is invariant to float precision.  The check runs the trained model in float64.
    se3 = copy.deepcopy(models["SE3"]).double().eval()
    few = Points(test_set.coords[:4].double(), test_set.values[:4].double(), test_set.mask[:4])
    err = assert_equivariant(se3, get_group("SE3"), few, num_samples=2)
    results["SE3"]["invariance_error"] = err

    print(f"\n{'model':8s}{'test acc':>12s}{'rotated test acc':>20s}")
    for group, acc in results.items():
        print(f"{group:8s}{acc['test']:12.2f}{acc['rotated test']:20.2f}")
    print(f"\nSE(3) invariance error with shared random draws (float64): {err:.1e}")
    return results


if __name__ == "__main__":
    main()
