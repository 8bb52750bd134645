"""The LightningModule that wraps any ``Task`` and its model.

Everything the loss needs (for the Hamiltonian task: ``autograd.grad(H, z, create_graph=True)`` and
the integrator) runs inside ``training_step``, i.e. inside the DDP-wrapped forward, as DESIGN §7
requires.  Metrics are summed over examples (weighted by ``task.batch_size_of``) and over DDP
processes, so an epoch's numbers are exact means over the split, whatever the number of processes.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from .config import config_from_dict
from .data import make_loader, train_steps_per_epoch
from .task import get_task, task_module

__all__ = ["TaskModule", "NonFiniteLossError", "step_seed"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; training stops before the bad optimizer step."""


def step_seed(seed: int, step: int, rank: int, stream: int = 0) -> int:
    """Seed of the global torch RNG before one training step (or evaluation pass).

    A pure function of (run seed, global step or epoch, process rank, stream), so the random draws
    of a step are the same whether or not the run was interrupted and resumed before it.
    """
    return (((int(seed) * 1_000_003 + int(step)) * 4 + int(stream)) * 1024 + int(rank)) % (2**63 - 1)


def _is_nonfinite_error(exc: Exception) -> bool:
    text = str(exc)
    return "NaN" in text or "finite" in text or " inf" in text


def _finite(batch: Any) -> bool:
    """True when every floating tensor in a (nested) batch is finite."""
    if torch.is_tensor(batch):
        return not batch.is_floating_point() or bool(torch.isfinite(batch).all())
    if isinstance(batch, dict):
        return all(_finite(v) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return all(_finite(v) for v in batch)
    return True


class _Sums:
    """Running example-weighted sums of scalar metrics."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0.0

    def add(self, metrics: dict[str, Any], n: int) -> None:
        for k, v in metrics.items():
            v = float(v.detach().double().mean()) if torch.is_tensor(v) else float(v)
            self.sums[k] = self.sums.get(k, 0.0) + v * n
        self.count += n

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        self.sums, self.count = dict(state["sums"]), float(state["count"])

    def means(self, module: L.LightningModule) -> dict[str, float]:
        """Means over all examples of all processes (a collective call under DDP)."""
        keys = sorted(self.sums)
        t = torch.tensor([self.sums[k] for k in keys] + [self.count], dtype=torch.float64)
        if module.trainer is not None and module.trainer.world_size > 1:
            t = module.trainer.strategy.reduce(t.to(module.device), reduce_op="sum").cpu()
        count = float(t[-1])
        return {k: float(t[i]) / count for i, k in enumerate(keys)} if count > 0 else {}


class TaskModule(L.LightningModule):
    """A task's model plus the loops' hooks.

    Parameters
    ----------
    task : str
        Registered task name.
    config : dict
        The task's resolved config as a plain dict (stored in the checkpoint's ``hyper_parameters``
        together with the task name, so a checkpoint knows which task wrote it).
    """

    def __init__(self, task: str, config: dict[str, Any]):
        super().__init__()
        from .. import __version__

        task_cls = get_task(task)
        # the defining module lets a checkpoint be loaded before its task is imported (see get_task)
        self.save_hyperparameters(
            {"task": task, "task_module": task_module(task_cls), "config": dict(config), "lieconv_version": __version__}
        )
        self.config = config_from_dict(task_cls.config_class, dict(config), source=f"task {task!r}")
        self.task = task_cls(self.config)
        # Convert now: Lightning restores checkpoint weights *before* its precision plugin converts
        # the module, so a float32 model would truncate float64 weights on resume.
        self.model = self.task.build_model().to(getattr(torch, self.config.dtype))
        self.eval_split = "test"  # which split `trainer.test` reads (see evaluate())
        self._datasets: dict | None = None
        self._train = _Sums()
        self._eval = _Sums()
        self.batches_done = 0  # training batches done in the current epoch
        self.steps_per_epoch = 0
        self.last_epoch_row: dict[str, Any] = {}  # metrics of the last finished epoch
        self.last_logged_epoch = -1
        self.last_valid: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}
        #: test-time averaging: evaluation metrics of the mean model output over this many draws
        self.eval_samples = 1
        self._eval_samplers: dict[str, Any] = {}  # stage -> batch sampler (dataset index of each example)
        self._eval_batches: list[list[int]] = []

    # ------------------------------------------------------------------------------------- data
    def datasets(self) -> dict:
        if self._datasets is None:
            self._datasets = self.task.datasets()
        return self._datasets

    def _loader(self, split: str, shuffle: bool):
        # checked here, not in datasets(): evaluating one split needs only that split
        missing = sorted({"train", "valid", split} - set(self.datasets())) if shuffle or split == "valid" else []
        if missing:
            raise ValueError(f"task {self.task.name!r}: datasets() lacks split(s) {missing} needed for training")
        trainer = self.trainer
        return make_loader(
            self.datasets()[split],
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            seed=self.config.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            collate=self.task.collate,
            num_workers=self.config.num_workers,
            drop_last=self.task.drop_last,
        )

    def train_dataloader(self):
        loader = self._loader("train", shuffle=True)
        loader.progress = lambda: self.batches_done
        self.steps_per_epoch = len(loader.batch_sampler)
        return loader

    def val_dataloader(self):
        loader = self._loader("valid", shuffle=False)
        self._eval_samplers["validate"] = loader.batch_sampler
        return loader

    def test_dataloader(self):
        ds = self.datasets()
        split = self.eval_split if self.eval_split in ds else "valid"
        loader = self._loader(split, shuffle=False)
        self._eval_samplers["test"] = loader.batch_sampler
        return loader

    # ------------------------------------------------------------------------------------- training
    def on_train_epoch_start(self) -> None:
        self._train = _Sums()
        self.batches_done = 0
        self.last_valid = {}  # an epoch without validation (val_every_n_epochs > 1) logs none

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.config.seed, self.global_step, self.global_rank, 0))
        self.task.global_step = self.global_step
        self.task.epoch = self.current_epoch

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        detail = ""
        try:
            loss, logs = self.task.loss(self.model, batch)
        except ValueError as exc:
            # A finite batch whose forward pass meets NaN/inf (e.g. a diverged model's trajectories fed
            # back as coordinates) is a training failure, not bad input: report it as a non-finite loss.
            if not (_is_nonfinite_error(exc) and _finite(batch)):
                raise
            detail = f"; the model produced non-finite values ({exc})"
            loss, logs = torch.full((), math.nan, device=self.device), {}
        bad = torch.tensor(0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0, device=self.device)
        if self.trainer.world_size > 1:
            bad = self.trainer.strategy.reduce(bad, reduce_op="sum")
        if float(bad) > 0:
            ckpt = self.trainer.checkpoint_callback
            kept = getattr(ckpt, "dirpath", None)
            raise NonFiniteLossError(
                f"non-finite loss at step {self.global_step} ({float(loss.detach())}; epoch {self.current_epoch}, "
                f"batch {batch_idx}){detail}; training stopped before that update"
                + (f"; the last good checkpoints are kept in {kept}" if kept else "")
            )
        n = self.task.batch_size_of(batch)
        self._train.add({"loss": loss, **logs}, n)
        self.batches_done += 1
        self.log("loss", loss.detach(), prog_bar=True, logger=False, on_step=True, on_epoch=False, batch_size=n)
        return loss

    def epoch_row(self) -> dict[str, Any]:
        """Reduce this epoch's metrics over processes (collective) and return the CSV row."""
        row: dict[str, Any] = {"epoch": self.current_epoch, "global_step": self.global_step}
        opt = self.trainer.optimizers[0] if self.trainer.optimizers else None
        if opt is not None:
            row["lr"] = opt.param_groups[0]["lr"]
        row.update({f"train/{k}": v for k, v in self._train.means(self).items()})
        row.update({f"valid/{k}": v for k, v in self.last_valid.items()})
        self.last_epoch_row = row
        self.last_logged_epoch = self.current_epoch
        return row

    # ------------------------------------------------------------------------------------- evaluation
    def _eval_start(self, stream: int, stage: str) -> None:
        self._eval = _Sums()
        self.model.eval()
        torch.manual_seed(step_seed(self.config.seed, self.current_epoch, self.global_rank, stream))
        sampler = self._eval_samplers.get(stage)
        self._eval_batches = sampler._batches() if sampler is not None else []

    def _eval_step(self, batch: Any, batch_idx: int) -> None:
        """Metrics of one batch.  The model's random draws (eval mode, no generator) come from
        ``ExampleRandom(seed, dataset indices of the batch)``: the same for every batch size and
        process count; with ``eval_samples`` S > 1 the metrics are those of the mean output over S draws."""
        from ..random import DrawAverage, evaluation_draws

        ids = self._eval_batches[batch_idx] if batch_idx < len(self._eval_batches) else None
        model = self.model if self.eval_samples == 1 else DrawAverage(self.model, self.eval_samples)
        with evaluation_draws(self.config.seed, ids):
            metrics = self.task.metrics(model, batch)
        self._eval.add(metrics, self.task.batch_size_of(batch))

    def on_validation_epoch_start(self) -> None:
        self._eval_start(1, "validate")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        self.last_valid = self._eval.means(self)
        for k, v in self.last_valid.items():
            self.log(f"valid/{k}", v, logger=False, prog_bar=(f"valid/{k}" == self.task.monitor), sync_dist=False)

    def on_test_epoch_start(self) -> None:
        self._eval_start(2, "test")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self.last_eval = self._eval.means(self)

    # ------------------------------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        opt = self.task.configure_optimizer(self.model)
        # not trainer.estimated_stepping_batches: it builds the train loader before the checkpoint
        # (and the loader's position in the epoch) is restored
        spe = train_steps_per_epoch(
            len(self.datasets()["train"]), self.config.batch_size, self.task.drop_last, self.trainer.world_size
        )
        total = max(1, self.config.epochs * spe)
        warm = self.config.warmup_epochs * spe
        cosine = self.config.cosine

        def factor(step: int) -> float:
            f = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
            if cosine:
                f *= 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
            return f

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------------------------- checkpoint state
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lieconv"] = {
            "train_sums": self._train.state(),
            "batches_done": self.batches_done,
            "last_epoch_row": self.last_epoch_row,
            "last_logged_epoch": self.last_logged_epoch,
            "last_valid": self.last_valid,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("lieconv")
        if state:
            self._train.load(state["train_sums"])
            self.batches_done = state["batches_done"]
            self.last_epoch_row = state["last_epoch_row"]
            self.last_logged_epoch = state["last_logged_epoch"]
            self.last_valid = state["last_valid"]
