"""RAVDESS: layouts, the Kaggle duplicate, song opt-in, file-name fields and policies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from emoshift.corpora import CorpusError, ravdess

from .fakes import make_ravdess, write_wav


@pytest.mark.parametrize("layout", ["root", "wrapped", "kaggle"])
def test_layouts_give_the_same_utterances(tmp_path: Path, layout: str) -> None:
    fake = make_ravdess(tmp_path / "r", layout=layout)
    result = ravdess.scan(fake.root, labels="native")
    assert {u.id for u in result.utterances} == set(fake.good)
    assert len(result.utterances) == 30
    assert not result.skipped


def test_kaggle_mirror_is_deduplicated_by_file_name(tmp_path: Path) -> None:
    fake = make_ravdess(tmp_path / "r", layout="kaggle")
    result = ravdess.scan(fake.root, labels="native")
    assert len(result.utterances) == len(fake.good) == 30  # not 60
    assert len({u.id for u in result.utterances}) == 30
    assert len(result.warnings) == 1 and "30 files appear twice" in result.warnings[0]
    # the shallower copy (Actor_XX/ at ROOT) is the one kept
    assert all(Path(u.path).parent.parent == fake.root.resolve() for u in result.utterances)


def test_actor_folders_match_case_insensitively(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write_wav(root / "AUDIO_SPEECH_ACTORS_01-24" / "actor_03" / "03-01-05-02-01-02-03.wav", 48_000)
    (utt,) = ravdess.scan(root).utterances
    assert utt.speaker == "ravdess/03"


def test_song_only_when_asked(tmp_path: Path) -> None:
    fake = make_ravdess(tmp_path / "r", song=True)
    speech = ravdess.scan(fake.root, labels="native")
    assert all(u.id.split("/")[1].startswith("03-01-") for u in speech.utterances)
    assert speech.skipped_by_reason() == Counter({"song": 12})

    both = ravdess.scan(fake.root, labels="native", include_song=True)
    song = [u for u in both.utterances if u.id.split("/")[1].startswith("03-02-")]
    assert len(song) == 12 and len(both.utterances) == 30 + 12
    assert not both.skipped
    assert {u.speaker for u in song} == {"ravdess/01", "ravdess/02"}


def test_fields_from_the_file_name(tmp_path: Path) -> None:
    fake = make_ravdess(tmp_path / "r", actors=(7, 12))
    utts = {u.id: u for u in ravdess.scan(fake.root, labels="native").utterances}
    angry = utts["ravdess/03-01-05-02-01-01-07"]
    assert angry.speaker == "ravdess/07" and angry.gender == "male"
    assert angry.emotion == "angry" and angry.native_label == "05"
    assert angry.intensity == "strong"
    assert angry.sentence == "Kids are talking by the door"
    assert (angry.age, angry.race, angry.ethnicity) == (None, None, None)
    calm = utts["ravdess/03-01-02-01-01-01-12"]
    assert (calm.gender, calm.emotion, calm.intensity) == ("female", "calm", "normal")


def test_bad_names_and_other_modalities_are_skipped(tmp_path: Path) -> None:
    fake = make_ravdess(tmp_path / "r", actors=(1,))
    actor = fake.root / "Actor_01"
    for name in (
        "01-01-05-01-01-01-01.wav",  # audio-video modality
        "03-01-09-01-01-01-01.wav",  # emotion 09 does not exist
        "03-01-05-01-01-01-25.wav",  # actor 25 does not exist
        "03-01-05-01-01-01.wav",  # a field missing
        "03-01-05-01-01-01-01 (copy).wav",
    ):
        write_wav(actor / name, 48_000)
    result = ravdess.scan(fake.root, labels="native")
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons.pop("01-01-05-01-01-01-01.wav") == "not audio-only: modality 01 (audio-video)"
    assert set(reasons.values()) == {"unrecognised file name"} and len(reasons) == 4
    assert len(result.utterances) == 15


def test_policy_counts(tmp_path: Path) -> None:
    fake = make_ravdess(tmp_path / "r")  # 2 actors x (neutral + 7 emotions x 2 intensities)
    six = ravdess.scan(fake.root)
    assert six.left_out == Counter({"calm": 4, "surprised": 4})
    assert six.label_set == ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    assert len(six.utterances) == 22

    calm = ravdess.scan(fake.root, labels="calm-as-neutral")
    assert calm.left_out == Counter({"surprised": 4})
    neutral = [u for u in calm.utterances if u.emotion == "neutral"]
    assert Counter(u.native_label for u in neutral) == Counter({"01": 2, "02": 4})

    four = ravdess.scan(fake.root, labels="four")
    assert four.left_out == Counter({"calm": 4, "surprised": 4, "disgust": 4, "fearful": 4})
    assert four.label_set == ["angry", "happy", "neutral", "sad"]


def test_root_without_actor_folders(tmp_path: Path) -> None:
    write_wav(tmp_path / "03-01-05-01-01-01-01.wav", 48_000)  # loose file, no Actor_XX folder
    with pytest.raises(CorpusError, match=r"no Actor_01 \.\.\. Actor_24 folders"):
        ravdess.scan(tmp_path)
    with pytest.raises(CorpusError, match="is not a folder"):
        ravdess.scan(tmp_path / "03-01-05-01-01-01-01.wav")
