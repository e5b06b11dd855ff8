"""A synthetic corpus of "your own": audio in any folder layout, described by a CSV table (``manifest.csv``).

What :mod:`emoshift.corpora.table` reads (``--corpus mine=OUT/manifest/manifest.csv``)::

    manifest/manifest.csv          path,emotion,speaker,gender,age,fold,accent,device,sentence,arousal,valence,dominance
    manifest/audio/s03/s03_angry_1.wav

``manifest_speakers`` speakers (genders alternating, ages 19-70, one of four accents, two devices), each with
``manifest_per_speaker`` takes spread evenly over the six shared emotions (written as emoshift's names), on a
telephone-band channel per speaker (its own sentences) (16 kHz files, 300-3400 Hz, noisy line), the ``phone``
speakers' line also G.711 coded (8 kHz mu-law): the most distant domain of the synthetic set. ``fold`` puts each speaker in ``A`` or ``B`` (predefined, speaker-disjoint folds); ``accent``
and ``device`` are extra columns, kept as metadata (``--by accent``). ``arousal``, ``valence`` and
``dominance`` (1-5: declare ``data.manifest.scale: [1, 5]`` for a dimensional run) are three simulated raters'
mean rating of the prosody each take was rendered with (:mod:`emoshift.synth.annotate`). Paths are relative
to the table.
``tiny``: 8 speakers x 12 = 96 files; ``small``: 16 x 24 = 384; ``full``: 40 x 48 = 1,920.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from emoshift.core.io import atomic_write_text
from emoshift.corpora.base import SIX as SIX_EMOTIONS
from emoshift.synth.annotate import annotate
from emoshift.synth.channel import phone_channel
from emoshift.synth.job import FileJob, Scale
from emoshift.synth.speaker import make_speaker, seeded_rng
from emoshift.synth.voice import Sentence

NAME = "manifest"
TABLE = "manifest.csv"
COLUMNS: tuple[str, ...] = (
    "path", "emotion", "speaker", "gender", "age", "fold", "accent", "device", "sentence", "arousal", "valence",
    "dominance",
)
ACCENTS: tuple[str, ...] = ("scottish", "irish", "general american", "indian english")
DEVICES: tuple[str, ...] = ("headset", "phone")
SENTENCES: tuple[Sentence, ...] = (
    Sentence("M01", "Please hold the line for a moment", "S S s S s s Ss"),
    Sentence("M02", "Your order has been sent today", "s Ss s s S sS"),
    Sentence("M03", "Can you call me back tomorrow", "s s S s S sSs"),
    Sentence("M04", "The meeting is moved to Friday", "s Ss s S s Ss"),
)


def plan_manifest(scale: Scale, seed: int, root: Path) -> list[FileJob]:
    """Every speaker's takes, emotions in turn, sentences drawn from the CREMA-D set."""
    jobs: list[FileJob] = []
    per_emotion = max(1, scale.manifest_per_speaker // len(SIX_EMOTIONS))
    for k in range(1, scale.manifest_speakers + 1):
        spk = f"s{k:02d}"
        gender = "female" if k % 2 else "male"
        rng = seeded_rng(seed, NAME, "speaker", spk)
        age = int(rng.integers(19, 71))
        speaker = make_speaker(rng, speaker_id=f"{NAME}/{spk}", gender=gender, age=age, expressiveness=(0.6, 0.9))
        device = DEVICES[k % len(DEVICES)]  # a phone's line is also G.711 coded; a headset's is not
        channel = phone_channel(seeded_rng(seed, NAME, "channel", spk), codec="g711" if device == "phone" else None)
        meta = (
            ("speaker", spk),
            ("gender", gender),
            ("age", str(age)),
            ("fold", "A" if k % 4 in (1, 2) else "B"),
            ("accent", ACCENTS[(k - 1) // 2 % len(ACCENTS)]),
            ("device", device),
        )
        pick = seeded_rng(seed, NAME, "plan", spk)
        for emotion in SIX_EMOTIONS:
            for take in range(1, per_emotion + 1):
                name = f"{spk}_{emotion}_{take}.wav"
                jobs.append(
                    FileJob(
                        corpus=NAME,
                        path=str(root / "audio" / spk / name),
                        speaker=speaker,
                        channel=channel,
                        sentence=SENTENCES[int(pick.integers(len(SENTENCES)))],
                        emotion=emotion,
                        strength=float(pick.uniform(0.7, 1.2)),
                        pad_s=scale.cremad_pad_s,
                        max_syllables=scale.max_syllables,
                        seed=seed,
                        extra=meta,
                    )
                )
    return jobs


def write_table(root: Path, jobs: Sequence[FileJob]) -> Path:
    """``root/manifest.csv``: one row per planned file, paths relative to the table."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for j in jobs:
        row = dict(j.extra)
        ann = annotate(j)
        ratings = {"arousal": ann.arousal, "valence": ann.valence, "dominance": ann.dominance}
        row.update((k, f"{x:.4f}") for k, x in ratings.items())
        writer.writerow({**row, "path": Path(j.path).relative_to(root).as_posix(), "emotion": j.emotion,
                         "sentence": j.sentence.text})
    path = root / TABLE
    atomic_write_text(path, buf.getvalue())
    return path
