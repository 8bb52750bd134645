"""``MatrixLieGroup``: a group given only by its Lie-algebra basis, with numeric exp and log."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .base import LieGroup

__all__ = ["MatrixLieGroup", "matrix_log", "sqrtm_db", "RxSQ"]


def sqrtm_db(A: Tensor, max_iter: int = 50) -> Tensor:
    """Principal square root (..., r, r) by the Denman-Beavers iteration (differentiable).

    Y_0 = A, Z_0 = I;  Y <- (Y + Z^-1) / 2,  Z <- (Z + Y^-1) / 2;  Y -> A^(1/2), Z -> A^(-1/2).
    Needs no eigenvalue of A on the closed negative real axis.  Iterates until the batch has
    converged (the stopping test runs without gradients).
    """
    Y, Z = A, torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)
    tol = 10 * torch.finfo(A.dtype).eps
    for _ in range(max_iter):
        Yi, Zi = torch.linalg.inv(Y), torch.linalg.inv(Z)
        Y_new, Z = (Y + Zi) / 2, (Z + Yi) / 2
        with torch.no_grad():
            delta = (Y_new - Y).abs().amax() / Y_new.abs().amax().clamp_min(1e-300)
        Y = Y_new
        if Y.numel() == 0 or delta <= tol:
            break
    return Y


def matrix_log(A: Tensor, *, radius: float = 0.25, terms: int = 11, max_roots: int = 40) -> Tensor:
    """Principal matrix logarithm (..., r, r) by inverse scaling and squaring (differentiable).

    1. k Denman-Beavers square roots until ||X - I||_F <= ``radius`` for the whole batch
       (X = A^(1/2^k));
    2. log X = 2 atanh(Y) = 2 sum_{j < terms} Y^(2j+1) / (2j+1) with Y = (X - I)(X + I)^-1,
       ||Y|| <~ 0.15, so 11 terms reach float64 precision;
    3. log A = 2^k log X.
    """
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    X, k = A, 0
    while k < max_roots:
        with torch.no_grad():
            far = X.numel() > 0 and bool(((X - eye).flatten(-2).norm(dim=-1) > radius).any())
        if not far:
            break
        X, k = sqrtm_db(X), k + 1
    Y = (X - eye) @ torch.linalg.inv(X + eye)
    Y2, P = Y @ Y, Y
    out = Y.clone()
    for j in range(1, terms):
        P = P @ Y2
        out = out + P / (2 * j + 1)
    return (2.0 ** (k + 1)) * out


class MatrixLieGroup(LieGroup):
    """A matrix Lie group defined by its algebra basis: "a new group needs only exp and log".

    Parameters
    ----------
    generators : Tensor (K, r, r)
        Basis E_1..E_K of the Lie algebra; hat(a) = sum_k a_k E_k.
    lift_fn : callable
        Points (..., n, D) -> group matrices (..., n, r, r) with lift_fn(x) o_q(x) = x (a unique
        lift: ``num_samples`` must be 1).
    orbit_fn : callable, optional
        Points (..., D) -> orbit embeddings (..., q_dim); default: one orbit (q_dim 0).
    origin_fn : callable, optional
        Orbit embeddings (..., q_dim) -> origins (..., D).  Required by ``origin``.
    q_dim : int, optional
        Size of the orbit embedding; inferred from ``orbit_fn`` when omitted.
    affine : bool
        Homogeneous coordinates (D = r - 1) instead of linear action (D = r).

    exp(a) = matrix_exp(hat(a)); log(g) = vee(matrix_log(g)) with ``matrix_log`` above (principal
    branch, differentiable); vee is the least-squares projection onto the basis.  Elements are the
    flattened matrices (``elem_dim = r * r``).  Use it for groups without closed forms; use it
    also as an oracle for the closed forms.  Pass module-level functions (not lambdas) if the
    group has to be pickled.
    """

    stabilizer_dim = 0

    def __init__(
        self,
        generators: Tensor,
        *,
        lift_fn: Callable[[Tensor], Tensor],
        orbit_fn: Callable[[Tensor], Tensor] | None = None,
        origin_fn: Callable[[Tensor], Tensor] | None = None,
        q_dim: int | None = None,
        affine: bool = False,
        name: str = "MatrixLieGroup",
        alpha: float = 0.2,
    ):
        super().__init__(alpha=alpha)
        gens = torch.as_tensor(generators, dtype=torch.float64)
        if gens.dim() != 3 or gens.shape[-1] != gens.shape[-2] or gens.shape[0] < 1:
            raise ValueError(f"generators: expected a (K, r, r) tensor, got shape {tuple(gens.shape)}")
        if not callable(lift_fn):
            raise ValueError(f"lift_fn: expected a callable, got {lift_fn!r}")
        self.generators = gens
        self.lie_dim, self.rep_dim = gens.shape[0], gens.shape[-1]
        self.affine = bool(affine)
        self.space_dim = self.rep_dim - 1 if self.affine else self.rep_dim
        self.lift_fn, self.orbit_fn, self.origin_fn = lift_fn, orbit_fn, origin_fn
        if q_dim is None:
            q_dim = 0 if orbit_fn is None else orbit_fn(torch.ones(1, self.space_dim, dtype=torch.float64)).shape[-1]
        self.q_dim = int(q_dim)
        self.name = name
        flat = gens.reshape(self.lie_dim, -1)  # (K, r*r)
        if torch.linalg.matrix_rank(flat) < self.lie_dim:
            raise ValueError("generators: the basis matrices are linearly dependent")
        self._vee_map = torch.linalg.pinv(flat)  # (r*r, K)

    def _gens(self, like: Tensor) -> Tensor:
        return self.generators.to(dtype=like.dtype, device=like.device)

    def hat(self, a: Tensor) -> Tensor:
        return torch.einsum("...k,kij->...ij", a, self._gens(a))

    def vee(self, A: Tensor) -> Tensor:
        return A.flatten(-2) @ self._vee_map.to(dtype=A.dtype, device=A.device)

    def log(self, g: Tensor) -> Tensor:
        return self.vee(matrix_log(g))

    def orbit(self, x: Tensor) -> Tensor:
        return super().orbit(x) if self.orbit_fn is None else self.orbit_fn(x)

    def origin(self, q: Tensor) -> Tensor:
        if self.origin_fn is None:
            raise NotImplementedError(f"{self.name}: no origin_fn was given")
        return self.origin_fn(q)

    def lift(self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None):
        self.check_points(x)
        self.check_num_samples(num_samples)
        return self.matrix_to_elems(self.lift_fn(x)), self.orbit(x)


# ---------------------------------------------------------------- R* x SQ (paper appendix A.2)
def _rxsq_lift(x: Tensor) -> Tensor:
    """M(r, s) = diag(x1, x2) takes the origin (1, 1) to x (r = sqrt(x1 x2), s = sqrt(x1 / x2)).

    Raises ``ValueError`` for a point outside the open positive quadrant (e.g. the origin)."""
    outside = (x <= 0).any(-1)
    if bool(outside.any()):
        raise ValueError(
            f"points.coords: RxSQ acts on the open positive quadrant (x1 > 0, x2 > 0), got a point "
            f"with a coordinate <= 0 at index {tuple(outside.nonzero()[0].tolist())}"
        )
    return torch.diag_embed(x)


def _rxsq_origin(q: Tensor) -> Tensor:
    return q.new_ones(*q.shape[:-1], 2)


def RxSQ(*, alpha: float = 0.2) -> MatrixLieGroup:
    """Scalings and squeezes R* x SQ acting on the positive quadrant (hyperbolic coordinates):
    basis I = diag(1, 1) and A = diag(1, -1), so log(v^-1 u) = (log(r_u/r_v), log(s_u/s_v))."""
    basis = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, -1.0]]], dtype=torch.float64)
    return MatrixLieGroup(basis, lift_fn=_rxsq_lift, origin_fn=_rxsq_origin, name="RxSQ", alpha=alpha)
