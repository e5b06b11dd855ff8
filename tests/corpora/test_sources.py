"""Corpus sources: ROOT parsed into one CorpusSource; a Hugging Face dataset, a lhotse manifest pair and an
audformat database, each built with its real library on synthetic audio, scanned with the manifest checks
(speaker column or refusal, label map, bad audio skipped with its reason, text kept) and trained and evaluated
through ``emoshift train`` / ``emoshift evaluate`` like a built-in corpus."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.core.io import read_csv
from emoshift.corpora import CorpusError, MissingLibraryError, resolve_name, scan_source, source_of
from emoshift.corpora.table import TableError

from .sources_fakes import GAP_S, LABEL_MAPS, SOURCES, manifest_rows

runner = CliRunner()
pytest.importorskip("datasets")
pytest.importorskip("lhotse")
pytest.importorskip("audformat")


@pytest.fixture(scope="module")
def built(synth_more: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Source kind -> ROOT spec, built once from the synthetic manifest corpus (96 takes, 8 speakers)."""
    out = tmp_path_factory.mktemp("sources")
    table = synth_more / "manifest" / "manifest.csv"
    return {kind: make(table, out / kind) for kind, make in SOURCES.items()}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sources-cache")


def _scan(spec: str, kind: str, cache: Path, **options: object) -> object:
    return scan_source("own", spec, "six", label_map=LABEL_MAPS[kind], cache_dir=str(cache), **options)


# -- the ROOT forms ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("root", "kind", "own"),
    [
        ("/data/RAVDESS", "folder", False),
        ("/data/mine.csv", "table", True),
        ("/data/mine.JSONL", "table", True),
        ("hf:/data/ds", "hf", True),
        ("HF:/data/ds", "hf", True),
        ("lhotse:/data/manifests", "lhotse", True),
        ("audformat:~/db", "audformat", True),
    ],
)
def test_source_of(root: str, kind: str, own: bool) -> None:
    source = source_of(root)
    assert (source.kind, source.own, source.spec) == (kind, own, root)
    assert "~" not in str(source.path) and not str(source.path).lower().startswith(("hf:", "lhotse:"))


def test_own_sources_name_their_corpus(tmp_path: Path) -> None:
    assert resolve_name("Mine", "hf:/data/ds") == "mine"
    with pytest.raises(TableError, match="built-in corpus"):
        scan_source("ravdess", f"lhotse:{tmp_path}")  # a registry name is never a corpus of your own
    with pytest.raises(KeyError, match="unknown corpus"):
        resolve_name("mine", str(tmp_path))  # a folder is a built-in corpus: an unknown name is refused
    assert source_of(f"audformat:{tmp_path}").missing() is None
    assert source_of(f"hf:{tmp_path / 'nope'}").missing() == "hf source not found"
    with pytest.raises(Exception, match="needs a path after the colon"):
        source_of("lhotse:")


@pytest.mark.parametrize(("kind", "library"), [("hf", "datasets"), ("lhotse", "lhotse"), ("audformat", "audformat")])
def test_missing_library_is_one_line_with_the_extra(
    kind: str, library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # import fails as if it were not installed
    with pytest.raises(MissingLibraryError, match=rf"pip install 'emoshift\[{kind}\]'"):
        scan_source("mine", f"{kind}:{tmp_path}")
    result = runner.invoke(app, ["train", "-c", f"mine={kind}:{tmp_path}", "-m", "egemaps", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert f"pip install 'emoshift[{kind}]'" in result.output and "Traceback" not in result.output


# -- each source scanned ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(SOURCES))
def test_scan_keeps_every_good_take_and_skips_the_bad_one(
    kind: str, built: dict[str, str], cache: Path, synth_more: Path
) -> None:
    rows = manifest_rows(synth_more / "manifest" / "manifest.csv")
    sc = _scan(built[kind], kind, cache)
    assert sc.corpus == "own" and not sc.leaky
    expected = len(rows) - (1 if kind == "hf" else 0)  # the HF test split's first row is the broken clip
    assert len(sc.utterances) == expected
    assert sc.speakers == sorted({f"own/{r['speaker']}" for r in rows})
    assert {u.gender for u in sc.utterances} == {"female", "male"}
    assert len(sc.skipped) == 1
    reason = {"hf": "unreadable: not audio", "lhotse": "unreadable: no such file", "audformat": "silent"}[kind]
    assert sc.skipped[0].reason.startswith(reason)
    # the spoken text (HF and lhotse ``text``, audformat ``transcription``) is the utterance's sentence
    assert all(u.sentence == f"take of {u.speaker.split('/')[1]}" for u in sc.utterances)
    # every take keeps its emotion: the labels per speaker equal the manifest's
    want = sorted((f"own/{r['speaker']}", r["emotion"]) for r in rows)
    got = sorted((u.speaker, u.emotion) for u in sc.utterances)
    assert got == want if kind != "hf" else set(got) <= set(want)


def test_hf_reads_class_names_splits_and_extracts_bytes_once(built: dict[str, str], cache: Path) -> None:
    sc = _scan(built["hf"], "hf", cache)
    assert {u.native_label for u in sc.utterances} == set(LABEL_MAPS["hf"])  # ClassLabel names, not integers
    assert {u.fold for u in sc.utterances} == {"train", "test"}  # the DatasetDict's splits
    assert all(u.id == f"own/{u.id.split('/')[1]}" and "_" in u.id for u in sc.utterances)  # the clips' names
    paths = {u.path: Path(u.path).stat().st_mtime_ns for u in sc.utterances}
    assert all(Path(p).is_relative_to(cache / "sources" / "hf") for p in paths)
    again = _scan(built["hf"], "hf", cache)
    assert {u.path: Path(u.path).stat().st_mtime_ns for u in again.utterances} == paths  # nothing rewritten


def test_lhotse_segments_are_the_takes(built: dict[str, str], cache: Path, synth_more: Path) -> None:
    """Two takes per recording: the second supervision starts after the first take and the gap, and each
    segment decodes to exactly its take's samples."""
    sc = _scan(built["lhotse"], "lhotse", cache)
    by_id = {u.id: u for u in sc.utterances}
    first, second = by_id["own/s01-0-0"], by_id["own/s01-0-1"]
    assert first.path == second.path and first.start == 0.0
    assert second.start == pytest.approx(first.duration_s + GAP_S, abs=1e-4)
    takes = [r for r in manifest_rows(synth_more / "manifest" / "manifest.csv") if r["speaker"] == "s01"][:2]
    for u, take in zip((first, second), takes, strict=True):
        assert u.duration_s == pytest.approx(sf.info(take["path"]).duration, abs=1e-3)
        assert (u.emotion, u.fold) == (take["emotion"], take["fold"])  # custom keys read as columns


def test_audformat_speaker_labels_give_gender_and_age(built: dict[str, str], cache: Path, synth_more: Path) -> None:
    rows = {Path(r["path"]).stem: r for r in manifest_rows(synth_more / "manifest" / "manifest.csv")}
    for u in _scan(built["audformat"], "audformat", cache).utterances:
        r = rows[Path(u.path).stem]
        assert (u.gender, u.age, u.emotion) == (r["gender"], int(r["age"]), r["emotion"])


# -- the manifest checks, on each source ------------------------------------------------------------------
def test_hf_labels_need_a_map(built: dict[str, str], cache: Path) -> None:
    with pytest.raises(TableError, match=r"labels ang, dis, fea, hap, neu in column 'emotion' are not emoshift emotions; map them with data\.label_map"):
        scan_source("own", built["hf"], cache_dir=str(cache))


@pytest.mark.parametrize("kind", list(SOURCES))
def test_no_speaker_is_refused_unless_allow_leak(kind: str, built: dict[str, str], cache: Path) -> None:
    """A speaker field mapped to one the source lacks (lhotse, audformat) or a dataset without one (HF)."""
    hidden = {"hf": "speaker_id", "lhotse": "speaker", "audformat": "speaker"}[kind]
    columns = {"speaker": "nobody"} if kind != "hf" else {}
    spec = built[kind]
    if kind == "hf":
        from datasets import load_from_disk

        path = source_of(spec).path
        stripped = path.parent / "hf-nospeaker"
        if not stripped.exists():
            load_from_disk(str(path)).remove_columns(hidden).save_to_disk(str(stripped))
        spec = f"hf:{stripped}"
    with pytest.raises(Exception, match="speaker") as err:
        _scan(spec, kind, cache, columns=columns)
    assert "allow_leak" in str(err.value) or "nobody" in str(err.value)
    if kind == "hf":
        sc = _scan(spec, kind, cache, allow_leak=True)
        assert sc.leaky and any("pseudo-speaker" in w for w in sc.warnings)


# -- trained and evaluated like a built-in corpus ----------------------------------------------------------
@pytest.mark.slow
def test_each_trains_and_evaluates_like_a_builtin_corpus(built: dict[str, str], tmp_path: Path) -> None:
    """One tiny CNN run trained on the three sources at once (kept lean: one log-mel pass each, where eGeMAPS
    took 20 s of openSMILE); each gets its speaker split, its test speakers scored, and scores the same through
    ``emoshift evaluate``."""
    names = {kind: f"my-{kind}" for kind in SOURCES}
    run = tmp_path / "run"
    label_map = {k: v for m in LABEL_MAPS.values() for k, v in m.items()}
    sets = [f"data.cache_dir={tmp_path / 'cache'}", "features.n_mels=32", "features.crop_s=1.0", "model.width_mult=0.125",
            "training.epochs=1", "training.batch_size=16", "evaluation.n_bootstrap=50", "evaluation.figures=false",
            *(f"data.label_map.{k}={v}" for k, v in label_map.items())]
    corpora = [x for kind, spec in built.items() for x in ("-c", f"{names[kind]}={spec}")]
    result = runner.invoke(app, ["train", *corpora, "-m", "resnet18", "-o", str(run), "-q",
                                 *(x for s in sets for x in ("--set", s))])
    assert result.exit_code == 0, result.output
    first = {}
    for kind, name in names.items():
        metrics = json.loads((run / "metrics" / f"{name}.json").read_text())
        split = {r["id"]: r["split"] for r in read_csv(run / "splits" / f"{name}.csv")}
        predictions = read_csv(run / "predictions" / f"{name}.csv")
        assert metrics["split"] == "test" and not metrics["leaky"] and metrics["corpus"] == name
        assert metrics["n"] == len(predictions) == sum(part == "test" for part in split.values()) > 0
        assert {r["id"] for r in predictions} == {i for i, part in split.items() if part == "test"}
        assert len(split) == 96 - (kind == "hf")  # every good take split, the bad clip skipped at the scan
        first[name] = (metrics["n"], metrics["uar"])
    on = [x for kind, spec in built.items() for x in ("--on", f"{names[kind]}={spec}")]
    result = runner.invoke(app, ["evaluate", str(run), *on, "-q"])
    assert result.exit_code == 0, result.output
    for name, (n, uar) in first.items():
        again = json.loads((run / "metrics" / f"{name}.json").read_text())
        assert (again["n"], again["uar"]) == (n, uar)  # each source scans the same way again


# -- the other forms each source comes in -----------------------------------------------------------------
def test_hf_parquet_and_arrow_files_and_audio_paths(built: dict[str, str], cache: Path, tmp_path: Path) -> None:
    """The same dataset as one parquet file, as a folder of arrow files, and with the audio as paths
    (relative to the dataset) instead of bytes: the same utterances every time."""
    from datasets import Audio, Value, load_from_disk

    reference = _scan(built["hf"], "hf", cache)
    want = sorted((u.id.split("/")[1], u.speaker, u.emotion, round(u.duration_s or 0, 4)) for u in reference.utterances)
    ds = load_from_disk(str(source_of(built["hf"]).path))
    both = {split: ds[split] for split in ("train", "test")}
    from datasets import concatenate_datasets

    flat = concatenate_datasets([both["train"], both["test"]])
    flat.to_parquet(str(tmp_path / "data.parquet"))
    (tmp_path / "arrow").mkdir()
    for split, part in both.items():
        part.save_to_disk(str(tmp_path / "saved" / split))
        (tmp_path / "arrow" / f"{split}.arrow").write_bytes(
            next((tmp_path / "saved" / split).glob("*.arrow")).read_bytes()
        )
    for spec in (f"hf:{tmp_path / 'data.parquet'}", f"hf:{tmp_path / 'arrow'}"):
        sc = _scan(spec, "hf", cache)
        got = sorted((u.id.split("/")[1], u.speaker, u.emotion, round(u.duration_s or 0, 4)) for u in sc.utterances)
        assert got == want and len(sc.skipped) == 1, spec
    # audio as paths: the clips written beside the dataset, a plain string column
    (tmp_path / "clips").mkdir()
    raw = flat.cast_column("audio", Audio(decode=False))
    paths = []
    for i, clip in enumerate(raw["audio"]):
        out = tmp_path / "clips" / f"{Path(clip['path']).stem}.wav"
        out.write_bytes(clip["bytes"])
        paths.append(f"../clips/{out.name}" if i % 2 else str(out))  # relative (to the dataset) and absolute
    by_path = raw.remove_columns("audio").add_column("file", paths, feature=Value("string"))
    by_path.save_to_disk(str(tmp_path / "by-path"))
    sc = _scan(f"hf:{tmp_path / 'by-path'}", "hf", cache)
    assert sorted(u.id.split("/")[1] for u in sc.utterances) == [w[0] for w in want]
    assert all(Path(u.path).parent == tmp_path / "clips" for u in sc.utterances)
    assert sc.skipped[0].path == str(tmp_path / "clips" / "broken.wav")


def test_hf_skips_name_the_row(built: dict[str, str], cache: Path) -> None:
    sc = _scan(built["hf"], "hf", cache)
    assert sc.skipped[0].path.endswith("(broken.wav)") and ": row " in sc.skipped[0].path


def test_lhotse_plain_jsonl_and_a_supervisions_file(built: dict[str, str], cache: Path, tmp_path: Path) -> None:
    from lhotse import load_manifest

    src = source_of(built["lhotse"]).path
    for kind in ("recordings", "supervisions"):
        load_manifest(src / f"{kind}.jsonl.gz").to_file(tmp_path / f"train_{kind}.jsonl")
    (tmp_path / "audio").symlink_to(src / "audio")
    reference = sorted((u.id, u.start, u.end) for u in _scan(built["lhotse"], "lhotse", cache).utterances)
    for spec in (f"lhotse:{tmp_path}", f"lhotse:{tmp_path / 'train_supervisions.jsonl'}"):
        assert sorted((u.id, u.start, u.end) for u in _scan(spec, "lhotse", cache).utterances) == reference
    (tmp_path / "dev_recordings.jsonl").write_text("")
    with pytest.raises(CorpusError, match="exactly one recordings manifest"):
        _scan(f"lhotse:{tmp_path}", "lhotse", cache)


def test_audformat_segmented_table(tmp_path: Path, cache: Path) -> None:
    """Emotion on segments of one file (a segmented index), the speaker from a filewise table."""
    import audformat
    import numpy as np

    from .fakes import tone

    wave = np.concatenate([tone(16_000, seconds=0.6, seed=s) for s in range(4)])
    (tmp_path / "db" / "wav").mkdir(parents=True)
    sf.write(tmp_path / "db" / "wav" / "long.wav", wave, 16_000)
    db = audformat.Database(name="seg", source="test", usage="unrestricted")
    db.schemes["emotion"] = audformat.Scheme("str")
    db.schemes["speaker"] = audformat.Scheme("str")
    db["files"] = audformat.Table(audformat.filewise_index(["wav/long.wav"]))
    db["files"]["speaker"] = audformat.Column(scheme_id="speaker")
    db["files"]["speaker"].set(["spk"])
    index = audformat.segmented_index(["wav/long.wav"] * 4, starts=[0.0, 0.6, 1.2, 1.8], ends=[0.6, 1.2, 1.8, None])
    db["segments"] = audformat.Table(index)
    db["segments"]["emotion"] = audformat.Column(scheme_id="emotion")
    db["segments"]["emotion"].set(["angry", "sad", "happy", "neutral"])
    db.save(str(tmp_path / "db"))
    sc = scan_source("seg", f"audformat:{tmp_path / 'db'}", "six")
    got = sorted((u.start, u.end, u.emotion, u.speaker) for u in sc.utterances)
    assert got == [(0.0, 0.6, "angry", "seg/spk"), (0.6, 1.2, "sad", "seg/spk"),
                   (1.2, 1.8, "happy", "seg/spk"), (1.8, None, "neutral", "seg/spk")]
    assert [round(u.duration_s or 0, 3) for u in sorted(sc.utterances, key=lambda u: u.start or 0)] == [0.6] * 4


def test_corpus_index_writes_a_source_as_a_manifest(built: dict[str, str], tmp_path: Path) -> None:
    """``emoshift corpus index manifest lhotse:PATH``: the index keeps the segments, and reads back as a table."""
    from emoshift.corpora.manifest import read_manifest

    out = tmp_path / "index.csv"
    result = runner.invoke(app, ["corpus", "index", "manifest", built["lhotse"], "--name", "mine", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_manifest(out)
    assert len(rows) == 96 and all(u.corpus == "mine" and u.end is not None for u in rows)
    assert "gone" in result.output or "skipped" in result.output
