"""Acoustic functionals (openSMILE eGeMAPSv02, ComParE_2016): one fixed-length vector per utterance, cached.

The classic SER baselines: openSMILE computes low-level descriptors (pitch, loudness, jitter, MFCCs, ...) and
summarises them over the whole clip with functionals (means, percentiles, slopes, ...). ``egemaps`` gives 88
features per utterance, ``compare`` 6,373. Extraction runs on our own decoded waveforms
(:func:`emoshift.core.audio.load`: 16 kHz mono float32, silence check, optional trim) through the ``opensmile``
package's ``Smile.process_signal``, so a file decodes exactly as it does for the log-mel and SSL paths.

Layout of ``ROOT/<corpus>-<cfg.key()>/``::

    index.json           the commit record: config, opensmile version, feature names, data file name, and per
                         utterance its id, path, size, mtime_ns and row; plus the files that failed, with reasons
    functionals-<token>.npy
                         float32 (N, D), row ``row`` of an entry is its vector (``np.load(mmap_mode="r")``)
    .lock                flock'ed while a build runs

A build reuses every row whose file fingerprint (size, mtime_ns) is unchanged, extracts new or changed files
in a process pool, keeps rows of files not asked for while they are unchanged, and writes a new data file and
then the index (each atomically, through :mod:`emoshift.core.io`): the index replace is the commit point, so a
crash leaves the previous cache intact. No pickle anywhere: ``.npy`` of float32 is read with
``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from emoshift.core import audio, cores
from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_open, atomic_write_json
from emoshift.core.lock import die_with_parent
from emoshift.core.progress import progress as progress_bar
from emoshift.corpora.base import Skipped, Utterance

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
CHUNK = 8  # files per worker task
DEFAULT_WORKERS = 2  # at most: never more than the cores this process may use (emoshift.core.cores)
# name -> (opensmile.FeatureSet member, number of functionals)
FEATURE_SETS: dict[str, tuple[str, int]] = {"egemaps": ("eGeMAPSv02", 88), "compare": ("ComParE_2016", 6373)}

try:  # POSIX advisory lock
    import fcntl
except ImportError:  # pragma: no cover - Windows: builds are not guarded against each other
    fcntl = None  # type: ignore[assignment]


class FunctionalsError(EmoshiftError, RuntimeError):
    """Functionals cannot be computed as asked (message is one line, for the user)."""


class FunctionalsConfig(BaseModel):
    """Which functionals, computed from which waveform."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature_set: Literal["egemaps", "compare"] = Field(
        default="egemaps", description="egemaps: eGeMAPSv02 (88); compare: ComParE_2016 (6,373)"
    )
    sample_rate: int = Field(
        default=16_000, ge=8_000, le=48_000, description="waveform rate fed to openSMILE"
    )
    trim_silence: bool = Field(default=False, description="cut leading/trailing silence before extraction")
    trim_top_db: float = Field(default=40.0, gt=0, description="trim threshold below the loudest frame")

    @property
    def dim(self) -> int:
        return FEATURE_SETS[self.feature_set][1]

    def key(self) -> str:
        """Cache directory key, e.g. ``egemaps-3f2a9c0d1b7e`` (config, format and opensmile version)."""
        blob = json.dumps(
            {"format": FORMAT_VERSION, "opensmile": opensmile_version(), **self.model_dump()}, sort_keys=True
        )
        return f"{self.feature_set}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def opensmile_version() -> str:
    try:
        import opensmile
    except ImportError:
        raise FunctionalsError(
            "acoustic functionals need the opensmile package: pip install opensmile"
        ) from None
    return str(opensmile.__version__)


# --------------------------------------------------------------------------------------------------------
# Extraction of one waveform
# --------------------------------------------------------------------------------------------------------

_SMILES: dict[str, Any] = {}  # one Smile per feature set and process (building one parses its config)


def _smile(feature_set: str) -> Any:
    smile = _SMILES.get(feature_set)
    if smile is None:
        import opensmile

        smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, FEATURE_SETS[feature_set][0]),
            feature_level=opensmile.FeatureLevel.Functionals,
        )
        _SMILES[feature_set] = smile
    return smile


def feature_names(cfg: FunctionalsConfig) -> list[str]:
    """The openSMILE names of the functionals, in column order."""
    return [str(n) for n in _smile(cfg.feature_set).feature_names]


def extract(wave: np.ndarray, cfg: FunctionalsConfig) -> np.ndarray:
    """Functionals of one mono waveform ``(samples,)`` at ``cfg.sample_rate`` -> ``(D,)`` float32.

    Raises :class:`emoshift.core.audio.AudioError` with a reason when openSMILE fails or returns non-finite
    values (a clip too short for its windows, for example).
    """
    # opensmile converts to int16 as ``(x * 32768).astype(int16)``, which wraps around for |x| >= 1 (a peak the
    # resampler overshot by a hair would become a full-scale click): clip to the int16 range first.
    signal = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 32767 / 32768)
    try:
        frame = _smile(cfg.feature_set).process_signal(signal, cfg.sample_rate)
    except Exception as e:  # openSMILE's own errors carry no common base class
        raise audio.AudioError(f"opensmile failed: {type(e).__name__}: {str(e).strip()[:200]}") from None
    values = np.asarray(frame.to_numpy(), dtype=np.float32)  # (1, D)
    if values.shape != (1, cfg.dim):
        raise audio.AudioError(f"opensmile returned shape {values.shape}, expected (1, {cfg.dim})")
    if not np.all(np.isfinite(values)):
        raise audio.AudioError("opensmile returned non-finite functionals (clip too short?)")
    return values[0]


def extract_file(
    path: str, cfg: FunctionalsConfig, *, start: float | None = None, end: float | None = None
) -> np.ndarray:
    """Decode (``audio.load``: the segment ``start``..``end`` seconds, if given) and extract: ``(D,)`` float32,
    or AudioError with the reason."""
    wave = audio.load(path, cfg.sample_rate, trim=cfg.trim_silence, trim_top_db=cfg.trim_top_db, start=start, end=end)
    return extract(wave, cfg)


# --------------------------------------------------------------------------------------------------------
# The store: read access to one build
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildStats:
    extracted: int  # computed by this build
    reused: int  # unchanged rows taken from the previous build
    skipped_new: int  # failed in this build
    skipped_known: int  # failed before, file unchanged, not retried
    seconds: float
    workers: int  # processes used (0 = nothing computed, 1 = in this process)

    @property
    def files_per_s(self) -> float:
        done = self.extracted + self.skipped_new
        return done / self.seconds if self.seconds > 0 else 0.0


class FunctionalStore:
    """The functionals of the utterances a build was asked about: ``matrix(ids) -> (N, D)`` float32."""

    def __init__(
        self,
        *,
        path: Path,
        data_path: Path | None,
        rows: dict[str, int],
        names: list[str],
        skipped: list[Skipped],
        stats: BuildStats | None = None,
    ) -> None:
        self.path = path
        self.data_path = data_path
        self.rows = rows  # utterance id -> row in the data file
        self.names = names
        self.skipped = skipped
        self.stats = stats
        self._data: np.ndarray | None = None

    @property
    def ids(self) -> list[str]:
        return list(self.rows)

    @property
    def dim(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self.rows

    def _array(self) -> np.ndarray:
        if self._data is None:
            if self.data_path is None:
                return np.zeros((0, self.dim), dtype=np.float32)
            self._data = np.load(self.data_path, mmap_mode="r", allow_pickle=False)
        return self._data

    def matrix(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """Rows of ``ids`` (default: every stored utterance, in build order): ``(N, D)`` float32, a copy."""
        ids = self.ids if ids is None else list(ids)
        missing = [i for i in ids if i not in self.rows]
        if missing:
            raise KeyError(f"no cached functionals for {missing[0]!r} ({len(missing)} missing)")
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._array()[[self.rows[i] for i in ids]], dtype=np.float32)

    def get(self, utt_id: str) -> np.ndarray:
        return self.matrix([utt_id])[0]

    def __getstate__(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in ("path", "data_path", "rows", "names", "skipped", "stats")}
        state["_data"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


# --------------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------------


class FunctionalCache:
    """Functionals caches under ``root``, one directory per (corpus, config); nothing is read until ``build``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def dir_for(self, corpus: str, cfg: FunctionalsConfig) -> Path:
        slug = re.sub(r"[^a-z0-9._-]+", "_", corpus.strip().lower()).strip("._")
        if not slug:
            raise ValueError(f"corpus name {corpus!r} cannot name a cache directory")
        return self.root / f"{slug}-{cfg.key()}"

    def build(
        self,
        corpus: str,
        utterances: Sequence[Utterance],
        cfg: FunctionalsConfig,
        *,
        workers: int | None = None,
        progress: bool = False,
    ) -> FunctionalStore:
        """Bring the cache for ``corpus``/``cfg`` up to date for ``utterances``; return their store.

        ``workers``: processes extracting in parallel (default 2, or 1 where this process may use one core;
        0 or 1 = in this process). The store holds
        the utterances that have functionals, in the given order; ``store.skipped`` the others, with reasons.
        """
        import time

        start = time.perf_counter()
        n_workers = cores.workers(workers, DEFAULT_WORKERS)
        version = opensmile_version()
        directory = self.dir_for(corpus, cfg)
        directory.mkdir(parents=True, exist_ok=True)
        with _locked(directory):
            old = _read_index(directory, cfg, version)
            plan = _Plan.make(utterances, old)
            used = cores.pool_size(n_workers, len(plan.todo), CHUNK)
            results: dict[str, np.ndarray] = {}
            failed: dict[str, str] = {}
            if plan.todo:
                with progress_bar(len(plan.todo), f"{cfg.feature_set} {corpus}", enabled=progress) as advance:
                    for chunk_rows, chunk_failed in _extraction(
                        [(u.id, u.path, u.start, u.end) for u in plan.todo], cfg, used
                    ):
                        results.update(chunk_rows)
                        failed.update(chunk_failed)
                        advance(len(chunk_rows) + len(chunk_failed))
            index = _commit(directory, cfg, version, plan, old, results, failed)
        stats = BuildStats(
            extracted=len(results),
            reused=len(plan.reuse),
            skipped_new=len(failed),
            skipped_known=len(plan.known_bad),
            seconds=time.perf_counter() - start,
            workers=used,
        )
        rows = {e["id"]: int(e["row"]) for e in index["entries"]}
        bad = {s["id"]: s for s in index["skipped"]}
        order = [u.id for u in utterances]
        return FunctionalStore(
            path=directory,
            data_path=directory / index["data"] if index["data"] else None,
            rows={i: rows[i] for i in order if i in rows},
            names=list(index["names"]),
            skipped=[Skipped(bad[i]["path"], bad[i]["reason"]) for i in order if i in bad and i not in rows],
            stats=stats,
        )


# --------------------------------------------------------------------------------------------------------
# Planning, extraction and commit
# --------------------------------------------------------------------------------------------------------


def _fingerprint(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _same(
    record: dict[str, Any], path: str, fp: tuple[int, int] | None, start: float | None, end: float | None
) -> bool:
    """The record was computed from this file, unchanged, and from this segment of it (start/end seconds)."""
    return (
        fp is not None
        and record.get("path") == path
        and (record.get("size"), record.get("mtime_ns")) == fp
        and (record.get("start"), record.get("end")) == (start, end)
    )


@dataclass
class _Plan:
    reuse: dict[str, dict[str, Any]]  # id -> old entry (file unchanged)
    known_bad: dict[str, dict[str, Any]]  # id -> old skip record (file unchanged)
    todo: list[Utterance]
    fingerprints: dict[str, tuple[int, int] | None]

    @classmethod
    def make(cls, utterances: Sequence[Utterance], old: dict[str, Any] | None) -> _Plan:
        entries = {e["id"]: e for e in old["entries"]} if old else {}
        skipped = {s["id"]: s for s in old["skipped"]} if old else {}
        asked = {u.id for u in utterances}
        plan = cls(reuse={}, known_bad={}, todo=[], fingerprints={})
        for u in utterances:
            fp = _fingerprint(u.path)
            plan.fingerprints[u.id] = fp
            if u.id in entries and _same(entries[u.id], u.path, fp, u.start, u.end):
                plan.reuse[u.id] = entries[u.id]
            elif u.id in skipped and _same(skipped[u.id], u.path, fp, u.start, u.end):
                plan.known_bad[u.id] = skipped[u.id]
            else:
                plan.todo.append(u)
        # rows of files nobody asked about this time: kept while their file is unchanged
        for uid, e in entries.items():
            if uid not in asked and _same(e, e["path"], _fingerprint(e["path"]), e.get("start"), e.get("end")):
                plan.reuse[uid] = e
        for uid, s in skipped.items():
            if uid not in asked and _same(s, s["path"], _fingerprint(s["path"]), s.get("start"), s.get("end")):
                plan.known_bad[uid] = s
        return plan


_Task = tuple[str, str, float | None, float | None]  # (id, path, start, end)


def _extract_chunk(
    tasks: Sequence[_Task], cfg: FunctionalsConfig
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(id -> (D,) float32, id -> reason) for ``(id, path, start, end)`` tasks; a bad file gives a reason."""
    rows: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for uid, path, start, end in tasks:
        try:
            rows[uid] = extract_file(path, cfg, start=start, end=end)
        except audio.AudioError as e:
            failed[uid] = str(e)
        except Exception as e:  # a decoder failure audio.py did not foresee must not end a long build
            failed[uid] = f"error: {type(e).__name__}: {e}"
    return rows, failed


def _extraction(
    tasks: list[_Task], cfg: FunctionalsConfig, workers: int
) -> Iterator[tuple[dict[str, np.ndarray], dict[str, str]]]:
    """Chunk results in order of completion; a process pool (fork where available) when ``workers > 1``."""
    chunks = [tasks[i : i + CHUNK] for i in range(0, len(tasks), CHUNK)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield _extract_chunk(chunk, cfg)
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=mp.get_context(method),
                               initializer=die_with_parent, initargs=(os.getpid(),))  # no orphan after a kill
    try:
        futures = [pool.submit(_extract_chunk, chunk, cfg) for chunk in chunks]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # an error or Ctrl-C ends the build promptly


def _commit(
    directory: Path,
    cfg: FunctionalsConfig,
    version: str,
    plan: _Plan,
    old: dict[str, Any] | None,
    results: dict[str, np.ndarray],
    failed: dict[str, str],
) -> dict[str, Any]:
    """Write the new data file and then the index (the commit point); remove the previous data file."""
    unchanged = old is not None and len(plan.reuse) == len(old["entries"])
    if (
        old is not None
        and unchanged
        and not results
        and not failed
        and len(plan.known_bad) == len(old["skipped"])
    ):
        return old  # nothing new, nothing dropped: the previous build stands
    entries: list[dict[str, Any]] = []
    blocks: list[np.ndarray] = []
    if plan.reuse and old is not None:  # reuse is only ever filled from an old index
        old_data = np.load(directory / old["data"], mmap_mode="r", allow_pickle=False)
        reuse_ids = list(plan.reuse)
        blocks.append(np.asarray(old_data[[int(plan.reuse[i]["row"]) for i in reuse_ids]], dtype=np.float32))
        keys = ("id", "path", "size", "mtime_ns", "start", "end")
        entries += [{k: plan.reuse[i].get(k) for k in keys} for i in reuse_ids]
    by_id = {u.id: u for u in plan.todo}
    new_ids = [u.id for u in plan.todo if u.id in results]  # request order, not completion order
    if new_ids:
        blocks.append(np.stack([results[i] for i in new_ids]).astype(np.float32, copy=False))
        for i in new_ids:
            size, mtime = plan.fingerprints[i] or (-1, -1)
            u = by_id[i]
            entries.append({"id": i, "path": u.path, "size": size, "mtime_ns": mtime, "start": u.start, "end": u.end})
    for row, entry in enumerate(entries):
        entry["row"] = row
    skipped = [dict(s) for s in plan.known_bad.values()]
    for uid, reason in failed.items():
        size, mtime = plan.fingerprints[uid] or (-1, -1)
        skipped.append(
            {"id": uid, "path": by_id[uid].path, "size": size, "mtime_ns": mtime, "reason": reason,
             "start": by_id[uid].start, "end": by_id[uid].end}
        )
    data_name = None
    if blocks:
        data = np.concatenate(blocks)  # (N, D) float32
        data_name = f"functionals-{uuid.uuid4().hex[:12]}.npy"
        with atomic_open(directory / data_name, "wb") as f:
            np.save(f, data, allow_pickle=False)
    names = old["names"] if old and old["names"] else feature_names(cfg)
    index = {
        "version": FORMAT_VERSION,
        "config": cfg.model_dump(),
        "opensmile": version,
        "names": names,
        "data": data_name,
        "entries": entries,
        "skipped": skipped,
    }
    atomic_write_json(directory / INDEX_NAME, index)
    for leftover in directory.glob("functionals-*.npy"):  # the previous build's data file, interrupted ones
        if leftover.name != data_name:
            with contextlib.suppress(OSError):
                leftover.unlink()
    return index


def _read_index(directory: Path, cfg: FunctionalsConfig, version: str) -> dict[str, Any] | None:
    """The previous build's index, or None when absent, unreadable or from another config/version."""
    try:
        with open(directory / INDEX_NAME, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("version") != FORMAT_VERSION:
        return None
    if index.get("config") != cfg.model_dump() or index.get("opensmile") != version:
        return None
    if not isinstance(index.get("entries"), list) or not isinstance(index.get("skipped"), list):
        return None
    if index["entries"] and not (index.get("data") and (directory / index["data"]).is_file()):
        return None
    return index


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/.lock`` (POSIX) so two builds of one cache never overlap."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(directory / ".lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
