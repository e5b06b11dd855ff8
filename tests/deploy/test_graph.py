"""The in-graph front end equals the cached log-mel, and an ensemble is the mean of its members."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoshift.config.features import FeatureConfig
from emoshift.core.audio import crop_or_pad
from emoshift.core.record import ModelRecord
from emoshift.deploy.graph import DftLogMel, ExportUnsupportedError, ServingModel, check_exportable
from emoshift.features.logmel import log_mel


@pytest.mark.parametrize("cfg", [FeatureConfig(n_mels=32), FeatureConfig(n_mels=64, win_ms=30, top_db=None)])
def test_dft_front_end_matches_log_mel(cfg: FeatureConfig) -> None:
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(16_000) * np.linspace(0.01, 0.5, 16_000)).astype(np.float32)
    ref = log_mel(wave, 16_000, cfg)  # (n_mels, T), float64 STFT: the cache's values
    got = DftLogMel(cfg)(torch.from_numpy(wave)[None])[0].numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 5e-3  # float32 DFT vs float64 STFT, in dB


def test_short_input_is_zero_padded_to_the_crop_as_in_training() -> None:
    cfg = FeatureConfig(n_mels=32, crop_s=1.0)
    wave = (np.random.default_rng(1).standard_normal(6_000) * 0.1).astype(np.float32)
    frames = cfg.frames_for(cfg.crop_s)
    ref = crop_or_pad(log_mel(wave, 16_000, cfg), frames)  # training's zero padding of a short clip
    got = DftLogMel(cfg, min_frames=frames)(torch.from_numpy(wave)[None])[0].numpy()
    assert got.shape == (32, frames)
    assert np.abs(got - ref).max() < 5e-3
    long = np.tile(wave, 4)  # longer than the crop: every frame kept
    assert DftLogMel(cfg, min_frames=frames)(torch.from_numpy(long)[None]).shape[-1] == cfg.frames_for_samples(len(long))


class _Fixed(torch.nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.register_buffer("out", torch.tensor(logits))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.out.expand(wave.shape[0], -1)


def test_ensemble_is_mean_of_member_probabilities() -> None:
    a, b = [2.0, 0.0, -1.0], [-1.0, 1.0, 0.5]
    model = ServingModel([_Fixed(a), _Fixed(b)], ModelRecord(model="resnet18", input_kind="spectrogram", labels=["a", "b", "c"]))
    logits, probs = model(torch.zeros(2, 100))
    expected = (torch.softmax(torch.tensor(a), 0) + torch.softmax(torch.tensor(b), 0)) / 2
    assert torch.allclose(probs[0], expected) and torch.allclose(logits[0], (torch.tensor(a) + torch.tensor(b)) / 2)


def test_whisper_refused_in_one_line() -> None:
    with pytest.raises(ExportUnsupportedError, match="Whisper") as e:
        check_exportable(ModelRecord(model="ssl", labels=["a", "b"], encoder_config={"model_type": "whisper"}))
    assert "\n" not in str(e.value)
