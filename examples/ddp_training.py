"""Multi-process (data-parallel) training of a task of your own with ``torchrun``.

The shared trainer (``lieconv.training.fit``) runs any ``Task``: data, model, loss. Started under
``torchrun`` it trains with PyTorch DistributedDataParallel, one process per device (here CPU
processes, gloo backend): the global batch is split over the processes, gradients are averaged,
metrics are exact means over the whole split, and rank 0 writes the run folder.

The task: predict the spread (mean squared distance to the centroid) of random planar point clouds,
a quantity invariant to rotations and translations, with an SE(2) LieResNet.

    torchrun --standalone --nproc_per_node=2 examples/ddp_training.py --out runs/ddp-example
    python examples/ddp_training.py --out runs/one-process            # the same, one process
    torchrun --standalone --nproc_per_node=2 examples/ddp_training.py --tiny --out runs/tiny

Re-running the same command resumes from the run folder's last checkpoint.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lieconv import LieResNet, Points
from lieconv.training import Task, TrainConfig, fit, register_task
from lieconv.training.trainer import distributed_env


@dataclass
class SpreadConfig(TrainConfig):
    """Options of this task, after the trainer's (epochs, batch_size, lr, out, logger, ...)."""

    n_train: int = field(default=512, metadata={"help": "training clouds"})
    n_points: int = field(default=24, metadata={"help": "points per cloud"})
    k: int = field(default=32, metadata={"help": "channels"})
    num_layers: int = field(default=2, metadata={"help": "LieConv blocks"})


def spread_data(n: int, n_points: int, seed: int) -> torch.utils.data.TensorDataset:
    """Clouds of anisotropic Gaussian points (random scale, orientation and position) and their spread."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_points, 2, generator=g) * (0.3 + torch.rand(n, 1, 2, generator=g))
    angle = 2 * torch.pi * torch.rand(n, generator=g)
    R = torch.stack([torch.stack([angle.cos(), -angle.sin()], -1), torch.stack([angle.sin(), angle.cos()], -1)], -2)
    x = x @ R.transpose(-1, -2) + torch.randn(n, 1, 2, generator=g)
    y = (x - x.mean(1, keepdim=True)).pow(2).sum(-1).mean(1)
    return torch.utils.data.TensorDataset(x, y)


@register_task  # registers the name "spread", so `fit("spread")` and checkpoints find the class
class SpreadTask(Task):
    """Regress the spread of a planar point cloud with an SE(2)-invariant LieResNet (L1 loss)."""

    name = "spread"
    config_class = SpreadConfig
    monitor = "valid/loss"

    def datasets(self) -> dict[str, torch.utils.data.Dataset]:
        c = self.config
        return {
            "train": spread_data(c.n_train, c.n_points, seed=c.seed),
            "valid": spread_data(c.n_train // 4, c.n_points, seed=c.seed + 1),
            "test": spread_data(c.n_train // 4, c.n_points, seed=c.seed + 2),
        }

    def build_model(self) -> nn.Module:
        c = self.config
        return LieResNet(1, 1, group="SE2", k=c.k, num_layers=c.num_layers, num_nbhd=12, fill=0.5)

    def loss(self, model: nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        coords, y = batch  # default_collate of the TensorDataset
        pred = model(Points.from_coords(coords)).squeeze(-1)
        err = (pred - y).abs()
        return err.mean(), {"mae": err.mean().detach()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/ddp-example", help="run folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--tiny", action="store_true", help="a few seconds: tiny data and model (smoke test)")
    args = parser.parse_args(argv)
    world, _, rank = distributed_env()  # (1, 1, 0) without torchrun
    size = dict(n_train=64, n_points=12, k=8, num_layers=1, epochs=2) if args.tiny else dict(epochs=args.epochs)
    summary = fit(
        SpreadTask, overrides=dict(size, out=args.out, batch_size=16, device="cpu", logger="csv"), print_lines=rank == 0
    )
    if rank == 0:
        print(f"{world} process(es): test MAE {summary['test']['mae']:.4f}; run folder {summary['run_dir']}")
    return summary


if __name__ == "__main__":
    main()
