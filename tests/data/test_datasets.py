"""Sampling balance, per-(seed, epoch) determinism, crops and padding, and the DataModule's loaders."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from emoshift.corpora.base import Utterance
from emoshift.data.datasets import EmotionDataModule, EpochSampler, Item, SpectrogramDataset, sampling_weights

N_MELS = 8
CROP = 50  # frames


def _item(corpus: int, label: int, k: int) -> Item:
    name = ("big", "small")[corpus]
    utt = Utterance(
        id=f"{name}/{label}-{k}",
        path=f"/nowhere/{name}/{label}-{k}.wav",
        corpus=name,
        speaker=f"{name}/s{k % 3}",
        gender=None,
        emotion=str(label),
        native_label=str(label),
    )
    return Item(utt, label, corpus)


@pytest.fixture(scope="module")
def imbalanced() -> list[Item]:
    """Corpus 0: 640 items over 4 classes (400/160/60/20). Corpus 1: 35 items over 3 classes (25/8/2)."""
    items = []
    for label, n in enumerate([400, 160, 60, 20]):
        items += [_item(0, label, k) for k in range(n)]
    for label, n in enumerate([25, 8, 2]):
        items += [_item(1, label, k) for k in range(n)]
    return items


def _draw(items: list[Item], mode: str, n: int = 120_000) -> list[Item]:
    sampler = EpochSampler(len(items), weights=sampling_weights(items, mode), seed=1, num_samples=n)
    return [items[i] for i in sampler]


# ------------------------------------------------------------------------------------------------ sampling


def test_class_corpus_balances_corpora_then_classes(imbalanced: list[Item]) -> None:
    drawn = _draw(imbalanced, "class_corpus")
    by_corpus = Counter(it.corpus for it in drawn)
    assert by_corpus[0] / len(drawn) == pytest.approx(0.5, abs=0.01)
    assert by_corpus[1] / len(drawn) == pytest.approx(0.5, abs=0.01)
    for corpus, n_classes in ((0, 4), (1, 3)):
        labels = Counter(it.label for it in drawn if it.corpus == corpus)
        assert len(labels) == n_classes
        for count in labels.values():
            assert count / by_corpus[corpus] == pytest.approx(1 / n_classes, abs=0.015)


def test_class_corpus_weights_give_every_cell_equal_mass(imbalanced: list[Item]) -> None:
    w = sampling_weights(imbalanced, "class_corpus")
    assert w is not None and w.sum() == pytest.approx(1.0)
    mass: Counter[tuple[int, int]] = Counter()
    for it, wi in zip(imbalanced, w, strict=True):
        mass[(it.corpus, it.label)] += wi
    for (corpus, _), m in mass.items():
        assert m == pytest.approx(1 / (2 * (4 if corpus == 0 else 3)))


def test_class_equalises_classes_across_corpora(imbalanced: list[Item]) -> None:
    drawn = _draw(imbalanced, "class")
    labels = Counter(it.label for it in drawn)
    assert sorted(labels) == [0, 1, 2, 3]
    for count in labels.values():
        assert count / len(drawn) == pytest.approx(0.25, abs=0.01)


def test_none_is_a_permutation(imbalanced: list[Item]) -> None:
    assert sampling_weights(imbalanced, "none") is None
    sampler = EpochSampler(len(imbalanced), weights=None, seed=0)
    order = list(sampler)
    assert len(sampler) == len(imbalanced)
    assert sorted(order) == list(range(len(imbalanced)))
    assert order != list(range(len(imbalanced)))  # shuffled


def test_unknown_sampling_mode_is_refused(imbalanced: list[Item]) -> None:
    with pytest.raises(ValueError, match="unknown sampling mode"):
        sampling_weights(imbalanced, "speaker")


@pytest.mark.parametrize("mode", ["none", "class_corpus"])
def test_sampler_is_a_function_of_seed_and_epoch(imbalanced: list[Item], mode: str) -> None:
    w = sampling_weights(imbalanced, mode)

    def order(seed: int, epoch: int) -> list[int]:
        s = EpochSampler(len(imbalanced), weights=w, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(0, 0) == order(0, 0)
    assert order(0, 3) == order(0, 3)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    s = EpochSampler(len(imbalanced), weights=w, seed=0)
    first = list(s)
    s.set_epoch(5)
    list(s)
    s.set_epoch(0)
    assert list(s) == first  # going back to an epoch replays it (what a resumed run relies on)
    assert len(s) == len(imbalanced)


# ------------------------------------------------------------------------------------------------ crops


class FakeStore:
    """What SpectrogramDataset needs of a FeatureStore: ``get(id) -> (n_mels, frames)``."""

    def __init__(self, specs: dict[str, np.ndarray]) -> None:
        self.specs = specs

    def get(self, utt_id: str) -> np.ndarray:
        return self.specs[utt_id].copy()

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self.specs


def _spec(frames: int, seed: int) -> np.ndarray:
    # strictly increasing along time, so any window of it has one offset
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.uniform(0.5, 1.5, size=frames)).astype(np.float32)
    return base[None, :] + np.arange(N_MELS, dtype=np.float32)[:, None] * 1000.0  # (n_mels, frames)


@pytest.fixture(scope="module")
def crop_data() -> tuple[list[Item], dict[str, FakeStore]]:
    lengths = [400, 300, 237, 51, CROP, 20, 1]  # long, long, long, just longer, exact, short, one frame
    items = [_item(0, k % 4, k) for k in range(len(lengths))]
    specs = {it.utt.id: _spec(n, k) for k, (it, n) in enumerate(zip(items, lengths, strict=True))}
    return items, {"big": FakeStore(specs)}


def _offset(x: torch.Tensor, spec: np.ndarray) -> int:
    """Where the crop ``x (1, n_mels, CROP)`` starts in ``spec``; fails if it is not a window of it."""
    row = spec[0]
    start = int(np.searchsorted(row, float(x[0, 0, 0])))
    np.testing.assert_array_equal(x[0].numpy(), spec[:, start : start + CROP])
    return start


def test_training_crops_are_deterministic_per_epoch_and_differ_between_epochs(crop_data) -> None:  # type: ignore[no-untyped-def]
    items, stores = crop_data
    ds = SpectrogramDataset(items, stores, frames=CROP, train=True, seed=7)
    long_ones = range(3)
    offsets: dict[int, list[int]] = {i: [] for i in long_ones}
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in long_ones:
            x, label, corpus, index = ds[i]
            assert x.shape == (1, N_MELS, CROP) and x.dtype == torch.float32 and x.is_contiguous()
            assert (label, corpus, index) == (items[i].label, 0, i)
            spec = stores["big"].get(items[i].utt.id)
            off = _offset(x, spec)
            assert torch.equal(ds[i][0], x)  # same (seed, epoch, index): same crop
            offsets[i].append(off)
    for i in long_ones:
        assert len(set(offsets[i])) >= 4, offsets[i]  # a new crop almost every epoch
    assert len({offsets[i][0] for i in long_ones}) > 1  # items do not share one offset
    again = SpectrogramDataset(items, stores, frames=CROP, train=True, seed=7)
    again.set_epoch(3)
    assert _offset(again[0][0], stores["big"].get(items[0].utt.id)) == offsets[0][3]
    other_seed = SpectrogramDataset(items, stores, frames=CROP, train=True, seed=8)
    assert [_offset(other_seed[i][0], stores["big"].get(items[i].utt.id)) for i in long_ones] != [
        offsets[i][0] for i in long_ones
    ]


def test_training_crops_cover_the_whole_utterance(crop_data) -> None:  # type: ignore[no-untyped-def]
    items, stores = crop_data
    ds = SpectrogramDataset(items, stores, frames=CROP, train=True, seed=0)
    spec = stores["big"].get(items[3].utt.id)  # 51 frames: offsets 0 and 1 only
    seen = set()
    for epoch in range(40):
        ds.set_epoch(epoch)
        seen.add(_offset(ds[3][0], spec))
    assert seen == {0, 1}


def test_evaluation_uses_the_centre_crop_every_epoch(crop_data) -> None:  # type: ignore[no-untyped-def]
    items, stores = crop_data
    ds = SpectrogramDataset(items, stores, frames=CROP, train=False, seed=0)
    for i, n in enumerate([400, 300, 237, 51]):
        spec = stores["big"].get(items[i].utt.id)
        for epoch in (0, 4):
            ds.set_epoch(epoch)
            assert _offset(ds[i][0], spec) == (n - CROP) // 2


@pytest.mark.parametrize("train", [True, False])
def test_short_items_are_zero_padded_at_the_end(crop_data, train: bool) -> None:  # type: ignore[no-untyped-def]
    items, stores = crop_data
    ds = SpectrogramDataset(items, stores, frames=CROP, train=train, seed=0)
    for i, n in ((4, CROP), (5, 20), (6, 1)):
        x = ds[i][0]
        spec = stores["big"].get(items[i].utt.id)
        assert x.shape == (1, N_MELS, CROP)
        np.testing.assert_array_equal(x[0, :, :n].numpy(), spec)
        assert not x[0, :, n:].any()


# ------------------------------------------------------------------------------------------------ module


@pytest.mark.parametrize("num_workers", [0, 1])
def test_train_loader_follows_the_epoch_set_after_iter(crop_data, num_workers: int) -> None:  # type: ignore[no-untyped-def]
    """Lightning calls iter() on the train loader before it sets the epoch (and, when resuming, before the
    checkpoint's epoch is known): the batches must still be that epoch's order and crops, workers or not."""
    items, stores = crop_data
    dm = EmotionDataModule(
        prepare=lambda: (
            SpectrogramDataset(items, stores, frames=CROP, train=True, seed=5),
            SpectrogramDataset(items[:2], stores, frames=CROP, train=False, seed=5),
        ),
        batch_size=3,
        sampling="class",
        seed=5,
        num_workers=num_workers,
    )
    dm.setup("fit")

    def epoch_batches(epoch: int, set_before_iter: bool) -> list[dict[str, torch.Tensor]]:
        dm.set_epoch(0)
        loader = dm.train_dataloader()
        if set_before_iter:
            dm.set_epoch(epoch)
        it = iter(loader)
        dm.set_epoch(epoch)
        return list(it)

    expected = epoch_batches(3, set_before_iter=True)
    got = epoch_batches(3, set_before_iter=False)
    assert [b["index"].tolist() for b in got] == [b["index"].tolist() for b in expected]
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(got, expected, strict=True))
    epoch0 = epoch_batches(0, set_before_iter=True)
    assert [b["index"].tolist() for b in epoch0] != [b["index"].tolist() for b in expected]
    batch = expected[0]
    assert batch["x"].shape == (3, 1, N_MELS, CROP)
    assert batch["y"].dtype == batch["corpus"].dtype == batch["index"].dtype == torch.int64
    assert [items[i].label for i in batch["index"].tolist()] == batch["y"].tolist()
    val = list(dm.val_dataloader())
    assert [b["index"].tolist() for b in val] == [[0, 1]]  # in order, centre crops
