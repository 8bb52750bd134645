"""The 2-D spring data set of the paper (§6.3, appendix C.4): generation, caching, ``Dataset``.

Each system has ``n = 6`` bodies in ``d = 2`` dimensions, joined pairwise by springs of rest length
0 (complete graph, ``V = Σ_{i<j} k_i k_j ‖q_i − q_j‖²``, see :mod:`lieconv.dynamics.hamiltonian`):

    m_i ~ U(0.1, 3.1),   k_i ~ U(0, 5),   k_ij = k_i k_j,
    q_i ~ N(0, 0.16 I),  p_i ~ N(0, 0.36 I)   (the drawn total momentum is kept, not removed).

Ground truth is integrated in float64 for 5 s at the 500 times ``t = 0.01·arange(500)`` — all
systems at once as one batched ODE — by fixed-step RK4 with substeps chosen from each batch's
largest normal-mode frequency (``ω_max·h ≤ omega_h``, as the paper's "fixed step size chosen
automatically"), or by ``"dopri5"`` (rtol = atol = 1e-10) or by the closed-form normal-mode
solution ``"exact"`` (the system is linear).  One random segment of ``chunk_len = 1 + 4``
consecutive states is kept per system; the test split also keeps the full 500-step trajectories
for long rollouts.

Layouts (see :mod:`lieconv.dynamics.hamiltonian`): states are flat ``z = (q, p)``, positions
first, ``D = 2·n·d = 24``; ``sys_params = (m, k)`` per particle, ``(n, 2)``.

Dataset item (:class:`SpringsDataset`)::

    ((z0, ts, sys_params), z_target)
    z0          (D,)           state at the start of the segment
    ts          (L,)           0.01·arange(L), L = chunk_len = 5, times relative to z0 (ts[0] = 0)
    sys_params  (n, 2)         (m_i, k_i)
    z_target    (L - 1, D)     states at ts[1:]

After ``default_collate``: ``z0 (B, D)``, ``ts (B, L)`` (identical rows), ``sys_params (B, n, 2)``,
``z_target (B, L-1, D)``.  A model rolled out with
:class:`lieconv.models.baselines.ModelDynamics` returns ``(B, L, D)`` whose ``[:, 1:]`` is compared
with ``z_target`` (paper eq. 11).

Your own trajectories (:func:`load_springs_npz`, :func:`save_springs_npz`)
--------------------------------------------------------------------------
One ``.npz`` file (``numpy.savez``) holds the splits, four arrays per split ``SPLIT`` in
``train | valid | test`` (train and valid to train, the evaluated split to evaluate)::

    SPLIT_z0          (S, D)            float   state at ts[:, 0]: (q_1..q_n, p_1..p_n) flattened, D = 2·n·d
    SPLIT_ts          (S, L) or (L,)    float   each item's times (strictly increasing); (L,) = one shared grid
    SPLIT_z_target    (S, L-1, D)       float   the states at ts[:, 1:]
    SPLIT_sys_params  (S, n, 2)         float   (m_i, k_i) per body, masses m_i > 0

An item is a chunk (``L = 5`` as in the paper) or a whole trajectory (``L = T``); items may have
different time grids, but one file has one ``L`` per split.  ``d = 2`` for the planar LieConv
groups.  All values finite.  :class:`SpringsSegments` is the ``Dataset`` of one split (the same
item format as :class:`SpringsDataset`, with ``ts[i]`` per item).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..dynamics.hamiltonian import SpringHamiltonian, join_state, split_state, state_dims
from ..dynamics.integrate import odeint
from . import _offline

__all__ = [
    "SpringsConfig",
    "SPLIT_SIZES",
    "GT_METHODS",
    "sample_systems",
    "integrate_springs",
    "spring_exact_solution",
    "generate_springs",
    "load_springs",
    "SpringsSegments",
    "SpringsDataset",
    "default_root",
    "NPZ_ARRAYS",
    "save_springs_npz",
    "load_springs_npz",
    "npz_splits",
    "check_segments",
]

SPLIT_SIZES = {"train": 3000, "valid": 2000, "test": 2000}
GT_METHODS = ("rk4", "dopri5", "exact")
_SPLIT_OFFSETS = {"train": 0, "valid": 1, "test": 2}
_FORMAT_VERSION = 2  # 2: V = Σ_{i<j} k_i k_j ‖q_i − q_j‖² (version 1 had ½ in front); old caches regenerate
_BLOCK = 1024  # systems integrated together by generate_springs


@dataclass(frozen=True)
class SpringsConfig:
    """Everything that determines a generated split; its hash is the cache key.

    Parameters
    ----------
    n_systems : int
        Number of systems (one segment each).
    seed : int
        Seed of the split's ``torch.Generator`` (systems, initial states, segment starts).
    n_bodies, dim : int
        6 bodies in 2-D in the paper.
    n_steps, dt : int, float
        Trajectory times ``dt·arange(n_steps)``: 500 states over 5 s.
    chunk_len : int
        States per training segment, ``1 + 4``.
    mass_range, k_range : tuple
        Uniform ranges of ``m_i`` and ``k_i``.
    q_var, p_var : float
        Variances of the Gaussian initial positions and momenta.
    method : str
        Ground-truth integrator, one of ``GT_METHODS``.
    omega_h : float
        ``"rk4"``: largest ``ω·h`` allowed (``ω`` the batch's largest mode frequency, ``h`` the step).
    rtol, atol : float
        ``"dopri5"`` tolerances.
    keep_trajectories : bool
        Keep the full ``(n_systems, n_steps, D)`` trajectories (float64: 96 kB per system).
    """

    n_systems: int = 3000
    seed: int = 0
    n_bodies: int = 6
    dim: int = 2
    n_steps: int = 500
    dt: float = 0.01
    chunk_len: int = 5
    mass_range: tuple = (0.1, 3.1)
    k_range: tuple = (0.0, 5.0)
    q_var: float = 0.16
    p_var: float = 0.36
    method: str = "rk4"
    omega_h: float = 0.02
    rtol: float = 1e-10
    atol: float = 1e-10
    keep_trajectories: bool = False

    def __post_init__(self):
        for name in ("n_systems", "n_bodies", "dim", "n_steps", "chunk_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if self.n_bodies < 2:
            raise ValueError(f"n_bodies: expected at least 2 bodies, got {self.n_bodies}")
        if self.chunk_len < 2 or self.chunk_len > self.n_steps:
            raise ValueError(f"chunk_len: expected 2 <= chunk_len <= n_steps = {self.n_steps}, got {self.chunk_len}")
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"dt: expected a positive time step, got {self.dt}")
        lo, hi = self.mass_range
        if not (0 < lo <= hi):
            raise ValueError(f"mass_range: expected 0 < low <= high (positive masses), got {self.mass_range}")
        lo, hi = self.k_range
        if not (0 <= lo <= hi):
            raise ValueError(f"k_range: expected 0 <= low <= high, got {self.k_range}")
        if not (self.q_var > 0 and self.p_var > 0):
            raise ValueError(f"q_var, p_var: expected positive variances, got {self.q_var}, {self.p_var}")
        if self.method not in GT_METHODS:
            raise ValueError(f"method: unknown ground-truth method {self.method!r}; choose from {sorted(GT_METHODS)}")
        if not self.omega_h > 0:
            raise ValueError(f"omega_h: expected > 0, got {self.omega_h}")
        # tuples survive json / dataclasses.replace with lists too
        object.__setattr__(self, "mass_range", tuple(float(x) for x in self.mass_range))
        object.__setattr__(self, "k_range", tuple(float(x) for x in self.k_range))

    @property
    def times(self) -> Tensor:
        """``dt·arange(n_steps)`` in float64."""
        return self.dt * torch.arange(self.n_steps, dtype=torch.float64)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "format_version": _FORMAT_VERSION}

    def key(self) -> str:
        """sha256 of the canonical JSON of the config (and the file-format version)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _check_system(z0: Tensor, masses: Tensor, k: Tensor) -> int:
    """Validate a batch of systems; returns ``d``.  z0 ``(S, 2·n·d)``, masses and k ``(S, n)``."""
    for name, t in (("z0", z0), ("masses", masses), ("k", k)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    if masses.dim() != 2:
        raise ValueError(f"masses: expected shape (S, n), got {tuple(masses.shape)}")
    if k.shape != masses.shape:
        raise ValueError(f"k: expected shape (S, n) = {tuple(masses.shape)} like masses, got {tuple(k.shape)}")
    S, n = masses.shape
    if z0.dim() != 2 or z0.shape[0] != S or z0.shape[1] % (2 * n) != 0:
        raise ValueError(f"z0: expected shape (S, 2·n·d) with S = {S}, n = {n}, got {tuple(z0.shape)}")
    if not torch.isfinite(z0).all():
        raise ValueError("z0: expected finite states, got NaN or inf")
    if not torch.isfinite(masses).all() or not (masses > 0).all():
        raise ValueError("masses: expected finite positive masses, got a non-positive, NaN or inf value")
    if not torch.isfinite(k).all():
        raise ValueError("k: expected finite spring constants, got NaN or inf")
    return state_dims(z0, n)


# ----------------------------------------------------------------------------------------------
# sampling and integration
# ----------------------------------------------------------------------------------------------
def sample_systems(config: SpringsConfig, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``(z0 (S, D), masses (S, n), k (S, n))`` in float64 from ``generator`` (C.4 distributions)."""
    S, n, d = config.n_systems, config.n_bodies, config.dim
    f64 = dict(dtype=torch.float64, generator=generator)
    m_lo, m_hi = config.mass_range
    k_lo, k_hi = config.k_range
    masses = m_lo + (m_hi - m_lo) * torch.rand(S, n, **f64)
    k = k_lo + (k_hi - k_lo) * torch.rand(S, n, **f64)
    q = math.sqrt(config.q_var) * torch.randn(S, n, d, **f64)
    p = math.sqrt(config.p_var) * torch.randn(S, n, d, **f64)
    return join_state(q, p), masses, k


def _stiffness(masses: Tensor, k: Tensor) -> Tensor:
    """Symmetric ``A = M^{-1/2} L M^{-1/2}`` with ``L = 2 (diag(k·Σk) − k kᵀ)``, shape ``(S, n, n)``.

    Per spatial axis the spring dynamics are ``q̈ = −M⁻¹ L q``; the eigenvalues of ``A`` are the
    squared normal-mode frequencies ``ω²`` (``L`` is the Hessian of ``V`` per axis, so
    ``V = Σ_axes ½ qᵀ L q``).
    """
    L = 2 * (torch.diag_embed(k * k.sum(-1, keepdim=True)) - k.unsqueeze(-1) * k.unsqueeze(-2))
    s = masses.rsqrt()
    return s.unsqueeze(-1) * L * s.unsqueeze(-2)


def max_frequency(masses: Tensor, k: Tensor) -> Tensor:
    """Largest normal-mode angular frequency ``ω_max`` of each system, ``(S,)``."""
    return torch.linalg.eigvalsh(_stiffness(masses, k))[..., -1].clamp_min(0).sqrt()


def spring_exact_solution(z0: Tensor, masses: Tensor, k: Tensor, ts: Tensor) -> Tensor:
    """Closed-form solution of the (linear) spring system by normal modes; ``(S, T, D)``.

    With ``A = M^{-1/2} L M^{-1/2} = U Λ Uᵀ``, modal coordinates ``a = Uᵀ M^{1/2} q``,
    ``b = Uᵀ M^{-1/2} p`` obey ``ä = −ω² a``, ``ȧ = b``:
    ``a(t) = a₀ cos ωt + b₀ sin(ωt)/ω``, ``b(t) = −ω a₀ sin ωt + b₀ cos ωt`` (``ω = 0``: free drift).
    Accurate to rounding in float64; used to verify the integrators.
    """
    _check_system(z0, masses, k)
    n = masses.shape[-1]
    lam, U = torch.linalg.eigh(_stiffness(masses, k))  # (S, n), (S, n, n)
    w = lam.clamp_min(0).sqrt()
    q0, p0 = split_state(z0, n)  # (S, n, d)
    sm = masses.sqrt().unsqueeze(-1)
    a0 = U.transpose(-1, -2) @ (sm * q0)  # (S, n, d)
    b0 = U.transpose(-1, -2) @ (p0 / sm)
    t = ts.to(z0).reshape(1, -1, 1, 1)  # (1, T, 1, 1)
    wt = w[:, None, :, None] * t  # (S, T, n, 1)
    cos, sin = wt.cos(), wt.sin()
    sinc_t = t * torch.sinc(wt / math.pi)  # sin(ωt)/ω, = t at ω = 0
    a = a0[:, None] * cos + b0[:, None] * sinc_t
    b = -(w[:, None, :, None] * a0[:, None]) * sin + b0[:, None] * cos
    q = (U[:, None] @ a) / sm[:, None]
    p = (U[:, None] @ b) * sm[:, None]
    return join_state(q, p)


def integrate_springs(
    z0: Tensor,
    masses: Tensor,
    k: Tensor,
    ts: Tensor,
    *,
    method: str = "rk4",
    omega_h: float = 0.02,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    batch_size: int = 1024,
) -> Tensor:
    """Ground-truth trajectories of a batch of spring systems, ``(S, T, D)``, as batched ODEs.

    Parameters
    ----------
    z0 : Tensor
        ``(S, 2·n·d)`` initial states (float64 recommended).
    masses, k : Tensor
        ``(S, n)`` positive masses and spring constants.
    ts : Tensor
        ``(T,)`` increasing output times.
    method : str
        ``"rk4"`` (substeps so that ``ω_max·h ≤ omega_h`` within each batch), ``"dopri5"``
        (``rtol``, ``atol``) or ``"exact"`` (normal modes).
    batch_size : int
        Systems integrated together; systems are sorted by ``ω_max`` first so that stiff systems
        share small steps (the output keeps the input order).
    """
    _check_system(z0, masses, k)
    if method not in GT_METHODS:
        raise ValueError(f"method: unknown ground-truth method {method!r}; choose from {sorted(GT_METHODS)}")
    ts = ts.to(z0)
    if method == "exact":
        return spring_exact_solution(z0, masses, k, ts)
    S = z0.shape[0]
    out = torch.empty(S, ts.numel(), z0.shape[-1], dtype=z0.dtype)
    omega = max_frequency(masses, k)
    order = torch.argsort(omega)
    dt_max = float((ts[1:] - ts[:-1]).max()) if ts.numel() > 1 else 0.0
    for start in range(0, S, batch_size):
        idx = order[start : start + batch_size]
        f = SpringHamiltonian(masses[idx], k[idx])
        if method == "rk4":
            substeps = max(1, math.ceil(float(omega[idx].max()) * dt_max / omega_h))
            traj = odeint(f, z0[idx], ts, method="rk4", substeps=substeps)
        else:
            traj = odeint(f, z0[idx], ts, method="dopri5", rtol=rtol, atol=atol)
        out[idx] = traj.transpose(0, 1)
    return out


# ----------------------------------------------------------------------------------------------
# generation and caching
# ----------------------------------------------------------------------------------------------
def generate_springs(config: SpringsConfig) -> dict:
    """Generate one split (no caching).

    Returns a dict of float64 tensors::

        masses, k       (S, n)
        z_init          (S, D)          state at t = 0
        start           (S,) int64      index of each segment's first state
        chunks          (S, L, D)       the segments, L = chunk_len
        times           (n_steps,)
        trajectories    (S, n_steps, D) only if config.keep_trajectories
        key, config     cache key and config dict
    """
    g = torch.Generator().manual_seed(config.seed)
    z_init, masses, k = sample_systems(config, g)
    start = torch.randint(0, config.n_steps - config.chunk_len + 1, (config.n_systems,), generator=g)
    # integrate in blocks of systems with similar stiffness; only the segments (and, if asked, the
    # trajectories) are kept, so memory stays at one block of full trajectories
    D, L = z_init.shape[-1], config.chunk_len
    chunks = torch.empty(config.n_systems, L, D, dtype=torch.float64)
    traj = torch.empty(config.n_systems, config.n_steps, D, dtype=torch.float64) if config.keep_trajectories else None
    order = torch.argsort(max_frequency(masses, k))
    for b in range(0, config.n_systems, _BLOCK):
        idx = order[b : b + _BLOCK]
        block = integrate_springs(
            z_init[idx],
            masses[idx],
            k[idx],
            config.times,
            method=config.method,
            omega_h=config.omega_h,
            rtol=config.rtol,
            atol=config.atol,
            batch_size=_BLOCK,
        )
        steps = start[idx, None] + torch.arange(L)  # (b, L)
        chunks[idx] = torch.gather(block, 1, steps[..., None].expand(-1, -1, D))
        if traj is not None:
            traj[idx] = block
    data = {
        "key": config.key(),
        "config": config.to_dict(),
        "masses": masses,
        "k": k,
        "z_init": z_init,
        "start": start,
        "chunks": chunks,
        "times": config.times,
    }
    if traj is not None:
        data["trajectories"] = traj
    return data


def _valid_cache(data, config: SpringsConfig) -> bool:
    """True when ``data`` (a loaded cache) holds exactly what ``config`` generates (key, shapes, finite)."""
    if not isinstance(data, dict) or data.get("key") != config.key() or data.get("config") != config.to_dict():
        return False
    S, n, L, T = config.n_systems, config.n_bodies, config.chunk_len, config.n_steps
    D = 2 * n * config.dim
    shapes = {"masses": (S, n), "k": (S, n), "z_init": (S, D), "start": (S,), "chunks": (S, L, D), "times": (T,)}
    if config.keep_trajectories:
        shapes["trajectories"] = (S, T, D)
    for name, shape in shapes.items():
        t = data.get(name)
        if not isinstance(t, Tensor) or tuple(t.shape) != shape:
            return False
        if t.is_floating_point() and not torch.isfinite(t).all():
            return False
    return True


def default_root() -> Path:
    """``$LIECONV_DATA/springs`` (default ``~/.cache/lieconv/springs``)."""
    return _offline.default_root() / "springs"


def cache_path(config: SpringsConfig, root: str | os.PathLike) -> Path:
    return Path(root) / f"springs_{config.key()[:20]}.pt"


def load_springs(config: SpringsConfig, root: str | os.PathLike | None = None, *, regenerate: bool = False) -> dict:
    """Load a split from ``root`` or generate and save it (``_offline.save_cache``: atomic, with a
    SHA-256 side file).

    The file name holds the first 20 hex digits of ``config.key()``; the file stores the full key
    and config.  A file that cannot be read (truncated, garbage), whose key/config differ, or whose
    tensors have the wrong shapes or non-finite values is regenerated and overwritten.
    The returned dict has an extra ``"cache"`` entry: ``"hit"``, ``"miss"`` or ``"invalid"``.
    """
    root = default_root() if root is None else Path(root)
    path = cache_path(config, root)
    key = {"key": config.key(), "config": config.to_dict()}
    status = "miss"
    if path.exists() and not regenerate:
        data = _offline.load_cache(path, key)  # None (with a warning) when corrupt or stale
        if data is not None and _valid_cache(data, config):
            data["cache"] = "hit"
            return data
        status = "invalid"
    _offline.check_cache_target(path)  # fail before minutes of simulation
    data = generate_springs(config)
    _offline.save_cache(path, data, key)
    data["cache"] = status
    return data


def split_seed(seed: int, split: str) -> int:
    """Independent seed per split, so the test set does not change with the training-set size."""
    return int(hashlib.sha256(f"springs/{seed}/{split}".encode()).hexdigest()[:12], 16)


def check_segments(z0, ts, z_target, sys_params, *, names=("z0", "ts", "z_target", "sys_params")) -> int:
    """Validate one split of segments; returns ``n`` (bodies).  ValueError names the offending array.

    Shapes: ``z0 (S, D)``, ``ts (S, L)`` or ``(L,)`` strictly increasing, ``z_target (S, L-1, D)``,
    ``sys_params (S, n, 2)`` with positive masses ``sys_params[..., 0]``; ``D = 2·n·d``; all finite.
    """
    nz, nt, ntar, nsp = names
    for name, t in zip(names, (z0, ts, z_target, sys_params)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point array, got {getattr(t, 'dtype', type(t).__name__)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name}: expected finite values, got NaN or inf")
    if sys_params.dim() != 3 or sys_params.shape[-1] != 2 or sys_params.shape[1] < 2:
        raise ValueError(
            f"{nsp}: expected shape (S, n, 2) = (m_i, k_i) per body with n >= 2, got {tuple(sys_params.shape)}"
        )
    S, n = sys_params.shape[:2]
    if z0.dim() != 2 or z0.shape[0] != S or z0.shape[1] % (2 * n) != 0:
        raise ValueError(f"{nz}: expected shape (S, 2·n·d) with S = {S}, n = {n} (from {nsp}), got {tuple(z0.shape)}")
    D = z0.shape[1]
    if ts.dim() not in (1, 2) or (ts.dim() == 2 and ts.shape[0] != S) or ts.shape[-1] < 2:
        raise ValueError(f"{nt}: expected shape (S, L) or (L,) with S = {S} and L >= 2, got {tuple(ts.shape)}")
    if not (ts[..., 1:] > ts[..., :-1]).all():
        raise ValueError(f"{nt}: expected strictly increasing times in every row")
    L = ts.shape[-1]
    if tuple(z_target.shape) != (S, L - 1, D):
        raise ValueError(
            f"{ntar}: expected shape (S, L-1, D) = ({S}, {L - 1}, {D}) from {nz} and {nt}, got {tuple(z_target.shape)}"
        )
    if not (sys_params[..., 0] > 0).all():
        raise ValueError(f"{nsp}: expected positive masses {nsp}[..., 0], got a value <= 0")
    return n


class SpringsSegments(torch.utils.data.Dataset):
    """Segments of particle trajectories: item ``((z0 (D,), ts (L,), sys_params (n, 2)), z_target (L-1, D))``.

    The dataset of your own data (:func:`load_springs_npz`) and the base of :class:`SpringsDataset`.

    Parameters
    ----------
    z0 : Tensor ``(S, D)``
    ts : Tensor ``(S, L)`` (one grid per item) or ``(L,)`` (shared)
    z_target : Tensor ``(S, L-1, D)``
    sys_params : Tensor ``(S, n, 2)``
    dtype : torch.dtype, optional
        Cast everything to it (default: keep).
    names : tuple of str
        How the four arrays are called in error messages (e.g. ``"train_z0"`` for a file).
    """

    trajectories: Tensor | None = None

    def __init__(
        self,
        z0: Tensor,
        ts: Tensor,
        z_target: Tensor,
        sys_params: Tensor,
        *,
        dtype: torch.dtype | None = None,
        names=("z0", "ts", "z_target", "sys_params"),
    ):
        self.n_bodies = check_segments(z0, ts, z_target, sys_params, names=names)
        self.dim = z0.shape[-1] // (2 * self.n_bodies)
        cast = (lambda t: t) if dtype is None else (lambda t: t.to(dtype))
        self.z0, self.ts, self.z_target, self.sys_params = cast(z0), cast(ts), cast(z_target), cast(sys_params)

    def __len__(self) -> int:
        return self.z0.shape[0]

    def __getitem__(self, i: int):
        ts = self.ts if self.ts.dim() == 1 else self.ts[i]
        return (self.z0[i], ts, self.sys_params[i]), self.z_target[i]

    def states(self) -> Tensor:
        """``(S, L, D)``: ``z0`` followed by the targets."""
        return torch.cat([self.z0.unsqueeze(1), self.z_target], dim=1)

    def times(self) -> Tensor:
        """``(S, L)`` time grid of every item."""
        return self.ts.expand(len(self), -1) if self.ts.dim() == 1 else self.ts


#: The arrays of one split in a springs ``.npz`` file (``f"{split}_{name}"``).
NPZ_ARRAYS = ("z0", "ts", "z_target", "sys_params")


def save_springs_npz(path: str | os.PathLike, splits: dict) -> Path:
    """Write splits to an ``.npz`` file in the documented format (see the module docstring).

    Parameters
    ----------
    path : path
        Output file (``.npz``; float64 arrays).
    splits : dict
        ``{split: dataset or (z0, ts, z_target, sys_params)}`` — a :class:`SpringsSegments` /
        :class:`SpringsDataset`, or four tensors / arrays of the documented shapes.

    Example: ``save_springs_npz("mine.npz", {s: SpringsDataset(s, size=100) for s in ("train", "valid", "test")})``.
    """
    import numpy as np

    arrays = {}
    for split, data in splits.items():
        if split not in SPLIT_SIZES:
            raise ValueError(f"splits: unknown split {split!r}; choose from {sorted(SPLIT_SIZES)}")
        if isinstance(data, SpringsSegments):
            parts = (data.z0, data.ts, data.z_target, data.sys_params)
        else:
            parts = tuple(torch.as_tensor(a, dtype=torch.float64) for a in data)
            if len(parts) != 4:
                raise ValueError(f"splits[{split!r}]: expected a dataset or (z0, ts, z_target, sys_params)")
        parts = tuple(torch.as_tensor(a).to(torch.float64) for a in parts)
        check_segments(*parts, names=tuple(f"{split}_{a}" for a in NPZ_ARRAYS))
        arrays.update({f"{split}_{a}": t.numpy() for a, t in zip(NPZ_ARRAYS, parts)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object: numpy would append .npz to other names
        np.savez(f, **arrays)
    return path


def npz_splits(path: str | os.PathLike) -> list[str]:
    """The splits of a springs ``.npz`` file with at least one of their four arrays (``[]`` if none;
    ValueError if unreadable); :func:`load_springs_npz` then names any missing array."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data: no such file {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
    except Exception as exc:  # zipfile / pickle errors: not an npz file of plain arrays
        raise ValueError(f"data: cannot read {str(path)!r} as an .npz file of arrays ({exc})") from None
    return [s for s in SPLIT_SIZES if any(f"{s}_{a}" in files for a in NPZ_ARRAYS)]


def load_springs_npz(
    path: str | os.PathLike, split: str, *, dtype: torch.dtype = torch.float32, chunk_len: int = 0
) -> SpringsSegments:
    """One split of a springs ``.npz`` file as a :class:`SpringsSegments` (format: module docstring).

    Parameters
    ----------
    chunk_len : int
        0: the items as stored; ``c >= 2``: cut every item into consecutive windows of ``c`` states
        (starting at states 0, c-1, 2(c-1), ..., each window's first state the last of the one
        before), e.g. whole trajectories into the paper's ``1 + 4``-state chunks.

    Raises
    ------
    ValueError
        Unreadable file, a missing array, wrong shapes, non-finite values, non-increasing times,
        non-positive masses, ``chunk_len`` longer than the items; the message names the array.
    """
    import numpy as np

    path = Path(path)
    if split not in SPLIT_SIZES:
        raise ValueError(f"split: unknown split {split!r}; choose from {sorted(SPLIT_SIZES)}")
    if not path.is_file():
        raise ValueError(f"data: no such file {str(path)!r}")
    names = tuple(f"{split}_{a}" for a in NPZ_ARRAYS)
    try:
        with np.load(path, allow_pickle=False) as f:
            files = list(f.files)
            arrays = {n: f[n] for n in names if n in files}
    except Exception as exc:  # zipfile / pickle errors: not an npz file of plain arrays
        raise ValueError(f"data: cannot read {str(path)!r} as an .npz file of arrays ({exc})") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(
            f"data: {str(path)!r} lacks the array(s) {missing} of split {split!r} "
            f"(it has {sorted(files)}); see lieconv.datasets.springs for the format"
        )
    parts = []
    for n in names:
        a = arrays[n]
        if a.dtype.kind not in "fiu":
            raise ValueError(f"{n}: expected a numeric array, got dtype {a.dtype}")
        parts.append(torch.from_numpy(np.ascontiguousarray(a)).to(torch.float64))
    z0, ts, z_target, sp = parts
    check_segments(z0, ts, z_target, sp, names=names)
    if chunk_len:
        z0, ts, z_target = _chunk(z0, ts, z_target, int(chunk_len), names)
        sp_idx = torch.arange(sp.shape[0]).repeat_interleave(z0.shape[0] // sp.shape[0])
        sp = sp[sp_idx]
    return SpringsSegments(z0, ts, z_target, sp, dtype=dtype, names=names)


def _chunk(z0: Tensor, ts: Tensor, z_target: Tensor, c: int, names) -> tuple[Tensor, Tensor, Tensor]:
    """Cut ``(S, L)`` items into ``w = (L-1)//(c-1)`` windows of ``c`` states each (item-major order)."""
    S, L = z0.shape[0], ts.shape[-1]
    if c < 2 or c > L:
        raise ValueError(f"chunk_len: expected 2 <= chunk_len <= L = {L} (the length of {names[1]}), got {c}")
    states = torch.cat([z0.unsqueeze(1), z_target], dim=1)  # (S, L, D)
    times = ts.expand(S, -1) if ts.dim() == 1 else ts
    starts = torch.arange(0, L - c + 1, c - 1)  # (w,)
    idx = starts[:, None] + torch.arange(c)  # (w, c)
    win = states[:, idx]  # (S, w, c, D)
    wts = times[:, idx]  # (S, w, c)
    win, wts = win.flatten(0, 1), wts.flatten(0, 1)
    return win[:, 0], wts, win[:, 1:]


class SpringsDataset(SpringsSegments):
    """One split of the spring data set; see the module docstring for the item format.

    Parameters
    ----------
    split : str
        ``"train" | "valid" | "test"``; each split has its own seed derived from ``seed``.
    size : int, optional
        Number of systems (default: the paper's 3000 / 2000 / 2000).
    root : path, optional
        Cache directory (default :func:`default_root`); ``cache=False`` never touches the disk.
    seed : int
        Base seed.
    dtype : torch.dtype
        dtype of the returned items (the paper trains in float32; the cache is float64).
    keep_trajectories : bool, optional
        Keep the full 500-step trajectories (default: only for ``"test"``).
    **config
        Further :class:`SpringsConfig` fields (``n_steps``, ``chunk_len``, ``method``, ...).

    Attributes
    ----------
    z0 (S, D), ts (L,), sys_params (S, n, 2), z_target (S, L-1, D) :
        The items, stacked, in ``dtype``.
    trajectories : Tensor or None
        ``(S, n_steps, D)`` float64 ground truth from ``t = 0`` (``times``), for long rollouts.
    z_init : Tensor
        ``(S, D)`` float64 states at ``t = 0``.
    """

    def __init__(
        self,
        split: str = "train",
        *,
        size: int | None = None,
        root=None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        keep_trajectories: bool | None = None,
        cache: bool = True,
        **config,
    ):
        if split not in SPLIT_SIZES:
            raise ValueError(f"split: unknown split {split!r}; choose from {sorted(SPLIT_SIZES)}")
        keep = (split == "test") if keep_trajectories is None else keep_trajectories
        self.config = SpringsConfig(
            n_systems=SPLIT_SIZES[split] if size is None else size,
            seed=split_seed(seed, split),
            keep_trajectories=keep,
            **config,
        )
        data = load_springs(self.config, root) if cache else {**generate_springs(self.config), "cache": "off"}
        self.split = split
        self.cache_status = data["cache"]
        super().__init__(
            data["chunks"][:, 0],
            self.config.dt * torch.arange(self.config.chunk_len, dtype=torch.float64),
            data["chunks"][:, 1:],
            torch.stack([data["masses"], data["k"]], dim=-1),
            dtype=dtype,
        )
        self.start = data["start"]
        self.times = data["times"]
        self.z_init = data["z_init"]
        self.trajectories = data.get("trajectories")
