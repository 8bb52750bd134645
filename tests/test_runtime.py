"""lieconv.runtime: the process-wide malloc setting applied by ``import lieconv``."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
#: (what the import did, what a later call says)
STATE = "import lieconv, lieconv.runtime as rt; print(rt._state.get('on'), rt.reuse_freed_memory())"
#: page faults of a 64 MiB tensor allocated after a 128 MiB one was freed (twice the size: the
#: freed block holds the new one whatever the alignment slack of the allocation)
FAULTS = """
import resource, torch, lieconv
x = torch.ones(1 << 25)
del x
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
y = torch.ones(1 << 24)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _run(code: str, **env_values: str) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LIECONV_REUSE_MEMORY", "GLIBC_TUNABLES") and not k.startswith("MALLOC_")
    }
    env.update(env_values)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_import_applies_it_once_and_it_stays_on():
    assert _run(STATE) == "True True"


@pytest.mark.parametrize("value", ["0", "false", "No", "off"])
def test_it_is_off_when_the_environment_says_so(value):
    assert _run(STATE, LIECONV_REUSE_MEMORY=value) == "None False"


def test_a_malloc_configured_by_glibc_variables_is_left_alone():
    assert _run(STATE, MALLOC_TRIM_THRESHOLD_="1048576") == "False False"
    assert _run(STATE, GLIBC_TUNABLES="glibc.malloc.mmap_threshold=1048576") == "False False"


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_a_large_tensor_reuses_freed_memory_instead_of_faulting_in_fresh_pages():
    pages = (1 << 26) // os.sysconf("SC_PAGE_SIZE")
    on = int(_run(FAULTS))
    off = int(_run(FAULTS, LIECONV_REUSE_MEMORY="0"))
    assert on < pages // 20, (on, off, pages)
    if off > pages // 2:  # without huge pages every fresh page faults: the setting is what saves them
        assert on < off // 10, (on, off)
