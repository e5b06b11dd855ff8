"""Feature cache: reuse, per-file and per-config invalidation, crash safety, bad files, memmap reads, CLI."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import emoshift.features.cache as cache_mod
from emoshift.cli import app
from emoshift.config.features import FeatureConfig
from emoshift.core import audio
from emoshift.corpora.base import Utterance
from emoshift.features.cache import CHUNK, FeatureCache, FeatureStore
from emoshift.features.logmel import log_mel
from tests.corpora.fakes import LFS_POINTER, make_ravdess, write_garbage, write_silent

CFG = FeatureConfig(n_mels=32)  # small and fast; the cache does not care about the size


def _wave(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Tone bursts in noise, with quiet ends for the trimmer to cut (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    burst = (np.sin(2 * np.pi * 3 * t) > 0) & (t > 0.1) & (t < seconds - 0.1)
    x = 0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * t) * burst + 0.003 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def _utt(path: Path, i: int) -> Utterance:
    return Utterance(
        id=f"fake/{path.stem}",
        path=str(path),
        corpus="fake",
        speaker=f"fake/{i % 3}",
        gender=None,
        emotion="angry",
        native_label="ANG",
    )


@pytest.fixture
def corpus(tmp_path: Path) -> list[Utterance]:
    """Twelve short clips at 48 and 16 kHz, of different lengths."""
    utts = []
    for i in range(12):
        sr = 48_000 if i % 2 else 16_000
        path = tmp_path / "audio" / f"clip{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _wave(sr, 0.4 + 0.05 * i, seed=i), sr, subtype="PCM_16")
        utts.append(_utt(path, i))
    return utts


@pytest.fixture
def count_loads(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count audio.load calls (in-process builds, workers=0) to prove what was and was not recomputed."""
    calls: list[str] = []
    real = audio.load

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(audio, "load", counting)
    return lambda: len(calls)


def _direct(u: Utterance, cfg: FeatureConfig = CFG) -> np.ndarray:
    wave = audio.load(u.path, cfg.sample_rate, trim=cfg.trim_silence, trim_top_db=cfg.trim_top_db)
    return log_mel(wave, cfg.sample_rate, cfg)


def _bump(path: str, seed: int) -> None:
    """Rewrite a clip with new content and a later mtime (as an edited or re-downloaded file)."""
    info = sf.info(path)
    sf.write(path, _wave(info.samplerate, 0.7, seed=seed), info.samplerate, subtype="PCM_16")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


# ----------------------------------------------------------------------------------------------------- reads


def test_get_returns_the_direct_computation(tmp_path: Path, corpus: list[Utterance]) -> None:
    store = FeatureCache(tmp_path / "cache").build("fake", corpus, CFG, workers=0)
    assert store.ids == [u.id for u in corpus] and len(store) == len(corpus)
    assert store.path == tmp_path / "cache" / f"fake-{CFG.key()}"
    for u in corpus:
        got = store.get(u.id)
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.flags.writeable
        assert got.shape == (32, store.frames(u.id))
        np.testing.assert_array_equal(got, _direct(u))
    # on disk: one (n_mels, total_frames) float32 array that numpy memory-maps
    data = np.load(store.data_path, mmap_mode="r")
    assert isinstance(data, np.memmap) and data.shape == (32, sum(store.frames(i) for i in store.ids))
    assert "fake/nope" not in store
    with pytest.raises(KeyError, match="fake/nope"):
        store.get("fake/nope")


def test_store_pickles_without_its_data(tmp_path: Path, corpus: list[Utterance]) -> None:
    store = FeatureCache(tmp_path / "cache").build("fake", corpus, CFG, workers=0)
    first = store.get(corpus[0].id)  # opens the memmap in this process
    blob = pickle.dumps(store)
    assert len(blob) < 20_000  # the index, not the spectrograms
    clone = pickle.loads(blob)
    assert clone._data is None  # reopened lazily, as in a DataLoader worker
    np.testing.assert_array_equal(clone.get(corpus[0].id), first)
    reopened = FeatureStore.open(store.path)
    np.testing.assert_array_equal(reopened.get(corpus[-1].id), store.get(corpus[-1].id))


def test_parallel_build_equals_in_process(
    tmp_path: Path, corpus: list[Utterance], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(corpus) > CHUNK  # enough work for the pool to be used
    serial = FeatureCache(tmp_path / "a").build("fake", corpus, CFG, workers=0)
    monkeypatch.setattr(cache_mod, "CHUNK", 2)  # six tasks: each worker appends to its shard several times
    parallel = FeatureCache(tmp_path / "b").build("fake", corpus, CFG, workers=2)
    assert parallel.stats is not None and parallel.stats.workers == 2
    assert parallel.ids == serial.ids
    for u in corpus:
        np.testing.assert_array_equal(parallel.get(u.id), serial.get(u.id))


def test_default_build_on_one_core_stays_in_process(
    tmp_path: Path, corpus: list[Utterance], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pool where this process may use one core (emoshift.core.cores): its workers would only take turns."""
    assert len(corpus) > CHUNK
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    store = FeatureCache(tmp_path / "c").build("fake", corpus, CFG)
    assert store.stats is not None and store.stats.workers == 1 and len(store) == len(corpus)


# --------------------------------------------------------------------------------------- reuse, invalidation


def test_second_build_reuses_without_decoding(
    tmp_path: Path, corpus: list[Utterance], count_loads: Callable[[], int]
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    first = cache.build("fake", corpus, CFG, workers=0)
    assert count_loads() == len(corpus)
    assert first.stats is not None and (first.stats.extracted, first.stats.reused) == (len(corpus), 0)
    second = FeatureCache(tmp_path / "cache").build("fake", corpus, CFG, workers=0)  # a new run
    assert count_loads() == len(corpus)  # nothing decoded again
    assert second.stats is not None and (second.stats.extracted, second.stats.reused) == (0, len(corpus))
    assert second.data_path == first.data_path  # not even rewritten
    for u in corpus:
        np.testing.assert_array_equal(second.get(u.id), first.get(u.id))


def test_two_roots_of_one_corpus_keep_their_entries_side_by_side(
    tmp_path: Path, corpus: list[Utterance], count_loads: Callable[[], int]
) -> None:
    """Issue 24: the same corpus at two roots (same ids, other files) replaced each other's entries in the
    shared cache and was extracted again at every switch."""
    import dataclasses
    import shutil

    shutil.copytree(tmp_path / "audio", tmp_path / "second-root")
    other = [dataclasses.replace(u, path=str(tmp_path / "second-root" / Path(u.path).name)) for u in corpus]
    _bump(other[0].path, seed=77)  # one file differs between the copies
    cache = FeatureCache(tmp_path / "cache")
    first_a = cache.build("fake", corpus, CFG, workers=0).get(corpus[0].id)
    first_b = cache.build("fake", other, CFG, workers=0).get(corpus[0].id)
    assert count_loads() == 2 * len(corpus)
    for _ in range(2):  # switching back and forth decodes nothing
        again_a, again_b = cache.build("fake", corpus, CFG, workers=0), cache.build("fake", other, CFG, workers=0)
        assert again_a.stats is not None and (again_a.stats.extracted, again_a.stats.reused) == (0, len(corpus))
        assert again_b.stats is not None and (again_b.stats.extracted, again_b.stats.reused) == (0, len(corpus))
    assert count_loads() == 2 * len(corpus)
    np.testing.assert_array_equal(again_b.get(corpus[0].id), first_b)
    again_a = cache.build("fake", corpus, CFG, workers=0)
    np.testing.assert_array_equal(again_a.get(corpus[0].id), first_a)
    assert not np.array_equal(first_a, first_b)  # each root its own


def test_changed_file_is_recomputed_alone(
    tmp_path: Path, corpus: list[Utterance], count_loads: Callable[[], int]
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    before = cache.build("fake", corpus, CFG, workers=0)
    old = {u.id: before.get(u.id) for u in corpus}
    changed = corpus[3]
    _bump(changed.path, seed=99)
    after = cache.build("fake", corpus, CFG, workers=0)
    assert count_loads() == len(corpus) + 1
    assert after.stats is not None and (after.stats.extracted, after.stats.reused) == (1, len(corpus) - 1)
    np.testing.assert_array_equal(after.get(changed.id), _direct(changed))
    assert after.get(changed.id).shape != old[changed.id].shape
    for u in corpus:
        if u is not changed:
            np.testing.assert_array_equal(after.get(u.id), old[u.id])
    assert not before.data_path.exists()  # the superseded data file is gone
    assert sorted(p.name for p in after.path.iterdir()) == sorted(
        [".lock", "index.json", after.data_path.name]
    )


def test_removed_files_are_dropped_and_subsets_do_not_evict(tmp_path: Path, corpus: list[Utterance]) -> None:
    cache = FeatureCache(tmp_path / "cache")
    cache.build("fake", corpus, CFG, workers=0)
    part = cache.build("fake", corpus[:4], CFG, workers=0)  # e.g. evaluation on some speakers
    assert part.ids == [u.id for u in corpus[:4]] and corpus[5].id not in part
    assert part.stats is not None and (part.stats.reused, part.stats.dropped) == (4, 0)
    full = cache.build("fake", corpus, CFG, workers=0)  # the others were kept, not recomputed
    assert full.stats is not None and (full.stats.extracted, full.stats.reused) == (0, len(corpus))

    gone = corpus[7]
    os.remove(gone.path)
    rest = [u for u in corpus if u is not gone]
    after = cache.build("fake", rest, CFG, workers=0)
    assert after.stats is not None and (after.stats.extracted, after.stats.dropped) == (0, 1)
    index = json.loads((after.path / "index.json").read_text())
    assert gone.id not in {e["id"] for e in index["entries"]}
    assert len(index["entries"]) == len(rest)


def test_config_change_builds_a_new_cache(tmp_path: Path, corpus: list[Utterance]) -> None:
    cache = FeatureCache(tmp_path / "cache")
    a = cache.build("fake", corpus, CFG, workers=0)
    b = cache.build("fake", corpus, CFG.model_copy(update={"n_mels": 24}), workers=0)
    assert b.path != a.path and b.stats is not None and b.stats.extracted == len(corpus)
    assert b.get(corpus[0].id).shape[0] == 24
    same_key = cache.build("fake", corpus, CFG.model_copy(update={"crop_s": 1.0}), workers=0)
    assert same_key.path == a.path and same_key.stats is not None and same_key.stats.extracted == 0
    assert same_key.cfg.crop_s == 1.0  # the store carries the caller's config
    np.testing.assert_array_equal(a.get(corpus[0].id), _direct(corpus[0]))  # the first one is untouched


def test_unreadable_index_means_a_fresh_build(tmp_path: Path, corpus: list[Utterance]) -> None:
    cache = FeatureCache(tmp_path / "cache")
    store = cache.build("fake", corpus, CFG, workers=0)
    (store.path / "index.json").write_text("{ not json")
    again = cache.build("fake", corpus, CFG, workers=0)
    assert again.stats is not None and again.stats.extracted == len(corpus)
    np.testing.assert_array_equal(again.get(corpus[2].id), _direct(corpus[2]))


# ------------------------------------------------------------------------------------------------- crashes


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != ".lock"}


def test_crash_mid_build_leaves_the_previous_cache_intact(
    tmp_path: Path, corpus: list[Utterance], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    store = cache.build("fake", corpus, CFG, workers=0)
    before = _snapshot(store.path)
    old = {u.id: store.get(u.id) for u in corpus}
    for i, u in enumerate(corpus):
        _bump(u.path, seed=50 + i)  # everything must be recomputed: the build runs several chunks

    real, calls = cache_mod.log_mel_many, []

    def crash_on_second_chunk(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "log_mel_many", crash_on_second_chunk)
    with pytest.raises(RuntimeError, match="simulated crash"):
        cache.build("fake", corpus, CFG, workers=0)
    assert _snapshot(store.path) == before  # same files, same bytes: no temp file left either
    survivor = FeatureStore.open(store.path)
    for u in corpus:
        np.testing.assert_array_equal(survivor.get(u.id), old[u.id])

    def disk_full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod, "log_mel_many", real)
    monkeypatch.setattr(cache_mod, "atomic_write_text", disk_full)
    with pytest.raises(OSError, match="disk full"):  # the crash comes at the commit itself
        cache.build("fake", corpus, CFG, workers=0)
    assert _snapshot(store.path) == before


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="the patch reaches workers by fork")
def test_worker_crash_leaves_the_previous_cache_intact(
    tmp_path: Path, corpus: list[Utterance], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    store = cache.build("fake", corpus, CFG, workers=0)
    before = _snapshot(store.path)
    for i, u in enumerate(corpus):
        _bump(u.path, seed=70 + i)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("worker blew up")

    monkeypatch.setattr(cache_mod, "log_mel_many", broken)  # inherited by the forked workers
    with pytest.raises(RuntimeError, match="worker blew up"):
        cache.build("fake", corpus, CFG, workers=2)
    assert _snapshot(store.path) == before  # shards and the half-written data file are gone too


def test_leftovers_of_a_killed_build_are_removed(tmp_path: Path, corpus: list[Utterance]) -> None:
    cache = FeatureCache(tmp_path / "cache")
    store = cache.build("fake", corpus, CFG, workers=0)
    (store.path / "features-deadbeef0000.npy.tmp").write_bytes(b"half written")
    (store.path / "features-deadbeef0001.npy").write_bytes(b"renamed, never committed")
    (store.path / "shards-deadbeef0000.tmp").mkdir()
    (store.path / "shards-deadbeef0000.tmp" / "shard-123.f32").write_bytes(b"a worker's output")
    again = cache.build("fake", corpus, CFG, workers=0)
    assert again.stats is not None and again.stats.reused == len(corpus)
    assert sorted(p.name for p in store.path.iterdir()) == sorted(
        [".lock", "index.json", store.data_path.name]
    )


# ----------------------------------------------------------------------------------------------- bad files


def test_bad_files_are_skipped_with_reasons_and_not_retried(
    tmp_path: Path, corpus: list[Utterance], count_loads: Callable[[], int]
) -> None:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "lfs.wav").write_text(LFS_POINTER)
    (bad_dir / "empty.wav").write_bytes(b"")
    write_garbage(bad_dir / "garbage.wav")
    write_silent(bad_dir / "silent.wav", 16_000)
    bad = [
        _utt(bad_dir / name, i)
        for i, name in enumerate(("lfs.wav", "empty.wav", "garbage.wav", "silent.wav"))
    ]
    missing = _utt(tmp_path / "gone.wav", 0)
    utts = [*corpus[:3], *bad, missing]
    store = FeatureCache(tmp_path / "cache").build("fake", utts, CFG, workers=0)
    assert store.ids == [u.id for u in corpus[:3]]
    reasons = {Path(s.path).name: s.reason for s in store.skipped}
    assert reasons["lfs.wav"] == audio.LFS_REASON
    assert reasons["empty.wav"].startswith("empty")
    assert reasons["garbage.wav"].startswith("unreadable")
    assert reasons["silent.wav"].startswith("silent")
    assert reasons["gone.wav"].startswith("unreadable")
    for u in [*bad, missing]:  # the reasons are exactly what emoshift.core.audio says
        with pytest.raises(audio.AudioError) as err:
            audio.load(u.path, 16_000)
        assert reasons[Path(u.path).name] == str(err.value)
    assert store.stats is not None and store.stats.skipped_new == 5
    n = count_loads()
    again = FeatureCache(tmp_path / "cache").build("fake", utts, CFG, workers=0)
    assert count_loads() == n + 1  # only the missing file is tried again (it has no fingerprint)
    assert again.stats is not None and (again.stats.skipped_known, again.stats.skipped_new) == (4, 1)
    assert {Path(s.path).name: s.reason for s in again.skipped} == reasons


def test_duplicate_ids_are_refused(tmp_path: Path, corpus: list[Utterance]) -> None:
    with pytest.raises(ValueError, match="duplicate utterance id"):
        FeatureCache(tmp_path / "cache").build("fake", [corpus[0], corpus[0]], CFG, workers=0)


# ----------------------------------------------------------------------------------------------------- CLI


def test_cli_builds_then_reuses_a_ravdess_cache(tmp_path: Path) -> None:
    fake = make_ravdess(tmp_path / "RAVDESS", actors=(1, 2))  # Actor_01/03-01-05-01-01-01-01.wav ...
    cache = tmp_path / "cache"
    args = [
        "features",
        "ravdess",
        str(fake.root),
        "--cache",
        str(cache),
        "--workers",
        "0",
        "--set",
        "n_mels=32",
    ]
    runner = CliRunner()
    n = len(fake.kept("six"))
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert f"{n} utterances: {n} extracted, 0 reused, 0 skipped" in first.output
    assert f"ravdess-{CFG.key()}" in first.output and "files/s" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert f"{n} utterances: 0 extracted, {n} reused, 0 skipped" in second.output
    store = FeatureCache(cache).open("ravdess", CFG)
    assert sorted(store.ids) == sorted(fake.kept("six"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["features", "ravdes", "{root}"], "unknown corpus 'ravdes'"),
        (["features", "ravdess", "{root}/nowhere"], "is not a folder"),
        (["features", "crema-d", "{root}"], "crema-d"),
        (["features", "ravdess", "{root}", "--set", "n_mel=3"], "did you mean 'n_mels'"),
        (["features", "ravdess", "{root}", "--labels", "seven"], "unknown label policy"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    fake = make_ravdess(tmp_path / "RAVDESS", actors=(1,))
    argv = [a.replace("{root}", str(fake.root)) for a in argv] + ["--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
