"""On-disk cache of frozen SSL embeddings: per utterance, the pooled statistics of every hidden state.

A frozen encoder gives the same output every epoch, so it runs once per utterance:
``SSLClassifier.pooled_layer_embeddings`` -> ``(L+1, E)`` float32 (E = 2H: mean ++ std over valid frames), and
heads train on those rows in milliseconds (``SSLClassifier.frozen_head()``).

Layout, one folder per corpus and model::

    ROOT/<corpus>/<model_key>/index.json     what is cached, with each file's fingerprint (size, mtime_ns)
    ROOT/<corpus>/<model_key>/emb-<id>.npy   shards of rows (N, L+1, E) float32, read memory-mapped

``model_key`` comes from :func:`model_cache_key` (model id / preset / config hash); the index also records a
digest of the encoder's weights, so a cache built by different weights is never reused by mistake. A build
reuses every row whose audio file is unchanged and computes the rest; files that fail to decode are skipped with
their reason (remembered too, until the file changes). Shards and the index are written to a temporary file
and renamed into place, and the index is updated after every shard, so an interrupted build resumes where it
stopped; the next build deletes what a killed one left (a shard renamed in before the index named it, temp
files). One builder per folder at a time (an flock on ``.lock``): a second build waits for the first, then
finds its rows and computes only what is still missing.

Encoders whose output for a clip depends on the padding around it (group-norm checkpoints such as
hubert-base-ls960, see ``SSLClassifier.padding_exact``) are run one clip at a time, so a cached row never
depends on which other clips shared its batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from emoshift.core.audio import AudioError
from emoshift.core.io import atomic_save_npy, atomic_write_json, file_fingerprint
from emoshift.core.lock import exclusive
from emoshift.core.progress import progress as progress_bar
from emoshift.corpora.base import Skipped, Utterance

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch

FORMAT_VERSION = 1
SHARD_ROWS = 512  # rows per shard: the unit of resumption, and of memory held during a build
# Builder arguments that change only the head, never the embeddings.
HEAD_ONLY_KEYS = frozenset({"num_labels", "pooling", "layer_sum", "head_hidden", "dropout", "mode"})


class FrozenEncoder(Protocol):
    """What the cache needs of a model (:class:`emoshift.models.ssl.SSLClassifier` is one; this layer names no
    model class): the encoder whose weights key the cache, its sizes, and its pooled per-layer embeddings."""

    @property
    def encoder(self) -> torch.nn.Module: ...

    @property
    def num_layers(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def padding_exact(self) -> bool: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def to(self, device: Any) -> Any: ...

    def pooled_layer_embeddings(self, wave: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


def _slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[-limit:] or "x"


def model_cache_key(model_cfg: Mapping[str, Any]) -> str:
    """A folder name for a model's embeddings, e.g. ``hubert-base-ls960-3f2a9c0d1b7e``.

    Hashes every entry of ``model_cfg`` except those that change only the head (pooling, head size, dropout,
    ...); a local ``pretrained`` folder also contributes its files' sizes and modification times.
    """
    enc = {k: v for k, v in model_cfg.items() if k not in HEAD_ONLY_KEYS}
    pretrained = enc.get("pretrained")
    if isinstance(pretrained, str) and os.path.isdir(pretrained):
        enc["pretrained_files"] = sorted(
            (e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(pretrained) if e.is_file()
        )
    blob = json.dumps({"format": FORMAT_VERSION, **enc}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    name = enc.get("preset") or (os.path.basename(str(pretrained).rstrip("/\\")) if pretrained else None)
    name = name or enc.get("name") or "model"
    return f"{_slug(str(name))}-{digest}"


def encoder_digest(model: FrozenEncoder) -> str:
    """Digest of the encoder's weights and buffers (about 0.5 s for a base-sized model)."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    state = model.encoder.state_dict()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


class EmbeddingStore:
    """Cached embeddings of one corpus under one model: ``get(id) -> (L+1, E)`` float32.

    Shards are opened memory-mapped on first use; pickling keeps only paths and the index (cheap to send to
    DataLoader workers, which reopen the shards themselves).
    """

    def __init__(
        self, folder: str, rows: dict[str, tuple[str, int]], skipped: list[Skipped], shape: tuple[int, int]
    ) -> None:
        self.folder = folder
        self.rows = rows  # id -> (shard file name, row)
        self.skipped = skipped
        self.shape = shape  # (L+1, E)
        self._shards: dict[str, np.ndarray] = {}

    @property
    def ids(self) -> list[str]:
        return list(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self.rows

    def _shard(self, name: str) -> np.ndarray:
        arr = self._shards.get(name)
        if arr is None:
            arr = np.load(os.path.join(self.folder, name), mmap_mode="r")
            self._shards[name] = arr
        return arr

    def get(self, utt_id: str) -> np.ndarray:
        """The ``(L+1, E)`` float32 row of ``utt_id`` (a private copy); KeyError if it is not cached."""
        if utt_id not in self.rows:
            raise KeyError(f"no cached embedding for {utt_id!r}")
        shard, row = self.rows[utt_id]
        return np.array(self._shard(shard)[row], dtype=np.float32)

    def stack(self, ids: Iterable[str]) -> np.ndarray:
        """Rows of several utterances: ``(N, L+1, E)``."""
        rows = [self.get(i) for i in ids]
        return np.stack(rows) if rows else np.zeros((0, *self.shape), dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shards"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class EmbeddingCache:
    """Builds and reuses :class:`EmbeddingStore` folders under ``root`` (nothing is read until ``build``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def folder(self, corpus: str, model_key: str) -> Path:
        return self.root / _slug(corpus) / _slug(model_key, limit=96)

    def build(
        self,
        corpus: str,
        utterances: Sequence[Utterance],
        model: FrozenEncoder,
        *,
        model_key: str,
        sample_rate: int = 16_000,
        max_batch_seconds: float = 60.0,
        device: str = "cpu",
        progress: bool = False,
    ) -> EmbeddingStore:
        """Embed every utterance not cached yet (or whose file changed) and return the store for ``utterances``.

        Audio goes through ``emoshift.core.audio.load_utterance(u, sample_rate)`` (its segment; no trimming); clips are batched by length
        under ``max_batch_seconds`` of padded audio. The model is moved to ``device`` for the build and back.
        """
        folder = self.folder(corpus, model_key)
        shape = (model.num_layers + 1, 2 * model.hidden_size)
        digest = encoder_digest(model)
        meta = {"version": FORMAT_VERSION, "digest": digest, "shape": list(shape), "sample_rate": sample_rate}
        with exclusive(folder, wait=True):  # another build of this folder finishes first; its rows are reused
            return self._build(folder, meta, shape, utterances, model, sample_rate, max_batch_seconds, device,
                               progress)

    def _build(
        self,
        folder: Path,
        meta: dict[str, Any],
        shape: tuple[int, int],
        utterances: Sequence[Utterance],
        model: FrozenEncoder,
        sample_rate: int,
        max_batch_seconds: float,
        device: str,
        progress: bool,
    ) -> EmbeddingStore:
        index = _read_index(folder / "index.json")
        old_shards = {e.get("shard") for e in index["entries"].values()} if index else set()
        if index is None or index.get("meta") != meta:
            index = {"meta": meta, "entries": {}, "skipped": {}}  # other weights or format: start afresh
        _remove_unnamed(folder, old_shards)  # a killed build's last shard, renamed in before its index was
        entries: dict[str, dict[str, Any]] = index["entries"]
        known_bad: dict[str, dict[str, Any]] = index["skipped"]

        skipped: list[Skipped] = []
        ready: set[str] = set()
        todo: list[tuple[Utterance, tuple[int, int]]] = []
        for u in utterances:
            try:
                fp = file_fingerprint(u.path)
            except OSError as e:
                skipped.append(Skipped(u.path, f"unreadable: {e.strerror or e}"))
            else:
                if _fresh(entries.get(u.id), _source(u), fp) and (folder / entries[u.id]["shard"]).is_file():
                    ready.add(u.id)
                elif _fresh(known_bad.get(u.id), _source(u), fp):
                    skipped.append(Skipped(u.path, known_bad[u.id]["reason"]))
                else:
                    todo.append((u, fp))

        if todo:
            done, failed = self._compute(
                folder, index, todo, model, sample_rate, max_batch_seconds, device, progress
            )
            ready |= done
            skipped += failed
        _remove_orphans(folder, old_shards, index)

        rows = {
            u.id: (entries[u.id]["shard"], int(entries[u.id]["row"])) for u in utterances if u.id in ready
        }
        return EmbeddingStore(str(folder), rows, skipped, shape)

    def _compute(
        self,
        folder: Path,
        index: dict[str, Any],
        todo: list[tuple[Utterance, tuple[int, int]]],
        model: FrozenEncoder,
        sample_rate: int,
        max_batch_seconds: float,
        device: str,
        progress: bool,
    ) -> tuple[set[str], list[Skipped]]:
        """Run the encoder over ``todo``; shards and the index are written every SHARD_ROWS rows.

        Returns the ids embedded and the files skipped (their reasons also go into the index).
        """
        import torch

        from emoshift.data.bucketing import BucketBatchSampler, collate_waveforms

        lengths = [_estimated_length(u.path, sample_rate) for u, _ in todo]
        cap = max(1, int(max_batch_seconds * sample_rate))
        if not model.padding_exact:
            cap = 1  # one clip per forward: rows must not depend on their batch-mates
        batches = BucketBatchSampler(lengths, max_batch_samples=cap, shuffle=False, seed=0).batches()

        done: set[str] = set()
        skipped: list[Skipped] = []
        pending_ids: list[tuple[str, str, tuple[int, int]]] = []
        pending_rows: list[np.ndarray] = []

        def flush() -> None:
            if not pending_rows:
                return
            name = f"emb-{uuid.uuid4().hex[:16]}.npy"
            atomic_save_npy(folder / name, np.concatenate(pending_rows).astype(np.float32, copy=False))
            for row, (uid, path, (size, mtime)) in enumerate(pending_ids):
                index["entries"][uid] = {
                    "path": path,
                    "size": size,
                    "mtime_ns": mtime,
                    "shard": name,
                    "row": row,
                }
                index["skipped"].pop(uid, None)
                done.add(uid)
            atomic_write_json(folder / "index.json", index)
            pending_ids.clear()
            pending_rows.clear()

        first = next(model.parameters())
        home = first.device
        model.to(device)
        try:
            with progress_bar(len(todo), f"embedding {folder.parent.name}", enabled=progress) as advance:
                for batch in batches:
                    waves, ok = _load_batch(batch, todo, sample_rate, index, skipped)
                    if ok:
                        wave, mask = collate_waveforms(waves)  # (B, S), (B, S)
                        emb = model.pooled_layer_embeddings(wave.to(device), mask.to(device))  # (B, L+1, E)
                        pending_rows.append(emb.to(torch.float32).cpu().numpy())
                        pending_ids.extend((todo[k][0].id, _source(todo[k][0]), todo[k][1]) for k in ok)
                        if sum(len(r) for r in pending_rows) >= SHARD_ROWS:
                            flush()
                    advance(len(batch))
                flush()
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write_json(folder / "index.json", index)  # records skips even when nothing was embedded
        finally:
            model.to(home)
        return done, skipped


# ------------------------------------------------------------------------------------------------ helpers


def _load_batch(
    batch: Sequence[int],
    todo: Sequence[tuple[Utterance, tuple[int, int]]],
    sample_rate: int,
    index: dict[str, Any],
    skipped: list[Skipped],
) -> tuple[list[np.ndarray], list[int]]:
    """Decode the clips of ``batch`` (positions in ``todo``); a file that fails is skipped and remembered."""
    from emoshift.core.audio import load_utterance

    waves, ok = [], []
    for k in batch:
        u, (size, mtime_ns) = todo[k]
        try:
            waves.append(load_utterance(u, sample_rate, trim=False))  # (samples,) of its segment
            ok.append(k)
        except AudioError as e:
            skipped.append(Skipped(u.path, str(e)))
            index["skipped"][u.id] = {"path": _source(u), "size": size, "mtime_ns": mtime_ns, "reason": str(e)}
            index["entries"].pop(u.id, None)
    return waves, ok


def _source(u: Utterance) -> str:
    """What an entry was computed from: the file, and the segment of it for a manifest's start/end rows."""
    if u.start is None and u.end is None:
        return u.path
    return f"{u.path}#{u.start if u.start is not None else ''}-{u.end if u.end is not None else ''}"


def _fresh(entry: Mapping[str, Any] | None, path: str, fp: tuple[int, int]) -> bool:
    return (
        entry is not None and entry.get("path") == path and (entry.get("size"), entry.get("mtime_ns")) == fp
    )


def _read_index(path: Path) -> dict[str, Any] | None:
    """The index, or None when absent or unreadable (then everything is recomputed)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in ("meta", "entries", "skipped"))
    return data if ok else None


def _remove_unnamed(folder: Path, named: set[Any]) -> None:
    """Delete what a killed build left: shards no index names and temp files. Only under the folder's lock.

    A shard is renamed into place before the index that names it is written (the index must never name a
    missing shard), so a build killed between the two leaves a shard nobody refers to; no store was ever
    handed it, so removing it is safe.
    """
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        stale_shard = p.name.startswith("emb-") and p.name.endswith(".npy") and p.name not in named
        if stale_shard or (p.name.startswith(".") and p.name.endswith(".tmp")):
            with contextlib.suppress(OSError):
                p.unlink()


def _remove_orphans(folder: Path, old_shards: set[Any], index: Mapping[str, Any]) -> None:
    """Delete shards this folder's previous index used and the new one no longer does."""
    live = {e.get("shard") for e in index["entries"].values()}
    for name in old_shards - live:
        with contextlib.suppress(OSError):  # already gone, or still mapped on a platform that forbids it
            (folder / name).unlink()


def _estimated_length(path: str, sample_rate: int) -> int:
    """Samples after resampling, from the header alone (0 when unreadable: the load will give the reason)."""
    import soundfile as sf

    try:
        info = sf.info(path)
    except Exception:  # any decoder complaint: the real load reports it properly
        return 0
    return int(math.ceil(info.frames * sample_rate / max(1, info.samplerate)))

