"""A synthetic IEMOCAP look-alike: sessions of two actors in improvised and scripted dialogs.

The layout is the real one (what :mod:`emoshift.corpora.iemocap` reads)::

    iemocap/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt   (``[start - end]<TAB>utt<TAB>emo<TAB>[V, A, D]``)
    iemocap/Session1/dialog/transcriptions/Ses01F_impro01.txt  (``utt [start-end]: text``, the turn's sentence)
    iemocap/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav

Per session one female and one male actor (``Ses01F``, ``Ses01M``); each session has ``iemocap_dialogs``
dialogs, improvised and scripted in turn, and each actor speaks ``iemocap_turns`` turns per dialog (16 kHz, a
motion-capture stage: some room, low noise). The categories follow one 12-turn cycle (neu ang sad hap exc fru
neu ang sad exc xxx oth), so at ``tiny`` (5 sessions, 2 dialogs, 6 turns) every actor has 2 neutral, 2 angry,
2 sad, 1 happy and 2 excited turns (3 "happy" under the four-class policy: 9 per actor), one frustrated turn (left out by
``four`` and ``six``), and one ``xxx`` and one ``oth`` turn (excluded by the loader and counted): 120 files,
90 usable four-class turns, 10 speakers. ``small``: 5 sessions x 4 dialogs x 12 turns (480 files); ``full``:
5 sessions x 8 dialogs x 24 turns (1,920 files, a fifth of the real 10,039). There is no fear or disgust, as
good as in the real corpus (40 and 2 turns), so a six-class policy keeps only the four classes here too.

Excited turns are happy ones acted more strongly; frustrated is a mild anger; ``xxx`` turns are ambiguous
(a weak, random one of the four); ``oth`` is a mild surprise. V/A/D (1-5) are the mean of three simulated
raters of the prosody each turn was rendered with (:mod:`emoshift.synth.annotate`), not of its category.
The EmoEvaluation files are written after the audio, with the turns' real durations as their times.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from emoshift.core.io import atomic_write_text
from emoshift.synth.annotate import annotate
from emoshift.synth.channel import lab_channel
from emoshift.synth.job import FileJob, Scale
from emoshift.synth.speaker import make_speaker, seeded_rng
from emoshift.synth.voice import Sentence

NAME = "iemocap"
CYCLE: tuple[str, ...] = ("neu", "ang", "sad", "hap", "exc", "fru", "neu", "ang", "sad", "exc", "xxx", "oth")
# category -> (emotion rendered, strength); xxx draws one of the four at random (see _render_as)
RENDER: dict[str, tuple[str, float]] = {
    "neu": ("neutral", 1.0),
    "hap": ("happy", 0.8),
    "exc": ("happy", 1.3),
    "sad": ("sad", 0.9),
    "ang": ("angry", 0.9),
    "fru": ("angry", 0.5),
    "oth": ("surprised", 0.6),
}
HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
SENTENCES: tuple[Sentence, ...] = (
    Sentence("I01", "I told you I would be there", "s Ss s s s S"),
    Sentence("I02", "What do you want me to say", "S s s S s s S"),
    Sentence("I03", "We can figure it out together", "s s Ss s s sSs"),
    Sentence("I04", "That is not what I meant at all", "S s S S s S s S"),
    Sentence("I05", "Are you going to the party tonight", "s s Ss s s Ss sS"),
    Sentence("I06", "I really cannot believe this", "s Ss Ss sS s"),
)


def _dialogs(session: int, n: int) -> list[tuple[str, str]]:
    """(dialog name, mode) of one session: improvised and scripted in turn, named as the corpus names them."""
    out = []
    for k in range(n):
        lead = "F" if k % 2 == 0 else "M"  # the actor who wore the markers
        number = k // 2 + 1
        if k % 2 == 0:
            out.append((f"Ses{session:02d}{lead}_impro{number:02d}", "improvised"))
        else:
            out.append((f"Ses{session:02d}{lead}_script{number:02d}_1", "scripted"))
    return out


def _render_as(code: str, rng: np.random.Generator) -> tuple[str, float]:
    if code == "xxx":  # no majority: a weak take of any of the four
        return ("neutral", "angry", "sad", "happy")[int(rng.integers(4))], 0.4
    return RENDER[code]


def plan_iemocap(scale: Scale, seed: int, root: Path) -> list[FileJob]:
    """The turns of every session, dialog by dialog, the two actors alternating."""
    jobs: list[FileJob] = []
    turns = scale.iemocap_turns
    for s in range(1, scale.iemocap_sessions + 1):
        actors = {
            g: make_speaker(
                seeded_rng(seed, NAME, "speaker", f"{s}{g}"),
                speaker_id=f"{NAME}/Ses{s:02d}{g}",
                gender="female" if g == "F" else "male",
                expressiveness=(0.6, 0.85),  # conversation, not acted portrayals
            )
            for g in "FM"
        }
        channel = lab_channel(seeded_rng(seed, NAME, "channel", str(s)))
        for k, (dialog, _mode) in enumerate(_dialogs(s, scale.iemocap_dialogs)):
            count = dict.fromkeys("FM", 0)
            for t in range(2 * turns):
                g = "FM"[t % 2]
                code = CYCLE[(k * turns + count[g]) % len(CYCLE)]
                utt = f"{dialog}_{g}{count[g]:03d}"
                count[g] += 1
                rng = seeded_rng(seed, NAME, "plan", utt)
                emotion, strength = _render_as(code, rng)
                jobs.append(
                    FileJob(
                        corpus=NAME,
                        path=str(root / f"Session{s}" / "sentences" / "wav" / dialog / f"{utt}.wav"),
                        speaker=actors[g],
                        channel=channel,
                        sentence=SENTENCES[int(rng.integers(len(SENTENCES)))],
                        emotion=emotion,
                        strength=strength,
                        pad_s=scale.cremad_pad_s,
                        max_syllables=scale.max_syllables,
                        seed=seed,
                        extra=(("code", code),),
                    )
                )
    return jobs


def write_labels(jobs: Sequence[FileJob], durations: Mapping[str, float]) -> list[Path]:
    """``SessionN/dialog/EmoEvaluation/<dialog>.txt`` for the planned turns, timed by their durations, and the
    turns' texts in ``SessionN/dialog/transcriptions/<dialog>.txt`` (``<utt> [start-end]: text``)."""
    by_dialog: dict[Path, list[str]] = {}
    said: dict[Path, list[str]] = {}
    clock: dict[Path, float] = {}
    for j in jobs:
        wav = Path(j.path)
        dialog = wav.parent.name
        session = wav.parents[3]
        path = session / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        extra = dict(j.extra)
        start = clock.get(path, 0.5)
        end = start + float(durations[j.path])
        clock[path] = end + 0.4 + 0.3 * (len(by_dialog.get(path, [])) % 3)
        v, a, d = annotate(j).vad()
        by_dialog.setdefault(path, []).append(
            f"[{start:.4f} - {end:.4f}]\t{wav.stem}\t{extra['code']}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n"
            f"C-E1:\t{_word(extra['code'])};\t()\nC-E2:\t{_word(extra['code'])};\t()\n"
            f"A-E1:\tval {round(v)}; act {round(a)}; dom  {round(d)};\t()\n\n"
        )
        said.setdefault(session / "dialog" / "transcriptions" / f"{dialog}.txt", []).append(
            f"{wav.stem} [{start:08.4f}-{end:08.4f}]: {j.sentence.text}.\n"
        )
    for path, blocks in by_dialog.items():
        atomic_write_text(path, HEADER + "".join(blocks))
    for path, lines in said.items():
        atomic_write_text(path, "".join(lines))
    return sorted(by_dialog)


def _word(code: str) -> str:
    return {
        "neu": "Neutral state",
        "hap": "Happiness",
        "exc": "Excited",
        "sad": "Sadness",
        "ang": "Anger",
        "fru": "Frustration",
        "xxx": "Other",
        "oth": "Other",
    }[code]


def label_files(root: Path) -> list[Path]:
    """The EmoEvaluation files under ``root`` (what :func:`write_labels` writes), for clean-up."""
    if not root.is_dir():
        return []
    found = [*root.glob("Session*/dialog/EmoEvaluation/*.txt"), *root.glob("Session*/dialog/transcriptions/*.txt")]
    return sorted(p for p in found if os.path.isfile(p))
