"""Training audio among test audio, by content (issue 24: a specialist's own RAVDESS training files, indexed
again as a manifest corpus, were scored as a corpus it never saw)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoshift.core import audio
from emoshift.core.rundir import RunDir
from emoshift.corpora import scan_source
from emoshift.corpora.base import Utterance
from emoshift.data import fingerprints as fp
from emoshift.data.splits import load_split


def _utt(uid: str, path: Path) -> Utterance:
    return Utterance(id=uid, path=str(path), corpus="x", speaker="x/1", gender=None, emotion="angry", native_label="a")


def test_a_copy_a_rename_and_a_lossless_reencoding_match_an_edit_does_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wave = (0.3 * rng.standard_normal(16_000)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, 16_000, subtype="PCM_16")
    shutil.copy(tmp_path / "a.wav", tmp_path / "renamed.wav")
    pcm, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    sf.write(tmp_path / "a.flac", pcm, 16_000, subtype="PCM_16")
    edited = pcm.copy()
    edited[100] += 1 / 32768
    sf.write(tmp_path / "edited.wav", edited, 16_000, subtype="PCM_16")
    names = ["a.wav", "renamed.wav", "a.flac", "edited.wav"]
    got = fp.fingerprints([_utt(n, tmp_path / n) for n in names], tmp_path / "cache")
    assert got["a.wav"] == got["renamed.wav"] == got["a.flac"] != got["edited.wav"]


def test_fingerprints_are_cached_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sf.write(tmp_path / "a.wav", np.full(800, 0.1, dtype=np.float32), 16_000, subtype="PCM_16")
    u = _utt("a", tmp_path / "a.wav")
    first = fp.fingerprints([u], tmp_path / "cache")
    calls = []
    real = audio.read

    def counting(*a: object, **k: object) -> tuple[np.ndarray, int]:
        calls.append(a)
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(audio, "read", counting)
    assert fp.fingerprints([u], tmp_path / "cache") == first and calls == []
    sf.write(tmp_path / "a.wav", np.full(800, 0.2, dtype=np.float32), 16_000, subtype="PCM_16")
    assert fp.fingerprints([u], tmp_path / "cache") != first and len(calls) == 1


def test_training_audio_under_another_name_and_path_is_scored_leaky(
    cnn_run: Path, synth_tiny: Path, tmp_path: Path
) -> None:
    """The run's own RAVDESS files, copied elsewhere and listed in a table of another name beside audio it never
    heard, are counted and the score is flagged leaky; the same table without them is not."""
    from emoshift.evaluation.evaluate import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    assert RunDir.of(run).training_audio.is_file()
    parts = load_split(RunDir.of(run).split("ravdess")).assignment
    rav = scan_source("ravdess", str(synth_tiny / "ravdess"), "six").utterances
    cre = scan_source("crema-d", str(synth_tiny / "crema-d"), "six").utterances[:24]
    copies = tmp_path / "clips"
    copies.mkdir()
    rows, seen = ["path,emotion,speaker"], 0
    for i, u in enumerate([*rav[::3], *cre]):
        shutil.copy(u.path, copies / f"clip{i:03d}.wav")
        rows.append(f"clips/clip{i:03d}.wav,{u.emotion},s{i % 6}")
        seen += parts.get(u.id) in ("train", "val")
    assert seen > 0
    table = tmp_path / "mine.csv"
    table.write_text("\n".join(rows) + "\n")
    metrics = evaluate_run(run, {"mine": str(table)}, progress=False)["mine"]
    assert metrics["leaky"] is True and metrics["training_audio"] == seen
    saved = json.loads(RunDir.of(run).metrics("mine").read_text())
    assert saved["leaky"] is True and saved["training_audio"] == seen

    unseen = tmp_path / "unseen.csv"
    unseen.write_text("\n".join([rows[0], *rows[1 + len(rav[::3]) :]]) + "\n")
    clean = evaluate_run(run, {"unseen": str(unseen)}, progress=False)["unseen"]
    assert clean["leaky"] is False and clean["training_audio"] == 0
