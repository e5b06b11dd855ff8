"""Manifest CSV: round trip, atomic write, relative paths, clear errors."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from emoshift.corpora import UTTERANCE_FIELDS, Utterance, get_corpus
from emoshift.corpora.base import OPTIONAL_FIELDS
from emoshift.corpora.manifest import ManifestError, read_manifest, write_manifest

from .fakes import BUILDERS


def test_round_trip_for_every_corpus(corpus_name: str, tmp_path: Path) -> None:
    fake = BUILDERS[corpus_name](tmp_path / corpus_name)
    utterances = get_corpus(corpus_name).scan(fake.root, labels="native").utterances
    out = write_manifest(tmp_path / "out" / "manifest.csv", utterances)
    assert read_manifest(out) == utterances
    with open(out, newline="") as f:
        header = tuple(next(csv.reader(f)))
    assert header[: len(UTTERANCE_FIELDS)] == UTTERANCE_FIELDS
    present = {f for u in utterances for f in OPTIONAL_FIELDS if getattr(u, f) is not None}
    present |= {k for u in utterances for k, _ in u.meta}
    assert set(header[len(UTTERANCE_FIELDS) :]) == present, "optional columns only when some utterance has them"
    assert [p.name for p in out.parent.iterdir()] == ["manifest.csv"], "no temp file may be left behind"


def test_overwrite_is_atomic_and_complete(tmp_path: Path) -> None:
    fake = BUILDERS["crema-d"](tmp_path / "c")
    utterances = get_corpus("crema-d").scan(fake.root).utterances
    out = tmp_path / "out" / "m.csv"
    write_manifest(out, utterances)

    def crash_after_rows(n: int) -> Iterator[Utterance]:  # rows reach the file, then the writer fails
        yield from utterances[:n]
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError, match="crash mid-write"):
        write_manifest(out, crash_after_rows(len(utterances) - 1))
    assert read_manifest(out) == utterances  # the old manifest, whole
    assert [p.name for p in out.parent.iterdir()] == ["m.csv"], "no temp file may be left behind"

    write_manifest(out, utterances[:3])
    assert read_manifest(out) == utterances[:3]  # complete: exactly the new rows, nothing of the old file


def test_relative_paths_are_read_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        ",".join(UTTERANCE_FIELDS) + "\n" + "x/a,audio/a.wav,x,x/1,,angry,A,,,30,,,1.5\n"
    )
    (u,) = read_manifest(tmp_path / "m.csv")
    assert u.path == str((tmp_path / "audio" / "a.wav").resolve())
    assert (u.gender, u.age, u.duration_s, u.race) == (None, 30, 1.5, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,path\nx/a,/a.wav\n", "missing columns corpus, speaker, gender, emotion, native_label"),
        (",".join(UTTERANCE_FIELDS) + "\nx/a,/a.wav,x,x/1,,,A,,,,,,\n", ":2: empty emotion"),
        (",".join(UTTERANCE_FIELDS) + "\nx/a,/a.wav,x,x/1,,angry,A,,,old,,,\n", ":2: age must be a number"),
        (",".join(UTTERANCE_FIELDS) + ",meta\nx/a,/a.wav,x,x/1,,angry,A,,,,,,,m\n", "meta key 'meta' is an Utterance"),
    ],
)
def test_bad_manifests(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ManifestError, match=message):
        read_manifest(tmp_path / "m.csv")


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest"):
        read_manifest(tmp_path / "none.csv")
