"""Raters' votes kept as each utterance's distribution (issue 22 §4): CREMA-D's processedResults/, IEMOCAP's
evaluator lines, a manifest's votes or p_<label> columns; harmonised under the label policy; round-tripped by
the index manifest. The expected votes below are counted by hand from the fake files."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoshift.corpora import cremad, iemocap, table
from emoshift.corpora.base import Utterance, format_votes, harmonise_votes, parse_votes, vote_shares
from emoshift.corpora.manifest import ManifestError, read_manifest, write_manifest

from .fakes import make_cremad, write_wav

TABULATED = '"","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote","meanEmoResp"'


def write_processed_results(folder: Path) -> None:
    """Voice rows (1xxxxx) with the counts the tests expect, and a face row (2xxxxx) that must not be read."""
    results = folder / "processedResults"
    results.mkdir(parents=True)
    (results / "tabulatedVotes.csv").write_text("\n".join([
        TABULATED,
        '"100001",1,0,0,0,9,0,"1001_DFA_ANG_XX",10,0.9,"N",60',
        '"100002",4,0,0,0,4,2,"1001_DFA_DIS_XX",10,0.4,"A:N",55',
        '"100003",0,0,2,0,1,8,"1001_IEO_SAD_HI",11,0.7273,"S",70',
        '"200001",0,0,0,9,0,0,"1001_DFA_ANG_XX",9,1,"H",60',
    ]) + "\n")


@pytest.mark.parametrize("labels_from", ["acted", "voice"])
def test_cremad_votes_equal_the_hand_counted_voice_rows(tmp_path: Path, labels_from: str) -> None:
    fake = make_cremad(tmp_path / "CREMA-D")
    write_processed_results(fake.root)
    by_id = {u.id: u for u in cremad.scan(fake.root, labels_from=labels_from).utterances}
    assert by_id["crema-d/1001_DFA_ANG_XX"].votes == (("angry", 1.0), ("neutral", 9.0))
    assert by_id["crema-d/1001_IEO_SAD_HI"].votes == (("fearful", 2.0), ("neutral", 1.0), ("sad", 8.0))
    assert by_id["crema-d/1002_IEO_SAD_HI"].votes is None  # not in the table
    if labels_from == "acted":  # the tie keeps its acted label, and its votes
        assert by_id["crema-d/1001_DFA_ANG_XX"].emotion == "angry"
        assert by_id["crema-d/1001_DFA_DIS_XX"].votes == (("angry", 4.0), ("neutral", 4.0), ("sad", 2.0))
    else:  # relabelled by the crowd's majority; the tie is left out
        assert by_id["crema-d/1001_DFA_ANG_XX"].emotion == "neutral"
        assert "crema-d/1001_DFA_DIS_XX" not in by_id


def iemocap_tree(root: Path) -> Path:
    """One dialog, three turns, with evaluator lines (several categories per evaluator, Other, the actor's own)."""
    session = root / "Session1"
    blocks = {
        "Ses01F_impro01_F000": ("ang", "C-E1:\tFrustration; Anger;\t()\nC-E2:\tFrustration;\t(annoyed)\n"
                                       "C-E4:\tAnger;\t()\nC-F1:\tNeutral state;\t()\n"),
        "Ses01F_impro01_F001": ("exc", "C-E1:\tExcited;\t()\nC-E2:\tHappiness;\t()\nC-E3:\tOther:worried;\t()\n"),
        "Ses01F_impro01_M002": ("neu", "C-E1:\tNeutral state;\t()\nC-E2:\tNeutral state;\t()\r\n"
                                       "C-E3:\tSadness;\t()\n"),
    }
    text = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
    for i, (utt, (code, lines)) in enumerate(blocks.items()):
        text += f"[{1.0 + 3 * i:.4f} - {2.5 + 3 * i:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.0000]\n"
        text += lines + "A-E1:\tval 3; act 2; dom  2;\t()\n\n"
        write_wav(session / "sentences" / "wav" / "Ses01F_impro01" / f"{utt}.wav", 16_000, seed=i)
    (session / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (session / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").write_text(text)
    return root


def test_iemocap_votes_equal_the_hand_counted_evaluator_lines(tmp_path: Path) -> None:
    root = iemocap_tree(tmp_path / "iemocap")
    native = {u.id.split("/")[1]: u.votes for u in iemocap.scan(root, labels="native").utterances}
    assert native == {
        "Ses01F_impro01_F000": (("angry", 2.0), ("frustrated", 2.0), ("neutral", 1.0)),
        "Ses01F_impro01_F001": (("excited", 1.0), ("happy", 1.0)),  # Other: no vote
        "Ses01F_impro01_M002": (("neutral", 2.0), ("sad", 1.0)),
    }
    four = {u.id.split("/")[1]: u.votes for u in iemocap.scan(root, labels="four").utterances}
    assert four["Ses01F_impro01_F000"] == (("angry", 2.0), ("neutral", 1.0))  # frustrated: not in the policy
    assert four["Ses01F_impro01_F001"] == (("happy", 2.0),)  # excited merged into happy


def test_votes_under_a_policy_and_as_a_distribution() -> None:
    votes = (("calm", 1.0), ("excited", 2.0), ("happy", 1.0), ("surprised", 4.0))
    assert harmonise_votes(votes, "six") == (("happy", 3.0),)
    assert harmonise_votes(votes, "calm-as-neutral") == (("happy", 3.0), ("neutral", 1.0))
    assert harmonise_votes((("surprised", 3.0),), "six") is None
    assert vote_shares((("angry", 3.0), ("sad", 1.0), ("calm", 4.0)), ["angry", "neutral", "sad"]) == [0.75, 0.0, 0.25]
    assert vote_shares((("calm", 4.0),), ["angry", "sad"]) is None
    assert parse_votes(format_votes((("angry", 3.0), ("neutral", 0.25)))) == (("angry", 3.0), ("neutral", 0.25))
    for bad in ("angry=3", "grumpy:1", "angry:-1", "angry:1;angry:2"):
        with pytest.raises(ValueError, match="votes must look like"):
            parse_votes(bad)


def test_the_index_manifest_round_trips_votes(tmp_path: Path) -> None:
    u = Utterance(id="x/a", path=str(tmp_path / "a.wav"), corpus="x", speaker="x/1", gender=None,
                  emotion="angry", native_label="A", votes=(("angry", 7.0), ("sad", 2.5)))
    other = Utterance(id="x/b", path=str(tmp_path / "b.wav"), corpus="x", speaker="x/1", gender=None,
                      emotion="sad", native_label="S")
    path = write_manifest(tmp_path / "m.csv", [u, other])
    assert "angry:7;sad:2.5" in path.read_text()
    assert read_manifest(path) == [u, other]
    path.write_text(path.read_text().replace("angry:7;sad:2.5", "angry:lots"))
    with pytest.raises(ManifestError, match=r"m.csv:2: votes must look like"):
        read_manifest(path)


@pytest.mark.parametrize("layout", ["votes", "shares"])
def test_a_table_gives_votes_or_a_distribution_column_per_class(tmp_path: Path, layout: str) -> None:
    for i in range(3):
        write_wav(tmp_path / f"c{i}.wav", 16_000, seed=i)
    if layout == "votes":  # labels as in the emotion column, mapped by label_map
        text = "path,emotion,speaker,votes\nc0.wav,ang,s1,ang:3;neu:1\nc1.wav,neu,s2,\nc2.wav,neu,s3,neu:2\n"
    else:
        text = "path,emotion,speaker,p_ang,p_neu\nc0.wav,ang,s1,0.75,0.25\nc1.wav,neu,s2,,\nc2.wav,neu,s3,0,1\n"
    (tmp_path / "m.csv").write_text(text)
    sc = table.scan(tmp_path / "m.csv", name="mine", label_map={"ang": "angry", "neu": "neutral"})
    got = {u.id: u.votes for u in sc.utterances}
    first = (("angry", 3.0), ("neutral", 1.0)) if layout == "votes" else (("angry", 0.75), ("neutral", 0.25))
    assert got == {"mine/c0": first, "mine/c1": None, "mine/c2": (("neutral", 2.0 if layout == "votes" else 1.0),)}
    assert all(u.meta == () for u in sc.utterances)  # the p_ columns are votes, not meta


def test_a_bad_vote_cell_names_the_row_and_column(tmp_path: Path) -> None:
    write_wav(tmp_path / "c0.wav", 16_000)
    (tmp_path / "m.csv").write_text("path,emotion,speaker,p_angry\nc0.wav,angry,s1,lots\n")
    with pytest.raises(table.TableError, match=r"row 2, column 'p_angry': a share must be a number"):
        table.scan(tmp_path / "m.csv", name="mine")
