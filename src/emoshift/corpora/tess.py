"""TESS: the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller, University of Toronto, 2010).

- Size: 2,800 recordings of "Say the word ___" with 200 target words (from the NU-6 test), 24,414 Hz WAV.
- Speakers: two female actors, OAF (older, 64 years) and YAF (younger, 26 years), 1,400 files each.
- Labels: angry, disgust, fear, happy, neutral, ps (pleasant surprise), sad; 400 files each. ps maps to
  the canonical "surprised" (left out by the six and four policies) and fear to "fearful".
- Licence: CC BY-NC-ND 4.0.
- Layout: one folder per speaker and emotion (``OAF_angry/``, ``YAF_pleasant_surprised/``, ...) somewhere
  under ROOT; the folder names are inconsistent in case and wording, so only the file names
  ``{OAF|YAF}_{word}_{emotion}.wav`` are read. ``sentence`` is the target word, not the whole phrase: the
  carrier "Say the word" is the same in every file (``SHARED_TEXT``), so the word is all that tells two texts
  apart, and all that a text-disjoint split can keep apart (both actors say every word, so such a split trains
  on one actor's takes of some words and tests the other actor's takes of the others; the carrier stays in
  both, which the run says).
- Quirks: one file is misnamed ``OA_bite_neutral.wav``; it is read as speaker OAF. The Kaggle mirror
  nests a second copy of the whole set inside the first: files are deduplicated by name, one copy kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import Scan, Utterance

NAME = "tess"
SHARED_TEXT = "Say the word"  # the carrier phrase before every target word (see emoshift.data.texts.shared_text)

LABEL_MAP: dict[str, str] = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprised",
    "sad": "sad",
}
# speaker -> age in years; both are female.
SPEAKERS: dict[str, int] = {"OAF": 64, "YAF": 26}
# Misspelt speaker codes found in the distribution -> the speaker they stand for.
_SPEAKER_ERRATA: dict[str, str] = {"OA": "OAF"}

_FILE = re.compile(r"([A-Za-z]+)_([A-Za-z]+)_([A-Za-z]+)")


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index a TESS copy: one Utterance per usable recording, wherever the emotion folders sit under ROOT."""
    result, root_path = _scanning.start_scan(NAME, root, labels)
    files, dropped = _scanning.dedupe(_scanning.audio_files(root_path, recursive=True))
    _scanning.require_recognised(
        files,
        _parse,
        f"{NAME}: no recordings named like OAF_back_angry.wav under {root_path} "
        "(expected the TESS folder with its OAF_*/ and YAF_*/ emotion folders)",
    )
    if dropped:
        result.warnings.append(_scanning.duplicates_warning(dropped))
    return _scanning.scan_files(result, files, _parse, workers=workers, progress=progress)


def _parse(path: Path) -> Utterance | str:
    """An Utterance with its canonical emotion (no duration yet), or the reason the file is skipped."""
    m = _FILE.fullmatch(path.stem)
    if m is None or path.suffix.lower() != ".wav":
        return "unrecognised file name"
    speaker, word, emotion = m.group(1).upper(), m.group(2).lower(), m.group(3).lower()
    speaker = _SPEAKER_ERRATA.get(speaker, speaker)
    if speaker not in SPEAKERS or emotion not in LABEL_MAP:
        return "unrecognised file name"
    return Utterance(
        id=f"{NAME}/{path.stem}",
        path=str(path),
        corpus=NAME,
        speaker=f"{NAME}/{speaker}",
        gender="female",
        emotion=LABEL_MAP[emotion],
        native_label=emotion,
        sentence=word,
        age=SPEAKERS[speaker],
    )
