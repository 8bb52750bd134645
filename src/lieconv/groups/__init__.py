"""Lie groups: maths only (imports torch and nothing else from lieconv).

``get_group(name, **kwargs)`` builds a registered group by name; ``GROUPS`` maps names to
constructors.  An unknown name raises ``ValueError`` listing the choices.
"""
from __future__ import annotations

from typing import Callable

from .base import LieGroup
from .translation import T, Trivial

GROUPS: dict[str, Callable[..., LieGroup]] = {
    "Trivial": lambda d=2, **kw: Trivial(d, **kw),
    "Trivial2": lambda **kw: Trivial(2, **kw),
    "Trivial3": lambda **kw: Trivial(3, **kw),
    "T": lambda d=2, **kw: T(d, **kw),
    "T2": lambda **kw: T(2, **kw),
    "T3": lambda **kw: T(3, **kw),
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


__all__ = ["LieGroup", "T", "Trivial", "GROUPS", "get_group"]
