"""The springs task: config and presets, models, loss and batch checks, a tiny end-to-end run, sweep, demo."""

import json

import pytest
import torch

from lieconv.models.baselines import FC, HFC, HOGN, OGN, ModelDynamics
from lieconv.models.hamiltonian import HLieResNet, LieResNetDynamics
from lieconv.tasks.springs import (
    MODELS,
    SpringsTask,
    build_dynamics_model,
    check_batch,
    compare_runs,
    format_sweep_table,
    model_label,
    resolve_lr,
    run_demo,
    run_sweep,
    sweep_epochs,
)
from lieconv.training.config import resolve_config

#: a run that takes seconds: tiny data, tiny network, one epoch, few short rollouts
TINY = {
    "n_train": 16,
    "n_valid": 8,
    "n_test": 8,
    "batch_size": 8,
    "epochs": 1,
    "k": 8,
    "num_layers": 1,
    "hidden": 16,
    "rollout_systems": 3,
    "rollout_steps": 12,
    "early_stopping_patience": 0,
    "gt_method": "exact",
}


def test_paper_preset_is_c4():
    c = resolve_config(SpringsTask, "paper")
    assert (c.batch_size, c.epochs, c.n_train, c.n_valid, c.n_test) == (200, 100, 3000, 2000, 2000)
    assert (c.model, c.group, c.integrator, c.k, c.num_layers, c.hidden) == ("HLieResNet", "auto", "rk4", 384, 4, 256)
    # C.4's early stopping: train all epochs, test the checkpoint of best validation MSE
    assert c.cosine and c.early_stopping_patience == 0 and c.rollout_steps >= 100 and c.cap_valid
    assert SpringsTask.drop_last is False
    assert resolve_lr(c) == 1e-3
    assert resolve_lr(resolve_config(SpringsTask, "paper", overrides={"model": "HOGN"})) == 1e-2
    assert resolve_lr(resolve_config(SpringsTask, "paper", overrides={"model": "HFC", "lr": 3e-4})) == 3e-4
    assert model_label(c) == "HLieResNet-SO2*"
    q = resolve_config(SpringsTask, "quick")
    assert q.k < c.k and q.n_train < c.n_train and q.rollout_steps >= 100


@pytest.mark.parametrize(
    "name,group,cls",
    [
        ("HLieResNet", "auto", HLieResNet),
        ("HLieResNet", "Trivial2", HLieResNet),
        ("LieConvDirect", "auto", LieResNetDynamics),
        ("FC", "auto", FC),
        ("HFC", "auto", HFC),
        ("OGN", "auto", OGN),
        ("HOGN", "auto", HOGN),
    ],
)
def test_models(name, group, cls):
    c = resolve_config(SpringsTask, "paper", overrides={**TINY, "model": name, "group": group})
    model = build_dynamics_model(c)
    assert isinstance(model, cls) and name in MODELS
    if cls is HLieResNet:
        assert model.group_name == ("SO2*" if group == "auto" else group)
    if cls is LieResNetDynamics:
        assert model.group_name == "T2"


def test_bad_config():
    with pytest.raises(ValueError, match="model"):
        resolve_config(SpringsTask, "paper", overrides={"model": "GNN"})
    with pytest.raises(ValueError, match="group"):
        resolve_config(SpringsTask, "paper", overrides={"group": "SE2"})
    with pytest.raises(ValueError, match="group"):
        SpringsTask(resolve_config(SpringsTask, "paper", overrides={"model": "HFC", "group": "T2"}))
    with pytest.raises(ValueError, match="group"):
        SpringsTask(resolve_config(SpringsTask, "paper", overrides={"model": "LieConvDirect", "group": "SO2*"}))
    with pytest.raises(ValueError, match="integrator"):
        SpringsTask(resolve_config(SpringsTask, "paper", overrides={"model": "FC", "integrator": "leapfrog"}))
    with pytest.raises(ValueError, match="n_train"):
        SpringsTask(resolve_config(SpringsTask, "paper", overrides={"n_train": 0}))


def _batch(B=4):
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(B, 24, generator=g)
    ts = (0.01 * torch.arange(5)).expand(B, 5)
    sp = torch.stack([0.1 + 3 * torch.rand(B, 6, generator=g), 5 * torch.rand(B, 6, generator=g)], -1)
    return z0, ts, sp, torch.randn(B, 4, 24, generator=g)


def test_check_batch_names_the_argument():
    z0, ts, sp, zt = _batch()
    check_batch(z0, ts, sp, zt)
    cases = {
        "z0": (z0[:, :20], ts, sp, zt),
        "sys_params": (z0, ts, sp[:3], zt),
        "ts": (z0, ts[:2], sp, zt),
        "z_target": (z0, ts, sp, zt[:, :3]),
    }
    for name, args in cases.items():
        with pytest.raises(ValueError, match=f"^{name}:"):
            check_batch(*args)
    bad = sp.clone()
    bad[1, 0, 0] = -1.0
    with pytest.raises(ValueError, match="sys_params: expected positive masses"):
        check_batch(z0, ts, bad, zt)
    nan = z0.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="z0: expected finite"):
        check_batch(nan, ts, sp, zt)
    task = SpringsTask(resolve_config(SpringsTask, "paper", overrides=TINY))
    model = task.build_model()
    assert isinstance(model, ModelDynamics) and model.method == "rk4"
    loss, _ = task.loss(model, ((z0, ts, sp), zt))
    assert loss.shape == () and loss.requires_grad
    with pytest.raises(ValueError, match="sys_params"):
        task.loss(model, ((z0, ts, bad), zt))


def test_tiny_run_end_to_end(tmp_path):
    """fit -> test MSE, rollout table numbers, figures; leapfrog and float64 rollouts of a trained SO2* model."""
    from lieconv.training.trainer import fit

    ov = {**TINY, "integrator": "leapfrog", "data_root": str(tmp_path / "data"), "out": str(tmp_path / "run")}
    s = fit("springs", preset="paper", overrides=ov, print_lines=False)
    assert s["status"] == "completed" and s["test"]["loss"] > 0
    r = s["report"]
    assert set(r) >= {"rollout_state", "rollout_energy", "rollout_linear_momentum", "rollout_angular_momentum"}
    assert r["rollout_linear_momentum"] < 1e-12 and r["rollout_angular_momentum"] < 1e-12  # Noether
    for f in ("rollout_errors.png", "trajectory.png"):
        assert (tmp_path / "run" / "figures" / f).stat().st_size > 1000
    saved = torch.load(tmp_path / "run" / "rollout.pt", weights_only=True)
    assert saved["errors"]["state"].shape == (3, 13)  # 12 steps: 13 states from t = 0
    from lieconv.training.trainer import evaluate  # `lieconv eval springs`: ∇H under inference mode

    m = evaluate(s["best_checkpoint"], "springs", device="cpu")
    assert m["loss"] == pytest.approx(s["test"]["loss"], rel=1e-5)


def test_sweep_via_cli_and_demo(tmp_path, capsys):
    from lieconv import cli

    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({**TINY, "data_root": str(tmp_path / "data")}))
    rc = cli.main(
        [
            "sweep",
            "springs",
            "--sizes",
            "8",
            "16",
            "--models",
            "HFC",
            "HLieResNet-T2",
            "--epochs",
            "1",
            "--preset",
            "paper",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "sweep"),
        ]
    )
    assert rc == 0
    data = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert set(data["results"]) == {"HFC", "HLieResNet-T2"}
    assert {r["integrator"] for r in data["runs"]} == {"rk4"} and len(data["runs"]) == 4
    assert all(len(v) == 2 and all(x > 0 for xs in v.values() for x in xs) for v in data["results"].values())
    assert (tmp_path / "sweep" / "data_efficiency.png").stat().st_size > 1000
    assert "N=16" in capsys.readouterr().out
    assert sweep_epochs(100, 300) == 182 and sweep_epochs(100, 30) == 577 and sweep_epochs(100, 1000) == 100
    assert sweep_epochs(10, 100, False) == 10
    assert "HFC" in format_sweep_table({"HFC": {8: [1.0, 3.0]}}) and "2.000e+00 (2)" in format_sweep_table(
        {"HFC": {8: [1.0, 3.0]}}
    )
    # sweeps run in pieces (another seed) merge into one table and figure
    second = tmp_path / "sweep2.json"
    second.write_text(json.dumps({"results": {"HFC": {"8": [0.5]}}, "runs": []}))
    assert (
        cli.main(
            [
                "sweep",
                "springs",
                "--merge",
                str(tmp_path / "sweep" / "sweep.json"),
                str(second),
                "--out",
                str(tmp_path / "merged"),
            ]
        )
        == 0
    )
    merged = json.loads((tmp_path / "merged" / "sweep.json").read_text())
    assert len(merged["results"]["HFC"]["8"]) == 2 and len(merged["runs"]) == 4
    assert (tmp_path / "merged" / "data_efficiency.png").is_file()
    with pytest.raises(ValueError, match="sizes"):
        run_sweep(sizes=[0], models=["HFC"])
    with pytest.raises(ValueError, match="models"):
        run_sweep(sizes=[8], models=["GNN"])

    out = run_demo(str(tmp_path / "demo"), overrides={**TINY, "data_root": str(tmp_path / "data")})
    assert set(out) == {"HLieResNet-SO2*", "HFC"}
    text = capsys.readouterr().out
    assert "test MSE" in text and "figures:" in text
    assert (tmp_path / "demo" / "figures" / "rollout_errors.png").is_file()
    assert (tmp_path / "demo" / "figures" / "trajectories.png").is_file()
    assert (tmp_path / "demo" / "figures" / "momenta.png").stat().st_size > 1000  # Figure 7(b)
    assert "state@10" in text and "rk4" in text
    # `lieconv compare springs RUN...`: the same table and figures for any finished runs
    runs = [str(tmp_path / "demo" / d) for d in ("HLieResNet-SO2star", "HFC")]
    assert cli.main(["compare", "springs", *runs, "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "momenta.png").is_file() and "HLieResNet-SO2*" in capsys.readouterr().out
    with pytest.raises(ValueError, match="summary.json"):
        compare_runs([str(tmp_path)], tmp_path / "x")
