"""Manifest CSV files: a scan's kept utterances, one row each, columns :data:`base.UTTERANCE_FIELDS`
followed by the optional fields (:data:`base.OPTIONAL_FIELDS`) and ``meta`` keys that some utterance has.

A manifest freezes a scan: later steps (features, training, evaluation) read it instead of decoding the
corpus again. Empty cells mean None. Relative paths are read relative to the manifest's own folder, so a
manifest can travel with its audio.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_csv
from emoshift.corpora.base import OPTIONAL_FIELDS, UTTERANCE_FIELDS, Utterance, make_meta, parse_votes

# Columns a manifest must have (Utterance fields without a default); the others may be absent.
REQUIRED_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Utterance) if f.default is dataclasses.MISSING
)
# Fields whose cell may be empty (None): those typed "... | None".
_NULLABLE = frozenset(f.name for f in dataclasses.fields(Utterance) if "None" in str(f.type))
_INT_FIELDS = frozenset({"age"})
_FLOAT_FIELDS = frozenset({"duration_s", "start", "end", "arousal", "valence", "dominance", "agreement"})


def manifest_columns(utterances: Iterable[Utterance]) -> list[str]:
    """UTTERANCE_FIELDS, then the optional fields and the meta keys that some utterance has (in that order)."""
    utts = list(utterances)
    optional = [f for f in OPTIONAL_FIELDS if any(getattr(u, f) is not None for u in utts)]
    meta = sorted({k for u in utts for k, _ in u.meta})
    return [*UTTERANCE_FIELDS, *optional, *meta]


class ManifestError(EmoshiftError, ValueError):
    """A manifest that cannot be read back (message is one line, for the user)."""


def write_manifest(path: str | os.PathLike[str], utterances: Iterable[Utterance]) -> Path:
    """Write ``utterances`` as CSV to ``path`` atomically (temp file, fsync, rename); return the path.

    Optional columns appear only when some utterance has a value for them."""
    utts = list(utterances)
    columns = manifest_columns(utts)
    atomic_write_csv(path, columns, ({k: r.get(k, "") for k in columns} for r in (u.to_row() for u in utts)))
    return Path(path)


def read_manifest(path: str | os.PathLike[str]) -> list[Utterance]:
    """Read a manifest written by :func:`write_manifest`; ManifestError on a missing file or a bad row."""
    src = Path(path)
    try:
        with open(src, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ManifestError(f"{src}: not a manifest, missing columns {', '.join(missing)}")
            return [_utterance(row, src, line=i + 2) for i, row in enumerate(reader)]
    except OSError as e:
        raise ManifestError(f"{src}: cannot read manifest ({e.strerror or e})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"{src}: not a CSV manifest ({e})") from None


def _utterance(row: dict[str, str | None], src: Path, *, line: int) -> Utterance:
    values: dict[str, object] = {}
    for name in UTTERANCE_FIELDS + OPTIONAL_FIELDS:
        cell = (row.get(name) or "").strip()
        if not cell:
            if name not in _NULLABLE:
                raise ManifestError(f"{src}:{line}: empty {name}")
            values[name] = None
        elif name in _INT_FIELDS:
            values[name] = _number(int, cell, name, src, line)
        elif name in _FLOAT_FIELDS:
            values[name] = _number(float, cell, name, src, line)
        elif name == "votes":
            try:
                values[name] = parse_votes(cell)
            except ValueError as e:
                raise ManifestError(f"{src}:{line}: {e}") from None
        else:
            values[name] = cell
    if not os.path.isabs(str(values["path"])):
        values["path"] = str((src.parent / str(values["path"])).resolve())
    known = set(UTTERANCE_FIELDS + OPTIONAL_FIELDS)
    try:
        values["meta"] = make_meta((k, v) for k, v in row.items() if isinstance(k, str) and k not in known)
    except ValueError as e:  # a column named like a field that is not a column ("meta")
        raise ManifestError(f"{src}: {e}") from None
    return Utterance(**values)  # type: ignore[arg-type]


def _number(kind: type[int] | type[float], cell: str, name: str, src: Path, line: int) -> int | float:
    try:
        return kind(cell)
    except ValueError:
        raise ManifestError(f"{src}:{line}: {name} must be a number, got {cell!r}") from None
