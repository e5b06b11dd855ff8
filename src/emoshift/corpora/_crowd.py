"""CREMA-D's crowd labels: the emotion raters *perceived* from the voice alone, instead of the acted intent.

``processedResults/summaryTable.csv`` (``FileName, VoiceVote, VoiceLevel, FaceVote, FaceLevel, MultiModalVote,
MultiModalLevel``): ``VoiceVote`` is the majority emotion of the voice-only ratings (A, D, F, H, N or S), or
several joined by ``:`` when the vote is tied (no majority). ``processedResults/tabulatedVotes.csv`` holds
per clip and condition the vote counts ``A, D, F, H, N, S``, ``fileName``, ``numResponses``, ``agreement``
(the share of raters who chose ``emoVote``) and ``emoVote``: the counts are kept as each clip's raters' votes
(:attr:`Vote.counts`, the soft targets of ``training.targets: soft``); its unnamed first column is the row id, whose
first digit is the condition as numbered in the corpus README's ``queryType`` (1 voice only, 2 face only,
3 audio-visual). The voice rows give the agreement, and the vote itself when summaryTable.csv is absent.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import Scan

FOLDER = "processedResults"
SUMMARY = "summaryTable.csv"
TABULATED = "tabulatedVotes.csv"
# crowd vote letter -> the corpus's own three-letter code (cremad.LABEL_MAP keys)
VOTES: dict[str, str] = {"A": "ANG", "D": "DIS", "F": "FEA", "H": "HAP", "N": "NEU", "S": "SAD"}
VOICE_QUERY = "1"


@dataclass(frozen=True, slots=True)
class Vote:
    """The voice-only crowd label of one clip: ``code`` None means no majority (a tie)."""

    code: str | None
    agreement: float | None
    counts: tuple[tuple[str, int], ...] = ()  # the voice-only vote count per code (ANG, ...), from tabulatedVotes


def voice_labels(places: Iterable[Path], result: Scan) -> dict[str, Vote] | None:
    """Clip stem -> Vote from the first processedResults/ found; None (and a warning) when there is none."""
    places = list(dict.fromkeys(places))
    for folder in places:
        results = _scanning.child(folder, FOLDER, is_dir=True)
        if results is None:
            continue
        summary = _scanning.child(results, SUMMARY, is_dir=False)
        tabulated = _scanning.child(results, TABULATED, is_dir=False)
        if summary is None and tabulated is None:
            continue
        voice = _read_tabulated(tabulated, result) if tabulated else {}
        if tabulated is None:
            result.warnings.append(f"{results / TABULATED} not found: agreement is left empty")
        if summary is None:
            result.warnings.append(f"{results / SUMMARY} not found: the voice votes come from {TABULATED}")
            return voice
        return _read_summary(summary, voice, result)
    where = ", ".join(str(p / FOLDER) for p in places)
    result.warnings.append(
        f"crowd labels not found ({SUMMARY} / {TABULATED} in {where}): the acted labels are used for every clip"
    )
    return None


def _rows(path: Path, result: Scan) -> list[dict[str, str]] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [
                {(k or "").strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}
                for row in csv.DictReader(f)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        result.warnings.append(f"{path} could not be read ({e})")
        return None


def _column(row: dict[str, str], name: str) -> str:
    """A cell by column name, compared case-insensitively (the README says fileName, the file FileName)."""
    for key, value in row.items():
        if key.lower() == name.lower():
            return value
    return ""


def _vote(text: str) -> str | None:
    """The three-letter code of a single-letter majority; None for a tie (``A:N``) or an unknown letter."""
    letter = text.strip().upper()
    return VOTES.get(letter)


def _counts(row: dict[str, str]) -> tuple[tuple[str, int], ...]:
    """The row's vote count per code (columns A, D, F, H, N, S; an empty or non-integer cell counts 0)."""
    out = []
    for letter, code in VOTES.items():
        cell = _column(row, letter)
        n = int(float(cell)) if cell.replace(".", "", 1).isdigit() else 0
        if n > 0:
            out.append((code, n))
    return tuple(out)


def _read_tabulated(path: Path, result: Scan) -> dict[str, Vote]:
    rows = _rows(path, result)
    voice: dict[str, Vote] = {}
    for row in rows or []:
        if not row.get("", "").startswith(VOICE_QUERY):
            continue
        name = Path(_column(row, "fileName")).stem
        try:
            agreement: float | None = float(_column(row, "agreement"))
        except ValueError:
            agreement = None
        if name:
            voice[name] = Vote(code=_vote(_column(row, "emoVote")), agreement=agreement, counts=_counts(row))
    if rows is not None and not voice:
        result.warnings.append(
            f"{path} has no voice-only rows (ids starting with 1): agreement is left empty"
        )
    return voice


def _read_summary(path: Path, voice: dict[str, Vote], result: Scan) -> dict[str, Vote]:
    rows = _rows(path, result)
    if rows is None:
        return voice
    if rows and not _column(rows[0], "VoiceVote") and "voicevote" not in {k.lower() for k in rows[0]}:
        result.warnings.append(f"{path} has no VoiceVote column: the voice votes come from {TABULATED}")
        return voice
    out: dict[str, Vote] = {}
    for row in rows:
        name = Path(_column(row, "FileName")).stem
        if name:
            tab = voice.get(name)
            out[name] = Vote(
                code=_vote(_column(row, "VoiceVote")),
                agreement=tab.agreement if tab else None,
                counts=tab.counts if tab else (),
            )
    return out
