"""The optional synthetic corpora: IEMOCAP and a manifest table scan cleanly with the real loaders, and asking
for them changes nothing of RAVDESS and CREMA-D."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from emoshift.corpora import scan_source
from emoshift.synth import SynthError, plan


def test_synthetic_iemocap_scans_cleanly(synth_more: Path) -> None:
    root = synth_more / "iemocap"
    four = scan_source("iemocap", root, "four")
    assert four.skipped == [] and four.warnings == []
    assert len(four.speakers) == 10
    assert {s.split("/")[1] for s in four.speakers} == {f"Ses0{n}{g}" for n in range(1, 6) for g in "FM"}
    # 9 four-class turns per actor: 2 neutral, 2 angry, 2 sad, 1 happy + 2 excited (merged into happy)
    assert Counter(u.emotion for u in four.utterances) == {"neutral": 20, "angry": 20, "sad": 20, "happy": 30}
    assert four.excluded == {"xxx (no majority)": 10, "oth (other)": 10}
    assert four.left_out == {"frustrated": 10}
    assert {u.fold for u in four.utterances} == {f"Session{n}" for n in range(1, 6)}
    assert Counter(u.get_meta("mode") for u in four.utterances) == {"improvised": 50, "scripted": 40}
    assert all(1.0 <= (u.valence or 0) <= 5.0 and u.arousal and u.dominance for u in four.utterances)
    native = scan_source("iemocap", root, "native")
    assert Counter(u.native_label for u in native.utterances)["exc"] == 20
    for u in four.utterances:  # the speaker is the gender letter before the turn number
        assert u.speaker.endswith(u.id.rsplit("_", 1)[1][0])
        assert u.gender == ("female" if u.speaker.endswith("F") else "male")
    label = next((root / "Session1" / "dialog" / "EmoEvaluation").glob("Ses01F_impro01.txt")).read_text()
    assert label.startswith("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]")


def test_synthetic_manifest_scans_cleanly(synth_more: Path) -> None:
    table = synth_more / "manifest" / "manifest.csv"
    with open(table, newline="") as f:
        header = next(csv.reader(f))
    assert header[:4] == ["path", "emotion", "speaker", "gender"] and "fold" in header and "accent" in header
    sc = scan_source("mine", table, "six")
    assert sc.skipped == [] and sc.warnings == [] and not sc.leaky
    assert len(sc.utterances) == 96 and len(sc.speakers) == 8
    assert Counter(u.emotion for u in sc.utterances) == dict.fromkeys(
        ["angry", "disgust", "fearful", "happy", "neutral", "sad"], 16
    )
    assert all(u.corpus == "mine" and u.speaker.startswith("mine/") for u in sc.utterances)
    assert {u.get_meta("accent") for u in sc.utterances} == {
        "scottish", "irish", "general american", "indian english"
    }
    folds: dict[str, set[str]] = {}
    for u in sc.utterances:
        folds.setdefault(str(u.fold), set()).add(u.speaker)
    assert set(folds) == {"A", "B"} and not folds["A"] & folds["B"]  # speaker-disjoint folds


def test_new_corpora_leave_ravdess_and_cremad_unchanged(tmp_path: Path) -> None:
    default, demo = plan(tmp_path, scale="tiny", seed=0)
    every, demo_all = plan(tmp_path, scale="tiny", seed=0, corpora=("manifest", "iemocap", "crema-d", "ravdess"))
    assert [j for j in every if j.corpus in ("ravdess", "crema-d")] == default
    assert demo_all == demo
    assert Counter(j.corpus for j in every) == {"ravdess": 128, "crema-d": 96, "iemocap": 120, "manifest": 96}
    with pytest.raises(SynthError, match="unknown synthetic corpus 'msp'"):
        plan(tmp_path, corpora=("msp",))
