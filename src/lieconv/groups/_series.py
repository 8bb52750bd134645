"""Safe evaluation of the singular coefficient functions of the exp / log maps.

Every function here is an *even* analytic function of an angle ``x`` and is written in terms of
``t = x**2`` (so callers pass ``theta @ theta`` and never take a square root of something that can
be 0).  Each is evaluated with the "safe where" pattern::

    small  = t < threshold(dtype)
    t_safe = torch.where(small, 1, t)                     # harmless argument for the exact branch
    out    = torch.where(small, taylor(t), exact(t_safe))

so the exact branch never sees the singular point and its backward never produces inf / NaN that
``torch.where`` would multiply by 0: first **and second** derivatives are finite at ``t = 0``
(the Hamiltonian models differentiate twice).  Five Taylor terms in ``t`` are kept; the threshold
balances the truncation error of the series against the cancellation error of the exact formula
(about ``eps / t``): with ``t < 0.02`` in float64 both are below ~1e-14, with ``t < 1`` in float32
both are below ~1e-7.

Functions (``x = sqrt(t)``):

==================  ==========================================  ===================================
name                value                                        used by
==================  ==========================================  ===================================
``sinc_sq``         sin x / x                                    SO(3), SE(2), SE(3) exp
``cosc_sq``         (1 - cos x) / x^2                            SO(3), SE(2), SE(3) exp
``sinc3_sq``        (x - sin x) / x^3                            SE(3) exp (V matrix)
``half_cot_sq``     (x / 2) cot(x / 2)                           SE(2) log (V^-1), SE(3) log
``vinv3_sq``        (1 - (x / 2) cot(x / 2)) / x^2               SE(3) log (V^-1 = I - W/2 + c W^2)
``atanc_sq``        atan(x) / x                                  quaternion log
==================  ==========================================  ===================================

plus ``wrap_angle`` (into (-pi, pi]).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "sinc_sq",
    "cosc_sq",
    "sinc3_sq",
    "half_cot_sq",
    "vinv3_sq",
    "atanc_sq",
    "wrap_angle",
    "small_threshold",
    "safe_where",
]

# t = x^2 below which the Taylor branch is used, per dtype (other dtypes use the float32 value).
_THRESHOLD = {torch.float64: 0.02, torch.float32: 1.0}
# atan(x)/x has no cancellation but a slowly decaying series (1, -1/3, 1/5, ...): smaller threshold.
_ATAN_THRESHOLD = {torch.float64: 1e-3, torch.float32: 1e-2}


def small_threshold(dtype: torch.dtype, table: dict | None = None) -> float:
    """The Taylor-branch threshold on ``t = x^2`` for ``dtype``."""
    table = _THRESHOLD if table is None else table
    return table.get(dtype, table[torch.float32])


def _horner(t: Tensor, coeffs: Sequence[float]) -> Tensor:
    out = torch.full_like(t, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * t + c
    return out


def safe_where(
    t: Tensor, coeffs: Sequence[float], exact: Callable[[Tensor], Tensor], table: dict | None = None
) -> Tensor:
    """``taylor(t)`` where ``t`` is small, else ``exact(t)``, with finite derivatives of any order.

    Parameters
    ----------
    t : Tensor
        The squared argument (any shape, floating).
    coeffs : sequence of float
        Taylor coefficients in powers of ``t`` (constant first).
    exact : callable
        The closed form, only ever evaluated at ``t >= threshold``.
    """
    small = t < small_threshold(t.dtype, table)
    t_safe = torch.where(small, torch.ones_like(t), t)
    return torch.where(small, _horner(t, coeffs), exact(t_safe))


def sinc_sq(t: Tensor) -> Tensor:
    """sin(x) / x with x = sqrt(t)."""

    def exact(s):
        x = torch.sqrt(s)
        return torch.sin(x) / x

    return safe_where(t, [1.0, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880], exact)


def cosc_sq(t: Tensor) -> Tensor:
    """(1 - cos x) / x^2 with x = sqrt(t)."""
    return safe_where(
        t, [1 / 2, -1 / 24, 1 / 720, -1 / 40320, 1 / 3628800], lambda s: (1 - torch.cos(torch.sqrt(s))) / s
    )


def sinc3_sq(t: Tensor) -> Tensor:
    """(x - sin x) / x^3 with x = sqrt(t)."""

    def exact(s):
        x = torch.sqrt(s)
        return (x - torch.sin(x)) / (s * x)

    return safe_where(t, [1 / 6, -1 / 120, 1 / 5040, -1 / 362880, 1 / 39916800], exact)


def half_cot_sq(t: Tensor) -> Tensor:
    """(x / 2) cot(x / 2) with x = sqrt(t); finite for x < 2 pi (the logs use |x| <= pi)."""

    def exact(s):
        h = torch.sqrt(s) / 2
        return h * torch.cos(h) / torch.sin(h)

    return safe_where(t, [1.0, -1 / 12, -1 / 720, -1 / 30240, -1 / 1209600], exact)


def vinv3_sq(t: Tensor) -> Tensor:
    """(1 - (x / 2) cot(x / 2)) / x^2 with x = sqrt(t): the W^2 coefficient of SE(3)'s V^-1."""

    def exact(s):
        h = torch.sqrt(s) / 2
        return (1 - h * torch.cos(h) / torch.sin(h)) / s

    return safe_where(t, [1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160], exact)


def atanc_sq(t: Tensor) -> Tensor:
    """atan(x) / x with x = sqrt(t)."""

    def exact(s):
        x = torch.sqrt(s)
        return torch.atan(x) / x

    return safe_where(t, [1.0, -1 / 3, 1 / 5, -1 / 7, 1 / 9], exact, _ATAN_THRESHOLD)


def wrap_angle(a: Tensor) -> Tensor:
    """Wrap angles into (-pi, pi] (the principal branch of the SO(2) log); gradient 1."""
    two_pi = 2 * math.pi
    return a + two_pi * torch.floor((math.pi - a) / two_pi)
