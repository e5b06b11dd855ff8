"""Length-bucketed batches for variable-length waveforms, and the collate function that pads them.

Speech clips vary in length (CREMA-D: 1.3-5 s); a batch pads every clip to its longest, so batching clips of
similar length wastes little compute. :class:`BucketBatchSampler` caps the *padded* size of a batch
(``max length in batch * batch size <= max_batch_samples``, e.g. ``max_batch_seconds * 16000``), which keeps
memory flat whatever the clip lengths: many short clips or a few long ones.

Shuffled epochs follow lhotse's recipe: shuffle, cut into chunks, sort each chunk by length, cut it into capped
batches, shuffle the batches. Randomness is a pure function of ``(seed, epoch)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices of similar length whose padded size stays under ``max_batch_samples``.

    Args:
        lengths: length (samples) of every item of the dataset.
        max_batch_samples: cap on ``len(batch) * max(lengths in batch)``; an item longer than the cap gets a
            batch of its own.
        shuffle: shuffle per epoch (else: every item once, sorted by length, for the least padding).
        seed: with ``set_epoch(epoch)``, fixes the order of each epoch.
        drop_last: drop the epoch's last batch when it closed because the items ran out (not because of the cap).
        indices: the items to batch, in place of ``range(len(lengths))``; may repeat an item (a list drawn by a
            class-balanced sampler). A sequence is used as given every epoch; a re-iterable (e.g. a torch
            Sampler) is iterated afresh each epoch.
        weights: alternatively, draw ``num_samples`` items (default ``len(lengths)``) with replacement, item
            ``i`` with probability proportional to ``weights[i]``, afresh each epoch.
        chunk_size: items per sorted chunk when shuffling (larger: less padding, less randomness).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        max_batch_samples: int,
        shuffle: bool,
        seed: int,
        drop_last: bool = False,
        indices: Iterable[int] | None = None,
        weights: Sequence[float] | None = None,
        num_samples: int | None = None,
        chunk_size: int = 1000,
    ) -> None:
        if max_batch_samples < 1:
            raise ValueError(f"max_batch_samples must be positive, got {max_batch_samples}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if indices is not None and weights is not None:
            raise ValueError("pass either indices or weights, not both")
        if indices is not None and iter(indices) is indices:
            raise TypeError("indices must be re-iterable (a list or a Sampler), not a one-shot iterator")
        if weights is not None and len(weights) != len(lengths):
            raise ValueError(f"weights has {len(weights)} entries for {len(lengths)} items")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_batch_samples = int(max_batch_samples)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.indices = indices
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.num_samples = num_samples
        self.chunk_size = chunk_size
        self.epoch = 0

    @classmethod
    def from_indices(
        cls, indices: Iterable[int], lengths: Sequence[int], **kwargs: object
    ) -> BucketBatchSampler:
        """Bucket a pre-drawn list of indices (e.g. from a class-balanced sampler)."""
        return cls(lengths, indices=indices, **kwargs)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _items(self, rng: np.random.Generator) -> np.ndarray:
        """This epoch's item indices, in draw order."""
        if self.weights is not None:
            n = self.num_samples if self.num_samples is not None else len(self.lengths)
            return rng.choice(len(self.lengths), size=n, replace=True, p=self.weights / self.weights.sum())
        if self.indices is not None:
            items = np.fromiter((int(i) for i in self.indices), dtype=np.int64)
        else:
            items = np.arange(len(self.lengths), dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= len(self.lengths)):
            raise IndexError(
                f"indices must lie in [0, {len(self.lengths)}), got {items.min()}..{items.max()}"
            )
        return items

    def _pack(self, items: np.ndarray) -> tuple[list[list[int]], list[int]]:
        """Greedy capped batches over ``items`` sorted by length; returns (closed batches, open remainder)."""
        order = items[np.argsort(self.lengths[items], kind="stable")]
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order.tolist():
            n = int(self.lengths[i])
            if current and max(longest, n) * (len(current) + 1) > self.max_batch_samples:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, n)
        return batches, current

    def batches(self) -> list[list[int]]:
        """The batches of the current epoch (a pure function of seed, epoch and the inputs)."""
        rng = np.random.default_rng((self.seed, self.epoch))
        items = self._items(rng)
        if not self.shuffle:
            batches, rest = self._pack(items)
            return batches + ([rest] if rest and not self.drop_last else [])
        items = items[rng.permutation(len(items))]
        batches, rest = [], []
        for start in range(0, len(items), self.chunk_size):
            # the previous chunk's unfilled batch joins this chunk, so only the epoch's last batch can be short
            chunk = np.concatenate([np.asarray(rest, dtype=np.int64), items[start : start + self.chunk_size]])
            closed, rest = self._pack(chunk)
            batches.extend(closed)
        if rest and not self.drop_last:
            batches.append(rest)
        return [batches[k] for k in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def collate_waveforms(items: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-d waveforms at the end: -> wave ``(B, S_max)`` float32, attention_mask ``(B, S_max)`` long."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    longest = max(len(w) for w in items)
    wave = np.zeros((len(items), longest), dtype=np.float32)  # (B, S_max)
    mask = np.zeros((len(items), longest), dtype=np.int64)  # (B, S_max)
    for b, w in enumerate(items):
        wave[b, : len(w)] = w
        mask[b, : len(w)] = 1
    return torch.from_numpy(wave), torch.from_numpy(mask)
