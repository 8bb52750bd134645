"""The contract between the shared trainer and an application ("task").

A task = model + data + loss + metrics.  Each application (springs, rotmnist, qm9) subclasses
``Task`` in ``lieconv/tasks/<name>.py`` and registers itself with ``@register_task``.  The trainer
(``lieconv.training``) knows nothing else about it.

Configuration: one dataclass per task deriving from ``TrainConfig``; its field defaults are the
paper's hyperparameters (the ``paper`` preset) and ``presets["quick"]`` overrides some of them for
a 2-core CPU.  The CLI is generated from the dataclass fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["TrainConfig", "Task", "TASKS", "register_task", "get_task"]


@dataclass
class TrainConfig:
    """Options every task shares.  Task configs add their own fields after these."""

    seed: int = 0
    epochs: int = 100
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0          # linear warm-up length (epochs, may be fractional)
    cosine: bool = True                 # cosine decay of the learning rate to 0 over `epochs`
    early_stopping_patience: int = 0    # epochs without improvement of the monitored metric; 0 = off
    checkpoint_every_n_steps: int = 0   # also checkpoint inside long epochs; 0 = once per epoch
    device: str = "auto"                # cpu | cuda | auto
    num_workers: int = 0
    dtype: str = "float32"              # float32 | float64
    out: str = "runs/default"


class Task:
    """One application.  Subclasses set the class variables and implement the methods."""

    name: ClassVar[str]
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}}
    monitor: ClassVar[str] = "valid/loss"   # metric used for the best checkpoint / early stopping
    monitor_mode: ClassVar[str] = "min"

    def __init__(self, config: TrainConfig):
        self.config = config

    def datasets(self) -> dict[str, torch.utils.data.Dataset]:
        """``{"train": ..., "valid": ..., "test": ...}`` (test may be absent)."""
        raise NotImplementedError

    def collate(self, items: list) -> Any:
        """Turn a list of dataset items into a batch (default: torch's default_collate)."""
        return torch.utils.data.default_collate(items)

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss (a scalar with grad) and per-batch metrics (averaged by batch size)."""
        raise NotImplementedError

    def metrics(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        """Evaluation metrics for one batch, each a scalar mean over the batch (no grad needed)."""
        loss, logs = self.loss(model, batch)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in logs.items()}}

    def batch_size_of(self, batch: Any) -> int:
        """Number of examples in a batch, for weighting averaged metrics."""
        first = batch[0] if isinstance(batch, (tuple, list)) else next(iter(batch.values())) if isinstance(batch, dict) else batch
        return int(first.shape[0])

    def report(self, model: nn.Module, run_dir: Path) -> dict[str, Any]:
        """Optional work after training (figures, rollouts); returns numbers for the summary."""
        return {}


TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> type[Task]:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"task: unknown task {name!r}; choose from {sorted(TASKS)}") from None
