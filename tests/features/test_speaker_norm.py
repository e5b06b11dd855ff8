"""Per-speaker standardisation of log-mels (features/speaker_norm.py) and the model's fixed standardisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoshift.features.speaker_norm import Moments, SpeakerNormStore, pooled, speaker_moments
from emoshift.models.cnn import BinStandardize


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


def test_the_model_sees_each_speakers_z_scores_through_its_fixed_standardisation() -> None:
    store, speaker_of = _corpus(np.random.default_rng(1))
    moments = speaker_moments(store, speaker_of)
    target = pooled(moments.values())
    norm = BinStandardize(8)
    norm.mean.copy_(torch.from_numpy(target.mean))
    norm.std.copy_(torch.from_numpy(target.std))
    wrapped = SpeakerNormStore(store, moments, speaker_of, target)
    assert wrapped.ids == store.ids and len(wrapped) == 6 and "c/s1-u2" in wrapped and wrapped.frames("c/s1-u2") == 34
    for spk in ("c/s0", "c/s1"):
        seen = [norm(torch.from_numpy(wrapped.get(u))[None, None])[0, 0].numpy() for u, s in speaker_of.items()
                if s == spk]
        frames = np.concatenate(seen, axis=1)  # (n_mels, all of the speaker's frames)
        np.testing.assert_allclose(frames.mean(axis=1), 0.0, atol=1e-4)
        np.testing.assert_allclose(frames.std(axis=1), 1.0, atol=1e-4)


def test_pooled_weights_every_speaker_equally() -> None:
    a = Moments(np.array([0.0, 10.0]), np.array([1.0, 2.0]))
    b = Moments(np.array([4.0, 10.0]), np.array([3.0, 2.0]))
    p = pooled([a, b])
    # an equal mixture: mean of means; variance = mean of variances + variance of means
    np.testing.assert_allclose(p.mean, [2.0, 10.0])
    np.testing.assert_allclose(p.std, np.sqrt([(1 + 9) / 2 + 4, 4.0]))
    with pytest.raises(ValueError, match="no speakers"):
        pooled([])
