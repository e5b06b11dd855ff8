"""``training.augment``: the training-batch augmentations (:mod:`emoshift.data.augment` applies them), its own
module beside ``features`` and ``split`` so the experiment schema stays one readable file."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class AugmentConfig(BaseModel):
    """Augmentation of training batches only (never validation or test)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)  # as experiment.Strict

    specaugment: bool = False
    freq_masks: int = Field(2, ge=0)
    freq_width: int = Field(12, ge=0, description="max mel bins per frequency mask")
    time_masks: int = Field(2, ge=0)
    time_width: int = Field(24, ge=0, description="max frames per time mask")
    mixup_alpha: float = Field(0.0, ge=0.0, description="0 disables mixup")
    # channel (domain) augmentation on log-mels: random band-limiting and additive noise floor
    bandlimit_p: float = Field(0.0, ge=0.0, le=1.0)
    noise_p: float = Field(0.0, ge=0.0, le=1.0)
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    gain_db: float = Field(0.0, ge=0.0, description="random gain in +-dB (waveform models)")
    # channel effects on the training waveform before its features (data/channel.py, the same effects as
    # `emoshift evaluate --perturb`): room -> codec -> telephone line, each drawn with its own probability
    codec_p: float = Field(0.0, ge=0.0, le=1.0, description="share of training clips through a codec of `codecs`")
    codecs: list[str] = Field(
        default_factory=lambda: ["mp3:16k", "opus:8k", "gsm"],
        description="the codecs codec_p draws from, one at random per clip (mp3:<N>k, opus:<N>k, gsm)",
    )
    telephone_p: float = Field(0.0, ge=0.0, le=1.0, description="share through the telephone line (8 kHz, "
                               "300-3400 Hz, mu-law)")
    reverb_p: float = Field(0.0, ge=0.0, le=1.0, description="share through a simulated room")
    reverb_rt60: tuple[float, float] = Field((0.2, 0.8), description="RT60 range (s) the rooms are drawn from")

    @field_validator("codecs")
    @classmethod
    def _codec_specs(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not re.fullmatch(r"(mp3|opus):\d+(\.\d+)?k|gsm", c.strip().lower())]
        if bad:
            raise ValueError(f"codecs takes mp3:<N>k, opus:<N>k or gsm, not {', '.join(map(repr, bad))}")
        return v

    @model_validator(mode="after")
    def _channel_ranges(self) -> AugmentConfig:
        lo, hi = self.reverb_rt60
        if not 0.05 <= lo <= hi <= 5.0:
            raise ValueError(f"reverb_rt60 must be (low, high) seconds within 0.05..5, got ({lo}, {hi})")
        if self.codec_p > 0 and not self.codecs:
            raise ValueError("codec_p > 0 needs at least one codec in codecs")
        return self
