"""Applications ("tasks") of the shared trainer, and the demo hook.

This package is the explicit registry of the built-in applications: importing it imports every
task module listed in ``TASK_MODULES``, each of which registers its ``Task`` with
``lieconv.training.register_task``.  Registration is one-way: task modules import the trainer, the
trainer never imports them (the CLI imports this package).  A task module that is missing, or whose
optional heavy dependency is missing at import time, is skipped and its error kept in
``IMPORT_ERRORS``.  A task module must import only torch/numpy at module level and load heavy
things lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TASK_MODULES", "IMPORT_ERRORS", "load_tasks", "demo"]

#: Modules under ``lieconv.tasks`` that define and register tasks.
TASK_MODULES = ("toy", "springs", "rotmnist", "qm9")

#: ``{module: error message}`` for task modules that exist but failed to import.
IMPORT_ERRORS: dict[str, str] = {}

_loaded = False


def load_tasks() -> dict[str, type]:
    """Import the task modules (once) and return the task registry ``{name: Task subclass}``."""
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in TASK_MODULES:
            try:
                importlib.import_module(f"{__name__}.{mod}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{mod}":  # the module exists but a dependency is missing
                    IMPORT_ERRORS[mod] = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                IMPORT_ERRORS[mod] = f"{type(exc).__name__}: {exc}"
    from ..training.task import TASKS

    return TASKS


def demo(out: str = "runs/demo") -> dict[str, Any]:
    """What ``lieconv demo`` / ``make demo`` runs: the spring-dynamics comparison (paper §6).

    Generates a small spring data set (cached), trains HLieResNet-SO(2)* and HFC with the springs
    ``quick`` preset (a few minutes on a 2-core CPU), prints their test MSE and 100-step rollout
    errors (state, energy, linear and angular momentum) and writes the figures to
    ``out/figures/`` (each model's run folder is ``out/<model>/``).  Returns ``{model: summary}``.
    """
    from .springs import run_demo

    return run_demo(out)


load_tasks()
