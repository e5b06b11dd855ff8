"""MSP-Podcast's per-annotator labels (Labels/labels_detailed.csv, releases v1.10+) kept as each turn's votes
(issue 22 §4); the expected votes are counted by hand from the rows below."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoshift.corpora import CorpusError, msppodcast

from .fakes_labelled import make_msppodcast

# podcast 1 (speaker 127, Train): _0001 A, _0002 S, _0003 H, _0004 U, _0007 C, _0009 O (excluded)
DETAILED = "\n".join([
    "FileName,WorkerID,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom",
    "MSP-PODCAST_0001_0001.wav,w1,Angry,Angry,5,2,5",
    "MSP-PODCAST_0001_0001.wav,w2,Angry,Contempt,5,2,5",
    "MSP-PODCAST_0001_0001.wav,w3,Neutral,,4,4,4",
    "MSP-PODCAST_0001_0001.wav,w4,Other-Annoyed,Angry,4,4,4",  # Other: no vote (EmoClass_Second not read)
    "MSP-PODCAST_0001_0001.wav,w5,Surprise,,6,4,4",
    "MSP-PODCAST_0001_0002.wav,w1, sad ,,2,2,2",  # case and spaces as a careless export leaves them
    "MSP-PODCAST_0001_0002.wav,w5,Sad,,2,2,2",
    "MSP-PODCAST_0001_0002.wav,w6,Fear,,2,2,2",
    "MSP-PODCAST_0001_0004,w1,Surprise,,6,5,4",  # without .wav
    "MSP-PODCAST_0001_0004,w2,Happy,,6,5,4",
    "MSP-PODCAST_0001_0004,w3,Frustrated,,6,5,4",  # not an MSP word: one warning, no vote
    "MSP-PODCAST_0001_0007.wav,w1,Contempt,,4,3,5",
    "MSP-PODCAST_0001_0007.wav,w2,Disgust,,4,3,5",
    "MSP-PODCAST_0001_0009.wav,w1,Other,,4,4,4",  # an excluded turn
    "MSP-PODCAST_0777_0001.wav,w1,Angry,,4,4,4",  # a file the copy does not have
]) + "\n"


def votes_of(root: Path, labels: str) -> dict[str, object]:
    result = msppodcast.scan(root, labels=labels)
    return {u.id.removeprefix("msp-podcast/"): u.votes for u in result.utterances if u.votes is not None}


def test_votes_equal_the_hand_counted_annotator_rows(tmp_path: Path) -> None:
    fake = make_msppodcast(tmp_path / "msp")
    (fake.root / "Labels" / "labels_detailed.csv").write_text(DETAILED)
    result = msppodcast.scan(fake.root, labels="native")
    assert {u.id.removeprefix("msp-podcast/"): u.votes for u in result.utterances if u.votes} == {
        "MSP-PODCAST_0001_0001": (("angry", 2.0), ("neutral", 1.0), ("surprised", 1.0)),
        "MSP-PODCAST_0001_0002": (("fearful", 1.0), ("sad", 2.0)),
        "MSP-PODCAST_0001_0004": (("happy", 1.0), ("surprised", 1.0)),
        "MSP-PODCAST_0001_0007": (("contempt", 1.0), ("disgust", 1.0)),
    }
    assert {u.id: u.emotion for u in result.utterances} == fake.kept("native")  # the labels are unchanged
    assert [w for w in result.warnings if "labels_detailed.csv" in w] == [
        "labels_detailed.csv: 1 EmoClass_Major votes with a word not known were not counted ('Frustrated': 1)"
    ]
    # under a policy the votes are mapped as the labels are: surprised dropped under six (the surprised and
    # contempt turns are left out), fearful too under four
    assert votes_of(fake.root, "six") == {
        "MSP-PODCAST_0001_0001": (("angry", 2.0), ("neutral", 1.0)),
        "MSP-PODCAST_0001_0002": (("fearful", 1.0), ("sad", 2.0)),
    }
    assert votes_of(fake.root, "four")["MSP-PODCAST_0001_0002"] == (("sad", 2.0),)


def test_without_the_detailed_file_there_are_no_votes(tmp_path: Path) -> None:
    fake = make_msppodcast(tmp_path / "msp")
    result = msppodcast.scan(fake.root, labels="native")
    assert result.utterances and all(u.votes is None for u in result.utterances)
    assert {u.id: u.emotion for u in result.utterances} == fake.kept("native")


@pytest.mark.parametrize("header", ["FileName,WorkerID,EmoClass,EmoAct", ""])
def test_a_detailed_file_without_its_columns_is_one_line(tmp_path: Path, header: str) -> None:
    fake = make_msppodcast(tmp_path / "msp")
    (fake.root / "Labels" / "labels_detailed.csv").write_text(header + "\n" if header else "")
    with pytest.raises(CorpusError) as err:
        msppodcast.scan(fake.root)
    message = str(err.value)
    assert "\n" not in message and "labels_detailed.csv" in message
    assert "lacks the columns" in message and "needs FileName, EmoClass_Major" in message
