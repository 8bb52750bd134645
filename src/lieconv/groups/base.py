"""The ``LieGroup`` base class: the contract every group implements.

A group is one small class with declared sizes and pure tensor methods.  Group elements travel
through the network in a *flat parametrisation* of size ``elem_dim`` (``Lifted.elems``): by default
the flattened ``rep_dim x rep_dim`` matrix, but a group may choose something cheaper (an angle, a
translation vector) as long as ``elems_to_matrix`` / ``matrix_to_elems`` convert both ways.

Sizes (class or instance attributes):
    ``space_dim``      D, the dimension of the points the group acts on
    ``lie_dim``        dimension of the Lie algebra (length of ``log`` coordinates)
    ``rep_dim``        size of the matrices
    ``q_dim``          size of the orbit embedding q (paper §4.5)
    ``elem_dim``       size of the flat parametrisation of an element
    ``stabilizer_dim`` dimension of the stabilizer of a point; 0 means the lift is unique and
                       ``num_samples`` must be 1

Points are acted on linearly (``affine = False``: ``x -> g x`` with ``rep_dim == D``) or affinely
(``affine = True``: homogeneous coordinates, ``rep_dim == D + 1``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LieGroup"]


class LieGroup:
    space_dim: int
    lie_dim: int
    rep_dim: int
    q_dim: int = 0
    stabilizer_dim: int = 0
    affine: bool = False
    name: str = "LieGroup"
    #: the ``lieconv.native`` kernel that computes ``elem_distance`` ("euclid", "se2"), or None: the
    #: neighbour search and farthest-point sampling then run it in one pass per row on float32 CPU
    #: tensors (its float rounding, the same everywhere it is used), and this group's formula elsewhere
    native_distance: str | None = None

    def __init__(self, *, alpha: float = 0.2):
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha: expected a number in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    # ------------------------------------------------------------------ sizes
    @property
    def elem_dim(self) -> int:
        return self.rep_dim * self.rep_dim

    def __repr__(self) -> str:
        return f"{self.name}(alpha={self.alpha})"

    # ------------------------------------------------------------- algebra
    def hat(self, a: Tensor) -> Tensor:
        """Algebra coordinates (..., lie_dim) -> algebra matrices (..., rep_dim, rep_dim)."""
        raise NotImplementedError

    def vee(self, A: Tensor) -> Tensor:
        """Algebra matrices (..., rep_dim, rep_dim) -> coordinates (..., lie_dim)."""
        raise NotImplementedError

    def exp(self, a: Tensor) -> Tensor:
        """exp: (..., lie_dim) -> (..., rep_dim, rep_dim).  Default: ``matrix_exp(hat(a))``."""
        return torch.linalg.matrix_exp(self.hat(a))

    def log(self, g: Tensor) -> Tensor:
        """log: (..., rep_dim, rep_dim) -> (..., lie_dim), the principal branch."""
        raise NotImplementedError

    def inv(self, g: Tensor) -> Tensor:
        return torch.linalg.inv(g)

    def mul(self, g: Tensor, h: Tensor) -> Tensor:
        return g @ h

    def identity(self, *shape, dtype=None, device=None) -> Tensor:
        eye = torch.eye(self.rep_dim, dtype=dtype, device=device)
        return eye.expand(*shape, self.rep_dim, self.rep_dim).clone()

    # ------------------------------------------------ flat element parameters
    def elems_to_matrix(self, e: Tensor) -> Tensor:
        """(..., elem_dim) -> (..., rep_dim, rep_dim)."""
        return e.reshape(*e.shape[:-1], self.rep_dim, self.rep_dim)

    def matrix_to_elems(self, g: Tensor) -> Tensor:
        """(..., rep_dim, rep_dim) -> (..., elem_dim)."""
        return g.reshape(*g.shape[:-2], self.rep_dim * self.rep_dim)

    # --------------------------------------------------------------- action
    def act(self, g: Tensor, x: Tensor) -> Tensor:
        """Act with matrices g (..., rep_dim, rep_dim) on points x (..., D) -> (..., D)."""
        if self.affine:
            D = self.space_dim
            return (g[..., :D, :D] @ x.unsqueeze(-1)).squeeze(-1) + g[..., :D, D]
        return (g @ x.unsqueeze(-1)).squeeze(-1)

    def left_mul_elems(self, g: Tensor, e: Tensor) -> Tensor:
        """(g u) in flat parameters: g (..., rep_dim, rep_dim) broadcast against e (..., elem_dim)."""
        return self.matrix_to_elems(self.mul(g, self.elems_to_matrix(e)))

    def orbit(self, x: Tensor) -> Tensor:
        """Orbit embedding q(x): (..., D) -> (..., q_dim), invariant under the group.

        Default, for a group with one orbit (q_dim = 0): the empty embedding."""
        if self.q_dim == 0:
            return x.new_zeros(*x.shape[:-1], 0)
        raise NotImplementedError

    def origin(self, q: Tensor) -> Tensor:
        """The chosen origin o_q of each orbit: (..., q_dim) -> (..., D), so lift(x) o_q = x.

        Default, for a group with one orbit (q_dim = 0): the point 0."""
        if self.q_dim == 0:
            return q.new_zeros(*q.shape[:-1], self.space_dim)
        raise NotImplementedError

    # -------------------------------------------------------------- lifting
    def lift(self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None):
        """Lift points to group elements and orbits (paper Algorithm 1).

        Args:
            x: (..., n, D) points.
            num_samples: lift samples per point, drawn by Haar measure over the stabilizer
                (must be 1 when ``stabilizer_dim == 0``).
            generator: the source of the stabilizer draws.

        Returns:
            ``(elems, orbits)`` of shapes (..., n * num_samples, elem_dim) and
            (..., n * num_samples, q_dim), point-major (sample s of point i at i * num_samples + s),
            with ``act(elems_to_matrix(elems), origin(q)) == x``.

        Raises:
            ValueError: naming ``x`` (wrong rank, point dimension or dtype, see ``check_points``)
                or ``num_samples`` (see ``check_num_samples``).
        """
        raise NotImplementedError

    def check_points(self, x: Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` naming ``name`` unless x is a floating (..., n, space_dim) tensor."""
        if not isinstance(x, Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor of points, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
        if x.dim() < 2:
            raise ValueError(
                f"{name}: expected points of shape (..., n, {self.space_dim}) (at least "
                f"2 dimensions), got shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.space_dim:
            raise ValueError(
                f"{name}: {self.name} acts on {self.space_dim}-D points, expected shape "
                f"(..., n, {self.space_dim}), got {tuple(x.shape)}"
            )

    def identity_elems(self, *shape, dtype=None, device=None) -> Tensor:
        """The identity in flat parameters: (*shape, elem_dim)."""
        return self.matrix_to_elems(self.identity(*shape, dtype=dtype, device=device))

    def check_num_samples(self, num_samples: int) -> None:
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples: expected a positive int, got {num_samples!r}")
        if self.stabilizer_dim == 0 and num_samples != 1:
            raise ValueError(
                f"num_samples: {self.name} has a trivial stabilizer, so each point has exactly one "
                f"lift; expected 1, got {num_samples}"
            )

    # ---------------------------------------------------- pairs and distance
    def rel_log(self, u: Tensor, v: Tensor) -> Tensor:
        """log(v^-1 u) for flat elements u, v (broadcastable (..., elem_dim)) -> (..., lie_dim)."""
        U, V = self.elems_to_matrix(u), self.elems_to_matrix(v)
        return self.log(self.mul(self.inv(V), U))

    @property
    def embed_dim(self) -> int:
        """Size of ``rel_embed`` (default ``lie_dim``: the log itself)."""
        return self.lie_dim

    def rel_embed(self, u: Tensor, v: Tensor) -> Tensor:
        """A continuous, invariant embedding of ``v^-1 u``: (..., elem_dim) pairs -> (..., embed_dim).

        Like ``rel_log`` it depends on the pair only through ``v^-1 u`` (so it is unchanged by
        ``u, v -> g u, g v``), but it has no jump: the principal log of a rotation wraps at angle
        ±pi (and the translation part of the SE(2)/SE(3) log, ``V(phi)^-1 t``, jumps with it).
        Groups with a rotation part embed the rotation by cos/sin or matrix entries; the default,
        for groups without one (translations, scalings), is ``rel_log``, which is continuous there.
        """
        return self.rel_log(u, v)

    def distance(self, rel: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        """Invariant distance ``alpha * ||log(v^-1 u)|| + (1 - alpha) * ||q_u - q_v||``.

        With no orbit embedding (q_dim = 0) it is ``||log(v^-1 u)||``; with a trivial algebra
        (lie_dim = 0) it is ``||q_u - q_v||``.
        """
        if self.q_dim == 0:
            return _norm(rel)
        if self.lie_dim == 0:
            return _norm(q_u - q_v)
        return self.alpha * _norm(rel) + (1 - self.alpha) * _norm(q_u - q_v)

    def elem_distance(self, u: Tensor, v: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        """``distance(rel_log(u, v), q_u, q_v)``; groups may override with something cheaper.

        Only used without gradients, to choose neighbourhoods and farthest points.
        """
        return self.distance(self.rel_log(u, v), q_u, q_v)

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor | None:
        """A Euclidean embedding E whose distances bound the invariant distance from below.

        ``elem_distance(u, v, q_u, q_v) >= ||E(u, q_u) - E(v, q_v)||`` for every pair, so a spatial
        index on E finds every point within a group-distance radius exactly (``neighbors.py``
        prunes with it).  Shapes: elems (..., elem_dim), orbits (..., q_dim) -> (..., p), the
        most selective coordinates first (an index may use only the leading ones: dropping
        coordinates keeps the bound).  ``None`` (the default) means no bound is known and every
        pair is compared.  Not invariant itself (E moves with g); only the inequality is used.
        """
        return None

    # --------------------------------------------------------------- random
    def sample(
        self, *shape, generator: torch.Generator | None = None, dtype=torch.float64, scale: float = 1.0
    ) -> Tensor:
        """Random group elements as matrices ``(*shape, rep_dim, rep_dim)``: exp of a Gaussian algebra
        vector of standard deviation ``scale`` (used by tests and augmentation)."""
        a = torch.randn(*shape, self.lie_dim, generator=generator, dtype=dtype) * scale
        return self.exp(a)


def _norm(x: Tensor) -> Tensor:
    """Euclidean norm over the last axis whose gradient is finite (zero) at the origin."""
    sq = (x * x).sum(-1)
    small = sq < 1e-30
    return torch.where(small, torch.zeros_like(sq), torch.sqrt(torch.where(small, torch.ones_like(sq), sq)))


TWO_PI = 2 * math.pi
