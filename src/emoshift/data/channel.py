"""Channel effects: what a recording goes through between the speaker and the model, on waveforms, seeded.

One implementation per effect, used by both

- robustness evaluation (``emoshift evaluate RUN --on NAME=ROOT --perturb SPEC``,
  :mod:`emoshift.evaluation.robustness`): each utterance perturbed once, before the model's front end;
- training augmentation (``training.augment.codec_p`` / ``telephone_p`` / ``reverb_p``,
  :class:`emoshift.data.augment.WaveChannel`), drawn on the fly per step.

A SPEC (:func:`parse_perturbation`, one-line :class:`PerturbationError` for a bad one):

=====================  ==============================================================================
``mp3:<N>k``           MPEG-1/2 layer III at N kbit/s (8-320), LAME through libsndfile (soundfile)
``opus:<N>k``          Opus in Ogg at N kbit/s (6-256), libopus through libsndfile
``gsm``                GSM 06.10 full rate (13 kbit/s, 8 kHz), libsndfile's own codec
``telephone``          the narrow-band line: 8 kHz, 300-3400 Hz band-pass, 8-bit mu-law (G.711)
``noise:snr=<dB>``     white Gaussian noise at that SNR over the clip's mean power
``reverb:rt60=<s>``    a room: the direct sound plus an exponentially decaying noise tail of equal energy
``gain:<dB>db``        a level change (``gain:-20db`` lowers the RMS by 20 dB)
``clip`` / ``clip:<dB>db``  hard clipping: the top <dB> (12 by default) of the waveform cut off flat
=====================  ==============================================================================

Codecs run through the libsndfile that soundfile already loads (1.1+ writes MP3 and Ogg/Opus), so no ffmpeg and
no new dependency: each clip is resampled to a rate the codec takes, encoded in memory, decoded, aligned to
the input (cross-correlation: a codec's look-ahead delay is not a channel effect) and resampled back, so length
and rate are kept. The room is :func:`emoshift.synth.channel.room_ir` (Polack's statistical model: Gaussian noise
under an exponential envelope), the synthetic corpora's own: it has exactly the asked decay, where an image-source
simulator (pyroomacoustics, not a dependency here) reaches an RT60 only through Sabine's approximate inversion.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy import signal

from emoshift.core.audio import resample
from emoshift.core.errors import EmoshiftError
from emoshift.synth.channel import room_ir, telephone_line

__all__ = ["KINDS", "Perturbation", "PerturbationError", "canonical_specs", "parse_perturbation", "perturbation_seed"]

KINDS = ("mp3", "opus", "gsm", "telephone", "noise", "reverb", "gain", "clip")
CODECS = ("mp3", "opus", "gsm")
CLIP_DB = 12.0  # ``clip`` alone: the top 12 dB cut off

# LAME's sample rates by MPEG version and the bit rates (kbit/s) each allows; libsndfile maps its compression
# level 0..1 linearly onto the version's range, highest first, and LAME takes the nearest allowed rate.
_MP3_RANGES = {48_000: (32, 320), 44_100: (32, 320), 32_000: (32, 320), 24_000: (8, 160), 22_050: (8, 160),
               16_000: (8, 160), 12_000: (8, 64), 11_025: (8, 64), 8_000: (8, 64)}
_OPUS_RATES = (48_000, 24_000, 16_000, 12_000, 8_000)
_OPUS_RANGE = (6.0, 256.0)  # libsndfile: level 0 -> 256 kbit/s, level 1 -> 6 kbit/s, linear
_MAX_LAG = 4096  # samples searched when aligning a decoded clip to its input


class PerturbationError(EmoshiftError, ValueError):
    """A perturbation SPEC that cannot be read (one line: what is wrong and what is accepted)."""


GRAMMAR = ("mp3:<N>k, opus:<N>k, gsm, telephone, noise:snr=<dB>, reverb:rt60=<seconds>, gain:<dB>db, "
           "clip or clip:<dB>db")


@dataclass(frozen=True)
class Perturbation:
    """One channel effect: ``kind`` (one of :data:`KINDS`) and its number (kbit/s, SNR dB, RT60 s, gain dB,
    clipped dB; None for ``gsm`` and ``telephone``)."""

    kind: str
    value: float | None = None

    @property
    def spec(self) -> str:
        """The canonical SPEC (``mp3:16k``, ``noise:snr=10``, ``reverb:rt60=0.6``, ``gain:-20db``, ``clip``)."""
        v = self.value
        if self.kind in ("mp3", "opus"):
            return f"{self.kind}:{v:g}k"
        if self.kind == "noise":
            return f"noise:snr={v:g}"
        if self.kind == "reverb":
            return f"reverb:rt60={v:g}"
        if self.kind == "gain":
            return f"gain:{v:g}db"
        if self.kind == "clip":
            return "clip" if v == CLIP_DB else f"clip:{v:g}db"
        return self.kind

    @property
    def slug(self) -> str:
        """The SPEC spelled for a file name (no ``:`` or ``=``): ``mp3_16k``, ``noise_snr_10``,
        ``reverb_rt60_0.6``, ``gain_-20db``, ``telephone``."""
        return self.spec.replace(":", "_").replace("=", "_")

    def apply(self, wave: np.ndarray, sr: int, seed: int = 0) -> np.ndarray:
        """The perturbed waveform ``(S,)`` float32, same length and rate; the same for the same ``seed``."""
        x = np.asarray(wave, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"a perturbation takes a mono waveform (S,), got shape {x.shape}")
        if len(x) == 0:
            return x.copy()
        v = float(self.value) if self.value is not None else 0.0
        if self.kind == "mp3":
            out = _mp3(x, sr, v)
        elif self.kind == "opus":
            out = _opus(x, sr, v)
        elif self.kind == "gsm":
            out = _roundtrip(x, sr, 8_000, format="WAV", subtype="GSM610")
        elif self.kind == "telephone":
            out = telephone_line(x, sr)
        elif self.kind == "noise":
            out = _noise(x, v, np.random.default_rng(seed))
        elif self.kind == "reverb":
            out = _reverb(x, sr, v, seed)
        elif self.kind == "gain":
            out = x.astype(np.float64) * 10.0 ** (v / 20.0)
        else:  # clip
            peak = float(np.max(np.abs(x)))
            limit = peak * 10.0 ** (-v / 20.0)
            out = np.clip(x, -limit, limit)
        return np.asarray(out, dtype=np.float32)


def parse_perturbation(text: str) -> Perturbation:
    """A SPEC string -> :class:`Perturbation`; :class:`PerturbationError` (one line) when it is not one."""
    raw = text.strip().lower()
    kind, _, arg = raw.partition(":")
    if kind not in KINDS:
        raise PerturbationError(f"unknown perturbation {text!r}: use one of {GRAMMAR}")
    if kind in ("gsm", "telephone"):
        if arg:
            raise PerturbationError(f"perturbation {text!r}: {kind} takes no argument")
        return Perturbation(kind)
    if kind == "clip" and not arg:
        return Perturbation("clip", CLIP_DB)
    forms = {
        "mp3": (r"(\d+(?:\.\d+)?)k(?:bps)?", "mp3:<kbit/s>k, e.g. mp3:16k", (8.0, 320.0)),
        "opus": (r"(\d+(?:\.\d+)?)k(?:bps)?", "opus:<kbit/s>k, e.g. opus:8k", _OPUS_RANGE),
        "noise": (r"snr=(-?\d+(?:\.\d+)?)(?:db)?", "noise:snr=<dB>, e.g. noise:snr=10", (-20.0, 80.0)),
        "reverb": (r"rt60=(\d*\.?\d+)s?", "reverb:rt60=<seconds>, e.g. reverb:rt60=0.6", (0.05, 5.0)),
        "gain": (r"([-+]?\d+(?:\.\d+)?)db", "gain:<dB>db, e.g. gain:-20db", (-80.0, 40.0)),
        "clip": (r"(\d+(?:\.\d+)?)db", "clip or clip:<dB>db (the top dB cut off), e.g. clip:6db", (0.1, 40.0)),
    }
    pattern, shape, (lo, hi) = forms[kind]
    m = re.fullmatch(pattern, arg)
    if not m:
        raise PerturbationError(f"perturbation {text!r}: write it as {shape}")
    value = float(m.group(1))
    if not lo <= value <= hi:
        raise PerturbationError(f"perturbation {text!r}: {value:g} is outside {lo:g}..{hi:g} for {kind}")
    return Perturbation(kind, value)


def canonical_specs(texts: list[str], where: str) -> list[str]:
    """Each SPEC of a list (a study file's ``robustness:``) in its canonical spelling; one line for a bad one
    or one named twice."""
    specs = [parse_perturbation(t).spec for t in texts]
    if len(set(specs)) < len(specs):
        raise PerturbationError(f"{where} names a perturbation twice: {', '.join(specs)}")
    return specs


def perturbation_seed(seed: int, spec: str, key: str) -> int:
    """A stable seed per (run seed, SPEC, utterance id): the same clip gets the same noise in every process."""
    import zlib

    return zlib.crc32(f"{seed}|{spec}|{key}".encode())


# ------------------------------------------------------------------------------------------------ effects
def _aligned(decoded: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``decoded`` shifted by the lag (within +-:data:`_MAX_LAG`) that best matches ``reference``, cut or
    zero-padded to its length: a codec's encoder delay removed."""
    n = len(reference)
    z = decoded[: n + _MAX_LAG]
    if np.any(reference) and np.any(z):
        corr = signal.correlate(z, reference, mode="full", method="fft")
        lags = signal.correlation_lags(len(z), n, mode="full")
        near = np.abs(lags) <= _MAX_LAG
        lag = int(lags[near][np.argmax(corr[near])])
    else:
        lag = 0
    z = z[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, z.dtype), z])
    return np.pad(z[:n], (0, max(0, n - len(z))))


def _roundtrip(
    x: np.ndarray, sr: int, rate: int, *, format: str, subtype: str, level: float | None = None,
    constant: bool = False,
) -> np.ndarray:
    """Resample to ``rate``, encode in memory, decode, align, resample back to ``sr`` and ``len(x)``."""
    y = np.clip(resample(x, sr, rate), -1.0, 1.0)  # a codec takes full scale at most
    buf = io.BytesIO()
    kw: dict[str, object] = {}
    if level is not None:
        kw["compression_level"] = level
    if constant:
        kw["bitrate_mode"] = "CONSTANT"
    sf.write(buf, y, rate, format=format, subtype=subtype, **kw)
    buf.seek(0)
    z, _ = sf.read(buf, dtype="float32")
    out = resample(_aligned(z, y), rate, sr)
    return np.pad(out[: len(x)], (0, max(0, len(x) - len(out))))


def _mp3(x: np.ndarray, sr: int, kbps: float) -> np.ndarray:
    # the highest LAME rate at or below the clip's whose MPEG version carries this bit rate (as lame does)
    fits = [r for r, (lo, hi) in _MP3_RANGES.items() if lo <= kbps <= hi and r <= max(sr, 8_000)]
    rate = max(fits) if fits else 8_000
    lo, hi = _MP3_RANGES[rate]
    level = float(np.clip((hi - min(max(kbps, lo), hi)) / (hi - lo), 0.0, 0.999))  # libsndfile refuses 1.0
    return _roundtrip(x, sr, rate, format="MP3", subtype="MPEG_LAYER_III", level=level, constant=True)


def _opus(x: np.ndarray, sr: int, kbps: float) -> np.ndarray:
    rate = max([r for r in _OPUS_RATES if r <= sr], default=8_000)
    lo, hi = _OPUS_RANGE
    level = float(np.clip((hi - kbps) / (hi - lo), 0.0, 1.0))
    return _roundtrip(x, sr, rate, format="OGG", subtype="OPUS", level=level)


def _noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(x.astype(np.float64) ** 2))
    noise = rng.standard_normal(len(x))
    noise *= np.sqrt(power / 10.0 ** (snr_db / 10.0) / max(float(np.mean(noise**2)), 1e-20))
    return x + noise


def _reverb(x: np.ndarray, sr: int, rt60: float, seed: int) -> np.ndarray:
    """The direct sound plus the room's tail (equal energy: direct-to-reverberant ratio 0 dB), the clip's RMS
    kept, its length kept (the tail past the end is cut, as a recording that stops would)."""
    tail = room_ir(sr, rt60, seed)  # unit energy
    ir = tail.copy()
    ir[0] += 1.0
    y = signal.fftconvolve(x.astype(np.float64), ir)[: len(x)]
    rms_in, rms_out = np.sqrt(np.mean(x.astype(np.float64) ** 2)), np.sqrt(np.mean(y**2))
    return y * (rms_in / rms_out) if rms_out > 0 else y
