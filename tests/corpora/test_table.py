"""A corpus of one's own from a CSV/JSONL table: formats, column and label maps, errors naming row and column."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.config import ConfigError, load_config
from emoshift.core import audio
from emoshift.corpora import resolve_name, scan_source, table
from emoshift.corpora.base import is_unknown_speaker
from emoshift.corpora.manifest import read_manifest, write_manifest

from .fakes import make_cremad, write_silent, write_wav

runner = CliRunner()


def table_tree(tmp_path: Path, header: str, rows: list[str], name: str = "m.csv") -> Path:
    for i in range(4):
        write_wav(tmp_path / "audio" / f"a{i}.wav", 16_000, seed=i)
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_emoshift_columns_meta_and_relative_paths(tmp_path: Path) -> None:
    path = table_tree(
        tmp_path,
        "path,emotion,speaker,gender,age,language,fold,arousal,accent",
        [
            "audio/a0.wav,angry,s1,F,31,en,1,3.5,scottish",
            "audio/a1.wav,Sad,s2,male,,en,2,,",
            f"{tmp_path}/audio/a2.wav,happy,s1,f,31,en,1,,",
        ],
    )
    result = table.scan(path, name="mine")
    by_id = {u.id: u for u in result.utterances}
    assert sorted(by_id) == ["mine/audio/a0", "mine/audio/a1", mine_abs := "mine/audio/a2"]  # absolute: relative too
    u = by_id["mine/audio/a0"]
    assert (u.path, u.corpus, u.speaker, u.gender, u.age) == (
        str(tmp_path / "audio" / "a0.wav"),
        "mine",
        "mine/s1",
        "female",
        31,
    )
    assert (u.emotion, u.native_label, u.language, u.fold, u.arousal) == ("angry", "angry", "en", "1", 3.5)
    assert u.get_meta("accent") == "scottish" and by_id["mine/audio/a1"].meta == ()
    assert by_id["mine/audio/a1"].emotion == "sad" and by_id[mine_abs].gender == "female"
    assert u.duration_s == pytest.approx(0.3, abs=1e-3)
    assert not result.leaky
    back = read_manifest(write_manifest(tmp_path / "out" / "index.csv", result.utterances))
    assert back == result.utterances, "optional fields and meta survive the index manifest"


def test_nkululeko_csv_with_a_label_map(tmp_path: Path) -> None:
    path = table_tree(
        tmp_path,
        "file,speaker,gender,emotion",
        ["audio/a0.wav,s1,female,ang", "audio/a1.wav,s2,male,exc", "audio/a2.wav,s2,male,neu"],
    )
    result = table.scan(path, name="nk", label_map={"ang": "angry", "EXC": "happy", "neu": "neutral"})
    assert {u.id: (u.emotion, u.native_label) for u in result.utterances} == {
        "nk/audio/a0": ("angry", "ang"),
        "nk/audio/a1": ("happy", "exc"),
        "nk/audio/a2": ("neutral", "neu"),
    }


def test_emobox_jsonl_needs_speakers_or_allow_leak(tmp_path: Path) -> None:
    for i in range(3):
        write_wav(tmp_path / "wav" / f"k{i}.wav", 16_000, seed=i)
    rows = [
        {"key": f"utt{i}", "dataset": "x", "wav": f"wav/k{i}.wav", "length": 0.3, "emo": e}
        for i, e in enumerate(["ang", "sad", "neu"])
    ]
    path = tmp_path / "fold_1.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    label_map = {"ang": "angry", "sad": "sad", "neu": "neutral"}
    with pytest.raises(table.TableError, match="no 'speaker' column.*allow_leak: true"):
        table.scan(path, name="emobox", label_map=label_map)
    result = table.scan(path, name="emobox", label_map=label_map, allow_leak=True)
    assert result.leaky and any("flagged leaky" in w for w in result.warnings)
    assert [u.id for u in result.utterances] == ["emobox/utt0", "emobox/utt1", "emobox/utt2"]
    assert all(is_unknown_speaker(u.speaker) for u in result.utterances)
    assert len({u.speaker for u in result.utterances}) == 3
    assert result.utterances[0].get_meta("length") == "0.3"


def test_column_map(tmp_path: Path) -> None:
    path = table_tree(tmp_path, "audio_file,label,talker", ["audio/a0.wav,angry,t1", "audio/a1.wav,sad,t2"])
    with pytest.raises(table.TableError, match="no 'path' column"):
        table.scan(path)
    result = table.scan(path, columns={"path": "audio_file", "emotion": "label", "speaker": "talker"})
    assert [(u.speaker, u.emotion) for u in result.utterances] == [
        ("manifest/t1", "angry"),
        ("manifest/t2", "sad"),
    ]
    assert all(u.meta == () for u in result.utterances), "mapped columns are not meta"
    with pytest.raises(table.TableError, match="maps speaker to column 'who'"):
        table.scan(path, columns={"path": "audio_file", "emotion": "label", "speaker": "who"})


def test_unmapped_labels_list_every_label_with_counts(tmp_path: Path) -> None:
    path = table_tree(
        tmp_path,
        "path,emotion,speaker",
        ["audio/a0.wav,ang,s", "audio/a1.wav,ang,s", "audio/a2.wav,neutral,s", "audio/a3.wav,exc,s"],
    )
    with pytest.raises(table.TableError) as err:
        table.scan(path, label_map={"ang": "angry"})
    message = str(err.value)
    assert "labels exc in column 'emotion' are not emoshift emotions" in message
    assert "Labels found: ang 2, neutral 1, exc 1" in message
    with pytest.raises(table.TableError, match="maps 'ang' to 'furious'"):
        table.scan(path, label_map={"ang": "furious"})


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("audio/a0.wav,angry,s1,abc", r"row 3, column 'start': start must be a number, got 'abc'"),
        (",angry,s1,", r"row 3, column 'path': empty path"),
        ("audio/a0.wav,angry,,", r"row 3, column 'speaker': empty speaker"),
        ("audio/a0.wav,angry,s1,-1", r"row 3, column 'start': start must not be negative"),
        ("audio/a1.wav,angry,s1,,extra", r"row 3: more cells than the header"),
        ("audio/a1.wav,angry,s1,", r"row 3: utterance 'manifest/audio/a1' is listed twice \(also row 2\)"),
    ],
)
def test_row_errors_name_the_row_and_column(tmp_path: Path, row: str, message: str) -> None:
    path = table_tree(tmp_path, "path,emotion,speaker,start", ["audio/a1.wav,sad,s1,", row])
    with pytest.raises(table.TableError, match=message):
        table.scan(path)


def test_bad_gender_and_json(tmp_path: Path) -> None:
    path = table_tree(tmp_path, "path,emotion,speaker,gender", ["audio/a0.wav,sad,s1,woman"])
    with pytest.raises(table.TableError, match=r"row 2, column 'gender': gender must be"):
        table.scan(path)
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"wav": "audio/a0.wav", "emo": "sad", "speaker": "s"}\n{not json\n')
    with pytest.raises(table.TableError, match="row 2: not valid JSON"):
        table.scan(bad)


def test_missing_or_bad_audio_is_skipped_with_its_reason(tmp_path: Path) -> None:
    write_silent(tmp_path / "audio" / "quiet.wav", 16_000)
    path = table_tree(
        tmp_path,
        "path,emotion,speaker",
        ["audio/a0.wav,sad,s1", "audio/gone.wav,sad,s1", "audio/quiet.wav,sad,s2"],
    )
    result = table.scan(path)
    assert [u.id for u in result.utterances] == ["manifest/audio/a0"]
    assert result.skipped_by_reason() == Counter({"unreadable": 1, "silent": 1})


def test_segments_are_read_without_the_rest_and_checked(tmp_path: Path) -> None:
    sr = 16_000
    long = np.concatenate([np.zeros(sr), 0.3 * np.sin(np.arange(sr) * 0.1), np.zeros(sr)]).astype(np.float32)
    sf.write(tmp_path / "long.wav", long, sr, subtype="PCM_16")
    path = tmp_path / "seg.csv"
    path.write_text(
        "path,emotion,speaker,start,end\n"
        "long.wav,angry,s1,1.0,2.0\nlong.wav,sad,s1,0.1,0.9\nlong.wav,happy,s2,2.5,9.0\nlong.wav,neutral,s2,1.5,\n"
    )
    result = table.scan(path)
    kept = {u.id: u for u in result.utterances}
    assert set(kept) == {"manifest/long@1-2", "manifest/long@1.5-"}
    assert kept["manifest/long@1-2"].duration_s == pytest.approx(1.0)
    assert kept["manifest/long@1.5-"].duration_s == pytest.approx(1.5)
    reasons = {s.reason.split(":")[0] for s in result.skipped}
    assert reasons == {"silent", "segment outside the file"}
    wave = audio.load_utterance(kept["manifest/long@1-2"], sr)
    np.testing.assert_allclose(wave, long[sr : 2 * sr], atol=1e-4)
    path.write_text("path,emotion,speaker,start,end\nlong.wav,angry,s1,2.0,1.0\n")
    with pytest.raises(table.TableError, match="row 2: segment end 1s is not after start 2s"):
        table.scan(path)


def test_names_and_dispatch(tmp_path: Path) -> None:
    path = table_tree(tmp_path, "path,emotion,speaker", ["audio/a0.wav,angry,s1", "audio/a1.wav,sad,s2"])
    assert resolve_name("Mine", path) == "mine"
    with pytest.raises(KeyError, match="unknown corpus"):
        resolve_name("mine", tmp_path)
    with pytest.raises(table.TableError, match="is a built-in corpus"):
        table.scan(path, name="ravdess")
    result = scan_source(
        "mine", path, labels="four", include_song=True, labels_from="voice", allow_leak=False
    )
    assert result.corpus == "mine" and len(result.utterances) == 2
    cremad = make_cremad(tmp_path / "c")
    assert scan_source("crema-d", cremad.root, include_song=True, columns={}).corpus == "crema-d"


def test_config_accepts_a_manifest_corpus(tmp_path: Path) -> None:
    path = table_tree(tmp_path, "path,emotion,speaker", ["audio/a0.wav,angry,s1"])
    cfg = load_config(
        None,
        [
            "data.corpora=[mine]",
            f"data.roots.mine={path}",
            "data.label_map={ang: angry}",
            "data.manifest.columns={path: file}",
            "data.labels_from=voice",
        ],
    )
    assert cfg.data.corpora == ["mine"] and cfg.data.manifest.columns == {"path": "file"}
    with pytest.raises(ConfigError, match="unknown corpus 'mine'"):
        load_config(None, ["data.corpora=[mine]", f"data.roots.mine={tmp_path}"])
    with pytest.raises(ConfigError, match="labels_from"):
        load_config(None, ["data.labels_from=crowd"])


def test_cli_index_manifest_prints_the_summary(tmp_path: Path) -> None:
    path = table_tree(
        tmp_path,
        "file,speaker,gender,emotion",
        ["audio/a0.wav,s1,female,ang", "audio/a1.wav,s2,male,sad", "audio/missing.wav,s2,male,sad"],
    )
    out = tmp_path / "index.csv"
    result = runner.invoke(
        app, ["corpus", "index", "manifest", str(path), "--label-map", "ang=angry", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert "m: 2 utterances kept" in result.stdout and "kept per emotion x gender" in result.stdout
    assert "speakers: 2 (1 male, 1 female)" in result.stdout and "skipped: 1 (unreadable 1)" in result.stdout
    assert [u.id for u in read_manifest(out)] == ["m/audio/a0", "m/audio/a1"]
    result = runner.invoke(app, ["corpus", "index", "manifest", str(path), "-o", str(out)])
    assert result.exit_code == 2 and "Labels found: sad 2, ang 1" in result.stderr
    result = runner.invoke(
        app, ["corpus", "index", "ravdess", str(path), "--label-map", "a=b", "-o", str(out)]
    )
    assert result.exit_code == 2 and "--label-map applies to manifest only" in result.stderr


def test_paths_outside_the_manifests_folder_are_allowed_and_listed(tmp_path: Path) -> None:
    """Absolute, ``..`` and symlinked paths that resolve outside the manifest's folder are used, and the
    summary lists them (a manifest may point at a shared audio store; the user should see that it does)."""
    store = tmp_path / "store"
    for i in range(3):
        write_wav(store / f"s{i}.wav", 16_000, seed=i)
    home = tmp_path / "project"
    write_wav(home / "audio" / "in.wav", 16_000, seed=9)
    (home / "audio" / "link.wav").symlink_to(store / "s2.wav")
    path = home / "m.csv"
    path.write_text("path,emotion,speaker\naudio/in.wav,angry,a\n"
                    f"{store / 's0.wav'},sad,a\n../store/s1.wav,happy,b\naudio/link.wav,sad,b\n")
    result = table.scan(path, name="mine")
    assert len(result.utterances) == 4 and not result.skipped
    [warning] = [w for w in result.warnings if "outside" in w]
    assert warning.startswith("3 path(s) resolve outside the manifest's folder")
    out = runner.invoke(app, ["corpus", "index", "manifest", str(path), "-o", str(tmp_path / "index.csv")])
    assert out.exit_code == 0, out.stderr
    assert "warning: 3 path(s) resolve outside the manifest's folder" in " ".join(out.stdout.split())
    inside = home / "m2.csv"
    inside.write_text("path,emotion,speaker\naudio/in.wav,angry,a\n")
    assert not [w for w in table.scan(inside, name="mine").warnings if "outside" in w]


def test_ids_of_paths_outside_the_folder_are_relative_to_what_they_share(tmp_path: Path) -> None:
    """Issue 24: ids glued the corpus name to an absolute path (``my_corpus/home/me/clips/...``)."""
    for i in range(2):
        write_wav(tmp_path / "me" / "clips" / f"c{i}.wav", 16_000, seed=i)
    path = tmp_path / "tables" / "my_corpus.csv"
    path.parent.mkdir()
    path.write_text(f"path,emotion,speaker\n{tmp_path}/me/clips/c0.wav,angry,a\n../me/clips/c1.wav,sad,b\n")
    ids = sorted(u.id for u in table.scan(path, name="my_corpus").utterances)
    assert ids == ["my_corpus/me/clips/c0", "my_corpus/me/clips/c1"]


def test_every_corpus_index_reads_back_as_a_table(corpus_name: str, tmp_path: Path) -> None:
    """Issue 24: a manifest ``corpus index`` wrote ended in ``meta key 'corpus' is an Utterance field``. The
    index of every registered corpus is a valid table, read back with the same audio, labels and fields, and
    its own index reads back the same way again."""
    from .fakes import BUILDERS

    fake = BUILDERS[corpus_name](tmp_path / corpus_name)
    scanned = scan_source(corpus_name, fake.root, labels="native")
    first = write_manifest(tmp_path / "index" / f"{corpus_name}.csv", scanned.utterances)
    again = table.scan(first, "native", name="mine")
    assert not again.skipped
    fields = ("path", "gender", "emotion", "native_label", "intensity", "sentence", "age", "race", "ethnicity",
              "fold", "language", "start", "end", "arousal", "valence", "dominance", "agreement", "meta")
    before = {u.id: u for u in scanned.utterances}
    after = {u.id.removeprefix("mine/"): u for u in again.utterances}
    assert set(after) == set(before)
    for uid, u in before.items():
        assert [getattr(after[uid], f) for f in fields] == [getattr(u, f) for f in fields], uid
        assert after[uid].speaker == f"mine/{u.speaker}"
        assert after[uid].duration_s == pytest.approx(u.duration_s, abs=1e-3)
    second = write_manifest(tmp_path / "index" / "mine.csv", again.utterances)  # the index of the index
    assert [u.path for u in table.scan(second, "native", name="twice").utterances] == [
        u.path for u in again.utterances
    ]
    command = ["corpus", "index", "manifest", str(first), "--labels", "native", "-o", str(tmp_path / "cli.csv")]
    result = runner.invoke(app, command)
    assert result.exit_code == 2 and "--name NAME" in result.stderr, result.output  # named after its corpus
    result = runner.invoke(app, [*command, "--name", "mine"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_a_column_named_meta_is_one_line(tmp_path: Path) -> None:
    path = table_tree(tmp_path, "path,emotion,speaker,meta", ["audio/a0.wav,angry,s1,x"])
    with pytest.raises(table.TableError, match="column named 'meta'"):
        table.scan(path)


@pytest.mark.parametrize(
    ("header", "rows", "extra", "flag", "config"),
    [
        ("file,speaker,emotion", ["audio/a0.wav,s1,ang"], [], "--label-map (e.g. --label-map ang=angry)",
         "data.label_map (e.g. {ang: angry})"),
        ("wave,speaker,emotion", ["audio/a0.wav,s1,angry"], [], "--column path=<column>",
         "data.manifest.columns: {path: <column>}"),
        ("path,emotion", ["audio/a0.wav,angry"], [], "--column speaker=<column>, or pass --allow-leak",
         "data.manifest.columns: {speaker: <column>}, or set data.split.allow_leak: true"),
        ("path,emotion,speaker", ["audio/a0.wav,angry,s1"], ["--column", "gender=sex"], "--column maps gender",
         "data.manifest.columns maps gender"),
    ],
)
def test_errors_name_the_options_as_the_user_gave_them(
    tmp_path: Path, header: str, rows: list[str], extra: list[str], flag: str, config: str
) -> None:
    """Issue 24: ``corpus index`` users typed --label-map / --column and were told data.label_map."""
    path = table_tree(tmp_path, header, rows)
    result = runner.invoke(app, ["corpus", "index", "manifest", str(path), *extra, "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and flag in result.stderr, result.stderr
    assert "data." not in result.stderr
    columns = dict(p.split("=") for p in extra[1::2])
    with pytest.raises(table.TableError) as err:
        table.scan(path, columns=columns)
    assert config in str(err.value)
