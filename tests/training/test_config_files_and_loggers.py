"""``--config`` in JSON or YAML (a run folder's config re-runs as it is) and ``--logger``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lieconv.training import fit, resolve_config
from lieconv.training import loggers as loggers_mod

from .conftest import run_cli

yaml = pytest.importorskip("yaml")


def _metrics(summary: dict) -> dict:
    return {
        "best_valid": summary["best_valid"],
        "test": summary["test"],
        "last": {k: v for k, v in summary["last_epoch"].items() if k != "time_s"},
    }


def test_yaml_and_json_config_files_give_the_same_config(tmp_path):
    values = {"epochs": 2, "lr": 0.01, "cosine": False, "hidden": 8}
    (tmp_path / "c.json").write_text(json.dumps(values))
    (tmp_path / "c.yaml").write_text("# a hand-written config\nepochs: 2\nlr: 1.0e-2\ncosine: no\nhidden: 8\n")
    assert resolve_config("toy", config_file=tmp_path / "c.yaml") == resolve_config(
        "toy", config_file=tmp_path / "c.json"
    )
    (tmp_path / "bad.yml").write_text("epochs: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        resolve_config("toy", config_file=tmp_path / "bad.yml")
    (tmp_path / "list.yaml").write_text("- epochs\n")
    with pytest.raises(ValueError, match="YAML mapping"):
        resolve_config("toy", config_file=tmp_path / "list.yaml")


def test_a_run_folders_config_reruns_as_it_is_from_json_and_yaml(tiny, tmp_path):
    pytest.importorskip("tensorboard")
    first = fit("toy", overrides=dict(tiny, logger="csv,tensorboard"), print_lines=False)
    run = Path(first["run_dir"])
    stored = json.loads((run / "config.json").read_text())
    # the same file as YAML (what a user keeps in version control), run elsewhere through the CLI
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    run_cli(["train", "toy", "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "again")])
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    a, b = _metrics(again), _metrics(first)
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-6) for k in a)
    assert json.loads((tmp_path / "again" / "config.json").read_text())["config"] == dict(
        stored["config"], out=str(tmp_path / "again")
    )

    # TensorBoard got one scalar per epoch for every metric
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "valid/loss"} <= tags, tags
    assert len(acc.Scalars("valid/loss")) == tiny["epochs"]


def test_csv_only_writes_no_other_logs(tiny):
    summary = fit("toy", overrides=dict(tiny, epochs=1, logger="csv"), print_lines=False)
    run = Path(summary["run_dir"])
    assert (run / "metrics.csv").is_file() and not (run / "tensorboard").exists()


def test_bad_logger_names_fail_before_anything_is_written(tiny, monkeypatch):
    with pytest.raises(ValueError, match=r"logger: unknown logger\(s\) \['comet'\].*'csv', 'tensorboard'"):
        fit("toy", overrides=dict(tiny, logger="csv,comet"), print_lines=False)
    assert not (Path(tiny["out"]) / "config.json").exists()
    monkeypatch.setitem(loggers_mod.LOGGERS, "mlflow", "no_such_package_xyz")
    with pytest.raises(ValueError, match="pip install no_such_package_xyz"):
        loggers_mod.parse_logger_spec("mlflow")
    assert loggers_mod.parse_logger_spec("tensorboard,csv,tensorboard")[0] == "csv"


@pytest.mark.parametrize(
    "name, package, pattern",
    [("wandb", "wandb", "wandb/offline-run-*/run-*.wandb"), ("mlflow", "mlflow", "mlruns/*/*/metrics/valid/loss")],
)
def test_optional_loggers_write_into_the_run_folder(tiny, monkeypatch, name, package, pattern):
    """Each runs only where its package is installed (neither is in the dev extra: large, and wandb phones home
    unless told otherwise)."""
    pytest.importorskip(package)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    summary = fit("toy", overrides=dict(tiny, epochs=1, logger=name), print_lines=False)
    assert list(Path(summary["run_dir"]).glob(pattern)), f"{name} wrote no {pattern}"
