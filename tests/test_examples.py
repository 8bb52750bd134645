"""Every script in examples/ runs at its tiny size (``--tiny``) and shows what it says it shows."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_every_example_is_tested_and_listed_in_the_readme():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    tested = {"point_clouds", "custom_group", "molecules_xyz", "ddp_training", "springs_own_data"}
    assert scripts == tested
    readme = (EXAMPLES / "README.md").read_text()
    assert all(f"{s}.py" in readme for s in scripts)


def test_point_clouds(capsys):
    results = _load("point_clouds").main(["--tiny"])
    assert set(results) == {"SE3", "T3"}
    assert all(0 <= acc[k] <= 1 for acc in results.values() for k in ("test", "rotated test"))
    assert results["SE3"]["invariance_error"] < 1e-9
    assert "rotated test acc" in capsys.readouterr().out


def test_custom_group():
    r = _load("custom_group").main(["--tiny"])
    assert r["exp_log"] < 1e-12 and r["closed_form"] < 1e-12 and r["lift"] < 1e-12
    assert r["boost"] < 1e-9  # invariant to boosts ...
    assert r["time_shift"] > 1e-3  # ... and not to a transformation outside the group


def test_molecules_xyz(tmp_path):
    mod = _load("molecules_xyz")
    r = mod.main(["--tiny"])
    assert r["invariance_error"] < 1e-9 and math.isfinite(r["final_l1"])
    symbols, pos, comment = mod.read_xyz(EXAMPLES / "molecules" / "water.xyz")
    assert symbols == ["O", "H", "H"] and pos.shape == (3, 3) and "dipole_D=1.85" in comment
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\ncomment\nO 0 0 0\n")
    with pytest.raises(ValueError, match="expected 2 atoms"):
        mod.read_xyz(bad)
    (tmp_path / "gold.xyz").write_text("1\n\nAu 0 0 0\n")
    with pytest.raises(ValueError, match=r"\['Au'\]"):
        mod.read_xyz(tmp_path / "gold.xyz")


def test_springs_own_data(tmp_path, capsys):
    from lieconv import cli
    from lieconv.datasets.springs import npz_splits

    out = tmp_path / "own"
    r = _load("springs_own_data").main(["--tiny", "--out", str(out)])
    assert r["summary"]["status"] == "completed" and math.isfinite(r["test_mse"]) and r["test_mse"] > 0
    assert sorted(npz_splits(out / "data.npz")) == ["test", "train", "valid"]
    printed = capsys.readouterr().out
    assert f"--data {out}/data.npz" in printed and "test MSE" in printed
    # the printed eval command works on the run folder and the file
    eval_line = next(line for line in printed.splitlines() if "lieconv eval springs" in line)
    assert cli.main(eval_line.split()[1:] + ["--device", "cpu"]) == 0
    assert "mse_all" in capsys.readouterr().out


def test_springs_own_data_simulator_is_hamiltonian():
    """The example's forces are -dV/dq of its potential, and its leapfrog keeps the energy."""
    mod = _load("springs_own_data")
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    k = 0.5 + torch.rand(2, 3, generator=g, dtype=torch.float64)
    i, j = torch.triu_indices(3, 3, 1)

    def potential(q):
        dist = (q[:, i] - q[:, j]).norm(dim=-1)
        return (k[:, i] * k[:, j] * (dist - mod.REST_LENGTH) ** 2 / 2).sum()

    (grad,) = torch.autograd.grad(potential(q), q)
    assert torch.allclose(mod.forces(q.detach(), k), -grad, atol=1e-12)
    z0, ts, z_target, sp = mod.simulate(2, 3, 41, 0.05, seed=0)
    assert z0.shape == (2, 12) and ts.shape == (41,) and z_target.shape == (2, 40, 12) and sp.shape == (2, 3, 2)
    m, k = sp[..., 0], sp[..., 1]

    def energy(z):
        q, p = z[:, :6].reshape(2, 3, 2), z[:, 6:].reshape(2, 3, 2)
        dist = (q[:, i] - q[:, j]).norm(dim=-1)
        return (p.pow(2).sum(-1) / (2 * m)).sum(-1) + (k[:, i] * k[:, j] * (dist - mod.REST_LENGTH) ** 2 / 2).sum(-1)

    assert ((energy(z_target[:, -1]) - energy(z0)).abs() / energy(z0)).max() < 1e-4


def test_ddp_training_with_torchrun(tmp_path):
    from tests.training.conftest import subprocess_env

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(EXAMPLES / "ddp_training.py"),
        "--tiny",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    transient = ("Address already in use", "Connection refused", "Connection reset", "timed out", "EADDRINUSE")
    if proc.returncode != 0 and any(t in proc.stderr for t in transient):  # a port clash on a shared machine
        proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["task"] == "spread"
    assert math.isfinite(summary["test"]["mae"])
    assert proc.stdout.count("2 process(es)") == 1  # rank 0 reports, rank 1 does not
