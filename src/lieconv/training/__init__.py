"""The one trainer shared by every task (PyTorch Lightning underneath).

Public API
----------
- ``Task``, ``TrainConfig``, ``register_task``, ``get_task``, ``TASKS``: the contract a task implements.
- ``resolve_config(task, preset, config_file=..., overrides=...)``: defaults < preset < file < overrides.
- ``fit(task, config=None, *, preset, overrides, ...) -> summary``: train (or resume) a run folder.
- ``evaluate(checkpoint, task=None, *, split, device, batch_size) -> metrics``.
- ``load_model(checkpoint, task=None) -> (model, task)``.
- ``NonFiniteLossError``: raised when the training loss becomes NaN/inf.

Lightning is imported only when ``fit``/``evaluate``/``load_model`` run (``import lieconv.training``
itself stays light).
"""

from .config import resolve_config, validate_config
from .task import TASKS, Task, TrainConfig, get_task, register_task
from .trainer import evaluate, fit, load_model, read_checkpoint


def __getattr__(name):
    if name in ("NonFiniteLossError", "TaskModule"):
        from . import module

        return getattr(module, name)
    raise AttributeError(name)


__all__ = [
    "Task",
    "TrainConfig",
    "TASKS",
    "register_task",
    "get_task",
    "resolve_config",
    "validate_config",
    "fit",
    "evaluate",
    "load_model",
    "read_checkpoint",
    "NonFiniteLossError",
    "TaskModule",
]
