"""Process-wide settings that make CPU training faster; nothing here changes a result.

``reuse_freed_memory()``: large tensors (the per-pair activations of a LieConv layer are tens of
MB) are allocated by glibc ``malloc`` with ``mmap`` and returned to the system when freed, so every
new one is fresh memory that the kernel zero-fills page by page on first touch. On the RotMNIST
per-example step that page-fault work is about a quarter of the time (a 70 MB Swish costs 57 ms
on fresh memory, 17 ms in place). Telling malloc to serve every size from its heap and not to
give freed memory back (``mallopt(M_MMAP_MAX, 0)``, ``mallopt(M_TRIM_THRESHOLD, 2 GiB - 1)``)
makes later tensors reuse pages already mapped; the cost is that the process keeps its peak
memory until it exits (and a few percent more peak, from heap fragmentation).

The ``lieconv`` command calls it (``LIECONV_REUSE_MEMORY=0`` turns it off); call it yourself at the
start of a training script. Only glibc (Linux) implements it; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_state: dict[str, bool] = {}


def reuse_freed_memory(enable: bool | None = None) -> bool:
    """Keep freed memory for reuse instead of returning it to the system (glibc only).

    ``enable``: None reads ``LIECONV_REUSE_MEMORY`` (default on; ``0`` / ``false`` / ``no`` off).
    Returns True when the setting is in effect.  Idempotent; turning it off again is not supported
    (memory already kept stays kept).
    """
    if enable is None:
        enable = os.environ.get("LIECONV_REUSE_MEMORY", "1").strip().lower() not in ("0", "false", "no", "off")
    if not enable:
        return _state.get("on", False)
    if "on" not in _state:
        _state["on"] = _mallopt()
    return _state["on"]


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
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
