"""fit / evaluate on the toy task: run folder, determinism, schedule, NaN guard, bad inputs, dtype."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
import torch

from lieconv.training import NonFiniteLossError, evaluate, fit, load_model
from lieconv.training.data import EpochBatchSampler


def _rows(out) -> list[dict[str, str]]:
    with open(Path(out) / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _metrics(summary):
    return {k: summary[k] for k in ("best_valid", "test")} | {
        "last": {k: v for k, v in summary["last_epoch"].items() if k != "time_s"}
    }


def test_run_folder_and_learning(tiny):
    s = fit("toy", overrides=dict(tiny, figures=True, epochs=4), print_lines=False)
    out = Path(tiny["out"])
    for name in (
        "config.json",
        "metrics.csv",
        "summary.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "figures/toy_fit.png",
    ):
        assert (out / name).is_file(), name
    stored = json.loads((out / "config.json").read_text())
    assert stored["task"] == "toy" and stored["config"]["epochs"] == 4
    rows = _rows(out)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[-1]["valid/loss"]) < float(rows[0]["train/loss"])
    assert s["report"]["test_r2"] > 0.2  # it learns (0 = predicting the mean)
    assert s["status"] == "completed" and s["epochs_completed"] == 4 and s["global_step"] == 4 * 8
    assert s["best_score"] == pytest.approx(min(float(r["valid/loss"]) for r in rows))
    assert s["best_valid"]["loss"] == pytest.approx(s["best_score"], rel=1e-6)
    assert set(s["test"]) == {"loss", "mae"} and "test_r2" in s["report"]
    # evaluate() and load_model() read the best checkpoint back
    assert evaluate(out / "checkpoints" / "best.ckpt", "toy", device="cpu") == pytest.approx(s["test"], rel=1e-6)
    model, task = load_model(out / "checkpoints" / "best.ckpt")
    assert task.name == "toy" and not model.training


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path, tiny):
    a = fit("toy", overrides=dict(tiny, out=str(tmp_path / "a")), print_lines=False)
    b = fit("toy", overrides=dict(tiny, out=str(tmp_path / "b")), print_lines=False)
    c = fit("toy", overrides=dict(tiny, out=str(tmp_path / "c"), seed=1), print_lines=False)
    assert _metrics(a) == _metrics(b)
    assert _metrics(a) != _metrics(c)


def test_rerunning_a_finished_run_does_not_retrain(tiny):
    a = fit("toy", overrides=tiny, print_lines=False)
    mtime = (Path(tiny["out"]) / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    b = fit("toy", overrides=tiny, print_lines=False)
    assert _metrics(a) == _metrics(b)
    assert (Path(tiny["out"]) / "checkpoints" / "last.ckpt").stat().st_mtime_ns == mtime
    assert len(_rows(tiny["out"])) == tiny["epochs"]


def test_warmup_and_cosine_schedule(tiny):
    fit("toy", overrides=dict(tiny, epochs=4, warmup_epochs=2, lr=0.01), print_lines=False)
    lrs = [float(r["lr"]) for r in _rows(tiny["out"])]  # lr after the last step of each epoch
    # step s (0-based) uses 0.01 * min(1, (s+1)/16) * 0.5 * (1 + cos(pi * s / 32)); 8 steps per epoch
    import math

    expect = [0.01 * min(1, (s + 1) / 16) * 0.5 * (1 + math.cos(math.pi * s / 32)) for s in (8, 16, 24, 32)]
    assert lrs == pytest.approx(expect, rel=1e-9)
    assert lrs[0] < lrs[1] and lrs[-1] == 0.0


def test_early_stopping(tiny):
    s = fit("toy", overrides=dict(tiny, epochs=10, lr=0.0, early_stopping_patience=2), print_lines=False)
    assert s["status"] == "early_stopped" and s["epochs_completed"] == 3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny):
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 11"):
        fit("toy", overrides=dict(tiny, nan_at_step=11, checkpoint_every_n_steps=5), print_lines=False)
    ckpt = torch.load(Path(tiny["out"]) / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 10
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_float64(tiny):
    s = fit("toy", overrides=dict(tiny, dtype="float64", epochs=1), print_lines=False)
    ckpt = torch.load(Path(tiny["out"]) / "checkpoints" / "last.ckpt", weights_only=False)
    assert all(v.dtype == torch.float64 for v in ckpt["state_dict"].values())
    assert s["test"]["loss"] > 0


def _finished_run(tiny) -> Path:
    fit("toy", overrides=dict(tiny, epochs=1), print_lines=False)
    return Path(tiny["out"])


def test_bad_inputs_are_caught_before_training(tmp_path, tiny):
    out = _finished_run(tiny)
    best = out / "checkpoints" / "best.ckpt"
    # missing and corrupt checkpoints
    with pytest.raises(ValueError, match="does not exist"):
        evaluate(tmp_path / "nope.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(best.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        evaluate(corrupt)
    not_ours = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, not_ours)
    with pytest.raises(ValueError, match="not a lieconv training checkpoint"):
        evaluate(not_ours)
    # a checkpoint of another task
    with pytest.raises(ValueError, match="written by task 'toy', not 'springs'"):
        evaluate(best, "springs")
    # a corrupt last.ckpt in the run folder is named when resuming
    (out / "checkpoints" / "last.ckpt").write_bytes(b"garbage")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="last.ckpt.*corrupt"):
        fit("toy", overrides=dict(tiny, epochs=1), print_lines=False)
    # a run folder of another task, and one with another config
    (out / "checkpoints" / "last.ckpt").write_bytes(best.read_bytes())
    with pytest.raises(ValueError, match=r"another config \(lr: 0.01 -> 0.1"):
        fit("toy", overrides=dict(tiny, epochs=1, lr=0.1), print_lines=False)
    (out / "config.json").write_text(json.dumps({"task": "springs", "config": {}}))
    with pytest.raises(ValueError, match="holds a run of task 'springs'"):
        fit("toy", overrides=dict(tiny, epochs=1), print_lines=False)
    # unwritable output folder (a file where a folder should be; works as root too)
    with pytest.raises(ValueError, match="cannot write to output folder"):
        fit("toy", overrides=dict(tiny, out=str(out / "config.json" / "sub")), print_lines=False)
    with pytest.raises(ValueError, match="cuda"):
        if torch.cuda.is_available():
            raise ValueError("cuda (skipped: a GPU is present)")
        fit("toy", overrides=dict(tiny, device="cuda", out=str(tmp_path / "g")), print_lines=False)
    assert not (tmp_path / "g").exists()
    assert time.perf_counter() - t0 < 30


def test_sampler_splits_global_batches_over_processes():
    one = list(EpochBatchSampler(10, 4, shuffle=True, seed=3))
    parts = [list(EpochBatchSampler(10, 4, shuffle=True, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(one) == 2 and all(len(b) == 4 for b in one)  # incomplete last batch dropped
    assert [a + b for a, b in zip(*parts)] == one
    s = EpochBatchSampler(10, 4, shuffle=True, seed=3)
    s.set_epoch(1)
    assert list(s) != one
    ev = [list(EpochBatchSampler(5, 4, shuffle=False, rank=r, world_size=2)) for r in range(2)]
    assert sorted(i for b in ev[0] + ev[1] for i in b) == list(range(5))
    with pytest.raises(ValueError, match="divisible"):
        EpochBatchSampler(10, 5, shuffle=True, world_size=2)
