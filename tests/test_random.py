"""Per-example random draws (lieconv.random) and reproducible evaluation."""

from __future__ import annotations

import pytest
import torch

from lieconv import Points
from lieconv.groups import get_group
from lieconv.lifting import lift
from lieconv.models.image import ImageLieResNet
from lieconv.nn import LieResNet
from lieconv.random import DrawAverage, ExampleRandom, evaluation_draws, normal, uniform

from .nn.helpers import random_points


def test_example_random_is_a_pure_function_of_seed_id_draw_and_position():
    a = ExampleRandom(3, [5, 9]).uniform((2, 4, 6), dtype=torch.float64)
    b = ExampleRandom(3, [9]).uniform((1, 4, 6), dtype=torch.float64)  # example 9 alone
    assert torch.equal(a[1:], b)
    chunk = ExampleRandom(3, [5, 9]).uniform((2, 2, 6), dtype=torch.float64, start=(0, 2, 0))
    assert torch.equal(a[:, 2:], chunk)  # a chunk of the draw
    assert not torch.equal(a, ExampleRandom(4, [5, 9]).uniform((2, 4, 6), dtype=torch.float64))
    assert not torch.equal(a, ExampleRandom(3, [5, 9], sample=1).uniform((2, 4, 6), dtype=torch.float64))
    gen = ExampleRandom(3, [5, 9])
    first, second = gen.uniform((2, 8)), gen.uniform((2, 8))  # two draw sites differ
    assert not torch.equal(first, second)
    assert torch.equal(first, gen.reset().uniform((2, 8)))


def test_example_random_distribution():
    u = ExampleRandom(0).uniform((4, 50_000), dtype=torch.float64)
    assert float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    z = ExampleRandom(0).normal((4, 50_000), dtype=torch.float64)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    u32 = ExampleRandom(0).uniform((2, 1000))
    assert u32.dtype == torch.float32 and float(u32.max()) < 1


def test_torch_generator_path_is_unchanged():
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(uniform((3, 4), g1), torch.rand(3, 4, generator=g2))
    assert torch.equal(normal((3, 4), g1, dtype=torch.float64), torch.randn(3, 4, generator=g2, dtype=torch.float64))
    with pytest.raises(TypeError, match="generator"):
        uniform((2,), "seed")


@pytest.mark.parametrize("group", ["SE2", "SO3", "SE3"])
def test_lift_draws_of_an_example_do_not_depend_on_its_batch_or_padding(group):
    G = get_group(group)
    pts = random_points(G, B=3, n=10)
    full = lift(pts, G, 3, generator=ExampleRandom(7, [10, 11, 12]))
    one = lift(Points(pts.coords[1:2], pts.values[1:2], pts.mask[1:2]), G, 3, generator=ExampleRandom(7, [11]))
    assert torch.equal(full.elems[1:2], one.elems)
    # padding after the real points does not move them
    pad = Points(
        torch.cat([pts.coords, torch.randn(3, 4, G.space_dim, dtype=pts.coords.dtype).abs() + 0.3], 1),
        torch.cat([pts.values, torch.zeros(3, 4, pts.values.shape[-1], dtype=pts.values.dtype)], 1),
        torch.cat([pts.mask, torch.zeros(3, 4, dtype=torch.bool)], 1),
    )
    padded = lift(pad, G, 3, generator=ExampleRandom(7, [10, 11, 12]))
    assert torch.equal(padded.elems[:, :30], full.elems)


def _net(group="SE2", **kw):
    torch.manual_seed(0)
    return LieResNet(2, 3, group=group, k=16, num_layers=2, num_nbhd=4, fill=0.5, liftsamples=2, **kw).double()


def test_eval_mode_is_reproducible_and_train_mode_redraws():
    net = _net()
    pts = random_points(get_group("SE2"), B=2, n=20)
    net.eval()
    assert torch.equal(net(pts), net(pts))
    net.train()
    assert not torch.allclose(net(pts), net(pts))


def test_eval_output_of_an_example_is_independent_of_batch_size():
    net = _net(bn=True)
    net.train()
    net(random_points(get_group("SE2"), B=4, n=20, seed=3))  # some batch-norm statistics
    net.eval()
    pts = random_points(get_group("SE2"), B=4, n=20)
    with evaluation_draws(5, torch.arange(4)):
        whole = net(pts)
    parts = []
    for s in (0, 1, 3):
        e = {0: 1, 1: 3, 3: 4}[s]
        with evaluation_draws(5, torch.arange(s, e)):
            parts.append(net(Points(pts.coords[s:e], pts.values[s:e], pts.mask[s:e])))
    torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-12, atol=1e-12)


def test_image_model_batch_of_one_uses_the_shared_draws():
    torch.manual_seed(0)
    model = ImageLieResNet(1, 10, group="SE2", k=8, num_layers=1, nbhd=4, liftsamples=2).double().eval()
    images = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    whole = model(images)
    single = torch.cat([model(images[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(single, whole, rtol=1e-10, atol=1e-10)


def test_draw_average_is_the_mean_of_independent_draws():
    net = _net().eval()
    pts = random_points(get_group("SE2"), B=2, n=20)
    outs = []
    for s in range(4):
        with evaluation_draws(0, None, sample=s):
            outs.append(net(pts))
    assert not torch.allclose(outs[0], outs[1])
    avg = DrawAverage(net, 4)
    assert not avg.training
    torch.testing.assert_close(avg(pts), torch.stack(outs).mean(0), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="samples"):
        DrawAverage(net, 0)
    with pytest.raises(TypeError, match="samples"):
        DrawAverage(net, 2.0)
