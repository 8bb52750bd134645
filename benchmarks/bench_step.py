"""Time and peak resident memory of one training step of the paper's RotMNIST configuration.

ImageLieResNet(k=128, total_ds=0.1, fill=0.1, nbhd=25, 6 blocks) on the 648 pixels inside the
radius-15 crop, batch 25, forward + backward + Adam step, for T(2) and for SE(2) with two lift
samples, on the fixed-grid fast path and on the per-example path.  Each configuration runs in a
fresh subprocess so that its peak RSS (ru_maxrss) is its own.  Prints a table and writes JSON.

    python benchmarks/bench_step.py [--steps 3] [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = [("T2", 1, "fixed-grid"), ("T2", 1, "per-example"), ("SE2", 2, "fixed-grid"), ("SE2", 2, "per-example")]


def run_one(group: str, liftsamples: int, path: str, steps: int, batch: int, threads: int) -> dict:
    import torch

    from lieconv.models.image import ImageLieResNet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ImageLieResNet(1, 10, group=group, k=128, total_ds=0.1, fill=0.1, nbhd=25, num_layers=6,
                           liftsamples=liftsamples)
    model.net.shared_geometry = None if path == "fixed-grid" else False
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    images = torch.rand(batch, 1, 28, 28)
    labels = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and is not counted
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB
    return {"group": group, "liftsamples": liftsamples, "path": path, "batch": batch, "threads": threads,
            "points": model.num_points(), "step_s_median": statistics.median(times[1:]), "peak_rss_gb": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration (default 3)")
    ap.add_argument("--batch", type=int, default=25, help="batch size (default 25)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--one", nargs=3, metavar=("GROUP", "LIFTSAMPLES", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        g, ls, path = args.one
        print(json.dumps(run_one(g, int(ls), path, args.steps, args.batch, args.threads)))
        return
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    rows = []
    for g, ls, path in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--one", g, str(ls), path, "--steps", str(args.steps),
                              "--batch", str(args.batch), "--threads", str(args.threads)],
                             capture_output=True, text=True, env=env, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['group']:>4} x{r['liftsamples']}  {r['path']:<12} step {r['step_s_median']:.2f} s   "
              f"peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    print(f"\nRotMNIST step (batch {args.batch}, {rows[0]['points']} points, {args.threads} thread(s), "
          f"median of {args.steps}):")
    print(f"{'group':<8}{'path':<14}{'step (s)':>10}{'peak RSS (GB)':>16}")
    for r in rows:
        print(f"{r['group'] + ' x' + str(r['liftsamples']):<8}{r['path']:<14}{r['step_s_median']:>10.2f}"
              f"{r['peak_rss_gb']:>16.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
