"""Lie groups: maths only (imports torch and nothing else from lieconv).

``get_group(name, **kwargs)`` builds a registered group by name; ``GROUPS`` maps names to
constructors.  An unknown name raises ``ValueError`` listing the choices.

==========  =================================  =========  ======  =====  ====================
name        group (acting on)                  lie_dim    elems   q_dim  stabilizer samples
==========  =================================  =========  ======  =====  ====================
Trivial2/3  {e} (R^d)                          0          0       d      1
T2/T3       translations (R^d)                 d          d       0      1
Tx, Ty      x- / y-translations (R^2)          1          2       1      1
SO2 (Rot)   rotations (R^2)                    1          1       1      1
RxSO2       rotation-scalings (R^2 \\ 0)        2          2       0      1
Rx (Scale)  dilations (R^2 \\ 0)                1          2       2      1
SE2         rigid motions (R^2)                3          3       0      any
SO3         rotations (R^3)                    3          4       1      any
SE3         rigid motions (R^3)                6          7       0      any
RxSQ        scalings x squeezes (quadrant)     2          4       0      1
==========  =================================  =========  ======  =====  ====================

``T`` and ``Trivial`` take the dimension: ``get_group("T", d=3)``.  Every constructor accepts
``alpha`` (the weight of the group part of the distance).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import LieGroup
from .matrix_group import MatrixLieGroup, RxSQ, matrix_log
from .rxso2 import RxSO2
from .se2 import SE2
from .se3 import SE3
from .so2 import SO2
from .so3 import SO3
from .subgroup import Subgroup
from .translation import T, Trivial


def Tx(*, alpha: float = 0.2) -> Subgroup:
    """x-translations of R^2: a = x-coordinate, q = y-coordinate."""
    return Subgroup(T(2), [0], orbit_coords=[1], name="Tx", alpha=alpha)


def Ty(*, alpha: float = 0.2) -> Subgroup:
    """y-translations of R^2: a = y-coordinate, q = x-coordinate."""
    return Subgroup(T(2), [1], orbit_coords=[0], name="Ty", alpha=alpha)


def Rx(*, alpha: float = 0.2) -> Subgroup:
    """Dilations R* of R^2 \\ 0 (the scaling part of RxSO(2)): a = log ||x||, q = x / ||x||."""
    return Subgroup(RxSO2(), [0], name="Rx", alpha=alpha)


GROUPS: dict[str, Callable[..., LieGroup]] = {
    "Trivial": lambda d=2, **kw: Trivial(d, **kw),
    "Trivial2": lambda **kw: Trivial(2, **kw),
    "Trivial3": lambda **kw: Trivial(3, **kw),
    "T": lambda d=2, **kw: T(d, **kw),
    "T2": lambda **kw: T(2, **kw),
    "T3": lambda **kw: T(3, **kw),
    "Tx": Tx,
    "Ty": Ty,
    "SO2": SO2,
    "Rot": SO2,
    "RxSO2": RxSO2,
    "Rx": Rx,
    "Scale": Rx,
    "SE2": SE2,
    "SO3": SO3,
    "SE3": SE3,
    "RxSQ": RxSQ,
}


def get_group(name: str, **kwargs) -> LieGroup:
    """Build a registered group: ``get_group("SE2", alpha=0.05)``."""
    if isinstance(name, LieGroup):
        return name
    try:
        factory = GROUPS[name]
    except (KeyError, TypeError):
        raise ValueError(f"group: unknown group {name!r}; choose from {sorted(GROUPS)}") from None
    return factory(**kwargs)


__all__ = [
    "LieGroup",
    "T",
    "Trivial",
    "Tx",
    "Ty",
    "Rx",
    "SO2",
    "RxSO2",
    "SE2",
    "SO3",
    "SE3",
    "RxSQ",
    "Subgroup",
    "MatrixLieGroup",
    "matrix_log",
    "GROUPS",
    "get_group",
]
