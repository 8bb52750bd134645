"""Native CPU kernels, compiled on first use (optional: ``torch`` operators stand in without them).

``smallest(x, k)``: the k smallest values of each row of an integer tensor, in no particular order
(the neighbour search's ranking of candidate keys; ``_native/select.cpp``).  On CPU int32 / int64
tensors it runs a C++ selection about twice as fast as ``torch.topk`` on the search's rows (a
sampled bracket around the k-th value, one branch-free pass, a selection on the bracket only);
elsewhere, or when no C++ compiler is found, it is ``torch.topk(x, k, largest=False,
sorted=False).values``.  Both give the same multiset of values, so every result built on it is the
same either way.

The library is built once per source, compiler and machine with ``$CXX`` (else ``c++`` / ``g++``
on the PATH) into ``$LIECONV_CACHE`` (default ``~/.cache/lieconv``, else a temporary directory) and
loaded with ``ctypes``; rows are split over ``torch.get_num_threads()`` threads.
``LIECONV_NATIVE=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["available", "compiler", "smallest"]

_SOURCE = Path(__file__).with_name("_native") / "select.cpp"
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC"]
_lock = threading.Lock()
_state: dict = {}
#: rows per thread at least when the rows are split over threads
_ROWS_PER_THREAD = 256


def _build() -> ctypes.CDLL | None:
    if os.environ.get("LIECONV_NATIVE", "1") == "0" or not _SOURCE.is_file():
        return None
    cxx = compiler()
    if not cxx:
        return None
    src = _SOURCE.read_bytes()
    tag = hashlib.sha256(src + " ".join([cxx, *_FLAGS, platform.machine(), platform.system()]).encode()).hexdigest()
    for root in (os.environ.get("LIECONV_CACHE"), Path.home() / ".cache" / "lieconv", Path(tempfile.gettempdir())):
        if not root:
            continue
        lib = Path(root) / f"select-{tag[:16]}.so"
        try:
            if not lib.is_file():
                lib.parent.mkdir(parents=True, exist_ok=True)
                tmp = lib.with_suffix(f".{os.getpid()}.tmp")
                subprocess.run(
                    [cxx, *_FLAGS, str(_SOURCE), "-o", str(tmp)], check=True, capture_output=True, timeout=120
                )
                os.replace(tmp, lib)  # atomic: concurrent processes never load a half-written file
            dll = ctypes.CDLL(str(lib))
        except (OSError, subprocess.SubprocessError):
            continue
        for name, ctype in (("lieconv_smallest_i32", ctypes.c_int32), ("lieconv_smallest_i64", ctypes.c_int64)):
            fn = getattr(dll, name)
            fn.argtypes = [ctypes.POINTER(ctype), ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(ctype)]
            fn.restype = None
        return dll
    return None


def compiler() -> str | None:
    """The C++ compiler the kernels are built with: ``$CXX``, else ``c++`` / ``g++`` on the PATH, or None."""
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def _library() -> ctypes.CDLL | None:
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _build()
        return _state["lib"]


def available() -> bool:
    """Whether the native selection is in use (built and loaded) in this process."""
    return _library() is not None


def smallest(x: Tensor, k: int) -> Tensor:
    """The k smallest values of each row (last axis) of ``x``, in no particular order.

    Shapes: x (..., n), 0 <= k <= n -> (..., k), same dtype (the multiset of
    ``torch.topk(x, k, largest=False, sorted=False).values``)."""
    n = x.shape[-1]
    native = x.device.type == "cpu" and x.dtype in (torch.int32, torch.int64) and 0 < k < n and x.numel() > 0
    lib = _library() if native else None
    if lib is None:
        return torch.topk(x, k, dim=-1, largest=False, sorted=False).values
    x = x.contiguous()
    out = x.new_empty(*x.shape[:-1], k)
    rows = x.numel() // n
    fn = lib.lieconv_smallest_i32 if x.dtype == torch.int32 else lib.lieconv_smallest_i64
    ptr = ctypes.POINTER(ctypes.c_int32 if x.dtype == torch.int32 else ctypes.c_int64)
    step = x.element_size()
    parts = max(1, min(torch.get_num_threads(), rows // _ROWS_PER_THREAD))

    def run(a: int, b: int) -> None:  # rows a:b (ctypes releases the GIL during the call)
        fn(ctypes.cast(x.data_ptr() + a * n * step, ptr), b - a, n, k, ctypes.cast(out.data_ptr() + a * k * step, ptr))

    if parts == 1:
        run(0, rows)
    else:
        bounds = [rows * i // parts for i in range(parts + 1)]
        list(_pool(parts).map(run, bounds[:-1], bounds[1:]))
    return out


def _pool(workers: int) -> ThreadPoolExecutor:
    with _lock:
        if _state.get("workers", 0) < workers:
            _state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lieconv-select")
            _state["workers"] = workers
        return _state["pool"]
