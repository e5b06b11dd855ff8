"""Speaker-independent splits: disjointness, determinism, gender strata, the leak guard, CSV round trip."""

from __future__ import annotations

import csv
import dataclasses

import pytest
from pydantic import ValidationError

from emoshift.config.split import SplitConfig
from emoshift.corpora import Utterance
from emoshift.data.splits import (
    SpeakerLeakError,
    Split,
    check_disjoint,
    explicit_split,
    kfold_speaker_splits,
    load_split,
    loso_splits,
    make_folds,
    make_split,
    random_split,
    save_split,
    speaker_split,
)


def _utterances(
    n_male: int = 10, n_female: int = 10, n_unknown: int = 0, per_speaker: int = 6
) -> list[Utterance]:
    out = []
    genders = ["male"] * n_male + ["female"] * n_female + [None] * n_unknown
    for s, gender in enumerate(genders):
        for k in range(per_speaker):
            out.append(
                Utterance(
                    id=f"fake/{s:02d}_{k}",
                    path=f"/x/{s:02d}_{k}.wav",
                    corpus="fake",
                    speaker=f"fake/{s:02d}",
                    gender=gender,
                    emotion=("angry", "happy", "sad")[k % 3],
                    native_label="x",
                )
            )
    return out


def _gender_of(utts: list[Utterance]) -> dict[str, str | None]:
    return {u.speaker: u.gender for u in utts}


def _assert_speaker_disjoint(split: Split) -> None:
    parts = [set(split.speakers_of(p)) for p in ("train", "val", "test")]
    assert not parts[0] & parts[1]
    assert not parts[0] & parts[2]
    assert not parts[1] & parts[2]


def test_speaker_split_is_disjoint_complete_and_by_ratio():
    utts = _utterances()
    split = speaker_split(utts)
    _assert_speaker_disjoint(split)
    assert set(split.assignment) == {u.id for u in utts}  # nobody left out
    assert not split.leaky and split.method == "speaker"
    # 10 speakers per gender at 0.7/0.15/0.15 -> 7/1/2 per gender
    assert [len(split.speakers_of(p)) for p in ("train", "val", "test")] == [14, 2, 4]
    assert check_disjoint(split) == []
    # all of a speaker's utterances go to the same part
    part_of = {}
    for uid, part in split.assignment.items():
        assert part_of.setdefault(split.speakers[uid], part) == part


def test_speaker_split_is_gender_stratified_with_unknown_stratum():
    utts = _utterances(n_male=6, n_female=6, n_unknown=3)
    split = speaker_split(utts, seed=3)
    gender = _gender_of(utts)
    for part in ("train", "val", "test"):
        found = {gender[s] for s in split.speakers_of(part)}
        assert {"male", "female", None} <= found, part  # 6 per gender -> 4/1/1; 3 unknown -> 1/1/1
    # unstratified splitting is allowed on request
    assert speaker_split(utts, seed=3, stratify=None).assignment


def test_speaker_split_deterministic_for_seed_and_varies_across_seeds():
    utts = _utterances()
    assert speaker_split(utts, seed=7) == speaker_split(utts, seed=7)
    assert speaker_split(utts, seed=7).assignment != speaker_split(utts, seed=8).assignment
    # input order does not matter
    assert speaker_split(list(reversed(utts)), seed=7).assignment == speaker_split(utts, seed=7).assignment


@pytest.mark.parametrize(
    "ratios, message",
    [((0.5, 0.5), "three numbers"), ((0.8, 0.3, 0.1), "sum to 1"), ((1.0, 0.0, 0.0), "positive")],
)
def test_bad_ratios_are_rejected(ratios, message):
    with pytest.raises(ValueError, match=message):
        speaker_split(_utterances(), ratios=ratios)


def test_leak_guard_names_the_shared_speaker():
    split = Split(
        assignment={"a1": "train", "a2": "test", "b1": "train", "c1": "val", "c2": "test"},
        speakers={"a1": "spk/A", "a2": "spk/A", "b1": "spk/B", "c1": "spk/C", "c2": "spk/C"},
    )
    with pytest.raises(SpeakerLeakError, match=r"spk/A, spk/C") as err:
        check_disjoint(split)
    assert "spk/B" not in str(err.value)
    assert check_disjoint(split, allow_leak=True) == ["spk/A", "spk/C"]


def test_random_split_refuses_without_allow_leak_and_is_leaky_with_it():
    utts = _utterances()
    with pytest.raises(SpeakerLeakError, match="allow_leak"):
        random_split(utts, seed=0)
    split = random_split(utts, seed=0, allow_leak=True)
    assert split.leaky and split.method == "random"
    assert set(split.assignment) == {u.id for u in utts}
    assert [len(split.ids(p)) for p in ("train", "val", "test")] == [84, 18, 18]
    with pytest.raises(SpeakerLeakError):
        check_disjoint(split)  # 120 clips of 20 speakers at random: test voices are also in train


def test_kfold_puts_every_speaker_in_test_exactly_once():
    utts = _utterances(n_male=7, n_female=8)
    folds = kfold_speaker_splits(utts, k=5, seed=1)
    assert len(folds) == 5
    tested = [s for f in folds for s in f.speakers_of("test")]
    assert sorted(tested) == sorted({u.speaker for u in utts})
    gender = _gender_of(utts)
    for f in folds:
        _assert_speaker_disjoint(f)
        assert len(f.speakers_of("test")) == 3
        assert {gender[s] for s in f.speakers_of("test")} == {"male", "female"}
        assert f.speakers_of("val")  # 15% of the 12 others
        assert set(f.assignment) == {u.id for u in utts}
    assert kfold_speaker_splits(utts, k=5, seed=1) == folds
    assert {f.method for f in folds} == {"kfold"}
    with pytest.raises(ValueError, match="k must be between 2"):
        kfold_speaker_splits(utts, k=16)


def test_loso_holds_out_each_speaker_alone():
    utts = _utterances(n_male=3, n_female=3)
    folds = loso_splits(utts)
    speakers = sorted({u.speaker for u in utts})
    assert [f.speakers_of("test") for f in folds] == [[s] for s in speakers]
    for f in folds:
        _assert_speaker_disjoint(f)


def test_explicit_split_leaves_unlisted_speakers_out_and_resolves_short_names():
    utts = _utterances(n_male=3, n_female=3)
    split = explicit_split(utts, train=["fake/00", "01", "02"], val=["03"], test=["fake/04"])
    assert split.speakers_of("train") == ["fake/00", "fake/01", "fake/02"]
    assert split.speakers_of("test") == ["fake/04"]
    assert not any(split.speakers[i] == "fake/05" for i in split.assignment)  # unlisted: left out
    with pytest.raises(ValueError, match="'99' is not a speaker"):
        explicit_split(utts, train=["00"], test=["99"])
    with pytest.raises(SpeakerLeakError, match="fake/01 is listed in both train and test"):
        explicit_split(utts, train=["00", "01"], test=["01"])


def test_split_config_validation_messages():
    with pytest.raises(ValidationError, match="set allow_leak: true"):
        SplitConfig(method="random")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SplitConfig(method="speaker", shuffle=True)
    with pytest.raises(ValidationError, match="needs non-empty 'train' and 'test'"):
        SplitConfig(method="explicit", train=["a"])
    with pytest.raises(ValidationError, match="only used by method 'explicit'"):
        SplitConfig(method="speaker", test=["a"])
    with pytest.raises(ValidationError, match="fold must be between 0 and k-1"):
        SplitConfig(method="kfold", k=3, fold=3)
    with pytest.raises(ValidationError, match="sum to 1"):
        SplitConfig(ratios=(0.5, 0.2, 0.2))


def test_make_split_dispatches_every_method():
    utts = _utterances(n_male=4, n_female=4)
    assert make_split(utts, SplitConfig()) == speaker_split(utts)
    assert (
        make_split(utts, SplitConfig(method="kfold", k=4, fold=2, seed=5))
        == kfold_speaker_splits(utts, k=4, seed=5)[2]
    )
    assert make_split(utts, SplitConfig(method="loso", fold=3)).speakers_of("test") == ["fake/03"]
    with pytest.raises(ValueError, match="loso fold must be between 0 and 7"):
        make_split(utts, SplitConfig(method="loso", fold=8))
    explicit = make_split(utts, SplitConfig(method="explicit", train=["00", "01"], test=["02"]))
    assert explicit.speakers_of("val") == []
    leaky = make_split(utts, SplitConfig(method="random", allow_leak=True))
    assert leaky.leaky


# ------------------------------------------------------------------------------- per-corpus k (unequal folds)


def _two_corpora() -> dict[str, list[Utterance]]:
    """Two corpora named as registered ones, 12 and 10 speakers."""
    out = {}
    for name, (m, f) in {"ravdess": (6, 6), "crema-d": (5, 5)}.items():
        out[name] = [
            dataclasses.replace(u, id=u.id.replace("fake", name), speaker=u.speaker.replace("fake", name), corpus=name)
            for u in _utterances(n_male=m, n_female=f, per_speaker=3)
        ]
    return out


def test_unequal_k_tests_every_speaker_exactly_once_by_a_fold_that_never_saw_it():
    cfg = {"method": "kfold", "k": {"ravdess": 6, "CREMA-D": 4}, "seed": 3}
    corpora = _two_corpora()
    assert SplitConfig(**cfg).k == {"ravdess": 6, "crema-d": 4} and SplitConfig(**cfg).max_k == 6
    for name, utts in corpora.items():
        k = {"ravdess": 6, "crema-d": 4}[name]
        runs = [make_split(utts, SplitConfig(**cfg, fold=i), corpus=name) for i in range(6)]  # max(k) fold runs
        tested_in: dict[str, list[int]] = {}
        for i, split in enumerate(runs):
            _assert_speaker_disjoint(split)
            assert set(split.assignment) == {u.id for u in utts}  # every utterance has a part in every run
            for s in split.speakers_of("test"):
                tested_in.setdefault(s, []).append(i)
            assert bool(split.speakers_of("test")) == (i < k)  # runs past the corpus's own k: training-only
            assert split.speakers_of("train") and split.speakers_of("val")
        assert sorted(tested_in) == sorted({u.speaker for u in utts})
        assert all(len(f) == 1 for f in tested_in.values())  # exactly once
        assert [f.speakers_of("test") for f in make_folds(utts, SplitConfig(**cfg), corpus=name)] == [
            r.speakers_of("test") for r in runs[:k]
        ]
    # one number for every corpus is unchanged
    utts = corpora["ravdess"]
    assert make_split(utts, SplitConfig(method="kfold", k=4, fold=1), corpus="ravdess") == make_split(
        utts, SplitConfig(method="kfold", k={"ravdess": 4}, fold=1), corpus="ravdess"
    )


def test_per_corpus_k_errors_name_the_key():
    with pytest.raises(ValidationError, match="ravdess: k must be at least 2"):
        SplitConfig(method="kfold", k={"ravdess": 1, "crema-d": 5})
    with pytest.raises(ValidationError, match="k must be at least 2"):
        SplitConfig(method="kfold", k=1)
    with pytest.raises(ValidationError, match="crema-d: a fold count must be a whole number"):
        SplitConfig(method="kfold", k={"crema-d": "five"})
    with pytest.raises(ValidationError, match="'crema-d' is given twice"):
        SplitConfig(method="kfold", k={"crema-d": 5, "CREMA-D": 4})
    with pytest.raises(ValidationError, match=r"between 0 and the largest k - 1 \(5\), got 6"):
        SplitConfig(method="kfold", k={"ravdess": 6, "crema-d": 5}, fold=6)
    utts = _two_corpora()["crema-d"]
    with pytest.raises(ValueError, match="data.split.k.crema-d is 11 but the corpus has 10 speakers"):
        make_folds(utts, SplitConfig(method="kfold", k={"crema-d": 11}), corpus="crema-d")
    with pytest.raises(ValueError, match="no fold count for corpus 'crema-d'"):
        make_folds(utts, SplitConfig(method="kfold", k={"ravdess": 4}), corpus="crema-d")


def test_csv_round_trip_and_leak_recovered(tmp_path):
    utts = _utterances()
    split = speaker_split(utts, seed=2)
    path = save_split(split, tmp_path / "splits" / "fake.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "speaker", "split"] and all(len(r) == 3 for r in rows)
    back = load_split(path)
    assert back.assignment == split.assignment and back.speakers == split.speakers
    assert back.leaky is False
    assert [p.name for p in path.parent.iterdir()] == ["fake.csv"]  # no temp file left behind

    leaky = load_split(save_split(random_split(utts, allow_leak=True), tmp_path / "r.csv"))
    assert leaky.leaky is True

    (tmp_path / "bad.csv").write_text("id,speaker,part\na,b,train\n")
    with pytest.raises(ValueError, match="expected columns id,speaker,split"):
        load_split(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("id,speaker,split\na,b,dev\n")
    with pytest.raises(ValueError, match="bad2.csv:2: split must be one of"):
        load_split(tmp_path / "bad2.csv")
