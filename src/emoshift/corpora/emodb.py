"""EmoDB: the Berlin Database of Emotional Speech (Burkhardt et al., Interspeech 2005).

- Size: 535 German utterances in ``wav/``, 16 kHz mono (recorded at 48 kHz, downsampled by the authors),
  anechoic chamber.
- Speakers: 10 actors. Male: 03 (31 years), 10 (32), 11 (26), 12 (30), 15 (25). Female: 08 (34),
  09 (21), 13 (32), 14 (35), 16 (31).
- Labels: one letter for the German emotion word: W Wut (angry), L Langeweile (boredom), E Ekel (disgust),
  A Angst (fearful), F Freude (happy), T Trauer (sad), N neutral. Boredom has no counterpart in RAVDESS or
  CREMA-D, so the six and four policies leave it out; ``native`` keeps it as "boredom".
- Licence: free for research use; check the terms of the copy you downloaded.
- Layout: ROOT is the corpus folder holding ``wav/`` (matched case-insensitively) or the ``wav`` folder
  itself. File names are ``SSTTTEV.wav``: speaker (2 digits), text code (a01 ... b10, the sentence),
  emotion letter, version letter (a, b, ... when a speaker recorded the text more than once).
- Quirks: the distribution's other folders (``lablaut/``, ``labsilb/``, ``silb/``) hold label files, not
  audio, and are not read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import Scan, Utterance

NAME = "emodb"

LABEL_MAP: dict[str, str] = {
    "W": "angry",
    "L": "boredom",
    "E": "disgust",
    "A": "fearful",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}
# speaker -> (gender, age in years), from the corpus documentation.
SPEAKERS: dict[str, tuple[str, int]] = {
    "03": ("male", 31),
    "08": ("female", 34),
    "09": ("female", 21),
    "10": ("male", 32),
    "11": ("male", 26),
    "12": ("male", 30),
    "13": ("female", 32),
    "14": ("female", 35),
    "15": ("male", 25),
    "16": ("female", 31),
}

_FILE = re.compile(r"(\d{2})([ab]\d{2})([A-Z])([a-z])")


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index an EmoDB copy: one Utterance per usable recording."""
    result, root_path = _scanning.start_scan(NAME, root, labels)
    wav_dir = _scanning.child(root_path, "wav", is_dir=True) or root_path
    files = _scanning.audio_files(wav_dir)
    _scanning.require_recognised(
        files,
        _parse,
        f"{NAME}: no recordings named like 03a01Fa.wav in {wav_dir} "
        "(expected the EmoDB folder holding wav/, or wav itself)",
    )
    return _scanning.scan_files(result, files, _parse, workers=workers, progress=progress)


def _parse(path: Path) -> Utterance | str:
    """An Utterance with its canonical emotion (no duration yet), or the reason the file is skipped."""
    m = _FILE.fullmatch(path.stem)
    if m is None or path.suffix.lower() != ".wav":
        return "unrecognised file name"
    speaker, text, emotion, _version = m.groups()
    if speaker not in SPEAKERS or emotion not in LABEL_MAP:
        return "unrecognised file name"
    gender, age = SPEAKERS[speaker]
    return Utterance(
        id=f"{NAME}/{path.stem}",
        path=str(path),
        corpus=NAME,
        speaker=f"{NAME}/{speaker}",
        gender=gender,
        emotion=LABEL_MAP[emotion],
        native_label=emotion,
        sentence=text,
        age=age,
    )
