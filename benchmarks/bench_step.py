"""Time and peak resident memory of one training step of the paper's RotMNIST configuration.

ImageLieResNet(k=128, total_ds=0.1, fill=0.1, nbhd=25, 6 blocks) on the 648 pixels inside the
radius-15 crop, batch 25, forward + backward + Adam step, for T(2) and for SE(2) with two lift
samples, on two paths:

* ``fixed-grid``: the images on the pixel grid (every example has the same points: the fast path);
* ``per-example``: 25 *different* clouds — each example's pixel coordinates moved by its own random
  sub-pixel jitter (uniform in +-0.4 px) and rotated by its own random angle — so that lift,
  subsampling, neighbourhoods and kernel weights are per example (what every molecule, particle
  system and point cloud takes).

Every case runs in a fresh subprocess (see ``_compare.py``); ``--baseline REV`` runs a git revision
interleaved with the working tree and prints the ratios.

    python benchmarks/bench_step.py [--steps 3] [--repeats 3] [--baseline 301b6b0] [--cases ...]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import device, main_cases, time_steps

CASES = {
    "T2-fixed-grid": ("T2", 1, False),
    "T2-per-example": ("T2", 1, True),
    "SE2x2-fixed-grid": ("SE2", 2, False),
    "SE2x2-per-example": ("SE2", 2, True),
}


def distinct_clouds(coords, batch: int, generator):
    """``batch`` different copies of the (n, 2) pixel coordinates: per-example jitter and rotation."""
    import torch

    jitter = (torch.rand(batch, *coords.shape, generator=generator) - 0.5) * 0.8
    angle = torch.rand(batch, generator=generator) * (2 * math.pi)
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (B, 2, 2)
    return (coords + jitter) @ rot.transpose(1, 2)


def run_case(name: str, args: argparse.Namespace) -> dict:
    import torch

    from lieconv import Points
    from lieconv.models.image import ImageLieResNet

    group, liftsamples, per_example = CASES[name]
    torch.manual_seed(0)
    model = ImageLieResNet(
        1, 10, group=group, k=128, total_ds=0.1, fill=0.1, nbhd=25, num_layers=6, liftsamples=liftsamples
    )
    dev = device(args)
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (args.batch,), generator=g).to(dev)
    if per_example:
        grid = model.to_points(images.to(dev))
        points = Points(
            distinct_clouds(model.coords.cpu(), args.batch, g).to(dev),
            grid.values,
            torch.ones(args.batch, grid.coords.shape[1], dtype=torch.bool, device=dev),
        )

        def logits():
            return model.net(points)
    else:
        images = images.to(dev)

        def logits():
            return model(images)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(logits(), labels).backward()
        opt.step()

    timed = time_steps(step, args)
    return {
        **timed,
        "steps": args.steps,
        "batch": args.batch,
        "points": model.num_points(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per process after the warm-up (default 3)")
    ap.add_argument("--batch", type=int, default=25, help="batch size (default 25)")
    main_cases(
        __file__,
        list(CASES),
        run_case,
        ap,
        title="RotMNIST paper network, one training step (forward + backward + Adam), 648 points",
    )


if __name__ == "__main__":
    main()
