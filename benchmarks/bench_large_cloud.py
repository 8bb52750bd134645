"""Time and peak resident memory of one forward + backward pass of a LieResNet on large clouds.

A batch of 2 random clouds of N points in R^3 (standard normal), LieResNet(1, 4, k=32,
num_layers=2, ds_frac=0.5, num_nbhd=16, fill=0.01) for T(3) and for SE(3) with two lift samples
(2N group elements per cloud).  Each case runs in a fresh subprocess (its own ru_maxrss), on one
thread by default.  Prints a table, the fitted exponent of time in N for T(3), and optionally
writes JSON.

    python benchmarks/bench_large_cloud.py [--cases T3-1e4,T3-1e5] [--threads 1] [--json out.json]
        [--baseline REV]   # also run revision REV (a temporary git worktree) on the cases of at
                           # most --baseline-max points, interleaved, and print the time ratios

Cases are named GROUP-N (``CASES``); ``run_case(name, args)`` runs one in this process and returns
a dict with ``step_s`` and ``peak_rss_gb``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import device

#: name -> (group, lift samples, points per cloud)
CASES = {
    "T3-1e4": ("T3", 1, 10_000),
    "T3-3e4": ("T3", 1, 30_000),
    "T3-1e5": ("T3", 1, 100_000),
    "SE3x2-1e4": ("SE3", 2, 10_000),
    "SE3x2-1e5": ("SE3", 2, 100_000),
}


def run_case(name: str, args: argparse.Namespace) -> dict:
    """One forward + backward of case ``name`` in this process: {step_s, peak_rss_gb, ...}."""
    import torch

    from lieconv import Points
    from lieconv.nn import LieResNet

    group, liftsamples, points = CASES[name]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = device(args)
    net = LieResNet(1, 4, group=group, k=32, num_layers=2, num_nbhd=16, fill=0.01, ds_frac=0.5, liftsamples=liftsamples)
    net = net.to(dev)
    cloud = Points.from_coords(torch.randn(2, points, 3).to(dev), torch.randn(2, points, 1).to(dev))
    cuda = dev.type == "cuda"
    if cuda:  # a warm-up pass first (CUDA context, kernels, allocator); the second is timed
        net(cloud).sum().backward()
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    t0, c0 = time.perf_counter(), time.process_time()
    net(cloud).sum().backward()
    if cuda:
        torch.cuda.synchronize(dev)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    extra = {"peak_device_gb": torch.cuda.max_memory_allocated(dev) / 1024**3} if cuda else {}
    return {
        **extra,
        "case": name,
        "group": group,
        "liftsamples": liftsamples,
        "points": points,
        "threads": args.threads,
        "step_s": seconds,
        "cpu_s": cpu,
        "peak_rss_gb": rss,
    }


def _subprocess(name: str, args: argparse.Namespace, src: str | None = None) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(args.threads))
    if src is not None:  # a baseline checkout: its package, this script
        env["PYTHONPATH"] = src
    out = subprocess.run(
        [sys.executable, __file__, "--one", name, "--threads", str(args.threads), "--device", args.device],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _exponent(rows: list[dict]) -> float | None:
    """Least-squares slope of log(time) against log(N) over the T(3) rows."""
    pts = [(math.log(r["points"]), math.log(r["step_s"])) for r in rows if r["group"] == "T3"]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated cases (default all: {','.join(CASES)})")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument(
        "--device",
        default="cpu",
        help="torch device, e.g. cuda (default cpu: one pass; on a GPU a warm-up pass, then the timed one, "
        "and the memory column is the GPU's peak allocation)",
    )
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--baseline", default=None, metavar="REV", help="also run git revision REV on the small cases")
    ap.add_argument("--baseline-max", type=int, default=10_000, help="largest N run for the baseline (default 10000)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args)))
        return
    names = [c for c in args.cases.split(",") if c]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        ap.error(f"--cases: unknown {unknown}; choose from {sorted(CASES)}")
    base_src, tmp = None, None
    if args.baseline:
        tmp = tempfile.mkdtemp(prefix="lieconv-base-")
        subprocess.run(
            ["git", "worktree", "add", "--detach", tmp, args.baseline],
            check=True,
            capture_output=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        base_src = os.path.join(tmp, "src")
    rows, base = [], {}
    try:
        for name in names:  # interleaved: the baseline right after the working tree, per case
            rows.append(_subprocess(name, args))
            r = rows[-1]
            print(f"{name:<10} {r['step_s']:8.1f} s (cpu {r['cpu_s']:.1f} s) {r['peak_rss_gb']:6.2f} GB", flush=True)
            if base_src and CASES[name][2] <= args.baseline_max:
                base[name] = _subprocess(name, args, base_src)
                b = base[name]
                print(
                    f"{name:<10} {b['step_s']:8.1f} s (cpu {b['cpu_s']:.1f} s) {b['peak_rss_gb']:6.2f} GB  "
                    f"(baseline {args.baseline})",
                    flush=True,
                )
    finally:
        if tmp:
            subprocess.run(
                ["git", "worktree", "remove", "--force", tmp],
                capture_output=True,
                cwd=os.path.dirname(os.path.abspath(__file__)),
            )
    print(f"\nLarge clouds: 2 clouds, fwd+bwd, {args.threads} thread(s)")
    mem, mem_name = ("peak_rss_gb", "RSS") if args.device == "cpu" else ("peak_device_gb", "GPU")
    head = f"{'case':<11}{'points':>8}{'elements':>10}{'fwd+bwd (s)':>13}{'peak ' + mem_name + ' (GB)':>15}"
    print(head + (f"{'baseline (s)':>14}{'ratio':>8}" if base else ""))
    for r in rows:
        line = f"{r['case']:<11}{r['points']:>8}{r['points'] * r['liftsamples']:>10}{r['step_s']:>13.1f}{r[mem]:>15.2f}"
        if r["case"] in base:
            b = base[r["case"]]
            line += f"{b['step_s']:>14.1f}{b['step_s'] / r['step_s']:>7.1f}x"
        print(line)
    k = _exponent(rows)
    if k is not None:
        print(f"T(3): time grows as N^{k:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "baseline": base, "t3_exponent": k}, f, indent=1)


if __name__ == "__main__":
    main()
