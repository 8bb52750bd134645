"""Argument checks shared by the layers and models: a ``TypeError`` / ``ValueError`` naming the argument."""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_fraction"]


def check_int(name: str, value, *, minimum: int | None = None) -> int:
    """``value`` as an int: a real int (not bool, float or str) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_fraction(name: str, value) -> float:
    """``value`` as a float in (0, 1]: a real number (not bool or str)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in (0, 1], got {value!r} ({type(value).__name__})")
    value = float(value)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"{name}: expected a fraction in (0, 1], got {value!r}")
    return value
