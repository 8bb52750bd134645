"""Per-task commands (``Task.commands``) are reachable as ``lieconv <command> <task> [options]``."""

from __future__ import annotations

import pytest

from lieconv import cli
from lieconv.tasks import load_tasks
from lieconv.training.task import TaskCommand


def test_task_command_dispatch_and_unknown_option(monkeypatch, capsys):
    toy = load_tasks()["toy"]
    seen = {}

    def add(p):
        p.add_argument("--times", type=int, default=2, help="how many (default: 2)")

    def run(args):
        seen["times"] = args.times
        return 0

    monkeypatch.setattr(toy, "commands", {"echo": TaskCommand("echo test", add, run)})
    assert cli.main(["echo", "toy", "--times", "3"]) == 0
    assert seen == {"times": 3}
    with pytest.raises(SystemExit):
        cli.main(["echo", "toy", "--tims", "3"])
    assert "did you mean --times" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["echo", "nosuchtask"])


def test_field_aliases_become_options():
    """qm9's config field ``target`` is also reachable as ``--task`` (the issue's spelling)."""
    args, extra = cli.build_parser().parse_known_args(["train", "qm9", "--task", "gap"])
    assert not extra and args.target == "gap"
