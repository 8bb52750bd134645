"""Time and peak resident memory of one forward + backward pass of a LieResNet on large clouds.

A batch of 2 random clouds of N points in R^3 (default N = 10,000), LieResNet(k=32, 2 blocks,
ds_frac=0.5, num_nbhd=16, fill=0.01), for T(3) and for SE(3) with two lift samples (2N group
elements per cloud).  Shows that memory stays bounded (no N x N tensor) and where the quadratic
neighbour search starts to dominate the time.  Each configuration runs in its own subprocess.

    python benchmarks/bench_large_cloud.py [--points 10000] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = [("T3", 1), ("SE3", 2)]


def run_one(group: str, liftsamples: int, points: int, threads: int) -> dict:
    import torch

    from lieconv import Points
    from lieconv.nn import LieResNet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = LieResNet(1, 4, group=group, k=32, num_layers=2, num_nbhd=16, fill=0.01, ds_frac=0.5,
                    liftsamples=liftsamples)
    cloud = Points.from_coords(torch.randn(2, points, 3), torch.randn(2, points, 1))
    t0 = time.perf_counter()
    net(cloud).sum().backward()
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return {"group": group, "liftsamples": liftsamples, "points": points, "threads": threads,
            "fwd_bwd_s": seconds, "peak_rss_gb": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10000, help="points per cloud (default 10000)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--one", nargs=2, metavar=("GROUP", "LIFTSAMPLES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.points, args.threads)))
        return
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    print(f"{'group':<8}{'points':>8}{'elements':>10}{'fwd+bwd (s)':>14}{'peak RSS (GB)':>16}")
    for g, ls in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--one", g, str(ls), "--points", str(args.points),
                              "--threads", str(args.threads)], capture_output=True, text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{g + ' x' + str(ls):<8}{r['points']:>8}{r['points'] * ls:>10}{r['fwd_bwd_s']:>14.1f}"
              f"{r['peak_rss_gb']:>16.2f}", flush=True)


if __name__ == "__main__":
    main()
