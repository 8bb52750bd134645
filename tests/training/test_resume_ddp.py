"""Process-level behaviour: SIGKILL + rerun resumes exactly; torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lieconv.training import fit

from .conftest import TINY, cli_args, subprocess_env


#: Summary entries compared between runs (all metrics; times excluded).
def _metrics(summary: dict) -> dict:
    last = {k: v for k, v in summary["last_epoch"].items() if k != "time_s"}
    return {"last": last, "best_valid": summary["best_valid"], "test": summary["test"]}


def _assert_close(a: dict, b: dict, rel: float) -> None:
    assert a.keys() == b.keys()
    for part in a:
        assert a[part].keys() == b[part].keys(), part
        for k in a[part]:
            assert a[part][k] == pytest.approx(b[part][k], rel=rel, abs=rel * 1e-3), (part, k)


def _last_ckpt_epoch(path: Path) -> tuple[int, int]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        return int(ckpt["epoch"]), int(ckpt["global_step"])
    except Exception:
        return -1, -1


def test_sigkill_then_same_command_resumes_to_the_same_result(tmp_path):
    """Kill `python -m lieconv train toy` after a checkpoint of epoch >= 1 exists; rerun; compare.

    Step checkpoints every 3 steps (8 steps per epoch) make the kill land mid-epoch most times, so
    the data position inside the epoch is resumed too.  Observed: bit-identical (tolerance 1e-6).
    """
    opts = dict(TINY, epochs=4, checkpoint_every_n_steps=3)
    ref = fit("toy", overrides=dict(opts, out=str(tmp_path / "ref")), print_lines=False)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lieconv", "train", "toy", *cli_args(opts), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--step_delay", "0.04"], env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 90
    try:
        while _last_ckpt_epoch(last)[0] < 1:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint of epoch 1 appeared"
            time.sleep(0.03)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    epoch, step = _last_ckpt_epoch(last)
    assert epoch >= 1 and step < opts["epochs"] * 8, "killed after training had finished"
    assert not (out / "summary.json").exists()

    # the same command (step_delay is a testing aid that does not change results, but the stored
    # config must match, so it is passed again)
    rerun = subprocess.run(
        [*cmd, "--step_delay", "0.04"], env=subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    resumed = json.loads((out / "summary.json").read_text())
    _assert_close(_metrics(resumed), _metrics(ref), rel=1e-6)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + opts["epochs"]  # one row per epoch, none duplicated


def test_torchrun_two_cpu_processes_match_one_process(tmp_path):
    """Global batch 16 = 2 processes x 8; float64, so the only difference is summation order (< 1e-9)."""
    opts = dict(TINY, dtype="float64")
    one = fit("toy", overrides=dict(opts, out=str(tmp_path / "one")), print_lines=False)
    out = tmp_path / "two"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "lieconv",
        "train",
        "toy",
        *cli_args(opts),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    transient = ("Address already in use", "Connection refused", "Connection reset", "timed out", "EADDRINUSE")
    if proc.returncode != 0 and any(t in proc.stderr for t in transient):  # a port clash on a shared machine
        proc = subprocess.run(cmd + ["--no-resume"], env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    two = json.loads((out / "summary.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    _assert_close(_metrics(two), _metrics(one), rel=1e-9)
    assert proc.stdout.count("epoch 1/3") == 1  # rank 0 prints, rank 1 does not
