"""Time and peak resident memory of one HLieResNet training step on the spring task.

The paper's configuration (C.4): HLieResNet with k = 384 channels and 4 bottleneck blocks, a
batch of 200 systems of 6 bodies, one training segment of 1 + 4 states (dt = 0.01) integrated by
the model (RK4: 4 steps x 4 stages = 16 evaluations of the learned dV/dq; leapfrog: 4 + 1), the
MSE loss backpropagated through the integrator (double backward) and an Adam step.

Cases (``CASES``): ``T2-rk4``, ``SO2*-rk4``, ``T2-leapfrog``, ``SO2*-leapfrog``, and
``T2-rk4-recompute``, ``SO2*-rk4-recompute`` (``HLieResNet(recompute=True)``: every stage's graph
recomputed in the backward pass, memory for time; not in the default selection).  Each case runs in
a fresh subprocess (``run_case(name, args) -> dict`` with ``step_s`` = median over the timed steps
after one warm-up step, and ``peak_rss_gb`` = the subprocess's ``ru_maxrss``, imports included),
so its memory is its own; ``cpu_s`` is the median process CPU time of a step, steadier than the
wall-clock ``step_s`` on a shared machine.

    python benchmarks/bench_springs.py [--cases T2-rk4 SO2*-rk4] [--steps 3] [--threads 1]
    python benchmarks/bench_springs.py --baseline 301b6b0 [--repeats 3]

``--baseline REV`` checks REV out in a temporary git worktree and runs every case of REV and of the
working tree alternately (``repeats`` rounds, fresh processes, baseline first in each round), then
prints the medians and the ratios working tree / baseline.  A revision whose springs task has no
leapfrog training is simply reported as failing for those cases.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import device, time_steps

ROOT = Path(__file__).resolve().parents[1]

#: name -> (HLieResNet group, integrator, recompute the stages in backward)
CASES: dict[str, tuple[str, str, bool]] = {
    "T2-rk4": ("T2", "rk4", False),
    "SO2*-rk4": ("SO2*", "rk4", False),
    "T2-leapfrog": ("T2", "leapfrog", False),
    "SO2*-leapfrog": ("SO2*", "leapfrog", False),
    "T2-rk4-recompute": ("T2", "rk4", True),
    "SO2*-rk4-recompute": ("SO2*", "rk4", True),
}


def _batch(n_systems: int, seed: int = 0):
    """A random training batch shaped like the spring data.

    z0 (B, 24), ts (5,), sys_params (B, 6, 2), target (B, 4, 24).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    q = 0.4 * torch.randn(n_systems, 6, 2, generator=g)
    p = 0.6 * torch.randn(n_systems, 6, 2, generator=g)
    z0 = torch.cat([q.flatten(1), p.flatten(1)], dim=1)
    m = 0.1 + 3 * torch.rand(n_systems, 6, generator=g)
    k = 5 * torch.rand(n_systems, 6, generator=g)
    target = z0[:, None] + 0.01 * torch.randn(n_systems, 4, z0.shape[1], generator=g)
    return z0, 0.01 * torch.arange(5.0), torch.stack([m, k], -1), target


def run_case(name: str, args: argparse.Namespace) -> dict:
    """One case in this process: build the model, time ``args.steps`` training steps after a warm-up."""
    import torch

    from lieconv.models.baselines import ModelDynamics
    from lieconv.models.hamiltonian import HLieResNet

    group, method, recompute = CASES[name]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kw = {"recompute": True} if recompute else {}  # a revision without the option fails this case
    dev = device(args)
    model = ModelDynamics(HLieResNet(group, k=args.k, num_layers=args.num_layers, **kw), method=method).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    z0, ts, sys_params, target = (t.to(dev) for t in _batch(args.systems))
    losses = []

    def step() -> None:
        opt.zero_grad()
        loss = (model(z0, ts, sys_params)[:, 1:] - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.detach().item())  # detached: no requires-grad conversion warning

    timed = time_steps(step, args)  # step_s, cpu_s (medians after a warm-up step), peak_rss_gb
    return {
        "case": name,
        "group": group,
        "integrator": method,
        "systems": args.systems,
        "k": args.k,
        "num_layers": args.num_layers,
        "threads": args.threads,
        "nfe": model.nfe,
        **timed,
        "loss": losses[-1],
    }


def _subprocess(src: Path, name: str, args: argparse.Namespace) -> dict:
    """``run_case`` of the package under ``src/`` in a fresh interpreter (1 process per measurement)."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(src / "src"))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        name,
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
        "--systems",
        str(args.systems),
        "--k",
        str(args.k),
        "--num-layers",
        str(args.num_layers),
        "--device",
        args.device,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(src))
    if out.returncode != 0:
        return {"case": name, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--cases",
        nargs="+",
        default=[c for c in CASES if not c.endswith("recompute")],
        choices=list(CASES),
        help="cases to run (default: all but the -recompute ones)",
    )
    ap.add_argument("--steps", type=int, default=3, help="timed steps per process (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--systems", type=int, default=200, help="systems per batch (default 200, the paper's)")
    ap.add_argument("--k", type=int, default=384, help="channels (default 384, the paper's)")
    ap.add_argument("--num-layers", type=int, default=4, help="bottleneck blocks (default 4, the paper's)")
    ap.add_argument(
        "--device", default="cpu", help="torch device, e.g. cuda (default cpu; on a GPU memory is its peak allocation)"
    )
    ap.add_argument("--baseline", metavar="REV", default=None, help="git revision to compare against, interleaved")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of fresh processes per case (default 3)")
    ap.add_argument("--json", default=None, help="also write all measurements to this JSON file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args)))
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below when killed
    trees = {"tree": ROOT}
    tmp = None
    if args.baseline:
        tmp = tempfile.mkdtemp(prefix="bench-springs-base-")
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", tmp, args.baseline], check=True, capture_output=True
        )
        trees = {"base": Path(tmp), "tree": ROOT}
    results: dict[str, dict[str, list[dict]]] = {t: {c: [] for c in args.cases} for t in trees}
    try:
        for rnd in range(args.repeats if args.baseline else 1):
            for case in args.cases:
                for label, src in trees.items():
                    r = _subprocess(src, case, args)
                    results[label][case].append(r)
                    msg = r.get("error") or (
                        f"step {r['step_s']:.3f} s (CPU {r['cpu_s']:.3f} s), peak RSS {r['peak_rss_gb']:.3f} GB"
                        + (f", GPU {r['peak_device_gb']:.3f} GB" if "peak_device_gb" in r else "")
                    )
                    print(f"round {rnd} {label:<5} {case:<14} {msg}", flush=True)
    finally:
        if tmp is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tmp], capture_output=True)

    print(
        f"\nHLieResNet training step: {args.systems} systems, k {args.k}, {args.num_layers} blocks, "
        f"{args.threads} thread(s); medians"
    )
    mem, mem_name = ("peak_rss_gb", "RSS") if args.device == "cpu" else ("peak_device_gb", "GPU")
    if args.baseline:
        head = (
            f"{'case':<15}{'base s':>9}{'tree s':>9}{'time x':>8}{'base CPU':>10}{'tree CPU':>10}{'CPU x':>7}"
            f"{'base GB':>9}{'tree GB':>9}{'mem x':>7}"
        )
        print(head + "\n" + "-" * len(head))
        for case in args.cases:
            b, t = results["base"][case], results["tree"][case]
            row = [(_median(b, k), _median(t, k)) for k in ("step_s", "cpu_s", mem)]
            print(
                f"{case:<15}"
                + "".join(f"{x:>{w}.3f}{y:>{w}.3f}{y / x:>{r}.2f}" for (x, y), w, r in zip(row, (9, 10, 9), (8, 7, 7)))
            )
        print(f"(base = {args.baseline}; x = tree / base)")
    else:
        head = f"{'case':<15}{'nfe':>5}{'step (s)':>10}{'CPU (s)':>10}{'peak ' + mem_name + ' (GB)':>15}"
        print(head + "\n" + "-" * len(head))
        for case in args.cases:
            rows = results["tree"][case]
            nfe = rows[0].get("nfe", "-") if rows else "-"
            print(
                f"{case:<15}{nfe:>5}{_median(rows, 'step_s'):>10.3f}{_median(rows, 'cpu_s'):>10.3f}"
                f"{_median(rows, mem):>15.3f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
