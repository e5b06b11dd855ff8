"""Log-mel features: librosa equivalence, batched == unbatched, FeatureConfig validation and key."""

from __future__ import annotations

import subprocess
import sys

import librosa  # dev dependency: the reference implementation
import numpy as np
import pytest
import scipy.signal
import torch
from pydantic import ValidationError

from emoshift.config.features import FeatureConfig, config_from_overrides
from emoshift.core import audio
from emoshift.features.logmel import LogMel, log_mel, log_mel_batch, log_mel_many, mel_filterbank

TOL_DB = 1e-3


def speechlike(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced, speech-like signal (float32, peak 0.5): harmonics of a gliding f0 with vibrato, three
    formant resonances, a syllabic envelope with pauses, and a faint noise floor."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f0 = 110 + 80 * rng.random() + 25 * np.sin(2 * np.pi * (0.4 + rng.random()) * t)  # (n,) Hz
    f0 *= 1 + 0.01 * np.sin(2 * np.pi * 5.5 * t)  # vibrato
    phase = 2 * np.pi * np.cumsum(f0) / sr
    source = sum(np.sin(k * phase) / k for k in range(1, int(sr / 2 / 240)))  # glottal-ish 1/k spectrum
    x = np.asarray(source)
    for fc, bw in ((650 + 100 * rng.random(), 110), (1200 + 300 * rng.random(), 90), (2600, 160)):
        r, theta = np.exp(-np.pi * bw / sr), 2 * np.pi * fc / sr
        x = scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)
    envelope = np.clip(np.sin(2 * np.pi * (2.5 + rng.random()) * t + 6 * rng.random()), 0, None) ** 1.5
    envelope *= (t > 0.15) & (t < seconds - 0.15)  # silence at both ends, as in a recording
    x = x * envelope + 2e-4 * rng.standard_normal(n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def librosa_log_mel(y: np.ndarray) -> np.ndarray:
    """The reference: librosa's defaults apart from the mel parameters the spec names."""
    S = librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=128, power=2.0
    )
    return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80)


# ------------------------------------------------------------------------------------------ librosa match


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_mel_matches_librosa_at_16k(seed: int) -> None:
    y = speechlike(16000, 1.7 + 0.31 * seed, seed)
    ours, ref = log_mel(y, 16000), librosa_log_mel(y)
    assert ours.dtype == np.float32 and ours.shape == ref.shape == (128, 1 + len(y) // 160)
    assert np.abs(ours - ref).max() < TOL_DB
    assert ref.max() - ref.min() > 60  # a real dynamic range, not a flat test


def test_log_mel_resamples_48k_like_librosa() -> None:
    y48 = speechlike(48000, 1.9, seed=7)
    ref = librosa_log_mel(librosa.resample(y48, orig_sr=48000, target_sr=16000))  # soxr_hq, librosa's default
    ours = log_mel(y48, 48000)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < TOL_DB


def test_filterbank_equals_librosa_for_other_settings() -> None:
    for sr, n_mels, f_min, f_max in [
        (16000, 128, 0.0, None),
        (22050, 40, 50.0, 7600.0),
        (8000, 64, 20.0, None),
    ]:
        cfg = FeatureConfig(sample_rate=sr, n_mels=n_mels, f_min=f_min, f_max=f_max)
        ref = librosa.filters.mel(sr=sr, n_fft=cfg.fft_size, n_mels=n_mels, fmin=f_min, fmax=f_max)
        np.testing.assert_allclose(mel_filterbank(cfg), ref, rtol=1e-6, atol=1e-9)


def test_non_default_config_matches_librosa() -> None:
    cfg = FeatureConfig(
        sample_rate=22050, n_mels=64, win_ms=30, hop_ms=12.5, f_min=40, f_max=8000, top_db=None
    )
    y = speechlike(22050, 1.2, seed=3)
    S = librosa.feature.melspectrogram(
        y=y, sr=22050, n_fft=cfg.fft_size, hop_length=cfg.hop_length, win_length=cfg.win_length,
        n_mels=64, fmin=40, fmax=8000, power=2.0,
    )  # fmt: skip
    ref = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)
    ours = log_mel(y, 22050, cfg)
    assert (cfg.win_length, cfg.hop_length, cfg.fft_size) == (662, 276, 1024)
    assert ours.shape == ref.shape
    loud = ref > ref.max() - 80  # without top_db, compare where float32 rounding is not the whole signal
    assert np.abs(ours - ref)[loud].max() < TOL_DB


# -------------------------------------------------------------------------------- batched == unbatched


@pytest.mark.parametrize(
    ("stft_dtype", "tol"),
    [(torch.float64, 1e-4), (torch.float32, 5e-3)],  # float32 FFT: rounding in the quietest bands only
)
def test_batch_equals_unbatched_per_item(stft_dtype: torch.dtype, tol: float) -> None:
    cfg = FeatureConfig()
    waves = [speechlike(16000, s, seed=i) for i, s in enumerate((1.3, 0.6, 0.9))]
    waves.append(np.float32(0.1) * speechlike(16000, 0.02, seed=9))  # shorter than one window, quieter
    lengths = [len(w) for w in waves]
    batch = torch.zeros(len(waves), max(lengths))  # (B, S), zero-padded
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(w)
    out = log_mel_batch(batch, lengths, cfg, stft_dtype=stft_dtype)  # (B, n_mels, T)
    assert out.shape == (len(waves), cfg.n_mels, cfg.frames_for_samples(max(lengths)))
    assert out.dtype == torch.float32
    for i, w in enumerate(waves):
        single = log_mel(w, 16000, cfg)  # (n_mels, frames_i)
        nf = single.shape[1]
        np.testing.assert_allclose(out[i, :, :nf].numpy(), single, atol=tol)
        # padding frames hold the item's own floor (its peak - top_db), whatever its neighbours hold
        np.testing.assert_allclose(out[i, :, nf:].numpy(), single.max() - 80.0, atol=tol)


def test_many_equals_single_and_module() -> None:
    cfg = FeatureConfig(n_mels=40, top_db=None)
    waves = [speechlike(16000, s, seed=10 + i) for i, s in enumerate((0.7, 0.45, 1.1))]
    feats, frames = log_mel_many(waves, cfg)  # (sum(frames), n_mels), time first
    assert feats.shape == (sum(frames), 40) and feats.dtype == np.float32
    module = LogMel(cfg, stft_dtype=torch.float64)
    assert not module.state_dict()  # window and filterbank are derived from cfg, not saved
    row = 0
    for w, nf in zip(waves, frames, strict=True):
        single = log_mel(w, 16000, cfg)
        assert single.shape == (40, nf) == (40, cfg.frames_for_samples(len(w)))
        np.testing.assert_allclose(feats[row : row + nf].T, single, atol=1e-4)
        from_module = module(torch.from_numpy(w)[None])[0]  # (n_mels, T)
        loud = single > single.max() - 80  # top_db=None: below that, float32 rounding is all there is
        np.testing.assert_allclose(from_module.numpy()[loud], single[loud], atol=1e-4)
        row += nf


def test_log_mel_rejects_stereo() -> None:
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 1600), np.float32), 16000)


# ------------------------------------------------------------------------------------------- FeatureConfig


def test_config_defaults_and_derived_sizes() -> None:
    cfg = FeatureConfig()
    assert (cfg.win_length, cfg.hop_length, cfg.fft_size, cfg.fmax_hz) == (400, 160, 512, 8000.0)
    assert cfg.frames_for(3.0) == 301 == cfg.frames_for_samples(48000)
    wave = audio.crop_or_pad(speechlike(16000, 3.5), 48000)
    assert log_mel(wave, 16000, cfg).shape[1] == cfg.frames_for(cfg.crop_s)


def test_config_extra_key_names_the_key() -> None:
    with pytest.raises(ValidationError) as err:
        FeatureConfig(n_mel=64)  # type: ignore[call-arg]
    assert "n_mel" in str(err.value) and "Extra inputs are not permitted" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_fft": 256}, "n_fft=256 is shorter than the window"),
        ({"f_max": 9000.0}, "above the Nyquist frequency 8000"),
        ({"f_min": 4000.0, "f_max": 3000.0}, "f_min=4000.0 must be below f_max=3000"),
        ({"top_db": -5}, "greater than 0"),
        ({"n_mels": 0}, "greater than or equal to 1"),
        ({"hop_ms": 0.01}, "hop_ms=0.01 is shorter than one sample"),
    ],
)
def test_config_rejects_bad_values_clearly(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FeatureConfig.model_validate(kwargs)


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        FeatureConfig().n_mels = 64  # type: ignore[misc]


def test_key_is_stable_and_names_what_changes_the_features() -> None:
    base = FeatureConfig()
    # Pinned: a change here silently invalidates every user's cache; bump FEATURE_VERSION on purpose instead.
    assert base.key() == "15d43a317d0f"
    assert FeatureConfig(n_fft=512, f_max=8000.0).key() == base.key()  # defaults resolved before hashing
    assert FeatureConfig(crop_s=5.0).key() == base.key()  # cropping happens after the cache
    keys = {
        FeatureConfig(n_mels=64).key(),
        FeatureConfig(trim_silence=False).key(),
        FeatureConfig(top_db=None).key(),
        FeatureConfig(hop_ms=12.5).key(),
        base.key(),
    }
    assert len(keys) == 5


def test_config_from_overrides() -> None:
    cfg = config_from_overrides(["n_mels=64", "top_db=none", "trim_silence=false", "f_max=7600"])
    assert (cfg.n_mels, cfg.top_db, cfg.trim_silence, cfg.f_max) == (64, None, False, 7600.0)
    with pytest.raises(ValueError, match="unknown feature setting 'n_mel'; did you mean 'n_mels'"):
        config_from_overrides(["n_mel=64"])
    with pytest.raises(ValueError, match="n_mels='abc'"):
        config_from_overrides(["n_mels=abc"])
    with pytest.raises(ValueError, match="key=value"):
        config_from_overrides(["n_mels"])


def test_package_does_not_import_librosa() -> None:
    code = (
        "import sys, numpy as np, emoshift.features.logmel as f, emoshift.features.cache, emoshift.cli; "
        "f.log_mel(np.ones(1600, np.float32), 16000); "
        "sys.exit('librosa' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
