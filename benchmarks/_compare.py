"""Shared driver of the benchmark scripts: fresh subprocesses, 1 thread, optional ``--baseline REV``.

A benchmark script defines named cases and a function ``run_case(name, args) -> dict`` that runs one
case in the current process and returns at least ``step_s`` (seconds) and ``peak_rss_gb``; then its
``main`` is three lines::

    from _compare import add_arguments, main_cases

    def main():
        ap = argparse.ArgumentParser(...); ap.add_argument(...)   # the script's own options
        main_cases(__file__, CASES, run_case, ap, title="...")

``main_cases`` adds ``--cases``, ``--repeats``, ``--threads``, ``--device``, ``--json``,
``--baseline REV`` and ``--ops N``; a ``run_case`` that times its steps with ``time_steps(step, args)``
then also reports, with ``--ops N``, the N operators one more step spends most time in (``OpTimes``).
``--device cuda`` (``device(args)`` gives the ``torch.device`` a case puts its model and data on):
``time_steps`` synchronises the device around every step and reports ``peak_device_gb``
(``torch.cuda.max_memory_allocated`` over the timed steps), which the table then shows as the memory.
Every case runs in a fresh ``python SCRIPT --one NAME ...`` subprocess (so ``ru_maxrss`` is its own)
with ``OMP_WAIT_POLICY=PASSIVE`` and the thread count forced through ``OMP_NUM_THREADS`` /
``MKL_NUM_THREADS`` and ``torch.set_num_threads``.  With ``--baseline REV`` a temporary
``git worktree`` of REV is created and every repeat of every case runs alternately for the working
tree (``PYTHONPATH=<tree>/src``) and for REV (``PYTHONPATH=<worktree of REV>/src``) — the *script*
always comes from the working tree, only the library differs — and the table shows the medians over
the repeats and the ratios new / baseline.  A case process calls ``lieconv.runtime.reuse_freed_memory``
when the library has it, as ``import lieconv`` does (``LIECONV_REUSE_MEMORY=0`` to measure without).
Interleaving matters on a shared machine: absolute
seconds drift by 2-3x over a day, ratios of interleaved medians do not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

__all__ = [
    "REPO",
    "OpTimes",
    "add_arguments",
    "baseline_worktree",
    "device",
    "main_cases",
    "peak_rss_gb",
    "run_subprocess",
    "time_steps",
]


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``, KiB on Linux) in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


class OpTimes:
    """Wall time per ATen operator while active (a ``TorchDispatchMode``: every operator call is timed
    where it runs, so a custom ``autograd.Function``'s work is not folded into one record the way
    ``torch.profiler``'s memory and self-time attribution folds it), keyed by (operator, where):
    ``forward``, ``no_grad`` (a forward without a graph: selection, recomputed forwards) or
    ``backward: <autograd node>``.  ``top(n)``: the n largest as dicts (op, where, ms, calls).
    The timing adds a Python call per operator: compare rows with each other, not with ``step_s``.
    Matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm`` and their in-place and ``out=`` forms) are
    also keyed by their operand shapes and report ``gflop`` (2 M K N per product) and ``gflops``, the
    rate they ran at: where a step's matmuls lose speed (small or strided operands) shows directly."""

    def __init__(self) -> None:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        self.ms: dict[tuple[str, str], float] = {}
        self.calls: dict[tuple[str, str], int] = {}
        self.flop: dict[tuple[str, str], float] = {}
        owner = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                t0 = time.perf_counter()
                out = func(*args, **(kwargs or {}))
                dt = time.perf_counter() - t0
                node = torch._C._current_autograd_node()
                if node is not None:
                    where = f"backward: {type(node).__name__}"
                else:
                    where = "forward" if torch.is_grad_enabled() else "no_grad"
                name, flop = str(func), _matmul_flop(func, args)
                if flop is not None:
                    shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor) and a.dim() >= 2]
                    name = f"{name} {' x '.join('x'.join(map(str, sh)) for sh in shapes)}"
                key = (name, where)
                owner.ms[key] = owner.ms.get(key, 0.0) + 1e3 * dt
                owner.calls[key] = owner.calls.get(key, 0) + 1
                if flop is not None:
                    owner.flop[key] = owner.flop.get(key, 0.0) + flop
                return out

        self._mode = _Mode()

    def __enter__(self) -> OpTimes:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)

    def top(self, n: int) -> list[dict]:
        rows = sorted(self.ms.items(), key=lambda kv: -kv[1])[:n]
        out = []
        for key, ms in rows:
            row = {"op": key[0], "where": key[1], "ms": ms, "calls": self.calls[key]}
            if key in self.flop:
                row["gflop"] = self.flop[key] / 1e9
                row["gflops"] = self.flop[key] / 1e6 / ms if ms > 0 else float("nan")
            out.append(row)
        return out

    def matmul_summary(self) -> dict:
        """All matrix products of the timed step: {ms, gflop, gflops} (their total time, work, rate)."""
        ms = sum(self.ms[k] for k in self.flop)
        flop = sum(self.flop.values())
        return {"ms": ms, "gflop": flop / 1e9, "gflops": flop / 1e6 / ms if ms > 0 else float("nan")}


_MATMULS = {"mm": 0, "addmm": 1, "addmm_": 1, "bmm": 0, "baddbmm": 1, "baddbmm_": 1}


def _matmul_flop(func, args) -> float | None:
    """2 M K N (times the batch) for a matrix-product operator, else None."""
    first = _MATMULS.get(func.__name__.split(".")[0])
    if first is None or len(args) < first + 2:
        return None
    a, b = args[first], args[first + 1]
    if not (hasattr(a, "shape") and hasattr(b, "shape")) or a.dim() != b.dim() or a.dim() not in (2, 3):
        return None
    batch = a.shape[0] if a.dim() == 3 else 1
    return 2.0 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]


def device(args: argparse.Namespace):
    """The ``torch.device`` of ``args.device`` (default cpu); a clear error when it is not there."""
    import torch

    dev = torch.device(getattr(args, "device", None) or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available here")
    return dev


def _synchronize(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


#: untimed steps before the timed ones: the first creates the optimizer's state, and the second is
#: the first whose activations share the heap with it (a QM9 step of the paper's network faults in
#: ~220 MB of fresh pages there, ~1 s, once); from the third on a training step is in steady state
WARMUP_STEPS = 2


def time_steps(step: Callable[[], None], args: argparse.Namespace) -> dict:
    """Run ``step`` ``args.warmup`` (default ``WARMUP_STEPS``) + ``args.steps`` times, timing the last
    ``args.steps``: {step_s: median seconds, cpu_s: median process CPU seconds, peak_rss_gb (the whole
    process, warm-up included), and on a GPU peak_device_gb (from the second step on)}; with
    ``args.ops`` > 0, one more step under ``OpTimes`` adds ``ops`` (its ``args.ops`` most expensive
    operators; on a GPU the host-side time of launching them) and ``ops_matmul`` (all matrix products:
    time, GFLOP, rate)."""
    import torch

    if args.steps < 1:
        raise ValueError(f"--steps: expected at least 1 timed step, got {args.steps}")
    warmup = getattr(args, "warmup", WARMUP_STEPS)
    if warmup < 1:
        raise ValueError(f"--warmup: expected at least 1 untimed step, got {warmup}")
    dev = device(args)
    times, cpu = [], []
    for i in range(warmup + args.steps):
        if i == 1 and dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        _synchronize(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        _synchronize(dev)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    times, cpu = times[warmup:], cpu[warmup:]
    out = {"step_s": statistics.median(times), "cpu_s": statistics.median(cpu), "peak_rss_gb": peak_rss_gb()}
    if dev.type == "cuda":
        out["peak_device_gb"] = torch.cuda.max_memory_allocated(dev) / 1024**3
    if getattr(args, "ops", 0):  # after the peak is read: the timer's own bookkeeping is not counted
        with OpTimes() as timer:
            step()
        out["ops"], out["ops_total_ms"] = timer.top(args.ops), sum(timer.ms.values())
        out["ops_matmul"] = timer.matmul_summary()
    return out


def add_arguments(
    ap: argparse.ArgumentParser, cases: Sequence[str], default_cases: Sequence[str] | None = None
) -> None:
    """The options every benchmark script shares (``default_cases``: what ``--cases`` defaults to, all)."""
    default = list(cases if default_cases is None else default_cases)
    ap.add_argument(
        "--cases",
        nargs="+",
        choices=list(cases),
        default=default,
        metavar="CASE",
        help=f"cases to run, of {', '.join(cases)} (default: {'all' if default == list(cases) else ' '.join(default)})",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fresh processes per case (and per revision); the table shows medians (default 1)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads (default 1)")
    ap.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_STEPS,
        help=f"untimed steps before the timed ones (default {WARMUP_STEPS}: the optimizer's state exists and the "
        "heap has its steady-state size)",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="torch device of the model and data, e.g. cuda (default cpu); on a GPU the memory column is the "
        "peak of torch.cuda.max_memory_allocated",
    )
    ap.add_argument(
        "--baseline",
        metavar="REV",
        default=None,
        help="also run git revision REV (temporary worktree), interleaved, and print ratios",
    )
    ap.add_argument("--json", default=None, help="also write every raw result to this JSON file")
    ap.add_argument(
        "--ops",
        type=int,
        default=0,
        metavar="N",
        help="after the timed steps, one more step under an operator timer: print its N most expensive "
        "operators per case and revision (first repeat; default 0: off)",
    )
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)


@contextlib.contextmanager
def baseline_worktree(rev: str) -> Iterator[Path]:
    """A detached ``git worktree`` of ``rev`` in a temporary folder, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="lieconv-base-"))
    path = tmp / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path), rev], check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _forwarded(argv: Sequence[str]) -> list[str]:
    """The command line minus the driver's own options: what a case process gets besides ``--one``."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        key = a.split("=", 1)[0]
        if key in ("--repeats", "--baseline", "--json", "--one"):
            i += 1 if "=" in a else 2
        elif key == "--cases":
            i += 1
            while "=" not in a and i < len(argv) and not argv[i].startswith("-"):
                i += 1
        else:
            out.append(a)
            i += 1
    return out


def run_subprocess(script: str, case: str, src: Path, argv: Sequence[str], threads: int) -> dict:
    """Run one case of ``script`` in a fresh interpreter with ``src`` first on the path."""
    env = dict(
        os.environ,
        OMP_WAIT_POLICY="PASSIVE",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONPATH=str(src),
    )
    cmd = [sys.executable, script, "--one", case, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} ({src}) failed with exit status {proc.returncode}:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memory(r: dict) -> float:
    """A case's memory: the GPU's peak allocation when it ran on one, else the peak RSS."""
    return r.get("peak_device_gb", r["peak_rss_gb"])


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def main_cases(
    script: str,
    cases: Sequence[str],
    run_case: Callable[[str, argparse.Namespace], dict],
    ap: argparse.ArgumentParser,
    *,
    title: str,
    default_cases: Sequence[str] | None = None,
) -> list[dict]:
    """Parse the command line and either run one case here (``--one``) or drive all of them.

    A case process that fails is reported (its last line of stderr) and shown as failed in the table;
    the others still run.  Killed with SIGTERM, the driver exits with status 143 after removing the
    baseline worktree."""
    add_arguments(ap, cases, default_cases)
    ap.allow_abbrev = False  # _forwarded strips the driver's options by their full names
    args = ap.parse_args()
    if args.one is not None:
        import torch

        torch.set_num_threads(args.threads)
        try:  # what importing lieconv does (LIECONV_REUSE_MEMORY=0: off); absent in older revisions
            from lieconv.runtime import reuse_freed_memory
        except ImportError:
            reuse_freed_memory = None
        reused = bool(reuse_freed_memory and reuse_freed_memory())
        result = dict(run_case(args.one, args), reuse_freed_memory=reused)
        missing = {"step_s", "peak_rss_gb"} - set(result)
        if missing:
            raise RuntimeError(f"run_case({args.one!r}) returned no {sorted(missing)}")
        print(json.dumps(result))
        return [result]
    if args.repeats < 1:
        ap.error(f"--repeats: expected a positive int, got {args.repeats}")
    # a kill (SIGTERM, e.g. a time limit) unwinds like an error: the baseline worktree is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    argv = _forwarded(sys.argv[1:])
    script = str(Path(script).resolve())
    rows: list[dict] = []
    mem_name = "RSS" if args.device == "cpu" else "device memory"
    with contextlib.ExitStack() as stack:
        trees = [("new", REPO / "src")]
        if args.baseline:
            trees.append((args.baseline, stack.enter_context(baseline_worktree(args.baseline)) / "src"))
        for rep in range(args.repeats):
            for case in args.cases:
                for label, src in trees if rep % 2 == 0 else trees[::-1]:
                    try:
                        r = run_subprocess(script, case, src, argv, args.threads)
                    except RuntimeError as e:
                        last = (str(e).strip().splitlines() or ["failed"])[-1]
                        rows.append({"case": case, "rev": label, "repeat": rep, "error": last})
                        print(f"[{rep + 1}/{args.repeats}] {case:<24} {label:<10} failed: {last}", file=sys.stderr)
                        continue
                    rows.append(dict(r, case=case, rev=label, repeat=rep))
                    print(
                        f"[{rep + 1}/{args.repeats}] {case:<24} {label:<10} step {_fmt(r['step_s'])} s  "
                        f"peak {mem_name} {_memory(r):.2f} GB",
                        file=sys.stderr,
                        flush=True,
                    )
    print(
        f"\n{title} ({args.threads} thread(s), median of {args.repeats} fresh process(es) per case"
        + (f", interleaved with {args.baseline}" if args.baseline else "")
        + (f", device {args.device}" if args.device != "cpu" else "")
        + ")\n"
    )
    med: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "error" not in r:
            med.setdefault((r["case"], r["rev"]), []).append(r)
    if args.baseline:
        b = args.baseline
        print(
            f"| case | step (s) | step {b} (s) | time ratio | peak {mem_name} (GB) | peak {mem_name} {b} (GB) "
            "| memory ratio |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
    else:
        print(f"| case | step (s) | peak {mem_name} (GB) |")
        print("| --- | --- | --- |")
    for case in args.cases:
        new = _medians(med.get((case, "new")))
        if args.baseline:
            old = _medians(med.get((case, args.baseline)))
            ratios = [f"{new[0] / old[0]:.2f}", f"{new[1] / old[1]:.2f}"] if new and old else ["failed", "failed"]
            t = [_fmt(v[0]) if v else "failed" for v in (new, old)]
            m = [f"{v[1]:.2f}" if v else "failed" for v in (new, old)]
            print(f"| {case} | {t[0]} | {t[1]} | {ratios[0]} | {m[0]} | {m[1]} | {ratios[1]} |")
        else:
            print(f"| {case} | {_fmt(new[0]) if new else 'failed'} | {f'{new[1]:.2f}' if new else 'failed'} |")
    if args.ops:
        _print_ops(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


def _medians(rows: list[dict] | None) -> tuple[float, float] | None:
    """(median step seconds, median memory) of a case's successful runs, None when none succeeded."""
    if not rows:
        return None
    return statistics.median(r["step_s"] for r in rows), statistics.median(_memory(r) for r in rows)


def _print_ops(rows: list[dict]) -> None:
    """The operator tables of the first repeat of every case and revision (``--ops``)."""
    for r in rows:
        if r["repeat"] != 0 or not r.get("ops"):
            continue
        shown = sum(o["ms"] for o in r["ops"])
        print(
            f"\nTop operators, {r['case']} ({r['rev']}; one step: {r['ops_total_ms']:.0f} ms in all operators, "
            f"{shown:.0f} in these rows):\n"
        )
        mm = r.get("ops_matmul")
        if mm:
            print(f"Matrix products: {mm['ms']:.0f} ms, {mm['gflop']:.3g} GFLOP, {mm['gflops']:.1f} GFLOP/s.\n")
        print("| operator | where | ms | calls | GFLOP/s |")
        print("| --- | --- | --- | --- | --- |")
        for o in r["ops"]:
            rate = f"{o['gflops']:.1f}" if "gflops" in o else ""
            print(f"| `{o['op']}` | {o['where']} | {o['ms']:.1f} | {o['calls']} | {rate} |")
