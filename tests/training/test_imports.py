"""Layering of the imports: the trainer never imports an application; ``import lieconv`` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import subprocess_env

SRC = Path(__file__).resolve().parents[2] / "src" / "lieconv"


_REPORT = "import sys\nprint('\\n'.join(m for m in sys.modules if m.split('.')[0] in ('lieconv', 'lightning')))"


def _imported_after(*stages: str) -> list[set[str]]:
    """The ``lieconv``/``lightning`` modules loaded after each stage of code, in one fresh interpreter."""
    probe = "\nprint('--')\n".join(f"{code}\n{_REPORT}" for code in stages)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=subprocess_env(), capture_output=True, text=True, timeout=120, check=True
    )
    return [set(part.split()) for part in out.stdout.split("--\n")]


def test_import_lieconv_is_light_and_the_trainer_imports_no_application():
    core, trainer = _imported_after(
        "import lieconv, lieconv.models, lieconv.nn",
        "import lieconv.training, lieconv.training.trainer, lieconv.training.module",
    )
    assert not {m for m in core if m.startswith("lightning")}
    assert not {m for m in core if m.startswith(("lieconv.training", "lieconv.tasks"))}
    assert "lieconv.training.trainer" in trainer and "lightning" in trainer
    assert not {m for m in trainer if m == "lieconv.tasks" or m.startswith("lieconv.tasks.")}


def test_no_module_of_the_trainer_names_the_applications():
    """Static check, so that a lazy import inside a function cannot bring the circle back."""
    for path in sorted((SRC / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")] + [
                    f"{node.module or ''}.{a.name}" for a in node.names
                ]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert "tasks" not in name.split("."), f"{path.name} imports {name}"


def test_importing_the_task_registry_registers_the_built_in_tasks():
    import lieconv.tasks
    from lieconv.training import TASKS

    assert {"toy", "springs", "rotmnist", "qm9"} <= set(TASKS), lieconv.tasks.IMPORT_ERRORS


def test_a_checkpoint_loads_without_importing_its_task_first(tiny):
    from lieconv.training import fit

    summary = fit("toy", overrides=dict(tiny, epochs=1), print_lines=False)
    ckpt = Path(summary["run_dir"]) / "checkpoints" / "best.ckpt"
    code = (
        f"from lieconv.training import load_model\nmodel, task = load_model({str(ckpt)!r})\n"
        "assert task.name == 'toy', task.name"
    )
    (loaded,) = _imported_after(code)
    assert "lieconv.tasks.toy" in loaded  # imported by name from the checkpoint, not by the trainer
