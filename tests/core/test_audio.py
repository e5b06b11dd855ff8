"""emoshift.core.audio: decoding, bad-file reasons, resampling, silence, trim, crop/pad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoshift.core import audio
from tests.corpora.fakes import (
    write_empty,
    write_garbage,
    write_lfs_pointer,
    write_silent,
    write_truncated,
    write_wav,
    write_with_list_chunk,
)


def sine(sr: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- read
def test_read_mono_float32_at_native_rate(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", 48_000, seconds=0.3)
    wave, sr = audio.read(path)
    assert sr == 48_000 and wave.dtype == np.float32 and wave.shape == (14_400,)
    assert np.abs(wave).max() <= 1.0


def test_read_downmixes_stereo(tmp_path: Path) -> None:
    left, right = sine(16_000, 0.2, amp=0.4), np.zeros(3_200, dtype=np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16_000, subtype="FLOAT")
    wave, _ = audio.read(tmp_path / "s.wav")
    np.testing.assert_allclose(wave, left / 2, atol=1e-6)


def test_extra_riff_chunk_before_data_is_read(tmp_path: Path) -> None:
    path = write_with_list_chunk(tmp_path / "list.wav", 48_000, seconds=0.3)
    assert b"LIST" in path.read_bytes()[:200]
    wave, sr = audio.read(path)
    assert (sr, len(wave)) == (48_000, 14_400)
    np.testing.assert_allclose(wave, audio.read(write_wav(tmp_path / "plain.wav", 48_000))[0])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: write_empty(p), "empty: file has 0 bytes"),
        (lambda p: write_lfs_pointer(p), audio.LFS_REASON),
        (lambda p: write_garbage(p), "unreadable: "),
        (
            lambda p: write_truncated(p, 16_000),
            "truncated: header declares 9600 audio bytes, file holds 4778",
        ),
        (lambda p: p, "unreadable: "),  # never written: missing
    ],
    ids=["empty", "lfs", "garbage", "truncated", "missing"],
)
def test_bad_files_raise_with_the_reason(tmp_path: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path / "bad.wav")
    with pytest.raises(audio.AudioError) as err:
        audio.read(path)
    assert str(err.value).startswith(reason)
    assert str(path) not in str(err.value), "the reason is shown next to the path; it must not repeat it"


def test_lfs_pointer_detection(tmp_path: Path) -> None:
    assert audio.is_lfs_pointer(write_lfs_pointer(tmp_path / "p.wav"))
    assert not audio.is_lfs_pointer(write_wav(tmp_path / "a.wav", 16_000))
    assert not audio.is_lfs_pointer(tmp_path / "missing.wav")


# ---------------------------------------------------------------------------------------------- silence
def test_peak_dbfs_and_silence(tmp_path: Path) -> None:
    assert audio.peak_dbfs(sine(16_000, 0.5, amp=0.5), 16_000) == pytest.approx(-9.03, abs=0.05)
    wave, sr = audio.read(write_silent(tmp_path / "s.wav", 16_000))
    assert audio.is_silent(wave, sr)
    with pytest.raises(audio.AudioError, match="^silent: loudest frame below -60 dBFS$"):
        audio.check_not_silent(wave, sr)
    audio.check_not_silent(sine(16_000, 0.1, amp=0.01), 16_000)  # -43 dBFS: quiet, not silent


def test_a_short_burst_is_not_silent() -> None:
    """Energy of the loudest frame decides, so one word in a long silent file still counts as speech."""
    wave = np.zeros(48_000, dtype=np.float32)
    wave[20_000:21_600] = sine(16_000, 0.1, amp=0.2)
    assert not audio.is_silent(wave, 16_000)


# ---------------------------------------------------------------------------------------------- load
def test_load_resamples_to_16k(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", sine(48_000, 1.0, freq=1_000.0), 48_000, subtype="PCM_16")
    wave = audio.load(tmp_path / "a.wav")
    assert wave.dtype == np.float32 and abs(len(wave) - 16_000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.fft.rfftfreq(len(wave), 1 / 16_000)[spectrum.argmax()] == pytest.approx(1_000.0, abs=2.0)


def test_load_keeps_the_rate_when_it_matches(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", 16_000, seconds=0.3)
    np.testing.assert_array_equal(audio.load(path), audio.read(path)[0])


def test_load_rejects_silent_takes_unless_asked(tmp_path: Path) -> None:
    path = write_silent(tmp_path / "s.wav", 48_000, seconds=0.3)
    with pytest.raises(audio.AudioError, match="^silent"):
        audio.load(path)
    assert len(audio.load(path, reject_silent=False)) == 4_800


def test_load_trims_leading_and_trailing_silence(tmp_path: Path) -> None:
    sr = 16_000
    speech = sine(sr, 0.5)
    sf.write(tmp_path / "a.wav", np.concatenate([np.zeros(sr), speech, np.zeros(sr)]), sr, subtype="FLOAT")
    trimmed = audio.load(tmp_path / "a.wav", trim=True)
    frame = int(0.025 * sr)
    # all of the speech is kept, plus at most one analysis frame of silence at each end
    assert len(speech) <= len(trimmed) <= len(speech) + 2 * frame
    assert np.abs(trimmed[: int(0.025 * sr)]).max() > 0.1


def test_trim_silence_edge_cases() -> None:
    short = sine(16_000, 0.01)
    assert audio.trim_silence(short, 16_000) is short  # shorter than a frame: unchanged
    flat = np.zeros(16_000, dtype=np.float32)
    assert len(audio.trim_silence(flat, 16_000)) == 16_000  # nothing louder than anything else


# ---------------------------------------------------------------------------------------------- crop / pad
def test_crop_or_pad_center_and_pad() -> None:
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(audio.crop_or_pad(x, 4), [3, 4, 5, 6])
    padded = audio.crop_or_pad(x, 13)
    np.testing.assert_array_equal(padded, [*range(10), 0, 0, 0])
    assert audio.crop_or_pad(x, 10) is x


def test_crop_or_pad_random_is_seeded_and_in_bounds() -> None:
    x = np.arange(100, dtype=np.float32)
    a = audio.crop_or_pad(x, 10, mode="random", rng=np.random.default_rng(3))
    b = audio.crop_or_pad(x, 10, mode="random", rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    starts = {
        int(audio.crop_or_pad(x, 10, mode="random", rng=np.random.default_rng(s))[0]) for s in range(50)
    }
    assert len(starts) > 10 and min(starts) >= 0 and max(starts) <= 90


def test_crop_or_pad_works_on_the_last_axis() -> None:
    spec = np.ones((2, 64, 50), dtype=np.float32)  # (C, n_mels, T)
    assert audio.crop_or_pad(spec, 20).shape == (2, 64, 20)
    padded = audio.crop_or_pad(spec, 60)
    assert padded.shape == (2, 64, 60) and padded[..., 50:].sum() == 0


def test_crop_or_pad_unknown_mode() -> None:
    with pytest.raises(ValueError, match="crop mode must be 'center' or 'random'"):
        audio.crop_or_pad(np.zeros(10), 5, mode="left")
