"""The contract between the shared trainer and an application ("task").

A task = model + data + loss + metrics.  Each application (springs, rotmnist, qm9) subclasses
``Task`` in ``lieconv/tasks/<name>.py`` and registers itself with ``@register_task``.  The trainer
(``lieconv.training``) knows nothing else about it and never imports an application: registration
is one-way (task modules import the trainer; ``lieconv.tasks`` lists the built-in task modules and
the CLI imports it).

Configuration: one dataclass per task deriving from ``TrainConfig``; its field defaults are the
paper's hyperparameters (the ``paper`` preset) and ``presets["quick"]`` overrides some of them for
a 2-core CPU.  The CLI is generated from the dataclass fields.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["TrainConfig", "Task", "TaskCommand", "TASKS", "register_task", "get_task", "task_module"]


@dataclass
class TrainConfig:
    """Options every task shares.  Task configs add their own fields after these.

    A field may declare ``field(metadata={"choices": [...], "help": "..."})``: the CLI then offers
    exactly those values and ``lieconv.training.config.validate_config`` rejects any other;
    ``"aliases": ["--other-flag"]`` adds more option names for the field; ``"min": value`` is the
    smallest value ``validate_config`` accepts.
    """

    seed: int = field(default=0, metadata={"min": 0, "help": "seed of data order, model init and every random draw"})
    epochs: int = field(default=100, metadata={"min": 1, "help": "training epochs"})
    batch_size: int = field(default=32, metadata={"min": 1, "help": "global batch size (split over DDP processes)"})
    lr: float = field(default=3e-3, metadata={"min": 0, "help": "peak Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"min": 0, "help": "Adam weight decay"})
    warmup_epochs: float = field(
        default=0.0, metadata={"min": 0, "help": "linear warm-up length in epochs (may be fractional)"}
    )
    cosine: bool = field(default=True, metadata={"help": "cosine decay of the learning rate to 0 over `epochs`"})
    early_stopping_patience: int = field(
        default=0,
        metadata={"min": 0, "help": "epochs without improvement of the monitored metric before stopping; 0 = off"},
    )
    val_every_n_epochs: int = field(
        default=1,
        metadata={
            "min": 1,
            "help": "validate after every N-th epoch; the best checkpoint and early stopping (whose "
            "patience then counts validations) only see validated epochs",
        },
    )
    checkpoint_every_n_steps: int = field(
        default=0, metadata={"min": 0, "help": "also checkpoint every N optimizer steps; 0 = once per epoch only"}
    )
    device: str = field(default="auto", metadata={"choices": ["auto", "cpu", "cuda"], "help": "where to train"})
    num_workers: int = field(default=0, metadata={"min": 0, "help": "DataLoader worker processes"})
    dtype: str = field(
        default="float32",
        metadata={"choices": ["float32", "float64"], "help": "dtype of the model and of floating batch tensors"},
    )
    out: str = field(default="runs/default", metadata={"help": "run folder (config, metrics, checkpoints, figures)"})
    logger: str = field(
        default="auto",
        metadata={
            "help": "metrics loggers, comma-separated: csv (always on), tensorboard, wandb (offline), "
            "mlflow (OUT/mlruns); auto = csv + tensorboard when installed"
        },
    )
    resume: bool = field(
        default=True,
        metadata={"help": "resume from OUT/checkpoints/last.ckpt when it exists; --no-resume starts the run afresh"},
    )


@dataclass(frozen=True)
class TaskCommand:
    """An extra command of one task, run as ``lieconv <command> <task> [options]``.

    ``add_arguments(parser)`` declares its options (each with a help text and default);
    ``run(args)`` does the work and returns the exit status.  Example: ``lieconv equivariance
    rotmnist --checkpoint ...``.
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class Task:
    """One application.  Subclasses set the class variables and implement the methods."""

    name: ClassVar[str]
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}}
    monitor: ClassVar[str] = "valid/loss"  # metric used for the best checkpoint / early stopping
    monitor_mode: ClassVar[str] = "min"
    #: Training batches: drop the incomplete last batch of an epoch (True) or train on it too.
    drop_last: ClassVar[bool] = True
    #: Extra CLI commands of this task: ``{command name: TaskCommand}``.
    commands: ClassVar[dict[str, TaskCommand]] = {}

    #: Set by the trainer before every training step (e.g. for schedules inside a task).
    global_step: int = 0
    epoch: int = 0

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
        first = (
            batch[0]
            if isinstance(batch, (tuple, list))
            else next(iter(batch.values()))
            if isinstance(batch, dict)
            else batch
        )
        return int(first.shape[0])

    def configure_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer (default: Adam with ``config.lr`` and ``config.weight_decay``, as in the paper).

        The trainer wraps it in the warm-up + cosine schedule; override only to change parameter groups.
        """
        return torch.optim.Adam(model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def report(self, model: nn.Module, run_dir: Path) -> dict[str, Any]:
        """Optional work after training (figures, rollouts); returns numbers for the summary."""
        return {}


#: The task registry ``{name: Task subclass}``.  Filled by ``register_task`` when a task's module is
#: imported; the trainer only reads it.  The built-in tasks register when ``lieconv.tasks`` is
#: imported (the CLI does that); ``lieconv.training`` never imports an application itself.
TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: add a ``Task`` subclass to ``TASKS`` under ``cls.name``."""
    TASKS[cls.name] = cls
    return cls


def get_task(name: str, module: str | None = None) -> type[Task]:
    """The registered task class called ``name``.

    Parameters
    ----------
    name : str
        A task name registered with ``register_task``.
    module : str, optional
        The module that defines the task (checkpoints store it): imported when ``name`` is not
        registered yet, so a checkpoint can be loaded without importing its task by hand.

    Raises
    ------
    ValueError
        Unknown name; the message lists the registered tasks and how the built-in ones register.
    """
    if name not in TASKS and module:
        import importlib

        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(
                f"task: task {name!r} is defined in module {module!r}, which failed to import "
                f"({type(exc).__name__}: {exc})"
            ) from None
    if name not in TASKS:
        raise ValueError(
            f"task: unknown task {name!r}; choose from {sorted(TASKS)} (the built-in tasks register "
            "when lieconv.tasks is imported: `import lieconv.tasks`; a task of your own registers "
            "when the module defining it is imported; or pass the Task class itself)"
        )
    return TASKS[name]


def task_module(cls: type[Task]) -> str:
    """The module that defines (and registers) a task class, as stored in checkpoints."""
    return cls.__module__
