"""EmoDB, TESS and SAVEE: their label maps, speakers and layouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from emoshift.corpora import emodb, savee, tess

from .fakes import make_emodb, make_savee, make_tess, write_wav


# ------------------------------------------------------------------------------------------------ EmoDB
@pytest.mark.parametrize("layout", ["corpus", "wav"])
def test_emodb_layouts_and_speakers(tmp_path: Path, layout: str) -> None:
    fake = make_emodb(tmp_path / "emodb" / ("wav" if layout == "wav" else ""), layout=layout)
    result = emodb.scan(fake.root, labels="native")
    assert len(result.utterances) == 28
    by_speaker = {u.speaker: u for u in result.utterances}
    m, f = by_speaker["emodb/03"], by_speaker["emodb/08"]
    assert (m.gender, m.age, f.gender, f.age) == ("male", 31, "female", 34)
    u = {u.id: u for u in result.utterances}["emodb/08a02Wa"]
    assert (u.emotion, u.native_label, u.sentence, u.intensity) == ("angry", "W", "a02", None)


def test_emodb_boredom_is_left_out_by_six_and_four(tmp_path: Path) -> None:
    fake = make_emodb(tmp_path / "emodb")
    native = emodb.scan(fake.root, labels="native")
    assert Counter(u.emotion for u in native.utterances)["boredom"] == 4
    six = emodb.scan(fake.root)
    assert six.left_out == Counter({"boredom": 4})
    assert "boredom" not in six.label_set and len(six.utterances) == 24
    four = emodb.scan(fake.root, labels="four")
    assert four.left_out == Counter({"boredom": 4, "disgust": 4, "fearful": 4})


def test_emodb_unknown_speaker_or_letter(tmp_path: Path) -> None:
    fake = make_emodb(tmp_path / "emodb")
    write_wav(fake.root / "wav" / "04a01Wa.wav", 16_000)  # speaker 04 is not in EmoDB
    write_wav(fake.root / "wav" / "03a01Xa.wav", 16_000)  # no emotion X
    result = emodb.scan(fake.root)
    assert result.skipped_by_reason() == Counter({"unrecognised file name": 2})


# ------------------------------------------------------------------------------------------------ TESS
def test_tess_labels_and_speakers(tmp_path: Path) -> None:
    fake = make_tess(tmp_path / "tess")
    result = tess.scan(fake.root, labels="native")
    utts = {u.id: u for u in result.utterances}
    assert len(utts) == 29
    ps = utts["tess/YAF_bar_ps"]
    assert (ps.emotion, ps.native_label, ps.sentence) == ("surprised", "ps", "bar")
    assert (ps.speaker, ps.gender, ps.age) == ("tess/YAF", "female", 26)
    assert utts["tess/OAF_back_fear"].emotion == "fearful"
    misnamed = utts["tess/OA_bite_neutral"]
    assert (misnamed.speaker, misnamed.age) == ("tess/OAF", 64)
    assert result.speakers == ["tess/OAF", "tess/YAF"]
    assert tess.scan(fake.root).left_out == Counter({"surprised": 4})


def test_tess_nested_kaggle_copy_is_deduplicated(tmp_path: Path) -> None:
    root = tmp_path / "tess"
    make_tess(root)
    make_tess(root / "TESS Toronto emotional speech set data" / "TESS Toronto emotional speech set data")
    result = tess.scan(root, labels="native")
    assert len(result.utterances) == 29
    assert len(result.warnings) == 1 and "29 files appear twice" in result.warnings[0]


# ------------------------------------------------------------------------------------------------ SAVEE
@pytest.mark.parametrize("layout", ["audiodata", "flat"])
def test_savee_layouts(tmp_path: Path, layout: str) -> None:
    fake = make_savee(tmp_path / "savee", layout=layout)
    result = savee.scan(fake.root, labels="native")
    assert {u.id for u in result.utterances} == set(fake.good)
    assert len(result.utterances) == 28
    u = {u.id: u for u in result.utterances}["savee/JE_su02"]
    assert (u.speaker, u.gender, u.emotion, u.native_label) == ("savee/JE", "male", "surprised", "su")
    assert savee.scan(fake.root).left_out == Counter({"surprised": 4})


def test_savee_both_layouts_at_once_keep_one_copy(tmp_path: Path) -> None:
    root = tmp_path / "savee"
    make_savee(root, layout="audiodata")
    make_savee(root, layout="flat")
    result = savee.scan(root, labels="native")
    assert len(result.utterances) == 28
    assert "28 files appear twice" in result.warnings[0]


def test_savee_root_can_be_audiodata(tmp_path: Path) -> None:
    fake = make_savee(tmp_path / "savee")
    assert len(savee.scan(fake.root / "AudioData", labels="native").utterances) == 28
