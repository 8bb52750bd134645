"""Figures for the spring experiments (paper Figures 6, 7 a–c, 8).  matplotlib (Agg) is imported lazily.

Every function writes a PNG and returns its path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ._figure import pyplot, save_figure

__all__ = ["plot_trajectories", "plot_rollout_errors", "plot_momenta", "plot_data_efficiency"]


def plot_momenta(
    predictions: Mapping[str, Tensor], true: Tensor, ts: Tensor, path: str | os.PathLike, *, n_bodies: int = 6
) -> Path:
    """Figure 7(b): total angular momentum ``L(t)`` and linear momentum ``P_x(t)``, ``P_y(t)`` of one rollout
    per model (e.g. HLieResNet Trivial / T(2) / SO(2) / SO(2)*), with the (constant) truth dashed.

    Parameters
    ----------
    predictions : dict
        ``{model name: (T, D)}`` rollouts of the same system from the same initial state.
    true : Tensor
        ``(T, D)`` its true trajectory (2-D flat states).
    ts : Tensor
        ``(T,)`` times.
    """
    from ..dynamics.hamiltonian import angular_momentum, linear_momentum, split_state

    plt = pyplot()
    t = torch.as_tensor(ts).detach().cpu().to(torch.float64)

    def momenta(traj):
        traj = torch.as_tensor(traj).detach().cpu().to(torch.float64)
        _positions(traj, n_bodies)  # shape check
        q, p = split_state(traj, n_bodies)
        P = linear_momentum(p)
        return {
            "angular momentum L": angular_momentum(q, p),
            "linear momentum P_x": P[:, 0],
            "linear momentum P_y": P[:, 1],
        }

    truth = momenta(true)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), squeeze=False)
    for name, pred in predictions.items():
        for ax, v in zip(axes[0], momenta(pred).values()):
            ax.plot(t, v, label=name)
    for ax, (q, v) in zip(axes[0], truth.items()):
        ax.plot(t, v, "k--", lw=1.2, label="truth")
        ax.set_title(q)
        ax.set_xlabel("t")
        # conserved curves are flat: show at least ±10 % of the true value (or ±0.1), not rounding noise
        lo, hi = ax.get_ylim()
        mid, half = float(v[0]), 0.1 * max(1.0, abs(float(v[0])))
        ax.set_ylim(min(lo, mid - half), max(hi, mid + half))
        ax.ticklabel_format(axis="y", useOffset=False)
    axes[0, -1].legend(fontsize=8)
    return save_figure(fig, path)


def _positions(traj: Tensor, n_bodies: int) -> Tensor:
    """``(T, 2·n·2) -> (T, n, 2)`` positions of a flat 2-D trajectory."""
    traj = torch.as_tensor(traj).detach().cpu().to(torch.float64)
    if traj.dim() != 2 or traj.shape[-1] != 4 * n_bodies:
        raise ValueError(
            f"trajectory: expected shape (T, {4 * n_bodies}) for {n_bodies} bodies in 2-D, got {tuple(traj.shape)}"
        )
    return traj[:, : 2 * n_bodies].reshape(-1, n_bodies, 2)


def plot_trajectories(
    true: Tensor, predictions: Mapping[str, Tensor] | Tensor, path: str | os.PathLike, *, n_bodies: int = 6
) -> Path:
    """Figure 6: paths of the bodies, ground truth (solid) vs each model's rollout (dashed).

    Parameters
    ----------
    true : Tensor
        ``(T, D)`` one system's true trajectory (flat states, 2-D).
    predictions : Tensor or dict
        ``(T, D)`` or ``{model name: (T, D)}``; one panel per model.
    path : path
        Output PNG.
    """
    plt = pyplot()
    if not isinstance(predictions, Mapping):
        predictions = {"model": predictions}
    qt = _positions(true, n_bodies)
    fig, axes = plt.subplots(1, len(predictions), figsize=(4 * len(predictions), 4), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (name, pred) in zip(axes[0], predictions.items()):
        qp = _positions(pred, n_bodies)
        for i in range(n_bodies):
            c = colors(i % 10)
            ax.plot(qt[:, i, 0], qt[:, i, 1], "-", color=c, lw=1.5, alpha=0.5)
            ax.plot(qp[:, i, 0], qp[:, i, 1], "--", color=c, lw=1.2)
            ax.plot(qt[0, i, 0], qt[0, i, 1], "o", color=c, ms=4)
        ax.set_title(name)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].plot([], [], "k-", alpha=0.5, label="truth")
    axes[0, 0].plot([], [], "k--", label="prediction")
    axes[0, 0].legend(loc="best", fontsize=8)
    return save_figure(fig, path)


def plot_rollout_errors(
    errors: Mapping[str, Mapping[str, Tensor]],
    ts: Tensor,
    path: str | os.PathLike,
    *,
    quantities: Sequence[str] = ("state", "energy", "linear_momentum", "angular_momentum"),
) -> Path:
    """Figure 7: relative error vs time (log y), one panel per quantity, one line per model.

    Parameters
    ----------
    errors : dict
        ``{model: rollout_errors(...)}`` with curves ``(B, T)``; the line is the geometric mean over
        systems, the band its 25–75 % quantiles.
    ts : Tensor
        ``(T,)`` times.
    """
    plt = pyplot()
    t = torch.as_tensor(ts).detach().cpu().to(torch.float64)
    fig, axes = plt.subplots(1, len(quantities), figsize=(4 * len(quantities), 3.3), squeeze=False)
    for ax, q in zip(axes[0], quantities):
        for name, errs in errors.items():
            e = errs[q].detach().cpu().to(torch.float64).clamp_min(1e-17)  # (B, T)
            mid = e.log().mean(0).exp()
            lo, hi = e.quantile(0.25, dim=0), e.quantile(0.75, dim=0)
            (line,) = ax.plot(t, mid, label=name)
            ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_title(q.replace("_", " "))
    axes[0, 0].set_ylabel("relative error")
    axes[0, -1].legend(fontsize=8)
    return save_figure(fig, path)


def plot_data_efficiency(results: Mapping[str, Mapping[int, Sequence[float]]], path: str | os.PathLike) -> Path:
    """Figure 8: test MSE vs training-set size (log–log), mean over trials with a 95 % band.

    Parameters
    ----------
    results : dict
        ``{model: {train size N: [test MSE of each trial]}}``; the band is ``±1.96·sd/√trials``.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for name, by_size in results.items():
        sizes = sorted(by_size)
        vals = [torch.as_tensor(list(by_size[s]), dtype=torch.float64).reshape(-1) for s in sizes]
        mean = torch.stack([v.mean() for v in vals])
        half = torch.stack([1.96 * v.std() / v.numel() ** 0.5 if v.numel() > 1 else v.new_zeros(()) for v in vals])
        (line,) = ax.plot(sizes, mean, "o-", label=name)
        ax.fill_between(sizes, (mean - half).clamp_min(mean * 1e-3), mean + half, color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training set size N")
    ax.set_ylabel("test MSE")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
