"""A corpus of your own from an audformat database (``--corpus NAME=audformat:PATH``), as audb, nkululeko and
audEERING's tools keep corpora.

- Size: one utterance per entry of the emotion scheme's tables: a file (filewise tables) or a segment
  ``start``..``end`` of one (segmented tables, read without decoding the rest of the file).
- Speakers: the ``speaker`` scheme (another through ``data.manifest.columns: {speaker: <scheme>}``), as
  ``<NAME>/<speaker>``; its labels' ``gender`` and ``age`` (``labels: {s1: {gender: female, age: 31}}``) are
  the speaker's. Without one the scan fails unless ``data.split.allow_leak: true``, as for a manifest table.
- Labels: the ``emotion`` scheme (another through ``data.manifest.columns: {emotion: <scheme>}``), as emoshift
  emotion names or mapped with ``data.label_map`` (audb's ``anger``, ``happiness``, ... need a map).
- Licence: whatever the database's (``db.yaml`` says); emoshift only reads it.
- Layout: PATH is the database folder: ``db.yaml`` and its tables (CSV or parquet) beside it, the audio files
  where the tables' ``file`` index says (relative to PATH). The entries are joined across tables by
  ``audformat.Database.get``, so the emotion may sit in one table and the speaker in another; every other
  column of the database's tables (a split, ...) is joined too and kept in ``meta``, and read like a
  table's columns where its name is one (``gender``, ``age``, ``language``, ``fold``, ``arousal``, ...;
  ``transcription`` or ``text``: the spoken ``sentence``).
- Quirks: tables that give one entry two different emotions make the scan fail (audformat names the entry);
  map to one scheme or one table. An entry whose audio is missing or broken is skipped with its reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emoshift.corpora.base import CorpusError, Scan
from emoshift.corpora.sources import require
from emoshift.corpora.table import CONFIG, Rows, Spelling, check_name, scan_rows

NAME = "audformat"
ALIASES: dict[str, tuple[str, ...]] = {"gender": ("sex",), "fold": ("split",)}
# The fields read from schemes; the others (gender, age, ...) from the joined columns of the same name.
_SCHEME_FIELDS = ("emotion", "speaker")


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
    """Index the emotion entries of the audformat database at ``root`` as corpus ``name``; decoded, validated."""
    name = check_name(name)
    audformat = require("audformat")
    path = Path(root).expanduser()
    if not (path / "db.yaml").is_file():
        raise CorpusError(
            f"{name}: {path} is not an audformat database (no db.yaml)"
            if path.is_dir()
            else f"{name}: audformat database {path} not found"
        )
    path = path.resolve()
    try:
        db = audformat.Database.load(str(path), load_data=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CorpusError(f"{name}: cannot load the audformat database {path} ({type(e).__name__}: {e})") from None
    columns = dict(columns or {})
    scheme = {f: columns.pop(f, f) for f in _SCHEME_FIELDS}  # emoshift field -> the database's scheme/column
    known = set(db.schemes) | _table_columns(db)
    if scheme["emotion"] not in known:
        raise CorpusError(
            f"{name}: {path} has no {scheme['emotion']!r} scheme or column (schemes: {', '.join(db.schemes) or 'none'}); "
            "name the emotion with data.manifest.columns: {emotion: <scheme>}"
        )
    speaker = scheme["speaker"] if scheme["speaker"] in known else None
    if speaker is None and scheme["speaker"] != "speaker":
        raise CorpusError(
            f"{name}: {path} has no {scheme['speaker']!r} scheme or column (data.manifest.columns.speaker); "
            f"schemes: {', '.join(db.schemes) or 'none'}"
        )
    others = sorted((_table_columns(db) | _label_keys(db, speaker)) - {scheme["emotion"], speaker or ""})
    try:
        df = db.get(scheme["emotion"], [*([speaker] if speaker else []), *others], strict=False)
    except (ValueError, KeyError, TypeError) as e:  # e.g. two tables disagree on an entry's emotion
        raise CorpusError(f"{name}: {path}: cannot join the {scheme['emotion']!r} entries ({e})") from None
    rows = [(i, row) for i, row in enumerate(_rows(df, scheme["emotion"], speaker), start=1)]
    return scan_rows(
        Rows(name, path, rows, base=path, aliases=ALIASES),
        labels,
        columns={**columns, "emotion": _EMOTION, **({"speaker": _SPEAKER} if speaker else {})},
        label_map=label_map,
        allow_leak=allow_leak,
        workers=workers,
        progress=progress,
        spelling=spelling,
    )


# The cells the rows give the emotion and speaker under (the schemes' own names may clash with table fields).
_EMOTION, _SPEAKER = "emotion", "speaker"


def _table_columns(db: Any) -> set[str]:
    """The columns of the database's filewise and segmented tables (misc tables are reached through labels)."""
    return {str(c) for table in db.tables.values() for c in table.columns}


def _label_keys(db: Any, scheme: str | None) -> set[str]:
    """The keys of a scheme's dict labels (``{s1: {gender: female, age: 31}}`` -> gender, age)."""
    if scheme is None or scheme not in db.schemes:
        return set()
    labels = db.schemes[scheme].labels
    if isinstance(labels, dict):
        return {str(k) for v in labels.values() if isinstance(v, dict) for k in v}
    return set()


def _rows(df: Any, emotion: str, speaker: str | None) -> list[dict[str, str]]:
    """One row of string cells per entry: the file, the segment when the index has one, every joined column."""
    segmented = list(df.index.names) == ["file", "start", "end"]
    out = []
    for index, record in zip(df.index, df.to_dict("records"), strict=True):
        file, start, end = (index if segmented else (index, None, None))
        row = {str(k): _cell(v) for k, v in record.items() if k not in (emotion, speaker)}
        row[_EMOTION] = _cell(record[emotion])
        if speaker is not None:
            row[_SPEAKER] = _cell(record[speaker])
        row["path"] = str(file)
        if segmented:
            row["start"] = _seconds(start)
            row["end"] = _seconds(end)
        out.append(row)
    return out


def _seconds(value: Any) -> str:
    """A pandas Timedelta as seconds; NaT (a segment to the end of the file) as empty."""
    seconds = getattr(value, "total_seconds", None)
    if seconds is None:
        return ""
    s = float(seconds())
    return "" if math.isnan(s) else f"{s:g}"


def _cell(value: Any) -> str:
    import pandas as pd  # audformat's own dependency

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):  # None, NaN, NA, NaT: no value
        return ""
    return str(value)
