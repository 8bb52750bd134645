"""Where a run's metrics go: ``--logger``, a comma-separated list of Lightning loggers.

``metrics.csv`` (Lightning's ``CSVLogger``) is always written: it is part of the run folder and
resuming relies on it.  The others are added by name; each writes under the run folder and needs
no network:

===============  ===========================================  ==========================
name             writes                                       needs
===============  ===========================================  ==========================
``csv``          ``OUT/metrics.csv``                          (always on)
``tensorboard``  ``OUT/tensorboard/`` (event files)           ``pip install tensorboard``
``wandb``        ``OUT/wandb/`` in offline mode (sync later)  ``pip install wandb``
``mlflow``       ``OUT/mlruns/`` (a local file store)         ``pip install mlflow``
===============  ===========================================  ==========================

``auto`` (the default) is ``csv`` plus ``tensorboard`` when tensorboard is installed.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = ["LOGGERS", "parse_logger_spec", "build_loggers"]

#: ``{name: the package it needs}`` (``None``: Lightning alone).
LOGGERS: dict[str, str | None] = {"csv": None, "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def _installed(package: str | None) -> bool:
    return package is None or importlib.util.find_spec(package) is not None


def parse_logger_spec(spec: str) -> list[str]:
    """``"csv,tensorboard"`` -> ``["csv", "tensorboard"]`` (``csv`` first and always included).

    Raises
    ------
    ValueError
        An unknown name (the message lists the choices), or a logger whose package is not installed.
    """
    names = [n.strip().lower() for n in str(spec).split(",") if n.strip()]
    if names == ["auto"]:
        return ["csv"] + (["tensorboard"] if _installed("tensorboard") else [])
    unknown = [n for n in names if n not in LOGGERS]
    if unknown or not names:
        raise ValueError(
            f"logger: unknown logger(s) {unknown or [spec]}; choose 'auto' or a comma-separated list "
            f"from {list(LOGGERS)}"
        )
    missing = [n for n in names if not _installed(LOGGERS[n])]
    if missing:
        raise ValueError(
            f"logger: {missing} need(s) the package(s) {[LOGGERS[n] for n in missing]}, which are not "
            f"installed (pip install {' '.join(str(LOGGERS[n]) for n in missing)})"
        )
    return ["csv"] + [n for n in dict.fromkeys(names) if n != "csv"]


def build_loggers(spec: str, out: str | Path, *, run_name: str = "lieconv") -> list:
    """The Lightning loggers of ``spec`` (see :func:`parse_logger_spec`), all writing under ``out``."""
    from lightning.pytorch import loggers as pl_loggers

    out = Path(out)
    made: list = []
    for name in parse_logger_spec(spec):
        if name == "csv":
            made.append(pl_loggers.CSVLogger(save_dir=str(out), name="", version=""))
        elif name == "tensorboard":
            made.append(
                pl_loggers.TensorBoardLogger(save_dir=str(out), name="tensorboard", version="", default_hp_metric=False)
            )
        elif name == "wandb":
            made.append(pl_loggers.WandbLogger(save_dir=str(out), name=run_name, project="lieconv", offline=True))
        elif name == "mlflow":
            # a local file store (recent MLflow keeps it in maintenance mode and asks for this opt-in)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            made.append(
                pl_loggers.MLFlowLogger(
                    experiment_name="lieconv", run_name=run_name, tracking_uri=(out / "mlruns").resolve().as_uri()
                )
            )
    return made
