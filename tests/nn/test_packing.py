"""Pointwise layers on the real rows only (RowPacking) give the padded computation's result."""

from __future__ import annotations

import pytest
import torch

import lieconv.nn.packing as packing
from lieconv import LieResNet
from lieconv.nn.packing import RowPacking

from .helpers import padded_batch


def test_pack_unpack_round_trip_and_activation_rule():
    pts = padded_batch()
    p = RowPacking(pts.mask, 4)
    assert p.active and p.mask is None
    rows = p.pack(pts.values)
    assert rows.shape == (int(pts.mask.sum()), 5)
    back = p.unpack(rows)
    assert torch.equal(back[pts.mask], pts.values[pts.mask]) and (back[~pts.mask] == 0).all()
    full = RowPacking(torch.ones(4, 12, dtype=torch.bool), 4)  # no padding: identity
    assert not full.active and full.pack(pts.values) is pts.values
    shared = RowPacking(pts.mask[:1], 4)  # one geometry for the batch: not packed
    assert not shared.active


@pytest.mark.parametrize(
    "group, lifts, fill, nbhd, ds_frac",
    [
        ("T3", 1, 1.0, 16, 1.0),  # full neighbourhoods: the point features on the real rows
        ("T3", 1, 0.5, 4, 1.0),  # searched neighbourhoods: the real queries as one example
        ("T3", 1, 0.5, 4, 0.5),  # the same with farthest-point subsampled queries
        ("SE3", 2, 0.5, 4, 1.0),  # lifted: 2 group elements per point
    ],
)
def test_packed_resnet_equals_padded_resnet_values_and_gradients(group, lifts, fill, nbhd, ds_frac, monkeypatch):
    from lieconv.nn.conv import LieConv

    pts = padded_batch(1)
    calls = []
    pack_queries = LieConv.pack_queries

    def counted(self, x, sel):
        out = pack_queries(self, x, sel)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(LieConv, "pack_queries", counted)

    def run():
        torch.manual_seed(0)
        net = LieResNet(
            5, 2, group=group, k=16, num_layers=2, num_nbhd=nbhd, fill=fill, ds_frac=ds_frac, liftsamples=lifts
        ).double()
        out = net(pts, generator=torch.Generator().manual_seed(3))
        out.square().sum().backward()
        return out, [q.grad for q in net.parameters()]

    packed, g1 = run()
    assert any(calls) == (fill < 1)  # the searched layers packed their queries
    monkeypatch.setattr(packing, "MIN_PADDING", 2.0)  # never pack
    calls.clear()
    padded, g2 = run()
    assert not any(calls)
    assert torch.allclose(packed, padded, atol=1e-12)
    for a, b in zip(g1, g2):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-10)


def test_a_forward_pass_makes_each_masks_packing_once():
    mask = padded_batch().mask.clone()
    assert RowPacking(mask, 4) is not RowPacking(mask, 4)  # outside reused(): made every time
    with RowPacking.reused():
        p = RowPacking(mask, 4)
        with RowPacking.reused():  # nested: the same store
            assert RowPacking(mask, 4) is p
        assert RowPacking(mask.clone(), 4) is not p  # another tensor
        mask[0, 0] = False  # modified in place: counted again
        q = RowPacking(mask, 4)
        assert q is not p and q.index.numel() == p.index.numel() - 1
    with torch.inference_mode():
        frozen = padded_batch().mask
        with RowPacking.reused():
            assert RowPacking(frozen, 4) is RowPacking(frozen, 4)  # no version counter: by identity
