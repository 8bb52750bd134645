"""Time and peak resident memory of one HLieResNet training step on the spring task.

The paper's configuration (C.4): HLieResNet with k = 384 channels and 4 bottleneck blocks, a
batch of 200 systems of 6 bodies, one training segment of 1 + 4 states (dt = 0.01) integrated by
the model (RK4: 4 steps x 4 stages = 16 evaluations of the learned dV/dq; leapfrog: 4 + 1), the
MSE loss backpropagated through the integrator (double backward) and an Adam step.

Cases (``CASES``): ``T2-rk4``, ``SO2*-rk4``, ``T2-leapfrog``, ``SO2*-leapfrog``, and
``T2-rk4-recompute``, ``SO2*-rk4-recompute`` (``HLieResNet(recompute=True)``: every stage's graph
recomputed in the backward pass, memory for time; not in the default selection).  The shared
driver (``_compare.main_cases``) runs each case in a fresh process: ``step_s`` is the median over the
timed steps after the warm-up (``--warmup``), ``cpu_s`` the median process CPU time of a step
(steadier than wall-clock on a shared machine; in ``--json``), ``peak_rss_gb`` the process's
``ru_maxrss``, imports included.

    python benchmarks/bench_springs.py [--cases T2-rk4 SO2*-rk4] [--steps 3] [--threads 1] [--ops 30]
    python benchmarks/bench_springs.py --baseline 301b6b0 [--repeats 3]

``--baseline REV`` runs every case of REV (a temporary git worktree) and of the working tree
alternately and prints the medians and the ratios working tree / REV; a case that fails in one of
them (a revision without leapfrog training or ``recompute``) is reported as failed there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import device, main_cases, time_steps

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

    timed = time_steps(step, args)  # step_s, cpu_s (medians after the warm-up), peak_rss_gb
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per process after the warm-up (default 3)")
    ap.add_argument("--systems", type=int, default=200, help="systems per batch (default 200, the paper's)")
    ap.add_argument("--k", type=int, default=384, help="channels (default 384, the paper's)")
    ap.add_argument("--num-layers", type=int, default=4, help="bottleneck blocks (default 4, the paper's)")
    main_cases(
        __file__,
        list(CASES),
        run_case,
        ap,
        title="Springs HLieResNet (paper configuration), one training step (integrator, double backward, Adam)",
        default_cases=[c for c in CASES if not c.endswith("recompute")],
    )


if __name__ == "__main__":
    main()
