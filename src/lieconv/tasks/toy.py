"""The trainer's self-test task: regression of a fixed random smooth function with a small MLP.

Data: ``x ~ N(0, I_d)``, ``y = w2 · sin(W1 x + b1) + noise·ε`` with a *teacher* ``(W1, b1, w2)`` drawn
once from ``function_seed`` (fixed across runs) and the examples drawn from the run ``seed``.  The
student is an MLP trained with the MSE.  It is small enough that a whole run takes a second on one
CPU core, which makes it the task the trainer's own tests (resume, DDP, determinism, NaN guard)
use; it is a real learning problem (the validation MSE falls well below the variance of ``y``), not
a stub of an application.

Two options exist only to exercise the trainer: ``nan_at_step`` makes the loss NaN at one global
step, and ``step_delay`` sleeps in every training step (so a test can kill a run mid-way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..training.task import Task, TrainConfig, register_task

__all__ = ["ToyConfig", "ToyTask", "teacher_function"]


@dataclass
class ToyConfig(TrainConfig):
    """Options of the toy regression (after the shared ``TrainConfig`` ones)."""

    epochs: int = field(default=30, metadata={"help": "training epochs"})
    lr: float = field(default=1e-2, metadata={"help": "peak Adam learning rate"})
    n_train: int = field(default=512, metadata={"help": "training examples"})
    n_valid: int = field(default=128, metadata={"help": "validation examples"})
    n_test: int = field(default=128, metadata={"help": "test examples"})
    input_dim: int = field(default=4, metadata={"help": "input dimension d"})
    teacher_width: int = field(default=8, metadata={"help": "hidden units of the random target function"})
    function_seed: int = field(default=1234, metadata={"help": "seed of the (fixed) target function"})
    noise: float = field(default=0.01, metadata={"help": "std of the label noise"})
    hidden: int = field(default=32, metadata={"help": "hidden width of the student MLP"})
    activation: str = field(
        default="silu", metadata={"choices": ["silu", "tanh", "relu"], "help": "student activation"}
    )
    figures: bool = field(default=True, metadata={"help": "write figures/toy_fit.png after training"})
    nan_at_step: int = field(
        default=-1, metadata={"help": "testing aid: make the training loss NaN at this global step (-1 = never)"}
    )
    step_delay: float = field(default=0.0, metadata={"help": "testing aid: seconds to sleep in every training step"})


def teacher_function(x: Tensor, input_dim: int, width: int, seed: int) -> Tensor:
    """The fixed target ``y = w2 · sin(W1 x + b1)`` (shape ``(n,)``), drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(width, input_dim, generator=g, dtype=torch.float64) / input_dim**0.5
    b1 = torch.rand(width, generator=g, dtype=torch.float64) * 2 * torch.pi
    w2 = torch.randn(width, generator=g, dtype=torch.float64) / width**0.5
    return torch.sin(x.double() @ w1.T + b1) @ w2


_ACT = {"silu": nn.SiLU, "tanh": nn.Tanh, "relu": nn.ReLU}


@register_task
class ToyTask(Task):
    """Fit a fixed random function of ``input_dim`` inputs (MSE); metrics ``loss`` (MSE) and ``mae``."""

    name = "toy"
    config_class = ToyConfig
    presets = {"paper": {}, "quick": {"epochs": 5, "n_train": 256, "n_valid": 64, "n_test": 64}}
    monitor = "valid/loss"
    monitor_mode = "min"
    config: ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self._data: dict[str, Any] | None = None

    def datasets(self) -> dict[str, torch.utils.data.Dataset]:
        if self._data is None:
            c = self.config
            g = torch.Generator().manual_seed(c.seed)
            out = {}
            for split, n in (("train", c.n_train), ("valid", c.n_valid), ("test", c.n_test)):
                x = torch.randn(n, c.input_dim, generator=g, dtype=torch.float64)
                y = teacher_function(x, c.input_dim, c.teacher_width, c.function_seed)
                y = y + c.noise * torch.randn(n, generator=g, dtype=torch.float64)
                out[split] = torch.utils.data.TensorDataset(x.float(), y.float())
            self._data = out
        return self._data

    def build_model(self) -> nn.Module:
        c = self.config
        act = _ACT[c.activation]
        return nn.Sequential(
            nn.Linear(c.input_dim, c.hidden), act(), nn.Linear(c.hidden, c.hidden), act(), nn.Linear(c.hidden, 1)
        )

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = batch
        pred = model(x).squeeze(-1)
        err = pred - y
        mse = err.pow(2).mean()
        if self.config.step_delay > 0 and model.training:
            time.sleep(self.config.step_delay)
        if model.training and getattr(self, "global_step", None) == self.config.nan_at_step:
            mse = mse * float("nan")
        return mse, {"mae": err.abs().mean().detach()}

    def report(self, model: nn.Module, run_dir: Path) -> dict[str, Any]:
        """Scatter plot of predictions against targets on the test split (``figures/toy_fit.png``)."""
        x, y = self.datasets()["test"].tensors
        p = next(model.parameters())
        with torch.no_grad():
            pred = model(x.to(p.device, p.dtype)).squeeze(-1).double().cpu()
        y = y.double()
        r2 = float(1 - (pred - y).pow(2).sum() / (y - y.mean()).pow(2).sum())
        if self.config.figures:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            (run_dir / "figures").mkdir(parents=True, exist_ok=True)
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.scatter(y, pred, s=6)
            lo, hi = float(y.min()), float(y.max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            ax.set(xlabel="target", ylabel="prediction", title=f"toy task, test R² = {r2:.3f}")
            fig.tight_layout()
            fig.savefig(run_dir / "figures" / "toy_fit.png", dpi=100)
            plt.close(fig)
        return {"test_r2": r2}
