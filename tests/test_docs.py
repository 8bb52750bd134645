"""The documentation's code blocks run as written (the README's are run by test_readme.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_the_docs_have_pages_with_code():
    assert {"index.md", "usage.md", "ragged.md", "training.md", "architecture.md"} <= {p.name for p in PAGES}
    assert sum(len(_blocks(p)) for p in PAGES) >= 2


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_python_blocks_of_a_page_run(page):
    from lieconv.training import TASKS

    text = "\n".join(_blocks(page))
    if "torch_geometric" in text:
        pytest.importorskip("torch_geometric")
    before = dict(TASKS)
    torch.manual_seed(0)
    try:
        exec(compile(text, str(page), "exec"), {})  # our own docs
    finally:
        TASKS.clear()
        TASKS.update(before)  # a page may register an example task
