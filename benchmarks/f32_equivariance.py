"""Count float32 failures of ``assert_equivariant`` over many random draws, per group.

Each draw is a fresh random cloud batch (``--batch`` examples of ``--points`` points, its own seed),
a fresh network (its own weights) and a fresh random group element; the check runs with
``assert_equivariant``'s default float32 tolerance.  Prints a table of failures / draws and the
largest error per group and model.  Run with the library under test first on the path:

    PYTHONPATH=src python benchmarks/f32_equivariance.py --draws 200
    PYTHONPATH=src python benchmarks/f32_equivariance.py --selection 20000   # selection flips only
    PYTHONPATH=src python benchmarks/f32_equivariance.py --cost   # what the float64 distances cost
"""

from __future__ import annotations

import argparse
import time

import torch

from lieconv import Points
from lieconv.groups import get_group
from lieconv.lifting import lift
from lieconv.nn import LieConv, LieResNet
from lieconv.testing import TOL, assert_equivariant


def random_points(group, B, n, seed, dtype=torch.float32) -> Points:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, group.space_dim, generator=gen, dtype=torch.float64)
    if "SQ" in group.name or group.name.startswith("Rx"):
        x = x.abs() + 0.2
    v = torch.randn(B, n, 2, generator=gen, dtype=torch.float64)
    return Points(x.to(dtype), v.to(dtype), torch.ones(B, n, dtype=torch.bool))


def make_net(group, model: str, seed: int, ns: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers = int(model[-1])
    return LieResNet(
        2, 3, group=group, k=16, num_layers=layers, num_nbhd=6, fill=0.5, ds_frac=0.6, liftsamples=ns, bn=True
    )


def count(name: str, model: str, draws: int, B: int, n: int) -> tuple[int, float, float]:
    group = get_group(name)
    ns = 3 if group.stabilizer_dim > 0 else 1
    fails, worst = 0, 0.0
    t0 = time.perf_counter()
    for d in range(draws):
        net = make_net(group, model, d, ns)
        pts = random_points(group, B, n, 10_000 + d)
        err = assert_equivariant(net, group, pts, num_samples=ns, ntrials=1, seed=d, atol=float("inf"))
        worst = max(worst, err)
        fails += err > TOL[torch.float32]
    return fails, worst, time.perf_counter() - t0


def selection_flips(name: str, examples: int, n: int, seed: int = 0, chunk: int = 500) -> int:
    """Examples (of ``examples``, each its own cloud and its own random g) whose first-layer
    selection (farthest points and Monte-Carlo neighbourhoods, same draws) differs between x and
    g x, with g x computed in float64 and rounded once to float32."""
    group = get_group(name)
    ns = 3 if group.stabilizer_dim > 0 else 1
    torch.manual_seed(seed)
    conv = LieConv(2, 3, group=group, num_nbhd=6, fill=0.5, ds_frac=0.6)
    flips = 0
    for c in range(0, examples, chunk):
        B = min(chunk, examples - c)
        pts = random_points(group, B, n, seed * 1_000_003 + c)
        x = lift(pts, group, ns, generator=torch.Generator().manual_seed(seed + c))
        g = group.sample(B, 1, generator=torch.Generator().manual_seed(seed + c + 1))  # float64
        gx = x.replace(elems=group.left_mul_elems(g, x.elems.double()).to(x.elems.dtype))
        s1 = conv.select(x, torch.Generator().manual_seed(seed + c + 2))
        s2 = conv.select(gx, torch.Generator().manual_seed(seed + c + 2))
        diff = (s1.nbhd_idx != s2.nbhd_idx).flatten(1).any(1)
        if s1.query_idx is not None:
            diff |= (s1.query_idx != s2.query_idx).any(1)
        flips += int(diff.sum())
    return flips


def selection_cost(group: str, liftsamples: int, repeats: int = 3) -> dict[str, float]:
    """Seconds (median of ``repeats``) of ``LieConv.select`` over every layer's input of the
    ``bench_step.py`` per-example network, with float64 distances (float32 inputs upcast by
    ``neighbors._precise``) and with float32 arithmetic (the library's choice), interleaved."""
    import statistics
    import sys
    from pathlib import Path

    import lieconv.neighbors as nb
    from lieconv.models.image import ImageLieResNet

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_step import distinct_clouds

    torch.manual_seed(0)
    model = ImageLieResNet(
        1, 10, group=group, k=128, total_ds=0.1, fill=0.1, nbhd=25, num_layers=6, liftsamples=liftsamples
    )
    g = torch.Generator().manual_seed(1)
    grid = model.to_points(torch.rand(25, 1, 28, 28, generator=g))
    mask = torch.ones(25, grid.coords.shape[1], dtype=torch.bool)
    pts = Points(distinct_clouds(model.coords, 25, g), grid.values, mask)
    inputs, select = [], LieConv.select
    LieConv.select = lambda self, x, generator=None: inputs.append((self, x)) or select(self, x, generator)
    try:
        with torch.no_grad():
            model.net(pts)
    finally:
        LieConv.select = select
    precise, times = nb._precise, {"float64": [], "float32": []}

    def upcast(t):
        return t.double() if t.dtype == torch.float32 else precise(t)

    try:
        for _ in range(repeats):
            for mode in times:
                nb._precise = upcast if mode == "float64" else precise
                t0 = time.perf_counter()
                for conv, x in inputs:
                    conv.select(x, torch.Generator().manual_seed(0))
                times[mode].append(time.perf_counter() - t0)
    finally:
        nb._precise = precise
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--points", type=int, default=24)
    p.add_argument("--groups", nargs="+", default=["SO2", "SE2", "RxSO2", "SO3", "SE3", "T3"])
    p.add_argument("--models", nargs="+", default=["resnet1", "resnet2"])
    p.add_argument("--selection", type=int, default=0, help="count first-layer selection flips over N examples")
    p.add_argument("--cost", action="store_true", help="time the selection of bench_step.py's per-example network")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.cost:
        print("| case | select, float64 distances (s) | float32 arithmetic (s) | ratio |")
        print("| --- | --- | --- | --- |")
        for group, ls in (("SE2", 2), ("T2", 1)):
            t = selection_cost(group, ls)
            f64, f32 = t["float64"], t["float32"]
            print(f"| {group}x{ls}-per-example | {f64:.3f} | {f32:.3f} | {f64 / f32:.2f} |")
        return
    if a.selection:
        print(f"| group | examples with a selection flip / {a.selection} (n={a.points}) | seconds |")
        print("| --- | --- | --- |")
        for name in a.groups:
            t0 = time.perf_counter()
            f = selection_flips(name, a.selection, a.points)
            print(f"| {name} | {f} | {time.perf_counter() - t0:.1f} |", flush=True)
        return
    print(f"| group | model | failures / draws (B={a.batch}, n={a.points}) | worst error | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for name in a.groups:
        for model in a.models:
            f, w, s = count(name, model, a.draws, a.batch, a.points)
            print(f"| {name} | {model} | {f} / {a.draws} | {w:.2e} | {s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
