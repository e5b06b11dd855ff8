"""On-disk log-mel cache: one memory-mapped array per corpus and feature config, recomputed only where needed.

Layout of ``ROOT/<corpus>-<cfg.key()>/``::

    index.json            the commit record: config, data file name, and per utterance its id, path, size,
                          mtime_ns, offset and frames, plus the files that failed, with their reasons
    features-<token>.npy  float32 array (n_mels, total_frames) in Fortran order: utterance after utterance
                          with time as the slow axis, so each spectrogram is one contiguous block and
                          ``np.load(..., mmap_mode="r")[:, offset:offset + frames]`` is utterance's (n_mels, T)
    .lock                 flock'ed while a build runs, so two runs never build the same cache at once

What a build does with each file (fingerprint = path, size, mtime_ns):

* asked for, fingerprint as in the index: reused as it is, never decoded again (a file that failed before
  and has not changed is not retried either);
* asked for, new or changed: decoded, resampled, trimmed (:func:`emoshift.core.audio.load`) and computed again,
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
import io
import json
import multiprocessing as mp
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from emoshift.core import audio
from emoshift.corpora.base import Skipped, Utterance
from emoshift.features.logmel import FeatureConfig, log_mel_many

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
DTYPE = np.dtype("<f4")
CHUNK = 8  # files per worker task: enough to batch the STFT, small enough for a smooth progress bar
DEFAULT_WORKERS = 2
_HEADER_BYTES = 128  # numpy pads a version-1 .npy header to 128 bytes here, with room for the shape to grow

try:  # POSIX advisory lock
    import fcntl
except ImportError:  # pragma: no cover - Windows: builds are not guarded against each other
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one utterance's spectrogram lives in the data file, and the file it was computed from."""

    id: str
    path: str
    size: int
    mtime_ns: int
    offset: int  # first frame (column) in the data array
    frames: int


@dataclass(frozen=True, slots=True)
class BuildStats:
    """What one :meth:`FeatureCache.build` did, for the files it was asked about."""

    extracted: int  # decoded and computed by this build
    reused: int  # taken unchanged from the previous cache
    skipped_new: int  # failed to decode in this build
    skipped_known: int  # failed before, file unchanged, not retried
    dropped: int  # other entries whose file was removed or changed since
    seconds: float
    workers: int  # processes used (0 = nothing to compute, 1 = in this process)

    @property
    def decoded(self) -> int:
        return self.extracted + self.skipped_new

    @property
    def files_per_s(self) -> float:
        return self.decoded / self.seconds if self.seconds > 0 else 0.0


class FeatureStore:
    """Read access to the spectrograms of one build; what the training engine's datasets hold.

    Pickles cheaply (the index, not the data): each DataLoader worker opens the memory map on first use.
    """

    def __init__(
        self,
        *,
        path: Path,
        data_path: Path,
        corpus: str,
        cfg: FeatureConfig,
        entries: Sequence[Entry],
        skipped: Sequence[Skipped],
        stats: BuildStats | None = None,
    ) -> None:
        self.path = path  # the cache directory
        self.data_path = data_path
        self.corpus = corpus
        self.cfg = cfg
        self.ids: list[str] = [e.id for e in entries]
        self.skipped: list[Skipped] = list(skipped)
        self.stats = stats
        self._where: dict[str, tuple[int, int]] = {e.id: (e.offset, e.frames) for e in entries}
        self._data: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | Path) -> FeatureStore:
        """Everything in a built cache directory (see ``FeatureCache.dir_for``), without scanning or building."""
        index = _read_index(Path(path))
        if index is None:
            raise FileNotFoundError(f"no usable feature cache in {path}")
        return index.store(Path(path), index.entries, index.skipped)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._where

    def __repr__(self) -> str:
        return f"FeatureStore({self.corpus!r}, {len(self)} utterances, {str(self.path)!r})"

    def frames(self, utt_id: str) -> int:
        return self._locate(utt_id)[1]

    def get(self, utt_id: str) -> np.ndarray:
        """The spectrogram ``(n_mels, frames)`` as a fresh, writable, C-contiguous float32 array."""
        offset, frames = self._locate(utt_id)
        block = self._memmap()[:, offset : offset + frames]  # (n_mels, frames) view, Fortran order
        return np.ascontiguousarray(block, dtype=np.float32)

    def _locate(self, utt_id: str) -> tuple[int, int]:
        try:
            return self._where[utt_id]
        except KeyError:
            raise KeyError(f"{utt_id!r} is not in the feature cache {self.path}") from None

    def _memmap(self) -> np.ndarray:
        if self._data is None:
            try:
                self._data = np.load(self.data_path, mmap_mode="r")  # (n_mels, total_frames)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"{self.data_path} is gone: the cache was rebuilt since this store was made; build it again"
                ) from None
        return self._data

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_data"] = None  # reopened lazily by whoever unpickles it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


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

        ``workers``: processes that decode in parallel (default 2; 0 or 1 = in this process).
        ``progress``: show a progress bar (done/total, files/s, ETA) on stderr.
        The store holds the utterances that have features, in the given order; ``store.skipped`` the others'
        files with reasons, ``store.stats`` what this build did.
        """
        start = time.perf_counter()
        n_workers = DEFAULT_WORKERS if workers is None else int(workers)
        if n_workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        directory = self.dir_for(corpus, cfg)
        directory.mkdir(parents=True, exist_ok=True)
        with _locked(directory):
            old = _read_index(directory)
            _remove_leftovers(directory, keep=old.data if old else None)
            plan = _plan(utterances, old)
            if old is not None and not plan.todo and not plan.dropped:
                # nothing to compute or drop: the data file stays (cfg: the caller's, e.g. another crop_s)
                index, n_failed, used = dataclasses.replace(old, cfg=cfg), 0, 0
            else:
                used = _pool_size(n_workers, len(plan.todo))
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
        where = {e.id: e for e in index.entries}
        bad = {s.id: s for s in index.skipped}
        return index.store(
            directory,
            [where[i] for i in plan.order if i in where],
            [bad[i] for i in plan.order if i in bad],
            stats,
        )


# ----------------------------------------------------------------------------------------------------------
# The index file.


@dataclass(frozen=True, slots=True)
class _Skip:
    """A file that failed, kept with its fingerprint so that an unchanged bad file is not decoded again."""

    id: str
    path: str
    reason: str
    size: int | None
    mtime_ns: int | None


@dataclass(slots=True)
class _Index:
    corpus: str
    cfg: FeatureConfig
    data: str  # file name of the data array, inside the cache directory
    entries: list[Entry]
    skipped: list[_Skip]

    def store(
        self,
        directory: Path,
        entries: Sequence[Entry],
        skipped: Sequence[_Skip],
        stats: BuildStats | None = None,
    ) -> FeatureStore:
        return FeatureStore(
            path=directory,
            data_path=directory / self.data,
            corpus=self.corpus,
            cfg=self.cfg,
            entries=entries,
            skipped=[Skipped(path=s.path, reason=s.reason) for s in skipped],
            stats=stats,
        )

    def to_json(self) -> str:
        """JSON with one entry per line: readable, diffable, and written by the C encoder (no ``indent``)."""
        head = {
            "format": FORMAT_VERSION,
            "corpus": self.corpus,
            "key": self.cfg.key(),
            "config": self.cfg.model_dump(),
            "data": self.data,
            "dtype": DTYPE.str,
            "n_mels": self.cfg.n_mels,
            "total_frames": sum(e.frames for e in self.entries),
        }
        items = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
        for name, rows in (("entries", self.entries), ("skipped", self.skipped)):
            body = ",\n".join(f"  {json.dumps(_asdict(r))}" for r in rows)
            items.append(f' "{name}": [\n{body}\n ]' if rows else f' "{name}": []')
        return "{\n" + ",\n".join(items) + "\n}\n"


def _asdict(obj: Entry | _Skip) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _read_index(directory: Path) -> _Index | None:
    """The directory's index if it is complete and matches its data file; None means "start afresh"."""
    try:
        raw = json.loads((directory / INDEX_NAME).read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT_VERSION or raw.get("dtype") != DTYPE.str:
            return None
        cfg = FeatureConfig.model_validate(raw["config"])
        if cfg.key() != raw["key"] or not directory.name.endswith(raw["key"]):
            return None
        entries = [Entry(**e) for e in raw["entries"]]
        skipped = [_Skip(**s) for s in raw["skipped"]]
        expected = _HEADER_BYTES + sum(e.frames for e in entries) * cfg.n_mels * DTYPE.itemsize
        if (directory / raw["data"]).stat().st_size != expected:
            return None
        return _Index(corpus=raw["corpus"], cfg=cfg, data=raw["data"], entries=entries, skipped=skipped)
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------------------------------------
# Planning: what to reuse, keep, drop and (re)compute.


def _fingerprint(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass(slots=True)
class _Plan:
    order: list[str] = field(default_factory=list)  # requested ids, in the caller's order
    reuse: dict[str, Entry] = field(default_factory=dict)  # requested, unchanged (offsets: previous file)
    known_bad: dict[str, _Skip] = field(default_factory=dict)  # requested, failed before, unchanged
    todo: list[tuple[str, str, tuple[int, int] | None]] = field(default_factory=list)  # (id, path, fp)
    keep: list[Entry] = field(default_factory=list)  # not requested, file unchanged
    keep_bad: list[_Skip] = field(default_factory=list)
    dropped: int = 0  # not requested, file removed or changed


def _plan(utterances: Sequence[Utterance], old: _Index | None) -> _Plan:
    prev = {e.id: e for e in old.entries} if old else {}
    prev_bad = {s.id: s for s in old.skipped} if old else {}
    plan = _Plan()
    seen: set[str] = set()
    for u in utterances:
        if u.id in seen:
            raise ValueError(f"duplicate utterance id {u.id!r}")
        seen.add(u.id)
        plan.order.append(u.id)
        fp = _fingerprint(u.path)
        e, bad = prev.get(u.id), prev_bad.get(u.id)
        if fp is not None and e is not None and (e.path, e.size, e.mtime_ns) == (u.path, *fp):
            plan.reuse[u.id] = e
        elif fp is not None and bad is not None and (bad.path, bad.size, bad.mtime_ns) == (u.path, *fp):
            plan.known_bad[u.id] = bad
        else:
            plan.todo.append((u.id, u.path, fp))
    for e in prev.values():
        if e.id not in seen:
            if _fingerprint(e.path) == (e.size, e.mtime_ns):
                plan.keep.append(e)
            else:
                plan.dropped += 1
    for s in prev_bad.values():
        if s.id not in seen:
            if _fingerprint(s.path) == (s.size, s.mtime_ns):
                plan.keep_bad.append(s)
            else:
                plan.dropped += 1
    return plan


# ----------------------------------------------------------------------------------------------------------
# Extraction: decode -> resample -> trim (emoshift.core.audio.load) -> log-mel, one chunk of files per task.


@dataclass(slots=True)
class _ChunkResult:
    ok: list[int]  # task positions that have features, in the order of their blocks
    frames: list[int]
    failed: list[tuple[int, str]]  # (task position, reason)
    feats: np.ndarray | None = None  # (sum(frames), n_mels) float32, time first (in-process extraction)
    shard: str | None = None  # or: the file a worker appended the same bytes to ...
    shard_offset: int = 0  # ... starting at this frame


def _extract_chunk(
    tasks: Sequence[tuple[int, str]], cfg: FeatureConfig, shard_dir: str | None
) -> _ChunkResult:
    """Features for ``(position, path)`` tasks. A file that cannot be used yields a reason, never an error.

    With ``shard_dir`` (in a worker process) the spectrograms are appended to this process's shard file
    there instead of being pickled back: the parent later concatenates the shards in the kernel
    (``copy_file_range``), which costs it a fraction of receiving them through a pipe.
    """
    waves, ok, failed = [], [], []
    for pos, path in tasks:
        try:
            wave = audio.load(path, cfg.sample_rate, trim=cfg.trim_silence, trim_top_db=cfg.trim_top_db)
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


def _init_worker() -> None:
    """One thread per worker process: the parallelism is over files, across processes."""
    import torch

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


def _pool_size(workers: int, n_files: int) -> int:
    """Processes worth starting: none beyond this one for a single chunk of work."""
    if n_files == 0:
        return 0
    return max(1, workers) if n_files > CHUNK else 1


@contextlib.contextmanager
def _extraction(
    chunks: list[list[tuple[int, str]]], cfg: FeatureConfig, workers: int, shard_dir: Path
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
        max_workers=min(workers, len(chunks)), mp_context=mp.get_context(method), initializer=_init_worker
    )
    try:
        futures = [pool.submit(_extract_chunk, c, cfg, str(shard_dir)) for c in chunks]  # workers start here
        yield (f.result() for f in as_completed(futures))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------------------------------------
# Writing: stream a new data file, then commit it by replacing the index.


def _npy_header(n_mels: int, total_frames: int) -> bytes:
    buf = io.BytesIO()
    header = {"descr": DTYPE.str, "fortran_order": True, "shape": (n_mels, total_frames)}
    np.lib.format.write_array_header_1_0(buf, header)
    blob = buf.getvalue()
    if len(blob) != _HEADER_BYTES:  # numpy's growth padding keeps this fixed; never write a corrupt file
        raise RuntimeError(f"unexpected .npy header size {len(blob)} for shape {(n_mels, total_frames)}")
    return blob


def _write(
    directory: Path,
    corpus: str,
    cfg: FeatureConfig,
    plan: _Plan,
    old: _Index | None,
    workers: int,
    progress: bool,
) -> tuple[_Index, int]:
    """Write a new data file and commit it with a new index; returns (index, number of new failures)."""
    token = uuid.uuid4().hex[:12]
    data_name = f"features-{token}.npy"
    tmp_data = directory / f"{data_name}.tmp"
    shard_dir = directory / f"shards-{token}.tmp"  # workers' output, concatenated at the end
    entries: dict[str, Entry] = {}
    in_shards: dict[str, list[Entry]] = {}  # shard -> entries whose offset is relative to the shard
    skips: dict[str, _Skip] = dict(plan.known_bad)
    n_failed = 0
    offset = 0
    tasks = [(pos, path) for pos, (_, path, _) in enumerate(plan.todo)]
    chunks = [tasks[i : i + CHUNK] for i in range(0, len(tasks), CHUNK)]
    try:
        shard_dir.mkdir()
        with open(tmp_data, "wb") as f:
            f.write(_npy_header(cfg.n_mels, 0))  # placeholder, rewritten with the final shape below
            # 1. Unchanged blocks, copied from the previous data file: no decoding, no STFT.
            if old is not None and (plan.reuse or plan.keep):
                prev = np.load(directory / old.data, mmap_mode="r").T  # (total, n_mels), C order
                for e in [*plan.reuse.values(), *plan.keep]:
                    f.write(prev[e.offset : e.offset + e.frames].data)  # (frames, n_mels) rows
                    entries[e.id] = Entry(e.id, e.path, e.size, e.mtime_ns, offset, e.frames)
                    offset += e.frames
                del prev
            # 2. New and changed files, as chunks complete: written here, or appended to a worker's shard.
            with (
                _extraction(chunks, cfg, workers, shard_dir) as results,
                _progress_bar(progress, total=len(tasks), corpus=corpus) as advance,
            ):
                for result in results:
                    if result.feats is not None:
                        f.write(np.ascontiguousarray(result.feats, dtype=DTYPE).data)
                    at = offset if result.shard is None else result.shard_offset
                    for pos, nf in zip(result.ok, result.frames, strict=True):
                        utt_id, path, fp = plan.todo[pos]
                        size, mtime_ns = fp if fp is not None else (-1, -1)  # -1: recomputed next time
                        entry = Entry(utt_id, path, size, mtime_ns, at, nf)
                        if result.shard is None:
                            entries[utt_id] = entry
                        else:
                            in_shards.setdefault(result.shard, []).append(entry)
                        at += nf
                    if result.shard is None:
                        offset = at
                    for pos, reason in result.failed:
                        utt_id, path, fp = plan.todo[pos]
                        size_, mtime_ = fp if fp is not None else (None, None)
                        skips[utt_id] = _Skip(utt_id, path, reason, size_, mtime_)
                        n_failed += 1
                    advance(len(result.ok) + len(result.failed))
            # 3. The workers' shards, one after the other.
            for shard, shard_entries in in_shards.items():
                frames = _append_file(f, shard_dir / shard) // (cfg.n_mels * DTYPE.itemsize)
                for e in shard_entries:
                    entries[e.id] = dataclasses.replace(e, offset=offset + e.offset)
                offset += frames
            f.seek(0)
            f.write(_npy_header(cfg.n_mels, offset))
            f.flush()
            os.fsync(f.fileno())
        # Commit: the data file takes its final name (nothing refers to it yet), then the index is replaced.
        os.replace(tmp_data, directory / data_name)
        index = _Index(
            corpus=corpus,
            cfg=cfg,
            data=data_name,
            entries=[entries[i] for i in plan.order if i in entries] + [entries[e.id] for e in plan.keep],
            skipped=[skips[i] for i in plan.order if i in skips] + plan.keep_bad,
        )
        _atomic_write_text(directory / INDEX_NAME, index.to_json())
    except BaseException:  # the index was not replaced: nothing refers to the new data file
        for leftover in (tmp_data, directory / data_name):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    finally:
        shutil.rmtree(shard_dir, ignore_errors=True)
    _fsync_dir(directory)
    if old is not None:
        with contextlib.suppress(OSError):
            (directory / old.data).unlink()
    return index, n_failed


def _append_file(dst: BinaryIO, src: Path) -> int:
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


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable (POSIX); a no-op where a directory cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


@contextlib.contextmanager
def _progress_bar(show: bool, *, total: int, corpus: str) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; with ``show``, a rich bar on stderr: done/total, files/s, elapsed, ETA."""
    if not show or total == 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class FilesPerSecond(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(
                "- files/s" if speed is None else f"{speed:,.1f} files/s", style="progress.data.speed"
            )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        FilesPerSecond(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task(f"log-mel {corpus}", total=total)
        yield lambda n: bar.advance(task, n)
