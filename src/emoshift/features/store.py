"""The on-disk format of a log-mel feature cache, and :class:`FeatureStore`, read access to one build.

Layout of ``ROOT/<corpus>-<cfg.key()>/``::

    index.json            the commit record: config, data file name, and per utterance its id, path, size,
                          mtime_ns, offset, frames and segment (start, end), plus the files that failed
    features-<token>.npy  float32 array (n_mels, total_frames) in Fortran order: utterance after utterance
                          with time as the slow axis, so each spectrogram is one contiguous block and
                          ``np.load(..., mmap_mode="r")[:, offset:offset + frames]`` is utterance's (n_mels, T)
    .lock                 flock'ed while a build runs, so two runs never build the same cache at once

An index is trusted only when it is complete and its data file has exactly the size it implies; anything else
reads as "no cache" and the next build starts afresh. Building lives in :mod:`emoshift.features.cache`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.config.features import FeatureConfig
from emoshift.corpora.base import Skipped

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
DTYPE = np.dtype("<f4")
HEADER_BYTES = 128  # numpy pads a version-1 .npy header to 128 bytes here, with room for the shape to grow


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one utterance's spectrogram lives in the data file, and the file it was computed from."""

    id: str
    path: str
    size: int
    mtime_ns: int
    offset: int  # first frame (column) in the data array
    frames: int
    start: float | None = None  # the segment of the file (seconds) the spectrogram is of; None: from its start
    end: float | None = None  # ... None: to its end


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
        index = read_index(Path(path))
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


# ----------------------------------------------------------------------------------------------------------
# The index file.


@dataclass(frozen=True, slots=True)
class SkipRecord:
    """A file that failed, kept with its fingerprint so that an unchanged bad file is not decoded again."""

    id: str
    path: str
    reason: str
    size: int | None
    mtime_ns: int | None
    start: float | None = None
    end: float | None = None


@dataclass(slots=True)
class Index:
    corpus: str
    cfg: FeatureConfig
    data: str  # file name of the data array, inside the cache directory
    entries: list[Entry]
    skipped: list[SkipRecord]

    def store(
        self,
        directory: Path,
        entries: Sequence[Entry],
        skipped: Sequence[SkipRecord],
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


def _asdict(obj: Entry | SkipRecord) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def read_index(directory: Path) -> Index | None:
    """The directory's index if it is complete and matches its data file; None means "start afresh"."""
    try:
        raw = json.loads((directory / INDEX_NAME).read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT_VERSION or raw.get("dtype") != DTYPE.str:
            return None
        cfg = FeatureConfig.model_validate(raw["config"])
        if cfg.key() != raw["key"] or not directory.name.endswith(raw["key"]):
            return None
        entries = [Entry(**e) for e in raw["entries"]]
        skipped = [SkipRecord(**s) for s in raw["skipped"]]
        expected = HEADER_BYTES + sum(e.frames for e in entries) * cfg.n_mels * DTYPE.itemsize
        if (directory / raw["data"]).stat().st_size != expected:
            return None
        return Index(corpus=raw["corpus"], cfg=cfg, data=raw["data"], entries=entries, skipped=skipped)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def npy_header(n_mels: int, total_frames: int) -> bytes:
    buf = io.BytesIO()
    header = {"descr": DTYPE.str, "fortran_order": True, "shape": (n_mels, total_frames)}
    np.lib.format.write_array_header_1_0(buf, header)
    blob = buf.getvalue()
    if len(blob) != HEADER_BYTES:  # numpy's growth padding keeps this fixed; never write a corrupt file
        raise RuntimeError(f"unexpected .npy header size {len(blob)} for shape {(n_mels, total_frames)}")
    return blob
