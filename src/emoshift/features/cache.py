"""Building the on-disk log-mel cache: one memory-mapped array per corpus and feature config, recomputed only
where needed. The files and :class:`FeatureStore` (read access) are in :mod:`emoshift.features.store`.

What a build does with each utterance (fingerprint = path, size, mtime_ns, and the segment start/end of a
manifest utterance cut from a longer file):

* asked for, fingerprint as in the index: reused as it is, never decoded again (a file that failed before
  and has not changed is not retried either);
* asked for, new or changed: decoded (its segment only), resampled, trimmed (:func:`emoshift.core.audio.load_utterance`)
  and computed again,
  chunks of files in a process pool (2 processes by default);
* in the index but not asked for: kept while its file is unchanged (training builds the whole corpus,
  evaluation and prediction ask for parts of it; neither should evict the other), dropped once the file is
  removed or changed.

A different config gives a different key, hence a fresh directory. A build writes a new data file under a
temporary name and then ``os.replace``s the index, the commit point: a crash at any moment leaves the previous
index pointing at its own, untouched data file. An interrupted build's leftovers are removed by the next one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple, TypeVar

import numpy as np

from emoshift.config.features import FeatureConfig
from emoshift.core import audio, cores
from emoshift.core.io import atomic_open, atomic_write_text, disk_full, file_fingerprint, fsync_dir
from emoshift.core.lock import die_with_parent
from emoshift.core.progress import progress as progress_bar
from emoshift.corpora.base import Utterance
from emoshift.features.logmel import log_mel_many
from emoshift.features.store import (
    DTYPE,
    FORMAT_VERSION,
    INDEX_NAME,
    BuildStats,
    Entry,
    FeatureStore,
    Index,
    SkipRecord,
    npy_header,
    read_index,
)

__all__ = [
    "CHUNK",
    "DEFAULT_WORKERS",
    "FORMAT_VERSION",
    "INDEX_NAME",
    "BuildStats",
    "Entry",
    "FeatureCache",
    "FeatureStore",
]

CHUNK = 8  # files per worker task: enough to batch the STFT, small enough for a smooth progress bar
DEFAULT_WORKERS = 2  # at most: never more than the cores this process may use (emoshift.core.cores)

try:  # POSIX advisory lock
    import fcntl
except ImportError:  # pragma: no cover - Windows: builds are not guarded against each other
    fcntl = None  # type: ignore[assignment]


class FeatureCache:
    """Feature caches under one root directory, one subdirectory per (corpus, feature config)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def dir_for(self, corpus: str, cfg: FeatureConfig) -> Path:
        slug = re.sub(r"[^a-z0-9._-]+", "_", corpus.strip().lower()).strip("._")
        if not slug:
            raise ValueError(f"corpus name {corpus!r} cannot name a cache directory")
        return self.root / f"{slug}-{cfg.key()}"

    def open(self, corpus: str, cfg: FeatureConfig) -> FeatureStore:
        """Everything cached for ``corpus`` and ``cfg`` so far (FileNotFoundError if nothing is)."""
        return FeatureStore.open(self.dir_for(corpus, cfg))

    def build(
        self,
        corpus: str,
        utterances: Sequence[Utterance],
        cfg: FeatureConfig,
        *,
        workers: int | None = None,
        progress: bool = False,
    ) -> FeatureStore:
        """Bring the cache for ``corpus``/``cfg`` up to date for ``utterances``; return their store.

        ``workers``: processes that decode in parallel (default 2, or 1 where this process may use one core;
        0 or 1 = in this process).
        ``progress``: show a progress bar (done/total, files/s, ETA) on stderr.
        The store holds the utterances that have features, in the given order; ``store.skipped`` the others'
        files with reasons, ``store.stats`` what this build did.
        """
        start = time.perf_counter()
        n_workers = cores.workers(workers, DEFAULT_WORKERS)
        directory = self.dir_for(corpus, cfg)
        directory.mkdir(parents=True, exist_ok=True)
        with _locked(directory):
            old = read_index(directory)
            _remove_leftovers(directory, keep=old.data if old else None)
            plan = _plan(utterances, old)
            if old is not None and not plan.todo and not plan.dropped:
                # nothing to compute or drop: the data file stays (cfg: the caller's, e.g. another crop_s)
                index, n_failed, used = dataclasses.replace(old, cfg=cfg), 0, 0
            else:
                used = cores.pool_size(n_workers, len(plan.todo), CHUNK)
                index, n_failed = _write(directory, corpus, cfg, plan, old, used, progress)
        stats = BuildStats(
            extracted=len(plan.todo) - n_failed,
            reused=len(plan.reuse),
            skipped_new=n_failed,
            skipped_known=len(plan.known_bad),
            dropped=plan.dropped,
            seconds=time.perf_counter() - start,
            workers=used,
        )
        where = {_key(e): e for e in index.entries}
        bad = {_key(s): s for s in index.skipped}
        return index.store(
            directory,
            [where[i] for i in plan.order if i in where],
            [bad[i] for i in plan.order if i in bad],
            stats,
        )


# ----------------------------------------------------------------------------------------------------------
# Planning: what to reuse, keep, drop and (re)compute.


def _fingerprint(path: str) -> tuple[int, int] | None:
    """:func:`file_fingerprint`, or None for a file that is gone or unreadable (it is recomputed, or dropped)."""
    try:
        return file_fingerprint(path)
    except OSError:
        return None


class _Todo(NamedTuple):
    """An utterance to (re)compute: id, file, its fingerprint, and the segment of it (seconds)."""

    id: str
    path: str
    fp: tuple[int, int] | None
    start: float | None = None
    end: float | None = None


# An entry's key: the utterance id *and* its file. Two roots of one corpus (a copy on another disk, a second
# download) give the same ids; keyed by id alone they replaced each other's entries in the shared cache and
# were extracted again at every switch. Keyed by (id, path) both stay, each reused while its file is unchanged.
_Key = tuple[str, str]


def _key(row: Entry | SkipRecord | _Todo | Utterance) -> _Key:
    return (row.id, row.path)


@dataclass(slots=True)
class _Plan:
    order: list[_Key] = field(default_factory=list)  # requested (id, path), in the caller's order
    reuse: dict[_Key, Entry] = field(default_factory=dict)  # requested, unchanged (offsets: previous file)
    known_bad: dict[_Key, SkipRecord] = field(default_factory=dict)  # requested, failed before, unchanged
    todo: list[_Todo] = field(default_factory=list)
    keep: list[Entry] = field(default_factory=list)  # not requested, file unchanged
    keep_bad: list[SkipRecord] = field(default_factory=list)
    dropped: int = 0  # not requested, file removed or changed


def _plan(utterances: Sequence[Utterance], old: Index | None) -> _Plan:
    prev = {_key(e): e for e in old.entries} if old else {}
    prev_bad = {_key(s): s for s in old.skipped} if old else {}
    plan = _Plan()
    seen: set[str] = set()
    for u in utterances:
        if u.id in seen:
            raise ValueError(f"duplicate utterance id {u.id!r}")
        seen.add(u.id)
        plan.order.append(_key(u))
        fp = _fingerprint(u.path)
        key = (u.path, *fp, u.start, u.end) if fp is not None else None
        e, bad = prev.get(_key(u)), prev_bad.get(_key(u))
        if key is not None and e is not None and (e.path, e.size, e.mtime_ns, e.start, e.end) == key:
            plan.reuse[_key(u)] = e
        elif key is not None and bad is not None and (bad.path, bad.size, bad.mtime_ns, bad.start, bad.end) == key:
            plan.known_bad[_key(u)] = bad
        else:
            plan.todo.append(_Todo(u.id, u.path, fp, u.start, u.end))
    plan.keep, dropped = _unchanged(prev.values(), set(plan.order))
    plan.keep_bad, dropped_bad = _unchanged(prev_bad.values(), set(plan.order))
    plan.dropped = dropped + dropped_bad
    return plan


_Row = TypeVar("_Row", Entry, SkipRecord)


def _unchanged(rows: Iterable[_Row], asked: set[_Key]) -> tuple[list[_Row], int]:
    """Of the rows not asked for: those whose file is unchanged (kept), and how many others (dropped)."""
    kept, dropped = [], 0
    for r in rows:
        if _key(r) not in asked:
            if _fingerprint(r.path) == (r.size, r.mtime_ns):
                kept.append(r)
            else:
                dropped += 1
    return kept, dropped


# ----------------------------------------------------------------------------------------------------------
# Extraction: decode -> resample -> trim (emoshift.core.audio.load_utterance) -> log-mel, one chunk of files per task.


@dataclass(slots=True)
class _ChunkResult:
    ok: list[int]  # task positions that have features, in the order of their blocks
    frames: list[int]
    failed: list[tuple[int, str]]  # (task position, reason)
    feats: np.ndarray | None = None  # (sum(frames), n_mels) float32, time first (in-process extraction)
    shard: str | None = None  # or: the file a worker appended the same bytes to ...
    shard_offset: int = 0  # ... starting at this frame


def _extract_chunk(
    tasks: Sequence[tuple[int, _Todo]], cfg: FeatureConfig, shard_dir: str | None
) -> _ChunkResult:
    """Features for ``(position, utterance)`` tasks. A file that cannot be used yields a reason, never an error.

    With ``shard_dir`` (in a worker process) the spectrograms are appended to this process's shard file
    there instead of being pickled back: the parent later concatenates the shards in the kernel
    (``copy_file_range``), which costs it a fraction of receiving them through a pipe.
    """
    waves, ok, failed = [], [], []
    for pos, todo in tasks:
        try:
            wave = audio.load_utterance(todo, cfg.sample_rate, trim=False)
            audio.check_long_enough(wave, cfg.sample_rate)  # judged before trimming, as the scan judges it
            if cfg.trim_silence:
                wave = audio.trim_silence(wave, cfg.sample_rate, top_db=cfg.trim_top_db)
        except audio.AudioError as e:
            failed.append((pos, str(e)))
            continue
        except Exception as e:  # a decoder failure audio.py did not foresee must not end a long build
            failed.append((pos, f"error: {type(e).__name__}: {e}"))
            continue
        waves.append(wave)
        ok.append(pos)
    feats, frames = log_mel_many(waves, cfg)  # one STFT for the whole chunk
    if shard_dir is None:
        return _ChunkResult(ok=ok, frames=frames, failed=failed, feats=feats)
    shard = f"shard-{os.getpid()}.f32"
    with open(os.path.join(shard_dir, shard), "ab") as f:
        start = f.tell() // (cfg.n_mels * DTYPE.itemsize)
        f.write(np.ascontiguousarray(feats, dtype=DTYPE).data)
    return _ChunkResult(ok=ok, frames=frames, failed=failed, shard=shard, shard_offset=start)


def _init_worker(parent: int) -> None:
    """One thread per worker process (the parallelism is over files, across processes); dies with its parent.

    A worker outlives a SIGKILLed parent otherwise (it waits on a queue nobody writes to), keeping the cache's
    lock, inherited across fork, so the next build would wait for it forever.
    """
    import torch

    die_with_parent(parent)
    torch.set_num_threads(1)



@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _extraction(
    chunks: list[list[tuple[int, _Todo]]], cfg: FeatureConfig, workers: int, shard_dir: Path
) -> Iterator[Iterator[_ChunkResult]]:
    """Start extracting ``chunks``; yield an iterator over their results in order of completion.

    With ``workers > 1`` the pool is forked here, before the caller starts its progress-bar thread (forking a
    process that runs threads is fragile), and the workers write their spectrograms to shard files in
    ``shard_dir``. On the way out, work not started yet is cancelled, so an error or Ctrl-C ends the build
    promptly.
    """
    if workers <= 1 or len(chunks) <= 1:
        # one thread, as in a worker: small STFTs gain little from threads and lose a lot on a busy machine
        with _torch_threads(1):
            yield (_extract_chunk(c, cfg, None) for c in chunks)
        return
    # fork: workers start at once without importing torch again (spawn where fork does not exist)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=mp.get_context(method),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )
    try:
        futures = [pool.submit(_extract_chunk, c, cfg, str(shard_dir)) for c in chunks]  # workers start here
        yield (f.result() for f in as_completed(futures))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------------------------------------
# Writing: stream a new data file, then commit it by replacing the index.


@dataclass(slots=True)
class _Blocks:
    """Where each spectrogram lands in the data file being written, block after block."""

    skips: dict[_Key, SkipRecord]  # failures: known before, then this build's
    entries: dict[_Key, Entry] = field(default_factory=dict)  # offsets: final, in the new data file
    in_shards: dict[str, list[Entry]] = field(default_factory=dict)  # shard -> entries, offsets in the shard
    offset: int = 0  # frames written to the data file so far
    n_failed: int = 0

    def copy_unchanged(self, f: IO[bytes], previous: Path, unchanged: Sequence[Entry]) -> None:
        """Blocks taken from the previous data file: no decoding, no STFT."""
        prev = np.load(previous, mmap_mode="r").T  # (total, n_mels), C order
        for e in unchanged:
            f.write(prev[e.offset : e.offset + e.frames].data)  # (frames, n_mels) rows
            self.entries[_key(e)] = dataclasses.replace(e, offset=self.offset)
            self.offset += e.frames
        del prev

    def add(self, f: IO[bytes], result: _ChunkResult, todo: Sequence[_Todo]) -> None:
        """One chunk's features: written here (in-process extraction) or already in a worker's shard."""
        if result.feats is not None:
            f.write(np.ascontiguousarray(result.feats, dtype=DTYPE).data)
        at = self.offset if result.shard is None else result.shard_offset
        for pos, nf in zip(result.ok, result.frames, strict=True):
            utt_id, path, fp, start, end = todo[pos]
            size, mtime_ns = fp if fp is not None else (-1, -1)  # -1: recomputed next time
            entry = Entry(utt_id, path, size, mtime_ns, at, nf, start, end)
            if result.shard is None:
                self.entries[_key(entry)] = entry
            else:
                self.in_shards.setdefault(result.shard, []).append(entry)
            at += nf
        if result.shard is None:
            self.offset = at
        for pos, reason in result.failed:
            utt_id, path, fp, start, end = todo[pos]
            size_, mtime_ = fp if fp is not None else (None, None)
            self.skips[(utt_id, path)] = SkipRecord(utt_id, path, reason, size_, mtime_, start, end)
            self.n_failed += 1

    def append_shards(self, f: IO[bytes], shard_dir: Path, n_mels: int) -> None:
        """The workers' shards, one after the other, at the end of the data file."""
        for shard, shard_entries in self.in_shards.items():
            frames = _append_file(f, shard_dir / shard) // (n_mels * DTYPE.itemsize)
            for e in shard_entries:
                self.entries[_key(e)] = dataclasses.replace(e, offset=self.offset + e.offset)
            self.offset += frames


def _write(
    directory: Path,
    corpus: str,
    cfg: FeatureConfig,
    plan: _Plan,
    old: Index | None,
    workers: int,
    progress: bool,
) -> tuple[Index, int]:
    """Write a new data file and commit it with a new index; returns (index, number of new failures)."""
    token = uuid.uuid4().hex[:12]
    data_name = f"features-{token}.npy"
    shard_dir = directory / f"shards-{token}.tmp"  # workers' output, concatenated at the end
    tasks = list(enumerate(plan.todo))
    chunks = [tasks[i : i + CHUNK] for i in range(0, len(tasks), CHUNK)]
    blocks = _Blocks(skips=dict(plan.known_bad))
    try:
        shard_dir.mkdir()
        # the data file takes its final name when complete (nothing refers to it yet) ...
        with atomic_open(directory / data_name, "wb") as f:
            f.write(npy_header(cfg.n_mels, 0))  # placeholder, rewritten with the final shape below
            if old is not None and (plan.reuse or plan.keep):
                blocks.copy_unchanged(f, directory / old.data, [*plan.reuse.values(), *plan.keep])
            with (  # the pool starts before the progress bar's thread does
                _extraction(chunks, cfg, workers, shard_dir) as results,
                progress_bar(len(tasks), f"log-mel {corpus}", enabled=progress) as advance,
            ):
                for result in results:
                    blocks.add(f, result, plan.todo)
                    advance(len(result.ok) + len(result.failed))
            blocks.append_shards(f, shard_dir, cfg.n_mels)
            f.seek(0)
            f.write(npy_header(cfg.n_mels, blocks.offset))
        entries, skips = blocks.entries, blocks.skips
        index = Index(
            corpus=corpus,
            cfg=cfg,
            data=data_name,
            entries=[entries[k] for k in plan.order if k in entries] + [entries[_key(e)] for e in plan.keep],
            skipped=[skips[k] for k in plan.order if k in skips] + plan.keep_bad,
        )
        atomic_write_text(directory / INDEX_NAME, index.to_json())  # ... and the index commits it
    except BaseException as e:  # the index was not replaced: nothing refers to the new data file
        with contextlib.suppress(OSError):
            (directory / data_name).unlink()
        full = disk_full(e, shard_dir)  # a worker's shard (the data file's own writes say so already)
        if full is not None and not isinstance(e, type(full)):
            raise full from e
        raise
    finally:
        shutil.rmtree(shard_dir, ignore_errors=True)
    fsync_dir(directory)
    if old is not None:
        with contextlib.suppress(OSError):
            (directory / old.data).unlink()
    return index, blocks.n_failed


def _append_file(dst: IO[bytes], src: Path) -> int:
    """Append all of ``src`` to ``dst`` (copy_file_range: in the kernel, where it can); returns bytes copied."""
    dst.flush()
    with open(src, "rb") as s:
        size = os.fstat(s.fileno()).st_size
        done = 0
        with contextlib.suppress(AttributeError, OSError):  # no copy_file_range here: copy below instead
            while done < size:
                n = os.copy_file_range(s.fileno(), dst.fileno(), size - done)
                if n == 0:
                    break
                done += n
        if done < size:
            s.seek(done)
            dst.seek(0, os.SEEK_END)
            shutil.copyfileobj(s, dst, 1 << 24)
    dst.seek(0, os.SEEK_END)  # the buffered writer's idea of the position, after writes behind its back
    return size


def _remove_leftovers(directory: Path, keep: str | None) -> None:
    """Delete temporary files, and data files the index does not name (an interrupted build's remains)."""
    for p in directory.iterdir():
        if p.name.endswith(".tmp") or (p.name.startswith("features-") and p.name != keep):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache directory for a build (a second build waits for the first)."""
    with open(directory / ".lock", "a+b") as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
