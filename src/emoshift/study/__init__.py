"""The study: its spec (phases as config overlays), the runner, and the report.

``spec`` (the study file, resolved) -> ``runner`` (train, evaluate, audit into ``OUT/runs/<id>/``); ``report``
reads the runs back and writes ``OUT/report.md``, ``OUT/report.html`` and ``OUT/results.csv`` through
``render`` (Markdown/HTML blocks) and ``environment``. ``records`` (run paths, JSON read-back) is shared. The
report imports neither the runner nor the spec at run time, so it stays torch-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported on first use, so that ``import emoshift.study.report`` (torch-free) does not load the spec's config.
_WHERE: dict[str, str] = {
    **dict.fromkeys(("RESULT_COLUMNS", "collect", "key_results", "write_report"), "report"),
    **dict.fromkeys(("Outcome", "StudyResult"), "plan"),
    "run_study": "runner",
    **dict.fromkeys(
        (
            "AuditSpec",
            "Experiment",
            "ExperimentSpec",
            "ProfileSpec",
            "Study",
            "StudyError",
            "StudyFile",
            "load_study",
        ),
        "spec",
    ),
    "fit_stages": "overlays",
    "run_dir": "records",
}

if TYPE_CHECKING:
    from emoshift.study.overlays import fit_stages
    from emoshift.study.plan import Outcome, StudyResult
    from emoshift.study.records import run_dir
    from emoshift.study.report import RESULT_COLUMNS, collect, key_results, write_report
    from emoshift.study.runner import run_study
    from emoshift.study.spec import (
        AuditSpec,
        Experiment,
        ExperimentSpec,
        ProfileSpec,
        Study,
        StudyError,
        StudyFile,
        load_study,
    )


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"emoshift.study.{_WHERE[name]}"), name)


__all__ = [
    "RESULT_COLUMNS",
    "AuditSpec",
    "Experiment",
    "ExperimentSpec",
    "Outcome",
    "ProfileSpec",
    "Study",
    "StudyError",
    "StudyFile",
    "StudyResult",
    "collect",
    "fit_stages",
    "key_results",
    "load_study",
    "run_dir",
    "run_study",
    "write_report",
]
