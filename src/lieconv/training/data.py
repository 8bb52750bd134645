"""Data loading for the trainer: a seeded, resumable, DDP-aware batch order.

Order of the training examples in epoch ``e`` is ``randperm(n, seed=f(seed, e))``, cut into global
batches of ``batch_size``.  The incomplete last batch is dropped (``drop_last=True``, the default),
unless the dataset is smaller than one batch, in which case the one batch is the whole set; with
``drop_last=False`` it is kept as a smaller last batch (a task sets ``Task.drop_last``).  Under DDP
with ``W`` processes, process ``r`` takes the ``r``-th of ``W`` equal slices of every global batch,
so the gradient averaged by DDP is exactly the gradient of the one-process global batch (a kept
incomplete last batch is cut into ``W`` near-equal slices, so there the DDP average weights
examples per process; one with fewer than ``W`` examples is dropped).  Evaluation splits are read
in order;
process ``r`` takes examples ``r, r+W, ...`` and the trainer sums the metrics over processes.

The training loader is *stateful* in Lightning's sense (``state_dict`` / ``load_state_dict``), so a
checkpoint taken in the middle of an epoch resumes at the next batch of the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["EpochBatchSampler", "ResumableDataLoader", "epoch_seed", "make_loader", "train_steps_per_epoch"]


def train_steps_per_epoch(n: int, batch_size: int, drop_last: bool = True, world_size: int = 1) -> int:
    """Optimizer steps per epoch: full global batches (one batch of all ``n`` if ``n < batch_size``),
    plus the incomplete last one when ``drop_last`` is False and it has at least ``world_size`` examples."""
    b = min(batch_size, n)
    return max(1, n // b + (not drop_last and n % b >= world_size))


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the data order of one epoch (a pure function of the run seed and the epoch)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63 - 1)


class EpochBatchSampler(Sampler[list[int]]):
    """Yield this process's index batches of one epoch.

    Parameters
    ----------
    n : int
        Dataset length.
    batch_size : int
        Global batch size (over all processes).
    shuffle : bool
        Training order (seeded permutation, full batches) or evaluation order (in order, all examples).
    seed : int
        Run seed; epoch ``e`` uses ``epoch_seed(seed, e)``.
    rank, world_size : int
        This process and the number of DDP processes.
    drop_last : bool
        Training: drop the incomplete last batch (True) or keep it (False).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ):
        if n < 1:
            raise ValueError("data: a dataset split is empty")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.skip = 0  # batches to skip once, at the next __iter__ (mid-epoch resume)
        if shuffle and self._global_batch() % world_size:
            raise ValueError(
                f"batch_size: the global batch ({self._global_batch()}) must be divisible by the "
                f"number of processes ({world_size})"
            )
        if not shuffle and n < world_size:
            raise ValueError(f"data: an evaluation split has {n} examples, fewer than {world_size} processes")

    def _global_batch(self) -> int:
        return min(self.batch_size, self.n)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch (through ``batch_sampler.sampler``)."""
        self.epoch = int(epoch)

    @property
    def sampler(self) -> EpochBatchSampler:
        # Lightning calls ``set_epoch`` on ``loader.sampler`` and ``loader.batch_sampler.sampler`` only.
        return self

    def _batches(self) -> list[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g).tolist()
            b = self._global_batch()
            per = b // self.world_size
            batches = [order[i : i + b] for i in range(0, self.n - b + 1, b)]
            mine = [gb[self.rank * per : (self.rank + 1) * per] for gb in batches]
            rest = order[len(batches) * b :]
            if not self.drop_last and len(rest) >= self.world_size:
                W = self.world_size
                mine.append(rest[self.rank * len(rest) // W : (self.rank + 1) * len(rest) // W])
            return mine
        mine = list(range(self.rank, self.n, self.world_size))
        b = max(1, self.batch_size // self.world_size)
        return [mine[i : i + b] for i in range(0, len(mine), b)]

    def __iter__(self):
        batches = self._batches()
        skip, self.skip = self.skip, 0
        yield from batches[skip:]

    def __len__(self) -> int:
        return len(self._batches())


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position inside an epoch is saved in Lightning checkpoints.

    ``progress`` is a callable returning how many batches of the current epoch were trained on; the
    trainer's LightningModule provides it.
    """

    progress: Callable[[], int] | None = None

    def state_dict(self) -> dict[str, Any]:
        done = int(self.progress()) if self.progress is not None else 0
        return {"epoch": self.batch_sampler.epoch, "batches_done": done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_sampler.set_epoch(state["epoch"])
        self.batch_sampler.skip = int(state["batches_done"])


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    rank: int,
    world_size: int,
    collate: Callable,
    num_workers: int = 0,
    drop_last: bool = True,
) -> DataLoader:
    """A (resumable, for training) DataLoader over ``dataset`` with the order described above."""
    sampler = EpochBatchSampler(
        len(dataset), batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last
    )
    cls = ResumableDataLoader if shuffle else DataLoader
    gen = torch.Generator().manual_seed(epoch_seed(seed, -1 - rank))  # workers' base seeds, not the order
    return cls(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        generator=gen,
        persistent_workers=num_workers > 0,
    )
