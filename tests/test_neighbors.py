"""Farthest-point sampling and neighbourhoods: invariance, masks, chunking."""

from __future__ import annotations

import math

import pytest
import torch

import lieconv.neighbors as nb
from lieconv import Points
from lieconv.groups import get_group
from lieconv.lifting import lift


def cloud(B=2, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Points.from_coords(torch.randn(B, n, 2, generator=g, dtype=torch.float64))


def test_fps_spreads_points_and_masks_repeats():
    group = get_group("T2")
    p = cloud()
    mask = p.mask.clone()
    mask[1, 5:] = False
    x = lift(p.replace(mask=mask), group)
    idx, qmask = nb.farthest_point_indices(group, x.elems, x.orbits, x.mask, 10)
    assert idx.shape == (2, 10)
    assert qmask[0].all() and len(set(idx[0].tolist())) == 10
    assert qmask[1].sum() == 5 and set(idx[1][qmask[1]].tolist()) == set(range(5))
    # the second choice is the point farthest from the first
    d = (x.elems[0] - x.elems[0, idx[0, 0]]).norm(dim=-1)
    assert idx[0, 1] == d.argmax()


def test_neighborhoods_are_the_fill_nearest_and_respect_masks():
    group = get_group("T2")
    p = cloud(B=1, n=50)
    mask = p.mask.clone()
    mask[0, 40:] = False
    x = lift(p.replace(mask=mask), group)
    idx, nmask = nb.neighborhood_indices(
        group,
        x.elems,
        x.orbits,
        x.mask,
        x.elems,
        x.orbits,
        x.mask,
        num_nbhd=5,
        fill=0.25,
        generator=torch.Generator().manual_seed(0),
    )
    assert idx.shape == (1, 50, 5)
    assert not nmask[0, 40:].any()
    d = torch.cdist(x.elems[0, :40], x.elems[0, :40])
    cand = d.topk(10, largest=False).indices  # ceil(0.25 * 40) = 10 nearest real points
    for i in range(40):
        assert set(idx[0, i].tolist()) <= set(cand[i].tolist())
        assert len(set(idx[0, i].tolist())) == 5
    knn, kmask = nb.neighborhood_indices(
        group, x.elems, x.orbits, x.mask, x.elems, x.orbits, x.mask, num_nbhd=5, fill=0.25, knn=True
    )
    for i in range(40):
        assert set(knn[0, i].tolist()) == set(cand[i, :5].tolist())


def test_small_neighbourhood_masks_missing_members():
    group = get_group("T2")
    p = cloud(B=1, n=6)
    x = lift(p, group)
    idx, nmask = nb.neighborhood_indices(
        group,
        x.elems,
        x.orbits,
        x.mask,
        x.elems,
        x.orbits,
        x.mask,
        num_nbhd=5,
        fill=0.5,
        generator=torch.Generator().manual_seed(0),
    )
    assert (nmask.sum(-1) == 3).all()  # ceil(0.5 * 6) = 3 candidates only


def test_chunked_distances_give_the_same_neighbourhoods(monkeypatch):
    group = get_group("T2")
    x = lift(cloud(B=2, n=64), group)
    args = (group, x.elems, x.orbits, x.mask, x.elems, x.orbits, x.mask)
    ref = nb.neighborhood_indices(*args, num_nbhd=8, fill=0.3, knn=True)
    monkeypatch.setattr(nb, "_CHUNK_ELEMENTS", 64 * 2 * 3)  # a few queries per chunk
    small = nb.neighborhood_indices(*args, num_nbhd=8, fill=0.3, knn=True)
    assert torch.equal(ref[0], small[0]) and torch.equal(ref[1], small[1])


@pytest.mark.parametrize("example_random", [False, True])
def test_the_monte_carlo_draw_does_not_depend_on_its_chunks(monkeypatch, example_random):
    """One seed per query, drawn before the chunks: any chunk size draws the same neighbourhoods
    (search calls of 5 queries, draws of 2 within them: parts that end at a call's end)."""
    from lieconv.random import ExampleRandom

    group = get_group("SE2")
    x = lift(cloud(B=3, n=64), group, 2, generator=torch.Generator().manual_seed(0))
    args = (group, x.elems, x.orbits, x.mask, x.elems, x.orbits, x.mask)

    def draw():
        gen = ExampleRandom(4) if example_random else torch.Generator().manual_seed(4)
        return nb.neighborhood_indices(*args, num_nbhd=5, fill=0.3, generator=gen)

    ref = draw()
    monkeypatch.setattr(nb, "_DRAW_ELEMENTS", 3 * 39 * 2)  # two queries per chunk (k_max = 39)
    small = draw()
    assert torch.equal(ref[0], small[0]) and torch.equal(ref[1], small[1])
    monkeypatch.setattr(nb, "_NEAR_ELEMENTS", 3 * 39 * 5)  # five queries per search call
    small = draw()
    assert torch.equal(ref[0], small[0]) and torch.equal(ref[1], small[1])


def test_gather_points_broadcasts_shared_geometry():
    x = torch.arange(24.0).reshape(2, 4, 3)
    idx = torch.tensor([[[3, 1], [0, 0]]])
    out = nb.gather_points(x, idx)
    assert out.shape == (2, 2, 2, 3)
    assert torch.equal(out[1, 0, 0], x[1, 3])


# ------------------------------------------------------------------ exact pruning
BOUNDED = ["T2", "T3", "Trivial2", "Tx", "Rx", "SO2", "RxSO2", "SE2", "SO3", "SE3"]


def _clustered_cloud(G, B, n, gen, dtype):
    """Clusters of very different density plus a few far points, so boxes must widen."""
    centres = torch.randn(B, 4, G.space_dim, generator=gen, dtype=torch.float64) * 3
    which = torch.randint(0, 4, (B, n), generator=gen)
    spread = torch.tensor([0.05, 0.3, 1.0, 0.01], dtype=torch.float64)[which][..., None]
    x = centres.gather(1, which[..., None].expand(B, n, G.space_dim)) + spread * torch.randn(
        B, n, G.space_dim, generator=gen, dtype=torch.float64
    )
    x[:, :3] *= 20
    if G.name in ("RxSO(2)", "Rx"):
        x = x + 0.5 * torch.sign(x)  # away from the origin
    return x.to(dtype)


def _lifted_cloud(G, B, n, seed, dtype=torch.float64, last_real=None):
    """A lifted ``_clustered_cloud`` (2 lift samples where G has a stabilizer), the last example
    holding only its first ``last_real`` points when given."""
    gen = torch.Generator().manual_seed(seed)
    coords = _clustered_cloud(G, B, n, gen, dtype)
    mask = torch.ones(B, n, dtype=torch.bool)
    if last_real is not None:
        mask[-1, last_real:] = False
    return lift(Points.from_coords(coords, mask=mask), G, 2 if G.stabilizer_dim else 1, generator=gen)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", BOUNDED)
def test_pruned_selection_equals_brute_force(name, dtype, monkeypatch):
    monkeypatch.setattr(nb, "_DENSE_FRACTION", 1.0)  # the cell list even where all pairs would be cheaper
    G = get_group(name)
    ns = 2 if G.stabilizer_dim else 1
    x = _lifted_cloud(G, 2, 300, 3, dtype, last_real=250)
    qidx = torch.arange(0, x.mask.shape[1], 3)[None].expand(2, -1)  # a subset as queries
    q = (nb.gather_points(x.elems, qidx), nb.gather_points(x.orbits, qidx), nb.gather_points(x.mask, qidx))
    for knn, fill, queries in [(False, 0.05, q), (True, 0.05, q), (False, 0.1, (x.elems, x.orbits, x.mask))]:
        kw = dict(num_nbhd=8, fill=fill, knn=knn)
        args = (G, *queries, x.elems, x.orbits, x.mask)
        pruned = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(5))
        brute = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(5), prune=False)
        assert torch.equal(pruned[1], brute[1]) and torch.equal(pruned[0], brute[0]), (name, knn, fill)
    # the test exercised a real cell list, not one cell per example
    E = G.distance_lower_bound_coords(x.elems.double(), x.orbits.double())
    assert E is not None
    near = nb._Nearest(
        G,
        x.elems.double(),
        x.orbits.double(),
        x.mask,
        x.elems.double(),
        x.orbits.double(),
        x.mask,
        torch.full((2,), 1e9, dtype=torch.float64),
        torch.zeros(2, dtype=torch.bool),
        15 * ns,
        True,
        nb._Keys(1e-9, x.mask.shape[1]),
    )
    assert math.prod(near.grid(0).G) > 8


@pytest.mark.parametrize("name", ["T3", "T2", "SE2", "Tx"])
@pytest.mark.parametrize(
    "knobs",
    [{}, {"_SAT_CELLS": 0}, {"_COUNT_MARGIN": 0.2}, {"_COUNT_MARGIN": 0.2, "_MAX_RUNS": 9}],
    ids=["counts", "no-counts", "second-rounds", "coarser-levels"],
)
def test_pruned_search_of_whole_candidate_sets_equals_brute_force(name, knobs, monkeypatch):
    """Every example fully real: the Monte-Carlo draw takes candidate sets in any order (unsorted
    top-k).  First boxes from prefix counts, fixed first boxes (no count table), boxes too small
    on purpose (second rounds) and a low run limit (coarser levels) all choose what brute force does."""
    monkeypatch.setattr(nb, "_DENSE_FRACTION", 1.0)
    for attr, value in knobs.items():
        monkeypatch.setattr(nb, attr, value)
    G = get_group(name)
    x = _lifted_cloud(G, 2, 400, 8)
    qidx = torch.arange(1, x.mask.shape[1], 2)[None].expand(2, -1)
    q = (nb.gather_points(x.elems, qidx), nb.gather_points(x.orbits, qidx), nb.gather_points(x.mask, qidx))
    for fill in (0.03, 0.1):
        args = (G, *q, x.elems, x.orbits, x.mask)
        kw = dict(num_nbhd=6, fill=fill)
        pruned = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(5))
        brute = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(5), prune=False)
        assert torch.equal(pruned[1], brute[1]) and torch.equal(pruned[0], brute[0]), (name, fill)
        assert bool(pruned[1].all())
    # the unordered search returns the same k nearest as the ordered one, as sets
    inv_step = nb._example_inv_step(G, x.elems, x.orbits, x.mask, 1e-9)
    near = nb._Nearest(*args, inv_step, torch.zeros(2, dtype=torch.bool), 30, True, nb._Keys(1e-9, x.mask.shape[1]))
    assert near.x.shape[-1] > 0  # a real cell list
    a, b = near(0, qidx.shape[1], 30, True), near(0, qidx.shape[1], 30, False)
    assert torch.equal(a.sort(-1).values, b.sort(-1).values)


def test_pruned_selection_with_exact_ties_on_a_pixel_grid():
    G = get_group("T2")
    ij = torch.stack(torch.meshgrid(torch.arange(30.0), torch.arange(30.0), indexing="ij"), -1).reshape(1, -1, 2)
    x = lift(Points.from_coords(ij.double()), G)
    args = (G, x.elems, x.orbits, x.mask, x.elems, x.orbits, x.mask)
    for knn in (False, True):
        kw = dict(num_nbhd=9, fill=0.02, knn=knn)
        a = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(1))
        b = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(1), prune=False)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def _reference_fps(group, elems, orbits, mask, m):
    """The plain farthest-point loop: argmax of the running minimum, then lower it by the new row."""
    Bg, N = mask.shape
    res = nb.TIE_RESOLUTION[elems.dtype]
    elems, orbits = elems.double(), orbits.double()
    ar = torch.arange(Bg)
    min_dist = torch.full((Bg, N), math.inf, dtype=torch.float64).masked_fill(~mask, -1.0)
    current, ok = mask.to(torch.uint8).argmax(1), mask.any(1)
    chosen, chosen_ok, inv = [], [], None
    for _ in range(m):
        chosen.append(current)
        chosen_ok.append(ok)
        d = group.elem_distance(elems, elems[ar, current][:, None], orbits, orbits[ar, current][:, None])
        if inv is None:
            step = d.masked_fill(~mask, 0).amax(1, keepdim=True) * res
            inv = 2.0 ** -torch.round(torch.log2(step))  # the nearest power of two (log scale)
        min_dist = torch.fmin(min_dist, torch.round(d * inv))
        min_dist[ar, current] = 0.0
        best, current = min_dist.max(1)
        ok = best > 0
    return torch.stack(chosen, 1), torch.stack(chosen_ok, 1)


@pytest.mark.parametrize("name", ["T3", "SE2", "SE3", "SO2", "Tx"])
def test_fps_equals_the_plain_loop(name, monkeypatch):
    monkeypatch.setattr(nb, "_FPS_LOOP_POINTS", 0)  # the batched, pruned scheme even for small clouds
    G = get_group(name)
    x = _lifted_cloud(G, 2, 150, 4, last_real=40)  # fewer real points than queries in example 1
    for m in (20, 120):
        ref = _reference_fps(G, x.elems, x.orbits, x.mask, m)
        for prune in (True, False):
            got = nb.farthest_point_indices(G, x.elems, x.orbits, x.mask, m, prune=prune)
            assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]), (name, m, prune)
        # and with one cell per example (the batched scheme without a bound)
        monkeypatch.setattr(G, "distance_lower_bound_coords", lambda e, q: None)
        got = nb.farthest_point_indices(G, x.elems, x.orbits, x.mask, m)
        monkeypatch.undo()
        monkeypatch.setattr(nb, "_FPS_LOOP_POINTS", 0)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]), (name, m)


def test_everyone_in_every_neighbourhood_needs_no_search():
    group = get_group("SE2")
    x = lift(cloud(B=2, n=6), group, 2, generator=torch.Generator().manual_seed(0))
    mask = x.mask.clone()
    mask[1, 9:] = False
    args = (group, x.elems, x.orbits, mask, x.elems, x.orbits, mask)
    idx, nmask = nb.neighborhood_indices(*args, num_nbhd=16, fill=1.0)
    assert idx.shape == (2, 12, 12)
    assert torch.equal(idx[0], torch.arange(12).expand(12, 12))
    assert torch.equal(nmask[1], mask[1, None, :].expand(12, 12) & mask[1, :, None])
    # the general path orders such an example by index too (a larger example forces the search)
    big = lift(cloud(B=1, n=40), group, 2, generator=torch.Generator().manual_seed(1))
    e = torch.cat([x.elems, big.elems[:, :12]]), torch.cat([x.orbits, big.orbits[:, :12]])
    m2 = torch.cat([mask, torch.ones(1, 12, dtype=torch.bool)])
    both = nb.neighborhood_indices(group, *e, m2, *e, m2, num_nbhd=16, fill=1.0, knn=True)
    assert torch.equal(both[0][:2], idx) and torch.equal(both[1][:2], nmask)


def test_search_falls_back_to_all_pairs_when_boxes_hold_much_of_the_cloud(monkeypatch):
    # SE(3) with a large fill: the nearest group distances are dominated by the rotations, so a box
    # on the translations holds most of the cloud and the search compares every pair instead
    G = get_group("SE3")
    gen = torch.Generator().manual_seed(7)
    x = lift(Points.from_coords(torch.randn(2, 200, 3, generator=gen, dtype=torch.float64)), G, 2, generator=gen)
    args = (G, x.elems, x.orbits, x.mask, x.elems, x.orbits, x.mask)
    kw = dict(num_nbhd=8, fill=0.05)
    inv_step = nb._example_inv_step(G, x.elems, x.orbits, x.mask, 1e-9)
    keys = nb._Keys(1e-9, x.mask.shape[1])
    near = nb._Nearest(*args, inv_step, torch.zeros(2, dtype=torch.bool), 20, True, keys)
    assert near.x.shape[-1] == 0  # the fallback: one cell per example
    auto = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(2))
    brute = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(2), prune=False)
    monkeypatch.setattr(nb, "_DENSE_FRACTION", 1.0)  # force the cell list
    near = nb._Nearest(*args, inv_step, torch.zeros(2, dtype=torch.bool), 20, True, keys)
    assert near.x.shape[-1] == 3
    forced = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(2))
    for a, b in ((auto, brute), (forced, brute)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("name", ["T2", "SE2", "SO3"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_search_on_farthest_point_rows_equals_search_from_scratch(name, dtype):
    """The rows kept by farthest-point sampling are the search's own numbers: same neighbourhoods."""
    G = get_group(name)
    x = _lifted_cloud(G, 3, 120, 4, dtype, last_real=90)
    idx, qmask, rows = nb.farthest_point_indices(G, x.elems, x.orbits, x.mask, 50, keep_rows=True)
    assert rows is not None and rows.shape == (3, 50, x.mask.shape[1])
    assert torch.equal(idx, nb.farthest_point_indices(G, x.elems, x.orbits, x.mask, 50)[0])
    q = (nb.gather_points(x.elems, idx), nb.gather_points(x.orbits, idx), qmask)
    for knn, fill in [(False, 0.1), (True, 0.1), (False, 0.5)]:
        kw = dict(num_nbhd=8, fill=fill, knn=knn)
        args = (G, *q, x.elems, x.orbits, x.mask)
        got = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(5), query_rows=rows)
        ref = nb.neighborhood_indices(*args, **kw, generator=torch.Generator().manual_seed(5), prune=False)
        assert torch.equal(got[1], ref[1]) and torch.equal(got[0], ref[0]), (name, knn, fill)


@pytest.mark.parametrize("name", ["T2", "SE2", "SO3"])
def test_a_subsampling_layer_passes_its_farthest_order_on_without_changing_the_next_choice(name):
    """The next layer's farthest points are a prefix of the previous ones and its rows a gather of
    theirs: the same selection as sampling and searching from scratch."""
    from lieconv import LieConv

    G = get_group(name)
    x = _lifted_cloud(G, 3, 90, 6, last_real=40)  # fewer real points than queries in later layers: masked repeats
    convs = [LieConv(1, 1, group=G, num_nbhd=6, fill=0.2, ds_frac=0.6).double() for _ in range(3)]
    with torch.no_grad():
        for i, conv in enumerate(convs):
            sel = conv.select(x, torch.Generator().manual_seed(i))
            ref = conv.select(x.replace(farthest=None), torch.Generator().manual_seed(i))
            assert (x.farthest is not None) == (i > 0)
            assert torch.equal(sel.query_mask, ref.query_mask)
            ok = sel.query_mask
            assert torch.equal(sel.query_idx[ok], ref.query_idx[ok])
            assert torch.equal(sel.nbhd_mask, ref.nbhd_mask) and torch.equal(sel.nbhd_idx, ref.nbhd_idx)
            if i == 1:
                assert sel.queries.rows is not None  # the search ranked gathered rows
            x = conv(x, sel)


@pytest.mark.parametrize("name", ["T3", "SE2"])
def test_farthest_points_of_an_empty_batch_and_of_padding_only_examples(name):
    group = get_group(name)
    E, q = group.elem_dim, group.q_dim
    empty = torch.zeros(0, 5, dtype=torch.bool)
    idx, ok, rows = nb.farthest_point_indices(
        group, torch.zeros(0, 5, E), torch.zeros(0, 5, q), empty, 3, keep_rows=True
    )
    assert idx.shape == ok.shape == (0, 3) and rows is None  # nothing to keep
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    idx, ok = nb.farthest_point_indices(group, torch.randn(2, 5, E), torch.zeros(2, 5, q), mask, 3)
    assert ok.tolist() == [[True, True, False], [False, False, False]]
    assert set(idx[0, :2].tolist()) == {0, 1}
