"""The frozen-embedding cache: built once, reused, invalidated by changed audio or weights, skips bad files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emoshift.core import audio
from emoshift.corpora.base import Utterance
from emoshift.features.embedding_cache import EmbeddingCache, EmbeddingStore, model_cache_key
from emoshift.models.ssl import SSLClassifier, hubert

KEY = "hubert-tiny-test"


def _tiny(seed: int = 0) -> SSLClassifier:
    torch.manual_seed(seed)
    return hubert(num_labels=4, preset="tiny", mode="frozen")


def _utt(path: Path, i: int) -> Utterance:
    return Utterance(
        id=f"toy/{path.stem}",
        path=str(path),
        corpus="toy",
        speaker=f"toy/{i % 2}",
        gender=None,
        emotion="happy",
        native_label="HAP",
    )


def _write(path: Path, seconds: float, sr: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * (120 + 40 * seed) * t) + 0.05 * rng.standard_normal(len(t))
    sf.write(path, wave.astype(np.float32), sr)


@pytest.fixture
def corpus(tmp_path: Path) -> list[Utterance]:
    """Four good clips (one at 8 kHz, to be resampled) and a git-LFS pointer posing as a WAV."""
    root = tmp_path / "audio"
    root.mkdir()
    specs = [(0.6, 16000), (0.3, 16000), (0.45, 8000), (0.8, 16000)]
    for i, (seconds, sr) in enumerate(specs):
        _write(root / f"clip{i}.wav", seconds, sr, seed=i)
    (root / "lfs.wav").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    files = [root / f"clip{i}.wav" for i in range(len(specs))] + [root / "lfs.wav"]
    return [_utt(p, i) for i, p in enumerate(files)]


class Counter:
    """Wraps SSLClassifier.pooled_layer_embeddings and counts the clips it embeds."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clips = 0
        original = SSLClassifier.pooled_layer_embeddings

        def counted(model: SSLClassifier, wave: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            self.clips += len(wave)
            return original(model, wave, mask)

        monkeypatch.setattr(SSLClassifier, "pooled_layer_embeddings", counted)


def _expected(model: SSLClassifier, u: Utterance) -> np.ndarray:
    wave = torch.from_numpy(audio.load(u.path, 16000))[None]  # (1, S)
    return model.pooled_layer_embeddings(wave, None)[0].numpy()


def test_build_then_reuse_without_computing(tmp_path: Path, corpus: list[Utterance], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = _tiny()
    cache = EmbeddingCache(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # no I/O in the constructor
    count = Counter(monkeypatch)
    store = cache.build("toy", corpus, model, model_key=KEY)

    good = corpus[:4]
    assert count.clips == 4
    assert store.ids == [u.id for u in good] and len(store) == 4
    assert corpus[0].id in store and corpus[4].id not in store
    assert [(s.path, s.reason) for s in store.skipped] == [(corpus[4].path, audio.LFS_REASON)]
    shape = (model.num_layers + 1, 2 * model.hidden_size)
    for u in good:
        row = store.get(u.id)
        assert row.shape == shape and row.dtype == np.float32
        np.testing.assert_allclose(row, _expected(model, u), atol=1e-5)

    # second build: nothing embedded, nothing decoded (the bad file's reason is remembered too)
    loads = []
    real_load = audio.load
    monkeypatch.setattr(audio, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    count.clips = 0
    again = cache.build("toy", corpus, model, model_key=KEY)
    assert count.clips == 0 and loads == []
    assert again.ids == store.ids and [s.reason for s in again.skipped] == [audio.LFS_REASON]
    for u in good:
        np.testing.assert_array_equal(again.get(u.id), store.get(u.id))


def test_store_is_memory_mapped_and_cheap_to_pickle(tmp_path: Path, corpus: list[Utterance]) -> None:
    store = EmbeddingCache(tmp_path / "cache").build("toy", corpus, _tiny(), model_key=KEY)
    first = store.get(corpus[0].id)
    shard, _ = store.rows[corpus[0].id]
    assert isinstance(store._shards[shard], np.memmap)
    blob = pickle.dumps(store)
    assert len(blob) < 4096
    clone = pickle.loads(blob)
    assert isinstance(clone, EmbeddingStore) and clone._shards == {}
    np.testing.assert_array_equal(clone.get(corpus[0].id), first)
    assert store.stack([u.id for u in corpus[:2]]).shape == (2, *store.shape)
    with pytest.raises(KeyError):
        store.get(corpus[4].id)


def test_changed_file_is_recomputed(tmp_path: Path, corpus: list[Utterance], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = _tiny()
    cache = EmbeddingCache(tmp_path / "cache")
    before = cache.build("toy", corpus, model, model_key=KEY)
    old = before.get(corpus[1].id)

    path = Path(corpus[1].path)
    _write(path, 0.5, 16000, seed=9)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # also when mtime has coarse resolution
    count = Counter(monkeypatch)
    after = cache.build("toy", corpus, model, model_key=KEY)
    assert count.clips == 1
    new = after.get(corpus[1].id)
    assert not np.allclose(new, old)
    np.testing.assert_allclose(new, _expected(model, corpus[1]), atol=1e-5)
    np.testing.assert_array_equal(after.get(corpus[0].id), before.get(corpus[0].id))


def test_fixed_file_is_no_longer_skipped(tmp_path: Path, corpus: list[Utterance]) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    model = _tiny()
    assert len(cache.build("toy", corpus, model, model_key=KEY).skipped) == 1
    os.remove(corpus[4].path)
    _write(Path(corpus[4].path), 0.4, 16000, seed=5)
    store = cache.build("toy", corpus, model, model_key=KEY)
    assert store.skipped == [] and corpus[4].id in store


def test_other_weights_invalidate_the_cache(tmp_path: Path, corpus: list[Utterance], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = EmbeddingCache(tmp_path / "cache")
    first = cache.build("toy", corpus, _tiny(seed=0), model_key=KEY)
    shard_files = set(os.listdir(first.folder))
    count = Counter(monkeypatch)
    other = _tiny(seed=1)
    second = cache.build("toy", corpus, other, model_key=KEY)
    assert count.clips == 4
    np.testing.assert_allclose(second.get(corpus[0].id), _expected(other, corpus[0]), atol=1e-5)
    old_shards = {f for f in shard_files if f.endswith(".npy")}
    assert old_shards and not old_shards & set(os.listdir(second.folder))  # stale shards removed


def test_missing_file_is_skipped_with_reason(tmp_path: Path, corpus: list[Utterance]) -> None:
    gone = Utterance(**{**corpus[0].to_row(), "id": "toy/gone", "path": str(tmp_path / "gone.wav")})  # type: ignore[arg-type]
    store = EmbeddingCache(tmp_path / "cache").build("toy", [*corpus[:2], gone], _tiny(), model_key=KEY)
    assert len(store) == 2
    assert [s.path for s in store.skipped] == [gone.path] and store.skipped[0].reason.startswith("unreadable")


def test_batches_respect_the_cap_and_padding_sensitive_models_go_one_by_one(
    tmp_path: Path, corpus: list[Utterance], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    sizes: list[int] = []
    original = SSLClassifier.pooled_layer_embeddings

    def spy(model: SSLClassifier, wave: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        sizes.append(wave.numel())
        return original(model, wave, mask)

    monkeypatch.setattr(SSLClassifier, "pooled_layer_embeddings", spy)
    cache = EmbeddingCache(tmp_path / "cache")
    # estimated lengths 0 (the bad file), 4800, 7200, 9600, 12800 under a cap of 24000 padded samples:
    # [bad, 4800, 7200] (3 * 7200), then [9600] and [12800] (2 * 12800 > 24000)
    cache.build("toy", corpus, _tiny(), model_key=KEY, max_batch_seconds=1.5, progress=True)
    assert sizes == [2 * 7200, 9600, 12800]

    sizes.clear()
    monkeypatch.setattr(SSLClassifier, "padding_exact", property(lambda self: False))
    cache.build("toy", corpus, _tiny(), model_key="other-key", max_batch_seconds=60.0)
    assert len(sizes) == 4


def test_model_cache_key_ignores_head_settings(tmp_path: Path) -> None:
    base = {"name": "hubert", "pretrained": "facebook/hubert-base-ls960", "preset": None, "pooling": "mean"}
    key = model_cache_key(base)
    assert key.startswith("hubert-base-ls960-")
    assert model_cache_key({**base, "pooling": "attentive", "head_hidden": 64, "dropout": 0.3}) == key
    assert model_cache_key({**base, "pretrained": "microsoft/wavlm-base-plus"}) != key
    assert model_cache_key({**base, "pretrained": None, "preset": "tiny"}).startswith("tiny-")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"a")
    k1 = model_cache_key({**base, "pretrained": str(folder)})
    (folder / "model.safetensors").write_bytes(b"bb")
    assert model_cache_key({**base, "pretrained": str(folder)}) != k1
