"""Synthetic look-alikes of RAVDESS and CREMA-D (and, on request, IEMOCAP and a manifest corpus of your own):
the same layouts, names and formats, speech-like audio.

The real corpora cannot ship with emoshift (licences, size), yet every part of the toolkit and the whole study
must run end to end without them: in the tests, in ``make demo``, on a reviewer's laptop. This package writes
two small corpora that the real loaders accept unchanged and that keep the property the study is about: a
model trained on the "RAVDESS" side does well on it and drops, but stays above chance, on the "CREMA-D" side.

How a clip is made (all numpy/scipy, no speech model), one module per step:

1. :mod:`~emoshift.synth.speaker`: a speaker (pitch, tract length, rate, voice quality) and the prosody of an
   emotion (pitch level and range, rate, loudness, breathiness, tension, jitter, tremor, formant shift).
2. :mod:`~emoshift.synth.voice`: a sentence as syllables, laid out as articulation tracks at 200 Hz, then a
   source-filter render (Rosenberg pulses, aspiration, five formant resonators, frication noise).
3. :mod:`~emoshift.synth.channel`: the recording chain, a studio for RAVDESS, a per-actor field session for
   CREMA-D (noise, band limits, microphone colour, room, gain, hum).
4. :mod:`~emoshift.synth.plan`: which files a scale (``tiny``, ``small``, ``full``) holds, with which speakers
   and sessions; :mod:`~emoshift.synth.generate` renders and writes them in parallel, byte-identical for a seed.
   :mod:`~emoshift.synth.iemocap` (sessions, dialogs, EmoEvaluation files) and :mod:`~emoshift.synth.manifest`
   (a CSV table with extra columns, telephone-band audio) plan the two optional corpora (``corpora=``), for
   the N-corpus study. :mod:`~emoshift.synth.annotate` rates their takes' arousal, valence and dominance from the
   prosody each was rendered with (three simulated raters, 1-5), for dimensional runs.
"""

from emoshift.synth.channel import (
    CREMAD_SR,
    RAVDESS_SR,
    Channel,
    apply_channel,
    field_channel,
    studio_channel,
    to_pcm16,
)
from emoshift.synth.generate import SYNTH_VERSION, SynthSummary, generate, render, write_file
from emoshift.synth.plan import (
    CORPORA,
    CREMAD_SENTENCES,
    DEFAULT_CORPORA,
    RAVDESS_STATEMENTS,
    SCALES,
    FileJob,
    Scale,
    SynthError,
    get_scale,
    plan,
)
from emoshift.synth.speaker import (
    EMOTION_PROSODY,
    Prosody,
    Speaker,
    emotion_prosody,
    make_speaker,
    seeded_rng,
)
from emoshift.synth.voice import Sentence, Syllable, synthesize_utterance

__all__ = [
    "CORPORA",
    "DEFAULT_CORPORA",
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
    "Syllable",
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
