"""A corpus of your own from a Hugging Face dataset on disk (``--corpus NAME=hf:PATH``).

- Size: every row of the dataset (every split of a ``DatasetDict``); each row is one utterance.
- Speakers: a ``speaker`` column (or ``speaker_id``, ``client_id``; any other through
  ``data.manifest.columns: {speaker: <column>}``), as ``<NAME>/<speaker>``. Without one the scan fails, unless
  ``data.split.allow_leak: true`` (every score is then flagged leaky), as for a manifest table.
- Labels: an ``emotion`` column (or ``label``, ``emo``), as emoshift emotion names or mapped with
  ``data.label_map``; a ``ClassLabel`` column is read by its class names, never its integers.
- Licence: whatever the dataset's; emoshift only reads it.
- Layout: PATH is a ``save_to_disk`` folder (``state.json`` or ``dataset_dict.json``), a ``.parquet`` /
  ``.arrow`` file, or a folder of them (read in name order as one dataset). The audio column is the one with
  the ``Audio`` feature (or a column called ``audio``, ``path``, ``file``, ``wav``; any other through
  ``data.manifest.columns: {path: <column>}``), holding the encoded file (bytes) or a path (relative to PATH).
  It is read with ``Audio(decode=False)``: no torchcodec or torchaudio, soundfile decodes it like any file.
  Bytes are written once to ``<data.cache_dir>/sources/hf/`` (one file per distinct clip, named by its content),
  so the feature caches and every later step see ordinary audio files. The other columns are read like a
  table's (``gender``, ``age``, ``language``, ``fold``, ``start``/``end``, ``arousal``/``valence``/``dominance``),
  a split's name is the ``fold`` unless a column says otherwise, ``text`` (or ``transcription``) is the spoken
  ``sentence``, and the rest is kept in ``meta``.
- Quirks: utterance ids are the ``id`` column, else the audio files' names when they are distinct, else the
  row numbers (``<split>-<row>``). A row without audio, or with audio that does not decode, is skipped with
  its reason. Errors name the row (counted from 1 over the splits in order) and the column.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emoshift.core import audio
from emoshift.core.io import atomic_write_bytes
from emoshift.corpora.base import CorpusError, Scan, Skipped
from emoshift.corpora.sources import require
from emoshift.corpora.table import CONFIG, Rows, Spelling, check_name, scan_rows

NAME = "hf"
# The columns a Hugging Face dataset usually names the fields by (besides the names every table accepts).
ALIASES: dict[str, tuple[str, ...]] = {
    "emotion": ("label", "labels"),
    "speaker": ("speaker_id", "client_id"),
    "gender": ("sex",),
    "fold": ("split",),
}
_AUDIO_NAMES = ("audio", "path", "file", "wav")
_DATA_SUFFIXES = (".parquet", ".arrow")
# The first bytes of the formats soundfile reads -> the suffix an extracted clip gets.
_MAGIC_SUFFIX = {b"RIFF": ".wav", b"RIFX": ".wav", b"RF64": ".wav", b"fLaC": ".flac", b"OggS": ".ogg"}
_SPLIT_COLUMN = "split"


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    name: str = NAME,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[str, str] | None = None,
    allow_leak: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
    spelling: Spelling = CONFIG,
) -> Scan:
    """Index the rows of the dataset at ``root`` as corpus ``name``; decoded and validated like any corpus."""
    name = check_name(name)
    datasets = require("hf")
    path = Path(root).expanduser()
    if not path.exists():
        raise CorpusError(f"{name}: Hugging Face dataset {path} not found")
    path = path.resolve()
    with _quiet(datasets, progress):
        splits = _load(datasets, name, path, cache_dir)
    columns = dict(columns or {})
    rows = _DatasetRows(name, path, splits, columns, cache_dir)
    result = scan_rows(
        Rows(
            name,
            path,
            rows.read(),
            base=path if path.is_dir() else path.parent,
            skipped=rows.skipped,
            aliases={**ALIASES, "path": (rows.audio_column,)},
            outside_ok=rows.extracted,
        ),
        labels,
        columns=columns,
        label_map=label_map,
        allow_leak=allow_leak,
        workers=workers,
        progress=progress,
        spelling=spelling,
    )
    # a clip extracted from bytes is named by the row it came from, not by its file in the cache
    result.skipped = [
        dataclasses.replace(s, path=rows.origin.get(s.path, s.path)) for s in result.skipped
    ]
    return result


@contextmanager
def _quiet(datasets: Any, progress: bool) -> Iterator[None]:
    """datasets' own progress bars off while it loads (emoshift shows its own), as they were afterwards."""
    was_off = datasets.are_progress_bars_disabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_off:
            datasets.enable_progress_bars()


def _load(datasets: Any, name: str, path: Path, cache_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Split name ("" for a plain dataset) -> ``datasets.Dataset``."""
    hf_cache = str(Path(cache_dir) / "sources" / "hf-datasets") if cache_dir is not None else None
    try:
        if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                return dict(loaded.items())
            return {"": loaded}
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in _DATA_SUFFIXES)
        files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(path.parent).parts)]
        if not files:
            raise CorpusError(
                f"{name}: {path} is not a Hugging Face dataset: no state.json / dataset_dict.json "
                "(a save_to_disk folder) and no .parquet or .arrow files"
            )
        kinds = {f.suffix for f in files}
        if kinds - set(_DATA_SUFFIXES) or len(kinds) > 1:
            raise CorpusError(f"{name}: {path} mixes {' and '.join(sorted(kinds))} files; give one kind")
        if ".arrow" in kinds:
            parts = [datasets.Dataset.from_file(str(f)) for f in files]
            return {"": parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)}
        return {"": datasets.Dataset.from_parquet([str(f) for f in files], cache_dir=hf_cache)}
    except CorpusError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as e:  # datasets/pyarrow on a damaged or foreign file
        raise CorpusError(f"{name}: cannot read the Hugging Face dataset at {path} ({type(e).__name__}: {e})") from None


class _DatasetRows:
    """Dataset rows -> string cells for the table reader; the audio column becomes a file path."""

    def __init__(
        self,
        name: str,
        root: Path,
        splits: dict[str, Any],
        columns: Mapping[str, str],
        cache_dir: str | os.PathLike[str] | None,
    ) -> None:
        self.name, self.root, self.splits, self.cache_dir = name, root, splits, cache_dir
        first = next(iter(splits.values()))
        self.features = first.features
        self.audio_column = columns.get("path") or self._audio_column(first)
        self.skipped: list[Skipped] = []
        self.extracted = False  # some clip came as bytes, extracted into the cache
        self.origin: dict[str, str] = {}  # extracted file -> "<dataset>: row N (<name>)", for skip reasons
        self.has_id = "id" in columns or any(c in self.features for c in ("id", "key"))

    def _audio_column(self, ds: Any) -> str:
        from datasets import Audio

        typed = [c for c, f in ds.features.items() if isinstance(f, Audio)]
        if len(typed) == 1:
            return str(typed[0])
        named = [c for c in _AUDIO_NAMES if c in ds.features]
        if len(typed) > 1 or not named:
            what = f"{len(typed)} Audio columns ({', '.join(typed)})" if typed else "no Audio column"
            raise CorpusError(
                f"{self.name}: {self.root} has {what}; name the audio with data.manifest.columns: "
                f"{{path: <column>}} (columns: {', '.join(ds.features)})"
            )
        return named[0]

    def read(self) -> list[tuple[int, dict[str, str]]]:
        """(row number from 1 over the splits, column -> cell) for every row that has audio."""
        from datasets import Audio

        out: list[tuple[int, dict[str, str]]] = []
        names: list[str] = []  # each row's audio file name without suffix ("" when the row names none)
        for split, ds in self.splits.items():
            if self.audio_column not in ds.features:
                raise CorpusError(
                    f"{self.name}: {self.root}: no column {self.audio_column!r} in split {split or 'the dataset'}"
                )
            if isinstance(ds.features[self.audio_column], Audio):
                ds = ds.cast_column(self.audio_column, Audio(decode=False))  # bytes/path as stored: no decoder
            for i, record in enumerate(ds):
                row = {k: _cell(ds.features[k], v) for k, v in record.items() if k != self.audio_column}
                if split and _SPLIT_COLUMN not in row:
                    row[_SPLIT_COLUMN] = split
                value = record[self.audio_column]
                data, given = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (None, value)
                row[self.audio_column] = self._audio(data, str(given or ""), len(out) + 1)
                names.append(Path(str(given or "")).stem)
                if not self.has_id:
                    row["id"] = f"{split}-{i}" if split else str(i)
                out.append((len(out) + 1, row))
        if not self.has_id and all(names) and len(set(names)) == len(names):
            for (_, row), stem in zip(out, names, strict=True):
                row["id"] = stem  # a clip keeps its own name, also through extraction
        return [(n, row) for n, row in out if row[self.audio_column]]

    def _audio(self, data: bytes | None, given: str, number: int) -> str:
        """The clip's file path: its bytes extracted, else its path; "" (and a Skipped record) for neither."""
        if data:
            path = str(self._extract(bytes(data), given))
            self.origin.setdefault(path, f"{self.root}: row {number}" + (f" ({given})" if given else ""))
            return path
        if given:
            return given
        self.skipped.append(Skipped(path=f"{self.root}#row{number}", reason="no audio: neither bytes nor a path"))
        return ""

    def _extract(self, data: bytes, given: str) -> Path:
        """Write one clip's bytes to the cache once (named by content, so a rescan rewrites nothing)."""
        if self.cache_dir is None:
            raise CorpusError(
                f"{self.name}: {self.root} holds its audio as bytes, which emoshift extracts to a cache folder: "
                "pass cache_dir (data.cache_dir)"
            )
        suffix = Path(given).suffix.lower()
        if suffix not in audio.AUDIO_EXTENSIONS:
            suffix = _MAGIC_SUFFIX.get(data[:4], ".audio")
        folder = Path(self.cache_dir) / "sources" / "hf" / hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        target = folder / f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
        if not (target.is_file() and target.stat().st_size == len(data)):
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, data)
        self.extracted = True
        return target


def _cell(feature: Any, value: Any) -> str:
    """One value as a table cell: a ClassLabel by its class name, lists and dicts as JSON, None as empty."""
    if value is None:
        return ""
    int2str = getattr(feature, "int2str", None)
    if int2str is not None and isinstance(value, int):
        return str(int2str(value)) if value >= 0 else ""  # -1: no label
    if isinstance(value, bytes):
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)
