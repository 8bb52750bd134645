"""Coordinate subgroups: a group restricted to a subset of its Lie-algebra coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import LieGroup

__all__ = ["Subgroup"]


class Subgroup(LieGroup):
    """The subgroup exp(span{E_i : i in generators}) of ``group``.

    Parameters
    ----------
    group : LieGroup
        The parent.  It must act with a single orbit and a unique lift (``q_dim == 0`` and
        ``stabilizer_dim == 0``: T(d), RxSO(2), ...), and the chosen coordinates must commute with
        the others (true for the abelian parents used here), so that exp(a) = exp(a_sub) exp(a_rest).
    generators : sequence of int
        Indices of the algebra coordinates kept, e.g. ``[0]`` for the x-translations of T(2).
    orbit_coords : sequence of int, optional
        Orbit embedding by point coordinates: q(x) = x[orbit_coords], origin o_q = the point with
        q at those coordinates and 0 elsewhere (Tx in T(2): ``orbit_coords=[1]``, q = y, the paper's
        ``x[k+1:d]``).  By default the orbit is embedded by its origin in R^D: with the parent lift
        x = exp(a) o, q(x) = exp(a_rest) o where a_rest drops the kept coordinates (for the
        dilations R* in RxSO(2) this is x / ||x||, the paper's choice).
    name : str, optional
        Display name.

    Notes
    -----
    Elements use the parent's flat parametrisation (``elem_dim = group.elem_dim``) and
    ``rel_log(u, v) = group.rel_log(u, v)[generators]``, ``log = group.log[generators]``;
    ``lift(x)`` is ``exp(a_sub)`` with a = log of the parent lift of x (unique, so
    ``num_samples`` must be 1).
    """

    stabilizer_dim = 0

    def __init__(
        self,
        group: LieGroup,
        generators: Sequence[int],
        *,
        orbit_coords: Sequence[int] | None = None,
        name: str | None = None,
        alpha: float = 0.2,
    ):
        super().__init__(alpha=alpha)
        if not isinstance(group, LieGroup):
            raise ValueError(f"group: expected a LieGroup instance, got {group!r}")
        if group.q_dim != 0 or group.stabilizer_dim != 0:
            raise ValueError(
                f"group: a Subgroup needs a parent with one orbit and a unique lift, "
                f"got {group!r} (q_dim={group.q_dim}, stabilizer_dim={group.stabilizer_dim})"
            )
        gens = [int(i) for i in generators]
        if not gens or len(set(gens)) != len(gens) or not all(0 <= i < group.lie_dim for i in gens):
            raise ValueError(f"generators: expected distinct indices in [0, {group.lie_dim}), got {generators!r}")
        self.group = group
        self.generators = gens
        self.orbit_coords = None if orbit_coords is None else [int(i) for i in orbit_coords]
        self.space_dim = group.space_dim
        self.lie_dim = len(gens)
        self.rep_dim = group.rep_dim
        self.affine = group.affine
        self.q_dim = self.space_dim if self.orbit_coords is None else len(self.orbit_coords)
        self.name = name or f"{group.name}[{','.join(map(str, gens))}]"
        self._select = torch.eye(group.lie_dim, dtype=torch.float64)[gens]  # (k, L)

    def __repr__(self) -> str:
        return f"{self.name}(alpha={self.alpha})"

    @property
    def elem_dim(self) -> int:
        return self.group.elem_dim

    def embed(self, a: Tensor) -> Tensor:
        """Subgroup coordinates (..., k) -> parent coordinates (..., L) (zeros elsewhere)."""
        return a @ self._select.to(dtype=a.dtype, device=a.device)

    def restrict(self, a: Tensor) -> Tensor:
        """Parent coordinates (..., L) -> the kept coordinates (..., k)."""
        return a[..., self.generators]

    # algebra and group operations: the parent's
    def hat(self, a):
        return self.group.hat(self.embed(a))

    def vee(self, A):
        return self.restrict(self.group.vee(A))

    def exp(self, a):
        return self.group.exp(self.embed(a))

    def log(self, g):
        return self.restrict(self.group.log(g))

    def inv(self, g):
        return self.group.inv(g)

    def mul(self, g, h):
        return self.group.mul(g, h)

    def identity(self, *shape, dtype=None, device=None):
        return self.group.identity(*shape, dtype=dtype, device=device)

    def elems_to_matrix(self, e):
        return self.group.elems_to_matrix(e)

    def matrix_to_elems(self, g):
        return self.group.matrix_to_elems(g)

    def left_mul_elems(self, g, e):
        return self.group.left_mul_elems(g, e)

    def act(self, g, x):
        return self.group.act(g, x)

    def rel_log(self, u, v):
        return self.restrict(self.group.rel_log(u, v))

    def distance_lower_bound_coords(self, elems: Tensor, orbits: Tensor) -> Tensor | None:
        """E = (alpha u[generators], (1 - alpha) q) when the parent's log is a plain difference of
        the flat parameters at the kept coordinates (``difference_coords``: T(d), the scale of
        RxSO(2)); otherwise ``None``.

        Then d = alpha ||u_g - v_g|| + (1 - alpha) ||q_u - q_v|| >= ||E_u - E_v||
        (a + b >= sqrt(a^2 + b^2) for a, b >= 0).
        """
        linear = getattr(self.group, "difference_coords", None) or ()
        if not set(self.generators) <= set(linear):
            return None
        return torch.cat([self.alpha * elems[..., self.generators], (1 - self.alpha) * orbits], -1)

    # orbits and lifting
    def _parent_log(self, x: Tensor) -> Tensor:
        e, _ = self.group.lift(x)
        return self.group.rel_log(e, self.group.identity_elems(dtype=e.dtype, device=e.device))

    def orbit(self, x: Tensor) -> Tensor:
        if self.orbit_coords is not None:
            return x[..., self.orbit_coords]
        a = self._parent_log(x)
        rest = a - self.embed(self.restrict(a))
        o = self.group.origin(x.new_zeros(*x.shape[:-1], 0))
        return self.group.act(self.group.exp(rest), o)

    def origin(self, q: Tensor) -> Tensor:
        if self.orbit_coords is None:
            return q
        o = q.new_zeros(*q.shape[:-1], self.space_dim)
        o[..., self.orbit_coords] = q
        return o

    def lift(self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        a = self._parent_log(x)
        elems = self.group.matrix_to_elems(self.exp(self.restrict(a)))
        return elems, self.orbit(x)
