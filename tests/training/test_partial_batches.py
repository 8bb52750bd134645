"""Task.drop_last = False keeps the last partial training batch (springs: N = 300 with batch 200 sees all 300)."""

from lieconv.training.data import EpochBatchSampler, train_steps_per_epoch


def test_partial_last_batch_is_kept_and_counted():
    one = list(EpochBatchSampler(10, 4, shuffle=True, seed=3, drop_last=False))
    assert [len(b) for b in one] == [4, 4, 2] and sorted(i for b in one for i in b) == list(range(10))
    dropped = list(EpochBatchSampler(10, 4, shuffle=True, seed=3))
    assert dropped == one[:2]  # same order, the default drops the rest
    assert train_steps_per_epoch(300, 200, drop_last=False) == 2 and train_steps_per_epoch(300, 200) == 1
    assert train_steps_per_epoch(30, 200, drop_last=False) == 1  # N <= batch: the whole set per step
    # two processes: together they see every example once, the partial batch split in two
    parts = [
        list(EpochBatchSampler(10, 4, shuffle=True, seed=3, rank=r, world_size=2, drop_last=False)) for r in range(2)
    ]
    assert [len(b) for b in parts[0]] == [2, 2, 1] and [len(b) for b in parts[1]] == [2, 2, 1]
    assert sorted(i for p in parts for b in p for i in b) == list(range(10))
    for r in range(2):  # the full batches are the one-process slices
        assert parts[r][:2] == [b[2 * r : 2 * r + 2] for b in one[:2]]
    assert train_steps_per_epoch(10, 4, drop_last=False, world_size=2) == 3
    # a remainder smaller than the number of processes is dropped (every process must take a step)
    assert [len(b) for b in EpochBatchSampler(9, 4, shuffle=True, rank=0, world_size=2, drop_last=False)] == [2, 2]
    assert train_steps_per_epoch(9, 4, drop_last=False, world_size=2) == 2
