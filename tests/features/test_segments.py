"""Segments (a manifest's start/end): the log-mel cache keys on them and reads only that part of the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile as sf

from emoshift.config.features import FeatureConfig
from emoshift.core.audio import load
from emoshift.corpora.base import Utterance
from emoshift.features.cache import FeatureCache
from emoshift.features.logmel import log_mel

SR = 16_000


def test_the_feature_cache_keys_on_the_segment(tmp_path: Path) -> None:
    t = np.arange(3 * SR) / SR
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + (t > 1.5))).astype(np.float32) * 0.5  # louder 2nd half
    path = tmp_path / "long.wav"
    sf.write(path, wave, SR)
    cfg = FeatureConfig(n_mels=32, trim_silence=False)
    u = Utterance(id="t/a", path=str(path), corpus="t", speaker="t/1", gender=None, emotion="sad",
                  native_label="sad", start=0.0, end=1.0)
    cache = FeatureCache(tmp_path / "cache")
    first = cache.build("t", [u], cfg, workers=0).get(u.id)
    np.testing.assert_allclose(first, log_mel(load(path, SR, start=0.0, end=1.0), SR, cfg), atol=1e-4)
    moved = dataclasses.replace(u, start=2.0, end=3.0)  # same id, same file, another segment: recomputed
    second = cache.build("t", [moved], cfg, workers=0)
    assert second.stats is not None and second.stats.extracted == 1 and second.stats.reused == 0
    np.testing.assert_allclose(second.get(u.id), log_mel(load(path, SR, start=2.0, end=3.0), SR, cfg), atol=1e-4)
    assert first.shape != second.get(u.id).shape or not np.allclose(first, second.get(u.id))
    again = cache.build("t", [moved], cfg, workers=0)  # unchanged segment: reused
    assert again.stats is not None and again.stats.reused == 1 and again.stats.extracted == 0
