"""IEMOCAP: the Interactive Emotional Dyadic Motion Capture database (Busso et al. 2008).

- Size: about 12 h in five sessions, 10,039 labelled turns (16 kHz mono WAV, one file per turn); the
  standard four-class set (neutral, happy with excited merged in, sad, angry) holds 5,531 turns.
- Speakers: ten actors, one female and one male per session. The speaker of a turn is the session plus the
  gender letter right before the turn number (``Ses01F_impro01_M013`` is session 1's male actor, whoever
  wore the markers in that dialog): ``iemocap/Ses01M``.
- Labels: the evaluators' majority category, one of neu, hap, exc, sad, ang, fru, sur, fea, dis, oth, xxx,
  and the mean valence, arousal and dominance ratings (1-5, kept as ``valence``/``arousal``/``dominance``).
  Under every policy but native, excited is merged into happy (``four``: the standard set; ``six``: what
  IEMOCAP has of the six shared classes); ``native`` keeps excited and frustrated apart. ``xxx`` (no
  majority) and ``oth`` (other) are left out and counted in ``Scan.excluded``.
- Folds: ``fold`` is the session (``Session1`` ... ``Session5``): leave-one-session-out is the standard
  protocol, and its folds are speaker-disjoint. Improvised or scripted is kept in ``meta`` (``mode``, with
  the ``dialog``), and ``scan(..., mode="improvised")`` keeps only one kind (the others counted as excluded).
- Licence: released by request from USC SAIL under its own research licence (no redistribution).
- Layout: ``Session1/ ... Session5/`` at ROOT or one folder down (``IEMOCAP_full_release/``). Labels in
  ``SessionN/dialog/EmoEvaluation/<dialog>.txt``: a header line starting with ``%``, then per turn
  ``[start - end]<TAB>utt_id<TAB>emo<TAB>[V, A, D]`` followed by each evaluator's lines: the categorical ones
  (``C-E1:<TAB>Frustration; Anger;<TAB>(comment)``, the actors' own ``C-F1``/``C-M1`` too) are kept as the turn's
  ``votes``, one vote per category an evaluator names (``Other`` none; under a policy, votes for the classes it
  leaves out are dropped, excited merges into happy), the others are skipped. Audio in
  ``SessionN/sentences/wav/<dialog>/<utt_id>.wav``. Texts in ``SessionN/dialog/transcriptions/<dialog>.txt``,
  one line per turn, ``<utt_id> [start-end]: text``: ``sentence`` is the turn's transcript. The scripted
  dialogs are the same scripts in every session (``script01_1`` ...), so their lines recur across speakers
  (text overlap); improvised turns repeat only short replies. A session without transcriptions is reported
  and its turns have no ``sentence``.
- Quirks: copies made on macOS hold ``._*`` AppleDouble files beside the real ones (ignored, also among the
  label files). A session without ``dialog/EmoEvaluation/`` is reported: its files are skipped as "no label".
  A labelled turn whose audio file is missing is reported as skipped ("missing").
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import CorpusError, Scan, Skipped, Utterance, make_meta

NAME = "iemocap"
RATING_SCALE: tuple[float, float] = (1.0, 5.0)  # valence, arousal, dominance: mean of raters, 1-5

LABEL_MAP: dict[str, str] = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "excited",
    "sad": "sad",
    "ang": "angry",
    "fru": "frustrated",
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgust",
}
# The evaluators' category names (``C-E1:\tFrustration; Anger;\t(comment)``) -> canonical emotions; "Other" is none.
EVALUATOR_CATEGORIES: dict[str, str] = {
    "neutral": "neutral",
    "neutral state": "neutral",
    "happiness": "happy",
    "excited": "excited",
    "sadness": "sad",
    "anger": "angry",
    "frustration": "frustrated",
    "surprise": "surprised",
    "fear": "fearful",
    "disgust": "disgust",
}
# Categories that are not an emotion: left out of every policy and counted.
EXCLUDED: dict[str, str] = {"xxx": "xxx (no majority)", "oth": "oth (other)"}
MODES: tuple[str, ...] = ("improvised", "scripted")

_SESSION_DIR = re.compile(r"session([1-5])", re.IGNORECASE)
# Ses01F_impro01_F000, Ses01M_script02_1_M013: session, the dialog, the speaker's gender letter, turn number
_TURN = re.compile(r"(Ses(\d{2})[FM]_[A-Za-z0-9_]+?)_([FM])(\d{3})")
# an evaluator's categorical line: C-E1 ... C-E6 (evaluators), C-F1 / C-M1 (the actors' self-assessment)
_EVALUATOR_LINE = re.compile(r"C-[A-Z]+\d*:\s*([^\t(]*)")
_TEXT_LINE = re.compile(r"(\S+)\s+\[[^\]]*\]:\s*(.*)")  # Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
_LABEL_LINE = re.compile(
    r"\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\t(\S+)\t(\S+)\t\[\s*([\d.]+),\s*([\d.]+),\s*([\d.]+)\s*\]"
)


@dataclass(frozen=True, slots=True)
class Turn:
    """One labelled turn from an EmoEvaluation file."""

    code: str
    valence: float
    arousal: float
    dominance: float
    votes: tuple[tuple[str, float], ...] = ()  # the evaluators' categorical votes (canonical emotion, count)


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    mode: str | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index an IEMOCAP copy: one Utterance per labelled, usable turn; ``mode`` keeps improvised or scripted."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"iemocap mode must be one of {', '.join(MODES)} or None, got {mode!r}")
    result, root_path = _scanning.start_scan(NAME, root, labels)
    sessions = _session_dirs(root_path)
    if not sessions:
        raise CorpusError(
            f"{NAME}: no Session1 ... Session5 folders in {root_path} "
            "(expected them at ROOT or under IEMOCAP_full_release/)"
        )
    turns: dict[str, Turn] = {}
    texts: dict[str, str] = {}
    files: list[Path] = []
    for session in sessions:
        turns.update(_session_labels(session, result))
        texts.update(_session_texts(session, result))
        wav_dir = _scanning.child(
            _scanning.child(session, "sentences", is_dir=True) or session, "wav", is_dir=True
        )
        session_files = _scanning.audio_files(wav_dir, recursive=True) if wav_dir else []
        files += session_files
        _report_missing(session, session_files, turns, result)
    _scanning.require_recognised(
        files,
        lambda p: _parse(p, turns, texts),
        f"{NAME}: no labelled turns like Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav "
        f"under {root_path}",
    )
    kept: list[Path] = []
    for path in files:
        turn = turns.get(path.stem)
        m = _TURN.fullmatch(path.stem)
        if turn is not None and turn.code in EXCLUDED:
            result.excluded[EXCLUDED[turn.code]] += 1
        elif m is not None and turn is not None and mode is not None and _mode(m.group(1)) != mode:
            result.excluded[f"{_mode(m.group(1))} (mode={mode})"] += 1
        else:
            kept.append(path)
    return _scanning.scan_files(result, kept, lambda p: _parse(p, turns, texts), workers=workers, progress=progress)


def _session_dirs(root: Path) -> list[Path]:
    """``SessionN`` folders at ROOT and one level down."""
    found = [d for d in _scanning.subdirs(root) if _SESSION_DIR.fullmatch(d.name)]
    if not found:
        for d in _scanning.subdirs(root):
            found += [s for s in _scanning.subdirs(d) if _SESSION_DIR.fullmatch(s.name)]
    return found


def _session_labels(session: Path, result: Scan) -> dict[str, Turn]:
    """utt_id -> Turn from the session's EmoEvaluation/*.txt; a session without them is reported."""
    dialog = _scanning.child(session, "dialog", is_dir=True)
    folder = _scanning.child(dialog, "EmoEvaluation", is_dir=True) if dialog else None
    if folder is None:
        result.warnings.append(
            f"{session.name}: no dialog/EmoEvaluation/ folder; its turns are skipped as having no label"
        )
        return {}
    turns: dict[str, Turn] = {}
    for path in sorted(folder.glob("*.txt")):
        if path.name.startswith("."):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            result.warnings.append(f"{path}: cannot be read ({e.strerror or e}); its turns have no label")
            continue
        current: str | None = None
        for line in text.splitlines():
            m = _LABEL_LINE.match(line.strip("\r"))
            if m is not None:
                v, a, d = (float(x) for x in m.group(5, 6, 7))
                current = m.group(3)
                turns[current] = Turn(code=m.group(4).lower(), valence=v, arousal=a, dominance=d)
            elif current is not None and (ev := _EVALUATOR_LINE.match(line)) is not None:
                turns[current] = _add_votes(turns[current], ev.group(1))
    return turns


def _add_votes(turn: Turn, cell: str) -> Turn:
    """``turn`` with one more evaluator's categories (``Frustration; Anger;``): one vote for each category named
    (an evaluator may name several); ``Other`` and unknown names give no vote."""
    counts = dict(turn.votes)
    for name in cell.split(";"):
        emotion = EVALUATOR_CATEGORIES.get(name.strip().split(":", 1)[0].strip().lower())
        if emotion is not None:
            counts[emotion] = counts.get(emotion, 0.0) + 1.0
    return dataclasses.replace(turn, votes=tuple(sorted(counts.items())))
def _session_texts(session: Path, result: Scan) -> dict[str, str]:
    """utt_id -> transcript from the session's dialog/transcriptions/*.txt; a session without them is reported."""
    dialog = _scanning.child(session, "dialog", is_dir=True)
    folder = _scanning.child(dialog, "transcriptions", is_dir=True) if dialog else None
    if folder is None:
        result.warnings.append(f"{session.name}: no dialog/transcriptions/ folder; its turns have no sentence text")
        return {}
    texts: dict[str, str] = {}
    for path in sorted(folder.glob("*.txt")):
        if path.name.startswith("."):
            continue
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as e:
            result.warnings.append(f"{path}: cannot be read ({e.strerror or e}); its turns have no sentence text")
            continue
        for line in lines:
            if (m := _TEXT_LINE.fullmatch(line.strip())) is not None and m.group(2).strip():
                texts[m.group(1)] = m.group(2).strip()
    return texts


def _report_missing(session: Path, files: list[Path], turns: dict[str, Turn], result: Scan) -> None:
    """Labelled turns of this session whose audio file is not there: skipped, with the expected path."""
    have = {p.stem for p in files}
    number = _SESSION_DIR.fullmatch(session.name)
    tag = f"Ses{int(number.group(1)):02d}" if number else ""
    for utt, turn in sorted(turns.items()):
        m = _TURN.fullmatch(utt)
        if m is None or not utt.startswith(tag) or utt in have or turn.code in EXCLUDED:
            continue
        expected = session / "sentences" / "wav" / m.group(1) / f"{utt}.wav"
        result.skipped.append(Skipped(str(expected), "missing: labelled in EmoEvaluation but no audio file"))


def _mode(dialog: str) -> str:
    return "improvised" if "_impro" in dialog else "scripted"


def _parse(path: Path, turns: dict[str, Turn], texts: dict[str, str] | None = None) -> Utterance | str:
    """An Utterance with its canonical emotion (no duration yet), or the reason the file is skipped."""
    m = _TURN.fullmatch(path.stem)
    if m is None or path.suffix.lower() != ".wav":
        return "unrecognised file name"
    turn = turns.get(path.stem)
    if turn is None:
        return "no label: the turn is in no EmoEvaluation file"
    if turn.code not in LABEL_MAP:
        return f"unknown label: {turn.code!r}"
    dialog, session, gender = m.group(1), m.group(2), m.group(3)
    return Utterance(
        id=f"{NAME}/{path.stem}",
        path=str(path),
        corpus=NAME,
        speaker=f"{NAME}/Ses{session}{gender}",
        gender="female" if gender == "F" else "male",
        emotion=LABEL_MAP[turn.code],
        native_label=turn.code,
        sentence=(texts or {}).get(path.stem),
        fold=f"Session{int(session)}",
        language="English",
        valence=turn.valence,
        arousal=turn.arousal,
        dominance=turn.dominance,
        votes=turn.votes or None,
        meta=make_meta([("dialog", dialog), ("mode", _mode(dialog))]),
    )
