"""Task configurations: presets, validation, JSON round trip and the argparse options built from them.

A task's configuration is one dataclass deriving from ``TrainConfig``.  Its values are resolved in
this order, each layer overriding the previous one::

    dataclass defaults  <  preset (task.presets[name])  <  config file (JSON or YAML)  <  explicit overrides

Every field becomes a CLI option ``--field value`` (underscores may be written as dashes); a bool
field is ``--flag`` / ``--no-flag`` or ``--flag true|false``; a field whose metadata declares
``choices`` only accepts those values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from .task import Task, TrainConfig

__all__ = [
    "RUNTIME_FIELDS",
    "resolve_config",
    "validate_config",
    "config_to_dict",
    "config_from_dict",
    "load_config_file",
    "read_config_text",
    "add_config_arguments",
    "overrides_from_namespace",
    "parse_bool",
]

#: Fields that say where/how a run executes, not what it computes: they may differ between a run
#: and its resumption, and are ignored when a resumed run's stored config is compared.
RUNTIME_FIELDS = frozenset({"device", "num_workers", "out", "resume", "logger"})


def parse_bool(text: str | bool) -> bool:
    """Parse ``true/false/yes/no/1/0/on/off`` (any case) into a bool.

    Raises
    ------
    ValueError
        For any other text.
    """
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in ("true", "yes", "1", "on", "y"):
        return True
    if low in ("false", "no", "0", "off", "n"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {text!r}")


def _field_kind(config_class: type, f: dataclasses.Field) -> tuple[type, bool, bool]:
    """Return ``(base_type, optional, is_sequence)`` of a dataclass field."""
    hints = typing.get_type_hints(config_class)
    tp = hints.get(f.name, str)
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else str
        origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return (args[0] if args else str), optional, True
    if origin is typing.Literal:
        return type(typing.get_args(tp)[0]), optional, False
    return tp, optional, False


def _choices(config_class: type, f: dataclasses.Field) -> list | None:
    if "choices" in f.metadata:
        return list(f.metadata["choices"])
    tp = typing.get_type_hints(config_class).get(f.name)
    if typing.get_origin(tp) is typing.Literal:
        return list(typing.get_args(tp))
    return None


def _minimum(config_class: type, f: dataclasses.Field):
    """The field's ``metadata["min"]``, inherited from a base config that declares the same field."""
    for klass in config_class.__mro__:
        base = getattr(klass, "__dataclass_fields__", {}).get(f.name)
        if base is not None and "min" in base.metadata:
            return base.metadata["min"]
    return None


def _coerce(config_class: type, f: dataclasses.Field, value: Any) -> Any:
    """Convert ``value`` (e.g. from JSON or a preset) to the field's type; raise ValueError naming it."""
    base, optional, seq = _field_kind(config_class, f)
    if value is None:
        if optional:
            return None
        raise ValueError(f"config: {f.name}: None is not allowed")
    try:
        if seq:
            if isinstance(value, str):
                value = value.split(",")
            out = [_coerce_scalar(base, v) for v in value]
            return tuple(out) if typing.get_origin(typing.get_type_hints(config_class)[f.name]) is tuple else out
        return _coerce_scalar(base, value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config: {f.name}: cannot use {value!r} as {base.__name__} ({exc})") from None


def _coerce_scalar(base: type, value: Any) -> Any:
    if base is bool:
        return parse_bool(value)
    if base is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("not an integer")
        if isinstance(value, bool):
            raise ValueError("a bool is not an integer")
        return int(value)
    if base is float:
        if isinstance(value, bool):
            raise ValueError("a bool is not a number")
        out = float(value)
        if not math.isfinite(out):
            raise ValueError(f"not a finite number: {value!r}")
        return out
    if base is str:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return value
    return base(value)


def validate_config(config: TrainConfig) -> TrainConfig:
    """Check every field's type, its declared choices and its declared minimum (``metadata["min"]``).

    Returns
    -------
    TrainConfig
        The same object, with values coerced to the declared types.

    Raises
    ------
    ValueError
        Naming the first bad field and, for a choice field, listing the choices.
    """
    cls = type(config)
    for f in dataclasses.fields(config):
        value = _coerce(cls, f, getattr(config, f.name))
        choices = _choices(cls, f)
        if choices is not None and value not in choices:
            raise ValueError(f"config: {f.name}: unknown value {value!r}; choose from {choices}")
        low = _minimum(cls, f)
        if low is not None and value is not None and value < low:
            raise ValueError(f"config: {f.name}: must be >= {low}, got {value}")
        setattr(config, f.name, value)
    return config


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain JSON-able dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(config_class: type[TrainConfig], values: dict[str, Any], *, source: str = "config") -> TrainConfig:
    """Build a config from a dict, rejecting unknown keys (listed with the known ones)."""
    names = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"{source}: unknown option(s) {unknown} for {config_class.__name__}; choose from {sorted(names)}"
        )
    return validate_config(config_class(**values))


def resolve_config(
    task: type[Task] | str,
    preset: str | None = "paper",
    *,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a task's config: defaults < preset < config file < overrides.

    Parameters
    ----------
    task : Task subclass or str
        The task (or its registered name).
    preset : str or None
        Name of one of ``task.presets`` ("paper", "quick", ...); None or "paper" without a
        "paper" entry means the dataclass defaults.
    config_file : path, optional
        A ``config.json`` written by an earlier run (or by hand).  If it stores a ``task`` entry
        (run folders do), it must name this task.
    overrides : dict, optional
        Field values that win over everything else.

    Raises
    ------
    ValueError
        Unknown task, preset, option or value; a config file of another task.
    """
    from .task import get_task

    task_cls = get_task(task) if isinstance(task, str) else task
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in task_cls.presets and preset != "paper":
            raise ValueError(
                f"preset: unknown preset {preset!r} for task {task_cls.name!r}; "
                f"choose from {sorted(set(task_cls.presets) | {'paper'})}"
            )
        values.update(task_cls.presets.get(preset, {}))
    if config_file is not None:
        values.update(load_config_file(config_file, task_cls))
    values.update(overrides or {})
    return config_from_dict(task_cls.config_class, values, source=f"task {task_cls.name!r}")


def read_config_text(path: Path) -> Any:
    """Parse a config file: YAML for ``.yaml`` / ``.yml`` (PyYAML, safe loader), JSON otherwise.

    Raises
    ------
    ValueError
        Unreadable file or a syntax error, naming the file and the format.
    """
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"config: reading {str(path)!r} needs PyYAML (pip install pyyaml)") from None
        try:
            return yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"config: file {str(path)!r} is not valid YAML ({exc})") from None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"config: file {str(path)!r} is not valid JSON ({exc})") from None


def load_config_file(path: str | Path, task_cls: type[Task]) -> dict[str, Any]:
    """Read a JSON or YAML config (a run folder's ``config.json``, or a plain mapping of fields).

    Raises
    ------
    ValueError
        Missing or unreadable file, not a JSON object, or a file stored by another task.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config: file {str(path)!r} does not exist")
    data = read_config_text(path)
    if not isinstance(data, dict):
        raise ValueError(f"config: file {str(path)!r} must hold a JSON object / YAML mapping")
    if "config" in data and isinstance(data["config"], dict):  # run-folder format {"task":..., "config":...}
        stored_task = data.get("task")
        if stored_task is not None and stored_task != task_cls.name:
            raise ValueError(f"config: file {str(path)!r} belongs to task {stored_task!r}, not {task_cls.name!r}")
        data = data["config"]
    return data


# ----------------------------------------------------------------------------------------------- argparse


class _BoolAction(argparse.Action):
    """``--flag`` (true), ``--flag VALUE`` (true/false/yes/no/1/0), ``--no-flag`` (false)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string is not None and option_string.startswith("--no-"):
            if values is not None:
                parser.error(f"{option_string} takes no value")
            value = False
        elif values is None:
            value = True
        else:
            try:
                value = parse_bool(values)
            except ValueError as exc:
                parser.error(f"argument {option_string}: {exc}")
        setattr(namespace, self.dest, value)


def _fmt(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else repr(value)


def add_config_arguments(parser: argparse.ArgumentParser, task_cls: type[Task]) -> None:
    """Add one option per config field (dest = field name, default = not given).

    The help text of each option shows its default and the value every preset gives it.
    """
    cls = task_cls.config_class
    group = parser.add_argument_group(f"{cls.__name__} options (defaults = 'paper' preset)")
    defaults = cls()
    for f in dataclasses.fields(cls):
        base, optional, seq = _field_kind(cls, f)
        choices = _choices(cls, f)
        flags = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        flags += list(f.metadata.get("aliases", ()))  # e.g. qm9's --task for the field `target`
        default = getattr(defaults, f.name)
        text = f.metadata.get("help", "")
        preset_txt = "; ".join(f"{p}: {_fmt(v[f.name])}" for p, v in sorted(task_cls.presets.items()) if f.name in v)
        help_text = f"{text} (default: {_fmt(default)}" + (f"; {preset_txt})" if preset_txt else ")")
        help_text = help_text.replace("%", "%%")
        if base is bool and not seq:
            neg = [f"--no-{f.name}"] + ([f"--no-{f.name.replace('_', '-')}"] if "_" in f.name else [])
            group.add_argument(
                *flags,
                *neg,
                dest=f.name,
                action=_BoolAction,
                nargs="?",
                metavar="BOOL",
                default=argparse.SUPPRESS,
                help=help_text,
            )
            continue
        conv = _argtype(base, optional)
        kwargs: dict[str, Any] = dict(dest=f.name, type=conv, default=argparse.SUPPRESS, help=help_text)
        if choices is not None:
            kwargs["choices"] = choices
        else:
            kwargs["metavar"] = base.__name__.upper()
        if seq:
            kwargs["nargs"] = "+"
        group.add_argument(*flags, **kwargs)


def _argtype(base: type, optional: bool):
    def convert(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        return _coerce_scalar(base, text)

    convert.__name__ = base.__name__  # argparse names the type in "invalid int value" errors
    return convert


def overrides_from_namespace(ns: argparse.Namespace, config_class: type[TrainConfig]) -> dict[str, Any]:
    """The config fields that were given explicitly on the command line."""
    return {f.name: getattr(ns, f.name) for f in dataclasses.fields(config_class) if hasattr(ns, f.name)}
