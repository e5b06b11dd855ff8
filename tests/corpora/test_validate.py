"""base.validate: the invariants every scan must hold before it reaches the caller."""

from __future__ import annotations

import pytest

from emoshift.corpora import Scan, ScanValidationError, Utterance, validate


def utt(uid: str, *, speaker: str = "x/1", gender: str | None = "male", emotion: str = "angry") -> Utterance:
    return Utterance(
        id=uid,
        path=f"/data/{uid}.wav",
        corpus="x",
        speaker=speaker,
        gender=gender,
        emotion=emotion,
        native_label="A",
    )


def test_valid_scan_is_sorted_by_id() -> None:
    scan = Scan(corpus="x", root="/data", labels="six", utterances=[utt("x/b"), utt("x/a")])
    assert [u.id for u in validate(scan).utterances] == ["x/a", "x/b"]


def test_duplicate_ids() -> None:
    scan = Scan(corpus="x", root="/data", labels="six", utterances=[utt("x/a"), utt("x/a")])
    with pytest.raises(ScanValidationError, match="1 duplicate utterance ids, e.g. x/a"):
        validate(scan)


def test_speaker_with_two_genders() -> None:
    scan = Scan(
        corpus="x",
        root="/data",
        labels="six",
        utterances=[utt("x/a", gender="male"), utt("x/b", gender="female"), utt("x/c", gender=None)],
    )
    with pytest.raises(ScanValidationError, match="speakers with two genders: x/1"):
        validate(scan)


def test_unknown_gender_value() -> None:
    scan = Scan(corpus="x", root="/data", labels="six", utterances=[utt("x/a", gender="M")])
    with pytest.raises(ScanValidationError, match="unknown gender values"):
        validate(scan)


def test_label_outside_the_policy() -> None:
    scan = Scan(corpus="x", root="/data", labels="six", utterances=[utt("x/a", emotion="calm")])
    with pytest.raises(ScanValidationError, match="not valid under policy 'six'"):
        validate(scan)
    native = Scan(corpus="x", root="/data", labels="native", utterances=[utt("x/a", emotion="calm")])
    assert validate(native).label_set == ["calm"]


def test_none_gender_is_accepted() -> None:
    scan = Scan(corpus="x", root="/data", labels="six", utterances=[utt("x/a", gender=None)])
    assert validate(scan).utterances[0].gender is None
