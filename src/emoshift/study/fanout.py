"""A study fanned out: its runs (experiments x folds) as jobs, each started as soon as what it needs is done.

``emoshift study ... --jobs N`` runs N jobs at once on this machine; ``--launcher slurm`` submits each to SLURM
(:mod:`emoshift.study.launch`). The study process (which holds ``OUT/.lock``) does the bookkeeping and the
jobs only train, evaluate and audit into their own run directories, so the report is the same whatever ran
where:

- an experiment is *planned* here once every experiment it depends on (a distillation teacher, an audited
  run) has finished: resume, retrain (the stale run moved aside to ``OUT/stale/``) or keep, with the same
  notes and the same :class:`~emoshift.study.plan.TrainingPlan` as a study run one by one;
- a k-fold experiment that still has folds to train becomes one job per fold (``RUN/folds/<i>/``, the same
  :func:`~emoshift.training.pipeline.train_run` the sequential folds use) and one final job, after them, for
  the experiment: ``train()`` then finds every fold complete (``training/folds.py`` skips complete folds),
  pools, evaluates and writes ``done.json``; anything else is one job;
- a failed job fails its experiment (the traceback in ``OUT/errors/<id>.txt``, its other jobs dropped) and
  the experiments that depend on it are not run (``not run: <id> failed``); the others go on.

Each job start and finish is one progress line; :class:`~emoshift.study.plan.StudyResult` ``.jobs`` keeps
when each job ran and where.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from emoshift.config import ExperimentConfig, save_config
from emoshift.core.io import DiskFullError, atomic_write_text
from emoshift.core.progress import clock
from emoshift.core.rundir import RunDir
from emoshift.study.launch import Backend, Handle, LaunchOptions, make_backend
from emoshift.study.plan import (
    JobRecord,
    Outcome,
    Progress,
    StudyResult,
    TrainingPlan,
    adaptation_is_current,
    audit_is_current,
    finish_training,
    missing_files,
    one_line,
    plan_training,
    run_adaptation,
    run_audit_only,
)
from emoshift.study.records import run_dir
from emoshift.study.spec import Experiment, Study

# ---------------------------------------------------------------------------------------------------------
# A job, and what runs in it


@dataclass(frozen=True)
class JobTask:
    """Everything one job needs (pickled to a worker process or a SLURM node)."""

    key: str  # "L2b" (the experiment), "L2b/fold1", or with training.seeds "L2b/seed0" and "L2b/seed0/fold1"
    study: Study
    out: str
    eid: str
    plan: TrainingPlan | None  # None: an audit-only experiment, or an adaptation of another's run
    fold: int | None = None
    seed: int | None = None  # a repeated-training run's seed (RUN/seeds/<s>/)
    threads: int | None = None  # torch threads (None: leave torch's default)


@dataclass
class JobResult:
    key: str
    started: float
    finished: float
    outcome: Outcome | None = None  # the experiment's, from its final job
    error: str | None = None
    trace: str = ""
    notes: list[str] = field(default_factory=list)
    disk_full: str | None = None


class _Collected:
    """A job's notes, printed by the study process when the job finishes."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def run_job(task: JobTask) -> JobResult:
    """The one function every job runs: a fold, or an experiment's training/evaluation/audit; never raises."""
    started = time.time()
    notes = _Collected()
    if task.threads is not None:
        import torch

        torch.set_num_threads(task.threads)
    try:
        outcome = _work(task, notes)
    except DiskFullError as e:
        return JobResult(task.key, started, time.time(), notes=notes.notes, disk_full=str(e))
    except Exception as e:  # the study process records it; the other jobs go on
        return JobResult(
            task.key, started, time.time(), error=one_line(e), trace=traceback.format_exc(), notes=notes.notes
        )
    return JobResult(task.key, started, time.time(), outcome=outcome, notes=notes.notes)


def _work(task: JobTask, notes: _Collected) -> Outcome | None:
    exp = task.study.experiment(task.eid)
    if exp.adapt is not None:
        return run_adaptation(task.study, exp, Path(task.out), False, notes)
    if task.plan is None:
        return run_audit_only(task.study, exp, Path(task.out), notes)
    if task.fold is None and task.seed is None:
        return finish_training(task.study, exp, task.plan, progress=False)
    from emoshift.training.folds import fold_config
    from emoshift.training.pipeline import train_run
    from emoshift.training.seeds import seed_config

    cfg, run = task.plan.cfg, RunDir.of(task.plan.run)
    if task.seed is not None:  # as training/seeds.py trains it: RUN/seeds/<s>/, a run of its own
        cfg, run = seed_config(cfg, task.seed), RunDir.of(run.seed(task.seed))
    if task.fold is None:
        train_run(cfg, run.path, progress=False)
    else:
        train_run(fold_config(cfg, task.fold), run.fold(task.fold), progress=False)
    return None


# ---------------------------------------------------------------------------------------------------------
# Planning an experiment into jobs


def _scan_key(cfg: ExperimentConfig) -> str:
    d = cfg.data
    return json.dumps(
        [d.corpora, {c: d.roots.get(c) for c in d.corpora}, d.labels, d.scan_options(), d.split.model_dump()],
        sort_keys=True,
        default=str,
    )


def fold_count(cfg: ExperimentConfig) -> int | None:
    """How many folds ``cfg`` trains (the corpora scanned as ``train()`` scans them); None when that fails:
    the experiment then runs as one job, which reports the problem exactly as a sequential run would."""
    from emoshift.corpora import scan_source
    from emoshift.training.folds import corpus_folds

    d = cfg.data
    try:
        scans = {c: scan_source(c, d.roots[c], d.labels, **d.scan_options(), progress=False) for c in d.corpora}
        return len(next(iter(corpus_folds(cfg, scans).values())))
    except Exception:
        return None


@dataclass
class _Experiment:
    """The jobs of one planned experiment."""

    exp: Experiment
    started: float  # time.monotonic() when planned
    queued: list[JobTask]
    after: dict[str, tuple[str, ...]]  # job key -> keys that must finish first
    left: int  # jobs not finished yet
    final: JobResult | None = None
    failed: JobResult | None = None


class Scheduler:
    """Plans ready experiments into jobs, keeps at most ``capacity`` in flight, and records what finished."""

    def __init__(
        self,
        study: Study,
        out: Path,
        selected: list[str],
        launch: LaunchOptions,
        log: Progress,
        result: StudyResult,
        pending: set[str],
    ) -> None:
        self.study, self.out, self.launch, self.log, self.result = study, out, launch, log, result
        self.waiting = list(selected)  # not planned yet, in run order
        self.pending = pending
        self.total = len(selected)
        self.planned: dict[str, _Experiment] = {}
        self.running: dict[str, tuple[Handle, JobTask, float, str]] = {}  # key -> (handle, task, t0, where)
        self.finished_keys: set[str] = set()
        self.folds: dict[str, int | None] = {}  # _scan_key -> fold count
        self.disk_full: str | None = None
        self.threads = launch.threads()

    # ------------------------------------------------------------------------------- the loop

    def run(self, backend: Backend) -> None:
        try:
            while True:
                if self.disk_full is None:
                    self._plan_ready()  # experiments in run order: one pass plans every one that is ready
                if self.disk_full is None:
                    self._submit(backend)
                if not self.running:  # nothing left that can start (the run order leaves nothing waiting)
                    break
                self._collect(backend)
        except BaseException:  # Ctrl-C or an error here: no job may go on writing without the study's lock
            for handle, _, _, _ in self.running.values():
                backend.cancel(handle)
            backend.close(abort=True)
            raise
        backend.close()
        if self.disk_full is not None:  # every job after this one would fail the same way: stop the study
            raise DiskFullError(self.disk_full)

    def _plan_ready(self) -> None:
        for eid in list(self.waiting):
            exp = self.study.experiment(eid)
            if any(d not in self.result.outcomes for d in exp.depends):
                continue
            self.waiting.remove(eid)
            k = self.total - len(self.waiting)
            broken = [d for d in exp.depends if d in self.result.failed]
            if broken:
                self.log.start(k, exp, 0)
                self._record(Outcome(eid, "failed", run_dir(self.out, eid), error=f"not run: {broken[0]} failed"))
                continue
            self.log.start(k, exp, len(self.pending.intersection([eid, *self.waiting])))
            started = time.monotonic()
            try:
                planned = self._plan(exp)
            except DiskFullError as e:
                self.disk_full = str(e)
                return
            except Exception as e:  # as _run_one: a failure here is this experiment's alone
                atomic_write_text(self.out / "errors" / f"{eid}.txt", traceback.format_exc())
                self._record(Outcome(eid, "failed", run_dir(self.out, eid), error=one_line(e)), started)
                continue
            if isinstance(planned, Outcome):
                (self.out / "errors" / f"{eid}.txt").unlink(missing_ok=True)
                self._record(planned, started)
            else:
                self.planned[eid] = planned

    def _plan(self, exp: Experiment) -> _Experiment | Outcome:
        """The experiment's jobs, or its outcome when there is nothing to do."""
        started = time.monotonic()
        key, out = exp.id, os.fspath(self.out)
        if exp.adapt is not None:  # one job: every seed of the source adapted in turn (minutes, not hours)
            if adaptation_is_current(self.study, exp, self.out):
                self.log.note(f"complete with the same source run and step: {run_dir(self.out, exp.id)}")
                return Outcome(exp.id, "skipped", run_dir(self.out, exp.id))
            task = JobTask(key, self.study, out, exp.id, None, threads=self.threads)
            return _Experiment(exp, started, [task], {key: ()}, 1)
        if not exp.trains:
            if audit_is_current(self.study, exp, self.out):
                self.log.note(f"complete with the same settings: {run_dir(self.out, exp.id)}")
                return Outcome(exp.id, "skipped", run_dir(self.out, exp.id))
            task = JobTask(key, self.study, out, exp.id, None, threads=self.threads)
            return _Experiment(exp, started, [task], {key: ()}, 1)
        plan = plan_training(self.study, exp, self.out, self.log)
        run = RunDir.of(plan.run)
        if not plan.trains and not self._evaluations_missing(exp, run):
            return Outcome(exp.id, "skipped", plan.run)
        final = JobTask(key, self.study, out, exp.id, plan, threads=self.threads)
        folds = self._fold_jobs(plan) if plan.trains else []
        after = {t.key: () for t in folds} | {key: tuple(t.key for t in folds)}
        return _Experiment(exp, started, [*folds, final], after, len(folds) + 1)

    def _evaluations_missing(self, exp: Experiment, run: RunDir) -> bool:
        roots = list(self.study.roots)
        return bool(missing_files(roots, run.metrics) or (exp.audit is not None and missing_files(roots, run.audit_json)))

    def _fold_jobs(self, plan: TrainingPlan) -> list[JobTask]:
        """One job per fold still to train (none when the config trains one run, or its folds cannot be told);
        with ``training.seeds``, one per seed and fold (or per seed, without folds) still to train."""
        from emoshift.training.folds import runs_all_folds
        from emoshift.training.seeds import runs_all_seeds

        seeds: list[int | None] = list(plan.cfg.training.seed_list) if runs_all_seeds(plan.cfg) else [None]
        n = 0
        if runs_all_folds(plan.cfg):
            scan_key = _scan_key(plan.cfg)
            if scan_key not in self.folds:
                self.folds[scan_key] = fold_count(plan.cfg)
            n = self.folds[scan_key] or 0
            if not n:
                return []
        elif seeds == [None]:
            return []
        run = RunDir.of(plan.run)
        if not run.config.is_file():  # an interrupted study then resumes the folds instead of moving them aside
            run.path.mkdir(parents=True, exist_ok=True)
            save_config(plan.cfg, run.config)
        eid = plan.cfg.name
        jobs = []
        for seed in seeds:
            at = run if seed is None else RunDir.of(run.seed(seed))
            tag = "" if seed is None else f"/seed{seed}"
            if not n:  # a repeated-training run without folds: one job per seed
                if not at.is_complete():
                    jobs.append(JobTask(f"{eid}{tag}", self.study, os.fspath(self.out), eid, plan, seed=seed,
                                        threads=self.threads))
                continue
            jobs += [
                JobTask(f"{eid}{tag}/fold{i}", self.study, os.fspath(self.out), eid, plan, fold=i, seed=seed,
                        threads=self.threads)
                for i in range(n)
                if not RunDir.of(at.fold(i)).is_complete()
            ]
        return jobs

    def _submit(self, backend: Backend) -> None:
        capacity = self.launch.capacity
        for planned in list(self.planned.values()):
            for task in list(planned.queued):
                if capacity is not None and len(self.running) >= capacity:
                    return
                if any(k not in self.finished_keys for k in planned.after[task.key]):
                    continue
                planned.queued.remove(task)
                handle = backend.submit(run_job, task, name=f"emoshift-{task.key.replace('/', '-')}")
                where = backend.where(handle)
                self.running[task.key] = (handle, task, time.time(), where)
                self.log.job(task.key, f"started ({where})" if where else "started")

    def _collect(self, backend: Backend) -> None:
        done = [key for key, (handle, *_) in self.running.items() if handle.done()]
        if not done:
            time.sleep(backend.poll_s)
            return
        for key in done:
            handle, task, submitted, where = self.running.pop(key)
            self._finished(task, self._result(handle, task, submitted), where)

    @staticmethod
    def _result(handle: Handle, task: JobTask, submitted: float) -> JobResult:
        try:
            res: JobResult = handle.result()
            return res
        except Exception as e:  # the job never returned: killed, timed out on SLURM, its worker died
            text = one_line(e)
            error = "the job ended without a result: " + (text if len(text) <= 300 else text[:297] + "...")
            return JobResult(task.key, submitted, time.time(), error=error, trace=str(e))

    # ------------------------------------------------------------------------------- bookkeeping

    def _finished(self, task: JobTask, res: JobResult, where: str) -> None:
        planned = self.planned[task.eid]
        planned.left -= 1
        self.finished_keys.add(task.key)
        for text in res.notes:
            self.log.note(text)
        took = clock(res.finished - res.started)
        if res.disk_full is not None:
            self.disk_full = res.disk_full
        failed = res.error is not None or res.disk_full is not None
        self.log.job(task.key, f"failed in {took}: {res.error or res.disk_full}" if failed else f"done in {took}")
        self.result.jobs.append(
            JobRecord(task.key, "failed" if failed else "done", res.started, res.finished, where, res.error)
        )
        if failed and planned.failed is None:
            planned.failed = res
            planned.left -= len(planned.queued)  # the experiment's other jobs are not run
            planned.queued.clear()
        elif task.key == task.eid:
            planned.final = res
        if planned.left == 0:
            self._experiment_finished(planned)

    def _experiment_finished(self, planned: _Experiment) -> None:
        eid = planned.exp.id
        del self.planned[eid]
        errors = self.out / "errors" / f"{eid}.txt"
        if planned.failed is not None:
            res = planned.failed
            atomic_write_text(errors, res.trace or f"{res.error or res.disk_full}\n")
            outcome = Outcome(eid, "failed", run_dir(self.out, eid), error=res.error or res.disk_full)
        else:
            errors.unlink(missing_ok=True)
            final = planned.final.outcome if planned.final is not None else None
            outcome = final or Outcome(eid, "failed", run_dir(self.out, eid), error="its job returned nothing")
        self._record(outcome, planned.started)

    def _record(self, outcome: Outcome, started: float | None = None) -> None:
        if started is not None:
            outcome.seconds = time.monotonic() - started
        self.result.outcomes[outcome.id] = outcome
        self.log.finish(outcome)


def run_jobs(
    study: Study,
    out: Path,
    selected: list[str],
    launch: LaunchOptions,
    log: Progress,
    result: StudyResult,
    pending: set[str],
) -> None:
    """Run the selected experiments as jobs on ``launch``'s backend; outcomes land in ``result``."""
    log.parallel = launch.capacity or max(1, len(selected))
    Scheduler(study, out, selected, launch, log, result, pending).run(make_backend(launch, out / "jobs"))


