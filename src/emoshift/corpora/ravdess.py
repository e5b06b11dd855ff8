"""RAVDESS: the Ryerson Audio-Visual Database of Emotional Speech and Song (Livingstone & Russo 2018).

- Size: 1,440 audio-only speech files (60 per actor) in ``Audio_Speech_Actors_01-24.zip``; 1,012 song
  files (44 per actor, no Actor_18) in ``Audio_Song_Actors_01-24.zip``. 16-bit, 48 kHz WAV, studio quality.
- Speakers: 24 professional actors, 12 male and 12 female. Gender is known only from the actor number:
  odd = male, even = female.
- Labels: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised (song uses
  01-06); intensity 01 normal, 02 strong (neutral has no strong take); two statements, two repetitions.
- Licence: CC BY-NC-SA 4.0.
- Layout: ``Actor_01/ ... Actor_24/`` at ROOT or one folder down (``Audio_Speech_Actors_01-24/``,
  ``Audio_Song_Actors_01-24/``); folder names are matched case-insensitively. File names are
  ``MM-VV-EE-II-SS-RR-AA.wav``: modality (01 audio-video, 02 video, 03 audio), vocal channel (01 speech,
  02 song), emotion, intensity, statement, repetition, actor.
- Quirks: the popular Kaggle mirror ships every actor twice (``Actor_XX/`` and
  ``audio_speech_actors_01-24/Actor_XX/``): files are deduplicated by name and one copy kept. Some files
  carry extra RIFF chunks (LIST) before ``data``; soundfile reads them. Song files are left out unless
  ``include_song=True``: they are reported as skipped, so none vanish unnoticed.

Under the default ``six`` policy calm and surprised are left out (192 files each in the speech set).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import CorpusError, Scan, Utterance

NAME = "ravdess"

LABEL_MAP: dict[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
INTENSITY: dict[str, str] = {"01": "normal", "02": "strong"}
STATEMENTS: dict[str, str] = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
MODALITIES: dict[str, str] = {"01": "audio-video", "02": "video-only", "03": "audio-only"}

_ACTOR_DIR = re.compile(r"actor_(\d{2})", re.IGNORECASE)
_FILE = re.compile(r"(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})")


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    include_song: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index a RAVDESS copy: one Utterance per usable audio-only take, under label policy ``labels``."""
    result, root_path = _scanning.start_scan(NAME, root, labels)
    actor_dirs = _actor_dirs(root_path)
    if not actor_dirs:
        raise CorpusError(
            f"{NAME}: no Actor_01 ... Actor_24 folders in {root_path} "
            "(expected them at ROOT or under Audio_Speech_Actors_01-24/)"
        )
    found = [f for d in actor_dirs for f in _scanning.audio_files(d)]
    files, dropped = _scanning.dedupe(found)
    if dropped:
        result.warnings.append(_scanning.duplicates_warning(dropped))

    return _scanning.scan_files(
        result,
        files,
        lambda path: _parse(path, include_song=include_song),
        workers=workers,
        progress=progress,
    )


def _actor_dirs(root: Path) -> list[Path]:
    """``Actor_XX`` folders at ROOT and one level down (the zip's own folder, the Kaggle copy, song)."""
    dirs: list[Path] = []
    for child in _scanning.subdirs(root):
        if _ACTOR_DIR.fullmatch(child.name):
            dirs.append(child)
        else:
            dirs.extend(d for d in _scanning.subdirs(child) if _ACTOR_DIR.fullmatch(d.name))
    return dirs


def _parse(path: Path, *, include_song: bool) -> Utterance | str:
    """An Utterance with its canonical emotion (no duration yet), or the reason the file is skipped."""
    m = _FILE.fullmatch(path.stem)
    if m is None or path.suffix.lower() != ".wav":
        return "unrecognised file name"
    modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
    if (
        modality not in MODALITIES
        or channel not in ("01", "02")
        or emotion not in LABEL_MAP
        or intensity not in INTENSITY
        or statement not in STATEMENTS
        or repetition not in ("01", "02")
        or not 1 <= int(actor) <= 24
    ):
        return "unrecognised file name"
    if modality != "03":
        return f"not audio-only: modality {modality} ({MODALITIES[modality]})"
    if channel == "02" and not include_song:
        return "song: left out unless include_song=True (--include-song)"
    return Utterance(
        id=f"{NAME}/{path.stem}",
        path=str(path),
        corpus=NAME,
        speaker=f"{NAME}/{actor}",
        gender="male" if int(actor) % 2 == 1 else "female",
        emotion=LABEL_MAP[emotion],
        native_label=emotion,
        intensity=INTENSITY[intensity],
        sentence=STATEMENTS[statement],
    )
