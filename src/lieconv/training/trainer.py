"""fit / evaluate / resume: the shared trainer (Lightning underneath).

A run folder (``config.out``) holds::

    config.json              {"task", "config", "lieconv_version"}: the resolved config
    metrics.csv              one row per epoch (Lightning CSVLogger); tensorboard/, wandb/, mlruns/ as
                             ``config.logger`` says (see lieconv.training.loggers)
    checkpoints/last.ckpt    every epoch (and every ``checkpoint_every_n_steps`` steps)
    checkpoints/best.ckpt    best value of the task's monitored validation metric
    summary.json             status, last-epoch metrics, best-model valid/test metrics, report numbers
    figures/                 whatever ``task.report`` draws

Running the same command again resumes from ``last.ckpt`` (loop state, optimizer, schedule,
data position, metric sums): the finished run is the same as an uninterrupted one.  Every check of
the inputs (task, options, checkpoint, output folder) happens before training starts.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import pickle
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .config import RUNTIME_FIELDS, config_to_dict, resolve_config, validate_config
from .loggers import build_loggers, parse_logger_spec
from .task import Task, TrainConfig, get_task

__all__ = [
    "fit",
    "evaluate",
    "RunInterrupted",
    "load_model",
    "read_checkpoint",
    "safe_load",
    "CHECKPOINT_GLOBALS",
    "run_checkpoint",
    "resolve_accelerator",
    "check_output_folder",
    "distributed_env",
]

_PRECISION = {"float32": "32-true", "float64": "64-true"}


# ------------------------------------------------------------------------------------------- checks


def distributed_env() -> tuple[int, int, int]:
    """``(world_size, local_world_size, rank)`` from the torchrun environment (1, 1, 0 without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    rank = int(os.environ.get("RANK", "0"))
    return world, local, rank


def resolve_accelerator(device: str) -> str:
    """Map ``cpu|cuda|auto`` to a Lightning accelerator name; error if CUDA is asked for but absent."""
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device: 'cuda' requested but torch.cuda.is_available() is False; use --device cpu")
        return "gpu"
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    raise ValueError(f"device: unknown value {device!r}; choose from ['auto', 'cpu', 'cuda']")


def check_output_folder(out: str | Path) -> Path:
    """Create ``out`` (and ``out/checkpoints``) and check that files can be written there.

    Raises
    ------
    ValueError
        Naming the folder, when it cannot be created or written.
    """
    out = Path(out)
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"out: cannot write to output folder {str(out)!r} ({type(exc).__name__}: {exc})") from None
    return out


#: Python globals a checkpoint of this trainer may hold beyond ``torch.load(weights_only=True)``'s
#: own allow-list (tensors, OrderedDict, plain containers and scalars).  Our checkpoints (state
#: dicts, loop/callback/optimizer/scheduler states, the config as a plain dict) need none, so a
#: file that names any other global (a pickle that would run code) is refused before it runs.
CHECKPOINT_GLOBALS: tuple = ()


def safe_load(path: str | Path) -> Any:
    """``torch.load`` of a checkpoint with ``weights_only=True`` and ``CHECKPOINT_GLOBALS`` (on CPU)."""
    with torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS)):
        return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by this trainer (on CPU, ``safe_load``) and check that it belongs to ``task``.

    Raises
    ------
    ValueError
        Missing file, unreadable/corrupt file, a file holding objects outside the allow-list (it is
        not unpickled: nothing in it runs), not a lieconv checkpoint, or another task's checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint: file {str(path)!r} does not exist")
    try:
        ckpt = safe_load(path)
    except pickle.UnpicklingError as exc:
        lines = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in lines if "Unsupported global" in ln or "GLOBAL" in ln), None)
        if detail is None:  # not a refused global: a damaged or foreign file
            raise ValueError(
                f"checkpoint: file {str(path)!r} is corrupt or not a checkpoint "
                f"({type(exc).__name__}: {lines[-1] if lines else exc})"
            ) from None
        raise ValueError(
            f"checkpoint: file {str(path)!r} was refused: it holds objects that are not tensors or "
            f"plain data (weights-only loading; {detail[:200]}). Only load checkpoints written by "
            "lieconv from sources you trust"
        ) from None
    except Exception as exc:
        raise ValueError(
            f"checkpoint: file {str(path)!r} is corrupt or not a checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or "task" not in hp or "config" not in hp or "state_dict" not in ckpt:
        raise ValueError(
            f"checkpoint: file {str(path)!r} is not a lieconv training checkpoint "
            "(no task name and config in its hyper_parameters)"
        )
    if task is not None and hp["task"] != task:
        raise ValueError(f"checkpoint: file {str(path)!r} was written by task {hp['task']!r}, not {task!r}")
    get_task(hp["task"], hp.get("task_module"))  # imports the task's module when it is not registered yet
    return ckpt


def _config_diff(stored: dict[str, Any], config: TrainConfig) -> list[str]:
    now = config_to_dict(config)
    keys = sorted((set(stored) | set(now)) - RUNTIME_FIELDS)
    return [
        f"{k}: {stored.get(k, '<missing>')!r} -> {now.get(k, '<missing>')!r}"
        for k in keys
        if stored.get(k, "<missing>") != now.get(k, "<missing>")
    ]


def _check_run_folder(out: Path, task_cls: type[Task], config: TrainConfig) -> dict[str, Any] | None:
    """Refuse another task's folder; return the checkpoint to resume from (or None)."""
    cfg_file = out / "config.json"
    if cfg_file.is_file():
        try:
            stored = json.loads(cfg_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"out: {str(cfg_file)!r} is not valid JSON ({exc}); use another --out") from None
        if isinstance(stored, dict) and stored.get("task") not in (None, task_cls.name):
            raise ValueError(
                f"out: folder {str(out)!r} holds a run of task {stored.get('task')!r}, not "
                f"{task_cls.name!r} (see its config.json); choose another --out"
            )
    last = out / "checkpoints" / "last.ckpt"
    if not (config.resume and last.exists()):
        return None
    ckpt = read_checkpoint(last, task_cls.name)
    diff = _config_diff(ckpt["hyper_parameters"]["config"], config)
    if diff:
        raise ValueError(
            f"out: folder {str(out)!r} holds a run with another config ({'; '.join(diff)}); "
            "run the same command to resume it, or pass --no-resume to start afresh, or another --out"
        )
    return ckpt


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def _quiet_lightning():
    """Hide Lightning's start-up chatter and the warnings that do not apply to these runs."""
    names = ("lightning.pytorch", "lightning.fabric", "lightning")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for msg in (
                ".*does not have many workers.*",
                ".*Experiment logs directory.*",
                ".*sync_dist=True.*",
                ".*smaller than the logging interval.*",
                ".*Checkpoint directory .* exists and is not empty.*",
                ".*is not resumable.*",
                ".*You're resuming from a checkpoint.*",
                ".*GPU available but not used.*",
                ".*find_unused_parameters=True.*",
                ".*`isinstance\\(treespec, LeafSpec\\)`.*",
            ):
                warnings.filterwarnings("ignore", message=msg)
            yield
    finally:
        for n, lvl in levels.items():
            logging.getLogger(n).setLevel(lvl)


def _trainer_kwargs(config: TrainConfig) -> dict[str, Any]:
    world, local, _ = distributed_env()
    accelerator = resolve_accelerator(config.device)
    kw: dict[str, Any] = dict(accelerator=accelerator, precision=_PRECISION[config.dtype])
    if world > 1:
        from lightning.pytorch.strategies import DDPStrategy

        if world % local:
            raise ValueError(f"torchrun: WORLD_SIZE {world} is not a multiple of LOCAL_WORLD_SIZE {local}")
        kw.update(
            devices=local,
            num_nodes=world // local,
            sync_batchnorm=True,
            strategy=DDPStrategy(
                find_unused_parameters=True, process_group_backend="nccl" if accelerator == "gpu" else "gloo"
            ),
        )
    else:
        kw.update(devices=1)
    return kw


# ------------------------------------------------------------------------------------------- interruptions


class RunInterrupted(RuntimeError):
    """The run got SIGTERM or SIGINT; a resumable checkpoint was saved first.

    Attributes: ``signum``, ``checkpoint`` (path of the saved ``last.ckpt``), ``global_step``.
    ``exit_status`` is the shell convention 128 + signum (143 for SIGTERM, 130 for SIGINT).
    """

    def __init__(self, signum: int, checkpoint: Path, global_step: int):
        self.signum, self.checkpoint, self.global_step = int(signum), Path(checkpoint), int(global_step)
        name = signal.Signals(self.signum).name
        super().__init__(
            f"run interrupted by {name} at step {self.global_step}; resumable checkpoint: {self.checkpoint}"
        )

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _SignalFlag:
    """While active (main thread only): SIGTERM / SIGINT set ``signum`` instead of killing the run; a
    second signal of the same kind gives up waiting (SIGINT: KeyboardInterrupt, SIGTERM: exit 143)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def handler(self, signum, frame) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os._exit(128 + signum)
        self.signum = signum

    def install(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            previous = signal.signal(sig, self.handler)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}


def _interrupt_callback(flag: _SignalFlag, last_ckpt: Path):
    """A Lightning callback that turns a pending signal into a checkpoint and ``RunInterrupted``.

    A ``Checkpoint`` subclass, so Lightning runs it after the ModelCheckpoints: at an epoch end the
    epoch's ``last.ckpt`` is already written.  Under DDP the flag is summed over processes every
    step so all of them stop at the same step.
    """
    from lightning.pytorch.callbacks import Checkpoint

    class InterruptCheckpoint(Checkpoint):
        def on_train_start(self, trainer, pl_module) -> None:
            flag.install()  # over Lightning's own SIGTERM handler (which exits 0 silently)

        def _pending(self, trainer) -> int:
            sig = torch.tensor(float(flag.signum or 0), device=trainer.strategy.root_device)
            if trainer.world_size > 1:
                sig = trainer.strategy.reduce(sig, reduce_op="max")
            return int(sig)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            sig = self._pending(trainer)
            if sig:
                trainer.save_checkpoint(str(last_ckpt))
                raise RunInterrupted(sig, last_ckpt, trainer.global_step)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            sig = self._pending(trainer)
            if sig:
                trainer.save_checkpoint(str(last_ckpt))
                raise RunInterrupted(sig, last_ckpt, trainer.global_step)

    return InterruptCheckpoint()


# ------------------------------------------------------------------------------------------- fit


def fit(
    task: str | type[Task],
    config: TrainConfig | None = None,
    *,
    preset: str | None = "paper",
    overrides: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    progress_bar: bool | None = None,
    print_lines: bool = True,
) -> dict[str, Any]:
    """Train a task, evaluate its best checkpoint, write the run folder; resume if the folder has a run.

    Parameters
    ----------
    task : str or Task subclass
        Registered task name (e.g. ``"toy"``, ``"springs"``) or the class.
    config : TrainConfig, optional
        A complete config (instance of ``task.config_class``).  Without it the config is resolved
        from ``preset``, ``config_file`` and ``overrides`` (see ``resolve_config``).
    preset, overrides, config_file
        As in ``lieconv.training.config.resolve_config``.
    progress_bar : bool, optional
        Lightning's progress bar; default: only when stdout is a terminal.
    print_lines : bool
        Print one line per epoch (rank 0).

    Returns
    -------
    dict
        The content of ``summary.json``: ``status``, ``last_epoch`` (metrics row of the last epoch),
        ``best_valid`` and ``test`` (metrics of the best checkpoint), ``best_score``, ``report``,
        paths and timings.

    Raises
    ------
    ValueError
        Bad input found before training (unknown task/preset/option/value, unwritable ``out``,
        corrupt ``last.ckpt``, a run folder of another task or with another config).
    NonFiniteLossError
        The training loss became NaN/inf; the message names the global step; checkpoints saved
        before it are kept.
    RunInterrupted
        SIGTERM or SIGINT arrived (handled from the start of ``fit``): after the current training
        step a resumable ``last.ckpt`` was saved; calling ``fit`` again with the same config resumes.
    """
    task_cls = get_task(task) if isinstance(task, str) else task
    if config is None:
        config = resolve_config(task_cls, preset, config_file=config_file, overrides=overrides)
    else:
        if not isinstance(config, task_cls.config_class):
            raise ValueError(
                f"config: expected a {task_cls.config_class.__name__} for task {task_cls.name!r}, "
                f"got {type(config).__name__}"
            )
        config = validate_config(dataclasses.replace(config, **(overrides or {})))
    world, _, rank = distributed_env()
    trainer_kw = _trainer_kwargs(config)
    parse_logger_spec(config.logger)  # an unknown or uninstalled logger fails before anything is written
    if config.batch_size % world:
        raise ValueError(f"batch_size: {config.batch_size} is not divisible by the {world} processes")
    out = check_output_folder(config.out)
    resume = _check_run_folder(out, task_cls, config)
    ckpt_dir = out / "checkpoints"
    if rank == 0:
        from .. import __version__

        _write_json(
            out / "config.json",
            {"task": task_cls.name, "config": config_to_dict(config), "lieconv_version": __version__},
        )

    flag = _SignalFlag()
    flag.install()
    try:
        return _fit(task_cls, config, out, resume, ckpt_dir, trainer_kw, world, rank, flag, progress_bar, print_lines)
    finally:
        flag.restore()


def _fit(task_cls, config, out, resume, ckpt_dir, trainer_kw, world, rank, flag, progress_bar, print_lines):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

    from .callbacks import EpochLogger
    from .module import TaskModule

    def check_signal():
        if flag.signum is not None:
            raise RunInterrupted(flag.signum, ckpt_dir / "last.ckpt", int(last_row.get("global_step", 0)))

    last_row: dict[str, Any] = {}
    t_start = time.perf_counter()
    with _quiet_lightning():
        L.seed_everything(config.seed, workers=True, verbose=False)
        module = TaskModule(task_cls.name, config_to_dict(config))
        if world > 1:  # Lightning's sync_batchnorm converts only torch's batch norms
            from ..nn.norm import MaskBatchNorm

            MaskBatchNorm.convert_sync(module.model)

        loggers = build_loggers(config.logger, out, run_name=task_cls.name)  # loggers[0] is the CSVLogger
        if rank == 0:
            _restore_csv(
                loggers[0],
                out / "metrics.csv",
                resume["lieconv"]["last_logged_epoch"] if resume and "lieconv" in resume else None,
            )

        # validating every N > 1 epochs: the best checkpoint and early stopping act when validation ends
        # (the monitored metric does not exist at the end of the other epochs); patience counts validations
        at_epoch_end = config.val_every_n_epochs == 1
        best_cb = ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor=task_cls.monitor,
            mode=task_cls.monitor_mode,
            save_top_k=1,
            save_on_train_epoch_end=at_epoch_end,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        last_cb = ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="last",
            save_top_k=1,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )
        callbacks: list = [EpochLogger(print_lines=print_lines), best_cb, last_cb]
        if config.checkpoint_every_n_steps > 0:
            callbacks.append(
                ModelCheckpoint(
                    dirpath=ckpt_dir,
                    filename="last",
                    save_top_k=1,
                    every_n_train_steps=config.checkpoint_every_n_steps,
                    save_on_train_epoch_end=False,
                    enable_version_counter=False,
                )
            )
        early_cb = None
        if config.early_stopping_patience > 0:
            early_cb = EarlyStopping(
                monitor=task_cls.monitor,
                mode=task_cls.monitor_mode,
                patience=config.early_stopping_patience,
                check_on_train_epoch_end=at_epoch_end,
            )
            callbacks.append(early_cb)
        callbacks.append(_interrupt_callback(flag, ckpt_dir / "last.ckpt"))  # runs after the ModelCheckpoints
        if progress_bar is None:
            progress_bar = sys.stdout.isatty()
        progress_bar = bool(progress_bar and rank == 0)
        if progress_bar:
            callbacks.append(TQDMProgressBar())
        trainer = L.Trainer(
            max_epochs=config.epochs,
            logger=loggers,
            callbacks=callbacks,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            default_root_dir=str(out),
            log_every_n_steps=1,
            check_val_every_n_epoch=config.val_every_n_epochs,
            **trainer_kw,
        )

        already_stopped = resume is not None and _early_stopped(resume)
        if already_stopped:
            module.on_load_checkpoint(resume)
        else:
            with torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS)):
                trainer.fit(
                    module, ckpt_path=str(ckpt_dir / "last.ckpt") if resume is not None else None, weights_only=True
                )
        status = (
            "early_stopped" if already_stopped or (early_cb is not None and early_cb.stopped_epoch > 0) else "completed"
        )
        t_train = time.perf_counter() - t_start
        last_row = dict(module.last_epoch_row)  # loading the best checkpoint below would replace it

        eval_ckpt = str(run_checkpoint(out))
        read_checkpoint(eval_ckpt, task_cls.name)  # a refused file fails here, naming it
        results: dict[str, dict[str, float]] = {}
        for split in ("valid", "test"):
            check_signal()  # training is complete: a rerun goes straight to evaluation
            if split == "test" and "test" not in module.datasets():
                continue
            module.eval_split = split
            with torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS)):
                trainer.test(module, ckpt_path=eval_ckpt, verbose=False, weights_only=True)
            results[split] = dict(module.last_eval)
        check_signal()
        report: dict[str, Any] = {}
        if rank == 0:
            module.model.eval()
            report = module.task.report(module.model, out) or {}

    best_score = best_cb.best_model_score
    summary = {
        "task": task_cls.name,
        "status": status,
        "epochs_completed": int(last_row.get("epoch", -1)) + 1,
        "global_step": int(last_row.get("global_step", 0)),
        "monitor": task_cls.monitor,
        "best_score": float(best_score)
        if best_score is not None
        else results.get("valid", {}).get(task_cls.monitor.split("/", 1)[-1]),
        "last_epoch": last_row,
        "best_valid": results.get("valid", {}),
        "test": results.get("test", {}),
        "report": report,
        "world_size": world,
        "train_time_s": t_train,
        "total_time_s": time.perf_counter() - t_start,
        "run_dir": str(out),
        "best_checkpoint": eval_ckpt,
        "last_checkpoint": str(ckpt_dir / "last.ckpt"),
    }
    if rank == 0:
        _write_json(out / "summary.json", summary)
    _close_process_group()
    return summary


def _close_process_group() -> None:
    """Tear DDP down on every rank before the interpreter exits: a gloo group left open can abort
    a process at exit ("terminate called without an active exception") after a finished run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_checkpoint(run: str | Path, *, name: str = "run") -> Path:
    """The checkpoint that stands for a run: ``run`` itself if it is a file, else the run folder's
    ``checkpoints/best.ckpt``, else its ``checkpoints/last.ckpt``.

    Raises ``ValueError`` starting with ``name`` when there is none.
    """
    path = Path(run)
    if path.is_file():
        return path
    for ckpt in ("best.ckpt", "last.ckpt"):
        if (path / "checkpoints" / ckpt).is_file():
            return path / "checkpoints" / ckpt
    raise ValueError(
        f"{name}: {str(path)!r} is neither a checkpoint file nor a run folder with "
        "checkpoints/best.ckpt or checkpoints/last.ckpt"
    )


def _early_stopped(ckpt: dict[str, Any]) -> bool:
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).startswith("EarlyStopping") and isinstance(state, dict) and state.get("stopped_epoch", 0) > 0:
            return True
    return False


def _restore_csv(logger, path: Path, last_logged_epoch: int | None) -> None:
    """Keep the rows of epochs already in the checkpoint when a run resumes (the logger empties the file)."""
    rows: list[dict[str, str]] = []
    if last_logged_epoch is not None and path.is_file():
        with open(path, newline="") as fh:
            rows = [
                r
                for r in csv.DictReader(fh)
                if r.get("epoch") not in (None, "") and float(r["epoch"]) <= last_logged_epoch
            ]
    writer = logger.experiment  # creating the writer removes the old file
    if rows:
        writer.metrics.extend({k: v for k, v in r.items() if v != ""} for r in rows)
        writer.save()


# ------------------------------------------------------------------------------------------- evaluate


def load_model(checkpoint: str | Path, task: str | None = None) -> tuple[torch.nn.Module, Task]:
    """The trained model (eval mode, CPU, checkpoint dtype) and its task, from a checkpoint.

    Raises
    ------
    ValueError
        As ``read_checkpoint``.
    """
    from .module import TaskModule

    ckpt = read_checkpoint(checkpoint, task)
    hp = ckpt["hyper_parameters"]
    module = TaskModule(hp["task"], hp["config"])
    if hp["config"].get("dtype") == "float64":
        module = module.double()
    module.load_state_dict(ckpt["state_dict"])
    module.model.eval()
    return module.model, module.task


def evaluate(
    checkpoint: str | Path,
    task: str | None = None,
    *,
    split: str = "test",
    device: str = "auto",
    batch_size: int | None = None,
    eval_samples: int = 1,
    overrides: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Metrics of a checkpoint on one split (example-weighted means over the whole split).

    Parameters
    ----------
    checkpoint : path
        A ``.ckpt`` written by ``fit``.
    task : str, optional
        If given, the checkpoint must belong to this task.
    split : {"test", "valid", "train"}
    device : {"auto", "cpu", "cuda"}
    batch_size : int, optional
        Evaluation batch size (default: the training config's).  The metrics do not depend on it:
        the model's random draws of each example are keyed by its index in the split
        (``lieconv.random.ExampleRandom`` with the run's seed).
    eval_samples : int
        Test-time averaging: metrics of the model output averaged over this many independent
        draws (lift samples and neighbourhoods).
    overrides : dict, optional
        Config fields replaced for the evaluation, e.g. ``{"data": "mine.npz"}`` (springs: your own
        data); each must be a field of the task's config.

    Raises
    ------
    ValueError
        Missing/corrupt checkpoint, another task's checkpoint, unknown split or device.
    """
    import lightning as L

    from .module import TaskModule

    if isinstance(eval_samples, bool) or not isinstance(eval_samples, int) or eval_samples < 1:
        raise ValueError(f"eval_samples: expected an int >= 1, got {eval_samples!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    ckpt = read_checkpoint(checkpoint, task)
    hp = ckpt["hyper_parameters"]
    cfg = dict(hp["config"], device=device)
    if batch_size is not None:
        cfg["batch_size"] = batch_size
    for key, value in (overrides or {}).items():
        if key not in cfg:
            raise ValueError(f"{key}: task {hp['task']!r} has no option {key!r} to override for evaluation")
        cfg[key] = value
    accelerator = resolve_accelerator(device)
    with _quiet_lightning():
        module = TaskModule(hp["task"], cfg)
        splits = module.datasets()
        if split not in splits:
            raise ValueError(f"split: unknown split {split!r}; choose from {sorted(splits)}")
        module.eval_split = split
        module.eval_samples = eval_samples
        module.load_state_dict(ckpt["state_dict"])
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=_PRECISION[cfg.get("dtype", "float32")],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
        )
        trainer.test(module, verbose=False)
    return dict(module.last_eval)
