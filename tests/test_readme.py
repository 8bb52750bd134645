"""The README's promises: its two commands come first, and its code blocks run as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_commands():
    head = README.read_text().split("\n\n")[1]
    assert "make demo" in head and "make test" in head


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    torch.manual_seed(0)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    err = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert err < 1e-9  # the custom-group network is invariant to float64 precision
