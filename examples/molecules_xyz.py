"""Molecules from your own ``.xyz`` files through ``MoleculeLieResNet``.

An ``.xyz`` file holds one molecule: the number of atoms, a comment line, then one line per atom,
``symbol x y z`` in Angstrom. This script reads such files, turns them into the padded batch the
model takes (positions, the 15 QM9 species features, mask), fits a small SE(3)-invariant model to
a property written on each file's comment line (here ``dipole_D=...``, the dipole moment in Debye),
and checks that its predictions do not change when the molecules are rotated and moved.

Three molecules are a toy training set: the point is the data path, which is the same for a model
trained on QM9 (``lieconv train qm9``).

    python examples/molecules_xyz.py                          # the files in examples/molecules/
    python examples/molecules_xyz.py my_mols/*.xyz --steps 300
    python examples/molecules_xyz.py --tiny                   # a few seconds (smoke test)
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from lieconv import Points, assert_equivariant
from lieconv.datasets.qm9 import SYMBOLS, featurize
from lieconv.datasets.transforms import random_so3
from lieconv.models import MoleculeLieResNet

HERE = Path(__file__).resolve().parent


def read_xyz(path: str | Path) -> tuple[list[str], torch.Tensor, str]:
    """``(symbols, positions (n, 3) in Angstrom, comment)`` of a single-molecule ``.xyz`` file."""
    lines = Path(path).read_text().splitlines()
    try:
        n = int(lines[0])
        atoms = [line.split() for line in lines[2 : 2 + n]]
        symbols = [a[0] for a in atoms]
        positions = torch.tensor([[float(v) for v in a[1:4]] for a in atoms], dtype=torch.float64)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}: not an .xyz file (atom count, comment, then 'symbol x y z' lines): {exc}") from None
    if positions.shape != (n, 3):
        raise ValueError(f"{path}: expected {n} atoms with 3 coordinates each, got {tuple(positions.shape)}")
    unknown = sorted(set(symbols) - set(SYMBOLS))
    if unknown:
        raise ValueError(f"{path}: elements {unknown} are not among the QM9 species {sorted(SYMBOLS)}")
    return symbols, positions, lines[1]


def batch_molecules(molecules: list[tuple[list[str], torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad molecules to the largest one: positions (B, n, 3), features (B, n, 15), mask (B, n)."""
    n = max(len(symbols) for symbols, _ in molecules)
    charges = torch.zeros(len(molecules), n, dtype=torch.long)  # 0 = padding
    positions = torch.zeros(len(molecules), n, 3, dtype=torch.float64)
    for b, (symbols, pos) in enumerate(molecules):
        charges[b, : len(symbols)] = torch.tensor([SYMBOLS[s] for s in symbols])
        positions[b, : len(symbols)] = pos
    return {"positions": positions, "features": featurize(charges).double(), "mask": charges > 0}


def property_from_comment(comment: str, key: str) -> float:
    match = re.search(rf"{re.escape(key)}=([-+0-9.eE]+)", comment)
    if match is None:
        raise ValueError(f"comment line {comment!r} has no '{key}=VALUE'")
    return float(match.group(1))


def random_rigid_motion(batch: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Rotate every molecule by a random rotation and move it by a random translation."""
    g = torch.Generator().manual_seed(seed)
    q = random_so3((len(batch["mask"]),), generator=g, dtype=torch.float64)  # Haar-uniform rotations
    shift = torch.randn(len(batch["mask"]), 1, 3, generator=g, dtype=torch.float64)
    moved = batch["positions"] @ q.transpose(-1, -2) + shift
    return dict(batch, positions=moved * batch["mask"].unsqueeze(-1))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="xyz files (default: examples/molecules/*.xyz)")
    parser.add_argument("--key", default="dipole_D", help="property on the comment line, as KEY=VALUE")
    parser.add_argument("--steps", type=int, default=150, help="training steps")
    parser.add_argument("--tiny", action="store_true", help="a few steps of a tiny model (smoke test)")
    args = parser.parse_args(argv)
    files = args.files or sorted((HERE / "molecules").glob("*.xyz"))
    torch.manual_seed(0)

    read = [read_xyz(f) for f in files]
    batch = batch_molecules([(symbols, pos) for symbols, pos, _ in read])
    target = torch.tensor([property_from_comment(c, args.key) for _, _, c in read], dtype=torch.float64)
    print(f"{len(files)} molecules, up to {batch['mask'].shape[1]} atoms; {args.key}: {target.tolist()}")

    # SE(3): invariant to rotations and translations; centring is then not needed.  bn=False: the
    # batch is tiny.  The group's stabilizer is sampled (liftsamples); fill=1 takes every atom.
    model = MoleculeLieResNet(
        15,
        group="SE3",
        k=16 if args.tiny else 64,
        num_layers=1 if args.tiny else 2,
        nbhd=8,
        fill=1.0,
        liftsamples=2,
        bn=False,
    ).double()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = 3 if args.tiny else args.steps
    for step in range(steps):
        loss = (model(batch["positions"], batch["features"], batch["mask"]) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % max(1, steps // 5) == 0:
            print(f"  step {step + 1}/{steps}: L1 {loss.item():.3f}")

    # The same molecules, rotated and moved.  SE(3) acts on R^3 with a stabilizer (the rotations
    # about a point), so the lift draws random rotations: one prediction is invariant in
    # distribution, and averaging over draws shrinks the Monte-Carlo noise.  Given the *same* lifted
    # draws (assert_equivariant acts on the lifted elements), the network is invariant to float64
    # precision.
    model.eval()
    moved = random_rigid_motion(batch, seed=1)
    draws = 2 if args.tiny else 16
    with torch.no_grad():
        pred, pred_moved = (
            torch.stack(
                [
                    model(b["positions"], b["features"], b["mask"], generator=torch.Generator().manual_seed(s))
                    for s in range(draws)
                ]
            ).mean(0)
            for b in (batch, moved)
        )
        points = Points(batch["positions"], batch["features"], batch["mask"])
        exact = assert_equivariant(model.net, model.group, points, num_samples=2)
    print(f"\n{'file':16s}{'target':>8s}{'predicted':>11s}{'rotated+moved':>15s}")
    for f, t, p, pm in zip(files, target.tolist(), pred.tolist(), pred_moved.tolist()):
        print(f"{f.name:16s}{t:8.2f}{p:11.3f}{pm:15.3f}")
    gap = float((pred - pred_moved).abs().max())
    print(f"\nlargest change under rotation + translation, mean of {draws} draws: {gap:.1e}")
    print(f"with the same lifted draws (assert_equivariant): {exact:.1e}")
    return {"final_l1": loss.item(), "invariance_gap": gap, "invariance_error": exact}


if __name__ == "__main__":
    main()
