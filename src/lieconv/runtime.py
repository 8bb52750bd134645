"""Process-wide settings that make training faster; nothing here changes a result.

``known_all(mask)`` / ``avoid_host_reads()``: reading a device value on the host (``bool(t)``,
``int(t)``, ``.item()``) makes the host wait for every queued kernel on a GPU, but is free on the
CPU.  The layers read whether a mask is all True only where it is free (``host_reads_free``: CPU
tensors), to skip a masking pass or to pack the real rows of a padded batch; elsewhere they take
the general masked path, which gives the same values.  ``avoid_host_reads()`` makes the CPU take
that path too (what a GPU run computes, e.g. to test it on a machine without one).  Reads that
decide a shape (how many queries a subsampling layer keeps, how many candidates a neighbourhood
search ranks) stay: a few per layer, none inside a loop over steps or chunks.

``reuse_freed_memory()``: glibc's ``malloc`` serves every block above its mmap threshold (which
grows with use but never past 32 MiB) with ``mmap`` and hands it back to the system on ``free``,
so each new large tensor is fresh memory that the kernel zero-fills page by page on first touch.
The per-atom tensors of the QM9 network (5464 rows x 1536 channels, 34 MB) are all above it: a
training step of the paper's SE(3) model takes ~1.1 million page faults and ~4 s of system time
(of ~18 s), the RotMNIST per-example and springs steps ~0.3-0.5 s.  Setting a fixed mmap threshold
of ``MMAP_THRESHOLD`` (256 MiB) and a trim threshold of ``TRIM_THRESHOLD`` (512 MiB)
(``mallopt(M_MMAP_THRESHOLD, ...)``, ``mallopt(M_TRIM_THRESHOLD, ...)``) serves those tensors from
the heap, where freed blocks are reused: after the first step a step takes almost no page faults.
The cost is bounded: up to ``TRIM_THRESHOLD`` of freed memory stays mapped at the top of the heap,
freed blocks below it stay mapped until reused (as for any small allocation), and blocks of
``MMAP_THRESHOLD`` or more are still returned.  Peak memory grows by a few percent (heap
fragmentation): QM9 SE(3)x4 1.98 -> 2.18 GB, RotMNIST SE(2)x2 per example 0.90 -> 0.94 GB.

``import lieconv`` calls it, so a script or notebook using the library gets it without asking.
``LIECONV_REUSE_MEMORY=0`` (or ``false`` / ``no`` / ``off``) in the environment turns it off, and
it is not applied where the process's malloc was configured already (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_MAX_`` or a ``glibc.malloc`` entry in
``GLIBC_TUNABLES``).  Only glibc (Linux) has these parameters; elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

from torch import Tensor

__all__ = ["reuse_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "host_reads_free", "known_all", "avoid_host_reads"]

#: blocks of this many bytes or more are still mapped (and unmapped) one by one
MMAP_THRESHOLD = 256 << 20
#: free memory kept at the top of the heap (more is returned to the system)
TRIM_THRESHOLD = 512 << 20

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_")
_state: dict[str, bool] = {}


def reuse_freed_memory(enable: bool | None = None) -> bool:
    """Serve large tensors from malloc's heap, so freed memory is reused instead of zero-filled
    again (glibc only; see the module docstring).

    ``enable``: None reads ``LIECONV_REUSE_MEMORY`` (default on; ``0`` / ``false`` / ``no`` /
    ``off`` off).  Returns True when the setting is in effect.  Idempotent; turning it off again is
    not supported (memory already kept stays kept).  Leaves a malloc configured through glibc's own
    environment variables as it is (returns False).
    """
    if enable is None:
        enable = os.environ.get("LIECONV_REUSE_MEMORY", "1").strip().lower() not in ("0", "false", "no", "off")
    if not enable:
        return _state.get("on", False)
    if "on" not in _state:
        _state["on"] = not _configured_by_user() and _mallopt()
    return _state["on"]


def _configured_by_user() -> bool:
    return any(k in os.environ for k in _USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def _mallopt() -> bool:
    name = ctypes.util.find_library("c")
    if os.name != "posix" or name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # only glibc has mallopt with these parameters
        return False
    # either one, once set, also stops glibc's dynamic adjustment of the other
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )


_AVOID_READS = contextvars.ContextVar("lieconv_avoid_host_reads", default=False)


def host_reads_free(t: Tensor) -> bool:
    """Whether reading a value of ``t`` on the host costs no wait: CPU tensors, outside ``avoid_host_reads()``."""
    return t.device.type == "cpu" and not _AVOID_READS.get()


def known_all(mask: Tensor) -> bool:
    """True when ``mask`` is all True and reading that is free (``host_reads_free``); False means
    "not known": take the masked path, which gives the same values."""
    return host_reads_free(mask) and bool(mask.all())


@contextlib.contextmanager
def avoid_host_reads() -> Iterator[None]:
    """Within the block the layers read no device value on the host except where it decides a shape,
    on the CPU too (see the module docstring)."""
    token = _AVOID_READS.set(True)
    try:
        yield
    finally:
        _AVOID_READS.reset(token)
