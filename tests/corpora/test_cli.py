"""`emoshift corpus index` and `emoshift corpus list` through typer's CliRunner."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.corpora import UTTERANCE_FIELDS
from emoshift.corpora.manifest import read_manifest

from .fakes import BUILDERS, FakeCorpus, make_cremad, make_ravdess

runner = CliRunner()


def index(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["corpus", "index", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_index_writes_the_manifest_and_a_summary(fake_corpus: FakeCorpus, tmp_path: Path) -> None:
    out = tmp_path / "manifests" / f"{fake_corpus.name}.csv"
    code, stdout, stderr = index(fake_corpus.name, fake_corpus.root, "-o", out)
    assert code == 0, stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0])[: len(UTTERANCE_FIELDS)] == UTTERANCE_FIELDS  # optional columns follow
    assert {r["id"]: r["emotion"] for r in rows} == fake_corpus.kept("six")
    assert len(read_manifest(out)) == len(rows)
    assert f"{len(rows)} utterances kept" in stdout
    assert "kept per emotion x gender" in stdout and "speakers:" in stdout
    assert f"skipped: {len(fake_corpus.bad)}" in stdout and "git-LFS pointer 1" in stdout
    assert f"wrote {len(rows)} utterances to {out}" in stdout
    left_out = fake_corpus.left_out("six")
    if left_out:
        assert f"left out by label policy six: {sum(left_out.values())}" in stdout
    assert not any(line.startswith("  /") for line in stdout.splitlines()), "paths only with --verbose"


def test_summary_counts_for_ravdess(tmp_path: Path) -> None:
    fake = make_ravdess(tmp_path / "r", quirks=True)
    code, stdout, _ = index("ravdess", fake.root, "-o", tmp_path / "m.csv")
    assert code == 0
    assert "left out by label policy six: 8 (calm 4, surprised 4)" in stdout
    assert "speakers: 2 (1 male, 1 female)" in stdout
    assert "(--verbose lists each skipped file)" in stdout
    lines = stdout.replace("┃", "│").splitlines()
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if "│" in line]
    table = {row[0]: row[1:] for row in rows}
    assert table["emotion"] == ["male", "female", "total"]
    assert table["neutral"] == ["1", "1", "2"]
    assert table["sad"] == ["3", "2", "5"]  # the quirk tree's LIST-chunk take is a sad one by actor 01
    assert table["total"] == ["12", "11", "23"]


def test_verbose_lists_each_skipped_file(tmp_path: Path) -> None:
    fake = make_cremad(tmp_path / "c", quirks=True)
    code, stdout, _ = index("crema-d", fake.root, "-o", tmp_path / "m.csv", "--verbose")
    assert code == 0
    lfs = fake.root.resolve() / "AudioWAV" / "1001_ITS_ANG_XX.wav"
    assert f"  {lfs}: git-LFS pointer: run git lfs pull" in stdout.splitlines()
    assert sum(1 for line in stdout.splitlines() if line.startswith(f"  {fake.root.resolve()}")) == 6


def test_labels_include_song_and_warnings(tmp_path: Path) -> None:
    fake = make_ravdess(tmp_path / "r", song=True)
    out = tmp_path / "m.csv"
    code, stdout, _ = index("ravdess", fake.root, "--labels", "native", "--include-song", "-o", out)
    assert code == 0
    assert len(read_manifest(out)) == 30 + 12
    c = make_cremad(tmp_path / "c", demographics=None)
    code, stdout, _ = index("CREMA-D", c.root, "--labels", "four", "-o", out)
    assert code == 0
    assert {u.emotion for u in read_manifest(out)} == {"angry", "happy", "neutral", "sad"}
    assert "warning: VideoDemographics.csv not found" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crema-d", "{ravdess}"], "crema-d: no clips named like 1001_DFA_ANG_XX.wav"),
        (["ravdess", "{missing}"], "does not exist"),
        (["mystery", "{ravdess}"], "unknown corpus 'mystery'; known corpora: ravdess, crema-d"),
        (["ravdess", "{ravdess}", "--labels", "seven"], "unknown label policy 'seven'"),
        (["crema-d", "{ravdess}", "--include-song"], "--include-song applies to ravdess only"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    fake = make_ravdess(tmp_path / "r")
    paths = {"ravdess": str(fake.root), "missing": str(tmp_path / "nowhere" / ("x" * 80))}
    out = tmp_path / "m.csv"
    code, stdout, stderr = index(*[a.format(**paths) for a in args], "-o", out)
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr
    assert stderr.count("\n") == 1, "the error must be one line"
    assert "Traceback" not in stderr + stdout
    assert not out.exists()


def test_nothing_kept_exits_1_without_a_manifest(tmp_path: Path) -> None:
    audio_dir = tmp_path / "c" / "AudioWAV"
    audio_dir.mkdir(parents=True)
    (audio_dir / "1001_DFA_ANG_XX.wav").write_text("version https://git-lfs.github.com/spec/v1\n")
    out = tmp_path / "m.csv"
    code, stdout, stderr = index("crema-d", tmp_path / "c", "-o", out)
    assert code == 1
    assert "nothing kept" in stderr and "git-LFS pointer 1" in stderr
    assert "skipped: 1 (git-LFS pointer 1)" in stdout
    assert not out.exists()


def test_list_names_every_corpus() -> None:
    result = runner.invoke(app, ["corpus", "list"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(BUILDERS)
    # the descriptions start in one column, whatever the names' lengths (msp-podcast was misaligned)
    starts = {len(line) - len(line.split(maxsplit=1)[1]) for line in result.stdout.splitlines()}
    assert len(starts) == 1, result.stdout
