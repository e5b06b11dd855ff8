"""Audio I/O: decode (soundfile), downmix, resample (soxr), silence trim, crop/pad, and bad-file detection.

Every function that reads a file raises :class:`AudioError` whose message is the one-line *reason* shown to
the user when the file is skipped ("git-LFS pointer: run git lfs pull", "silent", "truncated: ...").
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import soundfile as sf
import soxr

from emoshift.core.errors import EmoshiftError

TARGET_SR = 16_000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
LFS_REASON = "git-LFS pointer: run git lfs pull"
# A take whose loudest 25 ms frame stays below this level (dBFS) carries no speech.
SILENCE_DBFS = -60.0
# Shorter clips are refused: too little to judge an emotion (and shorter than any model's smallest input).
MIN_SECONDS = 0.3
# A whole file longer than this is not an utterance (scans and caches skip it; predict streams long files).
MAX_CLIP_SECONDS = 600.0
# What the first bytes of each audio format this package decodes look like (checked before libsndfile sees a
# file, so that text or junk named .mp3 gets one plain reason and no decoder notes on stderr).
_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM")


class AudioError(EmoshiftError):
    """A file that cannot be used; ``str(err)`` is the reason shown to the user."""


def is_lfs_pointer(path: str | os.PathLike[str]) -> bool:
    """git-LFS pointer files are tiny text files starting with the spec line."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.startswith(b"version https://git-lfs")


def wav_truncation(f: BinaryIO, size: int) -> str | None:
    """Reason string if a RIFF/WAVE ``data`` chunk declares more bytes than the file (``size`` bytes) holds.

    Hand-written on purpose: libsndfile (and so soundfile) silently returns the frames that are present
    when a WAV is cut short, so truncation is invisible through it. Only the chunk headers are read from ``f``
    (an open binary file or ``io.BytesIO``).
    """
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None  # not a plain RIFF WAV (RF64, FLAC, ...): nothing to say
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"data":
            have = size - (pos + 8)
            if csize != 0xFFFFFFFF and have < csize:
                return f"truncated: header declares {csize} audio bytes, file holds {have}"
            return None
        pos += 8 + csize + (csize & 1)
    return None


DECODE_ERRORS = (sf.LibsndfileError, OSError, RuntimeError, ValueError, TypeError, MemoryError)


def too_short_reason(seconds: float) -> str | None:
    """The reason a clip of ``seconds`` is refused as too short, or None (1 ms of slack for rounded rates)."""
    if seconds < MIN_SECONDS - 1e-3:
        return f"too short: {seconds:.2f} s (emoshift needs at least {MIN_SECONDS:.2f} s)"
    return None


def _id3_size(head: bytes) -> int:
    """Bytes taken by an ID3v2 tag at the start of ``head`` (its size is a 28-bit "synchsafe" integer)."""
    b = head[6:10]
    footer = 10 if len(head) > 5 and head[5] & 0x10 else 0
    return 10 + footer + ((b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F))


def _is_mpeg_frame(head: bytes) -> bool:
    return len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0


def sniff(read_at: Callable[[int, int], bytes], size: int) -> str | None:
    """The reason the data is not audio this package decodes, or None. ``read_at(offset, n)`` reads bytes.

    Plain magic bytes (WAV/RF64, FLAC, OGG, AIFF); an MP3 is a frame sync at the start or right after an ID3 tag
    (a tag with nothing after it is "no audio frames"). Anything else never reaches the decoder.
    """
    head = read_at(0, 12)
    if head[:4] in _MAGIC or _is_mpeg_frame(head):
        return None
    if head[:3] == b"ID3" and len(head) >= 10:
        skip = _id3_size(head)
        if skip >= size:
            return "unreadable: not audio (an MP3 tag with no audio frames after it)"
        return None if _is_mpeg_frame(read_at(skip, 4)) else "unreadable: not audio (an MP3 tag, then no MP3 frames)"
    shown = "text" if head and all(32 <= c < 127 or c in b"\t\r\n" for c in head) else "unknown data"
    return f"unreadable: not audio (the content is {shown}, not WAV, FLAC, OGG, MP3 or AIFF)"


def decode_reason(err: BaseException, path: Path) -> str:
    """A decoder's message without the file's path (the caller shows the path itself)."""
    return str(err).replace(f"'{path}'", "file").replace(str(path), "file").strip()


def check_file(path: str | os.PathLike[str]) -> Path:
    """The checks before decoding (exists, not empty, not a git-LFS pointer, not a truncated WAV)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise AudioError(f"unreadable: {(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISREG(st.st_mode):
        raise AudioError("not a file: " + ("a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"))
    if st.st_size == 0:
        raise AudioError("empty: file has 0 bytes")
    try:
        with open(p, "rb") as f:
            if f.read(24).startswith(b"version https://git-lfs"):
                raise AudioError(LFS_REASON)
            reason = sniff(lambda at, n: (f.seek(at), f.read(n))[1], st.st_size)
            if reason is None:  # a RIFF WAV whatever its extension
                f.seek(0)
                reason = wav_truncation(f, st.st_size)
    except OSError as e:
        raise AudioError(f"unreadable: {(e.strerror or str(e)).lower()}") from None
    if reason:
        raise AudioError(reason)
    return p


def sf_name(p: Path) -> bytes:
    """The path as soundfile should get it: bytes, so a file name that is not valid UTF-8 still opens."""
    return os.fsencode(p)


def read(
    path: str | os.PathLike[str], *, start: float | None = None, end: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode a file to float32 mono ``(samples,)`` at its native rate; raise AudioError on bad input.

    ``start``/``end`` (seconds) read only that segment: soundfile seeks to the first frame and reads up to
    the last, without decoding the rest of the file. A segment that lies outside the file is an AudioError.
    """
    p = check_file(path)
    try:
        data, sr = _decode(p, start, end)
    except DECODE_ERRORS as e:
        raise AudioError(f"unreadable: {decode_reason(e, p)}") from None
    if data.shape[0] == 0:
        raise AudioError("empty: no audio frames")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (samples,)
    if not np.all(np.isfinite(wave)):
        raise AudioError("unreadable: non-finite samples")
    return np.ascontiguousarray(wave, dtype=np.float32), int(sr)


def _decode(p: Path, start: float | None, end: float | None) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the rate; only frames start..end when a segment is asked for."""
    if start is None and end is None:
        with sf.SoundFile(sf_name(p)) as f:
            if f.frames > MAX_CLIP_SECONDS * f.samplerate:
                raise AudioError(
                    f"too long: {f.frames / f.samplerate / 60:.0f} min of audio (a clip is at most "
                    f"{MAX_CLIP_SECONDS / 60:.0f} min; cut it, or list its utterances with start/end in a manifest)"
                )
            return f.read(dtype="float32", always_2d=True), int(f.samplerate)
    with sf.SoundFile(sf_name(p)) as f:
        sr, total = int(f.samplerate), f.frames
        first = round((start or 0.0) * sr)
        last = total if end is None else round(end * sr)
        if first < 0 or last <= first:
            raise AudioError(f"bad segment: start {start}s, end {end}s")
        if first >= total or last > total + round(0.01 * sr):  # 10 ms of slack for rounded end times
            raise AudioError(f"segment outside the file: {start or 0.0:.2f}-{end}s of a {total / sr:.2f}s file")
        f.seek(first)
        data = f.read(min(last, total) - first, dtype="float32", always_2d=True)
    return data, sr


def peak_dbfs(wave: np.ndarray, sr: int, frame_s: float = 0.025) -> float:
    """Level of the loudest frame (RMS, dBFS). Energy, not file size, decides whether a take is silent."""
    n = max(1, int(sr * frame_s))
    usable = (len(wave) // n) * n
    if usable == 0:
        rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) if len(wave) else 0.0
    else:
        frames = wave[:usable].astype(np.float64).reshape(-1, n)
        rms = float(np.sqrt((frames**2).mean(axis=1)).max())
    return 20.0 * np.log10(max(rms, 1e-10))


def is_silent(wave: np.ndarray, sr: int, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    return peak_dbfs(wave, sr) < threshold_dbfs


def check_long_enough(wave: np.ndarray, sr: int) -> None:
    """Raise AudioError("too short: ...") for a clip under :data:`MIN_SECONDS` (scans, caches, predict)."""
    short = too_short_reason(len(wave) / sr)
    if short:
        raise AudioError(short)


def check_not_silent(wave: np.ndarray, sr: int, threshold_dbfs: float = SILENCE_DBFS) -> None:
    """Raise AudioError("silent: ...") for a take with no speech (judged by energy, never by file size)."""
    if is_silent(wave, sr, threshold_dbfs):
        raise AudioError(f"silent: loudest frame below {threshold_dbfs:.0f} dBFS")


def resample(wave: np.ndarray, sr_in: int, sr_out: int = TARGET_SR) -> np.ndarray:
    if sr_in == sr_out:
        return wave
    return soxr.resample(wave, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def trim_silence(wave: np.ndarray, sr: int, top_db: float = 40.0, frame_s: float = 0.025) -> np.ndarray:
    """Cut leading and trailing frames more than ``top_db`` below the loudest frame (as librosa.effects.trim).

    RAVDESS clips carry about a second of silence at both ends; trimming keeps crops on the speech.
    """
    start, end = trim_bounds(wave, sr, top_db=top_db, frame_s=frame_s)
    return wave if (start, end) == (0, len(wave)) else wave[start:end]


def trim_bounds(wave: np.ndarray, sr: int, top_db: float = 40.0, frame_s: float = 0.025) -> tuple[int, int]:
    """``(start, end)`` sample indices of :func:`trim_silence`'s result (``(0, len)`` when nothing is cut)."""
    n = max(1, int(sr * frame_s))
    hop = max(1, n // 4)
    if len(wave) <= n:
        return 0, len(wave)
    starts = np.arange(0, len(wave) - n + 1, hop)
    # Frame energies from a running sum of squares: O(samples) instead of materialising (frames, n).
    csum = np.concatenate(([0.0], np.cumsum(wave.astype(np.float64) ** 2)))
    mean_sq = np.maximum((csum[starts + n] - csum[starts]) / n, 0.0)  # (frames,)
    db = 10.0 * np.log10(np.maximum(mean_sq, 1e-20))
    keep = np.nonzero(db > db.max() - top_db)[0]
    if len(keep) == 0:
        return 0, len(wave)
    return int(starts[keep[0]]), int(starts[keep[-1]] + n)


def load(
    path: str | os.PathLike[str],
    sr: int = TARGET_SR,
    *,
    trim: bool = False,
    trim_top_db: float = 40.0,
    reject_silent: bool = True,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Decode -> mono -> resample to ``sr`` (soxr) -> optional trim. Raises AudioError with the reason.

    ``start``/``end`` (seconds) load one segment of a longer file (see :func:`read`).
    """
    wave, native_sr = read(path, start=start, end=end)
    if reject_silent:
        check_not_silent(wave, native_sr)
    wave = resample(wave, native_sr, sr)
    if trim:
        wave = trim_silence(wave, sr, top_db=trim_top_db)
    return wave


class Segment(Protocol):
    """What :func:`load_utterance` needs (``emoshift.corpora.Utterance`` has it)."""

    @property
    def path(self) -> str: ...
    @property
    def start(self) -> float | None: ...
    @property
    def end(self) -> float | None: ...


def load_utterance(
    u: Segment,
    sample_rate: int = TARGET_SR,
    *,
    trim: bool = False,
    trim_top_db: float = 40.0,
    reject_silent: bool = True,
) -> np.ndarray:
    """:func:`load` of an utterance's audio, honouring its segment (``u.start``/``u.end``): (samples,)."""
    return load(
        u.path,
        sample_rate,
        trim=trim,
        trim_top_db=trim_top_db,
        reject_silent=reject_silent,
        start=u.start,
        end=u.end,
    )


def crop_or_pad(
    x: np.ndarray, length: int, *, mode: str = "center", rng: np.random.Generator | None = None
) -> np.ndarray:
    """Fix the last axis to ``length``: centred (evaluation) or random (training) crop, zero-pad at the end."""
    n = x.shape[-1]
    if n == length:
        return x
    if n < length:
        pad = [(0, 0)] * (x.ndim - 1) + [(0, length - n)]
        return np.pad(x, pad)
    if mode == "center":
        start = (n - length) // 2
    elif mode == "random":
        start = int((rng or np.random.default_rng()).integers(0, n - length + 1))
    else:
        raise ValueError(f"crop mode must be 'center' or 'random', got {mode!r}")
    return x[..., start : start + length]
