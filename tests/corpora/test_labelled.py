"""IEMOCAP, MSP-Podcast and ESD: label files, excluded classes, unknown speakers, folds, layouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from emoshift.corpora import CorpusError, esd, iemocap, msppodcast
from emoshift.corpora.base import is_unknown_speaker

from .fakes import write_wav
from .fakes_labelled import iemocap_block, make_esd, make_iemocap, make_msppodcast


def folds_are_speaker_disjoint(utterances: list) -> bool:  # type: ignore[type-arg]
    folds: dict[str, set[str]] = {}
    for u in utterances:
        folds.setdefault(u.speaker, set()).add(u.fold)
    return all(len(f) == 1 for f in folds.values())


# ---------------------------------------------------------------------------------------------- IEMOCAP
@pytest.mark.parametrize("wrapped", [False, True])
def test_iemocap_speakers_folds_and_fields(tmp_path: Path, wrapped: bool) -> None:
    fake = make_iemocap(tmp_path / "iemocap", wrapped=wrapped)
    result = iemocap.scan(fake.root, labels="native")
    assert {u.id: u.emotion for u in result.utterances} == fake.kept("native")
    assert result.speakers == ["iemocap/Ses01F", "iemocap/Ses01M", "iemocap/Ses02F", "iemocap/Ses02M"]
    by_id = {u.id: u for u in result.utterances}
    # the dialog is led by the male actor, but the F turn is the female actor's
    u = by_id["iemocap/Ses01M_script01_1_F002"]
    assert (u.speaker, u.gender, u.emotion, u.native_label) == ("iemocap/Ses01F", "female", "excited", "exc")
    assert (u.fold, u.get_meta("mode"), u.get_meta("dialog")) == ("Session1", "scripted", "Ses01M_script01_1")
    assert (u.valence, u.arousal, u.dominance) == (2.5, 3.0, 3.0)
    m = by_id["iemocap/Ses02F_impro01_M011"]
    assert (m.speaker, m.gender, m.fold, m.get_meta("mode")) == (
        "iemocap/Ses02M",
        "male",
        "Session2",
        "improvised",
    )
    assert folds_are_speaker_disjoint(result.utterances)
    assert result.excluded == Counter({"xxx (no majority)": 4, "oth (other)": 4})


def test_iemocap_four_merges_excited_into_happy(tmp_path: Path) -> None:
    fake = make_iemocap(tmp_path / "iemocap")
    four = iemocap.scan(fake.root, labels="four")
    labels = Counter(u.emotion for u in four.utterances)
    assert set(labels) == {"angry", "happy", "neutral", "sad"}
    assert labels["happy"] == 12  # per dialog hap (F), exc (F) and hap (M); four dialogs
    assert four.left_out == Counter({"frustrated": 4, "surprised": 4, "fearful": 4, "disgust": 4})
    assert {u.native_label for u in four.utterances if u.emotion == "happy"} == {"hap", "exc"}
    six = iemocap.scan(fake.root)
    assert set(six.label_set) == {"angry", "disgust", "fearful", "happy", "neutral", "sad"}


def test_iemocap_mode_filter(tmp_path: Path) -> None:
    fake = make_iemocap(tmp_path / "iemocap")
    impro = iemocap.scan(fake.root, labels="native", mode="improvised")
    assert {u.get_meta("mode") for u in impro.utterances} == {"improvised"}
    assert impro.excluded["scripted (mode=improvised)"] == 2 * 13
    with pytest.raises(ValueError, match="mode"):
        iemocap.scan(fake.root, mode="acted")


def test_iemocap_missing_labels_unknown_class_and_missing_audio(tmp_path: Path) -> None:
    fake = make_iemocap(tmp_path / "iemocap")
    session2 = fake.root / "Session2" / "dialog"
    for p in sorted(session2.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    session2.rmdir()
    emo = fake.root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    with open(emo, "a") as f:
        f.write(
            iemocap_block("Ses01F_impro01_F050", "zzz", 1) + iemocap_block("Ses01F_impro01_F051", "ang", 2)
        )
    write_wav(
        fake.root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F050.wav", 16_000
    )
    result = iemocap.scan(fake.root, labels="native")
    assert {u.speaker for u in result.utterances} == {"iemocap/Ses01F", "iemocap/Ses01M"}
    reasons = result.skipped_by_reason()
    assert reasons["no label"] == 30  # every Session2 file (15 per dialog, xxx/oth too) is reported
    assert reasons["unknown label"] == 1 and reasons["missing"] == 1
    assert any("Session2: no dialog/EmoEvaluation/" in w for w in result.warnings)


def test_iemocap_not_iemocap(tmp_path: Path) -> None:
    (tmp_path / "Session1" / "sentences" / "wav").mkdir(parents=True)
    with pytest.raises(CorpusError, match="iemocap: no labelled turns"):
        iemocap.scan(tmp_path)


# ---------------------------------------------------------------------------------------------- MSP-Podcast
def test_msppodcast_partitions_unknown_speakers_and_excluded(tmp_path: Path) -> None:
    fake = make_msppodcast(tmp_path / "msp")
    result = msppodcast.scan(fake.root, labels="native")
    assert {u.id: u.emotion for u in result.utterances} == fake.kept("native")
    assert result.excluded == Counter({"O (other)": 3, "X (no agreement)": 3, msppodcast.NO_PARTITION: 1})
    folds = Counter(u.fold for u in result.utterances)
    assert folds == Counter({"Train": 8, "Development": 8, "Test1": 8, "Test2": 3})
    unknown = [u for u in result.utterances if is_unknown_speaker(u.speaker)]
    assert len(unknown) == 3 and len({u.speaker for u in unknown}) == 3, "Unknown is not one speaker"
    assert {u.fold for u in unknown} == {"Test2"}
    known = [u for u in result.utterances if not is_unknown_speaker(u.speaker)]
    assert folds_are_speaker_disjoint(known)
    u = next(u for u in result.utterances if u.id == "msp-podcast/MSP-PODCAST_0002_0007")
    assert (u.emotion, u.native_label, u.speaker, u.gender) == ("contempt", "C", "msp-podcast/1003", "female")
    assert (u.arousal, u.valence, u.dominance) == (3.2, 4.0, 3.6)
    assert not result.warnings


def test_msppodcast_policies(tmp_path: Path) -> None:
    fake = make_msppodcast(tmp_path / "msp")
    four = msppodcast.scan(fake.root, labels="four")
    assert four.left_out == Counter({"surprised": 3, "fearful": 3, "disgust": 3, "contempt": 3})


def test_msppodcast_missing_labels_and_rows(tmp_path: Path) -> None:
    fake = make_msppodcast(tmp_path / "msp", audio_dir="Audio")
    labels = fake.root / "Labels" / "labels_consensus.csv"
    with open(labels, "a") as f:
        f.write("MSP-PODCAST_0500_0001.wav,A,4,4,4,127,Male,Train\n")  # listed, no audio
        f.write("MSP-PODCAST_0001_0001.wav,Q,4,4,4,127,Male,Train\n")  # unknown class (overrides the A row)
    write_wav(fake.root / "Audio" / "MSP-PODCAST_0600_0001.wav", 16_000)  # audio without a row
    result = msppodcast.scan(fake.root, labels="native")
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons["MSP-PODCAST_0500_0001.wav"].startswith("missing: row ")
    assert reasons["MSP-PODCAST_0001_0001.wav"].startswith("unknown label: EmoClass 'Q'")
    assert reasons["MSP-PODCAST_0600_0001.wav"].startswith("no label")
    labels.unlink()
    with pytest.raises(CorpusError, match="labels file Labels/labels_consensus.csv not found"):
        msppodcast.scan(fake.root)
    labels.write_text("name,emotion\nx.wav,A\n")
    with pytest.raises(CorpusError, match="lacks the columns FileName, EmoClass"):
        msppodcast.scan(fake.root)


def test_msppodcast_warns_when_a_speaker_spans_partitions(tmp_path: Path) -> None:
    fake = make_msppodcast(tmp_path / "msp")
    labels = fake.root / "Labels" / "labels_consensus.csv"
    labels.write_text(labels.read_text().replace(",127,Male,Train\n", ",127,Male,Test1\n", 1))
    result = msppodcast.scan(fake.root)
    assert any("1 speakers appear in more than one partition" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------- ESD
@pytest.mark.parametrize("layout", ["flat", "split", "wrapped"])
def test_esd_layouts_language_gender_folds(tmp_path: Path, layout: str) -> None:
    fake = make_esd(tmp_path / "esd", layout=layout)
    result = esd.scan(fake.root, labels="native")
    assert {u.id: u.emotion for u in result.utterances} == fake.kept("native")
    people = {u.speaker: (u.gender, u.language) for u in result.utterances}
    assert people == {"esd/0001": ("female", "Mandarin"), "esd/0011": ("male", "English")}
    u = next(u for u in result.utterances if u.id == "esd/0011_000352")
    assert (u.emotion, u.native_label, u.sentence) == ("angry", "Angry", "sentence 2 said in Angry")
    folds = {u.fold for u in result.utterances}
    assert folds == ({"train", "test"} if layout == "split" else {None})
    if layout == "split":
        assert not folds_are_speaker_disjoint(result.utterances), "ESD's folds hold every speaker"
    assert esd.scan(fake.root).left_out == Counter({"surprised": 4})
    assert not result.warnings


def test_esd_gender_table_matches_the_readme() -> None:
    assert len(esd.FEMALE) == len(esd.MALE) == 10 and not esd.FEMALE & esd.MALE
    assert sum(1 for s in esd.FEMALE if s <= 10) == 5 and sum(1 for s in esd.MALE if s <= 10) == 5


def test_esd_wrong_speaker_prefix_and_missing_transcript(tmp_path: Path) -> None:
    fake = make_esd(tmp_path / "esd")
    write_wav(fake.root / "0001" / "Angry" / "0011_000399.wav", 16_000)
    (fake.root / "0011" / "0011.txt").unlink()
    result = esd.scan(fake.root, labels="native")
    assert result.skipped_by_reason() == Counter({"unrecognised file name": 1})
    assert any("0011: no transcript" in w for w in result.warnings)
    assert {u.sentence for u in result.utterances if u.speaker == "esd/0011"} == {None}
