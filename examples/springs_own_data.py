"""Train the springs task on trajectories of your own, through an ``.npz`` data file.

The spring models (``HLieResNet``, ``HFC``, ...) learn the dynamics of n bodies in the plane from
their states ``z = (q_1..q_n, p_1..p_n)`` and per-body parameters ``(m_i, k_i)``.  Here the
trajectories are not the paper's: they come from a system of our own, simulated by a small
integrator written below, springs with a rest length ``r0``,

    H(q, p) = sum_i |p_i|^2 / (2 m_i) + sum_{i<j} k_i k_j (|q_i - q_j| - r0)^2 / 2,

(whatever produced your trajectories — a simulator, measurements — only the array layout
matters).  The script

1. simulates whole trajectories of a few systems (leapfrog, float64);
2. writes them to ``OUT/data.npz`` in the documented format and trains an SE(2)-invariant
   ``HLieResNet`` (``--group SO2*``) on windows of 1 + 4 states cut from them, with
   ``lieconv.tasks.springs.fit_springs``;
3. prints the test MSE, and the equivalent ``lieconv train`` / ``lieconv eval`` commands.

    python examples/springs_own_data.py                 # a few minutes on a CPU
    python examples/springs_own_data.py --tiny          # seconds: a smoke test (the MSE is meaningless)
    python examples/springs_own_data.py --out runs/own  # keep the run folder (default: a temporary one)
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from lieconv.datasets.springs import load_springs_npz
from lieconv.tasks.springs import fit_springs

REST_LENGTH = 0.5


def forces(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``-dV/dq`` for springs of rest length ``r0`` between every pair: q (S, n, 2), k (S, n) -> (S, n, 2)."""
    diff = q[:, :, None] - q[:, None, :]  # (S, n, n, 2): q_i - q_j
    dist = diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    kij = (k[:, :, None] * k[:, None, :])[..., None]  # k_i k_j; the diagonal has diff = 0
    return -(kij * (dist - REST_LENGTH) * diff / dist).sum(2)


def simulate(n_systems: int, n_bodies: int, n_states: int, dt: float, seed: int) -> tuple:
    """Whole trajectories ``(z0 (S, D), ts (L,), z_target (S, L-1, D), sys_params (S, n, 2))``.

    Leapfrog (kick-drift-kick) with 20 substeps per recorded step: symplectic, so the energy of
    each system stays close to its initial value.  ``D = 2 * n * 2``: positions then momenta.
    """
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64)
    m = 0.5 + 1.5 * torch.rand(n_systems, n_bodies, generator=g, **f64)  # masses in (0.5, 2)
    k = 0.5 + 1.0 * torch.rand(n_systems, n_bodies, generator=g, **f64)  # spring constants k_i
    q = torch.randn(n_systems, n_bodies, 2, generator=g, **f64)
    p = 0.5 * torch.randn(n_systems, n_bodies, 2, generator=g, **f64)
    h, substeps = dt / 20, 20
    states = [torch.cat([q.flatten(1), p.flatten(1)], -1)]
    for _ in range(n_states - 1):
        for _ in range(substeps):
            p = p + 0.5 * h * forces(q, k)
            q = q + h * p / m[..., None]
            p = p + 0.5 * h * forces(q, k)
        states.append(torch.cat([q.flatten(1), p.flatten(1)], -1))
    z = torch.stack(states, 1)  # (S, L, D)
    ts = dt * torch.arange(n_states, **f64)  # one time grid shared by every item (or (S, L): one each)
    return z[:, 0], ts, z[:, 1:], torch.stack([m, k], -1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="seconds: tiny data and model (smoke test)")
    parser.add_argument("--out", default=None, help="run folder (default: a new temporary folder)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="lieconv_springs_own_")
    size = (
        dict(n_train=8, n_valid=4, n_test=4, bodies=3, states=9, epochs=1, k=8, num_layers=1, batch_size=8)
        if args.tiny
        else dict(n_train=200, n_valid=50, n_test=50, bodies=4, states=21, epochs=10, k=32, num_layers=2, batch_size=50)
    )
    dt = 0.05
    shape = dict(n_bodies=size["bodies"], n_states=size["states"], dt=dt)
    data = {
        "train": simulate(size["n_train"], seed=1, **shape),
        "valid": simulate(size["n_valid"], seed=2, **shape),
        "test": simulate(size["n_test"], seed=3, **shape),
    }
    print(f"simulated {size['n_train']} / {size['n_valid']} / {size['n_test']} trajectories of {size['bodies']} bodies")
    print(f"and {size['states']} states (dt = {dt}); training HLieResNet-SO2* in {out}")

    # Everything after `out` is a springs option, as on the command line (`lieconv train springs
    # --help` lists them).  data_chunk_len=5 cuts each stored trajectory into windows of 1 + 4
    # states (the paper's segments); the test MSE is over the 4 predicted states of each window.
    options = dict(
        model="HLieResNet",
        group="SO2*",
        epochs=size["epochs"],
        batch_size=size["batch_size"],
        k=size["k"],
        num_layers=size["num_layers"],
        data_chunk_len=5,
        rollout_systems=min(size["n_test"], 10),
        figures=not args.tiny,
        resume=False,
    )
    # After training, the task rolls the test systems out and reports relative errors of the state
    # and of the momenta (an SO2* model conserves linear and angular momentum, whatever the data);
    # its "energy" column is the paper's spring H, not the H of this system.
    summary = fit_springs(data, out=out, preset="quick", **options)  # writes OUT/data.npz, then trains

    # The file is an ordinary input of the task: what the task reads back, and the CLI equivalents.
    test = load_springs_npz(f"{out}/data.npz", "test", chunk_len=5)
    print(f"\n{len(test)} test windows; test MSE of the best checkpoint: {summary['test']['loss']:.3e}")
    flags = " ".join(f"--{name} {value}" for name, value in options.items() if name not in ("resume", "figures"))
    flags = flags.replace("SO2*", "'SO2*'")  # quoted for the shell
    print("\nthe same from the command line:")
    print(f"  lieconv train springs --preset quick --data {out}/data.npz {flags} --out {out} --no-resume")
    print(f"  lieconv eval springs --checkpoint {out}/checkpoints/best.ckpt --data {out}/data.npz")
    return {"out": out, "test_mse": summary["test"]["loss"], "summary": summary}


if __name__ == "__main__":
    main()
