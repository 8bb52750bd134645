"""The shared benchmark driver's step timer and operator timer (``benchmarks/_compare.py``)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest
import torch


def _compare():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_compare.py"
    spec = importlib.util.spec_from_file_location("_compare_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_steps_reports_the_operators_of_one_more_step_by_where_they_run():
    compare = _compare()
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(16, 8)
    calls = []

    def step():
        calls.append(1)
        with torch.no_grad():
            torch.mm(x, x.t())
        lin(x).square().sum().backward()

    out = compare.time_steps(step, argparse.Namespace(steps=2, ops=50))
    assert len(calls) == compare.WARMUP_STEPS + 3  # the warm-up, 2 timed steps, 1 under the operator timer
    assert out["step_s"] > 0 and out["cpu_s"] >= 0 and out["peak_rss_gb"] > 0
    where = {(o["op"].split()[0], o["where"]) for o in out["ops"]}
    assert ("aten.mm.default", "no_grad") in where
    assert ("aten.addmm.default", "forward") in where
    assert any(w.startswith("backward: AddmmBackward") for _, w in where)
    assert all(o["calls"] >= 1 and o["ms"] >= 0 for o in out["ops"])
    assert out["ops_total_ms"] >= sum(o["ms"] for o in out["ops"]) - 1e-9
    mm = [o for o in out["ops"] if o["op"].startswith("aten.mm.default")]
    assert mm and mm[0]["op"] == "aten.mm.default 16x8 x 8x16"  # products are keyed by their operand shapes
    assert mm[0]["gflop"] == pytest.approx(2 * 16 * 8 * 16 / 1e9)
    assert out["ops_matmul"]["gflop"] >= mm[0]["gflop"] and out["ops_matmul"]["ms"] > 0
    calls.clear()
    assert "ops" not in compare.time_steps(step, argparse.Namespace(steps=1, ops=0, warmup=1))
    assert len(calls) == 2
    with pytest.raises(ValueError, match="--steps"):
        compare.time_steps(step, argparse.Namespace(steps=0, ops=0))
    with pytest.raises(ValueError, match="--warmup"):
        compare.time_steps(step, argparse.Namespace(steps=1, ops=0, warmup=0))


def test_matmul_flop_counts_products_and_ignores_other_operators():
    compare = _compare()
    a, b = torch.zeros(3, 4, 5), torch.zeros(3, 5, 6)
    assert compare._matmul_flop(torch.ops.aten.bmm.default, (a, b)) == 2 * 3 * 4 * 5 * 6
    assert compare._matmul_flop(torch.ops.aten.baddbmm_.default, (torch.zeros(3, 4, 6), a, b)) == 2 * 3 * 4 * 5 * 6
    assert compare._matmul_flop(torch.ops.aten.addmm.default, (torch.zeros(6), a[0], b[0])) == 2 * 4 * 5 * 6
    assert compare._matmul_flop(torch.ops.aten.add.Tensor, (a, a)) is None
