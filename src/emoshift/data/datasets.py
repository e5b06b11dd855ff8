"""Datasets, samplers and the Lightning DataModule.

Items are plain records (utterance, label index, corpus index, and the ratings of a dimensional run). The DataModule does its I/O in ``setup()``:
nothing in ``__init__`` touches the disk. Randomness (crops, sampling order) derives from (seed, epoch), so an
interrupted run that resumes at epoch k sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from emoshift.core.audio import crop_or_pad
from emoshift.corpora.base import Utterance


@dataclass(frozen=True)
class Item:
    utt: Utterance
    label: int
    corpus: int  # index into the list of training corpora
    target: tuple[float, ...] | None = None  # task dimensional: the rescaled ratings, in data.targets order


# ------------------------------------------------------------------------------------------------ datasets


class SpectrogramDataset(Dataset[tuple[torch.Tensor, int, int, int]]):
    """Cached log-mels cropped/padded to ``frames``: random crop for training, centred otherwise.

    ``channel`` (training only): ``(utterance, rng) -> log-mel or None``, the clip through the channel effects
    drawn from ``rng`` (seeded per (seed, epoch, item)) with its features computed afresh, or None when the draw
    leaves it clean and the cached log-mel is used (the model family builds it: it knows the front end)."""

    def __init__(
        self,
        items: Sequence[Item],
        stores: dict[str, Any],
        *,
        frames: int,
        train: bool,
        seed: int,
        channel: Callable[[Utterance, np.random.Generator], np.ndarray | None] | None = None,
    ) -> None:
        self.items = list(items)
        self.stores = stores  # corpus name -> FeatureStore (memory-mapped)
        self.frames = frames
        self.train = train
        self.seed = seed
        self.channel = channel if train else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int]:
        it = self.items[i]
        perturbed = None
        if self.channel is not None:
            perturbed = self.channel(it.utt, np.random.default_rng((self.seed, self.epoch, i, 1)))
        spec = self.stores[it.utt.corpus].get(it.utt.id) if perturbed is None else perturbed  # (n_mels, frames_i)
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            spec = crop_or_pad(spec, self.frames, mode="random", rng=rng)
        else:
            spec = crop_or_pad(spec, self.frames, mode="center")
        x = torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32)).unsqueeze(0)  # (1, n_mels, T)
        return x, it.label, it.corpus, i


class WaveformDataset(Dataset[tuple[np.ndarray, int, int, int]]):
    """16 kHz waveforms for SSL fine-tuning; training crops long clips to ``max_seconds`` at random."""

    def __init__(
        self, items: Sequence[Item], *, sample_rate: int, max_seconds: float, train: bool, seed: int, trim: bool
    ) -> None:
        self.items = list(items)
        self.sample_rate = sample_rate
        self.max_len = int(max_seconds * sample_rate)
        self.train = train
        self.seed = seed
        self.trim = trim
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def length(self, i: int) -> int:
        """Samples after cropping (for length bucketing), from the scanned duration."""
        d = self.items[i].utt.duration_s or (self.max_len / self.sample_rate)
        return min(int(d * self.sample_rate), self.max_len)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int, int]:
        from emoshift.core.audio import load_utterance

        it = self.items[i]
        wave = load_utterance(it.utt, self.sample_rate, trim=self.trim, reject_silent=False)  # its segment
        if len(wave) > self.max_len:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            wave = crop_or_pad(wave, self.max_len, mode="random" if self.train else "center", rng=rng)
        return wave, it.label, it.corpus, i


class EmbeddingDataset(Dataset[tuple[torch.Tensor, int, int, int]]):
    """Cached pooled SSL layer embeddings ``(L+1, E)`` for frozen-encoder training."""

    def __init__(self, items: Sequence[Item], stores: dict[str, Any]) -> None:
        self.items = list(items)
        self.stores = stores

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int]:
        it = self.items[i]
        emb = self.stores[it.utt.corpus].get(it.utt.id)  # (L+1, E)
        return torch.from_numpy(np.asarray(emb, dtype=np.float32)), it.label, it.corpus, i


def collate_waveform_batch(batch: list[tuple[np.ndarray, int, int, int]]) -> dict[str, torch.Tensor]:
    from emoshift.data.bucketing import collate_waveforms

    wave, mask = collate_waveforms([b[0] for b in batch])  # (B, S), (B, S)
    return {
        "x": wave,
        "attention_mask": mask,
        "y": torch.tensor([b[1] for b in batch]),
        "corpus": torch.tensor([b[2] for b in batch]),
        "index": torch.tensor([b[3] for b in batch]),
    }


def collate_tensor_batch(batch: list[tuple[torch.Tensor, int, int, int]]) -> dict[str, torch.Tensor]:
    return {
        "x": torch.stack([b[0] for b in batch]),
        "y": torch.tensor([b[1] for b in batch]),
        "corpus": torch.tensor([b[2] for b in batch]),
        "index": torch.tensor([b[3] for b in batch]),
    }


def collate_for(max_batch_samples: int | None) -> Callable[[list[Any]], dict[str, torch.Tensor]]:
    """The collate function of a family's batches: padded waveforms (length-bucketed families), else tensors."""
    return collate_tensor_batch if max_batch_samples is None else collate_waveform_batch


class UnlabelledBatches:
    """A target corpus's unlabelled items (``data.unlabelled``) for the corpus classifier of domain-adversarial
    training: one batch per training step, drawn without replacement as a pure function of (seed, step), crops
    of (seed, epoch) as the training set's; a resumed run draws what an uninterrupted one would. The items'
    ``label`` is -1 (no label was read); their ``corpus`` is their domain index."""

    def __init__(
        self, dataset: Dataset[Any], collate: Callable[[list[Any]], dict[str, torch.Tensor]], *, seed: int
    ) -> None:
        self.dataset = dataset
        self.collate = collate
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def draw(self, step: int, epoch: int, size: int) -> dict[str, torch.Tensor]:
        """Training step ``step``'s batch of ``size`` items (all of them when fewer)."""
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        rng = np.random.default_rng((self.seed, 15_485_863, step))
        picked = rng.choice(len(self), size=min(size, len(self)), replace=False)
        return self.collate([self.dataset[int(i)] for i in picked])


# ------------------------------------------------------------------------------------------------ sampling


def sampling_weights(items: Sequence[Item], mode: str) -> np.ndarray | None:
    """Per-item weights so that draws are balanced as ``mode`` promises.

    ``class``: every class equally likely. ``class_corpus``: every corpus equally likely, and within a corpus
    every class equally likely (each (corpus, class) cell gets the same mass). ``none``: None (plain shuffle).
    """
    if mode == "none":
        return None
    if mode not in ("class", "class_corpus"):
        raise ValueError(f"unknown sampling mode {mode!r}")
    # class: one cell per class; class_corpus: one cell per (corpus, class)
    keys = [(it.corpus if mode == "class_corpus" else 0, it.label) for it in items]
    counts = Counter(keys)
    # each group (a corpus, or everything) gets equal mass, split equally over its classes
    classes_per_group = Counter(g for g, _ in counts)
    n_groups = len(classes_per_group)
    w = np.array([1.0 / (n_groups * classes_per_group[k[0]] * counts[k]) for k in keys])
    return w / w.sum()


class EpochSampler(Sampler[int]):
    """Seeded per-epoch order: a permutation (``weights=None``) or ``num_samples`` weighted draws with replacement.

    Hand-written rather than torch's WeightedRandomSampler so the order is a pure function of (seed, epoch),
    which makes resumed runs identical to uninterrupted ones.
    """

    def __init__(self, n: int, *, weights: np.ndarray | None, seed: int, num_samples: int | None = None) -> None:
        self.n = n
        self.weights = weights
        self.seed = seed
        self.num_samples = num_samples or n
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        rng = np.random.default_rng((self.seed, 7919, self.epoch))
        if self.weights is None:
            return rng.permutation(self.n).tolist()
        return rng.choice(self.n, size=self.num_samples, replace=True, p=self.weights).tolist()

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.indices())

    def __len__(self) -> int:
        return self.num_samples if self.weights is not None else self.n


class BucketedEpochBatches(Sampler[list[int]]):
    """Length-bucketed batches (cap on padded samples) over an EpochSampler's draws; sharded for DDP."""

    def __init__(
        self, base: EpochSampler, lengths: Sequence[int], *, max_batch_samples: int, rank: int = 0, world: int = 1
    ) -> None:
        self.base = base
        self.lengths = list(lengths)
        self.max_batch_samples = max_batch_samples
        self.rank = rank
        self.world = world

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def _raw_batches(self, epoch: int) -> list[list[int]]:
        from emoshift.data.bucketing import BucketBatchSampler

        saved = self.base.epoch
        self.base.set_epoch(epoch)
        draws = self.base.indices()
        self.base.set_epoch(saved)
        bucket = BucketBatchSampler(
            self.lengths, max_batch_samples=self.max_batch_samples, shuffle=True, seed=self.base.seed, indices=draws
        )
        bucket.set_epoch(epoch)
        return list(bucket)

    def _count(self) -> int:
        """Batches per epoch, fixed (Lightning sizes an epoch once): the count epoch 0 gives, rounded to ranks."""
        if not hasattr(self, "_n"):
            self._n = max(self.world, len(self._raw_batches(0)) // self.world * self.world)
        return self._n

    def batches(self) -> list[list[int]]:
        out = self._raw_batches(self.base.epoch)
        n = self._count()
        # Other epochs draw other lengths and may bucket into a different number of batches: split the
        # largest batches (the cap still holds) or drop the last ones so every epoch has exactly n.
        while len(out) < n:
            i = max(range(len(out)), key=lambda j: len(out[j]))
            if len(out[i]) < 2:
                break
            half = len(out[i]) // 2
            out[i : i + 1] = [out[i][:half], out[i][half:]]
        out = out[:n]
        per = len(out) // self.world
        return out[self.rank * per : (self.rank + 1) * per]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.batches())

    def __len__(self) -> int:
        return self._count() // self.world


class EpochDataLoader(DataLoader):  # type: ignore[type-arg]
    """A DataLoader whose iterator starts at the first batch, not at ``iter()``.

    Lightning calls ``iter()`` on the training loader while setting up: before ``on_train_epoch_start`` sets
    the epoch and, when resuming, before the checkpoint's epoch is restored. Worker processes copy the dataset
    (its epoch picks the random crops) and the sampler draws the epoch's order when the iterator starts, so a
    resumed run with ``num_workers > 0`` would replay epoch 0 first. Starting lazily, both see the right epoch.
    """

    def __iter__(self):  # type: ignore[no-untyped-def]
        return _started_on_first_batch(super().__iter__)


def _started_on_first_batch(start: Any) -> Any:
    yield from start()


def _items(ds: Dataset[Any]) -> Sequence[Item]:
    """The items a dataset serves (every dataset here keeps them as ``items``)."""
    items = getattr(ds, "items", None)
    if items is None:
        raise TypeError(f"{type(ds).__name__} has no 'items': EmotionDataModule needs datasets of Items")
    return list(items)


class EmotionDataModule(L.LightningDataModule):
    """Training and validation loaders over prepared datasets; the heavy I/O is done in ``setup``.

    ``prepare`` is a callable returning ``(train_set, val_set)``, datasets whose ``items`` are the
    :class:`Item` s they serve (the model family builds them: it knows its input); train.py passes one over
    stores it filled already, so constructing the module is free. ``max_batch_samples`` set: batches are
    length-bucketed under that cap of padded samples (datasets with ``length(i)``, waveforms); unset:
    ``batch_size`` items per batch.
    """

    def __init__(
        self,
        *,
        prepare: Callable[[], tuple[Dataset[Any], Dataset[Any]]],
        batch_size: int,
        sampling: str,
        seed: int,
        max_batch_samples: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.prepare = prepare
        self.batch_size = batch_size
        self.sampling = sampling
        self.seed = seed
        self.max_batch_samples = max_batch_samples
        self.num_workers = num_workers
        self.train_set: Dataset[Any] | None = None
        self.val_set: Dataset[Any] | None = None
        self.train_sampler: EpochSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set, self.val_set = self.prepare()
        self.train_items = list(_items(self.train_set))
        self.val_items = list(_items(self.val_set))
        self.train_sampler = EpochSampler(
            len(self.train_items), weights=sampling_weights(self.train_items, self.sampling), seed=self.seed
        )

    def set_epoch(self, epoch: int) -> None:
        for ds in (self.train_set, self.val_set):
            set_epoch = getattr(ds, "set_epoch", None)
            if set_epoch is not None:
                set_epoch(epoch)
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)

    def _loader(self, ds: Dataset[Any], *, train: bool) -> DataLoader[Any]:
        common: dict[str, Any] = {"num_workers": self.num_workers, "persistent_workers": False}
        if self.max_batch_samples is not None:
            rank = self.trainer.global_rank if self.trainer else 0
            world = self.trainer.world_size if self.trainer else 1
            n = len(ds)  # type: ignore[arg-type]
            lengths = [ds.length(i) for i in range(n)]  # type: ignore[attr-defined]
            base = self.train_sampler if train and self.train_sampler else EpochSampler(n, weights=None, seed=self.seed)
            batches = BucketedEpochBatches(
                base, lengths, max_batch_samples=self.max_batch_samples, rank=rank, world=world
            )
            return EpochDataLoader(ds, batch_sampler=batches, collate_fn=collate_waveform_batch, **common)
        return EpochDataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=self.train_sampler if train else None,
            shuffle=False,
            collate_fn=collate_tensor_batch,
            drop_last=False,
            **common,
        )

    def calibration_dataloader(self) -> DataLoader[Any]:
        """Training items in a fixed order, without augmentation (BatchNorm recalibration)."""
        assert self.train_set is not None, "setup() was not called"
        if self.max_batch_samples is not None:
            return self._loader(self.train_set, train=False)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=False, collate_fn=collate_tensor_batch)

    def train_dataloader(self) -> DataLoader[Any]:
        assert self.train_set is not None, "setup() was not called"  # internal invariant, not user input
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        assert self.val_set is not None, "setup() was not called"
        return self._loader(self.val_set, train=False)
