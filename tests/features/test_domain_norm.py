"""Per-corpus input statistics (model.domain_norm: corpus): equal to a hand computation, persisted exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoshift.features.domain_norm import (
    CorpusNormStore,
    CorpusStats,
    DomainStatsError,
    frame_moments,
    item_moments,
    row_moments,
    training_stats,
)
from emoshift.features.speaker_norm import STD_FLOOR, Moments


class Store:
    """A log-mel store stand-in: id -> (n_mels, T)."""

    def __init__(self, specs: dict[str, np.ndarray]) -> None:
        self.specs = specs
        self.ids = list(specs)
        self.skipped: list = []

    def __contains__(self, uid: object) -> bool:
        return uid in self.specs

    def __len__(self) -> int:
        return len(self.specs)

    def frames(self, uid: str) -> int:
        return self.specs[uid].shape[1]

    def get(self, uid: str) -> np.ndarray:
        return self.specs[uid]


def test_frame_moments_are_the_moments_of_every_frame_pooled() -> None:
    rng = np.random.default_rng(0)
    specs = {f"c/{i}": (rng.normal(-40, 10, (4, t)) + np.arange(4)[:, None] * 5).astype(np.float32)
             for i, t in enumerate((7, 3, 11))}
    specs["c/flat"] = np.full((4, 5), -80.0, np.float32)  # read only when asked for
    store = Store(specs)
    m = frame_moments(store, ["c/0", "c/1", "c/2"])
    frames = np.concatenate([specs[f"c/{i}"].astype(np.float64) for i in range(3)], axis=1)  # (4, 21): by hand
    np.testing.assert_allclose(m.mean, frames.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(m.std, frames.std(axis=1), rtol=1e-9)
    constant = frame_moments(store, ["c/flat"])
    np.testing.assert_allclose(constant.mean, -80.0)
    np.testing.assert_allclose(constant.std, STD_FLOOR)
    z = CorpusNormStore(store, m).get("c/1")
    np.testing.assert_allclose(z, (specs["c/1"] - m.mean[:, None]) / m.std[:, None], rtol=1e-6)
    assert z.dtype == np.float32 and "c/1" in CorpusNormStore(store, m) and len(CorpusNormStore(store, m)) == 4
    with pytest.raises(DomainStatsError, match="no frames"):
        frame_moments(store, [])


def test_row_moments_are_each_columns_moments() -> None:
    x = np.random.default_rng(1).normal(3, 2, (20, 5))
    x[:, 2] = 7.0  # a constant functional: centred, scaled by 1 (as StandardScaler does)
    m = row_moments(x)
    by_hand = [np.sqrt(sum((v - sum(col) / 20) ** 2 for v in col) / 20) for col in x.T]  # ddof 0
    np.testing.assert_allclose(m.mean, [sum(col) / 20 for col in x.T])
    np.testing.assert_allclose(m.std, [1.0 if i == 2 else s for i, s in enumerate(by_hand)])
    with pytest.raises(DomainStatsError, match="non-empty"):
        row_moments(np.zeros((0, 5)))


def test_corpus_stats_pool_each_corpus_equally_and_round_trip(tmp_path: Path) -> None:
    stats = CorpusStats("mel bin")
    stats.add("a", Moments(np.array([0.0, 2.0]), np.array([1.0, 1.0])), 10)
    stats.add("b", Moments(np.array([4.0, 2.0]), np.array([3.0, 1.0])), 1000)  # many clips, the same weight
    pooled = stats.pooled()
    np.testing.assert_allclose(pooled.mean, [2.0, 2.0])
    np.testing.assert_allclose(pooled.std, np.sqrt([(1 + 9) / 2 + 4, 1.0]))  # mean variance + spread of the means
    stats.save(tmp_path / "s.safetensors")
    back = CorpusStats.load(tmp_path / "s.safetensors")
    assert back.over == "mel bin" and back.clips == {"a": 10, "b": 1000} and list(back.moments) == ["a", "b"]
    np.testing.assert_array_equal(back.moments["b"].mean, [4.0, 2.0])
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DomainStatsError):
        CorpusStats.load(tmp_path / "bad.safetensors")


def test_embedding_moments_are_each_elements_moments_and_training_pools_the_trained_corpora() -> None:
    """A frozen encoder's pooled embeddings (L+1, 2H): one statistic per element over a corpus's utterances."""
    rng = np.random.default_rng(2)
    a = {f"a/{i}": rng.normal(2, 3, (3, 4)).astype(np.float32) for i in range(6)}
    b = {f"b/{i}": rng.normal(-1, 0.5, (3, 4)).astype(np.float32) for i in range(4)}
    a["a/0"][1, 2] = a["a/1"][1, 2] = 5.0
    stores = {"a": Store(a), "b": Store(b)}
    trained = ["a/0", "a/1"]  # a's training utterances; b is only evaluated
    m = item_moments(stores["a"], trained)
    rows = [a[i].astype(np.float64) for i in trained]
    by_hand_mean = [[sum(r[k, e] for r in rows) / 2 for e in range(4)] for k in range(3)]
    by_hand_std = [[np.sqrt(sum((r[k, e] - by_hand_mean[k][e]) ** 2 for r in rows) / 2) for e in range(4)]
                   for k in range(3)]
    by_hand_std[1][2] = 1.0  # constant over the corpus: centred, scaled by 1
    assert m.mean.shape == (3, 4)
    np.testing.assert_allclose(m.mean, by_hand_mean, rtol=1e-12)
    np.testing.assert_allclose(m.std, by_hand_std, rtol=1e-7)
    direct = row_moments(np.stack(rows))  # (N, L+1, 2H) in memory: the same statistics
    np.testing.assert_allclose(direct.mean, m.mean, rtol=1e-12)
    np.testing.assert_allclose(direct.std, m.std, rtol=1e-7)
    z = CorpusNormStore(stores["a"], m).get("a/1")
    np.testing.assert_allclose(z, (a["a/1"] - m.mean) / m.std, rtol=1e-6)
    stats, target = training_stats(stores, {"a": trained}, item_moments, "embedding")
    assert stats.over == "embedding" and stats.clips == {"a": 2, "b": 4}  # b: every utterance
    np.testing.assert_allclose(stats.moments["b"].mean, np.stack(list(b.values())).astype(np.float64).mean(axis=0))
    np.testing.assert_allclose(target.mean, m.mean)  # pooled over the trained corpora only
    np.testing.assert_allclose(target.std, m.std)
    with pytest.raises(DomainStatsError, match="no utterances"):
        item_moments(stores["a"], [])
