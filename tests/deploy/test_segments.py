"""Emotion over time: windows follow known changes, VAD finds the speech, file label is duration-weighted,
memory stays flat on a one-hour file."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoshift.core.audio import AudioError, load
from emoshift.deploy.audio_stream import array_blocks, file_blocks
from emoshift.deploy.segments import NoSpeechError, Segmentation, TooLongError, score
from emoshift.deploy.vad import SpeechProbabilities, speech_spans
from tests.deploy.conftest import ToneBackend, tones


def test_windows_follow_known_changes() -> None:
    wave = tones([("low", 6.0), ("high", 4.0)])  # a change at 6 s
    r = score(ToneBackend(), array_blocks(wave, 16_000), Segmentation(window_s=1.0, hop_s=0.5))
    assert r.duration_s == pytest.approx(10.0)
    assert [s.start_s for s in r.segments[:3]] == [0.0, 0.5, 1.0] and r.segments[-1].end_s == pytest.approx(10.0)
    for s in r.segments:
        if s.end_s <= 6.0:
            assert s.label == "low", s
        elif s.start_s >= 6.0:
            assert s.label == "high", s
    # duration-weighted mean: 6 s of "low" windows outweigh 4 s of "high"
    assert r.label == "low"
    w = np.array([s.end_s - s.start_s for s in r.segments])
    p = np.array([s.probabilities["high"] for s in r.segments])
    assert r.probabilities["high"] == pytest.approx(float((w * p).sum() / w.sum()))


def test_last_window_ends_at_file_end_and_short_file_is_one_segment() -> None:
    r = score(ToneBackend(), array_blocks(tones([("high", 2.3)]), 16_000), Segmentation(window_s=1.0, hop_s=1.0))
    assert [(s.start_s, s.end_s) for s in r.segments] == [(0.0, 1.0), (1.0, 2.0), (pytest.approx(1.3), pytest.approx(2.3))]
    r = score(ToneBackend(), array_blocks(tones([("low", 0.6)]), 16_000), Segmentation(window_s=1.0))
    assert len(r.segments) == 1 and r.segments[0].end_s == pytest.approx(0.6) and r.label == "low"


def _speech_file(synth_tiny: Path) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Synthetic takes separated by 1.5 s of silence, and where the speech is."""
    takes = sorted((synth_tiny / "ravdess").rglob("*.wav"))[:4]
    parts, truth, pos = [], [], 0
    gap = np.zeros(24_000, np.float32)
    for t in takes:
        w = load(t, 16_000, trim=True)
        parts += [gap, w]
        truth.append(((pos + len(gap)) / 16_000, (pos + len(gap) + len(w)) / 16_000))
        pos += len(gap) + len(w)
    return np.concatenate([*parts, gap]), truth


def test_vad_finds_the_speech(synth_tiny: Path) -> None:
    wave, truth = _speech_file(synth_tiny)
    r = score(ToneBackend(window_s=3.0), array_blocks(wave, 16_000), Segmentation(mode="vad"))
    assert len(r.speech) == len(truth)
    for (a, b), (ta, tb) in zip(r.speech, truth, strict=True):
        assert abs(a - ta) < 0.15 and abs(b - tb) < 0.2, (a, b, ta, tb)
    assert all(any(sa <= s.start_s and s.end_s <= sb for sa, sb in r.speech) for s in r.segments)  # speech only


def test_vad_port_matches_silero_reference(synth_tiny: Path) -> None:
    from silero_vad import get_speech_timestamps_sequence, load_silero_vad

    wave, _ = _speech_file(synth_tiny)
    ref = get_speech_timestamps_sequence(wave, load_silero_vad(sequence=True), sampling_rate=16_000)
    probs = SpeechProbabilities()
    for i in range(0, len(wave), 12_345):  # streamed in odd-sized blocks
        probs.feed(wave[i : i + 12_345])
    got = speech_spans(probs.finish(), len(wave))
    assert got == [(d["start"], d["end"]) for d in ref]


def test_no_speech_silent_and_too_long_are_errors() -> None:
    noise = (np.random.default_rng(0).standard_normal(32_000) * 0.01).astype(np.float32)
    with pytest.raises(NoSpeechError):
        score(ToneBackend(), array_blocks(noise, 16_000), Segmentation(mode="vad"))
    with pytest.raises(AudioError, match="silent"):
        score(ToneBackend(), array_blocks(np.zeros(32_000, np.float32), 16_000))
    with pytest.raises(TooLongError):
        score(ToneBackend(), array_blocks(tones([("low", 3.0)]), 16_000), Segmentation(max_seconds=2.0))


@pytest.mark.slow
def test_memory_flat_on_a_one_hour_file(tmp_path: Path) -> None:
    path = tmp_path / "hour.wav"
    sr = 8_000  # resampled to 16 kHz while streaming
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for minute in range(60):
            f.write(tones([("low" if minute % 2 else "high", 60.0)], sr=sr))
    backend = ToneBackend(window_s=3.0)
    tracemalloc.start()
    try:
        r = score(backend, file_blocks(path), Segmentation(window_s=3.0, hop_s=30.0, batch_size=8))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.duration_s == pytest.approx(3600.0, abs=0.01)
    whole = 3600 * 16_000 * 4  # the file at 16 kHz float32: 230 MB
    assert peak < 25e6, f"peak {peak / 1e6:.1f} MB while scoring a file of {whole / 1e6:.0f} MB"
    assert len(r.segments) == 121 and {s.label for s in r.segments} == {"low", "high"}
