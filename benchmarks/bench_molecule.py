"""Time and peak resident memory of one QM9 training step of MoleculeLieResNet in the paper's configuration.

k = 1536, 6 bottleneck blocks, batch 75 molecules, L1 loss, Adam; T(3) (nbhd 100, fill 1, one lift
sample) and SE(3) (alpha 0.2, nbhd 25, fill 1/2, 4 lift samples) — the presets of
``lieconv.tasks.qm9``.  The molecules are the first 75 of a seeded shuffle of the QM9 training split
when its processed cache exists (``lieconv.datasets.qm9``, never downloaded here); otherwise they are
drawn: atom counts from a normal of mean 18 and sd 3 rounded and clipped to QM9's 3-29 atoms (QM9:
mean 18.0 atoms), species H/C/N/O/F with QM9-like frequencies, positions a Gaussian blob of
radius ~ n^(1/3) Å.  ``--source`` says which in the output.

    python benchmarks/bench_molecule.py [--steps 2] [--repeats 3] [--baseline 301b6b0] [--k 1536]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import device, main_cases, time_steps

#: case -> (group, group kwargs, nbhd, fill, liftsamples), the paper's per-group options
CASES = {"T3": ("T3", {}, 100, 1.0, 1), "SE3x4": ("SE3", {"alpha": 0.2}, 25, 0.5, 4)}


def molecule_batch(batch: int, seed: int = 0):
    """(positions (B, n, 3), features (B, n, 15), mask (B, n), source) of ``batch`` molecules."""
    import torch

    from lieconv.datasets.qm9 import collate_molecules, featurize

    try:
        from lieconv.datasets.qm9 import QM9Dataset

        ds = QM9Dataset("train", targets=["homo"], auto_install=False)
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:batch]
        b = collate_molecules([ds[int(i)] for i in idx])
        return b["positions"], b["features"], b["mask"], "QM9 train (cache)"
    except Exception:
        pass
    g = torch.Generator().manual_seed(seed)
    sizes = (18 + 3 * torch.randn(batch, generator=g)).round().clamp(3, 29).long()
    n = int(sizes.max())
    species = torch.tensor([1, 6, 7, 8, 9])
    freq = torch.tensor([0.51, 0.35, 0.055, 0.08, 0.005])
    charges = species[torch.multinomial(freq, batch * n, replacement=True, generator=g)].view(batch, n)
    mask = torch.arange(n) < sizes.unsqueeze(1)
    charges = charges * mask
    positions = torch.randn(batch, n, 3, generator=g) * sizes.view(-1, 1, 1).float() ** (1 / 3) * mask.unsqueeze(-1)
    return positions, featurize(charges), mask, "drawn (QM9-like sizes)"


def run_case(name: str, args: argparse.Namespace) -> dict:
    import torch

    from lieconv.groups import get_group
    from lieconv.models.molecule import MoleculeLieResNet

    gname, gkw, nbhd, fill, lifts = CASES[name]
    torch.manual_seed(0)
    model = MoleculeLieResNet(
        15, group=get_group(gname, **gkw), k=args.k, num_layers=6, nbhd=nbhd, fill=fill, liftsamples=lifts
    )
    dev = device(args)
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    pos, feat, mask, source = molecule_batch(args.batch)
    target = torch.randn(args.batch, generator=torch.Generator().manual_seed(1))
    pos, feat, mask, target = (t.to(dev) for t in (pos, feat, mask, target))

    def step() -> None:
        opt.zero_grad()
        (model(pos, feat, mask) - target).abs().mean().backward()
        opt.step()

    timed = time_steps(step, args)
    return {
        **timed,
        "source": source,
        "atoms": int(mask.sum()),
        "padded": int(mask.numel()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per process after the warm-up (default 2)")
    ap.add_argument("--batch", type=int, default=75, help="molecules per batch (default 75)")
    ap.add_argument("--k", type=int, default=1536, help="channels (default 1536, the paper's)")
    main_cases(
        __file__,
        list(CASES),
        run_case,
        ap,
        title="QM9 MoleculeLieResNet (paper configuration), one training step (forward + backward + Adam)",
    )


if __name__ == "__main__":
    main()
