"""ODE solvers for flat states ``z (B, D)``: a registry and one ``odeint`` entry point.

``odeint(f, z0, ts, *, method)`` returns the states at the times ``ts`` with time first,
``(T, *z0.shape)``, like ``torchdiffeq.odeint``; ``out[0] = z0``.

Solvers (``SOLVERS``):

``"euler"``     explicit Euler, order 1.
``"rk4"``       classical Runge–Kutta, order 4, fixed steps on the ``ts`` grid
                (``substeps`` equal steps per interval).
``"leapfrog"``  Störmer–Verlet (kick–drift–kick), order 2, symplectic, for separable
                ``H = K(p) + V(q)``.  ``f`` must expose ``dK_dp(p)``, ``dV_dq(q)`` and ``n_bodies``
                (e.g. :class:`~lieconv.dynamics.hamiltonian.SeparableHamiltonian`).  Each step
                updates ``p`` by multiples of ``∂V/∂q`` and ``q`` by multiples of ``∂K/∂p = p/m``, so
                if ``V`` is translation invariant ``Σ p_i`` is conserved exactly (to rounding), and if
                ``V`` is rotation invariant and ``K`` isotropic ``Σ q_i × p_i`` is too.  RK4 conserves
                the linear invariant ``Σ p_i`` to rounding as well, but the quadratic ``Σ q_i × p_i``
                only to its truncation error.
``"dopri5"``    adaptive Dormand–Prince 5(4) from ``torchdiffeq`` (imported lazily), ``rtol``/``atol``;
                use float64 and ~1e-10 tolerances for ground truth.

Adding a fixed-step solver = a subclass of :class:`FixedStepSolver` with ``order`` and ``step``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .hamiltonian import join_state, split_state

__all__ = ["SOLVERS", "odeint", "leapfrog", "FixedStepSolver", "Euler", "RK4", "Leapfrog", "Dopri5"]

VectorField = Callable[[Tensor, Tensor], Tensor]


def _check_ts(ts: Tensor) -> None:
    if not isinstance(ts, Tensor) or ts.dim() != 1 or ts.numel() < 1:
        raise ValueError(f"ts: expected a 1-D tensor of times, got {getattr(ts, 'shape', type(ts).__name__)}")
    if not torch.isfinite(ts).all():
        raise ValueError("ts: expected finite times, got NaN or inf")
    if ts.numel() > 1 and not (ts[1:] > ts[:-1]).all():
        raise ValueError("ts: expected strictly increasing times")


class FixedStepSolver:
    """Fixed steps: ``substeps`` equal steps inside every interval of ``ts``.  Subclasses set
    ``order`` and implement ``step(f, t, dt, z) -> z_next``."""

    order: int = 0

    def __init__(self, *, substeps: int = 1):
        if int(substeps) < 1:
            raise ValueError(f"substeps: expected an integer >= 1, got {substeps}")
        self.substeps = int(substeps)

    def step(self, f: VectorField, t: Tensor, dt: Tensor, z: Tensor) -> Tensor:
        raise NotImplementedError

    def integrate(self, f: VectorField, z0: Tensor, ts: Tensor) -> Tensor:
        out = [z0]
        z = z0
        for i in range(ts.numel() - 1):
            dt = (ts[i + 1] - ts[i]) / self.substeps
            for s in range(self.substeps):
                z = self.step(f, ts[i] + s * dt, dt, z)
            out.append(z)
        return torch.stack(out)


class Euler(FixedStepSolver):
    """``z' = z + dt f(t, z)``."""

    order = 1

    def step(self, f, t, dt, z):
        return z + dt * f(t, z)


class RK4(FixedStepSolver):
    """Classical 4-stage Runge–Kutta: ``z' = z + dt (k1 + 2k2 + 2k3 + k4) / 6``."""

    order = 4

    def step(self, f, t, dt, z):
        k1 = f(t, z)
        k2 = f(t + dt / 2, z + dt / 2 * k1)
        k3 = f(t + dt / 2, z + dt / 2 * k2)
        k4 = f(t + dt, z + dt * k3)
        return z + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def leapfrog(
    dV_dq: Callable[[Tensor], Tensor],
    dK_dp: Callable[[Tensor], Tensor],
    q0: Tensor,
    p0: Tensor,
    ts: Tensor,
    *,
    substeps: int = 1,
) -> tuple[Tensor, Tensor]:
    """Störmer–Verlet (kick–drift–kick) for ``H = K(p) + V(q)``.

    One step of size ``h``::

        p_½ = p − h/2 ∂V/∂q(q)
        q'  = q + h   ∂K/∂p(p_½)
        p'  = p_½ − h/2 ∂V/∂q(q')

    The force at the end of a step is reused at the start of the next (one ``dV_dq`` per step).

    Parameters
    ----------
    dV_dq, dK_dp : callable
        ``(B, n, d) -> (B, n, d)`` partial gradients.
    q0, p0 : Tensor
        ``(B, n, d)`` initial positions and momenta.
    ts : Tensor
        ``(T,)`` increasing output times; ``substeps`` equal steps per interval.

    Returns
    -------
    q, p : Tensor
        ``(T, B, n, d)`` each, with ``q[0] = q0``, ``p[0] = p0``.
    """
    _check_ts(ts)
    if q0.shape != p0.shape:
        raise ValueError(f"p0: expected the shape of q0 {tuple(q0.shape)}, got {tuple(p0.shape)}")
    if int(substeps) < 1:
        raise ValueError(f"substeps: expected an integer >= 1, got {substeps}")
    qs, ps = [q0], [p0]
    q, p = q0, p0
    force = dV_dq(q)
    for i in range(ts.numel() - 1):
        h = (ts[i + 1] - ts[i]) / substeps
        for _ in range(int(substeps)):
            p = p - (h / 2) * force
            q = q + h * dK_dp(p)
            force = dV_dq(q)
            p = p - (h / 2) * force
        qs.append(q)
        ps.append(p)
    return torch.stack(qs), torch.stack(ps)


class Leapfrog(FixedStepSolver):
    """Symplectic Störmer–Verlet for separable Hamiltonians (see :func:`leapfrog`), order 2."""

    order = 2

    def integrate(self, f, z0, ts):
        missing = [a for a in ("dV_dq", "dK_dp", "n_bodies") if not hasattr(f, a)]
        if missing:
            raise ValueError(
                f"f: method 'leapfrog' needs a separable Hamiltonian exposing dV_dq, dK_dp and n_bodies "
                f"(e.g. lieconv.dynamics.SeparableHamiltonian); {type(f).__name__} lacks {missing}"
            )
        q0, p0 = split_state(z0, f.n_bodies)
        qs, ps = leapfrog(f.dV_dq, f.dK_dp, q0, p0, ts, substeps=self.substeps)
        return join_state(qs, ps)


class Dopri5:
    """Adaptive Dormand–Prince 5(4) from ``torchdiffeq`` (lazy import)."""

    order = 5

    def __init__(self, *, rtol: float = 1e-7, atol: float = 1e-9, options: dict | None = None):
        self.rtol, self.atol, self.options = rtol, atol, options

    def integrate(self, f, z0, ts):
        try:
            import torchdiffeq
        except ImportError as e:  # pragma: no cover - dependency of the [train] extra
            raise ImportError("method 'dopri5' needs torchdiffeq: pip install 'lieconv[train]'") from e
        return torchdiffeq.odeint(f, z0, ts, rtol=self.rtol, atol=self.atol, method="dopri5", options=self.options)


SOLVERS: dict[str, type] = {"euler": Euler, "rk4": RK4, "leapfrog": Leapfrog, "dopri5": Dopri5}


def odeint(
    f: VectorField,
    z0: Tensor,
    ts: Tensor,
    *,
    method: str = "rk4",
    substeps: int = 1,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    options: dict | None = None,
) -> Tensor:
    """Integrate ``ż = f(t, z)`` from ``z0`` and return the states at ``ts``.

    Parameters
    ----------
    f : callable
        ``f(t, z) -> ż`` with ``z (B, D)``; for ``"leapfrog"`` a separable Hamiltonian object.
    z0 : Tensor
        ``(B, D)`` initial states (any shape for the non-leapfrog solvers).
    ts : Tensor
        ``(T,)`` strictly increasing times; ``ts[0]`` is the time of ``z0``.
    method : str
        One of ``SOLVERS``: ``"euler" | "rk4" | "leapfrog" | "dopri5"``.
    substeps : int
        Fixed-step solvers: equal steps per interval of ``ts``.
    rtol, atol, options
        ``"dopri5"`` only (passed to ``torchdiffeq.odeint``).

    Returns
    -------
    Tensor
        ``(T, *z0.shape)``, ``out[0] = z0``.
    """
    if method not in SOLVERS:
        raise ValueError(f"method: unknown solver {method!r}; choose from {sorted(SOLVERS)}")
    _check_ts(ts)
    if not isinstance(z0, Tensor) or not z0.is_floating_point():
        raise ValueError(f"z0: expected a floating tensor, got {getattr(z0, 'dtype', type(z0).__name__)}")
    if not torch.isfinite(z0).all():
        raise ValueError("z0: expected finite initial states, got NaN or inf")
    ts = ts.to(z0)
    solver = Dopri5(rtol=rtol, atol=atol, options=options) if method == "dopri5" else SOLVERS[method](substeps=substeps)
    return solver.integrate(f, z0, ts)
