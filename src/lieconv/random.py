"""Random draws of the layers: a ``torch.Generator`` or a per-example, counter-based source.

LieConv draws random numbers at a few sites: the stabilizer samples of the lift
(``groups._common.uniform_angles``, ``groups._quaternion.quat_random``) and the Monte-Carlo keys of
the neighbourhoods (``neighbors._random_keys``).  Each site calls ``uniform`` / ``normal`` here
with a ``generator`` that is either

* ``None`` or a ``torch.Generator``: ``torch.rand`` / ``torch.randn`` exactly as before (the
  equivariance tests share draws between f(x) and f(gx) by seeding two generators alike), or
* an ``ExampleRandom``: a counter-based (hash) generator.  The value at an index of a draw is a
  pure function of ``(seed, sample, example id, draw number, position)``:

      u = splitmix64(... splitmix64(splitmix64(key(seed, sample, id) + draw) ^ i_1) ... ^ i_k) / 2^64

  where ``draw`` counts the calls made with this object (the draw sites of a forward pass, in
  order) and ``(i_1, ..., i_k)`` is the position inside the example (point, sample, query, rank).
  So an example's draws do not depend on the other examples of its batch, on its place in the
  batch or on padding after its real points: evaluation gives the same numbers on any batch size.
  Computed with int64 tensor ops on the tensor's device (no host synchronisation).

A draw whose batch axis has size 1 while the source holds several example ids is a *shared* draw
(the fixed-grid fast path: one geometry for the batch) and is keyed by ``SHARED_ID``, which does not
depend on the batch either.  ``lift`` tells the source which case applies (``ExampleRandom.shared``).

``resolve_generator`` is what the models call: in ``eval()`` mode, without an explicit generator,
the draws come from ``ExampleRandom(seed)`` (``EVAL_SEED``, or the seed / example ids / sample of an
enclosing ``evaluation_draws`` context, which the trainer sets per batch), so evaluating a model
twice gives the same output.  ``DrawAverage`` averages a model's outputs over S independent draws.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "ExampleRandom",
    "uniform",
    "normal",
    "resolve_generator",
    "evaluation_draws",
    "DrawAverage",
    "EVAL_SEED",
    "SHARED_ID",
]

#: Seed of the evaluation draws of a model in ``eval()`` mode when nothing else is given.
EVAL_SEED = 0
#: Example id of shared (fixed-grid) draws.
SHARED_ID = -1

_M64 = 1 << 64


def _i64(c: int) -> int:
    """An unsigned 64-bit constant as the signed int64 with the same bits."""
    c %= _M64
    return c - _M64 if c >= 1 << 63 else c


_GOLDEN = _i64(0x9E3779B97F4A7C15)
_C1 = _i64(0xBF58476D1CE4E5B9)
_C2 = _i64(0x94D049BB133111EB)


def _shr(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return torch.bitwise_right_shift(x, k).bitwise_and_((1 << (64 - k)) - 1)


def _mix(x: Tensor, *, inplace: bool = False) -> Tensor:
    """splitmix64's finaliser (a bijection of 64-bit words; int64 multiplication wraps); ``inplace``: in x."""
    x = x.add_(_GOLDEN) if inplace else x + _GOLDEN
    x.bitwise_xor_(_shr(x, 30)).mul_(_C1)
    x.bitwise_xor_(_shr(x, 27)).mul_(_C2)
    return x.bitwise_xor_(_shr(x, 31))


def _mix_int(x: int) -> int:
    """``_mix`` on a Python int (same bits)."""
    x = (x + 0x9E3779B97F4A7C15) % _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) % _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) % _M64
    return _i64(x ^ (x >> 31))


def hash_pairs(seed: Tensor, j: Tensor) -> Tensor:
    """Random int64 words keyed by a random ``seed`` and an integer ``j >= 0`` (broadcast together):
    output j + 1 of the splitmix64 sequence with state ``seed``, never ``int64`` min."""
    h = _mix(torch.add(seed, j * _GOLDEN), inplace=True)
    return h.masked_fill_(h == torch.iinfo(torch.int64).min, torch.iinfo(torch.int64).max)


class ExampleRandom:
    """A per-example, counter-based random source, accepted wherever a ``generator`` is.

    Parameters
    ----------
    seed : int
        Seed of all draws.
    example_ids : sequence of int or Tensor (B,), optional
        One id per example of the batch (e.g. its index in the data set).  Default: 0, 1, ..., B-1
        (then the draws depend on the place in the batch, not on the other examples).
    sample : int
        Index of an independent set of draws (test-time averaging uses samples 0 .. S-1).

    Each call of ``uniform`` / ``normal`` is one draw site and advances ``draws``; a fresh object
    (or ``reset()``) replays the same numbers.
    """

    def __init__(self, seed: int = EVAL_SEED, example_ids: Sequence[int] | Tensor | None = None, *, sample: int = 0):
        for name, v in (("seed", seed), ("sample", sample)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
        if example_ids is not None:
            example_ids = torch.as_tensor(example_ids)
            if example_ids.dim() != 1 or example_ids.is_floating_point() or example_ids.dtype == torch.bool:
                raise ValueError(
                    f"example_ids: expected a 1-D integer tensor, got dtype {example_ids.dtype} "
                    f"shape {tuple(example_ids.shape)}"
                )
            example_ids = example_ids.to(torch.int64)
        self.seed, self.sample, self.example_ids = int(seed), int(sample), example_ids
        self.draws = 0
        #: set by ``lift``: True = the batch shares one geometry (draws keyed by ``SHARED_ID``)
        self.shared: bool | None = None
        self._base = _mix_int(_mix_int(self.seed) ^ (self.sample * 0x632BE59BD9B4E019 % _M64))

    def reset(self) -> ExampleRandom:
        """Start the draw counter again (replay the same draws)."""
        self.draws = 0
        return self

    def _ids(self, batch: int, device) -> Tensor:
        ids = self.example_ids
        if self.shared:
            if batch != 1:
                raise ValueError(f"generator: a shared-geometry draw must have batch size 1, got {batch}")
            return torch.full((1,), SHARED_ID, dtype=torch.int64, device=device)
        if ids is None:
            return torch.arange(batch, dtype=torch.int64, device=device)
        if ids.shape[0] == batch:
            return ids.to(device)
        if batch == 1:
            return torch.full((1,), SHARED_ID, dtype=torch.int64, device=device)
        raise ValueError(
            f"generator: ExampleRandom holds {ids.shape[0]} example ids but a draw asks for a batch of {batch}"
        )

    def bits(self, shape: Sequence[int], *, device=None, start: Sequence[int] | None = None) -> Tensor:
        """Random int64 words of ``shape = (batch, *position)``; ``start`` offsets the position axes."""
        shape = tuple(int(s) for s in shape)
        if not shape:
            raise ValueError("generator: an ExampleRandom draw needs a batch axis")
        start = tuple(start) if start is not None else (0,) * len(shape)
        site = self.draws
        self.draws += 1
        h = _mix(self._ids(shape[0], device) ^ self._base)
        h = _mix(h + site)
        h = h.view(shape[0], *([1] * (len(shape) - 1)))
        for axis in range(1, len(shape)):
            view = [1] * len(shape)
            view[axis] = shape[axis]
            pos = torch.arange(start[axis], start[axis] + shape[axis], dtype=torch.int64, device=device)
            h = _mix(h ^ (pos * _C1 + axis).view(view))
        return h.expand(shape)

    def uniform(self, shape: Sequence[int], *, dtype=torch.float32, device=None, start=None) -> Tensor:
        """Uniform numbers in [0, 1) of ``shape`` (exact multiples of 2^-24 / 2^-53)."""
        h = self.bits(shape, device=device, start=start)
        if dtype == torch.float64:
            return _shr(h, 11).to(torch.float64) * 2.0**-53
        return (_shr(h, 40).to(torch.float32) * 2.0**-24).to(dtype)

    def normal(self, shape: Sequence[int], *, dtype=torch.float32, device=None, start=None) -> Tensor:
        """Standard normal numbers of ``shape`` (Box-Muller on two uniform words per number)."""
        u = self.uniform((*shape, 2), dtype=torch.float64, device=device, start=start)
        r = torch.sqrt(-2.0 * torch.log1p(-u[..., 0]))
        return (r * torch.cos(2 * torch.pi * u[..., 1])).to(dtype)


Generator = "torch.Generator | ExampleRandom | None"


def _check(generator) -> None:
    if generator is not None and not isinstance(generator, (torch.Generator, ExampleRandom)):
        raise TypeError(
            f"generator: expected a torch.Generator, a lieconv.random.ExampleRandom or None, "
            f"got {type(generator).__name__}"
        )


def uniform(
    shape: Sequence[int], generator=None, *, dtype=torch.float32, device=None, start: Sequence[int] | None = None
) -> Tensor:
    """``torch.rand(shape)`` from ``generator`` (None / torch.Generator / ExampleRandom).

    ``start`` is the position of element 0 along each axis (a chunk of a larger draw); it only
    matters for an ``ExampleRandom``, whose numbers are keyed by position.  A torch.Generator of
    another device (a CPU generator for CUDA data) draws on its own device and the numbers are
    moved: the same seed gives the same draws on every device.
    """
    _check(generator)
    if isinstance(generator, ExampleRandom):
        return generator.uniform(shape, dtype=dtype, device=device, start=start)
    if _elsewhere(generator, device):
        return torch.rand(*shape, generator=generator, dtype=dtype, device=generator.device).to(device)
    return torch.rand(*shape, generator=generator, dtype=dtype, device=device)


def _elsewhere(generator, device) -> bool:
    """Whether a torch.Generator lives on another device than ``device`` (None: the default, CPU)."""
    if generator is None:
        return False
    want = torch.device(device if device is not None else "cpu")
    return generator.device.type != want.type


def normal(shape: Sequence[int], generator=None, *, dtype=torch.float32, device=None) -> Tensor:
    """``torch.randn(shape)`` from ``generator`` (None / torch.Generator / ExampleRandom); a generator
    of another device draws there (see ``uniform``)."""
    _check(generator)
    if isinstance(generator, ExampleRandom):
        return generator.normal(shape, dtype=dtype, device=device)
    if _elsewhere(generator, device):
        return torch.randn(*shape, generator=generator, dtype=dtype, device=generator.device).to(device)
    return torch.randn(*shape, generator=generator, dtype=dtype, device=device)


# ------------------------------------------------------------------------------------------- evaluation

_EVAL: contextvars.ContextVar = contextvars.ContextVar("lieconv_eval_draws", default=None)


@contextlib.contextmanager
def evaluation_draws(
    seed: int = EVAL_SEED, example_ids: Sequence[int] | Tensor | None = None, *, sample: int = 0
) -> Iterator[None]:
    """Within the block, models in ``eval()`` mode called without a generator draw from
    ``ExampleRandom(seed, example_ids, sample=sample)`` (a fresh one per forward call)."""
    token = _EVAL.set((int(seed), example_ids, int(sample)))
    try:
        yield
    finally:
        _EVAL.reset(token)


def resolve_generator(generator, training: bool):
    """The generator a model's forward pass uses.

    An explicit ``generator`` wins; in training mode ``None`` stays ``None`` (torch's global RNG);
    in ``eval()`` mode ``None`` becomes a fresh ``ExampleRandom`` (``EVAL_SEED``, or the
    ``evaluation_draws`` context), so evaluation is reproducible.
    """
    _check(generator)
    if generator is not None or training:
        return generator
    ctx = _EVAL.get()
    if ctx is None:
        return ExampleRandom(EVAL_SEED)
    seed, ids, sample = ctx
    return ExampleRandom(seed, ids, sample=sample)


class DrawAverage(nn.Module):
    """Test-time averaging: the mean of ``model``'s outputs over ``samples`` independent draws.

    Call it like the model (same arguments, no ``generator``).  Sample s runs the model inside
    ``evaluation_draws(seed, example_ids, sample=s)``; the seed and ids are those of an enclosing
    ``evaluation_draws`` context (else ``EVAL_SEED`` and the batch positions).  The model should be
    in ``eval()`` mode.  For a classifier the logits are averaged.

    Shapes: whatever the model returns (a tensor); the result has the same shape.
    """

    def __init__(self, model: nn.Module, samples: int):
        super().__init__()
        if isinstance(samples, bool) or not isinstance(samples, int):
            raise TypeError(f"samples: expected an int, got {type(samples).__name__}")
        if samples < 1:
            raise ValueError(f"samples: expected at least 1 draw, got {samples}")
        self.model, self.samples = model, samples
        self.training = model.training  # tasks read ``model.training`` (e.g. augmentation off in eval)

    def forward(self, *args, **kwargs):
        ctx = _EVAL.get()
        seed, ids = (ctx[0], ctx[1]) if ctx is not None else (EVAL_SEED, None)
        total = None
        for s in range(self.samples):
            with evaluation_draws(seed, ids, sample=s):
                out = self.model(*args, **kwargs)
            total = out if total is None else total + out
        return total / self.samples
