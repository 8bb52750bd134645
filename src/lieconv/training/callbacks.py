"""Small Lightning callbacks of the shared trainer."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L

__all__ = ["EpochLogger", "format_row"]


def format_row(row: dict[str, Any], epochs: int) -> str:
    """One human-readable line for an epoch's metrics row."""
    parts = [f"epoch {row['epoch'] + 1}/{epochs}", f"step {row['global_step']}"]
    if "lr" in row:
        parts.append(f"lr {row['lr']:.3g}")
    for k, v in row.items():
        if "/" in k:
            parts.append(f"{k} {v:.6g}")
    if "time_s" in row:
        parts.append(f"({row['time_s']:.1f} s)")
    return "  ".join(parts)


class EpochLogger(L.Callback):
    """At the end of every training epoch: one metrics row to the loggers (CSV, TensorBoard) and one line.

    The row holds the epoch's example-weighted mean training metrics, the validation metrics of
    that epoch, the learning rate and the wall time.  It runs before the checkpoint callbacks, so
    a checkpoint knows which epochs are already in ``metrics.csv`` (rows written after the last
    checkpoint are dropped on resume and written again).

    Parameters
    ----------
    print_lines : bool
        Print the line (rank 0).  With a progress bar the line goes through the bar's ``print``.
    """

    def __init__(self, print_lines: bool = True, stream=None):
        self.print_lines = print_lines
        self.stream = stream
        self._t0 = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.last_logged_epoch >= trainer.current_epoch:  # replayed hook after a resume
            return
        row = pl_module.epoch_row()  # collective under DDP: every rank calls it
        row["time_s"] = time.perf_counter() - self._t0
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(dict(row), step=row["epoch"])
                logger.save()
            if self.print_lines:
                line = format_row(row, trainer.max_epochs)
                bar = trainer.progress_bar_callback
                if bar is not None:
                    bar.print(line)
                else:
                    print(line, file=self.stream or sys.stdout, flush=True)
