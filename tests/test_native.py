"""lieconv.native: the compiled selection gives exactly what torch.topk gives, with and without it."""

import os
import subprocess
import sys

import pytest
import torch

from lieconv import native


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize(
    ("n", "k"), [(1296, 130), (648, 65), (3000, 1000), (300, 299), (257, 1), (100, 7), (5, 5), (8, 0)]
)
@pytest.mark.parametrize("spread", [40, 2**30])  # many ties / almost none
def test_smallest_is_the_multiset_topk_gives(dtype, n, k, spread):
    x = torch.randint(-spread, spread, (301, n), dtype=dtype, generator=torch.Generator().manual_seed(n + k))
    got = native.smallest(x, k)
    assert got.shape == (301, k) and got.dtype == dtype
    ref = torch.topk(x, k, dim=-1, largest=False).values
    assert torch.equal(got.sort(-1).values, ref.sort(-1).values)


def test_smallest_handles_batched_and_strided_rows_and_threads():
    x = torch.randint(0, 1000, (3, 700, 600), generator=torch.Generator().manual_seed(0)).transpose(1, 2)
    threads = torch.get_num_threads()
    try:
        for t in (1, 3):
            torch.set_num_threads(t)
            got = native.smallest(x, 70)
            assert torch.equal(got.sort(-1).values, torch.topk(x, 70, largest=False).values.sort(-1).values)
    finally:
        torch.set_num_threads(threads)


def test_the_compiled_selection_is_in_use_where_a_compiler_is():
    if not native.compiler():
        pytest.skip("no C++ compiler on this machine: torch.topk stands in")
    assert native.available()


def test_without_the_native_kernel_the_search_chooses_the_same(tmp_path):
    """LIECONV_NATIVE=0 (torch.topk) and the compiled kernel choose the same neighbourhoods."""
    code = (
        "import torch, sys; from lieconv import native, get_group, lift, Points; from lieconv import neighbors as nb\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x = lift(Points.from_coords(torch.randn(3, 400, 2, generator=g)), get_group('SE2'), 2, generator=g)\n"
        "out = nb.neighborhood_indices(get_group('SE2'), x.elems, x.orbits, x.mask, x.elems, x.orbits, x.mask,"
        " num_nbhd=9, fill=0.2, generator=torch.Generator().manual_seed(1))\n"
        "torch.save((native.available(), out), sys.argv[1])\n"
    )
    results = []
    for flag in ("1", "0"):
        path = tmp_path / f"out{flag}.pt"
        env = {**os.environ, "LIECONV_NATIVE": flag}
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env)
        results.append(torch.load(path))
    assert results[0][0] is native.available() and results[1][0] is False
    assert torch.equal(results[0][1][0], results[1][1][0]) and torch.equal(results[0][1][1], results[1][1][1])
