"""Config resolution, validation and the argparse options generated from a config dataclass."""

from __future__ import annotations

import json

import pytest

from lieconv.cli import build_parser
from lieconv.tasks.toy import ToyConfig, ToyTask
from lieconv.training.config import (
    add_config_arguments,
    config_to_dict,
    overrides_from_namespace,
    parse_bool,
    resolve_config,
    validate_config,
)
from lieconv.training.task import get_task


def test_precedence_defaults_preset_file_overrides(tmp_path):
    assert resolve_config("toy").epochs == ToyConfig().epochs
    assert resolve_config("toy", "quick").epochs == ToyTask.presets["quick"]["epochs"]
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"task": "toy", "config": {"epochs": 7, "lr": 0.5}}))
    cfg = resolve_config("toy", "quick", config_file=f, overrides={"lr": 0.25})
    assert (cfg.epochs, cfg.lr, cfg.n_train) == (7, 0.25, ToyTask.presets["quick"]["n_train"])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(preset="huge"), ["preset", "huge", "quick", "paper"]),
        (dict(overrides={"epoch": 3}), ["unknown option", "epoch", "epochs"]),
        (dict(overrides={"dtype": "float16"}), ["dtype", "float16", "float32", "float64"]),
        (dict(overrides={"device": "tpu"}), ["device", "tpu", "cuda"]),
        (dict(overrides={"epochs": "many"}), ["epochs", "many"]),
        (dict(overrides={"epochs": 0}), ["epochs", ">= 1"]),
        (dict(overrides={"cosine": "perhaps"}), ["cosine", "perhaps"]),
    ],
)
def test_bad_values_are_named(kwargs, words):
    with pytest.raises(ValueError) as err:
        resolve_config("toy", **kwargs)
    for w in words:
        assert w in str(err.value)


def test_unknown_task_lists_choices():
    with pytest.raises(ValueError, match=r"unknown task 'nope'.*toy"):
        get_task("nope")


def test_config_file_of_another_task(tmp_path):
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"task": "springs", "config": {"epochs": 3}}))
    with pytest.raises(ValueError, match="belongs to task 'springs', not 'toy'"):
        resolve_config("toy", config_file=f)
    with pytest.raises(ValueError, match="does not exist"):
        resolve_config("toy", config_file=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        resolve_config("toy", config_file=bad)


def test_coercion_and_round_trip():
    cfg = validate_config(ToyConfig(epochs=3.0, lr=1, cosine="false"))
    assert (cfg.epochs, cfg.lr, cfg.cosine) == (3, 1.0, False)
    assert isinstance(cfg.epochs, int) and isinstance(cfg.lr, float)
    assert resolve_config("toy", overrides=config_to_dict(cfg)) == cfg
    assert parse_bool("Yes") and not parse_bool("0")


def _parse(argv):
    import argparse

    p = argparse.ArgumentParser()
    add_config_arguments(p, ToyTask)
    return overrides_from_namespace(p.parse_args(argv), ToyConfig)


def test_generated_options():
    assert _parse([]) == {}  # nothing given -> nothing overridden
    assert _parse(["--no-cosine", "--epochs", "4", "--batch-size", "8"]) == {
        "cosine": False,
        "epochs": 4,
        "batch_size": 8,
    }
    assert _parse(["--cosine", "false"]) == {"cosine": False}
    assert _parse(["--figures"]) == {"figures": True}
    assert _parse(["--dtype", "float64"]) == {"dtype": "float64"}


def test_help_lists_every_field_with_default(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "toy", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    import dataclasses

    for f in dataclasses.fields(ToyConfig):
        assert f"--{f.name}" in text
    assert "(default: 30; quick: 5)" in text  # epochs: default and preset value
    assert "{float32,float64}" in text
