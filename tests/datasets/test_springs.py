"""Spring data set: ground-truth accuracy and conservation, item format, seeding, cache, bad input."""

import pytest
import torch

from lieconv.datasets.springs import (
    SpringsConfig,
    SpringsDataset,
    cache_path,
    generate_springs,
    integrate_springs,
    load_springs,
    sample_systems,
    spring_exact_solution,
)
from lieconv.dynamics import conserved_quantities

SMALL = dict(n_steps=30)  # short trajectories keep the cache tests fast


@pytest.fixture(scope="module")
def systems():
    cfg = SpringsConfig(n_systems=24, seed=3)
    z0, m, k = sample_systems(cfg, torch.Generator().manual_seed(3))
    # add the stiffest system the distribution allows: heavy springs on the lightest bodies
    m[0], k[0] = 0.1, 5.0
    return cfg, z0, m, k


@pytest.fixture(scope="module")
def ground_truth(systems):
    cfg, z0, m, k = systems
    return integrate_springs(z0, m, k, cfg.times, method=cfg.method, omega_h=cfg.omega_h)


def test_ground_truth_conserves_energy_and_momenta(systems, ground_truth):
    cfg, z0, m, k = systems
    assert ground_truth.shape == (24, 500, 24) and ground_truth.dtype == torch.float64
    torch.testing.assert_close(cfg.times[-1], torch.tensor(4.99, dtype=torch.float64))
    c = conserved_quantities(ground_truth, torch.stack([m, k], -1)[:, None])
    E, P, L = c["energy"], c["linear_momentum"], c["angular_momentum"]
    rel = lambda x, x0: (x - x0).abs().amax() / x0.abs().amax()  # noqa: E731
    assert rel(E, E[:, :1]) < 1e-6
    assert ((P - P[:, :1]).norm(dim=-1) / P[:, :1].norm(dim=-1)).max() < 1e-6
    assert ((L - L[:, :1]).abs() / L[:, :1].abs()).max() < 1e-6


def test_ground_truth_matches_closed_form(systems, ground_truth):
    cfg, z0, m, k = systems
    exact = spring_exact_solution(z0, m, k, cfg.times)
    err = ((ground_truth - exact).norm(dim=-1) / exact.norm(dim=-1)).max()
    assert err < 1e-6, err  # measured ~1e-7 at omega_h = 0.02
    # the closed form itself is an exact solution: compare with dopri5 at tight tolerance
    short = cfg.times[:50]
    d = integrate_springs(z0[:4], m[:4], k[:4], short, method="dopri5", rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d, exact[:4, :50], rtol=0, atol=1e-9)


def test_item_format_and_chunks(tmp_path):
    ds = SpringsDataset("test", size=5, root=tmp_path, **SMALL)
    assert len(ds) == 5
    (z0, ts, sp), target = ds[1]
    assert z0.shape == (24,) and sp.shape == (6, 2) and target.shape == (4, 24) and z0.dtype == torch.float32
    torch.testing.assert_close(ts, 0.01 * torch.arange(5, dtype=torch.float32))
    # the segment is a slice of the kept full trajectory
    assert ds.trajectories.shape == (5, 30, 24)
    s = int(ds.start[1])
    torch.testing.assert_close(target, ds.trajectories[1, s + 1 : s + 5].float())
    torch.testing.assert_close(z0, ds.trajectories[1, s].float())
    assert (sp[:, 0] >= 0.1).all() and (sp[:, 0] <= 3.1).all() and (sp[:, 1] >= 0).all() and (sp[:, 1] <= 5).all()
    (bz, bts, bsp), bt = torch.utils.data.default_collate([ds[i] for i in range(3)])
    assert bz.shape == (3, 24) and bts.shape == (3, 5) and bsp.shape == (3, 6, 2) and bt.shape == (3, 4, 24)
    assert SpringsDataset("train", size=3, root=tmp_path, **SMALL).trajectories is None


def test_reproducible_and_splits_differ(tmp_path):
    a = SpringsDataset("train", size=4, seed=7, cache=False, **SMALL)
    b = SpringsDataset("train", size=4, seed=7, cache=False, **SMALL)
    c = SpringsDataset("valid", size=4, seed=7, cache=False, **SMALL)
    d = SpringsDataset("train", size=4, seed=8, cache=False, **SMALL)
    assert torch.equal(a.z0, b.z0) and torch.equal(a.z_target, b.z_target) and torch.equal(a.start, b.start)
    assert not torch.equal(a.z0, c.z0) and not torch.equal(a.sys_params, d.sys_params)


def test_cache_hit_miss_and_corruption(tmp_path):
    cfg = SpringsConfig(n_systems=3, seed=1, **SMALL)
    first = load_springs(cfg, tmp_path)
    assert first["cache"] == "miss" and cache_path(cfg, tmp_path).exists()
    second = load_springs(cfg, tmp_path)
    assert second["cache"] == "hit" and torch.equal(second["chunks"], first["chunks"])
    # garbage in the file
    cache_path(cfg, tmp_path).write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="rebuilding"):
        third = load_springs(cfg, tmp_path)
    assert third["cache"] == "invalid" and torch.equal(third["chunks"], first["chunks"])
    assert load_springs(cfg, tmp_path)["cache"] == "hit"
    # truncated file
    raw = cache_path(cfg, tmp_path).read_bytes()
    cache_path(cfg, tmp_path).write_bytes(raw[: len(raw) // 2])
    with pytest.warns(UserWarning, match="rebuilding"):
        assert load_springs(cfg, tmp_path)["cache"] == "invalid"
    # a readable file whose key does not match its config (e.g. renamed by hand)
    other = generate_springs(SpringsConfig(n_systems=3, seed=2, **SMALL))
    torch.save(other, cache_path(cfg, tmp_path))
    with pytest.warns(UserWarning, match="rebuilding"):
        fixed = load_springs(cfg, tmp_path)
    assert fixed["cache"] == "invalid" and torch.equal(fixed["chunks"], first["chunks"])
    # a different config is a different file (miss)
    assert load_springs(SpringsConfig(n_systems=4, seed=1, **SMALL), tmp_path)["cache"] == "miss"


def test_bad_inputs():
    z0, m, k = (
        torch.zeros(2, 24, dtype=torch.float64),
        torch.ones(2, 6, dtype=torch.float64),
        torch.ones(2, 6, dtype=torch.float64),
    )
    ts = 0.01 * torch.arange(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="masses"):
        integrate_springs(z0, -m, k, ts)
    with pytest.raises(ValueError, match="k:"):
        integrate_springs(z0, m, k[:, :5], ts)
    with pytest.raises(ValueError, match="z0"):
        integrate_springs(z0[:, :23], m, k, ts)
    with pytest.raises(ValueError, match="z0"):
        integrate_springs(z0 * float("nan"), m, k, ts)
    with pytest.raises(ValueError, match="method"):
        integrate_springs(z0, m, k, ts, method="rk45")
    with pytest.raises(ValueError, match="mass_range"):
        SpringsConfig(mass_range=(0.0, 3.1))
    with pytest.raises(ValueError, match="n_systems"):
        SpringsConfig(n_systems=0)
    with pytest.raises(ValueError, match="chunk_len"):
        SpringsConfig(n_steps=4, chunk_len=5)
    with pytest.raises(ValueError, match="split"):
        SpringsDataset("validation", size=2, cache=False)


def test_normal_modes_use_the_brute_force_potential():
    """The stiffness behind the exact solution / RK4 step size is the Hessian of
    V = Σ_{i<j} k_i k_j ‖q_i − q_j‖² computed pair by pair (per spatial axis), and ω_max follows."""
    from lieconv.datasets.springs import _stiffness, max_frequency

    g = torch.Generator().manual_seed(5)
    m = 0.1 + 3 * torch.rand(6, dtype=torch.float64, generator=g)
    k = 5 * torch.rand(6, dtype=torch.float64, generator=g)

    def v_axis(x):  # one spatial axis, x (6,)
        return sum(k[i] * k[j] * (x[i] - x[j]) ** 2 for i in range(6) for j in range(i + 1, 6))

    hess = torch.autograd.functional.hessian(v_axis, torch.zeros(6, dtype=torch.float64))
    s = m.rsqrt()
    torch.testing.assert_close(_stiffness(m[None], k[None])[0], s[:, None] * hess * s[None], rtol=1e-12, atol=1e-12)
    w2 = torch.linalg.eigvalsh(s[:, None] * hess * s[None]).max()
    torch.testing.assert_close(max_frequency(m[None], k[None])[0], w2.sqrt(), rtol=1e-12, atol=1e-12)
