"""The kinds of bad (or merely unusual) audio the robustness suite feeds to every entry point.

Each :class:`Case` writes one file (or folder, link, ...) and says what a correct emoshift does with it:
``expect=None`` - the file is usable and must be used; otherwise the start of the one-line reason every entry
point gives when it skips or refuses it ("too short", "unreadable", ...). ``upload=False``: the case is about
the file system (links, permissions, folders) and has no meaning for an HTTP upload.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
SECONDS = 1.2


def speechlike(sr: int = SR, seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """A voiced, vowel-like signal (harmonics of a gliding pitch, syllable envelope): (samples,) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 * (1 - np.cos(2 * np.pi * 3 * t)) * np.minimum(1, 10 * t) * np.minimum(1, 10 * (seconds - t))
    out = 0.3 * wave * env / 3 + 0.003 * rng.standard_normal(len(t))
    return out.astype(np.float32)


def _wav(path: Path, wave: np.ndarray, sr: int = SR, subtype: str = "PCM_16", fmt: str = "WAV") -> None:
    sf.write(os.fsencode(path), wave, sr, subtype=subtype, format=fmt)  # bytes: any file name


def _raw(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _float_wav_with(value: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        wave = speechlike().astype(np.float32)
        wave[len(wave) // 2 : len(wave) // 2 + 10] = value
        _wav(path, wave, subtype="FLOAT")

    return write


def _header_only(path: Path) -> None:
    _wav(path, np.zeros(0, np.float32))  # a complete header whose data chunk holds 0 bytes


def _truncated(path: Path) -> None:
    _wav(path, speechlike())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _long_declared(path: Path) -> None:
    """A WAV header declaring 3 hours of 8 kHz audio, followed by 1 s of it: the size check must catch it
    without reading (a real 3-hour file is covered by the ``three_hours_sparse`` case)."""
    n = 3 * 3600 * 8000 * 2
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = (speechlike(8000, 1.0) * 32767).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    path.write_bytes(header + b"data" + struct.pack("<I", n) + body)


def _long_sparse(path: Path) -> None:
    """A real 3-hour 8 kHz 8-bit WAV (86 MB on disk, all but its first second a sparse hole of zeros)."""
    n = 3 * 3600 * 8000
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    head = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    first = np.clip(speechlike(8000, 1.0) * 127 + 128, 0, 255).astype(np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(head + b"data" + struct.pack("<I", n) + first)
        f.truncate(len(head) + 8 + n)  # a hole: 0x00 bytes, which in unsigned 8-bit are full negative DC


def _mp3_id3_only(path: Path) -> None:
    tag = b"TIT2" + struct.pack(">I", 6) + b"\x00\x00" + b"\x03clip\x00"
    path.write_bytes(b"ID3\x03\x00\x00" + bytes([0, 0, 0, len(tag)]) + tag)


def _corrupt_flac(path: Path) -> None:
    _wav(path, speechlike(), fmt="FLAC")
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(3)
    start = 200
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _symlink_loop(path: Path) -> None:
    os.symlink(path.name, path)  # points at itself


def _dangling(path: Path) -> None:
    os.symlink(path.parent / "does-not-exist.wav", path)


def _unreadable(path: Path) -> None:
    _wav(path, speechlike())
    path.chmod(0)


def _folder(path: Path) -> None:
    path.mkdir()
    _wav(path / "inside.txt", speechlike())


def _eight_channels(path: Path) -> None:
    _wav(path, np.repeat(speechlike()[:, None], 8, axis=1) * np.linspace(0.2, 1, 8)[None, :])


def _resampled(sr: int) -> Callable[[Path], None]:
    """The 16 kHz clip as recorded at ``sr`` (resampled: drawn at ``sr`` directly, the noise floor of this synthetic
    vowel changes band, and with it Silero VAD's verdict on it)."""
    def write(path: Path) -> None:
        import soxr

        _wav(path, soxr.resample(speechlike(), SR, sr).astype(np.float32), sr)

    return write


def _subtype(subtype: str, fmt: str = "WAV") -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _wav(path, speechlike(), subtype=subtype, fmt=fmt)

    return write


def _samples(wave: np.ndarray, subtype: str = "PCM_16") -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _wav(path, wave, subtype=subtype)

    return write


def _wav_as(ext_fmt: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _wav(path, speechlike(), fmt=ext_fmt)

    return write


_n = int(SR * SECONDS)


@dataclass(frozen=True)
class Case:
    name: str
    write: Callable[[Path], None]
    expect: str | None  # None: usable; else the start of the reason
    ext: str = ".wav"
    upload: bool = True  # meaningful as an HTTP upload
    note: str = ""
    filename: bytes | None = None  # a file name of its own (else a valid CREMA-D name is given)
    per_entry: tuple[tuple[str, str | None], ...] = ()  # (entry point, expect) where it differs

    def expected(self, entry: str) -> str | None:
        return dict(self.per_entry).get(entry, self.expect)


CASES: tuple[Case, ...] = (
    Case("empty", _raw(b""), "empty", per_entry=(("service", "the upload is empty"),)),
    Case("header_only", _header_only, "empty"),
    Case("truncated", _truncated, "truncated"),
    Case(
        "wrong_extension",
        _wav_as("WAV"),
        None,
        ext=".flac",
        note="WAV data named .flac: decoded by content",
        per_entry=(("scan", "unrecognised file name"),),
    ),
    Case("text_as_wav", _raw(b"hello, this is not audio\n" * 8), "unreadable: not audio"),
    Case(
        "text_as_mp3",
        _raw(b"hello"),
        "unreadable: not audio",
        ext=".mp3",
        per_entry=(("scan", "unrecognised file name"),),
    ),
    Case("nan_samples", _float_wav_with(float("nan")), "unreadable: non-finite"),
    Case("inf_samples", _float_wav_with(float("inf")), "unreadable: non-finite"),
    Case("all_zeros", _samples(np.zeros(_n, np.float32)), "silent"),
    Case("dc_only", _samples(np.full(_n, 0.5, np.float32)), None, note="a constant is loud, not silent",
         per_entry=(("predict", "no speech"), ("service", "no speech"))),
    Case("white_noise_2s", _samples(np.random.default_rng(5).standard_normal(2 * SR).astype(np.float32) * 0.3),
         None, note="decodes fine; predict and the service find no speech in it (VAD) and give no label",
         per_entry=(("predict", "no speech"), ("service", "no speech"))),
    Case("noise_10_samples", _samples(np.random.default_rng(6).standard_normal(10).astype(np.float32) * 0.3),
         "too short", note="0.6 ms"),
    Case("just_under_minimum", _samples(speechlike(seconds=0.28)), "too short", note="0.28 s < 0.3 s"),
    Case("clipped", _samples(np.clip(speechlike() * 20, -1, 1)), None),
    Case("one_sample", _samples(np.array([0.5], np.float32)), "too short"),
    Case("tenth_second", _samples(speechlike(seconds=0.1)), "too short"),
    Case("three_hours_declared", _long_declared, "truncated"),
    Case(
        "three_hours_sparse",
        _long_sparse,
        "too long",
        note="a real 3 h file (86 MB, sparse on disk)",
        per_entry=(("service", "the upload is larger"),),
    ),
    Case("rate_8k", _resampled(8_000), None,
         note="band-limited to 4 kHz this synthetic vowel peaks at speech probability 0.8 with no 250 ms over "
              "0.5: the VAD check's lenient threshold (0.3) keeps it"),
    Case("rate_192k", _resampled(192_000), None),
    Case("eight_channels", _eight_channels, None),
    Case("pcm_24", _subtype("PCM_24"), None),
    Case("float_32", _subtype("FLOAT"), None),
    Case("float_64", _subtype("DOUBLE"), None),
    Case("unsigned_8", _subtype("PCM_U8"), None),
    Case("a_law", _subtype("ALAW"), None),
    Case("mu_law", _subtype("ULAW"), None),
    Case("flac_ok", _subtype("PCM_16", "FLAC"), None, ext=".flac", per_entry=(("scan", "unrecognised file name"),)),
    Case("corrupt_flac", _corrupt_flac, "unreadable", ext=".flac", per_entry=(("scan", "unrecognised file name"),)),
    Case(
        "mp3_id3_only",
        _mp3_id3_only,
        "unreadable: not audio",
        ext=".mp3",
        per_entry=(("scan", "unrecognised file name"),),
    ),
    Case("symlink_loop", _symlink_loop, "unreadable", upload=False),
    Case("dangling_symlink", _dangling, "unreadable", upload=False),
    Case(
        "no_read_permission",
        _unreadable,
        None if os.geteuid() == 0 else "unreadable",
        upload=False,
        note="as root (euid 0) permissions do not apply: the file is read" if os.geteuid() == 0 else "",
    ),
    Case(
        "folder_named_wav",
        _folder,
        "not a file",
        upload=False,
        per_entry=(("scan", "absent"), ("predict", "folder holds no audio files")),
    ),
    Case(
        "non_utf8_name",
        _samples(speechlike()),
        None,
        filename=b"1003_IEO_ANG_XX_\xff\xfe.wav",
        per_entry=(("scan", "unrecognised file name"),),
    ),
    Case(
        "long_name",
        _samples(speechlike()),
        None,
        filename=b"1003_IEO_ANG_XX_" + b"x" * 230 + b".wav",
        per_entry=(("scan", "unrecognised file name"),),
    ),
)
