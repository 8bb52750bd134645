"""Hamiltonian vector fields, the spring system's energies and its conserved quantities.

State layout
------------
One layout is used everywhere in ``lieconv.dynamics``, ``lieconv.datasets.springs`` and the
baseline models: a state is a flat vector, positions first,

    z = (q_1, ..., q_n, p_1, ..., p_n)  flattened,   z.shape = (..., 2·n·d),

so that ``q = z[..., :n*d].reshape(..., n, d)`` and ``p = z[..., n*d:].reshape(..., n, d)``.
Flat states are what ``torchdiffeq`` and our own :func:`lieconv.dynamics.odeint` integrate;
:func:`split_state` and :func:`join_state` convert.  Leading dimensions are free: ``(B, D)`` for a
batch, ``(B, T, D)`` for trajectories.

System parameters are per particle, ``sys_params = (m, k)`` with shape ``(..., n, 2)``: mass
``m_i = sys_params[..., i, 0]`` and spring constant ``k_i = sys_params[..., i, 1]``.

Hamiltonian dynamics
--------------------
``ż = J ∇_z H(z)`` with ``J = [[0, I], [-I, 0]]``, i.e. ``q̇ = ∂H/∂p``, ``ṗ = -∂H/∂q``.
The spring system (paper §6.3, A.5, C.4) is separable, ``H(q, p) = K(p, m) + V(q, k)``, with

    K(p, m) = Σ_i |p_i|² / (2 m_i),
    V(q, k) = Σ_{i<j} k_i k_j ‖q_i − q_j‖²  (= ½ Σ_{i≠j})   (complete graph, rest length 0).

This is the system of Sanchez-Gonzalez et al. (2019) that the paper uses (and that the original
code generates): spring constants ``k_ij = k_i k_j`` and no ``½`` in front of the pair sum.
(The paper's C.4 prints ``K = Σ |p_j|²/m_j``; we use the physical ``½`` in the kinetic energy
throughout, data and models alike.)

Conserved by the true dynamics: the energy ``H``, the total linear momentum ``P = Σ_i p_i`` (V is
translation invariant) and the total angular momentum ``L = Σ_i q_i × p_i`` (V is rotation
invariant; in 2-D the scalar ``q_x p_y − q_y p_x``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "split_state",
    "join_state",
    "state_dims",
    "kinetic_energy",
    "spring_potential",
    "spring_potential_grad",
    "spring_energy",
    "linear_momentum",
    "angular_momentum",
    "conserved_quantities",
    "symplectic_gradient",
    "HamiltonianDynamics",
    "SeparableHamiltonian",
    "SpringHamiltonian",
]


# ----------------------------------------------------------------------------------------------
# state layout
# ----------------------------------------------------------------------------------------------
def state_dims(z: Tensor, n_bodies: int) -> int:
    """Spatial dimension ``d`` of a flat state ``z`` of ``n_bodies`` particles (``D = 2·n·d``)."""
    D = z.shape[-1]
    if n_bodies <= 0 or D % (2 * n_bodies) != 0:
        raise ValueError(f"z: expected a last dimension 2·n·d with n = {n_bodies}, got shape {tuple(z.shape)}")
    return D // (2 * n_bodies)


def split_state(z: Tensor, n_bodies: int) -> tuple[Tensor, Tensor]:
    """Split a flat state ``(..., 2·n·d)`` into positions and momenta, each ``(..., n, d)``."""
    d = state_dims(z, n_bodies)
    half = n_bodies * d
    return (z[..., :half].reshape(*z.shape[:-1], n_bodies, d), z[..., half:].reshape(*z.shape[:-1], n_bodies, d))


def join_state(q: Tensor, p: Tensor) -> Tensor:
    """Inverse of :func:`split_state`: ``q, p (..., n, d) -> z (..., 2·n·d)``, positions first."""
    if q.shape != p.shape:
        raise ValueError(f"p: expected the shape of q {tuple(q.shape)}, got {tuple(p.shape)}")
    return torch.cat([q.flatten(-2), p.flatten(-2)], dim=-1)


# ----------------------------------------------------------------------------------------------
# energies and conserved quantities
# ----------------------------------------------------------------------------------------------
def kinetic_energy(p: Tensor, m: Tensor) -> Tensor:
    """``K(p, m) = Σ_i |p_i|² / (2 m_i)``.  Shapes: p ``(..., n, d)``, m ``(..., n)`` -> ``(...)``."""
    return (p.pow(2).sum(-1) / (2 * m)).sum(-1)


def spring_potential(q: Tensor, k: Tensor) -> Tensor:
    """``V(q, k) = Σ_{i<j} k_i k_j ‖q_i − q_j‖²``.  q ``(..., n, d)``, k ``(..., n)`` -> ``(...)``.

    Evaluated in O(n) through the identity
    ``Σ_{i<j} k_i k_j ‖q_i − q_j‖² = (Σ_j k_j) Σ_i k_i ‖q_i‖² − ‖Σ_i k_i q_i‖²``.
    """
    K = k.sum(-1)
    s = (k.unsqueeze(-1) * q).sum(-2)  # (..., d)  Σ k_i q_i
    return K * (k * q.pow(2).sum(-1)).sum(-1) - s.pow(2).sum(-1)


def spring_potential_grad(q: Tensor, k: Tensor) -> Tensor:
    """Analytic ``∂V/∂q_i = 2 k_i Σ_j k_j (q_i − q_j) = 2 k_i (K q_i − Σ_j k_j q_j)``, shape ``(..., n, d)``.

    The forces ``−∂V/∂q_i`` are central and pairwise opposite, so ``Σ_i ∂V/∂q_i = 0`` and
    ``Σ_i q_i × ∂V/∂q_i = 0`` up to rounding.
    """
    K = k.sum(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    s = (k.unsqueeze(-1) * q).sum(-2, keepdim=True)  # (..., 1, d)
    return 2 * k.unsqueeze(-1) * (K * q - s)


def spring_energy(z: Tensor, sys_params: Tensor) -> Tensor:
    """True total energy ``H = K(p, m) + V(q, k)`` of flat states ``z (..., D)``; ``sys_params (..., n, 2)``.

    ``sys_params`` broadcasts against the leading dimensions of ``z`` once a time axis is
    inserted by the caller, e.g. ``spring_energy(traj (B,T,D), sys_params[:, None])``.
    """
    n = sys_params.shape[-2]
    q, p = split_state(z, n)
    return kinetic_energy(p, sys_params[..., 0]) + spring_potential(q, sys_params[..., 1])


def linear_momentum(p: Tensor) -> Tensor:
    """Total linear momentum ``P = Σ_i p_i``: ``(..., n, d) -> (..., d)``."""
    return p.sum(-2)


def angular_momentum(q: Tensor, p: Tensor) -> Tensor:
    """Total angular momentum ``L = Σ_i q_i × p_i`` about the origin.

    2-D: the scalar ``Σ_i (q_ix p_iy − q_iy p_ix)``, shape ``(...)``; 3-D: a vector ``(..., 3)``.
    """
    d = q.shape[-1]
    if d == 2:
        return (q[..., 0] * p[..., 1] - q[..., 1] * p[..., 0]).sum(-1)
    if d == 3:
        return torch.linalg.cross(q, p, dim=-1).sum(-2)
    raise ValueError(f"q: expected positions in 2 or 3 dimensions, got d = {d}")


def conserved_quantities(z: Tensor, sys_params: Tensor) -> dict[str, Tensor]:
    """``{"energy": (...), "linear_momentum": (..., d), "angular_momentum": (...)}`` for states ``z``.

    ``energy`` is the true spring Hamiltonian (:func:`spring_energy`); momenta do not depend on it.
    """
    q, p = split_state(z, sys_params.shape[-2])
    return {
        "energy": spring_energy(z, sys_params),
        "linear_momentum": linear_momentum(p),
        "angular_momentum": angular_momentum(q, p),
    }


# ----------------------------------------------------------------------------------------------
# Hamiltonian vector fields
# ----------------------------------------------------------------------------------------------
def symplectic_gradient(H: Callable[[Tensor], Tensor], z: Tensor, *, create_graph: bool | None = None) -> Tensor:
    """``J ∇_z H(z)`` for a flat state ``z (B, 2·N)`` (``N = n·d``), computed by autograd.

    ``H`` maps ``(B, 2N) -> (B,)`` (or ``(B, 1)``); the batch rows must be independent.
    ``create_graph`` defaults to ``torch.is_grad_enabled()`` at the call: while training, the
    result stays differentiable (second derivatives flow into the parameters of ``H``); under
    ``torch.no_grad()`` (evaluation, rollouts) no graph is kept.
    """
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        energy = H(z)
        (dH,) = torch.autograd.grad(energy.sum(), z, create_graph=create_graph)
    N = z.shape[-1] // 2
    return torch.cat([dH[..., N:], -dH[..., :N]], dim=-1)


class HamiltonianDynamics:
    """The vector field ``(t, z) -> J ∇H(z)`` of a scalar Hamiltonian, for ODE solvers.

    Parameters
    ----------
    H : callable
        ``H(z) -> (B,)`` for flat states ``z (B, 2·n·d)``.
    create_graph : bool or None
        Passed to :func:`symplectic_gradient`; ``None`` = ``torch.is_grad_enabled()``.

    Attributes
    ----------
    nfe : int
        Number of vector-field evaluations since construction (or the last ``nfe = 0``).
    """

    def __init__(self, H: Callable[[Tensor], Tensor], *, create_graph: bool | None = None):
        self.H = H
        self.create_graph = create_graph
        self.nfe = 0

    def __call__(self, t: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        return symplectic_gradient(self.H, z, create_graph=self.create_graph)


class SeparableHamiltonian:
    """``H(q, p) = K(p, m) + V(q)`` with the analytic kinetic energy ``K = Σ |p_i|²/(2 m_i)``.

    Exposes the two partial gradients separately, ``dK_dp(p) = p / m`` and ``dV_dq(q)``, which is
    what the leapfrog (Störmer–Verlet) integrator needs; calling the object gives the full vector
    field ``ż = (∂K/∂p, −∂V/∂q)`` for the other solvers.

    Parameters
    ----------
    V : callable
        ``V(q) -> (B,)`` for positions ``q (B, n, d)``.
    masses : Tensor
        ``(B, n)`` positive masses.
    dV_dq : callable, optional
        Analytic ``∂V/∂q (B, n, d)``; by default autograd of ``V`` (with ``create_graph`` as in
        :func:`symplectic_gradient`).
    recompute : bool
        Memory for time while training through a solver: keep only the positions of every
        evaluation of the autograd ``∂V/∂q`` and recompute its graph (``V`` and its first
        derivative) during the backward pass (``torch.utils.checkpoint``, non-reentrant), instead
        of keeping all of them alive until the loss is differentiated.  Same gradients; less
        memory (one stage's graph alive at a time) for more time (every stage computed twice).

    Attributes
    ----------
    nfe : int
        Number of ``dV_dq`` evaluations (the expensive part).
    """

    def __init__(
        self,
        V: Callable[[Tensor], Tensor],
        masses: Tensor,
        *,
        dV_dq: Callable[[Tensor], Tensor] | None = None,
        create_graph: bool | None = None,
        recompute: bool = False,
    ):
        if masses.dim() != 2:
            raise ValueError(f"masses: expected shape (B, n), got {tuple(masses.shape)}")
        self.V = V
        self.masses = masses
        self.n_bodies = masses.shape[-1]
        self._dV_dq = dV_dq
        self.create_graph = create_graph
        self.recompute = bool(recompute)
        self.nfe = 0

    def kinetic(self, p: Tensor) -> Tensor:
        return kinetic_energy(p, self.masses)

    def dK_dp(self, p: Tensor) -> Tensor:
        """``∂K/∂p_i = p_i / m_i``, shape ``(B, n, d)``."""
        return p / self.masses.unsqueeze(-1)

    def dV_dq(self, q: Tensor) -> Tensor:
        """``∂V/∂q``, shape ``(B, n, d)``."""
        self.nfe += 1
        if self._dV_dq is not None:
            return self._dV_dq(q)
        create_graph = torch.is_grad_enabled() if self.create_graph is None else self.create_graph
        if self.recompute and create_graph:
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._autograd_dV_dq, q, True, use_reentrant=False)
        return self._autograd_dV_dq(q, create_graph)

    def _autograd_dV_dq(self, q: Tensor, create_graph: bool) -> Tensor:
        with torch.enable_grad():
            if not q.requires_grad:
                q = q.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.V(q).sum(), q, create_graph=create_graph)
        return g

    def H(self, z: Tensor) -> Tensor:
        """Total energy of flat states ``z (B, D)`` -> ``(B,)``."""
        q, p = split_state(z, self.n_bodies)
        return self.kinetic(p) + self.V(q).reshape(q.shape[0])

    def __call__(self, t: Tensor, z: Tensor) -> Tensor:
        q, p = split_state(z, self.n_bodies)
        return join_state(self.dK_dp(p), -self.dV_dq(q))


class SpringHamiltonian(SeparableHamiltonian):
    """The true spring system ``K(p, m) + Σ_{i<j} k_i k_j ‖q_i − q_j‖²`` with analytic gradients.

    Parameters
    ----------
    masses, k : Tensor
        ``(B, n)`` masses (positive) and spring constants (``k_ij = k_i k_j``).
    """

    def __init__(self, masses: Tensor, k: Tensor):
        if k.shape != masses.shape:
            raise ValueError(f"k: expected the shape of masses {tuple(masses.shape)}, got {tuple(k.shape)}")
        super().__init__(lambda q: spring_potential(q, k), masses, dV_dq=lambda q: spring_potential_grad(q, k))
        self.k = k
