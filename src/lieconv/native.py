"""Native CPU kernels, compiled on first use (optional: ``torch`` operators stand in without them).

``smallest(x, k)``: the k smallest values of each row of an integer tensor, in no particular order
(the neighbour search's ranking of candidate keys; ``_native/select.cpp``).  On CPU int32 / int64
tensors it runs a C++ selection 2-3x as fast as ``torch.topk`` on the search's rows (a
sampled bracket around the k-th value, one branch-free pass, a selection on the bracket only);
elsewhere, or when no C++ compiler is found, it is ``torch.topk(x, k, largest=False,
sorted=False).values``.  Both give the same multiset of values, so every result built on it is the
same either way.

``draw(near, seeds, counts, K)``: the search's Monte-Carlo draw of K of each query's candidates
(``_native/select.cpp``: the hash of ``lieconv.random.hash_pairs`` and a selection of the K largest
keys, per row in cache), or None where it does not run (the caller then draws with ``torch``:
the same bits, so the same points in the same order: ascending).  ``nearest_draw``: the dense
search on rounded distance rows and this draw fused (``_native/select.cpp``: the k-th bucket by
counting passes, the candidates in one pass, no keys built).

``distance(kind, u, v)`` and ``farthest(kind, ...)``: the group distances of the built-in kinds
(``LieGroup.native_distance``: ``"euclid"`` of 1-3 coordinates, ``"se2"``) in one pass per row,
and the whole farthest-point loop on them (``_native/distance.cpp``), or None where they do not run
(the caller then takes the group's ``torch`` formula).  Not bit-equal to the ``torch`` formula (its
own sine), but every distance of a kind is the same bits wherever it is computed, so farthest-point
rows stay the search's own numbers.

``gather_columns(src, cols, m)``: the farthest-point rows of a subsampled layer's points, column
by column (``_native/scatter.cpp``; ``torch.gather`` of an expanded index else).

``index_add_(out, idx, src)``: ``out.index_add_(0, idx, src)`` for float32 rows (``_native/scatter.cpp``:
a plain loop in the order of ``idx``, 10x as fast as ``torch``'s sorting one on the aggregation's
gradient; threads split the destination rows, so the sums do not depend on the thread count).

``gather_contract`` and ``gather_contract_grad``: LieConv's aggregation z_g = sum_k f_gk^T s_gk over
gathered rows f_gk = rows[idx[g K + k]], and its gradients (``_native/contract.cpp``: the rows are
read where they lie, never gathered into a (pairs, C) tensor; 16 or 32 kernel channels), or
None / False where they do not run (the caller then gathers and multiplies with ``torch``).

``bmm(a, b, out)``: batched products of small matrices (``_native/bmm.cpp``: C_b (+)= op(a_b) op(b_b)
with the tiles in registers; the dense aggregation's ``(6 x 96) @ (96 x 96)`` products, where a BLAS
call per matrix costs more than its arithmetic), or None where it does not run.

``swish``, ``moments_``, ``swish_grad``, ``norm_grad``: the kernel MLP's passes over a chunk of rows
(batch-norm affine, Swish, mask, and the column sums of the statistics and their derivatives;
``_native/swish.cpp``), each one pass instead of 3-6 ``torch`` operators; ``swish_grad2``: the two
derivatives of ``g silu'(y)`` (training through a derivative) in one pass; ``mlp_forward`` /
``mlp_backward``: a kernel-MLP layer's whole chunk loop in one call (``_native/mlp.cpp``: these
passes and the BLAS ``sgemm_`` that torch exports, called from C++; one thread); ``bn_affine`` /
``bn_affine_grad``: a batch norm's affine map (and running statistics) from its column sums, and its
derivatives, in one loop over the channels (``_native/norm.cpp``) instead of a dozen small operators.
Native on contiguous float32 CPU tensors; the same formulas in ``torch`` otherwise (equal to float rounding: the native
sigmoid is a polynomial within ~2e-7 of torch's).

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

__all__ = [
    "available",
    "compiler",
    "smallest",
    "draw",
    "nearest_draw",
    "distance",
    "farthest",
    "swish",
    "moments_",
    "swish_grad",
    "norm_grad",
    "swish_grad2",
    "mlp_forward",
    "mlp_backward",
    "bn_affine",
    "bn_affine_grad",
    "index_add_",
    "gather_columns",
    "gather_contract",
    "gather_contract_grad",
    "bmm",
]

_SOURCES = tuple(
    Path(__file__).with_name("_native") / name
    for name in (
        "select.cpp",
        "swish.cpp",
        "distance.cpp",
        "scatter.cpp",
        "contract.cpp",
        "bmm.cpp",
        "mlp.cpp",
        "norm.cpp",
    )
)
_HEADER = Path(__file__).with_name("_native") / "common.h"
_FLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC"]
_lock = threading.Lock()
_state: dict = {}
#: rows per thread at least when the rows are split over threads
_ROWS_PER_THREAD = 256


def _build() -> ctypes.CDLL | None:
    if os.environ.get("LIECONV_NATIVE", "1") == "0" or not all(s.is_file() for s in (*_SOURCES, _HEADER)):
        return None
    cxx = compiler()
    if not cxx:
        return None
    src = b"".join(s.read_bytes() for s in (*_SOURCES, _HEADER))
    tag = hashlib.sha256(src + " ".join([cxx, *_FLAGS, platform.machine(), platform.system()]).encode()).hexdigest()
    for root in (os.environ.get("LIECONV_CACHE"), Path.home() / ".cache" / "lieconv", Path(tempfile.gettempdir())):
        if not root:
            continue
        lib = Path(root) / f"lieconv-{tag[:16]}.so"
        try:
            if not lib.is_file():
                lib.parent.mkdir(parents=True, exist_ok=True)
                tmp = lib.with_suffix(f".{os.getpid()}.tmp")
                _compile(cxx, tmp)
                os.replace(tmp, lib)  # atomic: concurrent processes never load a half-written file
            dll = ctypes.CDLL(str(lib))
        except (OSError, subprocess.SubprocessError):
            continue
        for name, ctype in (("lieconv_smallest_i32", ctypes.c_int32), ("lieconv_smallest_i64", ctypes.c_int64)):
            fn = getattr(dll, name)
            fn.argtypes = [ctypes.POINTER(ctype), ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(ctype)]
            fn.restype = None
        p, n = ctypes.c_void_p, ctypes.c_int64
        for name, args in (
            ("lieconv_swish", [p, n, n, p, p, p, p]),
            ("lieconv_moments", [p, n, n, p, p]),
            ("lieconv_swish_grad", [p, p, n, n, p, p, p, p, p, p, p]),
            ("lieconv_norm_grad", [p, p, n, n, p, p, p, p, p]),
            ("lieconv_swish_grad2", [p, p, p, n, p, p]),
            ("lieconv_draw", [p, n, n, n, p, p, n, p, p]),
            ("lieconv_nearest_draw", [p, n, n, n, n, p, p, p, n, p, p, n, n, p, p]),
            ("lieconv_distance", [ctypes.c_int, p, n, p, p, n, p, n, p, p]),
            ("lieconv_farthest", [ctypes.c_int, p, n, n, n, n, p, n, p, p, n, p, p, p, ctypes.c_int]),
            ("lieconv_index_add", [p, n, n, p, p, n, n, n]),
            ("lieconv_gather_columns", [p, n, n, p, n, n, n, p]),
            ("lieconv_gather_contract", [p, n, p, p, n, n, n, p]),
            ("lieconv_gather_contract_grad", [p, n, p, p, n, n, n, p, p, p, p, n, n]),
            ("lieconv_bmm_nn", [p, n, n, n, p, n, n, p, n, n, n, n, n, n, ctypes.c_int]),
            ("lieconv_bmm_nt", [p, n, n, p, n, n, p, n, n, n, n, n, n, ctypes.c_int]),
            ("lieconv_set_sgemm", [p]),
            ("lieconv_bn_affine", [p, p, ctypes.c_double, n, p, p, ctypes.c_float, p, p, p, p, p, ctypes.c_float]),
            ("lieconv_bn_affine_grad", [p, p, ctypes.c_double, n, p, ctypes.c_float, p, p, p, p, p]),
            ("lieconv_mlp_forward", [p, n, n, ctypes.c_int, p, p, p, p, n, p, p, p, p, n, p]),
            ("lieconv_mlp_backward", [p, p, n, n, p, p, p, p, p, n, p, p, p, p, p, p, p, p, p, n, p]),
        ):
            fn = getattr(dll, name)
            fn.argtypes, fn.restype = args, None
        dll.lieconv_bmm_fast.argtypes, dll.lieconv_bmm_fast.restype = [], ctypes.c_int
        sgemm = _torch_sgemm()
        _state["sgemm"] = sgemm is not None
        if sgemm is not None:
            dll.lieconv_set_sgemm(sgemm)
        return dll
    return None


def _compile(cxx: str, out: Path) -> None:
    """The sources compiled side by side (one compiler per source: the cores share the work), then linked."""
    with tempfile.TemporaryDirectory() as work:
        objs = [Path(work) / f"{src.stem}.o" for src in _SOURCES]
        with open(Path(work) / "log", "wb") as log:  # a file, not a pipe: no compiler blocks on its output
            jobs = [
                subprocess.Popen([cxx, *_FLAGS, "-c", str(src), "-o", str(obj)], stdout=log, stderr=log)
                for src, obj in zip(_SOURCES, objs)
            ]
            codes = []
            for job in jobs:
                try:
                    codes.append(job.wait(timeout=300))
                except subprocess.TimeoutExpired:
                    job.kill()
                    codes.append(-1)
        if any(codes):
            raise subprocess.SubprocessError("the native kernels did not compile")
        subprocess.run([cxx, *_FLAGS, *map(str, objs), "-o", str(out)], check=True, capture_output=True, timeout=120)


def _torch_sgemm() -> int | None:
    """The address of the BLAS ``sgemm_`` that torch's own CPU library exports (MKL in the x86-64
    builds), or None: the kernel MLP's native loops call it, so their products are torch's."""
    suffix = ".dylib" if platform.system() == "Darwin" else ".so"
    try:
        return ctypes.cast(
            ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / f"libtorch_cpu{suffix}")).sgemm_, ctypes.c_void_p
        ).value
    except (OSError, AttributeError):
        return None


def compiler() -> str | None:
    """The C++ compiler the kernels are built with: ``$CXX``, else ``c++`` / ``g++`` on the PATH, or None."""
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def _library() -> ctypes.CDLL | None:
    if "lib" in _state:  # built (or found missing) once: no lock on the hot path
        return _state["lib"]
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

    _split(rows, parts, run)
    return out


def draw(near: Tensor, seeds: Tensor, counts: Tensor, K: int) -> tuple[Tensor, Tensor] | None:
    """K of each query's candidates, uniformly without replacement: (points (B, m, K) int64, ok (B, m, K)
    bool), or None where the native kernel does not run (not CPU int64, no library).

    Candidate c < counts[b] of query (b, i) is point near[b, i, c]; it gets the key
    ``lieconv.random.hash_pairs(seeds[b, i], point)`` and the points of the K largest keys are drawn,
    in ascending point order (independent of the candidates' order); past the candidates points are 0 and ok False.
    Shapes: near (B, m, k) int64, seeds (B, m) int64, counts (B,) int64."""
    ok_types = all(t.device.type == "cpu" and t.dtype == torch.int64 for t in (near, seeds, counts))
    lib = _library() if ok_types and near.numel() > 0 else None
    if lib is None:
        return None
    near, seeds, counts = near.contiguous(), seeds.contiguous(), counts.contiguous()
    B, m, k = near.shape
    out = near.new_empty(B, m, K)
    ok = torch.empty(B, m, K, dtype=torch.bool)
    parts = max(1, min(torch.get_num_threads(), B))

    def run(a: int, b: int) -> None:  # examples a:b
        lib.lieconv_draw(
            _ptr(near, a, m * k),
            b - a,
            m,
            k,
            _ptr(seeds, a, m),
            _ptr(counts, a, 1),
            K,
            _ptr(out, a, m * K),
            _ptr(ok, a, m * K),
        )

    _split(B, parts, run)
    return out, ok


#: the kernel numbers of ``LieGroup.native_distance`` (``_native/distance.cpp``): "euclid" by its
#: number of coordinates, "se2" on (theta, t1, t2)
_KINDS = {("euclid", 1): 1, ("euclid", 2): 2, ("euclid", 3): 3, ("se2", 3): 16}


def _kind(kind: str | None, *tensors: Tensor) -> tuple[ctypes.CDLL | None, int]:
    """(library, kernel number) when ``kind`` has a kernel for these float32 CPU tensors' last axis."""
    if kind is None or any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return None, 0
    number = _KINDS.get((kind, tensors[0].shape[-1]), 0)
    return (_library(), number) if number else (None, 0)


def distance(kind: str | None, u: Tensor, v: Tensor) -> Tensor | None:
    """The group distance of ``kind`` between u and v (broadcast over the leading axes), float32, or
    None where no kernel runs (not float32 on CPU, another kind or width, no library).

    Shapes: u (..., E), v (..., E) -> broadcast(...) contiguous."""
    lib, number = _kind(kind, u, v)
    if lib is None or u.shape[-1] != v.shape[-1]:
        return None
    shape = torch.broadcast_shapes(u.shape[:-1], v.shape[:-1])
    out = torch.empty(shape, dtype=torch.float32)
    if out.numel() == 0:
        return out
    full = (*shape, u.shape[-1]) if shape else (1, u.shape[-1])
    ue, ve = u.expand(full), v.expand(full)
    dims = max(1, len(shape))
    i64 = ctypes.c_int64 * dims
    us, vs = i64(*ue.stride()[:-1]), i64(*ve.stride()[:-1])
    size = i64(*full[:-1])
    u_at, v_at = ue.data_ptr(), ve.data_ptr()
    lib.lieconv_distance(number, u_at, ue.stride(-1), us, v_at, ve.stride(-1), vs, dims, size, out.data_ptr())
    return out


def farthest(
    kind: str | None,
    elems: Tensor,
    mask: Tensor | None,
    m: int,
    first: Tensor,
    inv_step: Tensor,
    cap: int,
    rows_dtype: torch.dtype | None,
) -> tuple[Tensor, Tensor, Tensor | None] | None:
    """The farthest-point loop of ``lieconv.neighbors`` on the distances of ``kind`` (see
    ``distance``), or None where no kernel runs.

    From ``first`` (Bg,) each step takes the point with the largest running minimum of
    ``round(d * inv_step)`` (padding, ``~mask``, keeps -1 and is never taken; the lowest index among
    equal ones) and lowers the minima by its distances.  Returns idx (Bg, m) int64, ok (Bg, m)
    bool (the first point exists / a step's minimum was > 0) and with ``rows_dtype`` each step's
    rounded distances clamped to [0, cap] (NaN: cap), (Bg, m, N).

    Shapes: elems (Bg, N, E) float32, mask (Bg, N) bool or None (all real), inv_step (Bg,) float32."""
    lib, number = _kind(kind, elems, inv_step)
    if lib is None or m <= 0:
        return None
    Bg, N, _ = elems.shape
    planes = elems.movedim(-1, 0).contiguous()  # (E, Bg, N)
    mask_u8 = None if mask is None else mask.to(torch.uint8).contiguous()
    first, inv_step = first.to(torch.int64).contiguous(), inv_step.contiguous()
    idx = torch.empty(Bg, m, dtype=torch.int64)
    ok = torch.empty(Bg, m, dtype=torch.bool)
    rows = None if rows_dtype is None else torch.empty(Bg, m, N, dtype=rows_dtype)
    wide = int(rows_dtype == torch.int64)
    parts = max(1, min(torch.get_num_threads(), Bg))

    def run(a: int, b: int) -> None:  # examples a:b
        lib.lieconv_farthest(
            number,
            planes.data_ptr(),
            Bg * N,
            a,
            b,
            N,
            _ptr(mask_u8),
            m,
            first.data_ptr(),
            inv_step.data_ptr(),
            cap,
            idx.data_ptr(),
            ok.data_ptr(),
            _ptr(rows),
            wide,
        )

    _split(Bg, parts, run)
    return idx, ok, rows


def nearest_draw(
    buckets: Tensor,
    mask: Tensor | None,
    allin: Tensor | None,
    qmask: Tensor,
    counts: Tensor,
    seeds: Tensor,
    K: int,
) -> tuple[Tensor, Tensor] | None:
    """The dense neighbour search on rounded distances and its draw in one pass per query: the
    ``counts[b]`` real points of smallest (bucket, index) of each query, then ``draw``'s K of them
    (ascending points), or None where the kernel does not run (not int32 CPU rows, no library).

    ``mask`` (Bg, N): the real points (None: all); ``allin`` (Bg,) bool: examples whose candidates
    are all their real points (no ranking; None: none); ``qmask`` (Bg, m): the real queries.
    Shapes: buckets (Bg, m, N) int32 (each row contiguous), counts (Bg,) int64, seeds (Bg, m) int64
    -> (points (Bg, m, K) int64, ok (Bg, m, K) bool)."""
    cpu = all(t.device.type == "cpu" for t in (buckets, qmask, counts, seeds))
    rows_ok = buckets.dtype == torch.int32 and buckets.stride(-1) == 1 and buckets.stride(1) == buckets.shape[-1]
    lib = _library() if cpu and rows_ok and seeds.dtype == torch.int64 and buckets.numel() > 0 else None
    if lib is None:
        return None
    Bg, m, N = buckets.shape
    seeds = seeds if seeds.stride(-1) == 1 else seeds.contiguous()
    q8 = qmask.to(torch.uint8).contiguous()
    m8 = None if mask is None else mask.to(torch.uint8).contiguous()
    a8 = None if allin is None else allin.to(torch.uint8).contiguous()
    counts = counts.to(torch.int64).contiguous()
    out = torch.empty(Bg, m, K, dtype=torch.int64)
    ok = torch.empty(Bg, m, K, dtype=torch.bool)
    parts = max(1, min(torch.get_num_threads(), Bg))

    def run(a: int, b: int) -> None:  # examples a:b
        lib.lieconv_nearest_draw(
            _ptr(buckets, a, buckets.stride(0)),
            b - a,
            m,
            N,
            buckets.stride(0),
            _ptr(m8, a, N),
            _ptr(a8, a, 1),
            _ptr(q8, a, m),
            m,
            _ptr(counts, a, 1),
            _ptr(seeds, a, seeds.stride(0)),
            seeds.stride(0),
            K,
            _ptr(out, a, m * K),
            _ptr(ok, a, m * K),
        )

    _split(Bg, parts, run)
    return out, ok


def _pool(workers: int) -> ThreadPoolExecutor:
    with _lock:
        if _state.get("workers", 0) < workers:
            _state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lieconv-select")
            _state["workers"] = workers
        return _state["pool"]


# ------------------------------------------------------------------ the kernel MLP's row passes
def _native_rows(*tensors: Tensor | None) -> ctypes.CDLL | None:
    """The library when every given tensor is a contiguous float32 CPU tensor (None: absent), else None."""
    for t in tensors:  # is_cpu / dtype identity: the cheap forms of these checks (they run per chunk)
        if t is not None and not (t.is_cpu and t.dtype is torch.float32 and t.is_contiguous()):
            return None
    return _library()


def _ptr(t: Tensor | None, row: int = 0, width: int = 0) -> int | None:
    """The address of row ``row`` of a (R, width) tensor (None for None)."""
    return None if t is None else t.data_ptr() + row * width * t.element_size()


def _by_rows(rows: int, run) -> None:
    """run(a, b, part) over row ranges, ``_parts(rows)`` of them (one per thread)."""
    _split(rows, _parts(rows), run, with_part=True)


def _sums(target: tuple[Tensor, Tensor] | None, parts: int) -> list[tuple[Tensor, Tensor]] | None:
    if target is None:
        return None
    if parts == 1:
        return [target]
    return [(torch.zeros_like(target[0]), torch.zeros_like(target[1])) for _ in range(parts)]


def _parts(rows: int) -> int:
    """Row ranges a pass is split into: one per torch thread, of at least 16 * ``_ROWS_PER_THREAD`` rows."""
    return max(1, min(torch.get_num_threads(), rows // (16 * _ROWS_PER_THREAD)))


def _reduce(target: tuple[Tensor, Tensor] | None, partial: list[tuple[Tensor, Tensor]] | None) -> None:
    if target is not None and partial is not None and partial[0][0] is not target[0]:
        for a, b in partial:
            target[0].add_(a)
            target[1].add_(b)


def swish(t: Tensor, scale: Tensor | None, shift: Tensor | None, mask: Tensor | None, out: Tensor | None = None):
    """``x = silu(t * scale + shift) * mask`` (the batch norm's affine, Swish and the mask in one pass).

    Shapes: t (R, d); scale, shift (d,) or None (1, 0); mask (R, 1) of 0/1 or None (every row) -> (R, d)
    (into ``out`` when given)."""
    R, d = t.shape
    out = torch.empty_like(t) if out is None else out
    lib = _native_rows(t, scale, shift, mask, out)
    if lib is None:
        y = t if scale is None else t * scale
        y = y if shift is None else y + shift
        torch.ops.aten.silu.out(y, out=out)
        return out if mask is None else out.mul_(mask)

    def run(a: int, b: int, _: int) -> None:
        lib.lieconv_swish(_ptr(t, a, d), b - a, d, _ptr(scale), _ptr(shift), _ptr(mask, a, 1), _ptr(out, a, d))

    _by_rows(R, run)
    return out


def moments_(t: Tensor, s1: Tensor, s2: Tensor) -> None:
    """``s1 += sum_r t_r``, ``s2 += sum_r t_r^2`` (column sums, accumulated in float64).

    Shapes: t (R, d); s1, s2 (d,) float64, updated in place."""
    R, d = t.shape
    lib = _native_rows(t)
    if lib is None or s1.dtype != torch.float64 or s2.dtype != torch.float64:
        s1 += t.sum(0, dtype=s1.dtype)
        s2 += (t * t).sum(0, dtype=s2.dtype)
        return
    parts = _parts(R)
    partial = _sums((s1, s2), parts)

    def run(a: int, b: int, k: int) -> None:
        lib.lieconv_moments(_ptr(t, a, d), b - a, d, _ptr(partial[k][0]), _ptr(partial[k][1]))

    _by_rows(R, run)
    _reduce((s1, s2), partial)


def swish_grad(
    g: Tensor,
    t: Tensor,
    scale: Tensor | None,
    shift: Tensor | None,
    mask: Tensor | None,
    out: Tensor,
    x_out: Tensor | None = None,
    sums: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """The gradient through ``swish``: ``out = g * mask * silu'(y)`` with ``y = t * scale + shift``
    and ``silu'(y) = s (1 + y (1 - s))``, s = sigmoid(y); with ``x_out`` also ``swish`` itself
    (``silu(y) * mask``: one sigmoid serves both), with ``sums`` also
    ``sums[0] += sum_r out_r * t_r`` and ``sums[1] += sum_r out_r`` (the gradients of the scale and the
    shift, float64).  ``out`` may be ``g``.

    Shapes: g, t, out, x_out (R, d); scale, shift (d,) or None; mask (R, 1) or None."""
    R, d = t.shape
    lib = _native_rows(g, t, scale, shift, mask, out, x_out)
    if lib is None or (sums is not None and sums[0].dtype != torch.float64):
        y = t if scale is None else t * scale
        y = y if shift is None else y + shift
        if x_out is not None:
            torch.ops.aten.silu.out(y, out=x_out)
            if mask is not None:
                x_out.mul_(mask)
        gm = g if mask is None else g * mask
        torch.ops.aten.silu_backward.grad_input(gm, y, grad_input=out)
        if sums is not None:
            sums[0].add_((out * t).sum(0, dtype=sums[0].dtype))
            sums[1].add_(out.sum(0, dtype=sums[1].dtype))
        return out
    parts = _parts(R)
    partial = _sums(sums, parts)

    def run(a: int, b: int, k: int) -> None:
        ga, gc = (None, None) if partial is None else (_ptr(partial[k][0]), _ptr(partial[k][1]))
        lib.lieconv_swish_grad(
            _ptr(g, a, d),
            _ptr(t, a, d),
            b - a,
            d,
            _ptr(scale),
            _ptr(shift),
            _ptr(mask, a, 1),
            _ptr(out, a, d),
            _ptr(x_out, a, d),
            ga,
            gc,
        )

    _by_rows(R, run)
    _reduce(sums, partial)
    return out


def norm_grad(g: Tensor, t: Tensor, scale: Tensor, d1: Tensor, d2: Tensor, mask: Tensor | None, out: Tensor) -> Tensor:
    """The gradient of a batch norm's input t from that of its output and of its statistics:
    ``out = g * scale + mask * d1 + 2 t * d2`` (d1, d2: the gradients of the sums ``S1 = sum_r t_r``,
    ``S2 = sum_r t_r^2``).  ``out`` may be ``g``.

    Shapes: g, t, out (R, d); scale, d1, d2 (d,); mask (R, 1) or None."""
    R, d = t.shape
    lib = _native_rows(g, t, scale, d1, d2, mask, out)
    if lib is None:
        res = torch.addcmul(d1 if mask is None else mask * d1, g, scale)
        return torch.addcmul(res, t, 2 * d2, out=out)

    def run(a: int, b: int, _: int) -> None:
        lib.lieconv_norm_grad(
            _ptr(g, a, d), _ptr(t, a, d), b - a, d, _ptr(scale), _ptr(d1), _ptr(d2), _ptr(mask, a, 1), _ptr(out, a, d)
        )

    _by_rows(R, run)
    return out


def _doubles(*tensors: Tensor | None) -> bool:
    """Whether every given tensor (None: absent) is a contiguous float64 CPU tensor (the sums)."""
    return all(t is None or (t.is_cpu and t.dtype is torch.float64 and t.is_contiguous()) for t in tensors)


def _mlp_lib(*tensors: Tensor | None) -> ctypes.CDLL | None:
    """The library when the kernel MLP's loops run natively on these tensors: built with torch's
    ``sgemm_``, one thread (with more, the Python loops split each chunk's passes over the threads),
    every tensor contiguous float32 on the CPU."""
    lib = _native_rows(*tensors)
    return lib if lib is not None and _state.get("sgemm") and torch.get_num_threads() == 1 else None


def mlp_forward(
    h: Tensor,
    act: tuple[Tensor | None, Tensor | None] | None,
    w: Tensor | None,
    weight: Tensor,
    bias: Tensor | None,
    sums: tuple[Tensor, Tensor] | None,
    out: Tensor,
    chunk: int,
) -> bool:
    """One kernel-MLP layer over chunks of rows: ``out = x weight^T (+ bias)`` with ``x = swish(h, *act, w)``
    (``act`` None: x = h) and, with ``sums``, the column sums of out and out^2 added to them
    (``lieconv.nn.kernels._layer``); False (nothing written) where it does not run natively.

    Shapes: h (R, d_in), w (R, 1) or None, weight (d_out, d_in), bias (d_out,), out (R, d_out) (may be h
    when act is given and the widths agree), sums two (d_out,) float64."""
    scale, shift = (None, None) if act is None else act
    lib = _mlp_lib(h, scale, shift, w, weight, bias, out)
    if lib is None or not _doubles(*(sums or ())):
        return False
    (R, din), dout = h.shape, weight.shape[0]
    scratch = h.new_empty(min(R, chunk), din) if act is not None else None
    s1, s2 = (None, None) if sums is None else sums
    lib.lieconv_mlp_forward(
        h.data_ptr(), R, din, int(act is not None), _ptr(scale), _ptr(shift), _ptr(w), weight.data_ptr(), dout,
        _ptr(bias), _ptr(s1), _ptr(s2), out.data_ptr(), chunk, _ptr(scratch),
    )  # fmt: skip
    return True


def mlp_backward(
    G: Tensor,
    t: Tensor | None,
    norm: tuple[Tensor, Tensor, Tensor] | None,
    w: Tensor | None,
    weight: Tensor,
    below: tuple[Tensor, Tensor | None, Tensor | None, Tensor, tuple[Tensor, Tensor] | None] | None,
    x0: Tensor | None,
    acc: tuple[Tensor, Tensor | None],
    chunk: int,
) -> bool:
    """One layer of the kernel MLP's backward over chunks of rows (``lieconv.nn.kernels._chunked_backward``
    with every t kept); False (nothing written) where it does not run natively.

    G (R, d_out): dL/dy_l, overwritten with dL/dt_l = ``norm_grad(G, t, *norm, w)`` (``norm`` = (scale, d1, d2)
    of a batch-norm layer, with t = t_l) or left as it is (norm None); ``below`` = (t_(l-1), scale,
    shift, Gn, sums) for l > 0: Gn (R, d_in) = swish_grad(dt @ weight, t_(l-1), scale, shift, w) (Gn may
    be t's storage when the widths agree), with the column sums into ``sums``; x0 (R, d_in) the first
    layer's input (l = 0); ``acc`` = (accT (d_in, d_out), accb (d_out,) or None): += x^T dt, += sum_r dt."""
    scale, d1, d2 = (None, None, None) if norm is None else norm
    tp, bscale, bshift, Gn, nsums = (None,) * 5 if below is None else below
    accT, accb = acc
    lib = _mlp_lib(G, t, scale, d1, d2, w, weight, tp, bscale, bshift, Gn, x0, accT, accb)
    if lib is None or not _doubles(*(nsums or ())):
        return False
    R, dout = G.shape
    din = weight.shape[1]
    scratch = G.new_empty(min(R, chunk), din) if below is not None else None
    ns1, ns2 = (None, None) if nsums is None else nsums
    lib.lieconv_mlp_backward(
        G.data_ptr(), _ptr(t), R, dout, _ptr(scale), _ptr(d1), _ptr(d2), _ptr(w), weight.data_ptr(), din, _ptr(tp),
        _ptr(bscale), _ptr(bshift), _ptr(Gn), _ptr(ns1), _ptr(ns2), _ptr(x0), accT.data_ptr(), _ptr(accb), chunk,
        _ptr(scratch),
    )  # fmt: skip
    return True


def _stats_lib(s1: Tensor, s2: Tensor, *floats: Tensor | None) -> ctypes.CDLL | None:
    """The library when the batch-norm statistics run natively: float64 sums, float32 parameters."""
    return _native_rows(*floats) if _doubles(s1, s2) else None


def bn_affine(
    s1: Tensor,
    s2: Tensor,
    n: int,
    weight: Tensor,
    bias: Tensor,
    eps: float,
    offset: Tensor | None = None,
    running: tuple[Tensor, Tensor] | None = None,
    momentum: float = 0.0,
) -> tuple[Tensor, Tensor] | None:
    """(scale, shift) of a batch norm from the column sums S1, S2 of n >= 1 rows (``_native/norm.cpp``:
    mean S1 / n, biased variance, scale = weight (var + eps)^(-1/2), shift = bias - mean scale), with
    ``running`` = (mean, var) buffers moved by ``momentum`` towards (mean + offset, unbiased var) when
    n > 1; None where it does not run (no graph: the caller's torch formula serves autograd).

    Shapes: s1, s2 (d,) float64; weight, bias, offset, the buffers (d,) float32 -> two (d,) float32."""
    rm, rv = (None, None) if running is None else running
    lib = _stats_lib(s1, s2, weight, bias, offset, rm, rv) if n >= 1 else None
    if lib is None:
        return None
    scale, shift = torch.empty_like(weight), torch.empty_like(weight)
    lib.lieconv_bn_affine(
        s1.data_ptr(), s2.data_ptr(), float(n), weight.shape[0], weight.data_ptr(), bias.data_ptr(), eps,
        _ptr(offset), scale.data_ptr(), shift.data_ptr(), _ptr(rm), _ptr(rv), momentum,
    )  # fmt: skip
    return scale, shift


def bn_affine_grad(
    s1: Tensor, s2: Tensor, n: int, weight: Tensor, eps: float, gs: Tensor, gc: Tensor
) -> tuple[Tensor, Tensor, Tensor] | None:
    """The derivatives of ``bn_affine``'s (scale, shift) from (gs, gc), their gradients: (dL/dweight,
    dL/dS1, dL/dS2) (the gradient of bias is gc itself), or None where it does not run.

    Shapes: s1, s2 (d,) float64; weight, gs, gc (d,) float32 -> (d,) float32, two (d,) float64."""
    lib = _stats_lib(s1, s2, weight, gs, gc) if n >= 1 else None
    if lib is None:
        return None
    gw, d1, d2 = torch.empty_like(weight), torch.empty_like(s1), torch.empty_like(s1)
    lib.lieconv_bn_affine_grad(
        s1.data_ptr(), s2.data_ptr(), float(n), weight.shape[0], weight.data_ptr(), eps, gs.data_ptr(),
        gc.data_ptr(), gw.data_ptr(), d1.data_ptr(), d2.data_ptr(),
    )  # fmt: skip
    return gw, d1, d2


def swish_grad2(h: Tensor, g: Tensor, y: Tensor, want_g: bool = True, want_y: bool = True):
    """The derivatives of ``g silu'(y)`` given ``h``, the gradient of that product: ``(h silu'(y),
    h g silu''(y))`` with ``silu''(y) = s (1 - s) (2 + y (1 - 2 s))``, s = sigmoid(y) (None where not
    wanted), one sigmoid for both.  Shapes: h, g, y alike (any shape) -> the same."""
    lib = _native_rows(h, g, y) if h.shape == g.shape == y.shape else None
    if lib is None:
        s = torch.sigmoid(y)
        dg = torch.ops.aten.silu_backward(h, y) if want_g else None
        if not want_y:
            return dg, None
        v = torch.mul(s, s).neg_().add_(s)  # s (1 - s)
        return dg, s.mul_(-2).add_(1).mul_(y).add_(2).mul_(v).mul_(g).mul_(h)
    n = y.numel()
    dg, dy = (torch.empty_like(y) if w else None for w in (want_g, want_y))

    def run(a: int, b: int, _: int) -> None:
        lib.lieconv_swish_grad2(_ptr(h, a, 1), _ptr(g, a, 1), _ptr(y, a, 1), b - a, _ptr(dg, a, 1), _ptr(dy, a, 1))

    _by_rows(n, run)
    return dg, dy


def index_add_(out: Tensor, idx: Tensor, src: Tensor) -> Tensor:
    """``out.index_add_(0, idx, src)``: ``out[idx[i]] += src[i]`` in the order of i (every index in
    [0, R_out): the caller's own indices; ``torch`` checks them where the native loop does not run).

    Shapes: out (R_out, d), idx (R,) int64, src (R, d) (its rows any distance apart) -> out."""
    d = out.shape[1] if out.dim() == 2 else -1
    ok = (
        idx.dtype == torch.int64 and idx.device.type == "cpu" and idx.is_contiguous() and src.shape == (idx.shape[0], d)
    )
    # src: float32 rows of contiguous values, any distance apart (a slice of a wider gradient)
    ok = ok and src.is_cpu and src.dtype is torch.float32 and (src.stride(1) == 1 or d == 1) and src.stride(0) >= d
    lib = _native_rows(out) if ok else None
    if lib is None:
        return out.index_add_(0, idx, src)
    n_out = out.shape[0]
    parts = max(1, min(torch.get_num_threads(), n_out // _ROWS_PER_THREAD, idx.shape[0] // (16 * _ROWS_PER_THREAD)))
    ld = src.stride(0)

    def run(a: int, b: int) -> None:  # destination rows a:b
        lib.lieconv_index_add(out.data_ptr(), a, b, idx.data_ptr(), src.data_ptr(), idx.shape[0], d, ld)

    _split(n_out, parts, run)
    return out


def gather_columns(src: Tensor, cols: Tensor, m: int) -> Tensor:
    """``src[:, :m].gather(2, cols[:, None, :].expand(B, m, n))``: the first m rows of each example with
    their columns picked by cols (the farthest-point rows of a subsampled layer's points;
    ``_native/scatter.cpp`` for int32 rows on the CPU, ``torch.gather`` else; every index the caller's own).

    Shapes: src (B, >= m, N), cols (B, n) int64 in [0, N) -> (B, m, n)."""
    B, n = cols.shape
    ok = src.is_cpu and src.dtype is torch.int32 and src.stride(2) == 1 and cols.dtype is torch.int64
    lib = _library() if ok and cols.is_cpu and src.shape[1] >= m else None
    if lib is None:
        return src[:, :m].gather(2, cols[:, None, :].expand(B, m, n))
    cols = cols.contiguous()
    out = src.new_empty(B, m, n)
    lib.lieconv_gather_columns(src.data_ptr(), src.stride(0), src.stride(1), cols.data_ptr(), B, m, n, out.data_ptr())
    return out


def _contract_lib(rows: Tensor, idx: Tensor, s: Tensor, *out: Tensor | None) -> ctypes.CDLL | None:
    """The library when ``gather_contract(_grad)`` runs on these tensors (float32 CPU, contiguous,
    int64 indices, 16 or 32 kernel channels), else None."""
    if s.dim() != 3 or s.shape[2] not in (16, 32) or idx.dtype != torch.int64 or idx.device.type != "cpu":
        return None
    if not idx.is_contiguous() or idx.numel() != s.shape[0] * s.shape[1] or rows.dim() != 2:
        return None
    return _native_rows(rows, s, *out)


def gather_contract(rows: Tensor, idx: Tensor, s: Tensor, out: Tensor) -> Tensor | None:
    """``z_g = sum_k rows[idx[g K + k]]^T s[g, k]`` into ``out``, or None where the kernel does not run.

    Shapes: rows (R, C), idx (n K,) int64 in [0, R), s (n, K, H) with H 16 or 32 -> out (n, C, H)."""
    lib = _contract_lib(rows, idx, s, out)
    if lib is None:
        return None
    n, K, H = s.shape
    C = rows.shape[1]
    parts = max(1, min(torch.get_num_threads(), n // 64))

    def run(a: int, b: int) -> None:  # groups a:b
        lib.lieconv_gather_contract(
            rows.data_ptr(), C, _ptr(idx, a, K), _ptr(s, a, K * H), b - a, K, H, _ptr(out, a, C * H)
        )

    _split(n, parts, run)
    return out


def gather_contract_grad(
    rows: Tensor,
    idx: Tensor,
    s: Tensor,
    dz: Tensor | None,
    z: Tensor | None = None,
    ds: Tensor | None = None,
    grad_rows: Tensor | None = None,
) -> bool:
    """The gradients of ``gather_contract`` from ``dz = dL/dz``: z again into ``z``, ``ds[g, k] =
    rows[idx[g K + k]] dz_g`` into ``ds`` and ``grad_rows[idx[g K + k]] += dz_g s[g, k]`` (in the order of
    (g, k)), each where given; False (nothing written) where the kernel does not run.

    Shapes: rows, grad_rows (R, C), idx (n K,), s, ds (n, K, H), dz, z (n, C, H)."""
    lib = _contract_lib(rows, idx, s, dz, z, ds, grad_rows)
    if lib is None or (dz is None and (ds is not None or grad_rows is not None)):
        return False
    n, K, H = s.shape
    R, C = rows.shape
    parts = max(1, min(torch.get_num_threads(), n // 64))

    def run(a: int, b: int, lo: int, hi: int, own: bool, scatter: bool) -> None:  # groups a:b, rows lo:hi
        lib.lieconv_gather_contract_grad(
            rows.data_ptr(),
            C,
            _ptr(idx, a, K),
            _ptr(s, a, K * H),
            b - a,
            K,
            H,
            _ptr(dz, a, C * H),
            _ptr(z, a, C * H) if own else None,
            _ptr(ds, a, K * H) if own else None,
            _ptr(grad_rows) if scatter else None,
            lo,
            hi,
        )

    if parts == 1:
        run(0, n, 0, R, True, True)
        return True
    if z is not None or ds is not None:  # per group: split the groups
        _split(n, parts, lambda a, b: run(a, b, 0, 0, True, False))
    if grad_rows is not None:  # a sum over groups per row: split the rows (each part reads every group)
        _split(R, parts, lambda lo, hi: run(0, n, lo, hi, False, True))
    return True


#: run ``bmm`` where the CPU has no AVX-512 too (its kernels are written for 16-float registers: on
#: narrower ones ``torch.bmm`` is faster); tests set it to check the kernels on any machine
BMM_ANYWHERE = False


def bmm(a: Tensor, b: Tensor, out: Tensor, *, trans_a: bool = False, trans_b: bool = False, accumulate: bool = False):
    """``out_i = op(a_i) @ op(b_i)`` (``accumulate``: ``+=``), op the transpose of the last two axes where
    asked; ``out``, or None where the kernel does not run (then nothing is written).

    Shapes: op(a) (n, m, k), op(b) (n, k, p), out (n, m, p): float32 CPU tensors whose last axis is
    contiguous as stored (any row and batch strides: slices of a batch need no copy), p a multiple of
    16 (``trans_b``: k a multiple of 16), not both transposed, and an AVX-512 CPU (``BMM_ANYWHERE``)."""
    lib = _library() if a.is_cpu and a.dtype is torch.float32 else None
    if lib is None or (trans_a and trans_b) or not (BMM_ANYWHERE or lib.lieconv_bmm_fast()):
        return None
    for t in (a, b, out):
        if t.dim() != 3 or not t.is_cpu or t.dtype is not torch.float32 or (t.stride(2) != 1 and t.shape[2] > 1):
            return None
    n, m, p = out.shape
    k = a.shape[1] if trans_a else a.shape[2]
    if (a.shape[0], b.shape[0]) != (n, n) or (a.shape[2] if trans_a else a.shape[1]) != m:
        return None
    if (b.shape[2], b.shape[1]) != (k, p) if trans_b else (b.shape[1], b.shape[2]) != (k, p):
        return None
    if (k if trans_b else p) % 16 or min(n, m, p) == 0:
        return None
    if k == 0:
        return out if accumulate else out.zero_()
    parts = max(1, min(torch.get_num_threads(), n // 8))
    (sa, ra), (sb, rb), (so, ro) = (t.stride()[:2] for t in (a, b, out))

    def run(i: int, j: int) -> None:  # matrices i:j
        at, bt, ot = (t.data_ptr() + i * st * 4 for t, st in ((a, sa), (b, sb), (out, so)))
        if trans_b:
            lib.lieconv_bmm_nt(at, sa, ra, bt, sb, rb, ot, so, ro, j - i, m, k, p, accumulate)
        else:
            sar, sak = (1, ra) if trans_a else (ra, 1)
            lib.lieconv_bmm_nn(at, sa, sar, sak, bt, sb, rb, ot, so, ro, j - i, m, k, p, accumulate)

    _split(n, parts, run)
    return out


def _split(n: int, parts: int, run, *, with_part: bool = False) -> None:
    """run(a, b) (``with_part``: run(a, b, part)) over ``parts`` ranges of 0:n, one per thread of the pool."""
    if parts == 1:  # the common case, kept lean: it runs once per chunk of rows
        run(0, n, 0) if with_part else run(0, n)
        return
    bounds = [n * i // parts for i in range(parts + 1)]
    args = (bounds[:-1], bounds[1:], range(parts)) if with_part else (bounds[:-1], bounds[1:])
    list(_pool(parts).map(run, *args))
