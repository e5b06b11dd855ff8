"""CREMA-D: where ROOT may point, the demographics join and its absence, levels, file-name checks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from emoshift.corpora import CorpusError, cremad

from .fakes import make_cremad, write_demographics, write_wav


def test_demographics_join(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D", actors=(1001, 1002, 1004))
    result = cremad.scan(fake.root)
    assert not result.warnings
    by_speaker = {u.speaker: u for u in result.utterances}
    assert sorted(by_speaker) == ["crema-d/1001", "crema-d/1002", "crema-d/1004"]
    m, f, h = by_speaker["crema-d/1001"], by_speaker["crema-d/1002"], by_speaker["crema-d/1004"]
    assert (m.gender, m.age, m.race, m.ethnicity) == ("male", 51, "Caucasian", "Not Hispanic")
    assert (f.gender, f.age) == ("female", 21)
    assert (h.gender, h.race, h.ethnicity) == ("female", "African American", "Hispanic")


@pytest.mark.parametrize(
    ("layout", "demographics"),
    [("corpus", "root"), ("corpus", "parent"), ("audiowav", "root")],
)
def test_root_and_demographics_places(tmp_path: Path, layout: str, demographics: str) -> None:
    """ROOT = corpus folder or AudioWAV itself; the CSV in ROOT, ROOT/.. or next to AudioWAV."""
    root = tmp_path / "data" / "CREMA-D"
    if layout == "audiowav":
        root = root / "AudioWAV"
    fake = make_cremad(root, layout=layout, demographics=demographics)
    result = cremad.scan(fake.root)
    assert not result.warnings
    assert len(result.utterances) == 28
    assert {u.gender for u in result.utterances} == {"male", "female"}


def test_missing_demographics_warns_and_leaves_gender_empty(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D", demographics=None)
    result = cremad.scan(fake.root)
    assert len(result.utterances) == 28
    assert {(u.gender, u.age, u.race, u.ethnicity) for u in result.utterances} == {(None, None, None, None)}
    (warning,) = result.warnings
    assert "VideoDemographics.csv not found" in warning and "gender" in warning


def test_actor_missing_from_demographics_is_reported(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D", actors=(1001, 1003))
    write_demographics(fake.root / "VideoDemographics.csv", [1001])  # 1003 has no row
    result = cremad.scan(fake.root)
    genders = {u.speaker: u.gender for u in result.utterances}
    assert genders == {"crema-d/1001": "male", "crema-d/1003": None}
    (warning,) = result.warnings
    assert "1 actors have no row" in warning and "1003" in warning


def test_demographics_without_the_columns(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D", demographics=None)
    (fake.root / "VideoDemographics.csv").write_text("id,sex\n1001,Male\n")
    result = cremad.scan(fake.root)
    assert {u.gender for u in result.utterances} == {None}
    (warning,) = result.warnings
    assert "lacks the columns" in warning


def test_ragged_demographics_rows(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D", demographics=None)
    (fake.root / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic,surplus\n1002,,Female\n,,,,\n"
    )
    result = cremad.scan(fake.root)
    people = {u.speaker: (u.gender, u.age, u.race) for u in result.utterances}
    assert people == {"crema-d/1001": ("male", 51, "Caucasian"), "crema-d/1002": ("female", None, None)}
    assert not result.warnings


def test_levels_sentences_and_labels(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D", actors=(1001,))
    utts = {u.id: u for u in cremad.scan(fake.root).utterances}
    assert Counter(u.intensity for u in utts.values()) == Counter(
        {"high": 6, "unspecified": 6, "low": 1, "medium": 1}
    )
    u = utts["crema-d/1001_IEO_NEU_LO"]
    assert (u.emotion, u.native_label, u.intensity, u.sentence) == ("neutral", "NEU", "low", "IEO")
    assert utts["crema-d/1001_DFA_FEA_XX"].emotion == "fearful"


def test_four_policy_leaves_out_disgust_and_fear(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D")
    result = cremad.scan(fake.root, labels="four")
    assert result.left_out == Counter({"disgust": 4, "fearful": 4})
    assert cremad.scan(fake.root, labels="six").left_out == Counter()


def test_audiowav_folder_name_is_case_insensitive(tmp_path: Path) -> None:
    write_wav(tmp_path / "crema" / "audiowav" / "1001_DFA_ANG_XX.wav", 16_000)
    result = cremad.scan(tmp_path / "crema")
    assert [u.id for u in result.utterances] == ["crema-d/1001_DFA_ANG_XX"]


def test_bad_codes_are_unrecognised(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D", actors=(1001,))
    audio_dir = fake.root / "AudioWAV"
    for name in ("1001_DFA_XXX_XX.wav", "1001_DFA_ANG_ZZ.wav", "1001_dfa_ang_xx.wav", "1001_DFA_ANG.wav"):
        write_wav(audio_dir / name, 16_000)
    result = cremad.scan(fake.root)
    assert result.skipped_by_reason() == Counter({"unrecognised file name": 4})
    assert len(result.utterances) == 14


def test_lfs_checkout_is_recognised_but_nothing_kept(tmp_path: Path) -> None:
    audio_dir = tmp_path / "CREMA-D" / "AudioWAV"
    audio_dir.mkdir(parents=True)
    for stem in ("1001_DFA_ANG_XX", "1001_DFA_SAD_XX"):
        (audio_dir / f"{stem}.wav").write_text(
            "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n"
        )
    result = cremad.scan(tmp_path / "CREMA-D")
    assert not result.utterances
    assert [s.reason for s in result.skipped] == ["git-LFS pointer: run git lfs pull"] * 2


def test_folder_without_clips(tmp_path: Path) -> None:
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "AudioWAV" / "readme.txt").write_text("hi")
    with pytest.raises(CorpusError, match=r"no clips named like 1001_DFA_ANG_XX\.wav"):
        cremad.scan(tmp_path)
