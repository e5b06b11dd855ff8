"""Dimensional annotations of a synthetic take: arousal, valence and dominance from the prosody it was rendered with.

Every take is rendered with one :class:`~emoshift.synth.speaker.Prosody` (the emotion's profile at the take's
strength times the speaker's expressiveness, then :func:`~emoshift.synth.speaker.vary`'s per-take draws; see
:func:`~emoshift.synth.voice.take_prosody`). :func:`applied_prosody` rebuilds exactly that prosody from the
job, from the same random stream the renderer uses (:meth:`FileJob.rng <emoshift.synth.job.FileJob.rng>`), and
the three dimensions are linear in its parameters, each parameter first divided by a typical emotional
distance from neutral (``cues``: loudness / 6 dB, ln(rate) / 0.2, ln(pitch range) / 0.5, tension / 0.8,
pitch shift / 4 semitones, formant shift / 0.05, jitter / 0.01, breathiness / 0.15, tremor / 0.7 semitones):

- **arousal** (activation: the energy cues) = 0.30 loudness + 0.20 rate + 0.15 pitch range + 0.20 tension
  + 0.15 pitch level.
- **valence** (what sets happy apart from sad and angry renders in :data:`EMOTION_PROSODY`: the raised formants
  of a smile with a free, regular voice; pressed, jittery, breathy or trembling voices are unpleasant)
  = 0.60 formant shift - 0.90 max(tension, 0) - 0.25 jitter - 0.30 max(breathiness, 0) - 0.20 tremor.
- **dominance** (loud, pressed and low is in control; high and shaky is not) = 0.45 loudness + 0.30 tension
  - 0.25 pitch level - 0.20 tremor.

Each score is mapped to IEMOCAP's 1-5 scale as ``3 + 1.25 x score`` (neutral = 3), then rated: ``RATERS``
simulated raters each give an integer 1-5 (the true value plus their own error, sd ``RATER_SD``, rounded and
clipped, as IEMOCAP's evaluators do) and the annotation is their mean, so values are multiples of 1/3 as in
the real corpus. The raters' draws come from their own stream, seeded by (seed, corpus, file name): same
seed, same annotations, and the audio bytes do not depend on them. Both optional layouts write them on the
1-5 scale: IEMOCAP in its EmoEvaluation lines (``[V, A, D]``), the manifest in columns ``arousal``,
``valence``, ``dominance`` (a dimensional run on it declares ``data.manifest.scale: [1, 5]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emoshift.synth.job import FileJob
from emoshift.synth.speaker import Prosody, seeded_rng
from emoshift.synth.voice import take_prosody

SCALE: tuple[float, float] = (1.0, 5.0)  # IEMOCAP's 1-5, also written to the manifest table
GAIN = 1.25  # scale units per unit of score
RATERS = 3
RATER_SD = 0.45

# target -> {cue: weight}; the cues are Prosody parameters divided by a typical emotional distance (see _cues)
WEIGHTS: dict[str, dict[str, float]] = {
    "arousal": {"loudness": 0.30, "rate": 0.20, "range": 0.15, "tension": 0.20, "pitch": 0.15},
    "valence": {"smile": 0.60, "pressed": -0.90, "jitter": -0.25, "breathy": -0.30, "tremor": -0.20},
    "dominance": {"loudness": 0.45, "tension": 0.30, "pitch": -0.25, "tremor": -0.20},
}
TARGETS: tuple[str, ...] = tuple(WEIGHTS)


@dataclass(frozen=True, slots=True)
class Annotation:
    """One take's ratings on :data:`SCALE`: ``truth`` before the raters, the raters' mean as written."""

    arousal: float
    valence: float
    dominance: float
    truth: tuple[float, float, float]  # (arousal, valence, dominance) the raters saw, unrounded

    def vad(self) -> tuple[float, float, float]:
        """IEMOCAP's order: (valence, arousal, dominance)."""
        return self.valence, self.arousal, self.dominance


def applied_prosody(job: FileJob) -> Prosody:
    """The prosody :func:`emoshift.synth.generate.render` renders ``job`` with (same stream, same first draws)."""
    return take_prosody(speaker=job.speaker, emotion=job.emotion, strength=job.strength, rng=job.rng())


def cues(p: Prosody) -> dict[str, float]:
    """The prosody parameters in units of a typical emotional distance from neutral (neutral = all zero)."""
    return {
        "loudness": p.loudness_db / 6.0,
        "rate": float(np.log(p.rate)) / 0.2,
        "range": float(np.log(p.pitch_range)) / 0.5,
        "tension": p.tension / 0.8,
        "pressed": max(p.tension, 0.0) / 0.8,
        "pitch": p.pitch_st / 4.0,
        "smile": p.formant_shift / 0.05,
        "jitter": p.jitter / 0.01,
        "breathy": max(p.breathiness, 0.0) / 0.15,
        "tremor": p.tremor_st / 0.7,
    }


def true_values(p: Prosody) -> tuple[float, float, float]:
    """(arousal, valence, dominance) on :data:`SCALE` for prosody ``p``, before any rater, clipped to the scale."""
    c = cues(p)
    lo, hi = SCALE
    mid = 0.5 * (lo + hi)
    a, v, d = (mid + GAIN * sum(w * c[k] for k, w in WEIGHTS[t].items()) for t in TARGETS)
    return tuple(float(np.clip(x, lo, hi)) for x in (a, v, d))  # type: ignore[return-value]


def annotate(job: FileJob) -> Annotation:
    """The arousal, valence and dominance annotated for ``job``: ``RATERS`` simulated raters' mean, 1-5."""
    truth = true_values(applied_prosody(job))
    rng = seeded_rng(job.seed, job.corpus, "raters", job.name)
    lo, hi = SCALE
    ratings = np.clip(np.rint(np.asarray(truth)[:, None] + rng.normal(0.0, RATER_SD, (3, RATERS))), lo, hi)
    a, v, d = (float(round(x, 4)) for x in ratings.mean(axis=1))
    return Annotation(arousal=a, valence=v, dominance=d, truth=truth)
