"""The voice: a sentence laid out as articulation tracks at 200 Hz, then a source-filter render at the audio rate.

A :class:`Sentence` is rhythm: a stress pattern per word (``"S s Ss"``) sets the syllable count; onsets
(stops, fricatives, sonorants) and vowels are drawn from the sentence text, so a sentence sounds the same for
every speaker. :func:`synthesize_utterance` turns (speaker, sentence, emotion) into a dry take: a Rosenberg
glottal pulse train with per-period jitter and shimmer, pulsed aspiration noise for breathiness, a tilt shelf
for tension, then a cascade of five time-varying formant resonators (formants glide between syllable
targets), plus band-pass noise for fricatives and stop bursts; leading and trailing silence.

The random draws happen in a fixed order (timing, pitch, then the source and the noises): the bytes of a
corpus depend on it, so keep it when changing this module (and bump ``SYNTH_VERSION`` when they change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from emoshift.synth.channel import CREMAD_SR
from emoshift.synth.speaker import Prosody, Speaker, emotion_prosody, stable_int, vary

FRAME_S = 0.005  # control rate of the articulation tracks (pitch, formants, envelopes): 5 ms
FILTER_FRAMES = 2  # the formant filters take new coefficients every 2 frames (10 ms)


@dataclass(frozen=True, slots=True)
class Syllable:
    stressed: bool
    word_start: bool
    onset: str  # "" or a consonant from _CONSONANTS
    vowel: str  # a key of _VOWELS


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence as rhythm: ``stress`` has one token per word, one letter per syllable (S stressed, s not)."""

    code: str
    text: str
    stress: str

    def syllables(self) -> tuple[Syllable, ...]:
        return _sentence_syllables(self.text, self.stress)


# Adult male vowel formants F1-F3 in Hz (Peterson & Barney 1952); F4, F5 fixed. Scaled per speaker.
_VOWELS: dict[str, tuple[float, float, float]] = {
    "i": (270, 2290, 3010),
    "I": (390, 1990, 2550),
    "E": (530, 1840, 2480),
    "ae": (660, 1720, 2410),
    "a": (730, 1090, 2440),
    "O": (570, 840, 2410),
    "U": (440, 1020, 2240),
    "u": (300, 870, 2240),
    "V": (640, 1190, 2390),
    "3": (490, 1350, 1690),
}
_SCHWA = (500.0, 1500.0, 2500.0)
_F45 = (3350.0, 4200.0)
_BANDWIDTHS = (70.0, 100.0, 150.0, 220.0, 300.0)

# Consonant -> (manner, F2 locus in Hz, noise band for frication or burst: 0 "s", 1 "sh", 2 "f")
_CONSONANTS: dict[str, tuple[str, float, int]] = {
    "p": ("stop", 900, 2),
    "t": ("stop", 1800, 0),
    "k": ("stop", 1600, 1),
    "b": ("vstop", 900, 2),
    "d": ("vstop", 1800, 0),
    "g": ("vstop", 1600, 1),
    "s": ("fric", 1800, 0),
    "sh": ("fric", 1900, 1),
    "f": ("fric", 1000, 2),
    "h": ("asp", 0, 2),
    "m": ("nasal", 1000, 2),
    "n": ("nasal", 1700, 2),
    "l": ("glide", 1100, 2),
    "w": ("glide", 800, 2),
}


# Share of its syllable that an onset takes, by manner (capped at 130 ms).
_ONSET_SHARE: dict[str, float] = {
    "stop": 0.3,
    "vstop": 0.22,
    "fric": 0.35,
    "asp": 0.2,
    "nasal": 0.25,
    "glide": 0.22,
}


@lru_cache(maxsize=64)
def _sentence_syllables(text: str, stress: str) -> tuple[Syllable, ...]:
    """Onsets and vowels drawn from the sentence text: every speaker says the same 'words'."""
    rng = np.random.default_rng(stable_int("sentence", text))
    onsets = list(_CONSONANTS) + [""] * 3
    vowels = list(_VOWELS)
    out: list[Syllable] = []
    for word in stress.split():
        for i, mark in enumerate(word):
            out.append(
                Syllable(
                    stressed=mark == "S",
                    word_start=i == 0,
                    onset=onsets[int(rng.integers(len(onsets)))],
                    vowel=vowels[int(rng.integers(len(vowels)))],
                )
            )
    return tuple(out)


@dataclass(slots=True)
class _Tracks:
    """Control tracks, one value per 5 ms frame."""

    f0_hz: np.ndarray  # (T,)
    voicing: np.ndarray  # (T,) 0..1
    amp_voice: np.ndarray  # (T,) voiced amplitude
    amp_asp: np.ndarray  # (T,) aspiration noise through the tract ("h", stop release)
    amp_fric: np.ndarray  # (3, T) frication noise per band (s, sh, f)
    formants: np.ndarray  # (5, T) Hz
    bandwidths: np.ndarray  # (5, T) Hz


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Moving average along the last axis with edge padding (coarticulation, envelope smoothing)."""
    if frames <= 1:
        return x
    k = np.ones(frames) / frames
    pad = [(0, 0)] * (x.ndim - 1) + [(frames // 2, frames - 1 - frames // 2)]
    xp = np.pad(x, pad, mode="edge")
    if x.ndim == 1:
        return np.convolve(xp, k, mode="valid")
    return np.stack([np.convolve(row, k, mode="valid") for row in xp])


# A segment of the timeline: (kind, start_s, dur_s, syllable index); kind is "pause", "cons" or "vowel".
_Segment = tuple[str, float, float, int]


def _timing(
    units: Sequence[Syllable], speaker: Speaker, p: Prosody, rng: np.random.Generator
) -> tuple[list[_Segment], float]:
    """Lay the syllables out in time: pauses between some words, an onset then a vowel per syllable."""
    base = 1.0 / (speaker.rate_sps * p.rate)  # seconds per syllable
    segments: list[_Segment] = []
    t = 0.0
    pause_p = 0.12 + 0.25 * max(0.0, 1.0 - p.rate)  # slow speech pauses more
    for i, u in enumerate(units):
        if u.word_start and i > 0 and rng.random() < pause_p:
            d = rng.uniform(0.05, 0.14) / p.rate
            segments.append(("pause", t, d, i))
            t += d
        dur = base * (1.3 if u.stressed else 0.8) * float(np.exp(rng.normal(0.0, 0.12)))
        if i == len(units) - 1:
            dur *= 1.35  # phrase-final lengthening
        cd = min(_ONSET_SHARE[_CONSONANTS[u.onset][0]] * dur, 0.13) if u.onset else 0.0
        if cd > 0:
            segments.append(("cons", t, cd, i))
        segments.append(("vowel", t + cd, dur - cd, i))
        t += dur
    return segments, t


@dataclass(slots=True)
class _Targets:
    """Raw per-frame targets before smoothing; formants are NaN where no segment sets them."""

    voicing: np.ndarray  # (T,)
    amp_v: np.ndarray  # (T,)
    amp_asp: np.ndarray  # (T,)
    amp_fric: np.ndarray  # (3, T)
    formants: np.ndarray  # (3, T) F1-F3, NaN = not set
    warp: np.ndarray  # (3,) the speaker's F1-F3 idiosyncrasy
    fs: float  # formant scale: tract length and the emotion's shift

    @classmethod
    def empty(cls, n: int, speaker: Speaker, p: Prosody) -> _Targets:
        return cls(
            voicing=np.zeros(n),
            amp_v=np.zeros(n),
            amp_asp=np.zeros(n),
            amp_fric=np.zeros((3, n)),
            formants=np.full((3, n), np.nan),
            warp=np.asarray(speaker.formant_warp[:3]),
            fs=speaker.formant_scale * (1.0 + p.formant_shift),
        )


def _lay_vowel(tg: _Targets, a: int, b: int, u: Syllable, stress_gain: float) -> None:
    target = np.asarray(_VOWELS[u.vowel], dtype=float)
    if not u.stressed:  # reduced vowels drift toward schwa
        target = 0.5 * target + 0.5 * np.asarray(_SCHWA)
    tg.formants[:, a:b] = (target * tg.warp * tg.fs)[:, None]
    tg.voicing[a:b] = 1.0
    tg.amp_v[a:b] = (stress_gain if u.stressed else 0.75) * signal.windows.tukey(b - a, 0.6)


def _lay_stop(tg: _Targets, a: int, b: int, manner: str, band: int) -> None:
    """Closure, then a burst at the end; a voiceless stop aspirates into the vowel, a voiced one has a voice bar."""
    burst = max(a, b - max(2, (b - a) // 4))
    tg.amp_fric[band, burst:b] = 0.6 if manner == "stop" else 0.3
    if manner == "stop":
        tg.amp_asp[b - 1 : b + 4] = 0.35
    else:
        tg.voicing[a:b] = 1.0
        tg.amp_v[a:burst] = 0.06


def _lay_consonant(tg: _Targets, a: int, b: int, onset: str) -> None:
    manner, locus, band = _CONSONANTS[onset]
    if manner != "asp":
        tg.formants[:, a:b] = (np.array([280.0, locus, 2500.0]) * tg.warp * tg.fs)[:, None]
    if manner in ("stop", "vstop"):
        _lay_stop(tg, a, b, manner, band)
    elif manner == "fric":
        tg.amp_fric[band, a:b] = (0.45, 0.35, 0.18)[band] * signal.windows.tukey(b - a, 0.5)
    elif manner == "asp":
        tg.amp_asp[a:b] = 0.3
    else:  # nasal, glide: voiced, weaker
        tg.voicing[a:b] = 1.0
        tg.amp_v[a:b] = 0.3 if manner == "nasal" else 0.5
        if manner == "nasal":
            tg.formants[0, a:b] = 250.0 * tg.fs


def _lay_segments(
    tg: _Targets, segments: Sequence[_Segment], units: Sequence[Syllable], stress_gain: float
) -> list[tuple[int, int, bool]]:
    """Fill the targets segment by segment; returns the vowels' frame spans (start, end, stressed)."""
    vowel_spans: list[tuple[int, int, bool]] = []
    for kind, start, dur, i in segments:
        a = int(round(start / FRAME_S))
        b = max(int(round((start + dur) / FRAME_S)), a + 1)
        if kind == "vowel":
            _lay_vowel(tg, a, b, units[i], stress_gain)
            vowel_spans.append((a, b, units[i].stressed))
        elif kind == "cons":
            _lay_consonant(tg, a, b, units[i].onset)
        # pauses stay silent; formants are filled from the neighbours
    return vowel_spans


def _formant_tracks(raw: np.ndarray, speaker: Speaker) -> np.ndarray:
    """F1-F3 held through gaps then glided (coarticulation over ~40 ms), F4-F5 fixed: ``(5, T)`` Hz."""
    n = raw.shape[1]
    for row in raw:
        idx = np.where(np.isfinite(row), np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        row[:] = row[idx]
        first = np.flatnonzero(np.isfinite(row))
        row[: first[0] if len(first) else n] = row[first[0]] if len(first) else 500.0
    f45 = np.asarray(_F45)[:, None] * speaker.formant_scale * np.asarray(speaker.formant_warp[3:])[:, None]
    return np.vstack([_smooth(raw, 8), np.repeat(f45, n, axis=1)])


def _bandwidths(voicing: np.ndarray, breath: float) -> np.ndarray:
    """``(5, T)`` Hz: a breathy voice's open glottis damps F1; unvoiced frames are damped more."""
    bw = np.asarray(_BANDWIDTHS)[:, None] * np.ones((1, len(voicing)))
    bw[0] += 120.0 * breath
    bw[:, :] *= np.where(voicing > 0, 1.0, 1.6)[None, :]
    return bw


def _pitch_contour(
    n: int,
    total_s: float,
    vowel_spans: Sequence[tuple[int, int, bool]],
    speaker: Speaker,
    p: Prosody,
    rng: np.random.Generator,
) -> np.ndarray:
    """F0 in Hz per frame: declination, accents on stressed vowels, a final rise or fall, wander, tremor."""
    times = np.arange(n) * FRAME_S
    x = times / max(total_s, 1e-3)
    rng_pr = speaker.pitch_range * p.pitch_range
    st = p.pitch_st + rng_pr * (1.0 - 2.5 * x)  # semitones re the habitual pitch; declination
    for j, (a, b, stressed) in enumerate(vowel_spans):
        if stressed:
            c, s = 0.5 * (a + b) * FRAME_S, max(0.4 * (b - a) * FRAME_S, 0.02)
            amp = rng_pr * rng.uniform(1.5, 3.0) * (1.25 if j == 0 else 1.0)
            st += amp * np.exp(-0.5 * ((times - c) / s) ** 2)
    if vowel_spans:
        a, b, _ = vowel_spans[-1]
        st[a:b] += p.final_st * np.linspace(0.0, 1.0, b - a)
        st[b:] += p.final_st
    knots = rng.normal(0.0, 0.4, size=int(total_s / 0.1) + 2)
    st += np.interp(times / 0.1, np.arange(len(knots)), knots)  # slow wander
    if p.tremor_st:
        st += p.tremor_st * np.sin(2 * np.pi * rng.uniform(5.0, 7.0) * times + rng.uniform(0, 2 * np.pi))
    return np.clip(speaker.f0_hz * 2.0 ** (st / 12.0), 50.0, 700.0)


def _articulate(units: Sequence[Syllable], speaker: Speaker, p: Prosody, rng: np.random.Generator) -> _Tracks:
    """Lay the syllables out in time and fill the control tracks."""
    segments, total_s = _timing(units, speaker, p, rng)
    n = int(np.ceil(total_s / FRAME_S)) + 1
    tg = _Targets.empty(n, speaker, p)
    vowel_spans = _lay_segments(tg, segments, units, stress_gain=1.0 + 0.25 * min(p.pitch_range, 2.0))
    breath = float(np.clip(speaker.breathiness + p.breathiness, 0.0, 0.9))
    formants = _formant_tracks(tg.formants, speaker)
    return _Tracks(
        f0_hz=_pitch_contour(n, total_s, vowel_spans, speaker, p, rng),
        voicing=_smooth(tg.voicing, 3),
        amp_voice=_smooth(tg.amp_v, 3),
        amp_asp=_smooth(tg.amp_asp, 2),
        amp_fric=_smooth(tg.amp_fric, 2),
        formants=formants,
        bandwidths=_bandwidths(tg.voicing, breath),
    )


def _rosenberg(phase: np.ndarray, open_q: float, speed_q: float) -> np.ndarray:
    """Rosenberg (1971) glottal flow for the position ``phase`` (0..1) within each period."""
    tp = open_q * speed_q / (1.0 + speed_q)  # opening
    tn = open_q / (1.0 + speed_q)  # closing
    opening = 0.5 * (1.0 - np.cos(np.pi * phase / tp))
    closing = np.cos(0.5 * np.pi * np.clip((phase - tp) / tn, 0.0, 1.0))
    return np.where(phase < tp, opening, np.where(phase < tp + tn, closing, 0.0))


@lru_cache(maxsize=8)
def _fric_filters(sr: int) -> tuple[np.ndarray, ...]:
    """Band-pass filters for the three frication noises: "s" (high), "sh" (mid), "f" (broad, weak)."""
    top = 0.45 * sr
    bands = ((3800.0, min(9500.0, top), 4), (1800.0, 4200.0, 4), (900.0, min(11000.0, top), 2))
    return tuple(
        signal.butter(order, (lo, hi), btype="bandpass", fs=sr, output="sos") for lo, hi, order in bands
    )


@lru_cache(maxsize=8)
def _high_band(sr: int) -> np.ndarray:
    return signal.butter(2, 4500.0, btype="highpass", fs=sr, output="sos")


def _formant_cascade(
    x: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, sr: int, hop: int
) -> np.ndarray:
    """Five two-pole resonators in cascade (unity gain at DC); new coefficients every ``FILTER_FRAMES`` frames.

    The filter state carries over from block to block, so the formants glide without clicks.
    """
    n_frames = formants.shape[1]
    blocks = np.arange(0, n_frames, FILTER_FRAMES)  # first frame of each block
    mid = np.minimum(blocks + FILTER_FRAMES // 2, n_frames - 1)
    f = np.minimum(formants[:, mid], 0.45 * sr)  # (5, blocks)
    r = np.exp(-np.pi * bandwidths[:, mid] / sr)
    c = 2.0 * r * np.cos(2.0 * np.pi * f / sr)
    sos = np.zeros((len(blocks), 5, 6))
    sos[..., 0] = (1.0 - c + r**2).T
    sos[..., 3] = 1.0
    sos[..., 4] = -c.T
    sos[..., 5] = (r**2).T
    y = np.empty_like(x)
    zi = np.zeros((5, 2))
    step = FILTER_FRAMES * hop
    for i in range(len(blocks)):
        seg = slice(i * step, (i + 1) * step)
        y[seg], zi = signal.sosfilt(sos[i], x[seg], zi=zi)
    return y


class _Upsample:
    """Control track (one value per frame) -> audio rate, by linear interpolation."""

    def __init__(self, n_frames: int, hop: int) -> None:
        self.pos = (np.arange(n_frames * hop) + 0.5) / hop - 0.5  # sample -> frame position
        self.frames = np.arange(n_frames)

    def __call__(self, track: np.ndarray) -> np.ndarray:
        return np.interp(self.pos, self.frames, track)


def _glottal_source(
    up: _Upsample, tr: _Tracks, speaker: Speaker, p: Prosody, rng: np.random.Generator, sr: int
) -> np.ndarray:
    """The excitation at ``sr``: jittered, shimmered Rosenberg pulses plus pulsed aspiration, tilted by tension."""
    f0, voicing, amp_v = up(tr.f0_hz), up(tr.voicing), up(tr.amp_voice)
    n = len(f0)
    # per-period jitter on the frequency, shimmer on the amplitude
    phase0 = np.cumsum(f0) / sr
    periods = int(phase0[-1]) + 2
    jitter = float(np.clip(speaker.jitter + p.jitter, 0.0, 0.08))
    jit = np.clip(1.0 + jitter * rng.standard_normal(periods), 0.75, 1.25)
    phase = np.cumsum(f0 * jit[phase0.astype(np.int64)]) / sr
    k = phase.astype(np.int64)
    shim = np.exp(float(speaker.shimmer) * rng.standard_normal(int(k[-1]) + 1))
    tension = float(np.clip(speaker.tension + p.tension, -1.5, 1.5))
    breath = float(np.clip(speaker.breathiness + p.breathiness, 0.0, 0.9))
    open_q = float(np.clip(0.6 - 0.15 * tension + 0.15 * breath, 0.3, 0.9))
    flow = _rosenberg(phase - k, open_q, 2.5 + 0.5 * tension) * shim[k]
    pulses = np.diff(flow, prepend=0.0)  # lip radiation: differentiated flow
    voiced = voicing > 0.5
    pulses /= np.sqrt(np.mean(pulses[voiced] ** 2)) if voiced.any() else 1.0
    noise = rng.standard_normal(n)
    aspiration = noise * (0.4 + flow)  # noise pulsed by the glottal opening
    aspiration /= np.sqrt(np.mean(aspiration**2))
    source = voicing * amp_v * ((1.0 - breath) * pulses + 1.2 * breath * aspiration)
    source += up(tr.amp_asp) * rng.standard_normal(n)
    # tension as spectral tilt: a shelf above ~1 kHz, -13 dB (lax) .. +5 dB (pressed)
    a = np.exp(-2.0 * np.pi * 1000.0 / sr)
    low = signal.lfilter([1.0 - a], [1.0, -a], source)
    return low + 10.0 ** ((6.0 * tension - 4.0) / 20.0) * (source - low)


def _add_frication(speech: np.ndarray, up: _Upsample, tr: _Tracks, rng: np.random.Generator, sr: int) -> None:
    """Band-pass noise for fricatives and stop bursts, added in place (one noise shared by the three bands)."""
    fric_noise = rng.standard_normal(len(speech))
    for band, sos in enumerate(_fric_filters(sr)):
        amp = up(tr.amp_fric[band])
        if amp.any():
            speech += 1.2 * amp * signal.sosfilt(sos, fric_noise)


def take_prosody(*, speaker: Speaker, emotion: str, strength: float, rng: np.random.Generator) -> Prosody:
    """The prosody one take is rendered with: the emotion at ``strength`` x expressiveness, varied per take.

    :func:`synthesize_utterance` draws it first from its ``rng``, so a fresh stream seeded alike gives it back
    without rendering (how :mod:`emoshift.synth.annotate` rates a take by the prosody it was given).
    """
    return vary(emotion_prosody(emotion, strength * speaker.expressiveness), rng)


def synthesize_utterance(
    *,
    speaker: Speaker,
    sentence: Sentence,
    emotion: str = "neutral",
    strength: float = 1.0,
    sr: int = CREMAD_SR,
    rng: np.random.Generator,
    pad_s: tuple[float, float] = (0.2, 0.3),
    max_syllables: int | None = None,
) -> np.ndarray:
    """One dry take (no room, no noise): ``(samples,)`` float32 at ``sr``, speech RMS near -28 dBFS + loudness.

    ``strength`` scales the emotion's distance from neutral (then the speaker's expressiveness does). Leading
    and trailing silence are each drawn from ``pad_s`` seconds.
    """
    if sr < 8000:
        raise ValueError(f"sr must be at least 8000 Hz, got {sr}")
    p = take_prosody(speaker=speaker, emotion=emotion, strength=strength, rng=rng)
    units = sentence.syllables()[:max_syllables]
    if not units:
        raise ValueError(
            f"sentence {sentence.code!r} has no syllables to say (max_syllables={max_syllables})"
        )
    tr = _articulate(units, speaker, p, rng)
    hop = int(round(sr * FRAME_S))
    up = _Upsample(len(tr.f0_hz), hop)
    source = _glottal_source(up, tr, speaker, p, rng, sr)
    speech = _formant_cascade(source, tr.formants, tr.bandwidths, sr, hop)
    # the formants above F5 (and the nasal/sinus branches) that a five-pole cascade leaves out: the source's
    # high band at a fixed share, so voiced speech reaches up to the Nyquist frequency, tilted by tension
    speech += 0.08 * signal.sosfilt(_high_band(sr), source)
    _add_frication(speech, up, tr, rng, sr)

    amp_v = up(tr.amp_voice)
    active = amp_v > 0.5 * amp_v.max() if amp_v.max() > 0 else np.ones(len(speech), dtype=bool)
    rms = float(np.sqrt(np.mean(speech[active] ** 2))) or 1.0
    speech *= 10.0 ** ((-28.0 + speaker.level_db + p.loudness_db) / 20.0) / rms
    lead, trail = (int(rng.uniform(*pad_s) * sr) for _ in range(2))
    return np.concatenate([np.zeros(lead), speech, np.zeros(trail)]).astype(np.float32)
