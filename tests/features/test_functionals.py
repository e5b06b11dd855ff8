"""openSMILE functionals: the right dimensions, equal to opensmile on the same waveform, cached and reused,
invalidated per file, bad files skipped with their reason, the same in a process pool, no pickle on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoshift.core import audio
from emoshift.corpora.base import Utterance
from emoshift.features.functionals import (
    FunctionalCache,
    FunctionalsConfig,
    extract,
    extract_file,
    feature_names,
)

opensmile = pytest.importorskip("opensmile")


def _write(path: Path, seconds: float, sr: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 30 * seed
    wave = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, (wave + 0.02 * rng.standard_normal(len(t))).astype(np.float32), sr)


def _utt(path: Path, i: int) -> Utterance:
    return Utterance(
        id=f"toy/{path.stem}", path=str(path), corpus="toy", speaker=f"toy/{i % 2}", gender=None,
        emotion="happy", native_label="HAP",
    )  # fmt: skip


@pytest.fixture
def corpus(tmp_path: Path) -> list[Utterance]:
    """Four good clips (one at 8 kHz), a git-LFS pointer posing as a WAV and a silent take."""
    root = tmp_path / "audio"
    root.mkdir()
    for i, (seconds, sr) in enumerate([(0.6, 16000), (0.4, 16000), (0.5, 8000), (0.8, 16000)]):
        _write(root / f"clip{i}.wav", seconds, sr, seed=i)
    (root / "lfs.wav").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    sf.write(root / "silent.wav", np.zeros(8000, dtype=np.float32), 16000)
    files = sorted(root.glob("clip*.wav")) + [root / "lfs.wav", root / "silent.wav"]
    return [_utt(p, i) for i, p in enumerate(files)]


@pytest.mark.parametrize(
    ("feature_set", "dim", "member"), [("egemaps", 88, "eGeMAPSv02"), ("compare", 6373, "ComParE_2016")]
)
def test_extract_equals_opensmile_on_our_decoded_waveform(corpus, feature_set, dim, member):
    cfg = FunctionalsConfig(feature_set=feature_set)
    wave = audio.load(corpus[2].path, 16000)  # the 8 kHz clip, resampled by soxr like every other path
    row = extract(wave, cfg)
    smile = opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, member), feature_level=opensmile.FeatureLevel.Functionals
    )
    ref = smile.process_signal(wave, 16000).to_numpy()[0]
    assert row.shape == (dim,) and row.dtype == np.float32
    np.testing.assert_array_equal(row, ref.astype(np.float32))
    assert feature_names(cfg) == list(smile.feature_names)
    np.testing.assert_array_equal(extract_file(corpus[2].path, cfg), row)


def test_build_caches_reuses_and_skips_bad_files_with_reasons(corpus, tmp_path, monkeypatch):
    cfg = FunctionalsConfig()
    cache = FunctionalCache(tmp_path / "cache")
    store = cache.build("toy", corpus, cfg, workers=0)
    good = [u.id for u in corpus[:4]]
    assert store.ids == good and store.dim == 88 and store.stats is not None
    assert store.stats.extracted == 4 and store.stats.skipped_new == 2
    reasons = {Path(s.path).name: s.reason for s in store.skipped}
    assert reasons["lfs.wav"] == audio.LFS_REASON and reasons["silent.wav"].startswith("silent")
    x = store.matrix()
    assert x.shape == (4, 88) and x.dtype == np.float32
    np.testing.assert_array_equal(x[1], extract_file(corpus[1].path, cfg))

    # nothing on disk is a pickle: the index is JSON, the data a plain float32 .npy
    directory = cache.dir_for("toy", cfg)
    index = json.loads((directory / "index.json").read_text())
    assert len(index["names"]) == 88 and {e["id"] for e in index["entries"]} == set(good)
    data = np.load(directory / index["data"], allow_pickle=False)
    assert data.dtype == np.float32 and data.shape == (4, 88)

    # second build: nothing decoded again, bad files not retried
    calls: list[str] = []
    real = extract_file

    def counting(path: str, c: FunctionalsConfig, **segment: float | None) -> np.ndarray:
        calls.append(path)
        return real(path, c, **segment)

    monkeypatch.setattr("emoshift.features.functionals.extract_file", counting)
    again = cache.build("toy", corpus, cfg, workers=0)
    assert calls == [] and again.stats.reused == 4 and again.stats.skipped_known == 2
    np.testing.assert_array_equal(again.matrix(), x)

    # one file rewritten: only it is extracted again; a subset request keeps the other rows cached
    _write(Path(corpus[0].path), 0.7, 16000, seed=9)
    st = os.stat(corpus[0].path)
    os.utime(corpus[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    part = cache.build("toy", corpus[:2], cfg, workers=0)
    assert calls == [corpus[0].path] and part.ids == good[:2]
    assert not np.array_equal(part.get(good[0]), x[0]) and np.array_equal(part.get(good[1]), x[1])
    full = cache.build("toy", corpus, cfg, workers=0)
    assert calls == [corpus[0].path] and full.stats.reused == 4
    assert len(list(directory.glob("functionals-*.npy"))) == 1  # the replaced data file is gone


def test_process_pool_gives_the_same_rows(corpus, tmp_path):
    files = []
    for k in range(12):  # more than one chunk, so the pool is used
        dst = Path(corpus[0].path).with_name(f"copy{k}.wav")
        _write(dst, 0.3 + 0.05 * k, 16000, seed=k)
        files.append(_utt(dst, k))
    many = files + corpus
    cfg = FunctionalsConfig()
    serial = FunctionalCache(tmp_path / "a").build("toy", many, cfg, workers=0)
    pooled = FunctionalCache(tmp_path / "b").build("toy", many, cfg, workers=2)
    assert pooled.stats.workers == 2 and pooled.ids == serial.ids
    np.testing.assert_array_equal(pooled.matrix(), serial.matrix())
    assert sorted(s.reason for s in pooled.skipped) == sorted(s.reason for s in serial.skipped)


def test_samples_beyond_full_scale_are_clipped_not_wrapped():
    cfg = FunctionalsConfig()
    t = np.arange(16000) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    loud = wave.copy()
    loud[::400] = 1.0  # exactly full scale: wrapped to int16 it would be -32768, a click
    clipped = np.clip(loud, -1.0, 32767 / 32768)
    np.testing.assert_array_equal(extract(loud, cfg), extract(clipped, cfg))
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )
    wrapped = smile.process_signal(loud, 16000).to_numpy()[0]  # what opensmile alone makes of it
    assert not np.allclose(wrapped, extract(loud, cfg))


def test_config_key_separates_feature_sets_and_rejects_unknown():
    a, b = FunctionalsConfig(feature_set="egemaps"), FunctionalsConfig(feature_set="compare")
    assert a.key().startswith("egemaps-") and b.key().startswith("compare-") and a.key() != b.key()
    assert FunctionalsConfig(trim_silence=True).key() != a.key()
    with pytest.raises(ValueError):
        FunctionalsConfig(feature_set="mfcc")  # type: ignore[arg-type]
