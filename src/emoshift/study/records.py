"""Where a study keeps its runs (``OUT/runs/<id>``) and reading back what they left, tolerant of bad files.

Shared by the runner (is an experiment complete, stale or to resume?) and the report (what do the runs hold?);
torch-free, like the report.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir, RunError


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when the file is absent, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_record(run: str | os.PathLike[str]) -> ModelRecord | None:
    """RUN/model.json (:meth:`RunDir.info`), or None when it is absent or broken (the report goes on)."""
    try:
        return RunDir.of(run).info_if_present()
    except RunError:
        return None


def finished(done: dict[str, Any] | None) -> float | None:
    """done.json's finish time as a timestamp (None when absent or unreadable)."""
    try:
        return datetime.fromisoformat(str((done or {})["finished"])).timestamp()
    except (KeyError, ValueError):
        return None


def derived_fingerprint(kind: str, settings: dict[str, Any], source_done: dict[str, Any]) -> str:
    """What an experiment made from another's run (an audit, an adaptation) was made from: its ``kind``'s
    settings, and the source run's fingerprint and finish time (a retrained source makes it stale)."""
    blob = json.dumps(
        {kind: settings, "run": source_done.get("fingerprint"), "at": source_done.get("finished")}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_dir(out: str | os.PathLike[str], eid: str) -> Path:
    """The run directory of experiment ``eid`` in the study's output folder: ``OUT/runs/<id>``."""
    return Path(out) / "runs" / eid
