"""Audio as a stream of 16 kHz mono float32 blocks, so an hour-long file never sits in memory whole.

A file is decoded with ``soundfile.SoundFile.blocks`` and resampled with soxr's streaming resampler; an array
already in memory is cut into blocks the same way. :class:`LevelMeter` tracks the loudest 25 ms frame on the way,
so "silent" is judged as :func:`emoshift.core.audio.check_not_silent` judges it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from emoshift.core.audio import (
    DECODE_ERRORS,
    SILENCE_DBFS,
    AudioError,
    check_file,
    decode_reason,
    sf_name,
    sniff,
    too_short_reason,
    wav_truncation,
)

SR = 16_000
BLOCK_S = 10.0  # seconds decoded per block
Blocks = Callable[[], Iterator[np.ndarray]]  # a re-startable source of 16 kHz blocks


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    samplerate: int
    channels: int


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Duration and format from the header (after the pre-decode checks); AudioError when unusable."""
    p = check_file(path)
    try:
        info = sf.info(sf_name(p))
    except DECODE_ERRORS as e:
        raise AudioError(f"unreadable: {decode_reason(e, p)}") from None
    if info.frames <= 0:
        raise AudioError("empty: no audio frames")
    return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels))


def _mono(block: np.ndarray) -> np.ndarray:
    wave = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]  # (n,)
    if not np.all(np.isfinite(wave)):
        raise AudioError("unreadable: non-finite samples")
    return np.ascontiguousarray(wave, dtype=np.float32)


def file_blocks(path: str | os.PathLike[str], *, block_s: float = BLOCK_S) -> Blocks:
    """A source of the file's 16 kHz mono blocks (each call starts from the beginning)."""
    p = check_file(path)

    def gen() -> Iterator[np.ndarray]:
        try:
            with sf.SoundFile(sf_name(p)) as f:
                yield from _decode(f, block_s)
        except DECODE_ERRORS as e:
            raise AudioError(f"unreadable: {decode_reason(e, p)}") from None

    return gen


def bytes_blocks(data: bytes, *, block_s: float = BLOCK_S) -> tuple[Blocks, AudioInfo]:
    """A source of 16 kHz blocks from an encoded file held in memory (an upload), and its header's facts."""
    import io

    reason = sniff(lambda at, n: data[at : at + n], len(data)) or wav_truncation(io.BytesIO(data), len(data))
    if reason:
        raise AudioError(reason)
    try:
        info = sf.info(io.BytesIO(data))
    except DECODE_ERRORS:
        raise AudioError("unreadable: not an audio file this server can decode (WAV, FLAC, OGG, MP3)") from None
    if info.frames <= 0:
        raise AudioError("empty: no audio frames")

    def gen() -> Iterator[np.ndarray]:
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                yield from _decode(f, block_s)
        except DECODE_ERRORS:
            raise AudioError("unreadable: the audio data is damaged") from None

    return gen, AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels))


def _decode(f: sf.SoundFile, block_s: float) -> Iterator[np.ndarray]:
    sr = int(f.samplerate)
    stream = None if sr == SR else soxr.ResampleStream(sr, SR, 1, dtype="float32", quality="HQ")
    for block in f.blocks(blocksize=max(1, int(block_s * sr)), dtype="float32", always_2d=True):
        mono = _mono(block)
        yield mono if stream is None else stream.resample_chunk(mono)
    if stream is not None:
        yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def array_blocks(wave: np.ndarray, sr: int, *, block_s: float = BLOCK_S) -> Blocks:
    """The same for a waveform in memory (mono ``(S,)`` or ``(S, channels)``, any rate)."""
    w = np.asarray(wave, dtype=np.float32)
    w = _mono(w if w.ndim == 2 else w[:, None])
    if sr != SR:
        w = soxr.resample(w, sr, SR, quality="HQ").astype(np.float32, copy=False)
    n = max(1, int(block_s * SR))

    def gen() -> Iterator[np.ndarray]:
        for i in range(0, len(w), n):
            yield w[i : i + n]

    return gen


class LevelMeter:
    """Loudest 25 ms frame (RMS, dBFS) over a stream of 16 kHz blocks."""

    def __init__(self, frame_s: float = 0.025) -> None:
        self.n = int(SR * frame_s)
        self.rest = np.zeros(0, np.float32)
        self.peak_sq = 0.0
        self.samples = 0

    def feed(self, block: np.ndarray) -> None:
        self.samples += len(block)
        data = np.concatenate([self.rest, block])
        k = len(data) // self.n
        if k:
            frames = data[: k * self.n].astype(np.float64).reshape(k, self.n)
            self.peak_sq = max(self.peak_sq, float((frames**2).mean(axis=1).max()))
        self.rest = data[k * self.n :]

    def peak_dbfs(self) -> float:
        peak = self.peak_sq
        if len(self.rest) and self.samples < self.n:  # shorter than a frame: its whole RMS
            peak = float((self.rest.astype(np.float64) ** 2).mean())
        return 10.0 * np.log10(max(peak, 1e-20))

    def check(self) -> None:
        if self.samples == 0:
            raise AudioError("empty: no audio frames")
        short = too_short_reason(self.samples / SR)
        if short:
            raise AudioError(short)
        if self.peak_dbfs() < SILENCE_DBFS:
            raise AudioError(f"silent: loudest frame below {SILENCE_DBFS:.0f} dBFS")
