"""Ragged (PyG / e3nn) batches: ``Points.from_ragged`` / ``to_ragged``, and PyG ``Batch`` input to models."""

from __future__ import annotations

import pytest
import torch

from lieconv import LieResNet, Points, pad_ragged
from lieconv.models import MoleculeLieResNet

SIZES = (5, 9, 1, 7)


def _clouds(dim: int = 3, chin: int = 2, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    pos = [torch.randn(n, dim, generator=g, dtype=dtype) for n in SIZES]
    x = [torch.randn(n, chin, generator=g, dtype=dtype) for n in SIZES]
    batch = torch.repeat_interleave(torch.arange(len(SIZES)), torch.tensor(SIZES))
    return pos, x, batch


def _padded(pos, x) -> Points:
    """The padded batch written out by hand: rows of real points, then zeros with mask False."""
    n = max(SIZES)
    coords = torch.zeros(len(pos), n, pos[0].shape[1], dtype=pos[0].dtype)
    values = torch.zeros(len(pos), n, x[0].shape[1], dtype=x[0].dtype)
    mask = torch.zeros(len(pos), n, dtype=torch.bool)
    for b, (p, f) in enumerate(zip(pos, x)):
        coords[b, : len(p)], values[b, : len(p)], mask[b, : len(p)] = p, f, True
    return Points(coords, values, mask)


def _assert_same_points(a: Points, b: Points) -> None:
    for field in ("coords", "values", "mask"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=0)


def test_from_ragged_is_the_padded_batch_and_to_ragged_inverts_it():
    pos, x, batch = _clouds()
    pts = Points.from_ragged(torch.cat(pos), torch.cat(x), batch)
    _assert_same_points(pts, _padded(pos, x))
    _assert_same_points(pts, pad_ragged(pos, x))
    p2, x2, b2 = pts.to_ragged()
    assert torch.equal(p2, torch.cat(pos)) and torch.equal(x2, torch.cat(x)) and torch.equal(b2, batch)


def test_from_ragged_keeps_each_clouds_order_when_clouds_are_interleaved():
    pos, x, batch = _clouds()
    P, X = torch.cat(pos), torch.cat(x)
    labels = batch[torch.randperm(len(batch), generator=torch.Generator().manual_seed(1))]  # a random interleaving
    idx = torch.empty_like(batch)
    for b in range(len(SIZES)):
        idx[labels == b] = torch.nonzero(batch == b).flatten()  # cloud b's points, in their order
    assert torch.equal(batch[idx], labels) and not torch.equal(labels, batch)
    _assert_same_points(Points.from_ragged(P[idx], X[idx], labels), Points.from_ragged(P, X, batch))


def test_empty_clouds_and_defaults():
    pos = torch.randn(4, 2)
    pts = Points.from_ragged(pos, batch=torch.tensor([0, 0, 2, 2]), batch_size=4)
    assert pts.mask.tolist() == [[True, True], [False, False], [True, True], [False, False]]
    assert torch.equal(pts.values, pts.mask.unsqueeze(-1).float())  # x=None: ones at real points
    one = Points.from_ragged(pos, torch.arange(4))  # batch=None: one cloud
    assert one.coords.shape == (1, 4, 2) and one.values.dtype == pos.dtype  # integer x -> pos dtype


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(pos=torch.randn(4)), ["pos", "(P, D)"]),
        (dict(pos=torch.arange(8).view(4, 2)), ["pos", "floating"]),
        (dict(pos=torch.randn(4, 2), x=torch.randn(3, 1)), ["x", "P = 4"]),
        (dict(pos=torch.randn(4, 2), batch=torch.zeros(4)), ["batch", "integer"]),
        (dict(pos=torch.randn(4, 2), batch=torch.tensor([0, -1, 0, 0])), ["batch", "negative"]),
        (dict(pos=torch.randn(4, 2), batch=torch.tensor([0, 3, 0, 0]), batch_size=2), ["batch_size", "4"]),
    ],
)
def test_bad_ragged_input_is_named(kwargs, words):
    with pytest.raises(ValueError) as err:
        Points.from_ragged(**kwargs)
    assert all(w in str(err.value) for w in words), str(err.value)


def _model(chin: int = 2):
    torch.manual_seed(0)
    return LieResNet(chin, 3, group="SE3", k=16, num_layers=2, num_nbhd=4, fill=0.5, liftsamples=2).double()


def _run(model, inputs, seed: int = 7):
    return model(inputs, generator=torch.Generator().manual_seed(seed))


def test_padded_ragged_and_pyg_batches_give_identical_outputs():
    pyg = pytest.importorskip("torch_geometric.data")
    pos, x, batch = _clouds()
    model = _model()
    padded = _run(model, _padded(pos, x))
    ragged = _run(model, Points.from_ragged(torch.cat(pos), torch.cat(x), batch))
    data = pyg.Batch.from_data_list([pyg.Data(pos=p, x=f) for p, f in zip(pos, x)])
    from_pyg = _run(model, data)
    assert padded.shape == (len(SIZES), 3)
    assert torch.equal(padded, ragged) and torch.equal(padded, from_pyg)
    single = _run(model, pyg.Data(pos=pos[1], x=x[1]))  # one Data = one cloud
    assert torch.equal(single, _run(model, Points(pos[1][None], x[1][None], torch.ones(1, SIZES[1], dtype=torch.bool))))


def test_molecule_model_accepts_a_pyg_batch():
    pyg = pytest.importorskip("torch_geometric.data")
    pos, x, batch = _clouds(chin=15)
    torch.manual_seed(0)
    model = MoleculeLieResNet(15, group="SE3", k=16, num_layers=1, nbhd=8, liftsamples=2, center=True).double()
    pts = _padded(pos, x)
    ref = model(pts.coords, pts.values, pts.mask, generator=torch.Generator().manual_seed(7))
    data = pyg.Batch.from_data_list([pyg.Data(pos=p, x=f) for p, f in zip(pos, x)])
    assert torch.equal(model(data, generator=torch.Generator().manual_seed(7)), ref)
    with pytest.raises(ValueError, match="features, mask"):
        model(pts.coords)
