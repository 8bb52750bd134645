"""Property-based test of the Python API: Points, lift, LieConv, LieResNet, assert_equivariant.

Over groups x shapes x masks x dtypes x option values: finite valid input gives a finite result;
a bad argument is rejected with a ValueError / TypeError whose message names it; nothing else
escapes.  Bounded (``max_examples``) so that it runs in a few seconds.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lieconv import Points
from lieconv.groups import get_group
from lieconv.lifting import lift
from lieconv.nn import LieConv, LieResNet
from lieconv.testing import assert_equivariant

from .nn.helpers import GROUP_NAMES

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

BAD_INT = st.sampled_from([-1, 2.5, "8", True, None, float("nan")])
BAD_FRACTION = st.sampled_from([0, 1.5, -0.1, "0.5", float("nan"), float("inf"), True, None])
#: names an error message may use for an argument
NAMES = {"liftsamples": ("liftsamples", "num_samples"), "num_samples": ("num_samples",)}


@st.composite
def cases(draw):
    group = draw(st.sampled_from(GROUP_NAMES))
    G = get_group(group)
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    B, n = draw(st.integers(1, 3)), draw(st.integers(1, 10))
    n_real = draw(st.lists(st.integers(0, n), min_size=B, max_size=B))
    seed = draw(st.integers(0, 2**16))
    opts = {
        "k": draw(st.integers(4, 12)),
        "num_layers": draw(st.integers(0, 2)),
        "num_nbhd": draw(st.integers(1, 6)),
        "fill": draw(st.floats(0.05, 1.0)),
        "ds_frac": draw(st.sampled_from([1.0, 0.5])),
        "liftsamples": draw(st.integers(1, 3)) if G.stabilizer_dim else 1,
        "knn": draw(st.booleans()),
        "bn": draw(st.booleans()),
    }
    target = draw(st.sampled_from(["points", "lift", "conv", "resnet", "equivariant"]))
    bad = None
    if draw(st.booleans()):
        name = draw(
            st.sampled_from(["k", "num_layers", "num_nbhd", "fill", "ds_frac", "liftsamples", "coords", "values"])
        )
        if name in ("fill", "ds_frac"):
            value = draw(BAD_FRACTION)
        elif name in ("coords", "values"):
            value = draw(st.sampled_from([float("nan"), float("inf"), None]))
        else:
            value = draw(BAD_INT)
            if name == "num_layers" and value is True:
                value = -1
        bad = (name, value)
    return group, dtype, B, n, n_real, seed, opts, target, bad


def _points(G, dtype, B, n, n_real, seed, bad):
    gen = torch.Generator().manual_seed(seed)
    coords = torch.randn(B, n, G.space_dim, generator=gen, dtype=dtype)
    if "SQ" in G.name:
        coords = coords.abs() + 0.2
    values = torch.randn(B, n, 2, generator=gen, dtype=dtype)
    mask = torch.arange(n)[None, :] < torch.tensor(n_real)[:, None]
    if bad is not None and bad[0] in ("coords", "values"):
        if bad[1] is None:
            return Points(coords, None, mask) if bad[0] == "values" else Points(None, values, mask)
        if not mask.any():
            mask[0, 0] = True
        target = coords if bad[0] == "coords" else values
        target[mask.nonzero()[0][0], mask.nonzero()[0][1], 0] = bad[1]
    return Points(coords, values, mask)


def _run(group, dtype, B, n, n_real, seed, opts, target, bad):
    G = get_group(group)
    torch.manual_seed(seed)
    kw = dict(opts)
    if bad is not None and bad[0] in kw:
        kw[bad[0]] = bad[1]
    pts = _points(G, dtype, B, n, n_real, seed, bad)
    if target == "points":
        return pts.coords
    ns = kw["liftsamples"]
    if target == "lift":
        out = lift(pts, G, ns, generator=torch.Generator().manual_seed(seed))
        return out.elems[out.mask]
    if target == "conv":
        conv = LieConv(
            2,
            kw["k"],
            group=G,
            num_nbhd=kw["num_nbhd"],
            fill=kw["fill"],
            ds_frac=kw["ds_frac"],
            knn=kw["knn"],
            bn=kw["bn"],
        ).to(dtype)
        return conv(lift(pts, G, ns)).values
    net = LieResNet(
        2,
        3,
        group=G,
        k=kw["k"],
        num_layers=kw["num_layers"],
        num_nbhd=kw["num_nbhd"],
        fill=kw["fill"],
        ds_frac=kw["ds_frac"],
        liftsamples=ns,
        knn=kw["knn"],
        bn=kw["bn"],
    ).to(dtype)
    if target == "resnet":
        return net(pts)
    if dtype != torch.float64:  # the float32 tolerance is helper H2's (neighbourhood near-ties)
        pts = Points(pts.coords.double(), pts.values.double(), pts.mask)
        net = net.double()
    net.eval()
    err = assert_equivariant(
        lambda x, generator=None: net(x, generator=generator), G, pts, num_samples=ns, ntrials=1, transform="lifted"
    )
    return torch.tensor([err])


@SETTINGS
@given(cases())
def test_api_finite_results_or_named_rejections(case):
    group, dtype, B, n, n_real, seed, opts, target, bad = case
    try:
        out = _run(*case)
    except (ValueError, TypeError) as exc:
        assert bad is not None, f"valid input rejected: {case}: {exc}"
        names = NAMES.get(bad[0], (bad[0],))
        assert any(name in str(exc) for name in names), f"{case}: message does not name {bad[0]}: {exc}"
        return
    if bad is not None:
        # a bad option the target never reads (e.g. num_layers for a single LieConv) may pass unseen
        unused = {
            "points": {"k", "num_layers", "num_nbhd", "fill", "ds_frac", "liftsamples"},
            "lift": {"k", "num_layers", "num_nbhd", "fill", "ds_frac"},
            "conv": {"num_layers"},
        }.get(target, set())
        assert bad[0] in unused, f"bad {bad[0]}={bad[1]!r} accepted by {target}: {case}"
    assert torch.isfinite(out).all(), f"non-finite result for finite input: {case}"


def test_the_fuzz_covers_rejections_and_passes():
    """The strategy produces both valid cases and rejections of each kind (a test that can fail)."""
    seen = {"ok": 0, "bad": set()}

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(cases())
    def probe(case):
        try:
            _run(*case)
            seen["ok"] += 1
        except (ValueError, TypeError):
            seen["bad"].add(case[-1][0] if case[-1] else "<valid rejected>")

    probe()
    assert seen["ok"] > 10 and "<valid rejected>" not in seen["bad"] and len(seen["bad"]) >= 3
