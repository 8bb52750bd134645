"""Your own trajectories: the .npz format, its bad inputs, per-item time grids, train/eval from the CLI and Python."""

import numpy as np
import pytest
import torch

from lieconv.datasets.springs import (
    SpringsConfig,
    SpringsDataset,
    SpringsSegments,
    load_springs_npz,
    npz_splits,
    sample_systems,
    save_springs_npz,
    spring_exact_solution,
)

F64 = dict(dtype=torch.float64)
TINY = {
    "batch_size": 8,
    "epochs": 1,
    "k": 8,
    "num_layers": 1,
    "hidden": 16,
    "rollout_systems": 3,
    "early_stopping_patience": 0,
    "resume": False,
}


def _own_split(S, L=5, seed=0):
    """S systems, each with its own time grid: step dt_i in {0.01, 0.02, 0.03} and a start time t0_i."""
    z0, m, k = sample_systems(SpringsConfig(n_systems=S), torch.Generator().manual_seed(seed))
    dt = 0.01 * (1 + torch.arange(S, **F64) % 3)
    t0 = 0.5 * torch.arange(S, **F64)
    ts = t0[:, None] + dt[:, None] * torch.arange(L, **F64)  # (S, L)
    states = torch.stack(
        [spring_exact_solution(z0[i : i + 1], m[i : i + 1], k[i : i + 1], ts[i] - ts[i, 0])[0] for i in range(S)]
    )  # (S, L, D)
    return states[:, 0], ts, states[:, 1:], torch.stack([m, k], -1)


@pytest.fixture
def own_file(tmp_path):
    path = tmp_path / "mine.npz"
    save_springs_npz(
        path, {"train": _own_split(16, seed=0), "valid": _own_split(8, seed=1), "test": _own_split(8, L=12, seed=2)}
    )
    return path


def test_round_trip_of_generated_data_and_chunking(tmp_path):
    ds = SpringsDataset("test", size=4, root=tmp_path / "cache", n_steps=30, dtype=torch.float64)
    path = save_springs_npz(tmp_path / "gen.npz", {"test": ds})
    assert npz_splits(path) == ["test"]
    back = load_springs_npz(path, "test", dtype=torch.float64)
    assert isinstance(back, SpringsSegments) and len(back) == 4
    (z0, ts, sp), zt = back[2]
    (z0r, tsr, spr), ztr = ds[2]
    for a, b in ((z0, z0r), (ts, tsr), (sp, spr), (zt, ztr)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # whole trajectories -> windows of 3 states sharing their end points
    whole = (ds.trajectories[:, 0], ds.times, ds.trajectories[:, 1:], ds.sys_params)
    save_springs_npz(tmp_path / "whole.npz", {"train": whole})
    chunks = load_springs_npz(tmp_path / "whole.npz", "train", dtype=torch.float64, chunk_len=3)
    assert len(chunks) == 4 * 14  # (30 - 1) // 2 windows each
    (c0, cts, csp), czt = chunks[14 + 1]  # system 1, window 1
    torch.testing.assert_close(c0, ds.trajectories[1, 2])
    torch.testing.assert_close(czt, ds.trajectories[1, 3:5])
    torch.testing.assert_close(cts, ds.times[2:5])
    torch.testing.assert_close(csp, ds.sys_params[1])


def _write(path, **arrays):
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda a: a.pop("train_ts"), r"lacks the array\(s\) \['train_ts'\]"),
        (lambda a: a.update(train_z0=a["train_z0"][:, :20]), "train_z0: expected shape"),
        (
            lambda a: a.update(train_z_target=a["train_z_target"][:, :3]),
            r"train_z_target: expected shape \(S, L-1, D\)",
        ),
        (lambda a: a.update(train_sys_params=a["train_sys_params"][..., :1]), "train_sys_params: expected shape"),
        (lambda a: a["train_z0"].__setitem__((2, 5), np.nan), "train_z0: expected finite values"),
        (lambda a: a["train_z_target"].__setitem__((1, 0, 0), np.inf), "train_z_target: expected finite values"),
        (lambda a: a["train_sys_params"].__setitem__((3, 1, 0), 0.0), r"train_sys_params: expected positive masses"),
        (lambda a: a["train_ts"].__setitem__((0, 2), 0.0), "train_ts: expected strictly increasing"),
        (lambda a: a.update(train_ts=a["train_ts"][:5]), r"train_ts: expected shape \(S, L\) or \(L,\)"),
        (lambda a: a.update(train_z0=np.array([["a"] * 24] * 16)), "train_z0: expected a numeric array"),
    ],
)
def test_bad_files_name_the_array(tmp_path, own_file, change, message):
    with np.load(own_file) as f:
        arrays = {k: f[k].copy() for k in f.files}
    change(arrays)
    bad = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_springs_npz(bad, "train")


def test_unreadable_or_absent_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        load_springs_npz(tmp_path / "junk.npz", "train")
    with pytest.raises(ValueError, match="no such file"):
        load_springs_npz(tmp_path / "absent.npz", "train")
    save_springs_npz(tmp_path / "s.npz", {"train": _own_split(2)})
    with pytest.raises(ValueError, match="chunk_len"):
        load_springs_npz(tmp_path / "s.npz", "train", chunk_len=9)


def test_train_and_eval_own_data_from_the_cli_and_python(tmp_path, own_file, capsys):
    """Per-item time grids reach the model: a batch holds rows with different dt and start times."""
    import json

    from lieconv import cli
    from lieconv.tasks.springs import fit_springs
    from lieconv.training.trainer import evaluate

    out = tmp_path / "run"
    args = [
        "train",
        "springs",
        "--preset",
        "quick",
        "--model",
        "HFC",
        "--data",
        str(own_file),
        "--out",
        str(out),
        "--no-resume",
    ] + [f"--{k}={v}" for k, v in TINY.items() if k != "resume"]
    assert cli.main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["test"]["loss"] > 0 and s["report"]["rollout_state"] > 0
    saved = torch.load(out / "rollout.pt", weights_only=True)
    assert saved["errors"]["state"].shape == (3, 12)  # the test items' own length
    # the test MSE really uses each item's grid: equal to a per-item rollout of the trained model
    from lieconv.training.trainer import load_model

    model, task = load_model(out / "checkpoints" / "best.ckpt")
    test = task.datasets()["test"]
    with torch.no_grad():
        per_item = torch.cat(
            [model(test.z0[i : i + 1], test.ts[i : i + 1], test.sys_params[i : i + 1])[:, 1:] for i in range(len(test))]
        )
    mse = (per_item - test.z_target).pow(2).mean().item()
    assert s["test"]["loss"] == pytest.approx(mse, rel=1e-5)
    # lieconv eval springs --data: another file's test split
    other = save_springs_npz(tmp_path / "other.npz", {"test": _own_split(6, L=5, seed=9)})
    capsys.readouterr()
    assert (
        cli.main(
            [
                "eval",
                "springs",
                "--checkpoint",
                str(out / "checkpoints" / "best.ckpt"),
                "--data",
                str(other),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "mse_all" in capsys.readouterr().out
    m = evaluate(out / "checkpoints" / "best.ckpt", "springs", device="cpu", overrides={"data": str(other)})
    assert m["mse_all"] == pytest.approx(m["loss"] * 4 / 5)
    with pytest.raises(ValueError, match="nope"):
        evaluate(out / "checkpoints" / "best.ckpt", "springs", overrides={"nope": 1})
    # Python: tensors in, a self-contained run folder out
    py = fit_springs(
        {"train": _own_split(16), "valid": _own_split(8, seed=1)},
        out=str(tmp_path / "py"),
        model="HFC",
        print_lines=False,
        **TINY,
    )
    assert py["status"] == "completed" and (tmp_path / "py" / "data.npz").is_file() and py["test"] == {}
