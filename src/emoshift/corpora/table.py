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
  ``arousal``/``valence``/``dominance`` (numbers); and the columns of emoshift's own index
  (``emoshift corpus index`` writes them, so its output reads back as it is): ``native_label`` (kept as the native
  label instead of the label as written), ``intensity``, ``sentence``, ``race``, ``ethnicity``, ``agreement``;
  ``votes`` (the raters' votes, ``angry:3;neutral:2``, labels as in ``emotion``) or instead one column per
  class ``p_<label>`` (``p_angry, p_neutral, ...``: the raters' distribution, an empty cell is 0), kept as
  :attr:`Utterance.votes` for soft-label training (``training.targets: soft``);
  ``corpus`` and ``duration_s`` are read and ignored (the table's name is the corpus; durations are measured
  again). Any other column is kept in ``meta`` (and can be audited, ``--by accent``); a column named ``meta``
  is refused. Also read as they are: nkululeko's CSV (``file, speaker, gender, emotion``) and EmoBox's
  JSONL (``key, wav, emo, ...``): ``file``/``wav`` stand for ``path``, ``emo`` for ``emotion``, ``key`` for
  ``id``; ``text``, ``transcription`` or ``transcript`` (a Hugging Face dataset's, a lhotse supervision's, an
  audformat table's) for ``sentence``, the spoken text (text overlap, ``data.split.disjoint: [speaker, text]``).
  Other names are mapped with ``columns`` (``data.manifest.columns: {path: file}``).
- Ids: ``<NAME>/`` and the ``id`` column, or else the audio path without its suffix, relative to the table's
  folder (or, when some audio lies outside it, to the folder all the table's audio shares).
- Quirks: every error names the row (CSV: the line, header = 1; JSONL: the line) and the column, and names the
  options as the user gave them (:data:`CONFIG`: config keys; :data:`FLAGS`: ``corpus index``'s flags). A row
  whose audio is missing or broken is skipped with its reason, like a bad file of any corpus.
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
    Votes,
    check_policy,
    harmonise,
    harmonise_votes,
    make_meta,
    parse_votes,
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
    # emoshift's own index (corpora.manifest) carries these too
    "native_label",
    "intensity",
    "sentence",
    "race",
    "ethnicity",
    "agreement",
    "votes",  # the raters' votes, ``angry:3;neutral:2`` (labels as in ``emotion``); or one p_<label> column each
)
SHARE_PREFIX = "p_"  # p_angry, p_neutral, ...: the raters' distribution, one column per class
# Columns of emoshift's own index that a table does not take from the row: the table's name is its corpus, and
# durations are measured when the audio is decoded.
IGNORED: tuple[str, ...] = ("corpus", "duration_s")
# Other tools' names for the same columns, used when the emoshift name is absent (nkululeko, EmoBox).
ALIASES: dict[str, tuple[str, ...]] = {
    "path": ("file", "wav"),
    "emotion": ("emo",),
    "id": ("key",),
    "sentence": ("text", "transcription", "transcript"),  # what is said: text overlap, text-disjoint splits
}
_NUMBERS = ("start", "end", "arousal", "valence", "dominance", "agreement")
_GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female"}
_NO_GENDER = {"", "unknown", "na", "n/a", "none", "x"}
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
# LABEL_MAP (for the loader contract): every canonical emotion stands for itself.
LABEL_MAP: dict[str, str] = {e: e for e in EMOTIONS}


class TableError(CorpusError):
    """A manifest that cannot be read; the message names the file, the row and the column."""


@dataclasses.dataclass(frozen=True)
class Spelling:
    """How an error message names the table's options: as the config keys or as ``corpus index``'s flags, so a
    user is told what to type where they typed it."""

    columns: str  # the column map, e.g. "data.manifest.columns"
    label_map: str
    column_syntax: str  # "{field}" and "{column}" are filled in
    label_syntax: str  # "{label}" and "{emotion}"
    allow_leak: str  # how to accept a table without speakers

    def column(self, field: str, column: str = "<column>") -> str:
        return self.column_syntax.format(field=field, column=column)

    def label(self, label: str, emotion: str = "angry") -> str:
        return self.label_syntax.format(label=label, emotion=emotion)


CONFIG = Spelling(
    columns="data.manifest.columns",
    label_map="data.label_map",
    column_syntax="data.manifest.columns: {{{field}: {column}}}",
    label_syntax="data.label_map (e.g. {{{label}: {emotion}}})",
    allow_leak="set data.split.allow_leak: true",
)
FLAGS = Spelling(
    columns="--column",
    label_map="--label-map",
    column_syntax="--column {field}={column}",
    label_syntax="--label-map (e.g. --label-map {label}={emotion})",
    allow_leak="pass --allow-leak",
)


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
    spelling: Spelling = CONFIG,
) -> Scan:
    """Index the utterances a CSV/JSONL table lists, as corpus ``name``; decoded and validated like any corpus.

    ``spelling`` names the options in error messages (:data:`CONFIG` keys, or :data:`FLAGS` for the CLI)."""
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
        spelling=spelling,
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
    spelling: Spelling = CONFIG,
) -> Scan:
    """A Scan of ``rows``: columns mapped, labels checked and harmonised, speakers required (or ``allow_leak``),
    every kept row's audio decoded once (bad audio skipped with its reason) and the result validated;
    ``spelling`` names the options in error messages."""
    check_policy(labels)
    name = check_name(rows.name)
    result = Scan(corpus=name, root=str(rows.where), labels=labels)
    aliases = {f: (*ALIASES.get(f, ()), *rows.aliases.get(f, ())) for f in FIELDS}
    reader = _Reader(name, rows.where, columns or {}, _label_map(name, label_map or {}, spelling), allow_leak, spelling)
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
            pending.append(_relabel(u, label, labels))
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


def _relabel(u: Utterance, label: str, policy: str) -> Utterance:
    """``u`` with its label and votes under ``policy``."""
    return dataclasses.replace(u, emotion=label, votes=harmonise_votes(u.votes, policy))


def _label_map(name: str, label_map: Mapping[str, str], spelling: Spelling) -> dict[str, str]:
    """The user's map, keys compared case-insensitively; its targets must be emoshift emotions."""
    out: dict[str, str] = {}
    for key, value in label_map.items():
        target = str(value).strip().lower()
        if target not in EMOTIONS:
            raise TableError(
                f"{name}: {spelling.label_map} maps {key!r} to {value!r}, which is not one of emoshift's emotions "
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
        self,
        name: str,
        path: Path,
        columns: Mapping[str, str],
        label_map: dict[str, str],
        allow_leak: bool,
        spelling: Spelling,
    ) -> None:
        self.name, self.path, self.columns, self.label_map, self.allow_leak = (
            name,
            path,
            columns,
            label_map,
            allow_leak,
        )
        self.spelling = spelling
        self.id_base = path.parent  # ids are audio paths relative to this folder (set in read)
        self.no_speaker = False  # no speaker column at all
        self.pseudo_speakers = 0  # rows given a pseudo-speaker (allow_leak)
        self.base = path.parent  # relative audio paths are read from here
        self.aliases: Mapping[str, tuple[str, ...]] = ALIASES
        self.shares: dict[str, str] = {}  # p_<label> column -> emotion (the raters' distribution), set in read

    def read(self, source: Iterable[tuple[int, dict[str, str]]]) -> list[Utterance]:
        rows = list(source)
        header = list(dict.fromkeys(k for _, row in rows for k in row)) if rows else []
        where = self._where(header)
        if "votes" not in where:
            self.shares = {c: e for c in header if c.startswith(SHARE_PREFIX) and (e := self._emotion(c[2:]))}
        self._check_labels(rows, where)
        self.id_base = self._id_base([self._audio(line, row, where) for line, row in rows])
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
                    f"{self.name}: {self.spelling.columns} maps {field!r}, not one of {', '.join(FIELDS)}"
                )
            if column not in header:
                raise TableError(
                    f"{self.name}: {self.spelling.columns} maps {field} to column {column!r}, not in {self.path}"
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
                    f"map one with {self.spelling.column(needed)}"
                )
        if "speaker" not in where:
            if not self.allow_leak:
                raise TableError(
                    f"{self.name}: {self.path} has no 'speaker' column: splits cannot keep speakers apart. Map one "
                    f"with {self.spelling.column('speaker')}, or {self.spelling.allow_leak} "
                    "(every score is then flagged leaky)"
                )
            self.no_speaker = True
        if "meta" in header:
            raise TableError(f"{self.name}: {self.path} has a column named 'meta', which emoshift reserves; rename it")
        return where

    def _check_labels(self, rows: list[tuple[int, dict[str, str]]], where: dict[str, str]) -> None:
        found = Counter(row.get(where["emotion"], "") for _, row in rows)
        bad = {label for label in found if self._emotion(label) is None}
        if bad:
            listed = ", ".join(f"{label or '(empty)'} {n}" for label, n in found.most_common())
            unmapped = ", ".join(sorted(label or "(empty)" for label in bad))
            raise TableError(
                f"{self.name}: labels {unmapped} in column {where['emotion']!r} are not emoshift emotions; map them "
                f"with {self.spelling.label(sorted(bad)[0] or 'x')}. Labels found: {listed}"
            )

    def _emotion(self, label: str) -> str | None:
        key = label.strip().lower()
        mapped = self.label_map.get(key, key)
        return mapped if mapped in EMOTIONS and key else None

    # -- one row ------------------------------------------------------------------------------------------
    def _utterance(self, line: int, row: dict[str, str], where: dict[str, str]) -> Utterance:
        def cell(field: str) -> str:
            return row.get(where[field], "") if field in where else ""

        audio = self._audio(line, row, where)
        start, end = self._number(line, where, row, "start"), self._number(line, where, row, "end")
        uid = cell("id") or self._default_id(audio, start, end)
        speaker = cell("speaker")
        if not speaker:
            if not self.allow_leak:
                raise TableError(
                    f"{self._at(line)}, column {where['speaker']!r}: empty speaker "
                    f"(fill it in, or {self.spelling.allow_leak} and every score is flagged leaky)"
                )
            self.pseudo_speakers += 1
        label = cell("emotion")
        used = set(where.values())
        return Utterance(
            id=f"{self.name}/{uid}",
            path=str(audio),
            corpus=self.name,
            speaker=f"{self.name}/{speaker}" if speaker else unknown_speaker(self.name, uid),
            gender=self._gender(line, where, cell("gender")),
            emotion=self._emotion(label) or "",
            native_label=cell("native_label") or label,
            intensity=cell("intensity") or None,
            sentence=cell("sentence") or None,
            age=self._age(line, where, cell("age")),
            race=cell("race") or None,
            ethnicity=cell("ethnicity") or None,
            language=cell("language") or None,
            fold=cell("fold") or None,
            start=start,
            end=end,
            arousal=self._number(line, where, row, "arousal"),
            valence=self._number(line, where, row, "valence"),
            dominance=self._number(line, where, row, "dominance"),
            agreement=self._number(line, where, row, "agreement"),
            votes=self._votes(line, row, where),
            meta=make_meta(
                (k, v)
                for k, v in row.items()
                if k not in used and k not in FIELDS and k not in IGNORED and k not in self.shares
            ),
        )

    def _votes(self, line: int, row: dict[str, str], where: dict[str, str]) -> Votes | None:
        """The row's rater votes (canonical emotions): the ``votes`` cell, or its p_<label> cells (empty = 0)."""
        if "votes" in where:
            cell = row.get(where["votes"], "")
            pairs = [part.partition(":") for part in cell.split(";")] if cell.strip() else []
            try:
                text = ";".join(f"{self._emotion(lab) or lab}:{count}" for lab, _, count in pairs)
                return parse_votes(text)
            except ValueError as e:
                raise TableError(f"{self._at(line)}, column {where['votes']!r}: {e}") from None
        out: dict[str, float] = {}
        for column, emotion in self.shares.items():
            text = row.get(column, "")
            try:
                value = float(text) if text else 0.0
            except ValueError:
                value = -1.0
            if not value >= 0:
                raise TableError(f"{self._at(line)}, column {column!r}: a share must be a number >= 0, got {text!r}")
            out[emotion] = out.get(emotion, 0.0) + value
        return tuple((e, out[e]) for e in EMOTIONS if out.get(e, 0.0) > 0) or None

    def _audio(self, line: int, row: dict[str, str], where: dict[str, str]) -> Path:
        """The row's audio as an absolute, normalised path (relative paths are relative to the source's base)."""
        raw_path = row.get(where["path"], "")
        if not raw_path:
            raise TableError(f"{self._at(line)}, column {where['path']!r}: empty path")
        audio = Path(raw_path).expanduser()
        return Path(os.path.abspath(audio if audio.is_absolute() else self.base / audio))

    def _id_base(self, audio: list[Path]) -> Path:
        """The folder ids are relative to: the table's, or the one all its audio shares when some lies outside
        (never the file system's root glued to the corpus name: ``mine/home/me/clips/a``)."""
        folder = Path(os.path.abspath(self.base))
        if all(a.is_relative_to(folder) for a in audio):
            return folder
        return Path(os.path.commonpath([folder, *(a.parent for a in audio)]))

    def _default_id(self, audio: Path, start: float | None, end: float | None) -> str:
        """The path without its suffix, relative to :attr:`id_base`, plus the segment when there is one."""
        stem = audio.relative_to(self.id_base).with_suffix("").as_posix()
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
