"""Your own corpus, from a table: a CSV or JSONL manifest with one row per utterance (``--corpus NAME=m.csv``).

Not to be confused with :mod:`emoshift.corpora.manifest`, which writes and reads emoshift's own index of a scan.

- Size: whatever the table lists; each row is one utterance (a file, or the segment ``start``..``end`` of one).
- Speakers: the ``speaker`` column, as ``<NAME>/<speaker>``. Without one the scan fails with a clear error,
  unless ``allow_leak=True`` (``data.split.allow_leak: true``): then every utterance gets a pseudo-speaker of
  its own, the scan is marked ``leaky`` and every score on it must be flagged leaky, as with a random split.
- Labels: the ``emotion`` column, either emoshift's emotion names (angry, disgust, fearful, happy, neutral, sad,
  calm, surprised, boredom, contempt, excited, frustrated; any case) or mapped onto them with ``label_map``
  (``data.label_map: {ang: angry, exc: happy}``). A label that is neither is an error listing every label found
  with its count. The label as written is kept as ``native_label``.
- Licence: the user's own data; emoshift only reads it.
- Layout: columns ``path`` (relative to the table's folder, or absolute), ``emotion``, ``speaker``; optional
  ``id``, ``gender`` (male/female/m/f; empty or unknown = None), ``age``, ``language``, ``fold`` (predefined
  folds), ``start``/``end`` (seconds: a segment, read without decoding the rest of the file),
  ``arousal``/``valence``/``dominance`` (numbers). Any other column is kept in ``meta`` (and can be audited,
  ``--by accent``). Also read as they are: nkululeko's CSV (``file, speaker, gender, emotion``) and EmoBox's
  JSONL (``key, wav, emo, ...``): ``file``/``wav`` stand for ``path``, ``emo`` for ``emotion``, ``key`` for
  ``id``. Other names are mapped with ``columns`` (``data.manifest.columns: {path: file}``).
- Quirks: every error names the row (CSV: the line, header = 1; JSONL: the line) and the column. A row whose
  audio is missing or broken is skipped with its reason, like a bad file of any corpus.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from emoshift.corpora import _scanning
from emoshift.corpora.base import (
    EMOTIONS,
    CorpusError,
    Scan,
    Skipped,
    Utterance,
    check_policy,
    harmonise,
    make_meta,
    unknown_speaker,
)

NAME = "manifest"
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".jsonl")
# The columns emoshift reads; the rest go to ``meta``.
FIELDS: tuple[str, ...] = (
    "id",
    "path",
    "emotion",
    "speaker",
    "gender",
    "age",
    "language",
    "fold",
    "start",
    "end",
    "arousal",
    "valence",
    "dominance",
)
# Other tools' names for the same columns, used when the emoshift name is absent (nkululeko, EmoBox).
ALIASES: dict[str, tuple[str, ...]] = {"path": ("file", "wav"), "emotion": ("emo",), "id": ("key",)}
_NUMBERS = ("start", "end", "arousal", "valence", "dominance")
_GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female"}
_NO_GENDER = {"", "unknown", "na", "n/a", "none", "x"}
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
# LABEL_MAP (for the loader contract): every canonical emotion stands for itself.
LABEL_MAP: dict[str, str] = {e: e for e in EMOTIONS}


class TableError(CorpusError):
    """A manifest that cannot be read; the message names the file, the row and the column."""


def is_table(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` names a manifest table (by its suffix) rather than a corpus folder."""
    return Path(root).suffix.lower() in TABLE_SUFFIXES


def check_name(name: str) -> str:
    """A corpus name for a table: lower-case letters, digits, ``_ . -``; never a built-in corpus's name."""
    from emoshift.corpora import list_corpora

    key = name.strip().lower()
    if not _NAME.fullmatch(key):
        raise TableError(
            f"corpus name {name!r} for a manifest must be lower-case letters, digits, '_', '.', '-'"
        )
    if key in list_corpora():
        raise TableError(f"corpus name {key!r} is a built-in corpus; give the manifest another name")
    return key


def scan(
    root: str | os.PathLike[str],
    labels: str = "six",
    *,
    name: str = NAME,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[str, str] | None = None,
    allow_leak: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Index the utterances a CSV/JSONL table lists, as corpus ``name``; decoded and validated like any corpus."""
    check_policy(labels)
    name = check_name(name)
    path = Path(root).expanduser()
    if not path.is_file():
        raise TableError(
            f"{name}: manifest {path} not found" if not path.exists() else f"{name}: {path} is not a file"
        )
    if not is_table(path):
        raise TableError(f"{name}: {path} is not a .csv or .jsonl manifest")
    path = path.resolve()
    return scan_rows(
        Rows(name, path, _file_rows(name, path), base=path.parent),
        labels,
        columns=columns,
        label_map=label_map,
        allow_leak=allow_leak,
        workers=workers,
        progress=progress,
    )


@dataclasses.dataclass
class Rows:
    """The rows of one corpus source, each ``(row number, column -> cell)``, for :func:`scan_rows`.

    A manifest table's rows come from its file; the other corpus sources (a Hugging Face dataset, lhotse
    manifests, an audformat database) turn their records into the same string cells, so every source gets the
    same column map, label map, speaker check and per-row errors. ``where`` is what errors name (the table, the
    dataset folder, the supervisions file); relative audio paths are read from ``base``. ``skipped`` holds
    records whose audio the source already knows to be unusable (e.g. a lhotse recording held in memory), each
    with its reason; ``aliases`` adds the source's own names for emoshift's fields (e.g. ``label`` for
    ``emotion``) to the other tools' names every table accepts; ``outside_ok`` (audio extracted to a cache)
    turns off the warning about audio outside ``base``.
    """

    name: str
    where: Path
    rows: Iterable[tuple[int, dict[str, str]]]
    base: Path
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    aliases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)
    outside_ok: bool = False


def scan_rows(
    rows: Rows,
    labels: str = "six",
    *,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[str, str] | None = None,
    allow_leak: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """A Scan of ``rows``: columns mapped, labels checked and harmonised, speakers required (or ``allow_leak``),
    every kept row's audio decoded once (bad audio skipped with its reason) and the result validated."""
    check_policy(labels)
    name = check_name(rows.name)
    result = Scan(corpus=name, root=str(rows.where), labels=labels)
    aliases = {f: (*ALIASES.get(f, ()), *rows.aliases.get(f, ())) for f in FIELDS}
    reader = _Reader(name, rows.where, columns or {}, _label_map(name, label_map or {}), allow_leak)
    reader.base, reader.aliases = rows.base, aliases
    utterances = reader.read(rows.rows)
    if not utterances:
        raise TableError(f"{name}: {rows.where} lists no utterances")
    result.skipped.extend(rows.skipped)
    result.warnings.extend(rows.warnings)
    if reader.pseudo_speakers:
        result.leaky = True
        what = (
            "no speaker column" if reader.no_speaker else f"{reader.pseudo_speakers} rows without a speaker"
        )
        result.warnings.append(
            f"{what}: each such utterance is its own pseudo-speaker (allow_leak), so a split may put one voice "
            "in train and test; every score on this corpus is flagged leaky"
        )
    outside = [] if rows.outside_ok else _outside(utterances, rows.base)
    if outside:
        result.warnings.append(
            f"{len(outside)} path(s) resolve outside the manifest's folder {rows.base} (allowed; e.g. "
            f"{outside[0]}" + (f", {outside[1]}" if len(outside) > 1 else "") + ")"
        )
    pending = []
    for u in utterances:
        label = harmonise(u.emotion, labels)
        if label is None:
            result.left_out[u.emotion] += 1
        else:
            pending.append(u if label == u.emotion else _relabel(u, label))
    return _scanning.decode_all(result, pending, workers=workers, progress=progress)


def _outside(utterances: list[Utterance], root: Path) -> list[str]:
    """The distinct audio paths that, links and ``..`` resolved, lie outside ``root`` (listed, never refused:
    a manifest may well point at a shared audio store, but the user should see that it does)."""
    root = root.resolve()
    out: dict[str, None] = {}
    for u in utterances:
        if u.path not in out and not Path(u.path).resolve().is_relative_to(root):
            out[u.path] = None
    return list(out)


def _relabel(u: Utterance, label: str) -> Utterance:
    return dataclasses.replace(u, emotion=label)


def _label_map(name: str, label_map: Mapping[str, str]) -> dict[str, str]:
    """The user's map, keys compared case-insensitively; its targets must be emoshift emotions."""
    out: dict[str, str] = {}
    for key, value in label_map.items():
        target = str(value).strip().lower()
        if target not in EMOTIONS:
            raise TableError(
                f"{name}: label_map maps {key!r} to {value!r}, which is not one of emoshift's emotions "
                f"({', '.join(EMOTIONS)})"
            )
        out[str(key).strip().lower()] = target
    return out


def _file_rows(name: str, path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, column -> cell) for CSV (header = row 1) or JSONL (line number)."""

    def at(line: int) -> str:
        return f"{name}: {path}: row {line}"

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(f)
                if not reader.fieldnames:
                    raise TableError(f"{name}: {path} has no header row")
                for i, raw in enumerate(reader):
                    if None in raw:
                        raise TableError(f"{at(i + 2)}: more cells than the header has columns")
                    yield i + 2, {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            else:
                for i, line in enumerate(f):
                    if line.strip():
                        yield i + 1, _json_row(line, at(i + 1))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TableError(f"{name}: cannot read {path} ({e})") from None


def _json_row(line: str, at: str) -> dict[str, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise TableError(f"{at}: not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise TableError(f"{at}: expected a JSON object")
    return {str(k).strip(): "" if v is None else str(v).strip() for k, v in obj.items()}


class _Reader:
    """Rows of one table -> Utterances (canonical emotion, no duration); errors name the row and column."""

    def __init__(
        self, name: str, path: Path, columns: Mapping[str, str], label_map: dict[str, str], allow_leak: bool
    ) -> None:
        self.name, self.path, self.columns, self.label_map, self.allow_leak = (
            name,
            path,
            columns,
            label_map,
            allow_leak,
        )
        self.no_speaker = False  # no speaker column at all
        self.pseudo_speakers = 0  # rows given a pseudo-speaker (allow_leak)
        self.base = path.parent  # relative audio paths are read from here
        self.aliases: Mapping[str, tuple[str, ...]] = ALIASES

    def read(self, source: Iterable[tuple[int, dict[str, str]]]) -> list[Utterance]:
        rows = list(source)
        header = list(dict.fromkeys(k for _, row in rows for k in row)) if rows else []
        where = self._where(header)
        self._check_labels(rows, where)
        utterances = [self._utterance(line, row, where) for line, row in rows]
        self._check_ids(utterances, [line for line, _ in rows])
        return utterances

    # -- reading ------------------------------------------------------------------------------------------
    def _where(self, header: list[str]) -> dict[str, str]:
        """emoshift field -> the table's column holding it (user map first, then the other tools' names)."""
        where: dict[str, str] = {}
        for field, column in self.columns.items():
            if field not in FIELDS:
                raise TableError(
                    f"{self.name}: manifest.columns maps {field!r}, not one of {', '.join(FIELDS)}"
                )
            if column not in header:
                raise TableError(
                    f"{self.name}: manifest.columns maps {field} to column {column!r}, not in {self.path}"
                )
            where[field] = column
        for field in FIELDS:
            if field not in where:
                found = next((c for c in (field, *self.aliases.get(field, ())) if c in header), None)
                if found is not None:
                    where[field] = found
        for needed in ("path", "emotion"):
            if needed not in where:
                raise TableError(
                    f"{self.name}: {self.path} has no {needed!r} column (columns: {', '.join(header)}); "
                    f"map one with data.manifest.columns: {{{needed}: <column>}}"
                )
        if "speaker" not in where:
            if not self.allow_leak:
                raise TableError(
                    f"{self.name}: {self.path} has no 'speaker' column: splits cannot keep speakers apart. Map one "
                    "with data.manifest.columns: {speaker: <column>}, or set data.split.allow_leak: true "
                    "(every score is then flagged leaky)"
                )
            self.no_speaker = True
        return where

    def _check_labels(self, rows: list[tuple[int, dict[str, str]]], where: dict[str, str]) -> None:
        found = Counter(row.get(where["emotion"], "") for _, row in rows)
        bad = {label for label in found if self._emotion(label) is None}
        if bad:
            listed = ", ".join(f"{label or '(empty)'} {n}" for label, n in found.most_common())
            unmapped = ", ".join(sorted(label or "(empty)" for label in bad))
            raise TableError(
                f"{self.name}: labels {unmapped} in column {where['emotion']!r} are not emoshift emotions; map them "
                f"with data.label_map (e.g. {{{sorted(bad)[0] or 'x'}: angry}}). Labels found: {listed}"
            )

    def _emotion(self, label: str) -> str | None:
        key = label.strip().lower()
        mapped = self.label_map.get(key, key)
        return mapped if mapped in EMOTIONS and key else None

    # -- one row ------------------------------------------------------------------------------------------
    def _utterance(self, line: int, row: dict[str, str], where: dict[str, str]) -> Utterance:
        def cell(field: str) -> str:
            return row.get(where[field], "") if field in where else ""

        raw_path = cell("path")
        if not raw_path:
            raise TableError(f"{self._at(line)}, column {where['path']!r}: empty path")
        audio = Path(raw_path).expanduser()
        audio = audio if audio.is_absolute() else self.base / audio
        start, end = self._number(line, where, row, "start"), self._number(line, where, row, "end")
        uid = cell("id") or self._default_id(raw_path, start, end)
        speaker = cell("speaker")
        if not speaker:
            if not self.allow_leak:
                raise TableError(
                    f"{self._at(line)}, column {where['speaker']!r}: empty speaker "
                    "(fill it in, or set data.split.allow_leak: true and every score is flagged leaky)"
                )
            self.pseudo_speakers += 1
        label = cell("emotion")
        used = set(where.values())
        return Utterance(
            id=f"{self.name}/{uid}",
            path=os.path.abspath(audio),
            corpus=self.name,
            speaker=f"{self.name}/{speaker}" if speaker else unknown_speaker(self.name, uid),
            gender=self._gender(line, where, cell("gender")),
            emotion=self._emotion(label) or "",
            native_label=label,
            age=self._age(line, where, cell("age")),
            language=cell("language") or None,
            fold=cell("fold") or None,
            start=start,
            end=end,
            arousal=self._number(line, where, row, "arousal"),
            valence=self._number(line, where, row, "valence"),
            dominance=self._number(line, where, row, "dominance"),
            meta=make_meta((k, v) for k, v in row.items() if k not in used and k not in FIELDS),
        )

    def _default_id(self, raw_path: str, start: float | None, end: float | None) -> str:
        """The path without its suffix (relative paths as written), plus the segment when there is one."""
        stem = str(Path(raw_path).with_suffix("")).replace(os.sep, "/").lstrip("/")
        if start is None and end is None:
            return stem
        return f"{stem}@{start or 0.0:g}-{'' if end is None else f'{end:g}'}"

    def _number(self, line: int, where: dict[str, str], row: dict[str, str], field: str) -> float | None:
        if field not in where or not row.get(where[field], ""):
            return None
        text = row[where[field]]
        try:
            value = float(text)
        except ValueError:
            raise TableError(
                f"{self._at(line)}, column {where[field]!r}: {field} must be a number, got {text!r}"
            ) from None
        if field in ("start", "end") and value < 0:
            raise TableError(
                f"{self._at(line)}, column {where[field]!r}: {field} must not be negative, got {text!r}"
            )
        return value

    def _gender(self, line: int, where: dict[str, str], text: str) -> str | None:
        key = text.strip().lower()
        if key in _NO_GENDER:
            return None
        if key not in _GENDERS:
            raise TableError(
                f"{self._at(line)}, column {where['gender']!r}: gender must be male/female/m/f or empty, got {text!r}"
            )
        return _GENDERS[key]

    def _age(self, line: int, where: dict[str, str], text: str) -> int | None:
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if value < 0 or value != int(value):
            raise TableError(
                f"{self._at(line)}, column {where['age']!r}: age must be a whole number, got {text!r}"
            )
        return int(value)

    def _check_ids(self, utterances: list[Utterance], lines: list[int]) -> None:
        first: dict[str, int] = {}
        for u, line in zip(utterances, lines, strict=True):
            if u.id in first:
                raise TableError(
                    f"{self._at(line)}: utterance {u.id!r} is listed twice (also row {first[u.id]}); give each row "
                    "its own id (an 'id' column) or its own path/segment"
                )
            first[u.id] = line
        starts_ends = [
            (u, line)
            for u, line in zip(utterances, lines, strict=True)
            if u.start is not None and u.end is not None
        ]
        for u, line in starts_ends:
            if u.end is not None and u.start is not None and u.end <= u.start:
                raise TableError(f"{self._at(line)}: segment end {u.end:g}s is not after start {u.start:g}s")

    def _at(self, line: int) -> str:
        return f"{self.name}: {self.path}: row {line}"
