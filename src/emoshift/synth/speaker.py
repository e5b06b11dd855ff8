"""Speakers and emotions: who speaks, and how an emotion moves prosody and voice quality.

:func:`make_speaker` draws a voice: habitual pitch by gender (male 85-155 Hz, female 165-255 Hz), vocal-tract
length (formant scale), speaking rate, level, breathiness, tension, jitter, shimmer, pitch range and small
per-formant idiosyncrasies. :data:`EMOTION_PROSODY` acts on prosody and voice quality, the cues listeners use
(Scherer 2003; Juslin & Laukka 2003): pitch level and range, final rise or fall, tremor, speaking rate, loudness,
breathiness, tension (open quotient and spectral tilt), jitter, and a small formant shift (smiling raises
formants, sadness lowers them). ``strength`` scales the distance from neutral.

:func:`seeded_rng` gives every corpus, actor and file its own random stream, the same in any process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


def stable_int(*parts: object) -> int:
    """A 64-bit integer from strings/ints that is the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def seeded_rng(seed: int, *parts: object) -> np.random.Generator:
    """Generator for (seed, parts...): independent streams per corpus, actor or file, same in any process."""
    return np.random.default_rng(np.random.SeedSequence([seed, stable_int(*parts)]))


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


def vary(p: Prosody, rng: np.random.Generator) -> Prosody:
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
