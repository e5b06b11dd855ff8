"""Length bucketing: the padded-size cap, exact coverage, determinism per (seed, epoch), and collation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from emoshift.data.bucketing import BucketBatchSampler, collate_waveforms

CAP = 16000 * 12  # 12 s of padded audio per batch


@pytest.fixture
def lengths() -> list[int]:
    rng = np.random.default_rng(0)
    return [int(x) for x in rng.integers(16000, 16000 * 5, size=537)]  # 1-5 s clips


def _padded(batch: list[int], lengths: list[int]) -> int:
    return len(batch) * max(lengths[i] for i in batch)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("chunk_size", [50, 1000])
def test_every_index_once_and_cap_respected(lengths: list[int], shuffle: bool, chunk_size: int) -> None:
    sampler = BucketBatchSampler(
        lengths, max_batch_samples=CAP, shuffle=shuffle, seed=3, chunk_size=chunk_size
    )
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(_padded(b, lengths) <= CAP for b in batches)
        assert len(sampler) == len(batches)


def test_batches_group_similar_lengths(lengths: list[int]) -> None:
    sampler = BucketBatchSampler(lengths, max_batch_samples=CAP, shuffle=True, seed=0, chunk_size=200)
    batches = list(sampler)
    waste = sum(_padded(b, lengths) for b in batches) / sum(lengths) - 1
    assert waste < 0.1
    assert np.mean([len(b) for b in batches]) > 3


def test_unshuffled_is_sorted_by_length(lengths: list[int]) -> None:
    batches = list(BucketBatchSampler(lengths, max_batch_samples=CAP, shuffle=False, seed=0))
    order = [lengths[i] for b in batches for i in b]
    assert order == sorted(order)


def test_deterministic_per_seed_and_epoch(lengths: list[int]) -> None:
    def run(seed: int, epoch: int) -> list[list[int]]:
        s = BucketBatchSampler(lengths, max_batch_samples=CAP, shuffle=True, seed=seed, chunk_size=100)
        s.set_epoch(epoch)
        return list(s)

    assert run(1, 4) == run(1, 4)
    assert run(1, 4) != run(1, 5)
    assert run(1, 4) != run(2, 4)


def test_item_longer_than_cap_gets_its_own_batch() -> None:
    lengths = [100, 5000, 120, 90]
    batches = list(BucketBatchSampler(lengths, max_batch_samples=1000, shuffle=True, seed=0))
    assert [1] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]


def test_pre_drawn_indices_with_repeats(lengths: list[int]) -> None:
    drawn = [int(i) for i in np.random.default_rng(1).integers(0, 40, size=300)]  # repeats, most items absent
    sampler = BucketBatchSampler.from_indices(drawn, lengths, max_batch_samples=CAP, shuffle=True, seed=0)
    batches = list(sampler)
    assert Counter(i for b in batches for i in b) == Counter(drawn)
    assert all(_padded(b, lengths) <= CAP for b in batches)
    with pytest.raises(TypeError, match="re-iterable"):
        BucketBatchSampler(lengths, max_batch_samples=CAP, shuffle=True, seed=0, indices=iter(drawn))
    with pytest.raises(IndexError):
        list(BucketBatchSampler(lengths, max_batch_samples=CAP, shuffle=True, seed=0, indices=[len(lengths)]))


def test_weighted_draws_follow_weights_per_epoch(lengths: list[int]) -> None:
    weights = np.zeros(len(lengths))
    weights[:10] = 1.0
    sampler = BucketBatchSampler(
        lengths, max_batch_samples=CAP, shuffle=True, seed=0, weights=weights, num_samples=200
    )
    first = list(sampler)
    drawn = [i for b in first for i in b]
    assert len(drawn) == 200 and set(drawn) <= set(range(10))
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_drop_last_drops_only_the_short_final_batch(lengths: list[int]) -> None:
    full = list(BucketBatchSampler(lengths, max_batch_samples=CAP, shuffle=False, seed=0))
    dropped = list(BucketBatchSampler(lengths, max_batch_samples=CAP, shuffle=False, seed=0, drop_last=True))
    assert dropped == full[:-1]

    def shuffled(drop_last: bool) -> Counter[tuple[int, ...]]:
        s = BucketBatchSampler(
            lengths, max_batch_samples=CAP, shuffle=True, seed=0, chunk_size=50, drop_last=drop_last
        )
        return Counter(tuple(b) for b in s)

    gone = shuffled(False) - shuffled(True)  # chunk leftovers join the next chunk: one short batch at most
    assert sum(gone.values()) == 1 and shuffled(True) <= shuffled(False)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_batch_samples"):
        BucketBatchSampler([1, 2], max_batch_samples=0, shuffle=False, seed=0)
    with pytest.raises(ValueError, match="either"):
        BucketBatchSampler([1, 2], max_batch_samples=9, shuffle=False, seed=0, indices=[0], weights=[1, 1])


def test_collate_waveforms_pads_with_zeros_and_masks() -> None:
    items = [
        np.ones(3, dtype=np.float32),
        np.full(5, 2.0, dtype=np.float64),
        np.array([7.0], dtype=np.float32),
    ]
    wave, mask = collate_waveforms(items)
    assert wave.shape == (3, 5) and wave.dtype == torch.float32
    assert mask.dtype == torch.long
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert wave.tolist() == [[1, 1, 1, 0, 0], [2, 2, 2, 2, 2], [7, 0, 0, 0, 0]]
    readonly = np.ones(4, dtype=np.float32)
    readonly.flags.writeable = False
    assert collate_waveforms([readonly])[0].shape == (1, 4)
    with pytest.raises(ValueError):
        collate_waveforms([])
