"""Running the study: train, evaluate and audit each selected experiment into ``OUT/runs/<id>/``.

:func:`run_study` takes a :class:`~emoshift.study.spec.Study` (from :func:`~emoshift.study.spec.load_study`)
and returns a :class:`~emoshift.study.plan.StudyResult`; :func:`emoshift.study.report.write_report` then writes
the report. What is decided for each experiment (resume, retrain, keep) is :mod:`emoshift.study.plan`'s; here
the experiments run one by one in this process, or as parallel jobs (:mod:`emoshift.study.fanout`).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from emoshift.core.errors import TrainingInterrupted
from emoshift.core.extras import MissingExtraError
from emoshift.core.io import DiskFullError, atomic_write_text
from emoshift.core.lock import holds_folder
from emoshift.evaluation.robustness import shared_perturbations
from emoshift.study.fanout import run_jobs
from emoshift.study.launch import LaunchOptions
from emoshift.study.plan import (
    Outcome,
    Progress,
    StudyResult,
    looks_complete,
    one_line,
    run_adaptation,
    run_audit_only,
    run_training,
)
from emoshift.study.spec import Experiment, Study, run_dir

__all__ = ["Outcome", "StudyResult", "run_study"]


def _run_one(study: Study, exp: Experiment, out: Path, progress: bool, log: Progress) -> Outcome:
    """Run one experiment; a failure becomes a failed Outcome with its traceback in ``out/errors/<id>.txt``."""
    started = time.monotonic()
    try:
        if exp.adapt is not None:
            outcome = run_adaptation(study, exp, out, progress, log)
        elif exp.trains:
            outcome = run_training(study, exp, out, progress, log)
        else:
            outcome = run_audit_only(study, exp, out, log)
    except (DiskFullError, MissingExtraError, TrainingInterrupted):  # each later one would fail alike / Ctrl-C
        raise
    except Exception as e:  # one experiment failing must not lose the others
        outcome = Outcome(exp.id, "failed", run_dir(out, exp.id), error=one_line(e))
        atomic_write_text(out / "errors" / f"{exp.id}.txt", traceback.format_exc())
    else:
        (out / "errors" / f"{exp.id}.txt").unlink(missing_ok=True)
    outcome.seconds = time.monotonic() - started
    return outcome


@holds_folder("out")  # one study per output folder (a second refuses, exit 2)
def run_study(
    study: Study,
    out: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    progress: bool = True,
    launch: LaunchOptions | None = None,
) -> StudyResult:
    """Run the selected experiments (``only`` plus their dependencies; default all) into ``out/runs/<id>/``.

    A failing experiment is recorded (its traceback in ``out/errors/<id>.txt``) and the others go on;
    experiments that depend on it are marked failed too. ``launch`` (``--jobs N``, ``--launcher slurm``) runs
    experiments and folds as parallel jobs (:mod:`emoshift.study.fanout`); without it, or with one job on this
    machine, they run one by one in this process. Call :func:`emoshift.study.report.write_report` afterwards.
    """
    out = Path(out)
    selected = study.select(only if only else study.only)
    study.check_roots(selected)
    out.mkdir(parents=True, exist_ok=True)
    result = StudyResult(out=out, selected=selected)
    log = Progress(progress, len(selected))
    pending = {eid for eid in selected if not looks_complete(study, study.experiment(eid), out)}
    with shared_perturbations():  # the runs scored through the study's channels share their perturbed copies
        if launch is not None and not launch.sequential:
            run_jobs(study, out, selected, launch, log, result, pending)
        else:
            _run_in_turn(study, out, selected, progress, log, result, pending)
    result.seconds = time.monotonic() - log.started
    return result


def _run_in_turn(
    study: Study, out: Path, selected: list[str], progress: bool, log: Progress, result: StudyResult, pending: set[str]
) -> None:
    """One experiment after the other, in this process."""
    for k, eid in enumerate(selected, start=1):
        exp = study.experiment(eid)
        broken = [d for d in exp.depends if d in result.failed]
        if broken:
            outcome = Outcome(eid, "failed", run_dir(out, eid), error=f"not run: {broken[0]} failed")
            log.start(k, exp, 0)
        else:
            log.start(k, exp, len(pending.intersection(selected[k - 1 :])))
            outcome = _run_one(study, exp, out, progress, log)
        result.outcomes[eid] = outcome
        log.finish(outcome)
