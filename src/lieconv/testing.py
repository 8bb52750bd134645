"""Public testing helpers: a dtype-keyed tolerance table, random group elements, and
``assert_equivariant`` for layers and models.

Equivariance is checked to float precision with *shared random draws*: the input is lifted once,
a random group element g acts on the lifted elements (u -> g u) and on nothing else, and the module
runs on both inputs with generators in the same state, so every Monte-Carlo choice (stabilizer
samples, neighbourhood samples) is the same in both calls.  For groups whose lift is unique
(stabilizer_dim == 0) the check can instead transform the raw points (``transform="points"``),
needing no shared lift.

The group element is drawn in float64 and g x is computed in float64 and rounded once to the input
dtype.  In float32 that rounding is the one difference between the inputs, but it (with the float32
distances) can still flip a nearly tied farthest-point or ball-edge choice (about 1 random 24-point
SE(2) cloud in 1,500, see ``lieconv.neighbors``), and then the error is far above
``TOL[float32]``.  float64 checks are not affected in practice.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .data import Lifted, Points
from .groups.base import LieGroup
from .lifting import lift

__all__ = [
    "TOL",
    "tolerance",
    "random_group_element",
    "transform_points",
    "transform_lifted",
    "relative_error",
    "assert_equivariant",
]

#: Default tolerance on the scale-adjusted error (see ``relative_error``), by dtype.  float64 is
#: used for correctness checks, float32 for smoke tests of the same maths (module docstring: the
#: rare float32 flips at near-ties).
TOL: dict[torch.dtype, float] = {torch.float64: 1e-9, torch.float32: 1e-4}


def tolerance(dtype: torch.dtype) -> float:
    try:
        return TOL[dtype]
    except KeyError:
        raise ValueError(f"dtype: expected one of {sorted(map(str, TOL))}, got {dtype}") from None


def random_group_element(
    group: LieGroup, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64, scale: float = 1.0
) -> Tensor:
    """One random element of ``group`` as a (rep_dim, rep_dim) matrix."""
    return group.sample(1, generator=generator, dtype=dtype, scale=scale)[0]


def _wide(t: Tensor) -> Tensor:
    return t.to(torch.float64) if t.is_floating_point() and t.dtype != torch.float64 else t


def transform_points(group: LieGroup, g: Tensor, points: Points) -> Points:
    """g acting on the coordinates of ``points`` (values and mask unchanged).

    Computed in float64 and rounded once to the coordinates' dtype: in float32 the result is g x
    correctly rounded, with no error of the action's own arithmetic."""
    c = points.coords
    return points.replace(coords=group.act(_wide(g), _wide(c)).to(c.dtype))


def transform_lifted(group: LieGroup, g: Tensor, x: Lifted) -> Lifted:
    """g acting on lifted elements by left multiplication, u -> g u (orbits are invariant).

    Computed in float64 and rounded once to the elements' dtype (as ``transform_points``)."""
    return x.replace(elems=group.left_mul_elems(_wide(g), _wide(x.elems)).to(x.elems.dtype))


def relative_error(a: Tensor, b: Tensor) -> float:
    """``max|a - b| / max(max|a|, 1)``: an error relative to the output's scale, floored at 1."""
    if not a.numel():
        return 0.0
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) / max(1.0, float(a.abs().max()))


def _outputs(out) -> Tensor:
    return out.values if isinstance(out, Lifted) else out


def assert_equivariant(
    fn: Callable,
    group: LieGroup,
    points: Points,
    *,
    num_samples: int = 1,
    invariant: bool = True,
    transform: str = "lifted",
    ntrials: int = 3,
    atol: float | None = None,
    seed: int = 0,
    scale: float = 1.0,
) -> float:
    """Check ``fn`` is invariant (pooled outputs) or equivariant (per-point outputs) under ``group``.

    Args:
        fn: called as ``fn(x, generator=gen)`` with ``x`` a ``Lifted`` (``transform="lifted"``) or a
            ``Points`` (``transform="points"``); returns a tensor or a ``Lifted``.
        group: the group whose random elements act.
        points: the input batch.
        num_samples: lift samples (``transform="lifted"``).
        invariant: compare outputs directly (True); otherwise the outputs must be ``Lifted`` whose
            values agree and whose elements transform as g u.
        transform: "lifted" (lift once, act on the lifted elements: shared stabilizer draws) or
            "points" (act on the coordinates and let ``fn`` lift: for groups with a unique lift).
        ntrials: number of random group elements.
        atol: tolerance on ``relative_error``; default ``TOL[dtype]``.
        seed: seeds the group elements, the lift and the generator handed to ``fn``.

    Returns the worst error; raises ``AssertionError`` naming the group, trial and error otherwise.
    """
    __tracebackhide__ = True
    if isinstance(ntrials, bool) or not isinstance(ntrials, int) or ntrials < 1:
        raise ValueError(f"ntrials: expected an int >= 1 (0 trials would check nothing), got {ntrials!r}")
    if transform not in ("lifted", "points"):
        raise ValueError(f"transform: expected 'lifted' or 'points', got {transform!r}")
    dtype = points.coords.dtype
    tol = tolerance(dtype) if atol is None else atol
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for trial in range(ntrials):
        g = random_group_element(group, generator=gen, scale=scale)  # float64: g x is rounded once
        g = g.to(points.coords.device)  # drawn on the CPU: the same elements for data on any device
        if transform == "lifted":
            x = lift(points, group, num_samples, generator=torch.Generator().manual_seed(seed + 1000 + trial))
            gx = transform_lifted(group, g, x)
        else:
            x, gx = points, transform_points(group, g, points)
        run_seed = seed + 2000 + trial
        out = fn(x, generator=torch.Generator().manual_seed(run_seed))
        gout = fn(gx, generator=torch.Generator().manual_seed(run_seed))
        err = relative_error(_outputs(out), _outputs(gout))
        if not invariant:
            if not (isinstance(out, Lifted) and isinstance(gout, Lifted)):
                raise ValueError("fn: with invariant=False the outputs must be lieconv.Lifted")
            moved = transform_lifted(group, g, out).elems
            err = max(
                err,
                relative_error(group.elems_to_matrix(moved), group.elems_to_matrix(gout.elems)),
                relative_error(out.orbits, gout.orbits),
            )
        worst = max(worst, err)
        if not err <= tol:
            raise AssertionError(
                f"not {'invariant' if invariant else 'equivariant'} under {group}: trial {trial}, "
                f"error {err:.3e} > tolerance {tol:.1e}"
            )
    return worst
