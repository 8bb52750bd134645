"""LieConv models of particle dynamics (paper §6, appendix C.4, Table 6, Figure 9).

:class:`HLieResNet` (HLieConv in the paper) learns a Hamiltonian

    H(q, p) = K(p, m) + V_θ(q; m, k),      K(p, m) = Σ_i |p_i|² / (2 m_i),

with the kinetic energy analytic (the coordinates are known to be Euclidean, C.4) and the
potential ``V_θ`` an *invariant* :class:`~lieconv.nn.LieResNet` over the ``n`` particles: the
particles are the points (``coords = q_i``), their system parameters ``(m_i, k_i)`` the two value
channels, and the network's mean-pooled scalar output is ``V``.  The dynamics are ``ż = J ∇H`` by
autograd; because ``H`` is separable the model is integrable by leapfrog as well as RK4.

Groups (``HGROUPS``) and the symmetries of ``V`` — by Noether's theorem, the quantities a
leapfrog rollout conserves exactly (to rounding):

===========  ==================================  =======================  ======================
group        kernel inputs a_ij                  V invariant under        conserved
===========  ==================================  =======================  ======================
``Trivial2`` ``[q_i, q_j]``                      nothing                  energy (approx.)
``T2``       ``q_i − q_j``                       translations T(2)        ``P = Σ p_i``
``SO2``      ``[θ_i − θ_j, |q_i|, |q_j|]``       rotations about 0        ``L = Σ q_i × p_i``
``SO2*``     as SO2 on ``q_i − q̄``               SE(2) = T(2) ⋊ SO(2)     ``P`` and ``L``
===========  ==================================  =======================  ======================

Determinism.  A Hamiltonian must be one fixed function of ``q`` within a rollout, or ``ż`` is not
a gradient field and nothing is conserved.  LieConv's Monte-Carlo neighbourhoods would resample
neighbours at every evaluation, so these models use neighbourhoods that contain *every* particle:
``fill = 1`` and ``num_nbhd >= n_bodies`` (6 bodies: the neighbourhood is the whole system anyway,
which is also what the paper's 6-point clouds amount to).  The selection is then the same at every
call, the potential a smooth deterministic function of ``q``, and a rollout exactly reproducible.

:class:`LieResNetDynamics` (LieConv-T(2) in Table 6 / Figure 9) models ``dz/dt`` directly: a
non-pooled T(2) LieResNet maps each particle's ``(p_i, m_i, k_i)`` at position ``q_i`` to
``(dq_i/dt, dp_i/dt)``.  It is T(2)-equivariant but not Hamiltonian, so ``Σ_i dp_i/dt ≠ 0`` in
general and linear momentum is *not* conserved — equivariance alone is not enough.

Shapes (as everywhere in :mod:`lieconv.dynamics`): ``z (B, 2·n·d)`` flat states, positions first;
``sys_params (B, n, 2) = (m_i, k_i)``; ``q (B, n, d)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data import Points
from ..dynamics.hamiltonian import SeparableHamiltonian, join_state, split_state
from ..nn import LieResNet
from .baselines import PotentialModel, _check_inputs

__all__ = ["HGROUPS", "DIRECT_GROUPS", "parse_group", "HLieResNet", "LieResNetDynamics", "PAPER_LIECONV_HPARAMS"]

#: Groups of the Hamiltonian model; ``"SO2*"`` = SO(2) on centred positions (SE(2)-invariant V).
HGROUPS = ("Trivial2", "T2", "SO2", "SO2*")
#: Groups for which a per-particle vector output is equivariant (LieConv-T(2) uses ``"T2"``).
DIRECT_GROUPS = ("Trivial2", "T2")

#: Paper C.4: k = 384 channels, 4 bottleneck blocks, no batch norm, Adam lr 1e-3.
PAPER_LIECONV_HPARAMS = {"k": 384, "num_layers": 4, "lr": 1e-3}


def parse_group(group: str, choices: tuple[str, ...] = HGROUPS) -> tuple[str, bool]:
    """``"SO2*" -> ("SO2", True)``: the registered group name and whether positions are centred.

    Raises
    ------
    ValueError
        ``group`` is not one of ``choices`` (the message lists them).
    """
    if not isinstance(group, str) or group not in choices:
        raise ValueError(f"group: unknown group {group!r}; choose from {list(choices)}")
    return (group[:-1], True) if group.endswith("*") else (group, False)


def _check_sizes(n_bodies: int, dim: int, k: int, num_layers: int, num_nbhd: int | None) -> int:
    if int(n_bodies) < 1:
        raise ValueError(f"n_bodies: expected a positive number of particles, got {n_bodies}")
    if dim != 2:
        raise ValueError(f"dim: the planar groups {list(HGROUPS)} act on 2-D positions, got dim = {dim}")
    if int(k) < 4:
        raise ValueError(f"k: expected at least 4 channels (bottleneck width k/4), got {k}")
    if int(num_layers) < 0:
        raise ValueError(f"num_layers: expected >= 0, got {num_layers}")
    nbhd = n_bodies if num_nbhd is None else int(num_nbhd)
    if nbhd < n_bodies:
        raise ValueError(
            f"num_nbhd: expected >= n_bodies = {n_bodies} so that every neighbourhood is the whole "
            f"system and the learned function is deterministic, got {num_nbhd}"
        )
    return nbhd


class _PotentialNet(nn.Module):
    """``V(q, sys_params) -> (B,)``: the invariant LieResNet on the particles (values ``(m_i, k_i)``)."""

    def __init__(self, net: LieResNet):
        super().__init__()
        self.net = net

    def forward(self, q: Tensor, sys_params: Tensor, value_features: Tensor | None = None) -> Tensor:
        return self.net(Points.from_coords(q, sys_params), value_features=value_features).reshape(q.shape[0])

    def value_features(self, sys_params: Tensor) -> Tensor | None:
        """The part of the network that depends on ``(m_i, k_i)`` alone (see ``LieResNet.value_features``)."""
        return self.net.value_features(sys_params, sys_params.new_ones(sys_params.shape[:-1], dtype=torch.bool))


class HLieResNet(PotentialModel):
    """HLieConv: ``H = Σ|p_i|²/(2 m_i) + V_θ(q; m, k)`` with ``V_θ`` an invariant LieResNet.

    Parameters
    ----------
    group : str
        One of ``HGROUPS``: ``"Trivial2"``, ``"T2"``, ``"SO2"`` or ``"SO2*"`` (SO(2) after centring
        ``q_i − q̄``; SE(2)-invariant potential, conserves linear and angular momentum).
    k : int
        Channels of the ResNet (paper: 384).
    num_layers : int
        Bottleneck blocks (paper: 4).
    num_nbhd : int, optional
        Neighbourhood size; default and minimum ``n_bodies`` (see the module docstring: every
        neighbourhood holds all particles, so ``V`` is deterministic).
    mean : bool
        Mean (True) or sum pooling / neighbourhood normalisation.
    n_bodies, dim : int
        6 particles in 2-D.
    kernel_input : str
        ``"smooth"`` (default): the kernel sees the relative angle as ``(cos, sin)``
        (``LieGroup.rel_embed``), so ``V`` is smooth everywhere; ``"log"``: the paper's wrapped
        angle ``θ_i − θ_j ∈ (−π, π]``, with which ``V`` jumps where a relative angle crosses π
        (``Trivial2`` and ``T2`` have no angle: both choices are the same).
    recompute : bool
        Training memory for time: recompute each solver stage's graph in the backward pass
        (``SeparableHamiltonian(recompute=True)``); same gradients.

    Notes
    -----
    No batch norm (C.4): it would make ``V`` of one system depend on the others in the batch.
    All activations are SiLU, so ``V`` is twice differentiable (training differentiates ``∇V``).

    Shapes: ``forward(t, z (B, 2nd), sys_params (B, n, 2)) -> ż (B, 2nd)``;
    ``H(z, sys_params) -> (B,)``; ``V(q (B, n, d), sys_params) -> (B,)``.
    """

    def __init__(
        self,
        group: str = "SO2*",
        *,
        k: int = 384,
        num_layers: int = 4,
        num_nbhd: int | None = None,
        mean: bool = True,
        n_bodies: int = 6,
        dim: int = 2,
        kernel_input: str = "smooth",
        recompute: bool = False,
    ):
        name, center = parse_group(group, HGROUPS)
        nbhd = _check_sizes(n_bodies, dim, k, num_layers, num_nbhd)
        net = LieResNet(
            2,
            1,
            group=name,
            k=int(k),
            num_layers=int(num_layers),
            num_nbhd=nbhd,
            fill=1.0,
            liftsamples=1,
            bn=False,
            mean=mean,
            knn=False,
            pool=True,
            kernel_input=kernel_input,
        )
        net.shared_geometry = False  # every system has its own positions
        super().__init__(_PotentialNet(net), center=center, n_bodies=n_bodies, dim=dim)
        self.group_name = group
        self.recompute = bool(recompute)

    def V(self, q: Tensor, sys_params: Tensor, value_features: Tensor | None = None) -> Tensor:
        """Learned potential ``V_θ(q; m, k)``: ``q (B, n, d)``, ``sys_params (B, n, 2)`` -> ``(B,)``.

        ``value_features``: ``self.net.value_features(sys_params)``, computed once for many ``q``
        (:meth:`separable` does this for a whole rollout); the result is the same.
        """
        if q.dim() != 3 or q.shape[1:] != (self.n_bodies, self.dim):
            raise ValueError(f"q: expected shape (B, {self.n_bodies}, {self.dim}), got {tuple(q.shape)}")
        if sys_params.shape != (q.shape[0], self.n_bodies, 2):
            raise ValueError(
                f"sys_params: expected shape (B, n, 2) = ({q.shape[0]}, {self.n_bodies}, 2), "
                f"got {tuple(sys_params.shape)}"
            )
        if self.center:
            q = q - q.mean(-2, keepdim=True)
        return self.net(q, sys_params, value_features).reshape(q.shape[0])

    def separable(self, sys_params: Tensor) -> SeparableHamiltonian:
        """``H = K + V_θ(·; m, k)`` for one batch of systems, for the ODE solvers.

        Every evaluation of an RK4 / leapfrog rollout sees the same ``sys_params`` and other
        positions; the network's value-only part (the embedding of ``(m_i, k_i)`` and the first
        block up to its kernel, ``LieResNet.value_features``) is computed here once per rollout, not
        once per stage, and its gradient accumulates over the stages.
        """
        vf = self.net.value_features(sys_params)
        return SeparableHamiltonian(lambda q: self.V(q, sys_params, vf), sys_params[..., 0], recompute=self.recompute)

    def extra_repr(self) -> str:
        return f"group={self.group_name}, n_bodies={self.n_bodies}"


class LieResNetDynamics(nn.Module):
    """LieConv-T(2): ``dz/dt`` modelled directly by an equivariant, non-Hamiltonian LieResNet.

    Each particle is a point at ``q_i`` with values ``(p_i, m_i, k_i)`` (``d + 2`` channels); the
    non-pooled network returns ``2d`` channels per particle, read as ``(dq_i/dt, dp_i/dt)``.
    With ``group="T2"`` the field is translation-equivariant (it depends on ``q`` only through
    ``q_i − q_j``) but ``Σ_i dp_i/dt`` is unconstrained: momentum is not conserved (Figure 9).

    Parameters
    ----------
    group : str
        ``"T2"`` (paper) or ``"Trivial2"``; rotation groups are refused, since a vector-valued
        output of an SO(2)-invariant network is not rotation-equivariant.
    k, num_layers, num_nbhd, mean, n_bodies, dim
        As in :class:`HLieResNet`.

    Shapes: ``forward(t, z (B, 2nd), sys_params (B, n, 2)) -> (B, 2nd)``.
    """

    def __init__(
        self,
        group: str = "T2",
        *,
        k: int = 384,
        num_layers: int = 4,
        num_nbhd: int | None = None,
        mean: bool = True,
        n_bodies: int = 6,
        dim: int = 2,
    ):
        super().__init__()
        name, _ = parse_group(group, DIRECT_GROUPS)
        nbhd = _check_sizes(n_bodies, dim, k, num_layers, num_nbhd)
        self.net = LieResNet(
            dim + 2,
            2 * dim,
            group=name,
            k=int(k),
            num_layers=int(num_layers),
            num_nbhd=nbhd,
            fill=1.0,
            liftsamples=1,
            bn=False,
            mean=mean,
            knn=False,
            pool=False,
        )
        self.net.shared_geometry = False
        self.n_bodies, self.dim, self.group_name = n_bodies, dim, group

    def forward(self, t: Tensor, z: Tensor, sys_params: Tensor) -> Tensor:
        _check_inputs(z, sys_params, self.n_bodies, self.dim)
        q, p = split_state(z, self.n_bodies)
        out = self.net(Points.from_coords(q, torch.cat([p, sys_params], dim=-1))).values  # (B, n, 2d)
        return join_state(out[..., : self.dim], out[..., self.dim :])

    def extra_repr(self) -> str:
        return f"group={self.group_name}, n_bodies={self.n_bodies}"
