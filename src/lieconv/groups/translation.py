"""Translations T(d) and the trivial group Trivial(d) acting on R^d."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import native
from .base import LieGroup

__all__ = ["T", "Trivial"]


class T(LieGroup):
    """Translations of R^d.  An element is its translation vector t (elem_dim = d).

    exp(a) = [[I, a], [0, 1]], log(g) = g[:d, d], log(v^-1 u) = u - v.  The lift is unique
    (u = x) and there is one orbit, so q is empty.
    """

    affine = True
    native_distance = "euclid"

    def __init__(self, d: int = 2, *, alpha: float = 0.2):
        super().__init__(alpha=alpha)
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"d: expected a positive int, got {d!r}")
        self.space_dim = self.lie_dim = d
        self.rep_dim = d + 1
        self.q_dim = 0
        self.name = f"T({d})"
        self.difference_coords = tuple(range(d))  # rel_log(u, v)[i] = u[i] - v[i] (Subgroup bounds)

    def __repr__(self) -> str:
        return f"T({self.space_dim})"

    @property
    def elem_dim(self) -> int:
        return self.space_dim

    def hat(self, a: Tensor) -> Tensor:
        d = self.space_dim
        A = a.new_zeros(*a.shape[:-1], d + 1, d + 1)
        A[..., :d, d] = a
        return A

    def vee(self, A: Tensor) -> Tensor:
        return A[..., : self.space_dim, self.space_dim]

    def exp(self, a: Tensor) -> Tensor:
        return self.elems_to_matrix(a)

    def log(self, g: Tensor) -> Tensor:
        return g[..., : self.space_dim, self.space_dim]

    def inv(self, g: Tensor) -> Tensor:
        return self.elems_to_matrix(-self.matrix_to_elems(g))

    def elems_to_matrix(self, e: Tensor) -> Tensor:
        d = self.space_dim
        g = torch.eye(d + 1, dtype=e.dtype, device=e.device).expand(*e.shape[:-1], d + 1, d + 1).clone()
        g[..., :d, d] = e
        return g

    def matrix_to_elems(self, g: Tensor) -> Tensor:
        return g[..., : self.space_dim, self.space_dim]

    def lift(self, x, num_samples=1, generator=None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        return x, self.orbit(x)

    def rel_log(self, u: Tensor, v: Tensor) -> Tensor:
        return u - v

    def elem_distance(self, u: Tensor, v: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        """||u - v|| summed coordinate by coordinate (no (..., d) difference tensor and no sum
        over a short last axis, both slow on CPU; no gradients: used only for selection); float32 on
        CPU: ``lieconv.native.distance``."""
        d = native.distance(self.native_distance, u, v)
        if d is not None:
            return d
        sq = None
        for i in range(self.space_dim):
            di = u[..., i] - v[..., i]
            sq = di.square_() if sq is None else sq.addcmul_(di, di)
        return sq.sqrt_()

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor:
        """Exact: the distance is ||log(v^-1 u)|| = ||t_u - t_v||, so E = t."""
        return elems


class Trivial(LieGroup):
    """The trivial group {e} acting on R^d: no equivariance, every point is its own orbit.

    lie_dim = 0, elem_dim = 0 and q(x) = x, so the kernel sees k(q_i, q_j) (a plain PointConv on
    absolute coordinates).
    """

    affine = False

    def __init__(self, d: int = 2, *, alpha: float = 0.2):
        super().__init__(alpha=alpha)
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"d: expected a positive int, got {d!r}")
        self.space_dim = self.q_dim = d
        self.lie_dim = 0
        self.rep_dim = 1
        self.name = f"Trivial({d})"

    def __repr__(self) -> str:
        return f"Trivial({self.space_dim})"

    @property
    def elem_dim(self) -> int:
        return 0

    def hat(self, a: Tensor) -> Tensor:
        return a.new_zeros(*a.shape[:-1], 1, 1)

    def vee(self, A: Tensor) -> Tensor:
        return A.new_zeros(*A.shape[:-2], 0)

    def exp(self, a: Tensor) -> Tensor:
        return a.new_ones(*a.shape[:-1], 1, 1)

    def log(self, g: Tensor) -> Tensor:
        return g.new_zeros(*g.shape[:-2], 0)

    def inv(self, g: Tensor) -> Tensor:
        return g

    def elems_to_matrix(self, e: Tensor) -> Tensor:
        return e.new_ones(*e.shape[:-1], 1, 1)

    def matrix_to_elems(self, g: Tensor) -> Tensor:
        return g.new_zeros(*g.shape[:-2], 0)

    def act(self, g: Tensor, x: Tensor) -> Tensor:
        return x.expand(*torch.broadcast_shapes(g.shape[:-2], x.shape[:-1]), x.shape[-1])

    def orbit(self, x: Tensor) -> Tensor:
        return x

    def origin(self, q: Tensor) -> Tensor:
        return q

    def lift(self, x, num_samples=1, generator=None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        return x.new_zeros(*x.shape[:-1], 0), x

    def rel_log(self, u: Tensor, v: Tensor) -> Tensor:
        return u.new_zeros(*torch.broadcast_shapes(u.shape[:-1], v.shape[:-1]), 0)

    def sample(self, *shape, generator=None, dtype=torch.float64, scale: float = 1.0) -> Tensor:
        return torch.ones(*shape, 1, 1, dtype=dtype)

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor:
        """Exact: the distance is ||q_u - q_v|| (lie_dim = 0), so E = q."""
        return orbits
