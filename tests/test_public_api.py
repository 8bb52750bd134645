"""The public API: every name the README imports is importable from where it says, every module has a
valid ``__all__``, and the version has one source."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import lieconv

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.*") if p.suffix in (".md", ".rst") and "_build" not in p.parts),
]


def _readme_imports() -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from lieconv... import ...`` / ``import lieconv...`` in the docs."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for module, names in re.findall(r"^\s*from (lieconv[\w.]*) import ([\w, ]+?)\s*(?:#.*)?$", text, flags=re.M):
            found += [(module, n.strip()) for n in names.split(",") if n.strip()]
        found += [(m, "") for m in re.findall(r"^\s*import (lieconv[\w.]*)", text, flags=re.M)]
    return found


def test_the_readme_imports_the_flat_api():
    pairs = set(_readme_imports())
    for name in ("Points", "LieConv", "LieResNet", "get_group", "MatrixLieGroup", "assert_equivariant"):
        assert ("lieconv", name) in pairs, f"README does not show `from lieconv import {name}`"


@pytest.mark.parametrize("module, name", sorted(set(_readme_imports())), ids=lambda v: v or "module")
def test_every_name_the_docs_import_exists_where_they_say(module, name):
    mod = importlib.import_module(module)
    if name:
        assert hasattr(mod, name), f"{module} has no {name}"


def _modules() -> list[str]:
    names = ["lieconv"]
    for info in pkgutil.walk_packages(lieconv.__path__, "lieconv."):
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_every_module_declares_a_valid_all(name):
    if name.endswith("__main__"):
        pytest.skip("running it starts the CLI")
    mod = importlib.import_module(name)
    assert isinstance(getattr(mod, "__all__", None), (list, tuple)), f"{name} has no __all__"
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names missing attributes {missing}"
    assert len(set(mod.__all__)) == len(mod.__all__), f"{name}.__all__ repeats a name"


def test_models_and_core_are_flat():
    from lieconv import LieConv, LieResNet, MatrixLieGroup, Points, assert_equivariant, get_group  # noqa: F401
    from lieconv.models import FC, HFC, HOGN, OGN, HLieResNet, ImageLieResNet, MoleculeLieResNet  # noqa: F401

    assert LieResNet is importlib.import_module("lieconv.nn").LieResNet


def test_version_has_one_source():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lieconv.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", lieconv.__version__)
    assert f"## [{lieconv.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_citation_cites_the_paper_and_the_library_at_this_version():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert str(cff["version"]) == lieconv.__version__
    paper = cff["preferred-citation"]
    assert [a["family-names"] for a in paper["authors"]] == ["Finzi", "Stanton", "Izmailov", "Wilson"]
    assert paper["year"] == 2020 and "ICML" in paper["conference"]["name"]
    assert "lieconv developers" in (ROOT / "LICENSE").read_text() and "MIT License" in (ROOT / "LICENSE").read_text()
