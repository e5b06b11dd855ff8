"""How audio becomes a log-mel spectrogram (``features:`` of the experiment config): the settings, their checks
and the cache key they name. No torch: :mod:`emoshift.features.logmel` computes what these settings describe."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from emoshift.core.overrides import ConfigError, explain, parse_override, unknown_key

# Bump when the computation changes in a way that alters cached values: it is part of FeatureConfig.key().
FEATURE_VERSION = 1


class FeatureConfig(BaseModel):
    """How audio becomes a log-mel spectrogram. Immutable; ``key()`` names the cache built from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: int = Field(
        default=16_000, ge=1_000, le=384_000, description="rate (Hz) audio is resampled to"
    )
    n_mels: int = Field(default=128, ge=1, le=512, description="number of mel bands")
    win_ms: float = Field(default=25.0, gt=0, le=1_000, description="analysis window length (ms)")
    hop_ms: float = Field(default=10.0, gt=0, le=1_000, description="hop between frames (ms)")
    n_fft: int | None = Field(
        default=None, ge=2, le=65_536, description="FFT size; None = next power of two >= window"
    )
    f_min: float = Field(default=0.0, ge=0, description="lowest mel filter edge (Hz)")
    f_max: float | None = Field(
        default=None, gt=0, description="highest mel filter edge (Hz); None = sample_rate / 2"
    )
    power: float = Field(
        default=2.0, gt=0, le=4, description="exponent of the magnitude (2 = power spectrogram)"
    )
    top_db: float | None = Field(
        default=80.0, gt=0, description="clip each utterance to its peak minus top_db; None = off"
    )
    trim_silence: bool = Field(default=True, description="cut leading/trailing silence before the STFT")
    trim_top_db: float = Field(
        default=40.0, gt=0, description="frames this far below the loudest count as silence"
    )
    crop_s: float = Field(
        default=3.0, gt=0, le=600, description="fixed input length for CNNs (cropping is on frames)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FeatureConfig:
        if self.hop_length < 1:
            raise ValueError(f"hop_ms={self.hop_ms} is shorter than one sample at {self.sample_rate} Hz")
        if self.win_length < 2:
            raise ValueError(f"win_ms={self.win_ms} is shorter than two samples at {self.sample_rate} Hz")
        if self.n_fft is not None and self.n_fft < self.win_length:
            raise ValueError(
                f"n_fft={self.n_fft} is shorter than the window ({self.win_length} samples = {self.win_ms} ms); "
                f"use n_fft >= {self.win_length} or leave it unset"
            )
        nyquist = self.sample_rate / 2
        if self.f_max is not None and self.f_max > nyquist:
            raise ValueError(f"f_max={self.f_max} is above the Nyquist frequency {nyquist:g} Hz")
        if self.f_min >= self.fmax_hz:
            raise ValueError(f"f_min={self.f_min} must be below f_max={self.fmax_hz:g} Hz")
        return self

    # Derived sizes, in samples. Rounded, so 25 ms at 22.05 kHz is 551 samples.
    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000.0))

    @property
    def fft_size(self) -> int:
        """``n_fft`` or, when unset, the next power of two >= the window (512 for 25 ms at 16 kHz)."""
        return self.n_fft if self.n_fft is not None else 1 << (self.win_length - 1).bit_length()

    @property
    def fmax_hz(self) -> float:
        return self.f_max if self.f_max is not None else self.sample_rate / 2

    def key(self) -> str:
        """Stable 12-hex-digit hash of everything that changes the cached spectrograms.

        Defaults are resolved first (``n_fft=None`` and ``n_fft=512`` give the same key at 16 kHz) and
        ``crop_s`` is left out: cropping happens on frames after the cache, so it must not invalidate it.
        """
        fields = self.model_dump(exclude={"crop_s"})
        fields.update(n_fft=self.fft_size, f_max=self.fmax_hz, version=FEATURE_VERSION)
        blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def frames_for_samples(self, n_samples: int) -> int:
        """Frames of a centred STFT (``center=True``) over ``n_samples`` samples."""
        n_fft = self.fft_size
        return 1 + (int(n_samples) + 2 * (n_fft // 2) - n_fft) // self.hop_length

    def frames_for(self, seconds: float) -> int:
        """Frames covering ``seconds`` of audio, e.g. ``frames_for(cfg.crop_s)`` = 301 for 3 s at 10 ms hops."""
        return self.frames_for_samples(int(round(seconds * self.sample_rate)))


def config_from_overrides(items: Sequence[str], base: FeatureConfig | None = None) -> FeatureConfig:
    """Build a FeatureConfig from ``key=value`` strings (CLI ``--set``); one-line ConfigError on bad input.

    Values stay text for pydantic to read (``none``/``null``/empty mean None), so an error quotes them as typed.
    """
    values: dict[str, object] = (base or FeatureConfig()).model_dump()
    for item in items:
        path, value = parse_override(item, form="key=value (e.g. n_mels=64)", value=_setting_value)
        key = ".".join(path).replace("-", "_")
        if key not in FeatureConfig.model_fields:
            known = list(FeatureConfig.model_fields)
            raise ConfigError(unknown_key(key, known, noun="feature setting", listing="known"))
        values[key] = value
    try:
        return FeatureConfig.model_validate(values)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None


def _setting_value(raw: str) -> str | None:
    raw = raw.strip()
    return None if raw.lower() in ("none", "null", "") else raw


def describe_validation_error(err: ValidationError) -> str:
    """One line naming each offending setting, e.g. ``n_mels='abc': Input should be a valid integer``."""
    return "invalid feature config: " + explain(err, FeatureConfig, values="inline")
