"""MSP-Podcast: natural emotional speech from podcast recordings (Lotfian & Busso 2019).

- Size: 100k+ speaking turns in recent releases (v1.11: about 150k, 237 h), 16 kHz mono WAV, 2.75-11 s.
- Speakers: 1,000+ identified speakers (``SpkrID``) and many turns whose speaker is ``Unknown``; gender per
  turn (``Gender``: Male / Female / Unknown). Unknown is not one speaker: each such turn gets a pseudo-speaker
  of its own (``msp-podcast/unknown:<file>``, see :func:`base.unknown_speaker`) and is kept only where the
  official partition places it (a turn with neither a speaker nor a partition is excluded and counted).
- Labels: consensus category ``EmoClass`` A angry, S sad, H happy, U surprise, F fear, D disgust,
  C contempt, N neutral, O other, X no agreement (O and X left out and counted in ``Scan.excluded``), and
  mean arousal, valence, dominance ratings on 1-7 (``EmoAct``, ``EmoVal``, ``EmoDom``).
- Folds: ``fold`` is the official partition ``Split_Set`` (Train, Development, Test1, Test2, ... depending
  on the release): the protocol. Its identified speakers are disjoint across partitions; the scan warns when
  a copy breaks that.
- Licence: academic licence from the MSP lab, UT Dallas (no redistribution).
- Layout: ``Audios/`` (or ``Audio/``; matched case-insensitively) with ``MSP-PODCAST_XXXX_YYYY.wav`` and
  ``Labels/labels_consensus.csv`` with columns ``FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID,
  Gender, Split_Set`` at ROOT. Releases that ship ``Transcripts/MSP-PODCAST_XXXX_YYYY.txt`` (one text per
  turn) give ``sentence`` (the turn's transcript; text overlap, text-disjoint splits); without them it is empty.
- Quirks: a recognised file with no row in the labels file is skipped ("no label"); a row whose file is
  missing is skipped ("missing"). Every kept file is still decoded once (silent, truncated and non-audio
  files must be caught, and the labels file has no durations); see benchmarks/scan_msppodcast.py for speed.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import CorpusError, Scan, Skipped, Utterance, is_unknown_speaker, unknown_speaker

NAME = "msp-podcast"
RATING_SCALE: tuple[float, float] = (1.0, 7.0)  # EmoAct, EmoVal, EmoDom: mean of raters, 1-7

LABEL_MAP: dict[str, str] = {
    "A": "angry",
    "S": "sad",
    "H": "happy",
    "U": "surprised",
    "F": "fearful",
    "D": "disgust",
    "C": "contempt",
    "N": "neutral",
}
EXCLUDED: dict[str, str] = {"O": "O (other)", "X": "X (no agreement)"}
LABELS_FILE = ("Labels", "labels_consensus.csv")
COLUMNS: tuple[str, ...] = (
    "FileName",
    "EmoClass",
    "EmoAct",
    "EmoVal",
    "EmoDom",
    "SpkrID",
    "Gender",
    "Split_Set",
)
NO_PARTITION = "unknown speaker without a partition"

_FILE = re.compile(r"MSP-PODCAST_\d{4}_\d{4}(?:_\d{4})?")


@dataclass(frozen=True, slots=True)
class Row:
    """One row of labels_consensus.csv, as read."""

    line: int
    code: str
    arousal: float | None
    valence: float | None
    dominance: float | None
    speaker: str | None  # None: Unknown
    gender: str | None
    partition: str | None


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index an MSP-Podcast copy: one Utterance per labelled, usable turn, with its official partition."""
    result, root_path = _scanning.start_scan(NAME, root, labels)
    audio_dir = _scanning.child(root_path, "Audios", is_dir=True) or _scanning.child(
        root_path, "Audio", is_dir=True
    )
    labels_dir = _scanning.child(root_path, LABELS_FILE[0], is_dir=True)
    labels_path = _scanning.child(labels_dir, LABELS_FILE[1], is_dir=False) if labels_dir else None
    if audio_dir is None:
        raise CorpusError(f"{NAME}: no Audios/ (or Audio/) folder in {root_path}")
    if labels_path is None:
        raise CorpusError(f"{NAME}: labels file {'/'.join(LABELS_FILE)} not found in {root_path}")
    rows = _read_labels(labels_path)
    files = _scanning.audio_files(audio_dir)
    texts = _scanning.child(root_path, "Transcripts", is_dir=True)
    _scanning.require_recognised(
        files,
        lambda p: _parse(p, rows, texts),
        f"{NAME}: no labelled turns named like MSP-PODCAST_0001_0001.wav in {audio_dir}",
    )
    have = {p.stem for p in files}
    for stem, row in sorted(rows.items()):
        if stem not in have and row.code not in EXCLUDED:
            result.skipped.append(
                Skipped(
                    str(audio_dir / f"{stem}.wav"),
                    f"missing: row {row.line} of the labels file, no audio file",
                )
            )
    kept: list[Path] = []
    for path in files:
        found = rows.get(path.stem)
        if found is not None and found.code in EXCLUDED:
            result.excluded[EXCLUDED[found.code]] += 1
        elif found is not None and found.speaker is None and found.partition is None:
            result.excluded[NO_PARTITION] += 1
        else:
            kept.append(path)
    result = _scanning.scan_files(
        result, kept, lambda p: _parse(p, rows, texts), workers=workers, progress=progress
    )
    _check_partitions(result)
    return result


def _read_labels(path: Path) -> dict[str, Row]:
    """File stem -> Row. A file without the expected columns is a CorpusError naming them."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in COLUMNS[:2] if c not in header]
            if missing:
                raise CorpusError(
                    f"{NAME}: {path} lacks the columns {', '.join(missing)} (found: {', '.join(header)})"
                )
            rows: dict[str, Row] = {}
            for i, raw in enumerate(reader):
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(k, str)}
                name = row.get("FileName", "")
                if name:
                    rows[Path(name).stem] = _row(row, line=i + 2)
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CorpusError(f"{NAME}: cannot read {path} ({e})") from None


def _row(row: dict[str, str], *, line: int) -> Row:
    speaker = row.get("SpkrID", "")
    gender = row.get("Gender", "").lower()
    return Row(
        line=line,
        code=row.get("EmoClass", "").upper(),
        arousal=_number(row.get("EmoAct", "")),
        valence=_number(row.get("EmoVal", "")),
        dominance=_number(row.get("EmoDom", "")),
        speaker=None if speaker.lower() in ("", "unknown") else speaker,
        gender=gender if gender in ("male", "female") else None,
        partition=row.get("Split_Set") or None,
    )


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _transcript(texts: Path | None, stem: str) -> str | None:
    """The turn's text from ``Transcripts/<stem>.txt`` (None without one, or unreadable)."""
    if texts is None:
        return None
    try:
        return (texts / f"{stem}.txt").read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _parse(path: Path, rows: dict[str, Row], texts: Path | None = None) -> Utterance | str:
    """An Utterance with its canonical emotion (no duration yet), or the reason the file is skipped."""
    if _FILE.fullmatch(path.stem) is None or path.suffix.lower() != ".wav":
        return "unrecognised file name"
    row = rows.get(path.stem)
    if row is None:
        return "no label: no row in labels_consensus.csv"
    if row.code not in LABEL_MAP:
        return f"unknown label: EmoClass {row.code!r} in row {row.line}"
    return Utterance(
        id=f"{NAME}/{path.stem}",
        path=str(path),
        corpus=NAME,
        speaker=f"{NAME}/{row.speaker}" if row.speaker else unknown_speaker(NAME, path.stem),
        gender=row.gender,
        emotion=LABEL_MAP[row.code],
        native_label=row.code,
        sentence=_transcript(texts, path.stem),
        fold=row.partition,
        language="English",
        arousal=row.arousal,
        valence=row.valence,
        dominance=row.dominance,
    )


def _check_partitions(result: Scan) -> None:
    """Warn when an identified speaker appears in two official partitions (they are disjoint by design)."""
    parts: dict[str, set[str]] = defaultdict(set)
    for u in result.utterances:
        if u.fold is not None and not is_unknown_speaker(u.speaker):
            parts[u.speaker].add(u.fold)
    shared = sorted(s for s, p in parts.items() if len(p) > 1)
    if shared:
        result.warnings.append(
            f"{len(shared)} speakers appear in more than one partition (e.g. {shared[0]}): "
            "the official partitions of this copy are not speaker-disjoint"
        )
