"""The recording chain of each synthetic corpus, applied to a dry take: four recording conditions.

RAVDESS is a studio (48 kHz, noise floor near -75 dBFS, full band, dry). CREMA-D varies per actor session
(16 kHz, noise at -72 to -50 dBFS with a random colour, mains hum for some, a random 3-7 kHz low-pass and
70-250 Hz high-pass, two random microphone-colouring peaks, a small room, gain differences). IEMOCAP is a
reverberant stage (RT60 0.3-0.6 s, full band); the manifest corpus a telephone-band line, and its ``phone``
speakers' line is also G.711 coded (8 kHz, 8-bit mu-law: :func:`telephone_line`), so the corpora differ in
channel, codec, room and level (the leave-one-corpus-out benchmark, ``configs/domain_shift.yaml``).
:func:`apply_channel` runs room -> noise -> microphone colour -> band limits -> gain -> hum -> limiter -> codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

from emoshift.core.audio import resample

RAVDESS_SR = 48_000
CREMAD_SR = 16_000
IEMOCAP_SR = 16_000
MANIFEST_SR = 16_000


@dataclass(frozen=True, slots=True)
class Channel:
    """A recording session: room, microphone, noise, band limits and gain."""

    sr: int
    noise_dbfs: float  # noise floor RMS (before the session gain)
    noise_slope: float  # noise colour: power ~ 1/f^slope (0 white, 1 pink, 2 brown)
    highpass_hz: float
    lowpass_hz: float | None  # None: full band
    eq: tuple[tuple[float, float, float], ...] = ()  # microphone colouring: (Hz, gain dB, Q) peaks
    reverb_rt60: float = 0.0  # seconds; 0 = dry
    reverb_mix: float = 0.0  # share of reverberant sound
    gain_db: float = 0.0  # session gain
    gain_sd_db: float = 0.0  # take-to-take gain variation
    hum_dbfs: float | None = None  # 60 Hz mains hum with harmonics
    room_seed: int = 0  # the room's impulse response is fixed per session
    codec: Literal["g711"] | None = None  # the line's coding: G.711 (telephone_line); None: none


def studio_channel(rng: np.random.Generator, *, sr: int = RAVDESS_SR) -> Channel:
    """RAVDESS-like: sound booth, full band, very low noise, steady gain."""
    return Channel(
        sr=sr,
        noise_dbfs=float(rng.uniform(-80.0, -72.0)),
        noise_slope=float(rng.uniform(0.5, 1.0)),
        highpass_hz=40.0,
        lowpass_hz=None,
        gain_db=float(rng.uniform(-1.5, 1.5)),
        gain_sd_db=0.5,
    )


def field_channel(rng: np.random.Generator, *, sr: int = CREMAD_SR) -> Channel:
    """CREMA-D-like: each actor's session has its own noise, band limits, microphone colour, room and gain."""
    return Channel(
        sr=sr,
        noise_dbfs=float(rng.uniform(-72.0, -50.0)),
        noise_slope=float(rng.uniform(0.0, 2.0)),
        highpass_hz=float(rng.uniform(70.0, 250.0)),
        lowpass_hz=float(rng.uniform(3000.0, 7000.0)),
        eq=tuple(
            (
                float(np.exp(rng.uniform(np.log(250.0), np.log(4000.0)))),
                float(rng.uniform(-5.0, 5.0)),
                float(rng.uniform(0.7, 2.0)),
            )
            for _ in range(2)
        ),
        reverb_rt60=float(rng.uniform(0.1, 0.4)),
        reverb_mix=float(rng.uniform(0.03, 0.2)),
        gain_db=float(rng.uniform(-8.0, 4.0)),
        gain_sd_db=2.0,
        hum_dbfs=float(rng.uniform(-58.0, -45.0)) if rng.random() < 0.3 else None,
        room_seed=int(rng.integers(2**32)),
    )


def lab_channel(rng: np.random.Generator, *, sr: int = IEMOCAP_SR) -> Channel:
    """IEMOCAP-like: one motion-capture stage per session, shotgun microphones: some room, low noise, full band."""
    return Channel(
        sr=sr,
        noise_dbfs=float(rng.uniform(-66.0, -56.0)),
        noise_slope=float(rng.uniform(0.5, 1.5)),
        highpass_hz=float(rng.uniform(60.0, 120.0)),
        lowpass_hz=None,
        eq=((float(rng.uniform(1500.0, 3500.0)), float(rng.uniform(-3.0, 3.0)), 1.0),),
        reverb_rt60=float(rng.uniform(0.3, 0.6)),
        reverb_mix=float(rng.uniform(0.15, 0.3)),
        gain_db=float(rng.uniform(-4.0, 2.0)),
        gain_sd_db=1.5,
        room_seed=int(rng.integers(2**32)),
    )


def phone_channel(
    rng: np.random.Generator, *, sr: int = MANIFEST_SR, codec: Literal["g711"] | None = None
) -> Channel:
    """A user's own recordings (the manifest corpus): telephone band (300-3400 Hz), a noisy, coloured line;
    ``codec="g711"``: also coded as a telephone network codes it (:func:`telephone_line`)."""
    return Channel(
        sr=sr,
        noise_dbfs=float(rng.uniform(-60.0, -45.0)),
        noise_slope=float(rng.uniform(0.0, 1.0)),
        highpass_hz=float(rng.uniform(250.0, 350.0)),
        lowpass_hz=float(rng.uniform(3200.0, 3600.0)),
        eq=((float(rng.uniform(800.0, 2500.0)), float(rng.uniform(-6.0, 6.0)), 1.2),),
        gain_db=float(rng.uniform(-6.0, 3.0)),
        gain_sd_db=1.0,
        codec=codec,
    )


def _peaking(freq: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """RBJ audio-EQ-cookbook peaking biquad as one SOS row."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * min(freq, 0.45 * sr) / sr
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1.0 + alpha * amp, -2.0 * np.cos(w0), 1.0 - alpha * amp])
    a = np.array([1.0 + alpha / amp, -2.0 * np.cos(w0), 1.0 - alpha / amp])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


@lru_cache(maxsize=256)
def _band_sos(sr: int, highpass_hz: float, lowpass_hz: float | None) -> np.ndarray:
    hp = signal.butter(2, highpass_hz, btype="highpass", fs=sr, output="sos")
    if lowpass_hz is None:
        return hp
    return np.vstack([hp, signal.butter(6, lowpass_hz, btype="lowpass", fs=sr, output="sos")])


@lru_cache(maxsize=256)
def room_ir(sr: int, rt60: float, room_seed: int) -> np.ndarray:
    """Exponentially decaying noise (energy normalised): a room's late reverberation, its energy 60 dB down
    after ``rt60`` seconds (Polack's statistical model). Also the ``reverb:`` perturbation's (data/channel.py)."""
    n = max(1, int(rt60 * sr))
    t = np.arange(n) / sr
    ir = np.random.default_rng(room_seed).standard_normal(n) * np.exp(-6.91 * t / rt60)
    ir[: int(0.002 * sr)] *= np.linspace(0.0, 1.0, int(0.002 * sr))  # no direct sound in the wet part
    return ir / np.sqrt(np.sum(ir**2))


def telephone_line(x: np.ndarray, sr: int) -> np.ndarray:
    """The narrow-band telephone line: 8 kHz, 300-3400 Hz band-pass (4th-order Butterworth), 8-bit mu-law
    (mu = 255, G.711) encode and decode, back at ``sr``; ``(samples,)`` float32 of the input's length. Also the
    ``telephone`` perturbation's and augmentation's (data/channel.py). By hand: G.711 is one formula, and
    ``audioop`` left the standard library in Python 3.13."""
    y = resample(x, sr, 8_000).astype(np.float64)
    y = signal.sosfilt(signal.butter(4, [300.0, 3400.0], btype="bandpass", fs=8_000, output="sos"), y)
    mu = 255.0
    c = np.sign(y) * np.log1p(mu * np.minimum(np.abs(y), 1.0)) / np.log1p(mu)  # in [-1, 1]
    c = np.round((c + 1.0) / 2.0 * 255.0) / 255.0 * 2.0 - 1.0  # 256 code words
    y = np.sign(c) * np.expm1(np.abs(c) * np.log1p(mu)) / mu
    out = resample(y.astype(np.float32), 8_000, sr)
    return np.pad(out[: len(x)], (0, max(0, len(x) - len(out))))


def _colored_noise(n: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f^slope."""
    m = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(m))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1.0
    x = sp_fft.irfft(spec * f ** (-slope / 2.0), m)[:n]
    return x / (np.sqrt(np.mean(x**2)) or 1.0)


def apply_channel(wave: np.ndarray, channel: Channel, rng: np.random.Generator) -> np.ndarray:
    """Room -> noise -> microphone colour -> band limits -> gain -> hum -> limiter -> codec. ``(samples,)``
    float32."""
    x = wave.astype(np.float64)
    sr = channel.sr
    if channel.reverb_rt60 > 0 and channel.reverb_mix > 0:
        wet = signal.fftconvolve(x, room_ir(sr, channel.reverb_rt60, channel.room_seed))[: len(x)]
        x = (1.0 - channel.reverb_mix) * x + channel.reverb_mix * wet
    x += 10.0 ** (channel.noise_dbfs / 20.0) * _colored_noise(len(x), channel.noise_slope, rng)
    if channel.eq:
        x = signal.sosfilt(np.vstack([_peaking(f, g, q, sr) for f, g, q in channel.eq]), x)
    x = signal.sosfilt(_band_sos(sr, channel.highpass_hz, channel.lowpass_hz), x)
    x *= 10.0 ** ((channel.gain_db + rng.normal(0.0, channel.gain_sd_db)) / 20.0)
    if channel.hum_dbfs is not None:
        t = np.arange(len(x)) / sr
        hum = (
            np.sin(2 * np.pi * 60 * t) + 0.5 * np.sin(2 * np.pi * 120 * t) + 0.3 * np.sin(2 * np.pi * 180 * t)
        )
        x += 10.0 ** (channel.hum_dbfs / 20.0) * np.sqrt(2.0 / 1.34) * hum
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0.97:
        x *= 0.97 / peak  # the engineer turns the gain down rather than clip
    if channel.codec == "g711":
        return telephone_line(x, sr).astype(np.float32)
    return x.astype(np.float32)


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16, rounded and clipped (done here so the bytes never depend on a library)."""
    return np.clip(np.round(wave.astype(np.float64) * 32767.0), -32768, 32767).astype("<i2")
