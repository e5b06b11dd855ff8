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


def test_the_corpora_differ_in_channel_codec_room_and_level(tmp_path: Path) -> None:
    """The leave-one-corpus-out benchmark needs recording conditions that differ: a dry full-band studio, a
    band-limited field session with a room, a reverberant stage, a telephone line (G.711 for the phone speakers)."""
    jobs, _ = plan(tmp_path, scale="tiny", seed=0, corpora=("ravdess", "crema-d", "iemocap", "manifest"))
    by = {c: [j.channel for j in jobs if j.corpus == c] for c in ("ravdess", "crema-d", "iemocap", "manifest")}
    assert {ch.lowpass_hz for ch in by["ravdess"]} == {None} and {ch.reverb_rt60 for ch in by["ravdess"]} == {0.0}
    assert all(ch.lowpass_hz is not None and ch.lowpass_hz <= 7000 for ch in by["crema-d"])
    assert min(ch.reverb_rt60 for ch in by["iemocap"]) >= 0.3 > max(ch.reverb_rt60 for ch in by["crema-d"]) - 0.1
    assert all(ch.lowpass_hz is not None and ch.lowpass_hz <= 3600 for ch in by["manifest"])
    coded = {j.extra[5][1]: j.channel.codec for j in jobs if j.corpus == "manifest"}  # device -> codec
    assert coded == {"phone": "g711", "headset": None}
    assert {ch.codec for c in ("ravdess", "crema-d", "iemocap") for ch in by[c]} == {None}
    gains = {c: [ch.gain_db for ch in chs] for c, chs in by.items()}
    assert max(gains["ravdess"]) - min(gains["ravdess"]) < 3.0 < max(gains["crema-d"]) - min(gains["crema-d"])


def test_g711_line_quantises_to_mu_law_code_words() -> None:
    """The G.711 line keeps the length, leaves nothing above 4 kHz, and keeps a quiet tone (mu-law's steps are
    finest near zero: a linear 8-bit code would round it away)."""
    import numpy as np

    from emoshift.synth.channel import telephone_line

    sr = 16_000
    t = np.arange(sr) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t)
    y = telephone_line(x, sr)
    assert y.shape == x.shape and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y))
    assert spectrum[6000] < 0.01 * spectrum[440]  # 6 kHz gone, 440 Hz kept
    assert spectrum[440] > 0.5 * np.abs(np.fft.rfft(0.3 * np.sin(2 * np.pi * 440 * t)))[440]
    quiet = np.abs(np.fft.rfft(telephone_line(0.001 * np.sin(2 * np.pi * 440 * t), sr))) ** 2
    assert quiet[438:443].sum() > 0.95 * quiet.sum()  # a linear 8-bit code (steps of 1/127) leaves silence


def test_a_corpus_stays_current_until_its_own_bytes_change() -> None:
    """Version 5 changed the manifest's bytes only: folders of RAVDESS, CREMA-D and IEMOCAP written by version 4
    are still current (the default `emoshift synth` output is not rebuilt or refused), a version-4 manifest is not."""
    from emoshift.synth.generate import SYNTH_VERSION, current

    assert SYNTH_VERSION == 5
    assert all(current(c, 4) and current(c, 5) for c in ("ravdess", "crema-d", "iemocap"))
    assert not current("manifest", 4) and current("manifest", 5)
    assert not current("ravdess", 3) and not current("ravdess", SYNTH_VERSION + 1)
