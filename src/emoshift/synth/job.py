"""What a plan is made of: a :class:`Scale` (how much of each corpus) and one :class:`FileJob` per file."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from emoshift.synth.channel import Channel
from emoshift.synth.speaker import Speaker, seeded_rng
from emoshift.synth.voice import Sentence


@dataclass(frozen=True, slots=True)
class Scale:
    """How much to generate; see the tables in :mod:`emoshift.synth.plan` (and the IEMOCAP and manifest modules)."""

    name: str
    ravdess_actors: int
    ravdess_per_actor: int  # 16, 32 or 60 (all)
    cremad_actors: int
    cremad_per_actor: int | None  # 12 or 24; None = the real 82 per actor less 20 files overall
    ravdess_pad_s: tuple[float, float]  # leading / trailing silence, each drawn from this range
    cremad_pad_s: tuple[float, float]
    max_syllables: int | None = None  # cut sentences short (tiny only)
    # only written when asked for (``generate(..., corpora=...)``): IEMOCAP and a manifest corpus
    iemocap_sessions: int = 5
    iemocap_dialogs: int = 2  # per session, improvised and scripted in turn
    iemocap_turns: int = 6  # per actor and dialog
    manifest_speakers: int = 8
    manifest_per_speaker: int = 12  # a multiple of the six emotions


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
    # what a corpus's label files record beside the audio (IEMOCAP: category, V/A/D; manifest: its columns)
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def rng(self) -> np.random.Generator:
        """The file's own random stream, from (seed, corpus, file name): the render draws from it, in order."""
        return seeded_rng(self.seed, self.corpus, self.name)
