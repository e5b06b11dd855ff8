"""SAVEE: the Surrey Audio-Visual Expressed Emotion database (Haq & Jackson, University of Surrey, 2009).

- Size: 480 British English utterances, 120 per speaker, 44.1 kHz WAV.
- Speakers: four male speakers, DC, JE, JK and KL (postgraduate students and researchers, 27-31 years).
- Labels: file-name prefix a (anger), d (disgust), f (fear), h (happiness), n (neutral), sa (sadness),
  su (surprise); 15 sentences per emotion, 30 for neutral. Every speaker reads the same sentence list, so a
  take code (``a01``) is one sentence for all four speakers: ``sentence`` is that code behind the corpus name,
  ``SAVEE a01`` (it must not match EmoDB's text code ``a01``). The texts themselves are not in the file names:
  the three sentences the lists share across emotions keep different codes, so text overlap on SAVEE is a lower
  bound.
- Licence: free for research use on registration with the University of Surrey.
- Layout: ``AudioData/{DC,JE,JK,KL}/a01.wav`` (ROOT is the folder holding AudioData/, or AudioData itself),
  or the Kaggle mirror's flat ``ALL/DC_a01.wav``. Both are recognised anywhere under ROOT.
- Quirks: file names repeat across speakers (every speaker has ``a01.wav``), so utterance ids carry the
  speaker: ``savee/DC_a01``. A copy holding both layouts is deduplicated by that id.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import Scan, Utterance

NAME = "savee"

LABEL_MAP: dict[str, str] = {
    "a": "angry",
    "d": "disgust",
    "f": "fearful",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}
SPEAKERS: tuple[str, ...] = ("DC", "JE", "JK", "KL")

_TAKE = r"(sa|su|a|d|f|h|n)(\d{2})"
_NESTED = re.compile(_TAKE)  # AudioData/DC/a01.wav
_FLAT = re.compile(r"([A-Z]{2})_" + _TAKE)  # ALL/DC_a01.wav


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index a SAVEE copy: one Utterance per usable recording, in either layout."""
    result, root_path = _scanning.start_scan(NAME, root, labels)
    files, dropped = _scanning.dedupe(_scanning.audio_files(root_path, recursive=True), key=_take_id)
    _scanning.require_recognised(
        files,
        _parse,
        f"{NAME}: no recordings like AudioData/DC/a01.wav or DC_a01.wav under {root_path} "
        "(expected the SAVEE folder holding AudioData/)",
    )
    if dropped:
        result.warnings.append(_scanning.duplicates_warning(dropped))
    return _scanning.scan_files(result, files, _parse, workers=workers, progress=progress)


def _split(path: Path) -> tuple[str, str, str] | None:
    """(speaker, emotion code, take number) from either layout, or None."""
    if path.suffix.lower() != ".wav":
        return None
    if m := _FLAT.fullmatch(path.stem):
        speaker, code, number = m.groups()
    elif m := _NESTED.fullmatch(path.stem):
        speaker, (code, number) = path.parent.name.upper(), m.groups()
    else:
        return None
    return (speaker, code, number) if speaker in SPEAKERS else None


def _take_id(path: Path) -> str:
    """``DC_a01`` for either layout (the file's own name when it does not parse)."""
    parts = _split(path)
    return f"{parts[0]}_{parts[1]}{parts[2]}" if parts else str(path)


def _parse(path: Path) -> Utterance | str:
    """An Utterance with its canonical emotion (no duration yet), or the reason the file is skipped."""
    parts = _split(path)
    if parts is None:
        return "unrecognised file name"
    speaker, code, number = parts
    return Utterance(
        id=f"{NAME}/{speaker}_{code}{number}",
        path=str(path),
        corpus=NAME,
        speaker=f"{NAME}/{speaker}",
        gender="male",
        emotion=LABEL_MAP[code],
        native_label=code,
        sentence=f"SAVEE {code}{number}",
    )
