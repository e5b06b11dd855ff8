"""A corpus of your own from lhotse manifests (``--corpus NAME=lhotse:PATH``).

- Size: one utterance per supervision; a supervision is the segment ``start``..``start + duration`` of its
  recording, read without decoding the rest of the file (several utterances may share one recording).
- Speakers: the supervision's ``speaker`` (any other field or ``custom`` key through
  ``data.manifest.columns: {speaker: <key>}``), as ``<NAME>/<speaker>``; a supervision without one is refused
  unless ``data.split.allow_leak: true``, as for a manifest table.
- Labels: the ``emotion`` key of the supervision's ``custom`` (or ``emo``; any field or ``custom`` key through
  ``data.manifest.columns: {emotion: <key>}``), as emoshift emotion names or mapped with ``data.label_map``.
- Licence: whatever the corpus's; emoshift only reads it.
- Layout: PATH is a folder holding one recordings manifest and one supervisions manifest (``*recordings*`` and
  ``*supervisions*``, ``.jsonl`` or ``.jsonl.gz``, as lhotse's recipes write them), or the supervisions file
  itself with its recordings beside it (the same name, ``supervisions`` -> ``recordings``). A recording's file
  path is read as written, relative paths from the manifests' folder. The supervision's ``gender``,
  ``language`` and ``custom`` keys are read like a table's columns (``fold``, ``arousal``, ...); ``text`` is the
  spoken ``sentence``; ``channel`` and the other keys are kept in ``meta``.
- Quirks: only ``file`` audio sources are read; a recording held in memory, behind a URL or a command, or
  with lhotse transforms (speed, resampling) is skipped with its reason, as is a segment outside its file.
  Errors name the supervision (its line in the supervisions manifest) and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emoshift.corpora.base import CorpusError, Scan, Skipped
from emoshift.corpora.sources import require
from emoshift.corpora.table import CONFIG, Rows, Spelling, check_name, scan_rows

NAME = "lhotse"
ALIASES: dict[str, tuple[str, ...]] = {"fold": ("split", "subset")}
_SUFFIXES = (".jsonl", ".jsonl.gz")
# Supervision fields that are not cells of the row (the segment is given as start/end instead).
_NOT_CELLS = frozenset({"custom", "alignment", "duration", "start"})


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
    """Index the supervisions of a lhotse manifest pair as corpus ``name``; decoded and validated."""
    name = check_name(name)
    lhotse = require("lhotse")
    recordings_path, supervisions_path = manifests(name, Path(root).expanduser())
    try:
        recordings = lhotse.load_manifest(recordings_path)
        supervisions = lhotse.load_manifest(supervisions_path)
    except (OSError, ValueError, KeyError, TypeError) as e:  # lhotse on a damaged or foreign manifest
        raise CorpusError(f"{name}: cannot read the lhotse manifests ({type(e).__name__}: {e})") from None
    for path, manifest, kind in (
        (recordings_path, recordings, lhotse.RecordingSet),
        (supervisions_path, supervisions, lhotse.SupervisionSet),
    ):
        if not isinstance(manifest, kind):
            raise CorpusError(f"{name}: {path} is a {type(manifest).__name__}, not a {kind.__name__}")
    skipped: list[Skipped] = []
    rows = list(_rows(name, supervisions_path, recordings, supervisions, skipped))
    return scan_rows(
        Rows(name, supervisions_path, rows, base=supervisions_path.parent, skipped=skipped, aliases=ALIASES),
        labels,
        columns=columns,
        label_map=label_map,
        allow_leak=allow_leak,
        workers=workers,
        progress=progress,
        spelling=spelling,
    )


def manifests(name: str, path: Path) -> tuple[Path, Path]:
    """(recordings, supervisions) manifest paths for a folder or a supervisions file; CorpusError naming what
    is missing or ambiguous."""
    if path.is_file():
        if "supervisions" not in path.name:
            raise CorpusError(f"{name}: {path} is not a supervisions manifest (its name has no 'supervisions')")
        recordings = path.with_name(path.name.replace("supervisions", "recordings"))
        if not recordings.is_file():
            raise CorpusError(f"{name}: no recordings manifest {recordings.name} beside {path}")
        return recordings.resolve(), path.resolve()
    if not path.is_dir():
        raise CorpusError(f"{name}: lhotse manifests {path} not found")
    found = {}
    for kind in ("recordings", "supervisions"):
        files = sorted(p for p in path.iterdir() if kind in p.name and p.name.endswith(_SUFFIXES))
        if len(files) != 1:
            listed = ", ".join(p.name for p in files) or "none"
            raise CorpusError(
                f"{name}: {path} needs exactly one {kind} manifest (*{kind}*.jsonl or .jsonl.gz), found {listed}; "
                f"name the supervisions file instead (lhotse:{path}/<...supervisions...>.jsonl.gz)"
            )
        found[kind] = files[0].resolve()
    return found["recordings"], found["supervisions"]


def _rows(
    name: str, where: Path, recordings: Any, supervisions: Any, skipped: list[Skipped]
) -> list[tuple[int, dict[str, str]]]:
    """(line in the supervisions manifest, field -> cell) for every supervision whose audio is a file."""
    out: list[tuple[int, dict[str, str]]] = []
    for line, sup in enumerate(supervisions, start=1):
        if sup.recording_id not in recordings:
            raise CorpusError(
                f"{name}: {where}: row {line}: supervision {sup.id!r} names recording {sup.recording_id!r}, "
                "which the recordings manifest does not list"
            )
        rec = recordings[sup.recording_id]
        path, reason = _audio_path(rec, where.parent)
        if reason is not None:
            skipped.append(Skipped(path=f"{rec.id} ({sup.id})", reason=reason))
            continue
        row = {k: _cell(v) for k, v in sup.to_dict().items() if k not in _NOT_CELLS}
        for key, value in (sup.custom or {}).items():
            row[key if key not in row else f"custom.{key}"] = _cell(value)
        row.update(path=str(path), start=repr(float(sup.start)), end=repr(float(sup.start + sup.duration)))
        out.append((line, row))
    return out


def _audio_path(rec: Any, base: Path) -> tuple[Path | None, str | None]:
    """(the recording's audio file, None) or (None, why it cannot be read)."""
    if getattr(rec, "transforms", None):
        kinds = ", ".join(str(t.get("name", t) if isinstance(t, dict) else type(t).__name__) for t in rec.transforms)
        return None, f"lhotse transforms ({kinds}): emoshift reads the file as it is, so it is not used"
    types = sorted({s.type for s in rec.sources})
    if types != ["file"]:
        return None, f"lhotse {'/'.join(types)} source: only file sources are read"
    files = sorted({s.source for s in rec.sources})
    if len(files) != 1:
        return None, f"lhotse recording in {len(files)} files (one per channel): only one-file recordings are read"
    path = Path(files[0]).expanduser()
    return (path if path.is_absolute() else base / path), None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
