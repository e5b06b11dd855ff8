"""CREMA-D's crowd ratings for the synthetic look-alike: ``processedResults/`` in the real layout, the raters' votes
drawn around the emotion each clip was rendered with.

In the real corpus every clip was rated by about ten crowd raters per condition (voice only, face only, both);
what they perceived often differs from what the actor intended. Here each clip's voice-only raters are drawn
from their own random stream, seeded by (seed, corpus, "crowd", file name), so the votes are the same for a seed
and the audio bytes do not depend on them:

1. ``RESPONSES`` raters (8-12, uniform) per clip;
2. the chance a rater names each class: a Dirichlet around the rendered emotion, mean ``clarity`` on it
   (``BASE_CLARITY`` + ``STRENGTH_CLARITY`` x (strength - 1): a low-intensity take is harder) and the rest on the
   classes most confused with it (:data:`CONFUSIONS`, then a little on every other class), concentration
   ``CONCENTRATION``;
3. the votes: a multinomial draw of the raters from it.

At the ``small`` scale (seed 0) the mean share of the majority vote (``agreement``) is 0.65 (median 0.64), and
the majority misses the rendered class for 13% of the clips, ties (7%) included (written ``A:N`` in ``VoiceVote``, as the real
table does). Written: ``processedResults/tabulatedVotes.csv`` (one voice-only row per clip, row ids 1xxxxx as
the corpus's queryType numbering; ``A, D, F, H, N, S, fileName, numResponses, agreement, emoVote, meanEmoResp``)
and ``processedResults/summaryTable.csv`` (``FileName, VoiceVote, VoiceLevel``, the face and multimodal columns
left empty: nothing here renders a face). The CREMA-D loader reads both (:mod:`emoshift.corpora._crowd`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoshift.core.io import atomic_write_bytes
from emoshift.synth.job import FileJob
from emoshift.synth.speaker import seeded_rng

FOLDER = "processedResults"
LETTERS: tuple[str, ...] = ("A", "D", "F", "H", "N", "S")  # the tables' column order
# canonical emotion (what FileJob.emotion holds) -> the tables' letter
LETTER: dict[str, str] = {
    "angry": "A", "disgust": "D", "fearful": "F", "happy": "H", "neutral": "N", "sad": "S",
}
RESPONSES: tuple[int, int] = (8, 12)
BASE_CLARITY = 0.62
STRENGTH_CLARITY = 0.25
CONCENTRATION = 12.0
# the classes raters most often confuse a rendered emotion with (weights of the confused share)
CONFUSIONS: dict[str, dict[str, float]] = {
    "angry": {"disgust": 0.5, "neutral": 0.3},
    "disgust": {"angry": 0.3, "neutral": 0.5},
    "fearful": {"sad": 0.5, "neutral": 0.3},
    "happy": {"neutral": 0.6, "angry": 0.2},
    "neutral": {"sad": 0.5, "disgust": 0.2},
    "sad": {"neutral": 0.6, "fearful": 0.2},
}
TABULATED_COLUMNS: tuple[str, ...] = (
    "", *LETTERS, "fileName", "numResponses", "agreement", "emoVote", "meanEmoResp",
)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "", "FileName", "VoiceVote", "VoiceLevel", "FaceVote", "FaceLevel", "MultiModalVote", "MultiModalLevel",
)


@dataclass(frozen=True, slots=True)
class Rating:
    """One clip's voice-only crowd rating."""

    stem: str
    counts: tuple[int, ...]  # votes in LETTERS order
    level: float  # the raters' mean intensity rating (0-100), as the table's meanEmoResp

    @property
    def responses(self) -> int:
        return sum(self.counts)

    @property
    def majority(self) -> list[str]:
        top = max(self.counts)
        return [LETTERS[i] for i, c in enumerate(self.counts) if c == top]

    @property
    def agreement(self) -> float:
        return max(self.counts) / self.responses


def chances(emotion: str, strength: float) -> np.ndarray:
    """The mean chance a rater names each class (LETTERS order) for a take of ``emotion`` at ``strength``."""
    clarity = float(np.clip(BASE_CLARITY + STRENGTH_CLARITY * (strength - 1.0), 0.3, 0.9))
    confused = CONFUSIONS[emotion]
    rest = 1.0 - clarity
    spread = 0.2 * rest / (len(LETTERS) - 1)  # a little on every other class
    p = {e: spread for e in LETTER if e != emotion}
    for other, w in confused.items():
        p[other] += w / sum(confused.values()) * (rest - spread * (len(LETTERS) - 1))
    p[emotion] = clarity
    return np.array([p[e] for e in LETTER])


def rate(job: FileJob) -> Rating:
    """The voice-only crowd rating of ``job``'s clip, from its own random stream."""
    rng = seeded_rng(job.seed, job.corpus, "crowd", job.name)
    n = int(rng.integers(RESPONSES[0], RESPONSES[1] + 1))
    p = rng.dirichlet(CONCENTRATION * chances(job.emotion, job.strength))
    counts = tuple(int(c) for c in rng.multinomial(n, p))
    level = float(np.clip(rng.normal(45.0 + 20.0 * job.strength, 8.0), 0.0, 100.0))
    return Rating(stem=Path(job.path).stem, counts=counts, level=round(level, 2))


def _csv(columns: Sequence[str], rows: list[list[object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue().encode()


def write_ratings(corpus_dir: Path, jobs: Sequence[FileJob]) -> list[Rating]:
    """``corpus_dir/processedResults/{tabulatedVotes,summaryTable}.csv`` for ``jobs`` (in file-name order)."""
    ratings = [rate(j) for j in sorted(jobs, key=lambda j: j.name)]
    tabulated = [
        [100001 + i, *r.counts, r.stem, r.responses, round(r.agreement, 4), ":".join(r.majority), r.level]
        for i, r in enumerate(ratings)
    ]
    summary = [[i + 1, r.stem, ":".join(r.majority), r.level, "", "", "", ""] for i, r in enumerate(ratings)]
    atomic_write_bytes(corpus_dir / FOLDER / "tabulatedVotes.csv", _csv(TABULATED_COLUMNS, tabulated))
    atomic_write_bytes(corpus_dir / FOLDER / "summaryTable.csv", _csv(SUMMARY_COLUMNS, summary))
    return ratings
