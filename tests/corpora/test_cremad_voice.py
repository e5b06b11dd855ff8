"""CREMA-D with the crowd's voice-only labels (``labels_from="voice"`` / ``--labels-from voice``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.corpora import cremad
from emoshift.corpora.manifest import read_manifest

from .fakes import make_cremad

TABULATED_HEADER = '"","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote","meanEmoResp"'


def write_crowd(
    folder: Path, votes: dict[str, tuple[str, float]], *, summary: bool = True, face: str = "S"
) -> None:
    """summaryTable.csv (voice votes; ties as A:N) and tabulatedVotes.csv (voice rows 1xxxxx, face rows 2xxxxx
    whose vote and agreement differ, so a loader reading the wrong condition fails)."""
    results = folder / "processedResults"
    results.mkdir(parents=True, exist_ok=True)
    if summary:
        lines = [",FileName,VoiceVote,VoiceLevel,FaceVote,FaceLevel,MultiModalVote,MultiModalLevel"]
        lines += [
            f"{i + 1},{stem},{vote},60,{face},50,{face},50"
            for i, (stem, (vote, _)) in enumerate(votes.items())
        ]
        (results / "summaryTable.csv").write_text("\n".join(lines) + "\n")
    rows = [TABULATED_HEADER]
    for i, (stem, (vote, agreement)) in enumerate(votes.items()):
        rows.append(f'"{100001 + i}",1,0,0,0,9,0,"{stem}",10,{agreement},"{vote}",60')
        rows.append(f'"{200001 + i}",0,0,0,0,1,9,"{stem}",10,0.99,"{face}",60')
    (results / "tabulatedVotes.csv").write_text("\n".join(rows) + "\n")


def votes_for(fake_ids: list[str]) -> dict[str, tuple[str, float]]:
    """Every clip perceived as neutral (N, 0.9), but two: one tied (A:N), one perceived as sad."""
    stems = sorted(i.split("/", 1)[1] for i in fake_ids)
    votes = {s: ("N", 0.9) for s in stems}
    votes["1001_DFA_ANG_XX"] = ("A:N", 0.4)
    votes["1001_DFA_HAP_XX"] = ("S", 0.6)
    return votes


def test_voice_labels_agreement_and_ties(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D")
    write_crowd(fake.root, votes_for(list(fake.good)))
    result = cremad.scan(fake.root, labels_from="voice")
    by_id = {u.id: u for u in result.utterances}
    assert len(by_id) == len(fake.good) - 1
    assert result.excluded == Counter({cremad.NO_MAJORITY: 1})
    u = by_id["crema-d/1001_DFA_HAP_XX"]
    assert (u.emotion, u.native_label, u.agreement, u.get_meta("acted")) == ("sad", "SAD", 0.6, "HAP")
    v = by_id["crema-d/1002_IEO_ANG_HI"]
    assert (v.emotion, v.agreement, v.get_meta("acted")) == ("neutral", 0.9, "ANG")
    assert not result.warnings
    acted = cremad.scan(fake.root)
    assert {u.emotion for u in acted.utterances if u.id == "crema-d/1001_DFA_HAP_XX"} == {"happy"}
    assert all(u.agreement is None and u.meta == () for u in acted.utterances)


def test_clips_the_tables_lack_keep_their_acted_label(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D")
    votes = votes_for(list(fake.good))
    del votes["1002_IEO_SAD_HI"]
    write_crowd(fake.root, votes)
    result = cremad.scan(fake.root, labels_from="voice")
    u = next(u for u in result.utterances if u.id == "crema-d/1002_IEO_SAD_HI")
    assert (u.emotion, u.agreement) == ("sad", None)
    (warning,) = result.warnings
    assert "1 clips have no crowd label (e.g. 1002_IEO_SAD_HI)" in warning


def test_without_summary_the_voice_rows_of_tabulated_votes(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D")
    write_crowd(fake.root, votes_for(list(fake.good)), summary=False)
    result = cremad.scan(fake.root, labels_from="voice")
    assert {u.emotion for u in result.utterances} == {"neutral", "sad"}, "face rows (all S) must not be read"
    assert result.excluded == Counter({cremad.NO_MAJORITY: 1})
    assert any("summaryTable.csv not found" in w for w in result.warnings)


def test_missing_tables_fall_back_to_acted_labels(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D")
    result = cremad.scan(fake.root, labels_from="voice")
    assert {u.id: u.emotion for u in result.utterances} == fake.kept("six")
    assert any("crowd labels not found" in w and "acted labels are used" in w for w in result.warnings)
    with pytest.raises(ValueError, match="labels_from"):
        cremad.scan(fake.root, labels_from="face")


def test_cli_labels_from_voice(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "CREMA-D")
    write_crowd(fake.root, votes_for(list(fake.good)))
    out = tmp_path / "m.csv"
    runner = CliRunner()
    result = runner.invoke(
        app, ["corpus", "index", "crema-d", str(fake.root), "--labels-from", "voice", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert "left out by the corpus's labels: 1 (no voice majority (tied crowd vote) 1)" in result.stdout
    utts = {u.id: u for u in read_manifest(out)}
    assert (
        utts["crema-d/1001_DFA_HAP_XX"].agreement == 0.6 and utts["crema-d/1001_DFA_HAP_XX"].emotion == "sad"
    )
    result = runner.invoke(
        app, ["corpus", "index", "ravdess", str(fake.root), "--labels-from", "voice", "-o", str(out)]
    )
    assert result.exit_code == 2 and "--labels-from applies to crema-d only" in result.stderr
