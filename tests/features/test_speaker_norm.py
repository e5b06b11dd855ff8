"""Per-speaker standardisation of log-mels (features/speaker_norm.py) and the model's fixed standardisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoshift.features.speaker_norm import Moments, SpeakerNormStore, pooled, speaker_moments
from emoshift.models.cnn_nets import BinStandardize


class FakeStore:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays, self.ids, self.skipped = arrays, list(arrays), []

    def get(self, uid: str) -> np.ndarray:
        return self.arrays[uid].copy()

    def __contains__(self, uid: object) -> bool:
        return uid in self.arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def frames(self, uid: str) -> int:
        return self.arrays[uid].shape[1]


def _corpus(rng: np.random.Generator) -> tuple[FakeStore, dict[str, str]]:
    """Two speakers with their own colouring (offset per bin, scale), three utterances each, uneven lengths."""
    arrays, speaker_of = {}, {}
    for s, (offset, scale) in enumerate([(-30.0, 4.0), (10.0, 9.0)]):
        colour = rng.normal(0, 5, (8, 1))
        for u in range(3):
            uid = f"c/s{s}-u{u}"
            arrays[uid] = (offset + colour + scale * rng.standard_normal((8, 20 + 7 * u))).astype(np.float32)
            speaker_of[uid] = f"c/s{s}"
    return FakeStore(arrays), speaker_of


def test_speaker_moments_are_each_speakers_statistics_over_all_their_frames() -> None:
    store, speaker_of = _corpus(np.random.default_rng(0))
    moments = speaker_moments(store, speaker_of)
    for spk in ("c/s0", "c/s1"):
        frames = np.concatenate([store.get(u) for u, s in speaker_of.items() if s == spk], axis=1).astype(np.float64)
        np.testing.assert_allclose(moments[spk].mean, frames.mean(axis=1), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(moments[spk].std, frames.std(axis=1), rtol=1e-6)
    # utterances not named are not read
    assert set(speaker_moments(store, {"c/s0-u0": "c/s0"})) == {"c/s0"}


def test_the_store_gives_each_speakers_z_scores() -> None:
    store, speaker_of = _corpus(np.random.default_rng(1))
    wrapped = SpeakerNormStore(store, speaker_moments(store, speaker_of), speaker_of)
    assert wrapped.ids == store.ids and len(wrapped) == 6 and "c/s1-u2" in wrapped and wrapped.frames("c/s1-u2") == 34
    assert wrapped.get("c/s0-u0").dtype == np.float32
    for spk in ("c/s0", "c/s1"):
        frames = np.concatenate([wrapped.get(u) for u, s in speaker_of.items() if s == spk], axis=1)
        np.testing.assert_allclose(frames.mean(axis=1), 0.0, atol=1e-4)
        np.testing.assert_allclose(frames.std(axis=1), 1.0, atol=1e-4)


def test_bin_standardize_is_a_fixed_per_bin_map() -> None:
    norm = BinStandardize(3)
    norm.mean.copy_(torch.tensor([1.0, -2.0, 0.0]))
    norm.std.copy_(torch.tensor([2.0, 1.0, 0.5]))
    x = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)  # (B, 1, n_mels, T)
    want = (x - norm.mean.view(1, 1, 3, 1)) / norm.std.view(1, 1, 3, 1)
    torch.testing.assert_close(norm(x), want)
    assert set(norm.state_dict()) == {"mean", "std"}  # saved with the weights


def test_pooled_weights_every_speaker_equally() -> None:
    a = Moments(np.array([0.0, 10.0]), np.array([1.0, 2.0]))
    b = Moments(np.array([4.0, 10.0]), np.array([3.0, 2.0]))
    p = pooled([a, b])
    # an equal mixture: mean of means; variance = mean of variances + variance of means
    np.testing.assert_allclose(p.mean, [2.0, 10.0])
    np.testing.assert_allclose(p.std, np.sqrt([(1 + 9) / 2 + 4, 4.0]))
    with pytest.raises(ValueError, match="no speakers"):
        pooled([])
