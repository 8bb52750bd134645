"""The command line: errors for unknown things, and `train` / `eval` / `demo` end to end."""

from __future__ import annotations

import json

import pytest

from lieconv import cli

from .conftest import TINY, cli_args, run_cli


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "nope"], ["invalid choice: 'nope'", "toy"]),
        (["train", "toy", "--preset", "huge"], ["invalid choice: 'huge'", "quick"]),
        (["train", "toy", "--dtype", "float16"], ["invalid choice: 'float16'", "float64"]),
        (["train", "toy", "--epoch", "3"], ["--epoch", "did you mean --epochs?", "--batch_size"]),
        (["train", "toy", "--epochs", "x"], ["--epochs", "invalid int value"]),
        (["eval", "toy"], ["--checkpoint"]),
        (["frobnicate"], ["invalid choice", "train", "eval", "demo"]),
    ],
)
def test_unknown_things_are_errors_listing_choices(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err


def test_bad_input_found_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["train", "toy", *cli_args(TINY), "--out", str(blocker / "run")]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err
    assert cli.main(["eval", "toy", "--checkpoint", str(tmp_path / "none.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_in_a_subprocess_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    proc = run_cli(["train", "toy", "--preset", "quick", *cli_args(TINY), "--epochs", "2", "--out", str(out)])
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("epoch 1/2") and lines[1].startswith("epoch 2/2")  # plain lines, no bar (no TTY)
    assert f"run folder: {out}" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert cli.main(["eval", "toy", "--checkpoint", str(out / "checkpoints" / "best.ckpt"), "--device", "cpu"]) == 0
    table = dict(line.split() for line in capsys.readouterr().out.splitlines()[2:])
    assert float(table["loss"]) == pytest.approx(summary["test"]["loss"], rel=1e-5)


def test_demo_hook_is_called(monkeypatch):
    from lieconv import tasks

    called = []
    monkeypatch.setattr(tasks, "demo", lambda: called.append(True))
    assert cli.main(["demo"]) == 0 and called
