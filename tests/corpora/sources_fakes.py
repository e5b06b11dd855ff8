"""The synthetic ``manifest`` corpus rebuilt as each ecosystem source, with the real library that writes it:
a Hugging Face dataset (``save_to_disk``, audio as bytes), a lhotse manifest pair (two takes per recording, so
each utterance is a segment) and an audformat database. Each also holds one bad clip that a scan must skip.

Reuse: ``from tests.corpora.sources_fakes import SOURCES`` (name -> builder(table, out) -> ROOT spec).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

GAP_S = 0.25  # silence between the two takes of a lhotse recording


def manifest_rows(table: Path) -> list[dict[str, str]]:
    """The synthetic manifest's rows, ``path`` made absolute."""
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["path"] = str((table.parent / r["path"]).resolve())
    return rows


def make_hf(table: Path, out: Path) -> str:
    """A DatasetDict (fold A -> train, B -> test) with the audio as bytes, emotions as a ClassLabel of short
    codes (read through a label map), ``speaker_id`` and ``text``; one row's bytes are not audio."""
    from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value

    rows = manifest_rows(table)
    codes = sorted({r["emotion"][:3] for r in rows})
    features = Features(
        {
            "audio": {"bytes": Value("binary"), "path": Value("string")},
            "emotion": ClassLabel(names=codes),
            "speaker_id": Value("string"),
            "gender": Value("string"),
            "text": Value("string"),
        }
    )
    splits = {}
    for fold, split in (("A", "train"), ("B", "test")):
        part = [r for r in rows if r["fold"] == fold]
        audio = [{"bytes": Path(r["path"]).read_bytes(), "path": Path(r["path"]).name} for r in part]
        if split == "test":
            audio[0] = {"bytes": b"not audio at all" * 8, "path": "broken.wav"}
        data = {
            "audio": audio,
            "emotion": [codes.index(r["emotion"][:3]) for r in part],
            "speaker_id": [r["speaker"] for r in part],
            "gender": [r["gender"] for r in part],
            "text": [f"take of {r['speaker']}" for r in part],
        }
        # Audio(decode=False) by a cast of the stored struct: encoding through Audio would need torchcodec
        splits[split] = Dataset.from_dict(data, features=features).cast_column("audio", Audio(decode=False))
    DatasetDict(splits).save_to_disk(str(out))
    return f"hf:{out}"


def make_lhotse(table: Path, out: Path) -> str:
    """Recordings of two takes each (``GAP_S`` of silence between), one supervision per take with its offset,
    the emotion in ``custom``; gzipped JSONL. One recording's file is missing."""
    from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    rows = manifest_rows(table)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    recordings, supervisions = [], []
    by_speaker: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_speaker.setdefault(r["speaker"], []).append(r)
    for speaker, takes in sorted(by_speaker.items()):
        for k in range(0, len(takes) - 1, 2):
            pair = takes[k : k + 2]
            waves = [sf.read(p["path"], dtype="float32") for p in pair]
            sr = waves[0][1]
            gap = np.zeros(int(GAP_S * sr), dtype=np.float32)
            joined = np.concatenate([waves[0][0], gap, waves[1][0]])
            rec_id = f"{speaker}-{k // 2}"
            path = out / "audio" / f"{rec_id}.wav"
            sf.write(path, joined, sr, subtype="PCM_16")
            recordings.append(
                Recording(rec_id, [AudioSource("file", [0], f"audio/{path.name}")], sr, len(joined), len(joined) / sr)
            )
            start = 0.0
            for i, (take, (wave, _)) in enumerate(zip(pair, waves, strict=True)):
                supervisions.append(
                    SupervisionSegment(
                        f"{rec_id}-{i}", rec_id, start, len(wave) / sr, speaker=speaker, gender=take["gender"],
                        text=f"take of {speaker}", custom={"emotion": take["emotion"], "fold": take["fold"]},
                    )
                )
                start += (len(wave) + len(gap)) / sr
    gone = out / "audio" / "gone.wav"
    recordings.append(Recording("gone", [AudioSource("file", [0], str(gone))], 16_000, 16_000, 1.0))
    supervisions.append(SupervisionSegment("gone-0", "gone", 0.0, 1.0, speaker="s01", custom={"emotion": "sad"}))
    RecordingSet.from_recordings(recordings).to_file(out / "recordings.jsonl.gz")
    SupervisionSet.from_segments(supervisions).to_file(out / "supervisions.jsonl.gz")
    return f"lhotse:{out}"


def make_audformat(table: Path, out: Path) -> str:
    """A database with a ``files`` table (speaker, transcription) and an ``emotion`` table, the speaker scheme's
    labels holding gender and age, audio copied under ``wav/``; one file is silent."""
    import audformat

    rows = manifest_rows(table)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    files = []
    for r in rows:
        dest = out / "wav" / Path(r["path"]).name
        dest.write_bytes(Path(r["path"]).read_bytes())
        files.append(f"wav/{dest.name}")
    sf.write(out / "wav" / "silent.wav", np.zeros(8000, dtype=np.float32), 16_000)
    db = audformat.Database(name="synth", source="emoshift synth", usage="unrestricted")
    db.schemes["emotion"] = audformat.Scheme("str", labels=sorted({r["emotion"] for r in rows}))
    speakers = {r["speaker"]: {"gender": r["gender"], "age": int(r["age"])} for r in rows}
    db.schemes["speaker"] = audformat.Scheme("str", labels=speakers)
    db.schemes["transcription"] = audformat.Scheme("str")
    all_files = [*files, "wav/silent.wav"]
    db["files"] = audformat.Table(audformat.filewise_index(all_files))
    db["files"]["speaker"] = audformat.Column(scheme_id="speaker")
    db["files"]["speaker"].set([r["speaker"] for r in rows] + [rows[0]["speaker"]])
    db["files"]["transcription"] = audformat.Column(scheme_id="transcription")
    db["files"]["transcription"].set([f"take of {r['speaker']}" for r in rows] + [""])
    db["emotion"] = audformat.Table(audformat.filewise_index(all_files))
    db["emotion"]["emotion"] = audformat.Column(scheme_id="emotion")
    db["emotion"]["emotion"].set([r["emotion"] for r in rows] + [rows[0]["emotion"]])
    db.save(str(out))
    return f"audformat:{out}"


SOURCES: dict[str, Callable[[Path, Path], str]] = {"hf": make_hf, "lhotse": make_lhotse, "audformat": make_audformat}
# What each source needs besides the defaults (the HF dataset's short emotion codes).
LABEL_MAPS: dict[str, dict[str, str]] = {
    "hf": {"ang": "angry", "dis": "disgust", "fea": "fearful", "hap": "happy", "neu": "neutral", "sad": "sad"},
    "lhotse": {},
    "audformat": {},
}
