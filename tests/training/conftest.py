"""Fixtures of the trainer tests: a tiny toy-task config and a helper to run the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lieconv.tasks  # noqa: F401 - registers the built-in tasks (toy) that these tests train by name

REPO = Path(__file__).resolve().parents[2]

#: Options of a tiny toy run (8 steps per epoch, ~0.1 s per epoch on one core).
TINY = {
    "epochs": 3,
    "n_train": 128,
    "n_valid": 32,
    "n_test": 32,
    "batch_size": 16,
    "hidden": 16,
    "figures": False,
    "device": "cpu",
}


def cli_args(opts: dict) -> list[str]:
    """``{"epochs": 3, "figures": False}`` -> ``["--epochs", "3", "--no-figures"]``."""
    out: list[str] = []
    for k, v in opts.items():
        if isinstance(v, bool):
            out.append(f"--{k}" if v else f"--no-{k}")
        else:
            out += [f"--{k}", str(v)]
    return out


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(args: list[str], *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m lieconv ARGS`` in a fresh process (1 thread), output captured."""
    proc = subprocess.run(
        [sys.executable, "-m", "lieconv", *args], capture_output=True, text=True, env=subprocess_env(), timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"lieconv {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny(tmp_path):
    """Overrides for a tiny toy run writing into a fresh folder."""
    return dict(TINY, out=str(tmp_path / "run"))
