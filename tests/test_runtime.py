"""lieconv.runtime: the process-wide malloc setting of the lieconv command."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = "from lieconv.runtime import reuse_freed_memory as r; print(r(), r())"


def _run(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("LIECONV_REUSE_MEMORY", None)
    if env_value is not None:
        env["LIECONV_REUSE_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_reuse_freed_memory_takes_effect_on_glibc_and_is_idempotent():
    assert _run(None) == "True True"


@pytest.mark.parametrize("value", ["0", "false", "No"])
def test_reuse_freed_memory_is_off_when_the_environment_says_so(value):
    assert _run(value) == "False False"
