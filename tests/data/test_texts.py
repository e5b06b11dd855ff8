"""Text overlap: the comparable text, the share against a hand count, the run's record, text-disjoint splits
(loso too) and their refusals, the TESS carrier-phrase warning, and the config option."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from emoshift.config import ExperimentConfig
from emoshift.config.split import SplitConfig
from emoshift.core.rundir import RunDir
from emoshift.corpora import Utterance
from emoshift.data.splits import make_folds, make_split
from emoshift.data.texts import (
    TextSplitError,
    overlap_mark,
    record_training_texts,
    text_key,
    text_overlap,
    training_texts,
)


def _utt(i: int, speaker: int, sentence: str | None) -> Utterance:
    return Utterance(id=f"fake/{speaker}_{i}", path=f"/x/{speaker}_{i}.wav", corpus="fake", speaker=f"fake/{speaker}",
                     gender="male" if speaker % 2 else "female", emotion="angry", native_label="a", sentence=sentence)


def _corpus(texts: tuple[str | None, ...], speakers: int = 8) -> list[Utterance]:
    return [_utt(i, s, t) for s in range(speakers) for i, t in enumerate(texts)]


def test_text_key_compares_texts_not_spellings() -> None:
    assert text_key("Kids are talking by the door.") == text_key("  kids are TALKING by the door ") == (
        "kids are talking by the door")
    assert text_key("It's eleven o'clock") == "its eleven oclock"
    assert text_key(None) is None and text_key(" ... ") is None


def test_text_overlap_is_the_share_of_test_utterances_saying_a_training_text() -> None:
    test = [_utt(0, 9, "Dogs are sitting."), _utt(1, 9, "kids are talking"), _utt(2, 9, "new words"),
            _utt(3, 9, None)]
    seen = {"kids are talking", "dogs are sitting"}
    assert text_overlap(test, seen) == pytest.approx(2 / 3)  # by hand: 2 of the 3 utterances with a text
    assert text_overlap(test, None) is None  # training texts unknown
    assert text_overlap([_utt(0, 9, None)], seen) is None  # the test corpus has no text
    assert overlap_mark(2 / 3) == "TEXT OVERLAP 67%" and overlap_mark(0.0) == overlap_mark(None) == ""


def test_training_texts_round_trip_and_a_fold_ensemble_unites_its_members(tmp_path: Path) -> None:
    run = RunDir.of(tmp_path / "run")
    run.path.mkdir()
    assert training_texts(run) is None  # a run from before texts were recorded
    record_training_texts(run, [_utt(0, 1, "One."), _utt(1, 1, "two"), _utt(2, 1, None)])
    assert training_texts(run) == {"one", "two"}
    empty = RunDir.of(tmp_path / "silent")
    empty.path.mkdir()
    record_training_texts(empty, [_utt(0, 1, None)])
    assert training_texts(empty) is None  # training corpora without text: the overlap is unknown, not 0


@pytest.mark.parametrize("method", ["speaker", "kfold", "loso"])
def test_text_disjoint_splits_keep_speakers_and_texts_apart(method: str) -> None:
    utts = _corpus(("a", "b", "c", "d", "e", "f"))
    cfg = SplitConfig(method=method, k=4, disjoint=["speaker", "text"])
    splits = make_folds(utts, cfg) if method != "speaker" else [make_split(utts, cfg)]
    said = {u.id: u.sentence for u in utts}
    for split in splits:
        test = {said[i] for i in split.ids("test")}
        assert test and not test & {said[i] for i in (*split.ids("train"), *split.ids("val"))}
        assert not set(split.speakers_of("test")) & set(split.speakers_of("train") + split.speakers_of("val"))
        cost = split.text_cost
        assert cost is not None and cost.total == len(utts) - len(split.assignment) > 0
        assert f"left out {cost.total} of {len(utts)} utterances" in cost.summary()
    by_speaker = make_split(utts, SplitConfig())
    assert by_speaker.text_cost is None and len(by_speaker.assignment) == len(utts)  # the default costs nothing


def test_text_disjoint_refuses_where_the_corpus_cannot_allow_it() -> None:
    cfg = SplitConfig(disjoint=["speaker", "text"])
    with pytest.raises(TextSplitError, match="record no text"):
        make_split(_corpus((None, None)), cfg)
    with pytest.raises(TextSplitError, match="every utterance says the same text"):
        make_split(_corpus(("Say the word", "say the word.")), cfg)
    assert issubclass(TextSplitError, ValueError)  # the pipeline's "corpus 'x': ..." one-line TrainError


def test_tess_says_its_carrier_phrase_cannot_be_kept_apart(caplog: pytest.LogCaptureFixture) -> None:
    from emoshift.training.pipeline import report_text_cost

    utts = [_utt(i, s, w) for s in (1, 2) for i, w in enumerate(("back", "bar", "bite", "dog"))]
    split = make_split(utts, SplitConfig(ratios=(0.5, 0.0, 0.5), stratify=None, disjoint=["speaker", "text"]))
    cfg = ExperimentConfig.model_validate({"data": {"split": {"disjoint": ["speaker", "text"]}}})
    with caplog.at_level(logging.WARNING, logger="emoshift.training.train"):
        report_text_cost(cfg, "tess", split)
    assert "left out 4 of 8 utterances" in caplog.text  # both actors say every word: half the takes go
    assert "'Say the word', which no split can keep apart" in caplog.text


def test_disjoint_config() -> None:
    assert SplitConfig().disjoint == ["speaker"] and not SplitConfig().text_disjoint
    assert SplitConfig(disjoint=["text", "speaker", "text"]).disjoint == ["speaker", "text"]
    with pytest.raises(ValidationError, match="must include 'speaker'"):
        SplitConfig(disjoint=["text"])
    with pytest.raises(ValidationError):
        SplitConfig(disjoint=["speaker", "sentence"])
    plain = ExperimentConfig()
    explicit = ExperimentConfig.model_validate({"data": {"split": {"disjoint": ["speaker"]}}})
    text = ExperimentConfig.model_validate({"data": {"split": {"disjoint": ["speaker", "text"]}}})
    assert plain.fingerprint() == explicit.fingerprint() != text.fingerprint()
