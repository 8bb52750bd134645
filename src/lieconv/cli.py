"""Command line: ``lieconv`` / ``python -m lieconv``.  Thin: parses a task config, calls ``lieconv.training``.

::

    lieconv train <task> [--preset NAME] [--config FILE] [--<field> VALUE ...]
    lieconv eval  <task> --checkpoint PATH [--split test] [--device auto] [--batch-size N] [--data FILE]
    lieconv demo
    lieconv tasks
    lieconv <command> <task> [options]     per-task commands, e.g. ``lieconv equivariance rotmnist``

Every field of the task's config dataclass is an option (``lieconv train <task> --help`` lists them
with their defaults and preset values).  Multi-process training: ``torchrun --nproc_per_node=N -m
lieconv train ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser", "format_table"]


def build_parser() -> argparse.ArgumentParser:
    """The full parser (imports every available task module to list its options)."""
    from .tasks import load_tasks
    from .training.config import add_config_arguments

    tasks = load_tasks()
    task_parsers: dict[str, argparse.ArgumentParser] = {}
    parser = argparse.ArgumentParser(
        prog="lieconv",
        allow_abbrev=False,
        description="LieConv: train and evaluate Lie-group equivariant networks on the paper's tasks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train",
        help="train a task (resumes the run in --out if there is one)",
        description="Train a task. Re-running the same command resumes from the last checkpoint.",
    )
    train_tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for name in sorted(tasks):
        cls = tasks[name]
        p = train_tasks.add_parser(
            name,
            allow_abbrev=False,
            help=_help_text(cls.__doc__),
            description=f"Train task {name!r}. Precedence: dataclass defaults < --preset < "
            "--config file < explicit options.",
        )
        presets = sorted(set(cls.presets) | {"paper"})
        p.add_argument(
            "--preset",
            choices=presets,
            default="paper",
            help="named set of option values (default: 'paper' = the paper's hyperparameters)",
        )
        p.add_argument(
            "--config",
            metavar="FILE",
            default=None,
            help="JSON or YAML (.yaml/.yml) config, e.g. a run folder's config.json, applied after the preset",
        )
        p.add_argument(
            "--progress",
            dest="_progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="progress bar (default: only when stdout is a terminal)",
        )
        add_config_arguments(p, cls)
        task_parsers[name] = p

    ev = sub.add_parser(
        "eval",
        allow_abbrev=False,
        help="evaluate a checkpoint and print its metrics",
        description="Evaluate a checkpoint written by 'lieconv train'.",
    )
    ev.add_argument("task", choices=sorted(tasks), metavar="TASK", help=f"one of {sorted(tasks)}")
    ev.add_argument("--checkpoint", required=True, metavar="PATH", help="a .ckpt file (e.g. RUN/checkpoints/best.ckpt)")
    ev.add_argument("--split", choices=["test", "valid", "train"], default="test", help="split (default: test)")
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="device (default: auto)")
    ev.add_argument(
        "--batch-size",
        "--batch_size",
        dest="batch_size",
        type=int,
        default=None,
        help="evaluation batch size (default: the training one; the metrics do not depend on it)",
    )
    ev.add_argument(
        "--eval-samples",
        "--eval_samples",
        dest="eval_samples",
        type=int,
        default=1,
        metavar="S",
        help="test-time averaging: average the model output over S independent draws of lift samples "
        "and neighbourhoods (default: 1)",
    )
    ev.add_argument(
        "--data",
        metavar="FILE",
        default=None,
        help="evaluate on this data file instead of the checkpoint's data (tasks with a 'data' option, "
        "e.g. springs: an .npz with the split's arrays)",
    )

    sub.add_parser("demo", help="run the demo and print where its run folder is")
    sub.add_parser("tasks", help="list the available tasks and presets")
    command_parsers = _add_task_commands(sub, tasks)
    parser.set_defaults(_task_parsers=task_parsers, _eval_parser=ev, _command_parsers=command_parsers)
    return parser


def _escape(text: str) -> str:
    """argparse %-formats help strings: a literal '%' must be written '%%'."""
    return (text or "").replace("%", "%%")


def _help_text(doc: str | None) -> str:
    """First line of a docstring, escaped for argparse."""
    return _escape(doc.strip().splitlines()[0]) if doc and doc.strip() else ""


def _add_task_commands(sub, tasks: dict) -> dict:
    """``lieconv <command> <task> [options]`` for every ``Task.commands`` entry (e.g. equivariance)."""
    by_name: dict[str, dict] = {}
    for task_name, cls in sorted(tasks.items()):
        for cmd, spec in getattr(cls, "commands", {}).items():
            by_name.setdefault(cmd, {})[task_name] = spec
    parsers = {}
    for cmd, specs in sorted(by_name.items()):
        p = sub.add_parser(
            cmd,
            help=f"per-task command ({', '.join(sorted(specs))})",
            description=f"'{cmd}' for a task: one of {sorted(specs)}.",
        )
        per_task = p.add_subparsers(dest="task", metavar="TASK", required=True)
        for task_name, spec in sorted(specs.items()):
            tp = per_task.add_parser(task_name, allow_abbrev=False, help=_escape(spec.help), description=spec.help)
            spec.add_arguments(tp)
            tp.set_defaults(_run=spec.run)
            parsers[(cmd, task_name)] = tp
    return parsers


def format_table(metrics: dict[str, float], column: str) -> str:
    """A two-column text table ``metric | value``."""
    width = max([len("metric")] + [len(k) for k in metrics])
    lines = [f"{'metric':<{width}}  {column}", f"{'-' * width}  {'-' * max(len(column), 12)}"]
    lines += [f"{k:<{width}}  {v:.6g}" for k, v in metrics.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 training failed, 2 bad input,
    143 / 130 run interrupted by SIGTERM / SIGINT after saving a resumable checkpoint)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unknown_options(parser, args, extra)
    try:
        if args.command == "train":
            return _train(args, argv)
        if args.command == "eval":
            from .training.trainer import evaluate

            metrics = evaluate(
                args.checkpoint,
                args.task,
                split=args.split,
                device=args.device,
                batch_size=args.batch_size,
                eval_samples=args.eval_samples,
                overrides=None if args.data is None else {"data": args.data},
            )
            print(format_table(metrics, args.split))
            return 0
        if args.command == "demo":
            from . import tasks

            tasks.demo()
            return 0
        if hasattr(args, "_run"):
            return int(args._run(args) or 0)
        if args.command == "tasks":
            from .tasks import IMPORT_ERRORS, load_tasks

            for name, cls in sorted(load_tasks().items()):
                print(f"{name:10s} presets: {', '.join(sorted(set(cls.presets) | {'paper'}))}")
            for mod, err in IMPORT_ERRORS.items():
                print(f"(task module {mod!r} failed to import: {err})")
            return 0
    except ValueError as exc:
        print(f"lieconv: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # data that cannot be installed (DataMissingError), unreadable files
        from .datasets._offline import DataMissingError

        text = (
            str(exc)
            if isinstance(exc, DataMissingError) or not exc.filename
            else f"{exc.strerror or exc}: {exc.filename!r}"
        )
        print(f"lieconv: error: {text}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


def _unknown_options(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    import difflib

    sub = (
        {"train": args._task_parsers.get(getattr(args, "task", None)), "eval": args._eval_parser}.get(args.command)
        or args._command_parsers.get((args.command, getattr(args, "task", None)))
        or parser
    )
    opts = {o for a in sub._actions for o in a.option_strings if o.startswith("--")}
    known = sorted(o for o in opts if not ("-" in o[2:] and "--" + o[2:].replace("-", "_") in opts))
    hints = []
    for tok in extra:
        if tok.startswith("--"):
            close = difflib.get_close_matches(tok.split("=")[0], known, n=1)
            hints.append(f"{tok}" + (f" (did you mean {close[0]}?)" if close else ""))
    what = ", ".join(hints) if hints else " ".join(extra)
    sub.error(f"unrecognized arguments: {what}; valid options: {' '.join(known)}")


def _train(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from .tasks import load_tasks
    from .training.config import overrides_from_namespace
    from .training.module import NonFiniteLossError
    from .training.trainer import RunInterrupted, distributed_env, fit

    cls = load_tasks()[args.task]
    overrides = overrides_from_namespace(args, cls.config_class)
    try:
        summary = fit(
            args.task, preset=args.preset, config_file=args.config, overrides=overrides, progress_bar=args._progress
        )
    except NonFiniteLossError as exc:
        print(f"lieconv: training stopped: {exc}", file=sys.stderr)
        return 1
    except RunInterrupted as exc:
        import shlex

        argv = list(sys.argv[1:]) if argv is None else list(argv)
        print(f"lieconv: {exc}; resume with the same command: lieconv {shlex.join(argv)}", file=sys.stderr, flush=True)
        return exc.exit_status
    if distributed_env()[2] == 0:
        cols = {"valid (best)": summary["best_valid"], "test (best)": summary["test"]}
        for col, metrics in cols.items():
            if metrics:
                print(format_table(metrics, col))
        print(
            f"{summary['status']}: {summary['epochs_completed']} epochs in {summary['train_time_s']:.1f} s; "
            f"run folder: {summary['run_dir']}"
        )
    return 0
