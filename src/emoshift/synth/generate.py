"""Synthetic look-alikes of RAVDESS and CREMA-D: the same layouts, names and formats, speech-like audio.

The real corpora cannot ship with emoshift (licences, size), yet every part of the toolkit and the whole study
must run end to end without them: in the tests, in ``make demo``, on a reviewer's laptop. This module writes
two small corpora that the real loaders accept unchanged and that keep the property the study is about: a
model trained on the "RAVDESS" side does well on it and drops, but stays above chance, on the "CREMA-D" side.

How a clip is made (all numpy/scipy, no speech model):

1. **Speaker** (:func:`make_speaker`): habitual pitch by gender (male 85-155 Hz, female 165-255 Hz), vocal-tract
   length (formant scale), speaking rate, level, breathiness, tension, jitter, shimmer, pitch range and small
   per-formant idiosyncrasies.
2. **Sentence** (:class:`Sentence`): a stress pattern per word (``"S s Ss"``) sets the syllable count and rhythm;
   onsets (stops, fricatives, sonorants) and vowels are drawn from the sentence text, so a sentence sounds the
   same for every speaker.
3. **Emotion** (:data:`EMOTION_PROSODY`) acts on prosody and voice quality, the cues listeners use (Scherer
   2003; Juslin & Laukka 2003): pitch level and range, final rise or fall, tremor, speaking rate, loudness,
   breathiness, tension (open quotient and spectral tilt), jitter, and a small formant shift (smiling raises
   formants, sadness lowers them). ``strength`` scales the distance from neutral.
4. **Source-filter voice** (:func:`synthesize_utterance`): a Rosenberg glottal pulse train with per-period
   jitter and shimmer, pulsed aspiration noise for breathiness, a tilt shelf for tension, then a cascade of
   five time-varying formant resonators (formants glide between syllable targets), plus band-pass noise for
   fricatives and stop bursts; leading and trailing silence.
5. **Recording chain** (:func:`apply_channel`, :class:`Channel`): RAVDESS is a studio (48 kHz, noise floor
   near -75 dBFS, full band, dry). CREMA-D varies per actor session (16 kHz, noise at -72 to -50 dBFS with a
   random colour, mains hum for some, a random 3-7 kHz low-pass and 70-250 Hz high-pass, two random
   microphone-colouring peaks, a small room, gain differences) and its actors act more subtly (emotion
   strength 0.5-0.7 of RAVDESS's, then scaled by the LO/MD/HI level).

Scales (exact counts; ``tiny`` and ``small`` are balanced by gender and every actor has every emotion):

- ``tiny`` (tests): RAVDESS 8 actors (4 m / 4 f) x 16 = 128 files: neutral on both statements, every other
  emotion once at normal and once at strong intensity. CREMA-D 8 actors (4 m / 4 f) x 12 = 96 files: per
  emotion one IEO take (level LO/MD/HI in turn; NEU is XX) and one other sentence (XX). Sentences are cut to
  their first five syllables: clips 0.9-2.9 s, mean 1.5 s. About 2 s on 2 CPU cores.
- ``small`` (``make demo``): RAVDESS 12 actors (6 m / 6 f) x 32 = 384 files: neutral's 4 takes, 4 of the 8 takes
  of every other emotion (both intensities x both statements, repetition drawn). CREMA-D 24 actors
  (12 m / 12 f) x 24 = 576 files: per emotion one IEO take and three other sentences. RAVDESS clips 1.5-4.4 s
  (mean 2.5 s), CREMA-D 1.3-3.7 s (mean 2.1 s). About 15 s on 2 idle CPU cores.
- ``full`` (the real sizes): RAVDESS 24 actors x 60 = 1,440 files. CREMA-D 91 actors (48 m / 43 f), every IEO
  level and every other sentence at XX, less 20 takes: 7,442 files, ANG DIS FEA HAP SAD 1,271 each and NEU
  1,087 as in the real corpus. RAVDESS clips 2.1-5.4 s (mean 3.2 s), CREMA-D 1.2-4.5 s (mean 2.4 s).
  About 1.5 min on 2 idle CPU cores (170 s of CPU time).

Every file is deterministic for a seed: its random generator is seeded from (seed, corpus, file name) through
numpy's SeedSequence, and speakers and recording sessions from (seed, corpus, actor), so the bytes do not
depend on the number of workers or the order files are made in (they may change with the numpy or scipy
version; :data:`SYNTH_VERSION` covers changes to this module). Files are written atomically (temporary file
then ``os.replace``); ``OUT/.synth.json`` records scale, seed and generator version and is marked complete at
the end, so a re-run for the same (scale, seed) returns at once and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TypedDict

import numpy as np
import soundfile as sf
from scipy import fft as sp_fft
from scipy import signal

from emoshift.core.errors import EmoshiftError
from emoshift.corpora import cremad, ravdess

# Bump whenever the bytes written for a (scale, seed) change: a cached corpus of another version is rebuilt.
SYNTH_VERSION = 1
MARKER = ".synth.json"

RAVDESS_SR = 48_000
CREMAD_SR = 16_000
FRAME_S = 0.005  # control rate of the articulation tracks (pitch, formants, envelopes): 5 ms
FILTER_FRAMES = 2  # the formant filters take new coefficients every 2 frames (10 ms)


class SynthError(EmoshiftError):
    """Bad arguments or an output folder that cannot be used (message is one line, for the user)."""


# --------------------------------------------------------------------------------------------------------------
# Scales
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scale:
    """How much to generate; see the table in the module docstring."""

    name: str
    ravdess_actors: int
    ravdess_per_actor: int  # 16, 32 or 60 (all)
    cremad_actors: int
    cremad_per_actor: int | None  # 12 or 24; None = the real 82 per actor less 20 files overall
    ravdess_pad_s: tuple[float, float]  # leading / trailing silence, each drawn from this range
    cremad_pad_s: tuple[float, float]
    max_syllables: int | None = None  # cut sentences short (tiny only)


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", 8, 16, 8, 12, (0.08, 0.15), (0.05, 0.12), max_syllables=5),
    "small": Scale("small", 12, 32, 24, 24, (0.25, 0.4), (0.1, 0.25)),
    "full": Scale("full", 24, 60, 91, None, (0.5, 0.8), (0.15, 0.35)),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise SynthError(f"unknown scale {name!r}; choose one of: {', '.join(SCALES)}")
    return SCALES[name]


# --------------------------------------------------------------------------------------------------------------
# Corpus vocabularies
# --------------------------------------------------------------------------------------------------------------

# RAVDESS emotion codes -> canonical names (neutral has no strong intensity).
# The emotion codes are the loaders' own label maps: the generator writes what the loaders read.
RAVDESS_EMOTIONS: dict[str, str] = ravdess.LABEL_MAP
CREMAD_EMOTIONS: dict[str, str] = cremad.LABEL_MAP
RAVDESS_INTENSITY: dict[str, float] = {"01": 1.0, "02": 1.5}  # normal, strong
CREMAD_LEVELS: dict[str, float] = {"LO": 0.7, "MD": 1.0, "HI": 1.3, "XX": 1.0}
CREMAD_RACES: tuple[str, ...] = ("African American", "Asian", "Caucasian", "Unknown")
_RACE_WEIGHTS = (0.23, 0.08, 0.66, 0.03)
CREMAD_ETHNICITIES: tuple[str, ...] = ("Hispanic", "Not Hispanic")
DEMOGRAPHICS_COLUMNS: tuple[str, ...] = ("ActorID", "Age", "Sex", "Race", "Ethnicity")


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


RAVDESS_STATEMENTS: dict[str, Sentence] = {
    "01": Sentence("01", "Kids are talking by the door", "S s Ss s s S"),
    "02": Sentence("02", "Dogs are sitting by the door", "S s Ss s s S"),
}
CREMAD_SENTENCES: dict[str, Sentence] = {
    s.code: s
    for s in (
        Sentence("IEO", "It's eleven o'clock", "s sSs sS"),
        Sentence("TIE", "That is exactly what happened", "S s sSs s Ss"),
        Sentence("IOM", "I'm on my way to the meeting", "s s s S s s Ss"),
        Sentence("IWW", "I wonder what this is about", "s Ss s S s sS"),
        Sentence("TAI", "The airplane is almost full", "s Ss s Ss S"),
        Sentence("MTI", "Maybe tomorrow it will be cold", "Ss sSs s s s S"),
        Sentence("IWL", "I would like a new alarm clock", "s s S s s sS S"),
        Sentence("ITH", "I think I have a doctor's appointment", "s S s s s Ss sSs"),
        Sentence("DFA", "Don't forget a jacket", "S sS s Ss"),
        Sentence("ITS", "I think I've seen this before", "s S s S s sS"),
        Sentence("TSI", "The surface is slick", "s Ss s S"),
        Sentence("WSI", "We'll stop in a couple of minutes", "s S s s Ss s Ss"),
    )
}

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


def _stable_int(*parts: object) -> int:
    """A 64-bit integer from strings/ints that is the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def seeded_rng(seed: int, *parts: object) -> np.random.Generator:
    """Generator for (seed, parts...): independent streams per corpus, actor or file, same in any process."""
    return np.random.default_rng(np.random.SeedSequence([seed, _stable_int(*parts)]))


@lru_cache(maxsize=64)
def _sentence_syllables(text: str, stress: str) -> tuple[Syllable, ...]:
    """Onsets and vowels drawn from the sentence text: every speaker says the same 'words'."""
    rng = np.random.default_rng(_stable_int("sentence", text))
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


# --------------------------------------------------------------------------------------------------------------
# Speakers and emotions
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Speaker:
    """One voice. Emotion effects are multiplied by ``expressiveness`` (how strongly this actor acts)."""

    id: str
    gender: str  # "male" | "female"
    f0_hz: float  # habitual pitch
    formant_scale: float  # vocal-tract length: 1.0 adult male reference, ~1.16 female
    rate_sps: float  # syllables per second in neutral speech
    level_db: float  # habitual loudness offset
    breathiness: float  # share of aspiration noise in the voice source, 0..1
    tension: float  # -1 lax .. +1 pressed
    jitter: float  # cycle-to-cycle period variation (fraction)
    shimmer: float  # cycle-to-cycle amplitude variation (log sd)
    pitch_range: float  # accent size multiplier
    expressiveness: float
    formant_warp: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)  # per-formant idiosyncrasy F1..F5


def make_speaker(
    rng: np.random.Generator,
    *,
    speaker_id: str,
    gender: str,
    age: int | None = None,
    expressiveness: tuple[float, float] = (0.85, 1.2),
) -> Speaker:
    """Draw a speaker: gender sets pitch range and tract length, the rest varies per person (and with age)."""
    if gender not in ("male", "female"):
        raise ValueError(f"gender must be 'male' or 'female', got {gender!r}")
    male = gender == "male"
    f0 = rng.uniform(85.0, 155.0) if male else rng.uniform(165.0, 255.0)
    older = 0.0 if age is None else float(np.clip((age - 20) / 54.0, 0.0, 1.0))
    return Speaker(
        id=speaker_id,
        gender=gender,
        f0_hz=float(f0),
        formant_scale=float(rng.normal(1.0 if male else 1.16, 0.035)),
        rate_sps=float(rng.uniform(3.9, 5.3) - 0.5 * older),
        level_db=float(rng.normal(0.0, 1.5)),
        breathiness=float(rng.uniform(0.04, 0.18) + (0.06 if not male else 0.0) + 0.08 * older),
        tension=float(rng.normal(0.0, 0.2)),
        jitter=float(rng.uniform(0.004, 0.01) + 0.008 * older),
        shimmer=float(rng.uniform(0.03, 0.07) + 0.04 * older),
        pitch_range=float(rng.uniform(0.75, 1.3)),
        expressiveness=float(rng.uniform(*expressiveness)),
        formant_warp=tuple(float(w) for w in rng.normal(1.0, 0.035, size=5)),
    )


@dataclass(frozen=True, slots=True)
class Prosody:
    """Prosody and voice quality relative to a speaker's neutral voice (neutral = the defaults)."""

    pitch_st: float = 0.0  # mean pitch shift, semitones
    pitch_range: float = 1.0  # multiplier on accents and declination
    rate: float = 1.0  # speaking-rate multiplier
    loudness_db: float = 0.0
    breathiness: float = 0.0  # added share of aspiration noise
    tension: float = 0.0  # added tension: >0 pressed (short open phase, flat spectrum), <0 lax
    jitter: float = 0.0  # added period jitter (fraction)
    tremor_st: float = 0.0  # depth of a 5-7 Hz pitch tremor
    final_st: float = 0.0  # pitch movement over the last syllable: + rise, - fall
    formant_shift: float = 0.0  # relative shift of F1-F3

    def scaled(self, k: float) -> Prosody:
        """``k`` times the distance from neutral (rate and range on a log scale)."""
        return Prosody(
            pitch_st=k * self.pitch_st,
            pitch_range=float(self.pitch_range**k),
            rate=float(self.rate**k),
            loudness_db=k * self.loudness_db,
            breathiness=k * self.breathiness,
            tension=k * self.tension,
            jitter=k * self.jitter,
            tremor_st=k * self.tremor_st,
            final_st=k * self.final_st,
            formant_shift=k * self.formant_shift,
        )


# Emotion profiles at RAVDESS "normal" intensity. Directions follow the vocal-expression literature: anger is
# loud, tense, fast and high; sadness low, narrow, slow, soft and breathy; fear high, fast, jittery with tremor;
# happiness high with wide range and raised formants (smiling); disgust low, slow, creaky and falling;
# surprise very high with a wide range and a final rise; calm slightly lower, slower and softer than neutral.
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(),
    "calm": Prosody(
        pitch_st=-1.2,
        pitch_range=0.75,
        rate=0.88,
        loudness_db=-3.0,
        breathiness=0.1,
        tension=-0.4,
        final_st=-1.0,
    ),
    "happy": Prosody(
        pitch_st=3.5,
        pitch_range=1.6,
        rate=1.08,
        loudness_db=3.5,
        tension=0.3,
        final_st=0.5,
        formant_shift=0.06,
    ),
    "sad": Prosody(
        pitch_st=-2.0,
        pitch_range=0.5,
        rate=0.72,
        loudness_db=-6.0,
        breathiness=0.22,
        tension=-0.7,
        jitter=0.008,
        final_st=-1.5,
        formant_shift=-0.04,
    ),
    "angry": Prosody(
        pitch_st=2.5,
        pitch_range=1.35,
        rate=1.15,
        loudness_db=8.0,
        breathiness=-0.08,
        tension=1.0,
        final_st=-1.5,
        formant_shift=0.05,
    ),
    "fearful": Prosody(
        pitch_st=5.0,
        pitch_range=0.8,
        rate=1.22,
        loudness_db=0.5,
        breathiness=0.15,
        tension=0.2,
        jitter=0.02,
        tremor_st=0.7,
        final_st=1.0,
    ),
    "disgust": Prosody(
        pitch_st=-1.8,
        pitch_range=1.2,
        rate=0.8,
        loudness_db=1.0,
        breathiness=0.05,
        tension=0.4,
        jitter=0.015,
        final_st=-3.0,
        formant_shift=-0.03,
    ),
    "surprised": Prosody(
        pitch_st=5.5,
        pitch_range=1.9,
        rate=1.0,
        loudness_db=4.0,
        breathiness=0.05,
        tension=0.2,
        final_st=5.0,
        formant_shift=0.03,
    ),
}


def emotion_prosody(emotion: str, strength: float = 1.0) -> Prosody:
    """The prosody of ``emotion`` (a canonical name) at ``strength`` (1 = RAVDESS normal intensity)."""
    if emotion not in EMOTION_PROSODY:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTION_PROSODY)}")
    return EMOTION_PROSODY[emotion].scaled(strength)


def _vary(p: Prosody, rng: np.random.Generator) -> Prosody:
    """Per-utterance randomness: no two takes are alike, and emotions overlap at the edges."""
    return Prosody(
        pitch_st=p.pitch_st + rng.normal(0.0, 0.9),
        pitch_range=p.pitch_range * float(np.exp(rng.normal(0.0, 0.15))),
        rate=p.rate * float(np.exp(rng.normal(0.0, 0.07))),
        loudness_db=p.loudness_db + rng.normal(0.0, 1.5),
        breathiness=p.breathiness + rng.normal(0.0, 0.03),
        tension=p.tension + rng.normal(0.0, 0.15),
        jitter=p.jitter + abs(rng.normal(0.0, 0.002)),
        tremor_st=p.tremor_st,
        final_st=p.final_st + rng.normal(0.0, 0.6),
        formant_shift=p.formant_shift + rng.normal(0.0, 0.01),
    )


# --------------------------------------------------------------------------------------------------------------
# The voice: articulation tracks at 200 Hz, then a source-filter render at the audio rate
# --------------------------------------------------------------------------------------------------------------


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


def _articulate(units: Sequence[Syllable], speaker: Speaker, p: Prosody, rng: np.random.Generator) -> _Tracks:
    """Lay the syllables out in time and fill the control tracks."""
    base = 1.0 / (speaker.rate_sps * p.rate)  # seconds per syllable
    # 1. timing: (kind, start_s, dur_s, syllable index)
    segments: list[tuple[str, float, float, int]] = []
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

    n = int(np.ceil(t / FRAME_S)) + 1
    voicing = np.zeros(n)
    amp_v = np.zeros(n)
    amp_asp = np.zeros(n)
    amp_fric = np.zeros((3, n))
    formants = np.full((3, n), np.nan)

    fs = speaker.formant_scale * (1.0 + p.formant_shift)
    warp = np.asarray(speaker.formant_warp[:3])
    stress_gain = 1.0 + 0.25 * min(p.pitch_range, 2.0)
    vowel_spans: list[tuple[int, int, bool]] = []
    for kind, start, dur, i in segments:
        a = int(round(start / FRAME_S))
        b = max(int(round((start + dur) / FRAME_S)), a + 1)
        u = units[i]
        if kind == "vowel":
            target = np.asarray(_VOWELS[u.vowel], dtype=float)
            if not u.stressed:  # reduced vowels drift toward schwa
                target = 0.5 * target + 0.5 * np.asarray(_SCHWA)
            formants[:, a:b] = (target * warp * fs)[:, None]
            voicing[a:b] = 1.0
            amp_v[a:b] = (stress_gain if u.stressed else 0.75) * signal.windows.tukey(b - a, 0.6)
            vowel_spans.append((a, b, u.stressed))
        elif kind == "cons":
            manner, locus, band = _CONSONANTS[u.onset]
            if manner != "asp":
                formants[:, a:b] = (np.array([280.0, locus, 2500.0]) * warp * fs)[:, None]
            if manner in ("stop", "vstop"):
                burst = max(a, b - max(2, (b - a) // 4))  # closure, then a burst at the end
                amp_fric[band, burst:b] = 0.6 if manner == "stop" else 0.3
                if manner == "stop":
                    amp_asp[b - 1 : b + 4] = 0.35  # aspiration into the vowel
                else:
                    voicing[a:b] = 1.0
                    amp_v[a:burst] = 0.06  # voice bar during closure
            elif manner == "fric":
                amp_fric[band, a:b] = (0.45, 0.35, 0.18)[band] * signal.windows.tukey(b - a, 0.5)
            elif manner == "asp":
                amp_asp[a:b] = 0.3
            else:  # nasal, glide: voiced, weaker
                voicing[a:b] = 1.0
                amp_v[a:b] = 0.3 if manner == "nasal" else 0.5
                if manner == "nasal":
                    formants[0, a:b] = 250.0 * fs
        # pauses stay silent; formants are filled from the neighbours below

    # formant tracks: hold targets through gaps, then glide (coarticulation over ~40 ms)
    for row in formants:
        idx = np.where(np.isfinite(row), np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        row[:] = row[idx]
        first = np.flatnonzero(np.isfinite(row))
        row[: first[0] if len(first) else n] = row[first[0]] if len(first) else 500.0
    f45 = np.asarray(_F45)[:, None] * speaker.formant_scale * np.asarray(speaker.formant_warp[3:])[:, None]
    formants = np.vstack([_smooth(formants, 8), np.repeat(f45, n, axis=1)])
    breath = float(np.clip(speaker.breathiness + p.breathiness, 0.0, 0.9))
    bw = np.asarray(_BANDWIDTHS)[:, None] * np.ones((1, n))
    bw[0] += 120.0 * breath  # breathy voice: open glottis damps F1
    bw[:, :] *= np.where(voicing > 0, 1.0, 1.6)[None, :]

    # pitch contour in semitones re the speaker's habitual pitch
    times = np.arange(n) * FRAME_S
    x = times / max(t, 1e-3)
    rng_pr = speaker.pitch_range * p.pitch_range
    st = p.pitch_st + rng_pr * (1.0 - 2.5 * x)  # declination
    for j, (a, b, stressed) in enumerate(vowel_spans):
        if stressed:
            c, s = 0.5 * (a + b) * FRAME_S, max(0.4 * (b - a) * FRAME_S, 0.02)
            amp = rng_pr * rng.uniform(1.5, 3.0) * (1.25 if j == 0 else 1.0)
            st += amp * np.exp(-0.5 * ((times - c) / s) ** 2)
    if vowel_spans:
        a, b, _ = vowel_spans[-1]
        st[a:b] += p.final_st * np.linspace(0.0, 1.0, b - a)
        st[b:] += p.final_st
    knots = rng.normal(0.0, 0.4, size=int(t / 0.1) + 2)
    st += np.interp(times / 0.1, np.arange(len(knots)), knots)  # slow wander
    if p.tremor_st:
        st += p.tremor_st * np.sin(2 * np.pi * rng.uniform(5.0, 7.0) * times + rng.uniform(0, 2 * np.pi))
    f0 = np.clip(speaker.f0_hz * 2.0 ** (st / 12.0), 50.0, 700.0)

    return _Tracks(
        f0_hz=f0,
        voicing=_smooth(voicing, 3),
        amp_voice=_smooth(amp_v, 3),
        amp_asp=_smooth(amp_asp, 2),
        amp_fric=_smooth(amp_fric, 2),
        formants=formants,
        bandwidths=bw,
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
    p = _vary(emotion_prosody(emotion, strength * speaker.expressiveness), rng)
    units = sentence.syllables()[:max_syllables]
    if not units:
        raise ValueError(
            f"sentence {sentence.code!r} has no syllables to say (max_syllables={max_syllables})"
        )
    tr = _articulate(units, speaker, p, rng)
    hop = int(round(sr * FRAME_S))
    n_frames = len(tr.f0_hz)
    n = n_frames * hop
    pos = (np.arange(n) + 0.5) / hop - 0.5  # sample -> frame position
    frames = np.arange(n_frames)

    def up(track: np.ndarray) -> np.ndarray:
        return np.interp(pos, frames, track)

    f0 = up(tr.f0_hz)
    voicing = up(tr.voicing)
    amp_v = up(tr.amp_voice)

    # glottal source: per-period jitter on the frequency, shimmer on the amplitude
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
    source = low + 10.0 ** ((6.0 * tension - 4.0) / 20.0) * (source - low)

    speech = _formant_cascade(source, tr.formants, tr.bandwidths, sr, hop)
    # the formants above F5 (and the nasal/sinus branches) that a five-pole cascade leaves out: the source's
    # high band at a fixed share, so voiced speech reaches up to the Nyquist frequency, tilted by tension
    speech += 0.08 * signal.sosfilt(_high_band(sr), source)
    fric_noise = rng.standard_normal(n)
    for band, sos in enumerate(_fric_filters(sr)):
        amp = up(tr.amp_fric[band])
        if amp.any():
            speech += 1.2 * amp * signal.sosfilt(sos, fric_noise)

    active = amp_v > 0.5 * amp_v.max() if amp_v.max() > 0 else np.ones(n, dtype=bool)
    rms = float(np.sqrt(np.mean(speech[active] ** 2))) or 1.0
    speech *= 10.0 ** ((-28.0 + speaker.level_db + p.loudness_db) / 20.0) / rms
    lead, trail = (int(rng.uniform(*pad_s) * sr) for _ in range(2))
    return np.concatenate([np.zeros(lead), speech, np.zeros(trail)]).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# Recording conditions
# --------------------------------------------------------------------------------------------------------------


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
def _room_ir(sr: int, rt60: float, room_seed: int) -> np.ndarray:
    """Exponentially decaying noise (energy normalised): a small room's late reverberation."""
    n = max(1, int(rt60 * sr))
    t = np.arange(n) / sr
    ir = np.random.default_rng(room_seed).standard_normal(n) * np.exp(-6.91 * t / rt60)
    ir[: int(0.002 * sr)] *= np.linspace(0.0, 1.0, int(0.002 * sr))  # no direct sound in the wet part
    return ir / np.sqrt(np.sum(ir**2))


def _colored_noise(n: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f^slope."""
    m = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(m))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1.0
    x = sp_fft.irfft(spec * f ** (-slope / 2.0), m)[:n]
    return x / (np.sqrt(np.mean(x**2)) or 1.0)


def apply_channel(wave: np.ndarray, channel: Channel, rng: np.random.Generator) -> np.ndarray:
    """Room -> noise -> microphone colour -> band limits -> gain -> hum -> limiter. ``(samples,)`` float32."""
    x = wave.astype(np.float64)
    sr = channel.sr
    if channel.reverb_rt60 > 0 and channel.reverb_mix > 0:
        wet = signal.fftconvolve(x, _room_ir(sr, channel.reverb_rt60, channel.room_seed))[: len(x)]
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
    return x.astype(np.float32)


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16, rounded and clipped (done here so the bytes never depend on a library)."""
    return np.clip(np.round(wave.astype(np.float64) * 32767.0), -32768, 32767).astype("<i2")


# --------------------------------------------------------------------------------------------------------------
# Corpus plans: which files, which speakers, which sessions
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileJob:
    """Everything needed to write one file; picklable, so workers need nothing else."""

    corpus: str
    path: str
    speaker: Speaker
    channel: Channel
    sentence: Sentence
    emotion: str
    strength: float
    pad_s: tuple[float, float]
    max_syllables: int | None
    seed: int

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass(slots=True)
class _Plan:
    jobs: list[FileJob] = field(default_factory=list)
    demographics: list[dict[str, object]] = field(default_factory=list)


def _balanced_genders(n_actors: int, n_male: int, rng: np.random.Generator) -> list[str]:
    genders = ["male"] * n_male + ["female"] * (n_actors - n_male)
    return [genders[i] for i in rng.permutation(n_actors)]


def _plan_ravdess(scale: Scale, seed: int, root: Path) -> list[FileJob]:
    """RAVDESS: actors 01..N (odd male, even female), ``Actor_NN/03-01-EE-II-SS-RR-NN.wav``."""
    jobs: list[FileJob] = []
    for actor in range(1, scale.ravdess_actors + 1):
        aa = f"{actor:02d}"
        gender = "male" if actor % 2 == 1 else "female"
        speaker = make_speaker(
            seeded_rng(seed, "ravdess", "speaker", aa), speaker_id=f"ravdess/{aa}", gender=gender
        )
        channel = studio_channel(seeded_rng(seed, "ravdess", "channel", aa))
        pick = seeded_rng(seed, "ravdess", "plan", aa)
        takes: list[tuple[str, str, str, str]] = []  # (emotion, intensity, statement, repetition)
        for e_idx, ee in enumerate(RAVDESS_EMOTIONS):
            if ee == "01":
                combos = [("01", s, r) for s in ("01", "02") for r in ("01", "02")]
            else:
                combos = [(i, s, r) for i in ("01", "02") for s in ("01", "02") for r in ("01", "02")]
            if scale.ravdess_per_actor == 16:  # neutral: both statements; others: normal + strong
                if ee == "01":
                    combos = [("01", "01", "01"), ("01", "02", "01")]
                else:
                    s = 1 + (actor + e_idx) % 2
                    combos = [("01", f"{s:02d}", "01"), ("02", f"{3 - s:02d}", "01")]
            elif (
                scale.ravdess_per_actor == 32 and ee != "01"
            ):  # every (intensity, statement), repetition varies
                combos = [
                    (i, s, "01" if pick.random() < 0.5 else "02") for i in ("01", "02") for s in ("01", "02")
                ]
            takes.extend((ee, i, s, r) for i, s, r in combos)
        for ee, ii, ss, rr in takes:
            name = f"03-01-{ee}-{ii}-{ss}-{rr}-{aa}.wav"
            jobs.append(
                FileJob(
                    corpus="ravdess",
                    path=str(root / f"Actor_{aa}" / name),
                    speaker=speaker,
                    channel=channel,
                    sentence=RAVDESS_STATEMENTS[ss],
                    emotion=RAVDESS_EMOTIONS[ee],
                    strength=RAVDESS_INTENSITY[ii],
                    pad_s=scale.ravdess_pad_s,
                    max_syllables=scale.max_syllables,
                    seed=seed,
                )
            )
    return jobs


def _cremad_takes(scale: Scale, actor_idx: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(sentence, emotion, level) for one actor. LO/MD/HI only with IEO; NEU is always XX."""
    others = [s for s in CREMAD_SENTENCES if s != "IEO"]
    takes: list[tuple[str, str, str]] = []
    for e_idx, emo in enumerate(CREMAD_EMOTIONS):
        if scale.cremad_per_actor is None:  # full: IEO at every level, all other sentences at XX
            levels = ["XX"] if emo == "NEU" else ["LO", "MD", "HI"]
            takes.extend(("IEO", emo, lv) for lv in levels)
            takes.extend((s, emo, "XX") for s in others)
            continue
        n_other = scale.cremad_per_actor // len(CREMAD_EMOTIONS) - 1
        level = "XX" if emo == "NEU" else ("LO", "MD", "HI")[(actor_idx + e_idx) % 3]
        takes.append(("IEO", emo, level))
        takes.extend((others[j], emo, "XX") for j in sorted(rng.permutation(len(others))[:n_other]))
    return takes


def _plan_cremad(scale: Scale, seed: int, root: Path) -> _Plan:
    """CREMA-D: actors 1001.., ``AudioWAV/AAAA_SSS_EEE_LL.wav`` and ``VideoDemographics.csv``."""
    result = _Plan()
    n = scale.cremad_actors
    pop = seeded_rng(seed, "crema-d", "population")
    n_male = 48 if n == 91 else n // 2
    genders = _balanced_genders(n, n_male, pop)
    ages = np.clip(np.round(20 + 54 * pop.beta(1.4, 2.6, size=n)), 20, 74).astype(int)
    if n >= 10:  # span the real corpus's range, 20-74
        ages[np.argmin(ages)], ages[np.argmax(ages)] = 20, 74
    per_actor: list[list[tuple[str, str, str]]] = []
    for idx in range(n):
        actor = str(1001 + idx)
        age = int(ages[idx])
        race = CREMAD_RACES[int(pop.choice(len(CREMAD_RACES), p=_RACE_WEIGHTS))]
        ethnicity = "Hispanic" if pop.random() < 0.1 else "Not Hispanic"
        result.demographics.append(
            {
                "ActorID": actor,
                "Age": age,
                "Sex": genders[idx].capitalize(),
                "Race": race,
                "Ethnicity": ethnicity,
            }
        )
        per_actor.append(_cremad_takes(scale, idx, seeded_rng(seed, "crema-d", "plan", actor)))

    if scale.cremad_per_actor is None:  # the real corpus lacks 20 takes: 3 of each emotion but NEU, 5 NEU
        drop: set[tuple[int, str, str]] = set()
        for emo in CREMAD_EMOTIONS:
            for idx in pop.choice(n, size=5 if emo == "NEU" else 3, replace=False):
                candidates = [s for s, e, lv in per_actor[int(idx)] if e == emo and lv == "XX" and s != "IEO"]
                drop.add((int(idx), candidates[int(pop.integers(len(candidates)))], emo))
        per_actor = [[t for t in takes if (i, t[0], t[1]) not in drop] for i, takes in enumerate(per_actor)]

    for idx, takes in enumerate(per_actor):
        row = result.demographics[idx]
        actor = str(row["ActorID"])
        speaker = make_speaker(
            seeded_rng(seed, "crema-d", "speaker", actor),
            speaker_id=f"crema-d/{actor}",
            gender=str(row["Sex"]).lower(),
            age=int(str(row["Age"])),
            expressiveness=(0.5, 0.7),  # crowd-sourced actors, subtler than RAVDESS's
        )
        channel = field_channel(seeded_rng(seed, "crema-d", "channel", actor))
        for sent, emo, level in takes:
            result.jobs.append(
                FileJob(
                    corpus="crema-d",
                    path=str(root / "AudioWAV" / f"{actor}_{sent}_{emo}_{level}.wav"),
                    speaker=speaker,
                    channel=channel,
                    sentence=CREMAD_SENTENCES[sent],
                    emotion=CREMAD_EMOTIONS[emo],
                    strength=CREMAD_LEVELS[level],
                    pad_s=scale.cremad_pad_s,
                    max_syllables=scale.max_syllables,
                    seed=seed,
                )
            )
    return result


def plan(
    out: str | os.PathLike[str], *, scale: str = "tiny", seed: int = 0
) -> tuple[list[FileJob], list[dict[str, object]]]:
    """The files ``generate`` would write under ``out`` (jobs, in order) and the CREMA-D demographics rows."""
    spec = get_scale(scale)
    root = Path(out)
    cremad = _plan_cremad(spec, seed, root / "crema-d")
    return _plan_ravdess(spec, seed, root / "ravdess") + cremad.jobs, cremad.demographics


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def render(job: FileJob) -> np.ndarray:
    """The finished take for ``job`` as int16 ``(samples,)`` (what ``write_file`` stores)."""
    rng = seeded_rng(job.seed, job.corpus, job.name)
    dry = synthesize_utterance(
        speaker=job.speaker,
        sentence=job.sentence,
        emotion=job.emotion,
        strength=job.strength,
        sr=job.channel.sr,
        rng=rng,
        pad_s=job.pad_s,
        max_syllables=job.max_syllables,
    )
    return to_pcm16(apply_channel(dry, job.channel, rng))


def write_file(job: FileJob) -> float:
    """Render and atomically write one file; returns its duration in seconds."""
    pcm = render(job)
    buf = io.BytesIO()
    sf.write(buf, pcm, job.channel.sr, subtype="PCM_16", format="WAV")
    _atomic_write_bytes(Path(job.path), buf.getvalue())
    return len(pcm) / job.channel.sr


def _write_chunk(jobs: list[FileJob]) -> list[float]:
    return [write_file(j) for j in jobs]


def _demographics_csv(rows: list[dict[str, object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(DEMOGRAPHICS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def _read_marker(out: Path) -> dict[str, object] | None:
    try:
        data = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(out: Path, data: dict[str, object]) -> None:
    _atomic_write_bytes(out / MARKER, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _existing_wavs(out: Path) -> list[Path]:
    """WAV files (and our stray temporaries) under the two corpus folders."""
    found: list[Path] = []
    for sub in ("ravdess", "crema-d"):
        base = out / sub
        if base.is_dir():
            found.extend(
                p for p in base.rglob("*") if p.is_file() and (p.suffix == ".wav" or p.suffix == ".tmp")
            )
    return found


def _prepare(out: Path, marker: dict[str, object] | None, wanted: set[str]) -> None:
    """Refuse folders that hold someone else's audio; remove our temporaries and files of another plan."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} exists and is not a folder")
    existing = _existing_wavs(out)
    if marker is None and any(p.suffix == ".wav" for p in existing):
        raise SynthError(
            f"{out} already holds audio that emoshift synth did not write (no {MARKER}); choose an empty folder"
        )
    for p in existing:
        if p.suffix == ".tmp" or str(p) not in wanted:
            p.unlink()
    for sub in ("ravdess", "crema-d"):  # drop folders left empty (actors of a larger scale)
        base = out / sub
        if base.is_dir():
            for d in sorted((d for d in base.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                if not any(d.iterdir()):
                    d.rmdir()


def _iter_results(chunks: list[list[FileJob]], workers: int) -> Iterator[tuple[list[FileJob], list[float]]]:
    """Write chunks in this process (workers == 1) or in a process pool, yielding as each finishes."""
    if workers == 1:
        for chunk in chunks:
            yield chunk, _write_chunk(chunk)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures: dict[Future[list[float]], list[FileJob]] = {pool.submit(_write_chunk, c): c for c in chunks}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


class SynthSummary(TypedDict):
    """What :func:`generate` returns (a plain dict at run time)."""

    out: str
    scale: str
    seed: int
    version: int
    files: dict[str, int]  # per corpus
    speakers: dict[str, int]
    audio_s: dict[str, float]  # seconds of audio per corpus
    written: int  # files written by this call (0 when cached)
    seconds: float  # wall time of this call
    cached: bool  # True: OUT already held the complete corpora for (scale, seed), nothing was done


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def generate(
    out: str | os.PathLike[str],
    *,
    scale: str = "tiny",
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> SynthSummary:
    """Write ``out/ravdess`` and ``out/crema-d`` for (scale, seed) and return a :class:`SynthSummary`.

    ``workers`` processes write files in parallel (None: one per available core; 1: in this process); the
    bytes are the same either way. A complete corpus for the same (scale, seed, version) is not rewritten;
    files left by an interrupted run are kept; files of another scale or seed are replaced. A folder holding
    audio that this generator did not write is refused (SynthError).
    """
    spec = get_scale(scale)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SynthError(f"seed must be a non-negative integer, got {seed!r}")
    if workers is not None and workers < 1:
        raise SynthError(f"workers must be at least 1, got {workers}")
    started = time.perf_counter()
    root = Path(out).expanduser().resolve()
    jobs, demographics = plan(root, scale=spec.name, seed=seed)
    params: dict[str, object] = {"scale": spec.name, "seed": seed, "version": SYNTH_VERSION}
    by_corpus = {c: [j for j in jobs if j.corpus == c] for c in ("ravdess", "crema-d")}
    files = {c: len(js) for c, js in by_corpus.items()}
    speakers = {c: len({j.speaker.id for j in js}) for c, js in by_corpus.items()}

    def summary(audio_s: dict[str, float], written: int, cached: bool) -> SynthSummary:
        return SynthSummary(
            out=str(root),
            scale=spec.name,
            seed=seed,
            version=SYNTH_VERSION,
            files=files,
            speakers=speakers,
            audio_s=audio_s,
            written=written,
            seconds=time.perf_counter() - started,
            cached=cached,
        )

    marker = _read_marker(root)
    same = marker is not None and all(marker.get(k) == v for k, v in params.items())
    if same and marker is not None and marker.get("complete") and all(os.path.exists(j.path) for j in jobs):
        stored = marker.get("audio_s")
        audio_s = {str(k): float(v) for k, v in stored.items()} if isinstance(stored, dict) else {}
        return summary(audio_s, 0, True)

    _prepare(root, marker, {j.path for j in jobs})
    root.mkdir(parents=True, exist_ok=True)
    _write_marker(root, {**params, "complete": False})
    _atomic_write_bytes(root / "crema-d" / "VideoDemographics.csv", _demographics_csv(demographics))

    durations: dict[str, float] = {}
    todo: list[FileJob] = []
    for j in jobs:
        if same and os.path.exists(j.path):  # left by an interrupted run of this plan (atomic, so complete)
            durations[j.path] = float(sf.info(j.path).duration)
        else:
            todo.append(j)
    n_workers = min(workers or _default_workers(), max(1, len(todo)))
    size = max(1, min(16, len(todo) // (n_workers * 6)))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    with _progress(progress, len(todo), f"synth {spec.name}") as advance:
        for chunk, secs in _iter_results(chunks, n_workers):
            durations.update((j.path, s) for j, s in zip(chunk, secs, strict=True))
            advance(len(chunk))

    audio_s = {c: round(sum(durations[j.path] for j in js), 3) for c, js in by_corpus.items()}
    _write_marker(root, {**params, "complete": True, "files": files, "audio_s": audio_s})
    return summary(audio_s, len(todo), False)


@contextmanager
def _progress(enabled: bool, total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A transient rich progress bar on stderr; yields a function that advances it by n files."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


__all__ = [
    "CREMAD_SENTENCES",
    "CREMAD_SR",
    "EMOTION_PROSODY",
    "RAVDESS_SR",
    "RAVDESS_STATEMENTS",
    "SCALES",
    "SYNTH_VERSION",
    "Channel",
    "FileJob",
    "Prosody",
    "Scale",
    "Sentence",
    "Speaker",
    "SynthError",
    "SynthSummary",
    "apply_channel",
    "emotion_prosody",
    "field_channel",
    "generate",
    "get_scale",
    "make_speaker",
    "plan",
    "render",
    "seeded_rng",
    "studio_channel",
    "synthesize_utterance",
    "to_pcm16",
    "write_file",
]
