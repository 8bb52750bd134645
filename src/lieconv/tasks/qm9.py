"""QM9 molecular property regression with ``MoleculeLieResNet`` (paper §5.2, Tables 2-4, B.1, C.5).

One model per target (config field ``target``: ``--target homo``, or ``--task homo`` where the CLI
honours the field's ``aliases`` metadata; any of the 12 in :data:`lieconv.datasets.qm9.TARGETS`) and
per group (``--group``: Trivial3, T3, SO3, SE3).  Per-group defaults follow the paper's commands:
T(3) and Trivial take every atom as the neighbourhood (``fill`` 1, ``nbhd`` 100 > 29 atoms, one
lift sample); SO(3) and SE(3) use ``alpha`` 0.2, ``fill`` 1/2, ``nbhd`` 25 and 4 lift samples.
``nbhd``, ``fill`` and ``liftsamples`` set to 0 mean "the group's default".

Loss: L1 on standardised targets ``(y - mean) / std`` (train statistics of the full 100k split).
Metrics: ``loss`` (that L1), ``mae`` (MAE in the paper's units, see :data:`TARGETS`) and the same
number under a name carrying the unit, e.g. ``mae_meV``; the best checkpoint is the one with the
lowest ``valid/mae`` (the paper's early stopping on the validation MAE).
SO(3) augmentation (``--augment``) rotates every training batch by Haar-random rotations
(:class:`lieconv.datasets.transforms.RandomSO3`, one per molecule) drawn from the trainer's per-step
seed, so a resumed run draws the same rotations.

Extra commands: ``lieconv equivariance qm9 --checkpoint ...`` (Table 4: test MAE as is and with
every molecule moved by a random T(3), SO(3), SE(3) element) and ``lieconv benchmark qm9 ...``
(time per training step / epoch and peak memory).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..training.task import Task, TaskCommand, TrainConfig, register_task

__all__ = [
    "GROUPS",
    "GROUP_DEFAULTS",
    "QM9_TARGETS",
    "QM9Config",
    "QM9Task",
    "unit_suffix",
    "subset_indices",
    "equivariance_table",
    "format_equivariance",
    "benchmark_steps",
]

#: The 12 targets and their units (same order as ``lieconv.datasets.qm9.TARGETS``, repeated here so that
#: importing this module does not import the data module).
QM9_TARGETS = {
    "alpha": "bohr^3",
    "gap": "meV",
    "homo": "meV",
    "lumo": "meV",
    "mu": "D",
    "Cv": "cal/(mol K)",
    "G": "meV",
    "H": "meV",
    "r2": "bohr^2",
    "U": "meV",
    "U0": "meV",
    "zpve": "meV",
}
GROUPS = ("Trivial3", "T3", "SO3", "SE3")
#: Per-group model options of the paper's commands: (nbhd, fill, liftsamples).
GROUP_DEFAULTS = {"Trivial3": (100, 1.0, 1), "T3": (100, 1.0, 1), "SO3": (25, 0.5, 4), "SE3": (25, 0.5, 4)}
GROUP_LABELS = {"Trivial3": "Trivial", "T3": "T(3)", "SO3": "SO(3)", "SE3": "SE(3)"}


def unit_suffix(unit: str) -> str:
    """A metric-name-safe spelling of a unit: ``meV``, ``D``, ``bohr3``, ``bohr2``, ``cal_per_mol_K``."""
    text = unit.replace("^", "").replace("/", " per ").replace("(", " ").replace(")", " ")
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def subset_indices(n: int, size: int, seed: int) -> list[int] | None:
    """A seeded random subset of ``range(n)`` of ``size`` elements, sorted; None for all (``size`` 0 or >= n).

    Random rather than the first ids: GDB ids are ordered by molecule size.
    """
    if size <= 0 or size >= n:
        return None
    g = torch.Generator().manual_seed(int(seed))
    return sorted(torch.randperm(n, generator=g)[:size].tolist())


@dataclass
class QM9Config(TrainConfig):
    """Options of the QM9 task; defaults are the paper's (appendix C.5)."""

    epochs: int = field(default=1000, metadata={"help": "training epochs"})
    batch_size: int = field(default=100, metadata={"help": "batch size"})
    lr: float = field(default=3e-3, metadata={"help": "peak Adam learning rate"})
    warmup_epochs: float = field(
        default=10.0, metadata={"help": "linear warm-up in epochs (1% of training, as in the original code)"}
    )
    target: str = field(
        default="homo",
        metadata={
            "choices": list(QM9_TARGETS),
            "aliases": ["--task"],
            "help": "the QM9 property to predict (one model per property)",
        },
    )
    group: str = field(
        default="T3", metadata={"choices": list(GROUPS), "help": "equivariance group of the LieConv layers"}
    )
    k: int = field(default=1536, metadata={"help": "channels of the bottleneck blocks"})
    num_layers: int = field(default=6, metadata={"help": "bottleneck blocks"})
    nbhd: int = field(
        default=0, metadata={"help": "Monte-Carlo neighbourhood size; 0 = group default (T3/Trivial3 100, SO3/SE3 25)"}
    )
    fill: float = field(default=0.0, metadata={"help": "neighbourhood fraction; 0 = group default (1 or 1/2)"})
    liftsamples: int = field(default=0, metadata={"help": "lift samples per atom; 0 = group default (1 or 4)"})
    alpha: float = field(default=0.2, metadata={"help": "weight of the group part of the distance (SO3/SE3)"})
    augment: bool = field(default=True, metadata={"help": "random SO(3) rotations of the training molecules"})
    center: bool = field(default=False, metadata={"help": "subtract each molecule's mean atom position first"})
    n_train: int = field(default=0, metadata={"help": "training molecules, a seeded random subset; 0 = all 100,000"})
    n_valid: int = field(default=0, metadata={"help": "validation molecules (subset); 0 = all 17,748"})
    n_test: int = field(default=0, metadata={"help": "test molecules (subset); 0 = all 13,083"})
    subset_seed: int = field(default=0, metadata={"help": "seed of the n_train/n_valid/n_test subsets"})
    data_root: str = field(
        default="", metadata={"help": "cache folder of the processed data; '' = $LIECONV_DATA or ~/.cache/lieconv"}
    )
    data_source: str = field(
        default="", metadata={"help": "folder with qm9_part{1,2,3}.csv; '' = the qm9pack package (checksum-verified)"}
    )
    split_train: int = field(
        default=100_000,
        metadata={
            "help": "training-split size of the Cormorant split recipe (100,000; smaller only for small custom sources)"
        },
    )


@register_task
class QM9Task(Task):
    """QM9: one molecular property from the atoms' positions and species (L1 on standardised targets)."""

    name = "qm9"
    config_class = QM9Config
    presets = {
        "paper": {},
        # one CPU thread: about 3 min for T3 and 14 min for SE3 (4 lift samples), training + evaluation
        "quick": {
            "epochs": 10,
            "batch_size": 50,
            "warmup_epochs": 0.1,
            "k": 128,
            "num_layers": 3,
            "n_train": 3000,
            "n_valid": 500,
            "n_test": 2000,
        },
    }
    monitor = "valid/mae"
    monitor_mode = "min"
    config: QM9Config

    def __init__(self, config: QM9Config):
        super().__init__(config)
        self._data: dict[str, Any] | None = None
        self.stats: tuple[float, float] | None = None

    # ------------------------------------------------------------------------------------- data
    @property
    def unit(self) -> str:
        return QM9_TARGETS[self.config.target]

    @property
    def mae_name(self) -> str:
        return f"mae_{unit_suffix(self.unit)}"

    def load_split(self, split: str, subset: int | None = None):
        """One split of QM9 for this config's target (a seeded subset if ``subset`` > 0).

        Raises
        ------
        ValueError
            Bad data (element outside H, C, N, O, F; malformed CSV; checksum mismatch), naming the file.
        FileNotFoundError
            Missing CSV files / qm9pack not installable.
        """
        from torch.utils.data import Subset

        from ..datasets.qm9 import QM9Dataset

        c = self.config
        custom = bool(c.data_source)
        ds = QM9Dataset(
            split,
            root=c.data_root or None,
            targets=[c.target],
            source=c.data_source or None,
            verify=not custom,
            n_train=c.split_train,
        )
        self.stats = ds.stats[c.target]
        idx = subset_indices(len(ds), subset or 0, c.subset_seed + {"train": 0, "valid": 1, "test": 2}[split])
        return ds if idx is None else _KeepStats(Subset(ds, idx), ds)

    def datasets(self) -> dict[str, torch.utils.data.Dataset]:
        if self._data is None:
            c = self.config
            try:
                self._data = {
                    split: self.load_split(split, n)
                    for split, n in (("train", c.n_train), ("valid", c.n_valid), ("test", c.n_test))
                }
            except (ValueError, FileNotFoundError) as exc:  # keep the type (QM9FormatError, ChecksumError, ...)
                try:
                    err = type(exc)(f"qm9 data: {exc}")
                except Exception:
                    raise exc from None
                raise err from None
            std = self.stats[1]
            if not std > 0:
                raise ValueError(
                    f"qm9 data: target {c.target!r} has zero spread over the training split; cannot standardise it"
                )
        return self._data

    def collate(self, items: list) -> dict[str, Tensor]:
        from ..datasets.qm9 import collate_molecules

        return collate_molecules(items)

    def batch_size_of(self, batch: dict[str, Tensor]) -> int:
        return int(batch["positions"].shape[0])

    # ------------------------------------------------------------------------------------- model
    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of ``MoleculeLieResNet`` after resolving the group defaults."""
        c = self.config
        nbhd, fill, lifts = GROUP_DEFAULTS[c.group]
        return dict(
            k=c.k,
            num_layers=c.num_layers,
            nbhd=c.nbhd or nbhd,
            fill=c.fill or fill,
            liftsamples=c.liftsamples or lifts,
            center=c.center,
        )

    def build_model(self) -> nn.Module:
        from ..groups import get_group
        from ..models.molecule import MoleculeLieResNet

        c = self.config
        for name in ("k", "num_layers", "nbhd", "liftsamples", "n_train", "n_valid", "n_test"):
            if getattr(c, name) < 0 or (name in ("k", "num_layers") and getattr(c, name) < 1):
                raise ValueError(
                    f"config: {name}: must be {'>= 1' if name in ('k', 'num_layers') else '>= 0'}, "
                    f"got {getattr(c, name)}"
                )
        if not 0 <= c.fill <= 1:
            raise ValueError(f"config: fill: must be in [0, 1], got {c.fill}")
        # Read (and check) the data now, so bad data fails before Lightning starts; stats are needed anyway.
        self.datasets()
        group = get_group(c.group, alpha=c.alpha) if c.group in ("SO3", "SE3") else get_group(c.group)
        return MoleculeLieResNet(15, group=group, **self.model_options())

    # ------------------------------------------------------------------------------------- loss
    def predict(self, model: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Predictions in the target's units, shape (B,)."""
        mean, std = self._stats()
        p = next(model.parameters())
        out = model(
            batch["positions"].to(p.device, p.dtype),
            batch["features"].to(p.device, p.dtype),
            batch["mask"].to(p.device),
            generator=generator,
        )
        return out * std + mean

    def _stats(self) -> tuple[float, float]:
        if self.stats is None:
            self.datasets()
        return self.stats

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        mean, std = self._stats()
        if model.training and self.config.augment:
            from ..datasets.transforms import RandomSO3

            batch = dict(batch, positions=RandomSO3()(batch["positions"], batch["mask"]))
        p = next(model.parameters())
        pred = model(
            batch["positions"].to(p.device, p.dtype),
            batch["features"].to(p.device, p.dtype),
            batch["mask"].to(p.device),
        )
        y = (batch[self.config.target].to(p.device, p.dtype) - mean) / std
        err = (pred - y).abs()
        l1 = err.mean()
        mae = (err.detach() * std).mean()
        return l1, {"mae": mae, self.mae_name: mae}

    def configure_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def report(self, model: nn.Module, run_dir) -> dict[str, Any]:
        c = self.config
        return {
            "target": c.target,
            "unit": self.unit,
            "group": c.group,
            "augment": c.augment,
            "model_options": self.model_options(),
            "train_stats": list(self._stats()),
        }


class _KeepStats(torch.utils.data.Dataset):
    """A ``Subset`` that keeps the parent's ``stats`` and ``units``."""

    def __init__(self, subset, parent):
        self.subset, self.stats, self.units = subset, parent.stats, parent.units

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, i: int):
        return self.subset[i]


# ------------------------------------------------------------------------------------------- equivariance


def _column_transform(column: str, std: float, generator: torch.Generator):
    from ..datasets.transforms import RandomSE3, RandomSO3, RandomTranslation3d

    if column == "N":
        return lambda x, m: x
    if column == "T(3)":
        return RandomTranslation3d(translation_std=std, generator=generator)
    if column == "SO(3)":
        return RandomSO3(generator=generator)
    if column == "SE(3)":
        return RandomSE3(translation_std=std, generator=generator)
    raise ValueError(f"unknown column {column!r}")


COLUMNS = ("N", "T(3)", "SO(3)", "SE(3)")


@torch.no_grad()
def equivariance_table(
    model: nn.Module,
    task: QM9Task,
    *,
    n_test: int | None = None,
    seed: int = 0,
    translation_std: float = 0.5,
    batch_size: int | None = None,
    columns: tuple[str, ...] = COLUMNS,
) -> dict[str, float]:
    """Test MAE (target units) with every test molecule moved by a random element of each group.

    Each column transforms every molecule by its own random element (T(3): ``t ~ N(0, std² I)``;
    SO(3): Haar rotation about the origin; SE(3): both), drawn from a generator seeded with ``seed``;
    the model's own sampling (lift samples) uses a generator with the same seed in every column,
    so columns differ only by the transformation.

    Parameters
    ----------
    model, task
        From :func:`lieconv.training.load_model`.
    n_test
        Test molecules (seeded random subset); None = the checkpoint's ``n_test``; 0 = all.
    seed, translation_std, batch_size
        Seed of the transformations, std of the translations (Å; 0.5 as in the paper), batch size.

    Returns
    -------
    dict
        ``{column: MAE}`` for ``N`` (as is), ``T(3)``, ``SO(3)``, ``SE(3)``.
    """
    from torch.utils.data import DataLoader, Subset

    c = task.config
    full = task.load_split("test")
    n = c.n_test if n_test is None else n_test
    idx = subset_indices(len(full), n, c.subset_seed + 2)
    data = full if idx is None else Subset(full, idx)
    model.eval()
    out = {}
    for column in columns:
        g_data = torch.Generator().manual_seed(seed)
        g_model = torch.Generator().manual_seed(seed + 1)
        transform = _column_transform(column, translation_std, g_data)
        total, count = 0.0, 0
        for batch in DataLoader(data, batch_size=batch_size or c.batch_size, shuffle=False, collate_fn=task.collate):
            batch = dict(batch, positions=transform(batch["positions"], batch["mask"]))
            pred = task.predict(model, batch, generator=g_model).double().cpu()
            total += float((pred - batch[c.target].double()).abs().sum())
            count += len(pred)
        out[column] = total / count
    return out


def format_equivariance(results: dict[str, float], task: QM9Task) -> str:
    """Table 4's layout: one row ``Model  N/N  N/T(3)  N/SO(3)  N/SE(3)`` (``A/...`` if trained with augmentation)."""
    c = task.config
    train = "A" if c.augment else "N"
    head = ["Model"] + [f"{train}/{col}" for col in results]
    row = [GROUP_LABELS[c.group]] + [f"{v:.4g}" for v in results.values()]
    widths = [max(len(a), len(b), 8) for a, b in zip(head, row)]
    lines = [
        f"test MAE ({task.unit}) on QM9 {c.target}, test molecules transformed by random group elements"
        + ("" if not c.augment else "; note: this model was trained WITH SO(3) augmentation"),
        "  ".join(h.ljust(w) for h, w in zip(head, widths)),
        "  ".join(r.ljust(w) for r, w in zip(row, widths)),
    ]
    return "\n".join(lines)


def _equivariance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a qm9 .ckpt (e.g. RUN/checkpoints/best.ckpt)")
    p.add_argument(
        "--n-test",
        "--n_test",
        dest="n_test",
        type=int,
        default=None,
        help="test molecules (seeded random subset); default: the checkpoint's n_test; 0 = all",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random group elements (default: 0)")
    p.add_argument(
        "--translation-std",
        dest="translation_std",
        type=float,
        default=0.5,
        help="std of the random translations in Å (default: 0.5, as in the paper)",
    )
    p.add_argument(
        "--batch-size",
        "--batch_size",
        dest="batch_size",
        type=int,
        default=None,
        help="evaluation batch size (default: the training one)",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results to this JSON file")


def _run_equivariance(args: argparse.Namespace) -> int:
    from ..training.trainer import load_model

    if args.n_test is not None and args.n_test < 0:
        raise ValueError(f"n_test: must be >= 0, got {args.n_test}")
    model, task = load_model(args.checkpoint, "qm9")
    results = equivariance_table(
        model,
        task,
        n_test=args.n_test,
        seed=args.seed,
        translation_std=args.translation_std,
        batch_size=args.batch_size,
    )
    print(format_equivariance(results, task))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "checkpoint": str(args.checkpoint),
                    "target": task.config.target,
                    "unit": task.unit,
                    "group": task.config.group,
                    "augment": task.config.augment,
                    "mae": results,
                },
                fh,
                indent=2,
            )
    return 0


# ------------------------------------------------------------------------------------------- benchmark


def benchmark_steps(task: QM9Task, steps: int = 10, warmup: int = 2) -> dict[str, float]:
    """Mean seconds per training step (forward, backward, Adam) on random training batches, and memory.

    Returns
    -------
    dict
        ``step_s``, ``epoch_s`` (step_s times the steps of one epoch), ``peak_rss_MiB`` (the process's
        ``ru_maxrss`` after the steps: includes the data and Python) and ``rss_before_MiB``.
    """
    import resource
    import time

    from ..training.data import train_steps_per_epoch

    def rss() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    torch.manual_seed(task.config.seed)
    model = task.build_model().to(getattr(torch, task.config.dtype))
    train = task.datasets()["train"]
    opt = task.configure_optimizer(model)
    model.train()
    g = torch.Generator().manual_seed(task.config.seed)
    bs = min(task.config.batch_size, len(train))
    before = rss()
    times = []
    for i in range(warmup + steps):
        idx = torch.randperm(len(train), generator=g)[:bs].tolist()
        batch = task.collate([train[j] for j in idx])
        t0 = time.perf_counter()
        loss, _ = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    return {
        "step_s": step,
        "epoch_s": step * train_steps_per_epoch(len(train), task.config.batch_size),
        "peak_rss_MiB": rss(),
        "rss_before_MiB": before,
    }


def _benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", help="preset of the model/data size (default: quick)")
    p.add_argument("--group", choices=list(GROUPS), default="T3", help="group (default: T3)")
    p.add_argument("--task", dest="target", choices=list(QM9_TARGETS), default="homo", help="target (default: homo)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default: 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")


def _run_benchmark(args: argparse.Namespace) -> int:
    from ..training.config import resolve_config

    if args.steps < 1:
        raise ValueError(f"steps: must be >= 1, got {args.steps}")
    torch.set_num_threads(args.threads)
    config = resolve_config(QM9Task, args.preset, overrides={"group": args.group, "target": args.target})
    res = benchmark_steps(QM9Task(config), steps=args.steps)
    print(
        f"qm9 {args.target} {args.group} ({args.preset} preset, batch {config.batch_size}, {args.threads} thread(s)): "
        f"{res['step_s']:.3f} s/step, {res['epoch_s']:.1f} s/epoch (training steps only), "
        f"peak RSS {res['peak_rss_MiB']:.0f} MiB (before the steps: {res['rss_before_MiB']:.0f} MiB)"
    )
    return 0


QM9Task.commands = {
    "equivariance": TaskCommand(
        help="Table 4: test MAE as is and with molecules moved by random T(3), SO(3), SE(3) elements",
        add_arguments=_equivariance_args,
        run=_run_equivariance,
    ),
    "benchmark": TaskCommand(
        help="time per training step / epoch and peak memory of a preset",
        add_arguments=_benchmark_args,
        run=_run_benchmark,
    ),
}
