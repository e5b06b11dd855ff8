"""CREMA-D: the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al. 2014).

- Size: 7,442 clips in ``AudioWAV/``, 1.3-5 s each, 16 kHz mono 16-bit WAV; recording quality varies.
- Speakers: 91 actors (ActorID 1001-1091), 48 male and 43 female, aged 20-74; race African American,
  Asian, Caucasian or Unknown; ethnicity Hispanic or Not Hispanic (all from ``VideoDemographics.csv``).
- Labels: intended emotion ANG, DIS, FEA, HAP, NEU, SAD (1,271 clips each, NEU 1,087); level LO, MD, HI
  or XX (unspecified; LO/MD/HI occur only with sentence IEO). 12 sentences: IEO, TIE, IOM, IWW, TAI, MTI,
  IWL, ITH, DFA, ITS, TSI, WSI. ``labels_from="voice"`` (``--labels-from voice``) uses instead the crowd's
  majority label for the voice-only condition (``processedResults/summaryTable.csv`` and
  ``tabulatedVotes.csv``, see :mod:`emoshift.corpora._crowd`), with the share of raters who chose it as
  ``agreement`` and the acted code in ``meta`` (``acted``); clips whose vote is tied (no majority) are left
  out and counted in ``Scan.excluded``; clips the tables lack, or all clips when the tables are missing,
  keep their acted label and the scan warns. Either way the voice-only vote counts of ``tabulatedVotes.csv``
  (A, D, F, H, N, S), when found, are kept as each clip's ``votes`` (the rater distribution that
  ``training.targets: soft`` trains on); with acted labels a missing or unreadable table is not reported.
- Licence: Open Database License 1.0 (database) / Database Contents License 1.0 (contents).
- Layout: ROOT is the corpus folder holding ``AudioWAV/`` (matched case-insensitively) or the
  ``AudioWAV`` folder itself. File names are ``AAAA_SSS_EEE_LL.wav`` (actor, sentence, emotion, level).
  ``VideoDemographics.csv`` (``ActorID, Age, Sex, Race, Ethnicity``) is looked for in ROOT, ROOT/.. and
  next to AudioWAV; without it gender, age, race and ethnicity stay empty and the scan warns.
- Quirks: ``1076_MTI_SAD_XX.wav`` is full size but silent (found by energy, not size); a zip of the GitHub
  repository holds ~130-byte git-LFS pointer files instead of audio (skipped with "git-LFS pointer: run
  git lfs pull").
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from emoshift.corpora import _crowd, _scanning
from emoshift.corpora.base import Scan, Utterance, make_meta

NAME = "crema-d"

LABEL_MAP: dict[str, str] = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
LEVELS: dict[str, str] = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES: tuple[str, ...] = (
    "IEO",
    "TIE",
    "IOM",
    "IWW",
    "TAI",
    "MTI",
    "IWL",
    "ITH",
    "DFA",
    "ITS",
    "TSI",
    "WSI",
)
DEMOGRAPHICS_FILE = "VideoDemographics.csv"
LABEL_SOURCES: tuple[str, ...] = ("acted", "voice")
NO_MAJORITY = "no voice majority (tied crowd vote)"

_FILE = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")


@dataclass(frozen=True, slots=True)
class Actor:
    """One row of VideoDemographics.csv."""

    gender: str | None
    age: int | None
    race: str | None
    ethnicity: str | None


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    labels_from: str = "acted",
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index a CREMA-D copy: one Utterance per usable clip, joined with the actors' demographics.

    ``labels_from``: "acted" (the intended emotion in the file name) or "voice" (the crowd's perceived one).
    """
    if labels_from not in LABEL_SOURCES:
        raise ValueError(f"labels_from must be one of {', '.join(LABEL_SOURCES)}, got {labels_from!r}")
    result, root_path = _scanning.start_scan(NAME, root, labels)
    audio_dir = _audio_dir(root_path)
    files = _scanning.audio_files(audio_dir)
    _scanning.require_recognised(
        files,
        lambda path: _parse(path, None),
        f"{NAME}: no clips named like 1001_DFA_ANG_XX.wav in {audio_dir} "
        "(expected the CREMA-D folder holding AudioWAV/, or AudioWAV itself)",
    )
    actors = _demographics(root_path, audio_dir, result)
    if actors is not None:
        in_files = {m.group(1) for f in files if (m := _FILE.fullmatch(f.stem))}
        missing = sorted(in_files - actors.keys())
        if missing:
            result.warnings.append(
                f"{len(missing)} actors have no row in {DEMOGRAPHICS_FILE} (e.g. {missing[0]}): "
                "their gender, age, race and ethnicity are left empty"
            )
    places = [root_path, root_path.parent, audio_dir.parent]
    voice = labels_from == "voice"
    if voice:
        votes = _crowd.voice_labels(places, result)
        files = _apply_votes(files, votes, result)
    else:  # the votes are kept (soft targets) but do not relabel: whatever the tables say is not the user's concern
        votes = _crowd.voice_labels(places, Scan(corpus=NAME, root=result.root, labels=labels))
    return _scanning.scan_files(
        result,
        files,
        lambda path: _parse(path, actors, votes, relabel=voice),
        workers=workers,
        progress=progress,
    )


def _apply_votes(files: list[Path], votes: dict[str, _crowd.Vote] | None, result: Scan) -> list[Path]:
    """Leave out clips whose crowd vote is tied (counted); warn about clips the crowd tables lack."""
    if votes is None:
        return files
    kept, unrated = [], []
    for f in files:
        vote = votes.get(f.stem)
        if vote is not None and vote.code is None:
            result.excluded[NO_MAJORITY] += 1
            continue
        if vote is None and _FILE.fullmatch(f.stem):
            unrated.append(f.stem)
        kept.append(f)
    if unrated:
        result.warnings.append(
            f"{len(unrated)} clips have no crowd label (e.g. {unrated[0]}): their acted labels are used"
        )
    return kept


def _audio_dir(root: Path) -> Path:
    """ROOT/AudioWAV when present, else ROOT itself (the user pointed at AudioWAV)."""
    return _scanning.child(root, "AudioWAV", is_dir=True) or root


def _demographics(root: Path, audio_dir: Path, result: Scan) -> dict[str, Actor] | None:
    """ActorID -> Actor from the first VideoDemographics.csv found; None (and a warning) when there is none."""
    places = list(dict.fromkeys([root, root.parent, audio_dir.parent]))
    for folder in places:
        path = _scanning.child(folder, DEMOGRAPHICS_FILE, is_dir=False)
        if path is not None:
            return _read_demographics(path, result)
    where = ", ".join(str(p) for p in places)
    result.warnings.append(
        f"{DEMOGRAPHICS_FILE} not found (looked in {where}): gender, age, race and ethnicity are left empty"
    )
    return None


def _read_demographics(path: Path, result: Scan) -> dict[str, Actor] | None:
    """Parse VideoDemographics.csv; a file without the expected columns is reported and ignored."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        result.warnings.append(
            f"{path} could not be read ({e}): gender, age, race and ethnicity are left empty"
        )
        return None
    needed = {"ActorID", "Age", "Sex", "Race", "Ethnicity"}
    columns = {(k or "").strip() for k in (rows[0] if rows else {})}
    if not rows or not needed <= columns:
        result.warnings.append(
            f"{path} lacks the columns {', '.join(sorted(needed))}: gender, age, race and ethnicity are left empty"
        )
        return None
    actors: dict[str, Actor] = {}
    for raw in rows:
        # csv.DictReader puts surplus cells of a long row in a list under the key None: ignore them
        row = {k.strip(): v.strip() for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
        if not row.get("ActorID"):
            continue
        sex = row.get("Sex", "").lower()
        actors[row["ActorID"]] = Actor(
            gender=sex if sex in ("male", "female") else None,
            age=int(row["Age"]) if row.get("Age", "").isdigit() else None,
            race=row.get("Race") or None,
            ethnicity=row.get("Ethnicity") or None,
        )
    return actors


def _parse(
    path: Path,
    actors: dict[str, Actor] | None,
    votes: dict[str, _crowd.Vote] | None = None,
    *,
    relabel: bool = True,
) -> Utterance | str:
    """An Utterance with its canonical emotion (no duration yet), or the reason the file is skipped."""
    m = _FILE.fullmatch(path.stem)
    if m is None or path.suffix.lower() != ".wav":
        return "unrecognised file name"
    actor_id, sentence, emotion, level = m.groups()
    if sentence not in SENTENCES or emotion not in LABEL_MAP or level not in LEVELS:
        return "unrecognised file name"
    actor = (actors or {}).get(actor_id, Actor(None, None, None, None))
    vote = (votes or {}).get(path.stem)
    code = vote.code if relabel and vote is not None and vote.code is not None else emotion
    counts = tuple((LABEL_MAP[c], float(n)) for c, n in vote.counts) if vote is not None else ()
    return Utterance(
        id=f"{NAME}/{path.stem}",
        path=str(path),
        corpus=NAME,
        speaker=f"{NAME}/{actor_id}",
        gender=actor.gender,
        emotion=LABEL_MAP[code],
        native_label=code,
        intensity=LEVELS[level],
        sentence=sentence,
        age=actor.age,
        race=actor.race,
        ethnicity=actor.ethnicity,
        agreement=vote.agreement if relabel and vote is not None else None,
        votes=counts or None,
        meta=make_meta([("acted", emotion)]) if relabel and votes is not None else (),
    )
