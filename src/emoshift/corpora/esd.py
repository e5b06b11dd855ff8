"""ESD: the Emotional Speech Dataset (Zhou, Sisman, Liu & Li 2021), a parallel corpus for voice conversion.

- Size: 35,000 utterances (29 h): 20 speakers x 5 emotions x 350 sentences, 16 kHz mono WAV.
- Speakers: 0001-0010 Mandarin, 0011-0020 English; 5 female and 5 male per language. Gender per speaker is
  taken from the corpus README: female 0001 0002 0003 0007 0009 0015 0016 0017 0018 0019, male 0004 0005
  0006 0008 0010 0011 0012 0013 0014 0020. A speaker folder outside 0001-0020 is not ESD and is skipped.
  ``language`` is "Mandarin" or "English".
- Labels: the emotion folder, Angry, Happy, Neutral, Sad or Surprise (surprise is left out by the six and
  four policies). The same sentences are spoken in every emotion; ``sentence`` is the text from the
  speaker's transcript when it has the utterance.
- Folds: some copies split each emotion folder into ``train/``, ``evaluation/``, ``test/`` (300/20/30
  sentences); that sub-folder is kept as ``fold``. Those folds hold *every* speaker, so they are not
  speaker-disjoint: a split built on them is leaky (the split machinery's leak guard refuses it).
- Licence: free for research use only (terms in the corpus README; cite Zhou et al. 2021).
- Layout: ``0001/ ... 0020/`` at ROOT or one folder down (``Emotion Speech Dataset/``), each with
  ``Angry/ Happy/ Neutral/ Sad/ Surprise/`` (folder names matched case-insensitively), with or without the
  ``train/ evaluation/ test/`` sub-folders, and a transcript ``NNNN/NNNN.txt``
  (``utt_id<TAB>text<TAB>emotion``). Files are ``NNNN_MMMMMM.wav`` (speaker, utterance number).
- Quirks: a file whose speaker prefix differs from its folder is skipped ("unrecognised file name"); a
  missing or unreadable transcript only leaves ``sentence`` empty (with a warning).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import CorpusError, Scan, Utterance

NAME = "esd"

LABEL_MAP: dict[str, str] = {
    "Angry": "angry",
    "Happy": "happy",
    "Neutral": "neutral",
    "Sad": "sad",
    "Surprise": "surprised",
}
FEMALE: frozenset[int] = frozenset({1, 2, 3, 7, 9, 15, 16, 17, 18, 19})
MALE: frozenset[int] = frozenset({4, 5, 6, 8, 10, 11, 12, 13, 14, 20})
FOLDS: tuple[str, ...] = ("train", "evaluation", "test")

_SPEAKER_DIR = re.compile(r"\d{4}")
_FILE = re.compile(r"(\d{4})_(\d{6})")
_EMOTION_DIRS = {k.lower(): k for k in LABEL_MAP}


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index an ESD copy: one Utterance per usable take, with or without train/evaluation/test folders."""
    result, root_path = _scanning.start_scan(NAME, root, labels)
    speakers = _speaker_dirs(root_path)
    if not speakers:
        raise CorpusError(
            f"{NAME}: no speaker folders 0001 ... 0020 in {root_path} (at ROOT or one folder down)"
        )
    files: list[Path] = []
    texts: dict[str, str] = {}
    for folder in speakers:
        texts.update(_transcript(folder, result))
        files += _scanning.audio_files(folder, recursive=True)
    _scanning.require_recognised(
        files,
        lambda p: _parse(p, texts),
        f"{NAME}: no takes like 0011/Angry/0011_000351.wav under {root_path}",
    )
    return _scanning.scan_files(result, files, lambda p: _parse(p, texts), workers=workers, progress=progress)


def _speaker_dirs(root: Path) -> list[Path]:
    """Four-digit speaker folders at ROOT, else one level down."""
    found = [d for d in _scanning.subdirs(root) if _SPEAKER_DIR.fullmatch(d.name)]
    if not found:
        for d in _scanning.subdirs(root):
            found += [s for s in _scanning.subdirs(d) if _SPEAKER_DIR.fullmatch(s.name)]
    return found


def _transcript(folder: Path, result: Scan) -> dict[str, str]:
    """utt_id -> text from ``NNNN/NNNN.txt``; a missing transcript only leaves ``sentence`` empty."""
    path = _scanning.child(folder, f"{folder.name}.txt", is_dir=False)
    if path is None:
        result.warnings.append(
            f"{folder.name}: no transcript {folder.name}.txt; sentence texts are left empty"
        )
        return {}
    try:
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError as e:
        result.warnings.append(f"{path}: cannot be read ({e.strerror or e}); sentence texts are left empty")
        return {}
    texts: dict[str, str] = {}
    for line in lines:
        cells = line.lstrip("\ufeff").split("\t")
        if len(cells) >= 2 and _FILE.fullmatch(cells[0].strip()):
            texts[cells[0].strip()] = cells[1].strip()
    return texts


def _parse(path: Path, texts: dict[str, str]) -> Utterance | str:
    """An Utterance with its canonical emotion (no duration yet), or the reason the file is skipped."""
    m = _FILE.fullmatch(path.stem)
    if m is None or path.suffix.lower() != ".wav":
        return "unrecognised file name"
    fold = path.parent.name.lower() if path.parent.name.lower() in FOLDS else None
    emotion_dir = path.parent.parent if fold else path.parent
    speaker_dir = emotion_dir.parent
    emotion = _EMOTION_DIRS.get(emotion_dir.name.lower())
    speaker = int(m.group(1))
    if emotion is None or speaker_dir.name != m.group(1) or not 1 <= speaker <= 20:
        return "unrecognised file name"
    return Utterance(
        id=f"{NAME}/{path.stem}",
        path=str(path),
        corpus=NAME,
        speaker=f"{NAME}/{m.group(1)}",
        gender="female" if speaker in FEMALE else "male" if speaker in MALE else None,
        emotion=LABEL_MAP[emotion],
        native_label=emotion,
        sentence=texts.get(path.stem),
        fold=fold,
        language="Mandarin" if speaker <= 10 else "English",
    )
