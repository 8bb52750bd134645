"""The spring-dynamics task (paper §6, appendix C.4, Figures 6–8): train dynamics models through an ODE solver.

Data: :class:`lieconv.datasets.springs.SpringsDataset` — 6 bodies in 2-D, one segment of ``1 + 4``
states per system (``dt = 0.01``); item ``((z0 (D,), ts (5,), sys_params (6, 2)), z_target (4, D))``.

Models (``MODELS``, field ``model``):

==================  ============================================================  ==============
name                dz/dt                                                         conserves
==================  ============================================================  ==============
``HLieResNet``      ``J ∇H``, ``H = K(p,m) + V_θ(q; m,k)``, V an invariant LieResNet  E; P (T2, SO2*);
                    (``group``: Trivial2, T2, SO2, SO2*)                              L (SO2, SO2*)
``LieConvDirect``   a T(2)-equivariant LieResNet per particle (LieConv-T(2))      —
``FC`` / ``HFC``    MLP / Hamiltonian MLP                                         — / E
``OGN`` / ``HOGN``  graph network / Hamiltonian graph network (centred)           — / E, P
==================  ============================================================  ==============

Training (eq. 11): the model is integrated from ``z0`` over the segment's times by ``integrator``
(RK4 at the data step, as in the paper; ``leapfrog`` for separable models) and the loss is

    MSE = 1/(4·D) Σ_{t=1..4} ‖ẑ_t − z_t‖²           (eq. 11 divided by the state size D = 24),

with Adam, cosine decay, batch 200 and the best validation MSE checkpoint (early stopping).

After training, :meth:`SpringsTask.report` rolls the model out for ``rollout_steps`` steps from the
initial states (t = 0) of the first ``rollout_systems`` test systems and compares with the exact
(normal-mode) solution: relative state, energy, linear- and angular-momentum errors
(:mod:`lieconv.dynamics.evaluate`), printed as a table and drawn as ``figures/rollout_errors.png``
(Figure 7) and ``figures/trajectory.png`` (Figure 6); the curves go to ``rollout.pt``.

Extra command: ``lieconv sweep springs --sizes 100 300 1000 --models HLieResNet HFC`` (Figure 8),
see :func:`run_sweep`.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..training.task import Task, TaskCommand, TrainConfig, register_task

__all__ = ["SpringsTaskConfig", "SpringsTask", "MODELS", "GROUP_CHOICES", "build_dynamics_model", "resolve_lr",
           "check_batch", "rollout_report", "run_sweep", "run_demo"]

MODELS = ("HLieResNet", "LieConvDirect", "FC", "HFC", "OGN", "HOGN")
LIECONV_MODELS = ("HLieResNet", "LieConvDirect")
SEPARABLE_MODELS = ("HLieResNet",)
GROUP_CHOICES = ("auto", "Trivial2", "T2", "SO2", "SO2*")
INTEGRATORS = ("rk4", "leapfrog", "euler", "dopri5")
#: Adam learning rates of C.4 (used when ``lr = 0``).
PAPER_LR = {"HLieResNet": 1e-3, "LieConvDirect": 1e-3, "FC": 1e-2, "HFC": 1e-2, "OGN": 1e-2, "HOGN": 1e-2}


@dataclass
class SpringsTaskConfig(TrainConfig):
    """Options of the spring task; the defaults are the paper's (C.4)."""

    epochs: int = field(default=100, metadata={"help": "training epochs"})
    batch_size: int = field(default=200, metadata={"help": "batch size (systems per step)"})
    lr: float = field(default=0.0, metadata={
        "help": "peak Adam learning rate; 0 = the paper's per model: 1e-3 for LieConv models, 1e-2 for (H)FC/(H)OGN"})
    early_stopping_patience: int = field(default=20, metadata={
        "help": "epochs without a better validation MSE before stopping (the best checkpoint is evaluated); 0 = off"})
    model: str = field(default="HLieResNet", metadata={"choices": list(MODELS), "help": "dynamics model"})
    group: str = field(default="auto", metadata={
        "choices": list(GROUP_CHOICES),
        "help": "LieConv group; SO2* = SO(2) on centred positions (SE(2)-invariant V); "
                "auto = SO2* for HLieResNet, T2 for LieConvDirect; baselines take none"})
    integrator: str = field(default="rk4", metadata={
        "choices": list(INTEGRATORS), "help": "ODE solver used in training and rollouts (leapfrog: separable H only)"})
    substeps: int = field(default=1, metadata={"min": 1, "help": "solver steps per data step (fixed-step solvers)"})
    k: int = field(default=384, metadata={"min": 1, "help": "LieResNet channels"})
    kernel_input: str = field(default="smooth", metadata={
        "choices": ["smooth", "log"],
        "help": "HLieResNet kernel inputs: smooth = (cos, sin) of relative angles, log = the paper's wrapped angle"})
    num_layers: int = field(default=4, metadata={"min": 0, "help": "LieResNet bottleneck blocks"})
    hidden: int = field(default=256, metadata={"min": 1, "help": "hidden width of the (H)FC / (H)OGN baselines"})
    baseline_layers: int = field(default=0, metadata={"min": 0, 
        "help": "hidden layers of the baselines; 0 = the paper's (4 for (H)FC, 1 for (H)OGN)"})
    n_train: int = field(default=3000, metadata={"min": 1, "help": "training systems"})
    n_valid: int = field(default=2000, metadata={"min": 1, "help": "validation systems"})
    n_test: int = field(default=2000, metadata={"min": 1, "help": "test systems"})
    data_seed: int = field(default=0, metadata={"help": "seed of the generated data set (independent of --seed)"})
    gt_method: str = field(default="rk4", metadata={
        "choices": ["rk4", "dopri5", "exact"],
        "help": "ground truth of the data: float64 RK4 (paper), dopri5, or the exact normal-mode solution"})
    data_root: str = field(default="", metadata={"help": "data cache folder; '' = $LIECONV_DATA/springs"})
    rollout_steps: int = field(default=100, metadata={"min": 2, "help": "steps (dt = 0.01) of the long test rollouts"})
    rollout_systems: int = field(default=200, metadata={"min": 0, 
        "help": "test systems rolled out in the report; 0 = no rollouts"})
    rollout_float64: bool = field(default=True, metadata={
        "help": "roll out a float64 copy of the trained model (conservation then shows to ~1e-14)"})
    figures: bool = field(default=True, metadata={"help": "write figures/*.png after training"})


# ---------------------------------------------------------------------------------------------- models
def resolve_group(model: str, group: str) -> str | None:
    """The group a model is built with: ``auto`` -> SO2* (HLieResNet) / T2 (LieConvDirect); None for baselines.

    Raises
    ------
    ValueError
        Unknown model or group, or a group given to a baseline.
    """
    if model not in MODELS:
        raise ValueError(f"model: unknown model {model!r}; choose from {list(MODELS)}")
    if group not in GROUP_CHOICES:
        raise ValueError(f"group: unknown group {group!r}; choose from {list(GROUP_CHOICES)}")
    if model not in LIECONV_MODELS:
        if group != "auto":
            raise ValueError(f"group: model {model!r} has no group (only {list(LIECONV_MODELS)}); use --group auto")
        return None
    if group == "auto":
        return "SO2*" if model == "HLieResNet" else "T2"
    if model == "LieConvDirect" and group not in ("Trivial2", "T2"):
        raise ValueError(f"group: model 'LieConvDirect' outputs vectors, equivariant only for "
                         f"['Trivial2', 'T2'], got {group!r}")
    return group


def resolve_lr(config: SpringsTaskConfig) -> float:
    """``config.lr``, or the paper's rate for ``config.model`` when it is 0."""
    return float(config.lr) if config.lr > 0 else PAPER_LR[config.model]


def build_dynamics_model(config: SpringsTaskConfig) -> nn.Module:
    """The vector-field model ``(t, z, sys_params) -> dz/dt`` named by ``config.model``."""
    from ..models.baselines import build_baseline
    from ..models.hamiltonian import HLieResNet, LieResNetDynamics

    group = resolve_group(config.model, config.group)
    if config.model == "HLieResNet":
        return HLieResNet(group, k=config.k, num_layers=config.num_layers, kernel_input=config.kernel_input)
    if config.model == "LieConvDirect":
        return LieResNetDynamics(group, k=config.k, num_layers=config.num_layers)
    kw: dict[str, Any] = {"hidden": config.hidden}
    if config.baseline_layers > 0:
        kw["num_layers"] = config.baseline_layers
    return build_baseline(config.model, **kw)


def model_label(config: SpringsTaskConfig) -> str:
    """E.g. ``"HLieResNet-SO2*"``, ``"LieConvDirect-T2"``, ``"HFC"``."""
    group = resolve_group(config.model, config.group)
    return config.model if group is None else f"{config.model}-{group}"


# ---------------------------------------------------------------------------------------------- batches
def check_batch(z0: Tensor, ts: Tensor, sys_params: Tensor, z_target: Tensor | None = None, *,
                n_bodies: int = 6, dim: int = 2) -> None:
    """Validate one batch; raises ``ValueError`` naming the offending argument.

    Shapes: ``z0 (B, D)``, ``ts (B, L)`` or ``(L,)``, ``sys_params (B, n, 2)`` with positive masses,
    ``z_target (B, L-1, D)``; ``D = 2·n·d``; everything finite.
    """
    from ..models.baselines import check_rollout_inputs

    D = 2 * n_bodies * dim
    if not isinstance(z0, Tensor) or z0.dim() != 2 or z0.shape[-1] != D:
        raise ValueError(f"z0: expected shape (B, {D}), got {tuple(getattr(z0, 'shape', ()))}")
    check_rollout_inputs(z0, sys_params, n_bodies)   # shapes, finite values, positive masses
    B = z0.shape[0]
    if not isinstance(ts, Tensor) or ts.dim() not in (1, 2) or (ts.dim() == 2 and ts.shape[0] != B):
        raise ValueError(f"ts: expected shape (L,) or (B, L) with B = {B}, got {tuple(getattr(ts, 'shape', ()))}")
    if z_target is not None and (not isinstance(z_target, Tensor)
                                 or z_target.shape != (B, ts.shape[-1] - 1, D)):
        raise ValueError(f"z_target: expected shape (B, L-1, D) = ({B}, {ts.shape[-1] - 1}, {D}), "
                         f"got {tuple(getattr(z_target, 'shape', ()))}")
    if z_target is not None and not torch.isfinite(z_target).all():
        raise ValueError("z_target: expected finite states, got NaN or inf")


def _normal_tensors(batch: Any) -> Any:
    """Clone inference-mode tensors (Lightning evaluates under ``torch.inference_mode``) into ordinary
    ones, so that the Hamiltonian models can take ``∇_z H`` by autograd during evaluation."""
    if isinstance(batch, Tensor):
        return batch.clone() if batch.is_inference() else batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(_normal_tensors(b) for b in batch)
    return batch


# ---------------------------------------------------------------------------------------------- task
@register_task
class SpringsTask(Task):
    """Spring dynamics (paper §6): HLieResNet and baselines trained through an ODE solver."""

    name = "springs"
    config_class = SpringsTaskConfig
    presets = {
        "paper": {},
        # sized for a 2-core CPU (the demo trains it for HLieResNet-SO2* and HFC in ~3-5 minutes together):
        # small LieResNet, 320 steps of 50 systems, lr 5e-3 for every model (HLieResNet converges too
        # slowly for this budget at its paper rate 1e-3 and is erratic at 1e-2; HFC does about as well
        # at 5e-3 as at its paper rate 1e-2)
        "quick": {"epochs": 16, "batch_size": 50, "lr": 5e-3, "n_train": 1000, "n_valid": 200, "n_test": 500,
                  "k": 64, "num_layers": 2, "early_stopping_patience": 0, "rollout_systems": 100},
    }
    monitor = "valid/loss"
    monitor_mode = "min"
    config: SpringsTaskConfig

    def __init__(self, config: SpringsTaskConfig):
        super().__init__(config)
        resolve_group(config.model, config.group)             # fail early on a bad combination
        if config.integrator == "leapfrog" and config.model not in SEPARABLE_MODELS:
            raise ValueError(f"integrator: 'leapfrog' needs a separable Hamiltonian model {list(SEPARABLE_MODELS)}, "
                             f"got model {config.model!r}; use rk4")
        self._data: dict | None = None

    # -------------------------------------------------------------------------------------- data
    def datasets(self) -> dict[str, torch.utils.data.Dataset]:
        if self._data is None:
            from ..datasets.springs import SpringsDataset

            c = self.config
            kw = dict(root=c.data_root or None, seed=c.data_seed, dtype=getattr(torch, c.dtype),
                      keep_trajectories=False, method=c.gt_method)
            self._data = {split: SpringsDataset(split, size=n, **kw)
                          for split, n in (("train", c.n_train), ("valid", c.n_valid), ("test", c.n_test))}
        return self._data

    # -------------------------------------------------------------------------------------- model
    def build_model(self) -> nn.Module:
        """``ModelDynamics(vector field, method=integrator)``: ``(z0, ts, sys_params) -> (B, L, D)``."""
        from ..models.baselines import ModelDynamics

        return ModelDynamics(build_dynamics_model(self.config), method=self.config.integrator,
                             substeps=self.config.substeps)

    def configure_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=resolve_lr(self.config), weight_decay=self.config.weight_decay)

    def batch_size_of(self, batch: Any) -> int:
        return int(batch[1].shape[0])

    # -------------------------------------------------------------------------------------- loss
    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """MSE over the 4 predicted states of each segment (eq. 11 / D)."""
        (z0, ts, sys_params), z_target = batch
        check_batch(z0, ts, sys_params, z_target)
        pred = model(z0, ts, sys_params)[:, 1:]
        mse = (pred - z_target).pow(2).mean()
        return mse, {}

    def metrics(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        with torch.inference_mode(False), torch.no_grad():
            loss, _ = self.loss(model, _normal_tensors(batch))
        return {"loss": loss.detach()}

    # -------------------------------------------------------------------------------------- report
    def report(self, model: nn.Module, run_dir: Path) -> dict[str, Any]:
        """Long test rollouts (Figure 7 a–c numbers and curves), a trajectory figure (Figure 6)."""
        c = self.config
        if c.rollout_systems == 0:
            return {}
        res = rollout_report(model, self.datasets()["test"], n_systems=c.rollout_systems, n_steps=c.rollout_steps,
                             float64=c.rollout_float64)
        label = model_label(c)
        from ..dynamics.evaluate import format_error_table

        print(f"rollouts: {res['pred'].shape[0]} test systems, {c.rollout_steps} steps of dt = 0.01, "
              f"integrator {c.integrator}; time-averaged relative errors (geometric mean over systems):")
        print(format_error_table({label: res["summary"]}))
        run_dir = Path(run_dir)
        torch.save({"label": label, "ts": res["ts"], "errors": res["errors"], "summary": res["summary"],
                    "pred": res["pred"][:4].to(torch.float64), "true": res["true"][:4]}, run_dir / "rollout.pt")
        out = {f"rollout_{k}": v for k, v in res["summary"].items()}
        if c.figures:
            from ..plots.dynamics import plot_rollout_errors, plot_trajectories

            fig = run_dir / "figures"
            paths = [plot_rollout_errors({label: res["errors"]}, res["ts"], fig / "rollout_errors.png"),
                     plot_trajectories(res["true"][0], {label: res["pred"][0]}, fig / "trajectory.png")]
            out["figures"] = [str(p) for p in paths]
        return out


# ---------------------------------------------------------------------------------------------- rollouts
def rollout_report(model: nn.Module, test_set, *, n_systems: int, n_steps: int, float64: bool = True) -> dict:
    """Roll ``model`` out from the t = 0 states of the first ``n_systems`` test systems.

    The truth is the exact normal-mode solution (float64) at ``0.01·arange(n_steps)``.

    Parameters
    ----------
    model : nn.Module
        ``ModelDynamics``-like: ``(z0 (B, D), ts (T,), sys_params (B, n, 2)) -> (B, T, D)``.
    test_set : SpringsDataset
        Its ``z_init (S, D)`` and ``sys_params (S, n, 2)``.
    float64 : bool
        Roll out a float64 copy of the model (weights cast), else the model's own dtype.

    Returns
    -------
    dict
        ``pred``, ``true`` ``(B, T, D)``, ``ts (T,)``, ``errors {quantity: (B, T)}``, ``summary {quantity: float}``.
    """
    from ..datasets.springs import spring_exact_solution
    from ..dynamics.evaluate import rollout, rollout_errors, summarize_errors

    S = min(int(n_systems), len(test_set))
    z_init = test_set.z_init[:S].to(torch.float64)
    sp64 = test_set.sys_params[:S].to(torch.float64)
    ts = test_set.config.dt * torch.arange(n_steps, dtype=torch.float64)
    true = spring_exact_solution(z_init, sp64[..., 0], sp64[..., 1], ts)
    param = next(model.parameters(), None)
    if float64:
        model, dtype = copy.deepcopy(model).double(), torch.float64
    else:
        dtype = param.dtype if param is not None else torch.float32
    was_training = model.training
    model.eval()
    try:
        pred = rollout(model, z_init.to(dtype), ts.to(dtype), sp64.to(dtype), batch_size=100)
    finally:
        model.train(was_training)
    errors = rollout_errors(pred, true, sp64)
    return {"pred": pred, "true": true, "ts": ts, "errors": errors, "summary": summarize_errors(errors)}


# ---------------------------------------------------------------------------------------------- sweep
def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000],
                   help="training-set sizes N (default: 100 300 1000)")
    p.add_argument("--models", nargs="+", default=["HLieResNet", "HFC"], choices=list(MODELS),
                   help="models to compare (default: HLieResNet HFC)")
    p.add_argument("--group", choices=list(GROUP_CHOICES), default="auto",
                   help="group of the LieConv models (default: auto = SO2* / T2)")
    p.add_argument("--trials", type=int, default=1, help="seeds per (model, N) (paper: 3; default 1)")
    p.add_argument("--preset", default="quick", help="springs preset for everything else (default: quick)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs at N = 1000 (default: the preset's); scaled by sqrt(1000/N) as in C.4")
    p.add_argument("--no-scale-epochs", dest="scale_epochs", action="store_false",
                   help="train every N for the same number of epochs")
    p.add_argument("--n-test", "--n_test", dest="n_test", type=int, default=None, help="test systems (default: preset)")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="JSON object of springs options applied after the preset (e.g. {\"k\": 32})")
    p.add_argument("--out", default="runs/sweep", help="output folder (default: runs/sweep)")


def _sweep_command(args: argparse.Namespace) -> int:
    extra = None
    if args.config is not None:
        from ..training.config import load_config_file

        extra = load_config_file(args.config, SpringsTask)
    run_sweep(sizes=args.sizes, models=args.models, group=args.group, trials=args.trials, preset=args.preset,
              epochs=args.epochs, scale_epochs=args.scale_epochs, n_test=args.n_test, out=args.out, extra=extra)
    return 0


def sweep_epochs(base_epochs: int, n: int, scale: bool = True) -> int:
    """C.4: ``epochs = base · sqrt(1000 / N)`` (at least 1), or ``base`` without scaling."""
    return max(1, round(base_epochs * math.sqrt(1000 / n))) if scale else int(base_epochs)


def run_sweep(*, sizes, models, group: str = "auto", trials: int = 1, preset: str = "quick",
              epochs: int | None = None, scale_epochs: bool = True, n_test: int | None = None,
              out: str = "runs/sweep", extra: dict[str, Any] | None = None, verbose: bool = True) -> dict:
    """Figure 8: test MSE against training-set size for several models.

    Each (model, N, trial) is a full training run (``fit``) in ``out/<model>/N<N>_s<trial>`` with the
    preset's options, ``n_train = N``, the validation set capped at ``N`` (C.4), the epochs scaled
    by ``sqrt(1000/N)``, no rollouts.  Writes ``out/sweep.json`` and ``out/data_efficiency.png``,
    prints a table and returns ``{"results": {label: {N: [test MSE per trial]}}, "json", "figure"}``.

    Raises
    ------
    ValueError
        Empty or non-positive sizes, unknown model or group, trials < 1, unknown preset.
    """
    from ..training.config import resolve_config
    from ..training.trainer import fit

    sizes = [int(s) for s in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes: expected positive training-set sizes, got {sizes}")
    if not models:
        raise ValueError("models: expected at least one model")
    for m in models:
        if m not in MODELS:
            raise ValueError(f"models: unknown model {m!r}; choose from {list(MODELS)}")
        resolve_group(m, group if m in LIECONV_MODELS else "auto")
    if trials < 1:
        raise ValueError(f"trials: expected >= 1, got {trials}")
    base = resolve_config(SpringsTask, preset, overrides=extra)
    base_epochs = base.epochs if epochs is None else int(epochs)
    out_dir = Path(out)
    results: dict[str, dict[int, list[float]]] = {}
    t0 = time.perf_counter()
    for m in models:
        cfg_group = group if m in LIECONV_MODELS else "auto"
        label = model_label(resolve_config(SpringsTask, preset, overrides={**(extra or {}), "model": m,
                                                                            "group": cfg_group}))
        for n in sizes:
            for trial in range(trials):
                ov = {**(extra or {}), "model": m, "group": cfg_group, "n_train": n,
                      "n_valid": min(base.n_valid, n), "epochs": sweep_epochs(base_epochs, n, scale_epochs),
                      "seed": trial, "rollout_systems": 0, "figures": False, "resume": False,
                      "out": str(out_dir / label.replace("*", "star") / f"N{n}_s{trial}")}
                if n_test is not None:
                    ov["n_test"] = n_test
                summary = fit("springs", preset=preset, overrides=ov, print_lines=False)
                mse = float(summary["test"]["loss"])
                results.setdefault(label, {}).setdefault(n, []).append(mse)
                if verbose:
                    print(f"sweep: {label:<22} N = {n:<6} trial {trial}: test MSE {mse:.4e} "
                          f"({summary['epochs_completed']} epochs, {summary['train_time_s']:.0f} s)", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps(
        {"preset": preset, "sizes": sizes, "trials": trials, "results": {k: {str(n): v for n, v in d.items()}
                                                                          for k, d in results.items()}}, indent=2))
    from ..plots.dynamics import plot_data_efficiency

    fig = plot_data_efficiency(results, out_dir / "data_efficiency.png")
    if verbose:
        print(format_sweep_table(results))
        print(f"sweep: {time.perf_counter() - t0:.0f} s; {out_dir / 'sweep.json'}, {fig}")
    return {"results": results, "json": str(out_dir / "sweep.json"), "figure": str(fig)}


def format_sweep_table(results: dict[str, dict[int, list[float]]]) -> str:
    """Rows = models, columns = N, entries = mean test MSE over trials."""
    sizes = sorted({n for d in results.values() for n in d})
    head = f"{'test MSE':<22}" + "".join(f"{'N=' + str(n):>12}" for n in sizes)
    lines = [head, "-" * len(head)]
    for label, d in results.items():
        cells = "".join(f"{sum(d[n]) / len(d[n]):>12.3e}" if n in d else f"{'-':>12}" for n in sizes)
        lines.append(f"{label:<22}" + cells)
    return "\n".join(lines)


SpringsTask.commands = {
    "sweep": TaskCommand(help="test MSE against training-set size for several models (paper Figure 8)",
                         add_arguments=_sweep_arguments, run=_sweep_command),
}


# ---------------------------------------------------------------------------------------------- demo
def run_demo(out: str = "runs/demo", *, models: tuple[str, ...] = ("HLieResNet", "HFC"),
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``lieconv demo``: train HLieResNet-SO(2)* and HFC with the quick preset and compare them.

    Prints a table (test MSE, 100-step rollout errors of state, energy, linear and angular
    momentum, training time) and writes ``out/figures/{rollout_errors,trajectories}.png`` plus each
    model's own run folder ``out/<label>/``.  Returns ``{label: summary}``.
    """
    from ..plots.dynamics import plot_rollout_errors, plot_trajectories
    from ..training.trainer import fit

    out_dir = Path(out)
    t0 = time.perf_counter()
    summaries, rollouts = {}, {}
    for m in models:
        ov = {"model": m, "resume": False, **(overrides or {})}
        label = model_label(SpringsTaskConfig(model=m, group=ov.get("group", "auto")))
        ov["out"] = str(out_dir / label.replace("*", "star"))
        print(f"demo: training {label} (quick preset) ...", flush=True)
        summaries[label] = fit("springs", preset="quick", overrides=ov, print_lines=True)
        rfile = Path(ov["out"]) / "rollout.pt"
        if rfile.is_file():
            rollouts[label] = torch.load(rfile, weights_only=True)
    total = time.perf_counter() - t0
    cols = ("test MSE", "state", "energy", "lin. mom.", "ang. mom.", "train s")
    head = f"{'model':<20}" + "".join(f"{c:>12}" for c in cols)
    lines = [head, "-" * len(head)]
    for label, s in summaries.items():
        r = s.get("report", {})
        vals = [s["test"].get("loss", float("nan"))] + [r.get(f"rollout_{q}", float("nan")) for q in
                                                         ("state", "energy", "linear_momentum", "angular_momentum")]
        lines.append(f"{label:<20}" + "".join(f"{v:>12.3e}" for v in vals) + f"{s['train_time_s']:>12.0f}")
    from ..training.config import resolve_config

    steps = resolve_config(SpringsTask, "quick", overrides=overrides).rollout_steps
    print(f"\ndemo: test MSE on 4-step segments; {steps}-step rollouts from test states: time-averaged relative "
          "errors of state, energy, linear and angular momentum (geometric mean over systems)")
    print("\n".join(lines))
    figs = []
    if rollouts:
        first = next(iter(rollouts.values()))
        figs.append(plot_rollout_errors({k: v["errors"] for k, v in rollouts.items()}, first["ts"],
                                        out_dir / "figures" / "rollout_errors.png"))
        figs.append(plot_trajectories(first["true"][0], {k: v["pred"][0] for k, v in rollouts.items()},
                                      out_dir / "figures" / "trajectories.png"))
    print(f"demo: {total:.0f} s in all; figures: {', '.join(str(Path(f).resolve()) for f in figs)}; "
          f"run folders: {', '.join(str((out_dir / k.replace('*', 'star')).resolve()) for k in summaries)}")
    return summaries
