"""The rotmnist task: config, bad input, a tiny training run, the equivariance command.

No real data: a tiny "official" folder of random-digit .amat files (60 train_valid rows, 30 test
rows) stands in for RotMNIST, and the unrotated MNIST loader is replaced by random digits.
"""

from __future__ import annotations

import argparse
import zipfile

import numpy as np
import pytest
import torch

from lieconv.datasets.rotmnist import TEST_AMAT, TRAIN_VALID_AMAT
from lieconv.tasks import rotmnist as rm
from lieconv.training.config import resolve_config

#: A model and run small enough for a second or two on one core.
TINY = {"k": 8, "num_layers": 1, "nbhd": 4, "epochs": 1, "batch_size": 10, "n_test": 20, "device": "cpu"}


def _write_amat(path, n, seed):
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.random((n, 784)).round(3), rng.integers(0, 10, (n, 1))], 1)
    np.savetxt(path, rows, fmt="%g", delimiter=" ")


@pytest.fixture
def official(tmp_path):
    folder = tmp_path / "official"
    folder.mkdir()
    _write_amat(folder / TRAIN_VALID_AMAT, 60, 0)
    _write_amat(folder / TEST_AMAT, 30, 1)
    return folder


@pytest.fixture
def fake_mnist(monkeypatch):
    def fake(config, n=0, *, exclude_train=True):
        g = torch.Generator().manual_seed(5)
        n = n or 15
        return torch.rand(n, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)

    monkeypatch.setattr(rm, "load_unrotated_test", fake)


def _config(official, tmp_path, **kw):
    return resolve_config(
        "rotmnist", "quick", overrides={**TINY, "official": str(official), "data_root": str(tmp_path / "cache"), **kw}
    )


def test_presets_and_liftsamples():
    paper = resolve_config("rotmnist", "paper")
    assert (paper.lr, paper.batch_size, paper.epochs, paper.cosine) == (3e-3, 25, 500, True)
    assert (paper.k, paper.num_layers, paper.total_ds, paper.nbhd, paper.group) == (128, 6, 0.1, 25, "SE2")
    assert rm.resolve_liftsamples("SE2", 0) == 2 and rm.resolve_liftsamples("SO2", 0) == 1
    assert rm.resolve_liftsamples("SE2", 4) == 4
    with pytest.raises(ValueError, match="liftsamples"):
        rm.resolve_liftsamples("T2", 2)
    with pytest.raises(ValueError, match="group"):
        resolve_config("rotmnist", "quick", overrides={"group": "SO3"})
    assert rm.RotMNISTTask.monitor == "valid/err"


def test_bad_official_files(tmp_path, official):
    with pytest.raises(ValueError, match="official: .*nowhere.zip.* does not exist"):
        rm.RotMNISTTask(_config(tmp_path / "nowhere.zip", tmp_path))
    bad_zip = tmp_path / "mnist_rotation_new.zip"
    with zipfile.ZipFile(bad_zip, "w") as zf:
        zf.writestr("x.txt", "not the data")
    with pytest.raises(ValueError, match="mnist_rotation_new.zip.*corrupt.*md5"):
        rm.RotMNISTTask(_config(bad_zip, tmp_path))
    (official / TEST_AMAT).write_text("1 2 3\n")
    with pytest.raises(ValueError, match=f"{TEST_AMAT}.*corrupt.*785"):
        rm.RotMNISTTask(_config(official, tmp_path))
    (official / TEST_AMAT).unlink()
    with pytest.raises(ValueError, match=f"{TEST_AMAT}.*does not exist"):
        rm.RotMNISTTask(_config(official / TRAIN_VALID_AMAT, tmp_path))


def test_bad_images(tmp_path, official):
    task = rm.RotMNISTTask(_config(official, tmp_path))
    model = task.build_model()
    labels = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"images: expected shape \(B, 1, 28, 28\)"):
        task.loss(model, (torch.rand(2, 1, 27, 28), labels))
    with pytest.raises(ValueError, match="images: expected a floating tensor"):
        task.loss(model, (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), labels))


def test_datasets_subsets_and_augmentation(tmp_path, official):
    task = rm.RotMNISTTask(_config(official, tmp_path, n_train=30, augment=True))
    ds = task.datasets()
    assert [len(ds[s]) for s in ("train", "valid", "test")] == [30, 10, 20]
    x, y = ds["train"][0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    model = task.build_model()
    batch = torch.stack([ds["train"][i][0] for i in range(4)])
    model.eval()
    assert torch.equal(task.prepare(batch, model), (batch - rm.MEAN) / rm.STD)  # no augmentation in eval
    model.train()
    assert not torch.allclose(task.prepare(batch, model), (batch - rm.MEAN) / rm.STD)


def test_fit_tiny_run(tmp_path, official):
    from lieconv.training.trainer import fit

    cfg = _config(official, tmp_path, out=str(tmp_path / "run"), group="SE2")
    summary = fit("rotmnist", cfg, progress_bar=False, print_lines=False)
    assert set(summary["test"]) == {"loss", "acc", "err"}
    assert 0 <= summary["test"]["err"] <= 100
    assert summary["report"]["liftsamples"] == 2
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()


def test_evaluation_is_reproducible_on_any_batch_size_and_averages_draws(tmp_path, official):
    from lieconv.training.trainer import evaluate, fit

    cfg = _config(official, tmp_path, out=str(tmp_path / "run"), group="SE2", n_test=30)
    fit("rotmnist", cfg, progress_bar=False, print_lines=False)
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ref = evaluate(ckpt, "rotmnist", device="cpu", batch_size=10)
    for bs in (10, 7, 1, 30):  # same draws per digit; only float32 summation order differs
        got = evaluate(ckpt, "rotmnist", device="cpu", batch_size=bs)
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-5)
    avg = evaluate(ckpt, "rotmnist", device="cpu", batch_size=7, eval_samples=3)
    assert avg == pytest.approx(
        evaluate(ckpt, "rotmnist", device="cpu", batch_size=30, eval_samples=3), rel=1e-5, abs=1e-5
    )
    assert abs(avg["loss"] - ref["loss"]) > 1e-4  # three other draws averaged
    with pytest.raises(ValueError, match="eval_samples"):
        evaluate(ckpt, "rotmnist", device="cpu", eval_samples=0)


def _equivariance_args(**kw):
    parser = argparse.ArgumentParser()
    rm.add_equivariance_arguments(parser)
    ns = parser.parse_args([])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def test_equivariance_trains_and_prints_table(tmp_path, official, fake_mnist, capsys):
    sets = [f"{k}={v}" for k, v in TINY.items()] + [f"official={official}", f"data_root={tmp_path / 'cache'}"]
    args = _equivariance_args(train=True, out=str(tmp_path / "grid"), groups=["T2", "SO2"], overrides=sets, n_mnist=15)
    assert rm.run_equivariance(args) == 0
    out = capsys.readouterr().out
    assert "rotated test set" in out and "unrotated MNIST" in out
    lines = out.splitlines()
    head = next(line for line in lines if line.startswith("Aug"))
    assert "T(2)" in head and "SO(2)" in head
    assert any(line.startswith("SO(2)") for line in lines) and any(line.startswith("None") for line in lines)
    import json

    rows = json.loads((tmp_path / "grid" / "table.json").read_text())
    assert sorted((r["group"], r["augment"]) for r in rows) == [
        ("SO2", False),
        ("SO2", True),
        ("T2", False),
        ("T2", True),
    ]
    assert all(r["n_rotated"] == 20 and r["n_mnist"] == 15 for r in rows)
    # evaluating the same folders again with --runs gives the same numbers
    again = rm.evaluate_runs([r["run"] for r in rows], n_mnist=15)
    assert [r["rotated_err"] for r in again] == [r["rotated_err"] for r in rows]


def test_equivariance_bad_input(tmp_path):
    with pytest.raises(ValueError, match="nothing to evaluate"):
        rm.run_equivariance(_equivariance_args(out=str(tmp_path)))
    with pytest.raises(ValueError, match="--runs: .*missing"):
        rm.run_equivariance(_equivariance_args(runs=[str(tmp_path / "missing")], out=str(tmp_path)))
    with pytest.raises(ValueError, match="--set: group"):
        rm.train_grid(tmp_path, ["T2"], overrides={"group": "SO2"})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        rm._parse_overrides(["epochs"])


def test_format_table_layout():
    rows = [
        {"group": g, "augment": a, "rotated_err": e, "mnist_err": e + 1, "n_rotated": 10, "n_mnist": 5}
        for g, a, e in (("SE2", True, 1.0), ("T2", False, 3.0), ("T2", False, 5.0))
    ]
    text = rm.format_equivariance_table(rows)
    assert "T(2)" in text and "SE(2)" in text
    none_row = next(line for line in text.splitlines() if line.startswith("None")).split()
    assert none_row[1:] == ["4.00", "-"]  # T2 averaged over two runs; SE2 missing


def test_commands_registered():
    assert set(rm.RotMNISTTask.commands) == {"equivariance", "figures"}
