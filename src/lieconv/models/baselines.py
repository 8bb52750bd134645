"""Baseline dynamics models for the spring problem (paper §6.3, Table 6, C.4) and their integration.

Common interface (states and parameters as in :mod:`lieconv.dynamics.hamiltonian`)::

    model(t, z, sys_params) -> dz/dt          z (B, D = 2·n·d), sys_params (B, n, 2) = (m, k)

Hamiltonian models (:class:`HamiltonianModel`) also expose ``H(z, sys_params) -> (B,)`` and
compute ``dz/dt = J ∇_z H`` by autograd (graph kept while grad is enabled, so the training loss
backpropagates through the integrator).  Separable ones (:class:`SeparableHamiltonianModel`) use
the analytic kinetic energy ``K(p, m) = Σ |p_i|²/(2 m_i)`` and learn only a potential::

    V(q, sys_params) -> (B,)                  q (B, n, d)

and can therefore be integrated by leapfrog.  :class:`PotentialModel` turns any potential network
``net(q (B, n, d), values (B, n, 2)) -> (B,) or (B, 1)`` into such a model — this is where the
HLieResNet potential plugs in, optionally with positions centred (SO(2)*: ``q − mean_i q_i``).

=========  ====================================================  ============  =========
model      what is learned                                       conserves     C.4 sizes
=========  ====================================================  ============  =========
FC         MLP ``(z, m, k) -> dz/dt``                            —             256 × 4
HFC        ``K(p, m)`` analytic + MLP ``V(q − q̄, m, k)``         E, P          256 × 4
OGN        graph network on the complete graph ``-> dz/dt``     —             256 × 1
HOGN       graph network ``-> H(q − q̄, p)`` (T(2) invariant)    E, P          256 × 1
=========  ====================================================  ============  =========

All use SiLU (Swish), which is twice differentiable.  ``PAPER_HPARAMS`` holds C.4's sizes and
learning rates; ``MODELS`` / :func:`build_baseline` resolve names.

:class:`ModelDynamics` integrates any of these over a time grid and returns ``(B, T, D)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..dynamics.hamiltonian import (
    SeparableHamiltonian,
    join_state,
    kinetic_energy,
    split_state,
    spring_potential,
    symplectic_gradient,
)
from ..dynamics.integrate import SOLVERS, odeint

__all__ = [
    "mlp",
    "FC",
    "HFC",
    "OGN",
    "HOGN",
    "HamiltonianModel",
    "SeparableHamiltonianModel",
    "PotentialModel",
    "PointsPotential",
    "SpringPotential",
    "ModelDynamics",
    "MODELS",
    "PAPER_HPARAMS",
    "build_baseline",
    "check_rollout_inputs",
]


def mlp(in_dim: int, hidden: int, num_layers: int, out_dim: int) -> nn.Sequential:
    """``num_layers`` hidden layers ``Linear -> SiLU`` of width ``hidden``, then ``Linear(hidden, out_dim)``."""
    layers, d = [], in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def _check_inputs(z: Tensor, sys_params: Tensor, n_bodies: int, dim: int) -> None:
    D = 2 * n_bodies * dim
    if z.dim() != 2 or z.shape[-1] != D:
        raise ValueError(f"z: expected shape (B, {D}) for {n_bodies} bodies in {dim}-D, got {tuple(z.shape)}")
    if sys_params.shape != (z.shape[0], n_bodies, 2):
        raise ValueError(
            f"sys_params: expected shape (B, n, 2) = ({z.shape[0]}, {n_bodies}, 2), got {tuple(sys_params.shape)}"
        )


class FC(nn.Module):
    """Neural-ODE MLP: ``dz/dt = MLP([z, m, k])``.  No structure, conserves nothing.

    Shapes: z ``(B, 2·n·d)``, sys_params ``(B, n, 2)`` -> ``(B, 2·n·d)``.
    """

    def __init__(self, n_bodies: int = 6, dim: int = 2, *, hidden: int = 256, num_layers: int = 4):
        super().__init__()
        self.n_bodies, self.dim = n_bodies, dim
        D = 2 * n_bodies * dim
        self.net = mlp(D + 2 * n_bodies, hidden, num_layers, D)

    def forward(self, t: Tensor, z: Tensor, sys_params: Tensor) -> Tensor:
        _check_inputs(z, sys_params, self.n_bodies, self.dim)
        return self.net(torch.cat([z, sys_params.flatten(-2)], dim=-1))


class HamiltonianModel(nn.Module):
    """Base class: subclasses implement ``H(z, sys_params) -> (B,)``; ``forward`` is ``J ∇_z H``."""

    n_bodies: int
    dim: int

    def H(self, z: Tensor, sys_params: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, t: Tensor, z: Tensor, sys_params: Tensor) -> Tensor:
        _check_inputs(z, sys_params, self.n_bodies, self.dim)
        return symplectic_gradient(lambda x: self.H(x, sys_params), z)


class _GraphNet(nn.Module):
    """One message-passing round on the complete graph without self-loops.

    Node features ``x_i = (q_i, p_i, m_i, k_i)`` (``2d + 2``); edge input
    ``[x_i, x_j, q_i − q_j]``; messages ``e_ij = φ_e(·)``; node output ``φ_v([x_i, Σ_{j≠i} e_ij])``.
    """

    def __init__(self, dim: int, hidden: int, num_layers: int, out_dim: int):
        super().__init__()
        node = 2 * dim + 2
        self.edge = mlp(2 * node + dim, hidden, num_layers, hidden)
        self.node = mlp(node + hidden, hidden, num_layers, out_dim)

    def forward(self, q: Tensor, p: Tensor, sys_params: Tensor) -> Tensor:
        B, n, _ = q.shape
        x = torch.cat([q, p, sys_params], dim=-1)  # (B, n, 2d+2)
        xi = x.unsqueeze(2).expand(B, n, n, x.shape[-1])
        xj = x.unsqueeze(1).expand(B, n, n, x.shape[-1])
        rel = q.unsqueeze(2) - q.unsqueeze(1)  # (B, n, n, d)
        e = self.edge(torch.cat([xi, xj, rel], dim=-1))  # (B, n, n, hidden)
        off = ~torch.eye(n, dtype=torch.bool, device=q.device)
        agg = (e * off[..., None].to(e.dtype)).sum(2)  # (B, n, hidden)
        return self.node(torch.cat([x, agg], dim=-1))  # (B, n, out_dim)


class OGN(nn.Module):
    """ODE graph network: per-node ``(dq_i/dt, dp_i/dt)`` from one message-passing round.

    Absolute positions enter the node features, so it is neither T(2)-equivariant nor momentum
    conserving.  Shapes: z ``(B, 2·n·d)``, sys_params ``(B, n, 2)`` -> ``(B, 2·n·d)``.
    """

    def __init__(self, n_bodies: int = 6, dim: int = 2, *, hidden: int = 256, num_layers: int = 1):
        super().__init__()
        self.n_bodies, self.dim = n_bodies, dim
        self.gn = _GraphNet(dim, hidden, num_layers, 2 * dim)

    def forward(self, t: Tensor, z: Tensor, sys_params: Tensor) -> Tensor:
        _check_inputs(z, sys_params, self.n_bodies, self.dim)
        q, p = split_state(z, self.n_bodies)
        out = self.gn(q, p, sys_params)
        return join_state(out[..., : self.dim], out[..., self.dim :])


class HOGN(HamiltonianModel):
    """Hamiltonian graph network: ``H = Σ_i φ_v([x_i, Σ_j φ_e(x_i, x_j, q_i − q_j)])`` (scalar per node).

    Positions are centred, ``q_i − q̄``, before the network (C.4), so ``H`` is translation
    invariant and the dynamics conserve energy and linear momentum.
    """

    def __init__(self, n_bodies: int = 6, dim: int = 2, *, hidden: int = 256, num_layers: int = 1):
        super().__init__()
        self.n_bodies, self.dim = n_bodies, dim
        self.gn = _GraphNet(dim, hidden, num_layers, 1)

    def H(self, z: Tensor, sys_params: Tensor) -> Tensor:
        q, p = split_state(z, self.n_bodies)
        q = q - q.mean(-2, keepdim=True)
        return self.gn(q, p, sys_params).sum((-2, -1))


class SeparableHamiltonianModel(HamiltonianModel):
    """``H(q, p) = K(p, m) + V(q, sys_params)`` with analytic ``K = Σ |p_i|²/(2 m_i)``.

    Subclasses implement ``V(q (B, n, d), sys_params (B, n, 2)) -> (B,)``.  Integrable by leapfrog
    (:class:`ModelDynamics` with ``method="leapfrog"``), which then conserves ``Σ p_i`` exactly when
    ``V`` is translation invariant and ``Σ q_i × p_i`` exactly when it is rotation invariant.
    """

    def V(self, q: Tensor, sys_params: Tensor) -> Tensor:
        raise NotImplementedError

    def H(self, z: Tensor, sys_params: Tensor) -> Tensor:
        q, p = split_state(z, self.n_bodies)
        return kinetic_energy(p, sys_params[..., 0]) + self.V(q, sys_params)

    def separable(self, sys_params: Tensor) -> SeparableHamiltonian:
        """The Hamiltonian for fixed ``sys_params``, exposing ``dV_dq`` / ``dK_dp`` to the solvers."""
        return SeparableHamiltonian(lambda q: self.V(q, sys_params), sys_params[..., 0])


class PotentialModel(SeparableHamiltonianModel):
    """Wrap a potential network ``net(q, values) -> (B,)`` into a separable Hamiltonian model.

    Parameters
    ----------
    net : nn.Module
        Called as ``net(q, sys_params)`` with positions ``q (B, n, d)`` and per-particle values
        ``sys_params (B, n, 2) = (m_i, k_i)``; returns ``(B,)`` or ``(B, 1)``.  It must be twice
        differentiable in ``q`` (SiLU, not ReLU).
    center : bool
        Subtract the centre ``mean_i q_i`` first (adds T(d) invariance; HLieConv-SO(2)*).
    n_bodies, dim : int
        System size (6 bodies in 2-D).
    """

    def __init__(self, net: nn.Module, *, center: bool = False, n_bodies: int = 6, dim: int = 2):
        super().__init__()
        self.net, self.center = net, center
        self.n_bodies, self.dim = n_bodies, dim

    def V(self, q: Tensor, sys_params: Tensor) -> Tensor:
        if self.center:
            q = q - q.mean(-2, keepdim=True)
        return self.net(q, sys_params).reshape(q.shape[0])


class HFC(PotentialModel):
    """Hamiltonian MLP (C.4): ``H = Σ|p_i|²/(2 m_i) + V_θ(q − q̄; m, k)``, ``V_θ`` an MLP.

    As for the paper's Hamiltonian baselines, the kinetic energy is analytic (the coordinates are
    known to be Euclidean) and only the potential is learned, from the mean-centred positions
    ``q_i − q̄`` (flattened) and the system parameters ``(m, k)``: ``V_θ = MLP([q − q̄, m, k])``.
    Centring makes ``H`` translation invariant, so rollouts conserve energy and linear momentum
    ``P = Σ p_i``; nothing makes it rotation invariant, so angular momentum drifts.  Separable, so
    it can be integrated by leapfrog too.

    Shapes: z ``(B, 2·n·d)``, sys_params ``(B, n, 2)``; ``V(q (B, n, d), sys_params) -> (B,)``.
    """

    def __init__(self, n_bodies: int = 6, dim: int = 2, *, hidden: int = 256, num_layers: int = 4):
        super().__init__(
            _MLPPotential(n_bodies * dim + 2 * n_bodies, hidden, num_layers), center=True, n_bodies=n_bodies, dim=dim
        )


class _MLPPotential(nn.Module):
    """``net(q (B, n, d), sys_params (B, n, 2)) = MLP([q.flatten, m, k]) -> (B,)`` (HFC's potential)."""

    def __init__(self, in_dim: int, hidden: int, num_layers: int):
        super().__init__()
        self.mlp = mlp(in_dim, hidden, num_layers, 1)

    def forward(self, q: Tensor, sys_params: Tensor) -> Tensor:
        return self.mlp(torch.cat([q.flatten(-2), sys_params.flatten(-2)], dim=-1)).squeeze(-1)


class PointsPotential(nn.Module):
    """Adapter: a point-cloud network on ``lieconv.Points`` used as a potential ``net(q, values)``.

    ``PotentialModel(PointsPotential(LieResNet(2, 1, group=...)), center=...)`` gives HLieConv:
    positions ``q (B, n, d)`` become ``Points.coords``, ``(m_i, k_i)`` the 2 value channels, all
    points real; the network's ``(B, 1)`` output is the potential.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, q: Tensor, values: Tensor) -> Tensor:
        from ..data import Points

        return self.net(Points.from_coords(q, values)).reshape(q.shape[0])


class SpringPotential(nn.Module):
    """The true potential ``Σ_{i<j} k_i k_j ‖q_i − q_j‖²`` as a parameter-free potential network
    (``net(q, sys_params) -> (B,)``), a reference for :class:`PotentialModel` and trainers."""

    def forward(self, q: Tensor, sys_params: Tensor) -> Tensor:
        return spring_potential(q, sys_params[..., 1])


class ModelDynamics(nn.Module):
    """Roll out a dynamics model: ``(z0, ts, sys_params) -> (B, T, D)``, with ``out[:, 0] = z0``.

    Parameters
    ----------
    model : nn.Module
        ``model(t, z, sys_params) -> dz/dt``; for ``"leapfrog"`` a :class:`SeparableHamiltonianModel`.
    method : str
        A solver of ``lieconv.dynamics.SOLVERS``: ``"rk4"`` (default, one step per interval of
        ``ts`` times ``substeps``), ``"leapfrog"``, ``"dopri5"`` (``rtol``, ``atol``; paper training
        tolerance 1e-4), ``"euler"``.

    Notes
    -----
    Shapes: z0 ``(B, D)``; ts ``(T,)`` or ``(B, T)``; sys_params ``(B, n, 2)`` -> ``(B, T, D)``.

    Per-item time grids: ``ts (B, T)`` may differ between rows (your own data: each item with its
    own times, all of the same length ``T``).  Every model here is autonomous (``dz/dt`` does not
    depend on ``t``), so each row is first shifted to start at 0; rows that are then equal are
    integrated together as one batched ODE, one solver call per distinct grid (a collated batch of
    the generated data, whose rows are all ``0.01·arange(5)``, is a single call).  Because the
    models treat the rows of a batch independently (no batch norm), the result equals integrating
    each item alone.

    Gradients flow to the model's parameters when grad is enabled (Hamiltonian models keep the
    graph of ``∇H``); under ``torch.no_grad()`` nothing is kept.  ``nfe`` counts vector-field (or
    ``dV/dq``) evaluations of the last call (summed over the distinct grids).
    """

    def __init__(
        self, model: nn.Module, *, method: str = "rk4", substeps: int = 1, rtol: float = 1e-4, atol: float = 1e-4
    ):
        super().__init__()
        if method not in SOLVERS:
            raise ValueError(f"method: unknown solver {method!r}; choose from {sorted(SOLVERS)}")
        if method == "leapfrog" and not isinstance(model, SeparableHamiltonianModel):
            raise ValueError(
                f"model: method 'leapfrog' needs a SeparableHamiltonianModel (K(p, m) + V(q)), "
                f"got {type(model).__name__}"
            )
        self.model, self.method, self.substeps, self.rtol, self.atol = model, method, substeps, rtol, atol
        self.nfe = 0

    def forward(self, z0: Tensor, ts: Tensor, sys_params: Tensor) -> Tensor:
        check_rollout_inputs(z0, sys_params, getattr(self.model, "n_bodies", None))
        if not isinstance(ts, Tensor) or ts.dim() not in (1, 2) or (ts.dim() == 2 and ts.shape[0] != z0.shape[0]):
            raise ValueError(
                f"ts: expected shape (T,) or (B, T) with B = {z0.shape[0]}, got {tuple(getattr(ts, 'shape', ()))}"
            )
        self.nfe = 0
        if ts.dim() == 1:
            return self._integrate(z0, ts, sys_params)
        rel = ts - ts[:, :1]
        if torch.equal(rel, rel[:1].expand_as(rel)):
            return self._integrate(z0, rel[0], sys_params)
        grids, inverse = torch.unique(rel, dim=0, return_inverse=True)
        out = z0.new_empty(z0.shape[0], ts.shape[1], z0.shape[1])
        parts = []
        for g in range(grids.shape[0]):
            idx = (inverse == g).nonzero().squeeze(1)
            parts.append((idx, self._integrate(z0[idx], grids[g], sys_params[idx])))
        # index_put keeps the graph of every part (a plain out[idx] = ... would too, but this is explicit)
        return out.index_put((torch.cat([i for i, _ in parts]),), torch.cat([o for _, o in parts]))

    def _integrate(self, z0: Tensor, ts: Tensor, sys_params: Tensor) -> Tensor:
        if isinstance(self.model, SeparableHamiltonianModel):
            f = self.model.separable(sys_params)  # analytic dK/dp; what depends on sys_params alone is built once
        else:
            f = _Counted(lambda t, z: self.model(t, z, sys_params))
        out = odeint(f, z0, ts, method=self.method, substeps=self.substeps, rtol=self.rtol, atol=self.atol)
        self.nfe += f.nfe
        return out.transpose(0, 1)


def check_rollout_inputs(z0: Tensor, sys_params: Tensor, n_bodies: int | None) -> None:
    """``z0 (B, D)`` finite; ``sys_params (B, n, 2)`` finite with positive masses; ValueError naming the argument."""
    if not isinstance(z0, Tensor) or z0.dim() != 2:
        raise ValueError(f"z0: expected shape (B, D), got {tuple(getattr(z0, 'shape', ()))}")
    n = sys_params.shape[-2] if isinstance(sys_params, Tensor) and sys_params.dim() == 3 else n_bodies
    if (
        not isinstance(sys_params, Tensor)
        or sys_params.dim() != 3
        or sys_params.shape[0] != z0.shape[0]
        or sys_params.shape[-1] != 2
        or (n_bodies is not None and n != n_bodies)
    ):
        raise ValueError(
            f"sys_params: expected shape (B, n, 2) = ({z0.shape[0]}, {n_bodies or 'n'}, 2) for z0 "
            f"{tuple(z0.shape)}, got {tuple(getattr(sys_params, 'shape', ()))}"
        )
    if not torch.isfinite(z0).all():
        raise ValueError("z0: expected finite initial states, got NaN or inf")
    if not torch.isfinite(sys_params).all():
        raise ValueError("sys_params: expected finite masses and spring constants, got NaN or inf")
    if not (sys_params[..., 0] > 0).all():
        raise ValueError("sys_params: expected positive masses sys_params[..., 0], got a value <= 0")


class _Counted:
    def __init__(self, f: Callable[[Tensor, Tensor], Tensor]):
        self.f, self.nfe = f, 0

    def __call__(self, t: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        return self.f(t, z)


MODELS: dict[str, type[nn.Module]] = {"FC": FC, "HFC": HFC, "OGN": OGN, "HOGN": HOGN}

#: Paper C.4: (H)FC 256 channels, 4 layers; (H)OGN 256 channels, 1 layer; all lr 1e-2.
PAPER_HPARAMS: dict[str, dict] = {
    "FC": {"hidden": 256, "num_layers": 4, "lr": 1e-2},
    "HFC": {"hidden": 256, "num_layers": 4, "lr": 1e-2},
    "OGN": {"hidden": 256, "num_layers": 1, "lr": 1e-2},
    "HOGN": {"hidden": 256, "num_layers": 1, "lr": 1e-2},
}


def build_baseline(name: str, n_bodies: int = 6, dim: int = 2, **kwargs) -> nn.Module:
    """Instantiate ``MODELS[name]`` with the paper's sizes unless ``kwargs`` override them."""
    if name not in MODELS:
        raise ValueError(f"name: unknown baseline {name!r}; choose from {sorted(MODELS)}")
    hp = {k: v for k, v in PAPER_HPARAMS[name].items() if k != "lr"}
    hp.update(kwargs)
    return MODELS[name](n_bodies, dim, **hp)
