"""Long rollouts and their errors (paper Figure 7): state, energy, linear and angular momentum.

Relative error (the same for every quantity, computed per system and time)::

    rel(a, b) = ‖a − b‖ / (‖a‖ + ‖b‖)        (0 when both vanish; at most 1)

with ``‖·‖`` the Euclidean norm over the quantity's components (state: all ``2·n·d`` entries;
linear momentum: ``d``; energy and 2-D angular momentum: absolute value).  The reference ``b`` is
the ground-truth trajectory, whose energy and momenta are constant, so the energy and momentum
errors measure how well a model's rollout conserves them.

Summary numbers (:func:`summarize_errors`): the time average of each system's curve, then the
geometric mean over systems (errors span decades; a few diverging rollouts would dominate an
arithmetic mean).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .hamiltonian import conserved_quantities

__all__ = [
    "relative_error",
    "rollout",
    "rollout_errors",
    "summarize_errors",
    "format_error_table",
    "print_error_table",
    "evaluate_rollouts",
]

QUANTITIES = ("state", "energy", "linear_momentum", "angular_momentum")


def relative_error(a: Tensor, b: Tensor, *, vector: bool = True, eps: float = 1e-300) -> Tensor:
    """``‖a − b‖ / (‖a‖ + ‖b‖)`` over the last dimension (``vector=True``) or elementwise."""
    if vector:
        num, den = (a - b).norm(dim=-1), a.norm(dim=-1) + b.norm(dim=-1)
    else:
        num, den = (a - b).abs(), a.abs() + b.abs()
    return num / den.clamp_min(eps)


@torch.no_grad()
def rollout(
    predict: Callable[[Tensor, Tensor, Tensor], Tensor],
    z0: Tensor,
    ts: Tensor,
    sys_params: Tensor,
    *,
    batch_size: int | None = None,
) -> Tensor:
    """Roll a model out from ``z0 (B, D)`` over ``ts (T,)`` or per-item ``ts (B, T)``; returns ``(B, T, D)``.

    ``predict(z0, ts, sys_params) -> (B, T, D)``, e.g. a
    :class:`lieconv.models.baselines.ModelDynamics`.  Runs without a graph, in chunks of
    ``batch_size`` systems (default: all at once).
    """
    if z0.dim() != 2 or sys_params.dim() != 3 or sys_params.shape[0] != z0.shape[0]:
        raise ValueError(
            f"sys_params: expected shape (B, n, 2) with B = z0.shape[0] for z0 (B, D), "
            f"got z0 {tuple(z0.shape)}, sys_params {tuple(sys_params.shape)}"
        )
    bs = z0.shape[0] if batch_size is None else batch_size
    if ts.dim() == 2 and ts.shape[0] != z0.shape[0]:
        raise ValueError(f"ts: expected shape (T,) or (B, T) with B = {z0.shape[0]}, got {tuple(ts.shape)}")
    grid = (lambda i: ts) if ts.dim() == 1 else (lambda i: ts[i : i + bs])
    outs = [predict(z0[i : i + bs], grid(i), sys_params[i : i + bs]) for i in range(0, z0.shape[0], bs)]
    return torch.cat(outs)


def rollout_errors(pred: Tensor, true: Tensor, sys_params: Tensor) -> dict[str, Tensor]:
    """Per-system, per-time relative errors of a predicted trajectory against the truth.

    Parameters
    ----------
    pred, true : Tensor
        ``(B, T, D)`` trajectories on the same time grid.
    sys_params : Tensor
        ``(B, n, 2)`` ``(m, k)``; the energy is the true spring Hamiltonian of each state.

    Returns
    -------
    dict
        ``{"state", "energy", "linear_momentum", "angular_momentum"}`` -> ``(B, T)``.
    """
    if pred.shape != true.shape or pred.dim() != 3:
        raise ValueError(f"pred: expected shape (B, T, D) equal to true {tuple(true.shape)}, got {tuple(pred.shape)}")
    pred, true = pred.to(torch.float64), true.to(torch.float64)
    sp = sys_params.to(torch.float64)[:, None]  # (B, 1, n, 2)
    cp, ct = conserved_quantities(pred, sp), conserved_quantities(true, sp)
    ang_vec = cp["angular_momentum"].dim() == pred.dim()  # 3-D: (B, T, 3)
    return {
        "state": relative_error(pred, true),
        "energy": relative_error(cp["energy"], ct["energy"], vector=False),
        "linear_momentum": relative_error(cp["linear_momentum"], ct["linear_momentum"]),
        "angular_momentum": relative_error(cp["angular_momentum"], ct["angular_momentum"], vector=ang_vec),
    }


def summarize_errors(
    errors: Mapping[str, Tensor], *, at_steps: tuple[int, ...] = (), floor: float = 1e-300
) -> dict[str, float]:
    """Time average per system, then geometric mean over systems: ``{quantity: float}``.

    ``at_steps``: also the geometric mean over systems of each curve at these step indices
    (``t = steps·dt`` from the start), as ``{"quantity@step": float}``; steps beyond the curves'
    length are skipped.
    """
    out = {name: math.exp(e.mean(-1).clamp_min(floor).log().mean().item()) for name, e in errors.items()}
    for k in at_steps:
        for name, e in errors.items():
            if int(k) < e.shape[-1]:
                out[f"{name}@{int(k)}"] = math.exp(e[:, int(k)].clamp_min(floor).log().mean().item())
    return out


def format_error_table(results: Mapping[str, Mapping[str, Tensor | float]]) -> str:
    """A plain-text table, one row per model, one column per quantity.

    ``results`` maps a model name to either :func:`rollout_errors` curves or :func:`summarize_errors`
    numbers.
    """
    cols = list(QUANTITIES)
    head = f"{'model':<16}" + "".join(f"{c:>18}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, errs in results.items():
        s = errs if all(isinstance(v, float) for v in errs.values()) else summarize_errors(errs)
        lines.append(f"{name:<16}" + "".join(f"{s[c]:>18.3e}" if c in s else f"{'-':>18}" for c in cols))
    return "\n".join(lines)


def print_error_table(results: Mapping[str, Mapping[str, Tensor | float]]) -> None:
    print(format_error_table(results))


def evaluate_rollouts(
    predict: Callable[[Tensor, Tensor, Tensor], Tensor],
    trajectories: Tensor,
    times: Tensor,
    sys_params: Tensor,
    *,
    n_steps: int = 100,
    batch_size: int | None = None,
) -> dict:
    """Roll out from each trajectory's first state over ``n_steps`` times and compare (Fig. 7).

    Parameters
    ----------
    trajectories : Tensor
        ``(B, T_full, D)`` ground truth (``SpringsDataset("test").trajectories``), ``T_full >= n_steps``.
    times : Tensor
        ``(T_full,)`` their times.
    sys_params : Tensor
        ``(B, n, 2)``, on the device ``predict`` runs on (the states and times are moved there).

    Returns
    -------
    dict
        ``{"pred": (B, n_steps, D), "true": (B, n_steps, D), "ts": (n_steps,), "errors": {q: (B, n_steps)},
        "summary": {q: float}}``; ``pred`` has the model's dtype.
    """
    if trajectories.dim() != 3 or trajectories.shape[1] < n_steps or times.shape[0] != trajectories.shape[1]:
        raise ValueError(
            f"trajectories: expected (B, T, D) with T >= n_steps = {n_steps} and times (T,), "
            f"got {tuple(trajectories.shape)} and {tuple(times.shape)}"
        )
    true = trajectories[:, :n_steps]
    ts = times[:n_steps]
    dtype = sys_params.dtype
    pred = rollout(
        predict,
        true[:, 0].to(sys_params.device, dtype),
        ts.to(sys_params.device, dtype),
        sys_params,
        batch_size=batch_size,
    )
    errors = rollout_errors(pred, true.to(pred.device), sys_params)
    return {"pred": pred, "true": true, "ts": ts, "errors": errors, "summary": summarize_errors(errors)}
