"""The study's plan vocabulary: what the study process decides for each experiment and what came of it.

An experiment's run is resumed, retrained (the stale run moved aside to ``OUT/stale/<id>-<time>/``) or kept
(:func:`plan_training`, :class:`TrainingPlan`), then trained, evaluated and audited (:func:`finish_training`), or
an audit-only experiment audits another's run (:func:`run_audit_only`), an adaptation adapts another's finished
run to a corpus (:func:`run_adaptation`, :mod:`emoshift.study.adapting`); each ends as an :class:`Outcome` of the
:class:`StudyResult`, and :class:`Progress` prints the lines. :mod:`emoshift.study.runner` runs experiments one
by one with these, :mod:`emoshift.study.fanout` as parallel jobs: the same decisions either way.

Resuming: an experiment whose ``done.json`` fingerprint equals its resolved config's is skipped (only
corpora it has not been evaluated or audited on yet are added). An interrupted run of the same config is
resumed. A run of a *different* config (or one whose distillation teacher was retrained since) is moved aside
to ``OUT/stale/<id>-<time>/`` and the experiment is trained afresh: nothing is deleted. A teacher inside the
study counts by experiment id, not absolute path, so a copied or moved output folder is still recognised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from emoshift.config import ConfigError, ExperimentConfig, build_config, load_config
from emoshift.core.extras import needs
from emoshift.core.io import atomic_write_bytes, atomic_write_json
from emoshift.core.progress import clock, escape, say
from emoshift.core.rundir import RunDir
from emoshift.study.adapting import AdaptSpec, adapt_fingerprint
from emoshift.study.records import derived_fingerprint, finished, read_json
from emoshift.study.spec import AuditSpec, Experiment, Study, run_dir

if TYPE_CHECKING:
    pass

Status = Literal["trained", "resumed", "retrained", "skipped", "updated", "audited", "adapted", "failed"]


@dataclass
class Outcome:
    """What happened to one experiment in this invocation."""

    id: str
    status: Status
    run_dir: Path
    seconds: float = 0.0
    error: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class JobRecord:
    """One job of a fanned-out study (``--jobs N`` / ``--launcher``): an experiment, or one fold of it."""

    key: str  # "L2b" or "L2b/fold1"
    status: str  # "done" or "failed"
    started: float  # time.time() in the job
    finished: float
    where: str  # "this machine", "job 1234"
    error: str | None = None


@dataclass
class StudyResult:
    out: Path
    selected: list[str]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: list[JobRecord] = field(default_factory=list)  # empty when the experiments ran one by one here

    @property
    def ok(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes.values())

    @property
    def failed(self) -> list[str]:
        return [i for i, o in self.outcomes.items() if o.status == "failed"]


def _move_aside(out: Path, run: Path, eid: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = out / "stale" / f"{eid}-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = out / "stale" / f"{eid}-{stamp}-{n}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run, target)
    return target


def _same_run_config(run: RunDir, cfg: ExperimentConfig, done_fingerprint: str | None) -> bool:
    """Whether the finished run in ``run`` was trained with ``cfg``.

    The fingerprints must match, except for a distillation teacher of this study: it counts by experiment id
    (``.../runs/<id>``), not by absolute path, so a copied or moved output folder is still recognised.
    """
    fingerprint = cfg.fingerprint(exclude_roots=True)
    if done_fingerprint == fingerprint:
        return True
    if cfg.training.distill is None:
        return False
    try:
        old = load_config(run.config)
    except ConfigError:
        return False
    if old.training.distill is None or old.fingerprint(exclude_roots=True) != done_fingerprint:
        return False
    old_teacher, new_teacher = Path(old.training.distill.teacher), Path(cfg.training.distill.teacher)
    if (old_teacher.name, old_teacher.parent.name) != (new_teacher.name, "runs"):
        return False
    data = old.to_dict()
    data["training"]["distill"]["teacher"] = cfg.training.distill.teacher
    return build_config(data).fingerprint(exclude_roots=True) == fingerprint


def _training_state(run: RunDir, cfg: ExperimentConfig, after: float | None) -> tuple[str, str]:
    """("complete" | "resume" | "stale" | "new", why) for a training run directory."""
    done = read_json(run.done)
    if done is not None:
        if not _same_run_config(run, cfg, done.get("fingerprint")):
            if _other_seeds(run, cfg):
                return "resume", ""  # training.seeds changed only: train the new seeds, pool again
            return "stale", "its config changed"
        at = finished(done)
        if after is not None and (at is None or at < after):
            return "stale", "its distillation teacher was retrained since"
        return "complete", ""
    if not run.path.is_dir() or not any(run.path.iterdir()):
        return "new", ""
    try:
        old = load_config(run.config).fingerprint(exclude_roots=True)
    except ConfigError:
        return "stale", "it holds an unreadable or missing config.yaml"
    if old == cfg.fingerprint(exclude_roots=True) or _other_seeds(run, cfg):
        return "resume", ""
    return "stale", "its config changed"


def _other_seeds(run: RunDir, cfg: ExperimentConfig) -> bool:
    """Whether ``run`` holds a repeated-training run of ``cfg``'s recipe with other seeds (extended, not moved
    aside: its seed runs are reused, :mod:`emoshift.training.seeds`)."""
    if not cfg.training.seeds:
        return False
    try:
        old = load_config(run.config)
    except ConfigError:
        return False
    return bool(old.training.seeds) and old.recipe_fingerprint() == cfg.recipe_fingerprint()


class Notes(Protocol):
    """Where an experiment's notes go: the progress lines, or a job's result (printed by the study process)."""

    def note(self, text: str) -> None: ...


class Progress:
    """Prints which experiment runs, index/total, elapsed time and an ETA from the experiments run so far.

    On a terminal the lines are styled (rich); elsewhere (a log file, CI) each is printed once as plain text.
    """

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self.started = time.monotonic()
        self.worked: list[float] = []  # seconds of experiments that did work
        self.parallel = 1  # experiments that may run at once (a fanned-out study)

    def _print(self, styled: str, plain: str) -> None:
        """``styled``: rich markup (text from elsewhere escaped); ``plain``: the same line without markup."""
        say(plain, styled, enabled=self.enabled)

    @staticmethod
    def _escape(text: str) -> str:
        return escape(text)

    def start(self, k: int, exp: Experiment, remaining: int) -> None:
        elapsed = time.monotonic() - self.started
        if remaining == 0:
            eta = "0:00"
        else:
            at_once = max(1, min(self.parallel, remaining))
            eta = clock(sum(self.worked) / len(self.worked) * remaining / at_once) if self.worked else "?"
        head, times = f"[{k}/{self.total}] {exp.id}", f"(elapsed {clock(elapsed)}, ETA {eta})"
        self._print(
            f"[bold cyan]{self._escape(head)}[/] {self._escape(exp.spec.title)} [dim]{times}[/]",
            f"{head} {exp.spec.title} {times}",
        )

    def note(self, text: str) -> None:
        self._print(f"  {self._escape(text)}", f"  {text}")

    def job(self, key: str, what: str) -> None:
        """One line per job start or finish of a fanned-out study."""
        self._print(f"  [dim]{self._escape(key)}[/] {self._escape(what)}", f"  {key} {what}")

    def finish(self, outcome: Outcome) -> None:
        if outcome.status not in ("skipped", "failed"):
            self.worked.append(outcome.seconds)
        colour = {"failed": "red", "skipped": "dim"}.get(outcome.status, "green")
        detail = f": {outcome.error}" if outcome.error else (f" ({outcome.detail})" if outcome.detail else "")
        what, took = f"{outcome.id} {outcome.status}", f" in {clock(outcome.seconds)}"
        self._print(
            f"  [{colour}]{self._escape(what)}[/]{took}{self._escape(detail)}", f"  {what}{took}{detail}"
        )


def missing_files(names: Sequence[str], path_of: Callable[[str], Path]) -> list[str]:
    """The corpora among ``names`` whose file (``path_of(corpus)``) does not exist yet."""
    return [c for c in names if not path_of(c).is_file()]


@dataclass(frozen=True)
class TrainingPlan:
    """What the study process decided for a training experiment before anything trains."""

    run: Path
    cfg: ExperimentConfig
    status: Status
    trains: bool  # False: complete with the same config (only missing evaluations or audits are added)


def plan_training(study: Study, exp: Experiment, out: Path, log: Notes) -> TrainingPlan:
    """Resume, retrain (the stale run moved aside) or keep an experiment's run; notes say which."""
    from emoshift.training.tracking import in_study

    run = RunDir.of(run_dir(out, exp.id))
    cfg = in_study(study.run_config(exp.id, out), out=out, experiment_id=exp.id)  # tracked under one experiment
    after = finished(read_json(RunDir.of(run_dir(out, exp.teacher)).done)) if exp.teacher else None
    state, why = _training_state(run, cfg, after)
    for note in exp.notes:
        log.note(note)
    status: Status = "skipped"
    if state == "stale":
        moved = _move_aside(out, run.path, exp.id)
        log.note(f"{run.path} is stale ({why}): moved to {moved}; training afresh")
        status = "retrained"
    elif state == "complete":
        log.note(f"complete with the same config: {run.path}")
    elif state == "resume":
        log.note(f"resuming the interrupted run in {run.path}")
        status = "resumed"
    else:
        status = "trained"
    return TrainingPlan(run.path, cfg, status, trains=state != "complete")


def finish_training(study: Study, exp: Experiment, plan: TrainingPlan, progress: bool) -> Outcome:
    """Train (when the plan says so), then evaluate and audit on every corpus not done yet."""
    if plan.trains:  # a complete run needs no training stack (a study's report in the core install)
        with needs(f"training {exp.id}"):
            from emoshift.training.train import train

        train(plan.cfg, plan.run, progress=progress)
    did = _evaluate_and_audit(study, exp, RunDir.of(plan.run), progress)
    status = "updated" if plan.status == "skipped" and did else plan.status
    return Outcome(exp.id, status, plan.run, detail="; ".join(did))


def run_training(study: Study, exp: Experiment, out: Path, progress: bool, log: Notes) -> Outcome:
    return finish_training(study, exp, plan_training(study, exp, out, log), progress)


def _evaluate_and_audit(study: Study, exp: Experiment, run: RunDir, progress: bool) -> list[str]:
    """Evaluate (and audit, when asked) ``run`` on every corpus it has no result for yet; what was done."""
    did: list[str] = []
    todo = missing_files(list(study.roots), run.metrics)
    if todo:
        with needs(f"evaluating {exp.id}"):
            from emoshift.evaluation.evaluate import evaluate_run

        evaluate_run(run.path, {c: study.roots[c] for c in todo}, progress=progress)
        did.append(f"evaluated on {', '.join(todo)}")
    if exp.audit is not None:
        from emoshift.evaluation.audit import audit_run

        todo = missing_files(list(study.roots), run.audit_json)
        for corpus in todo:
            audit_run(run.path, corpus, study.roots[corpus], **exp.audit.model_dump())
        if todo:
            did.append(f"audited on {', '.join(todo)}")
    if study.robustness:  # a study's runs are categorical (spec refuses dimensional experiments)
        did += _robustness(study, run, progress)
    return did


def _robustness(study: Study, run: RunDir, progress: bool) -> list[str]:
    """Score ``run`` through each of the study's channel effects on every corpus it has no result for yet."""
    from emoshift.data.channel import parse_perturbation
    from emoshift.evaluation.robustness import evaluate_perturbations

    did = []
    for corpus, root in study.roots.items():
        perts = [parse_perturbation(s) for s in study.robustness]
        todo = [p for p in perts if not run.perturbed_metrics(corpus, p.slug).is_file()]
        if todo:
            evaluate_perturbations(run.path, {corpus: root}, todo, progress=progress)
            did.append(f"scored on {corpus} through {', '.join(p.spec for p in todo)}")
    return did


def _audit_fingerprint(audit: AuditSpec, source_done: dict[str, Any]) -> str:
    return derived_fingerprint("audit", audit.model_dump(mode="json"), source_done)


def _copy_audit(report: Path, run: RunDir) -> None:
    """A corpus's audit files (json, md, plots) copied into this experiment's own audit folder."""
    for f in sorted(report.parent.glob(f"{report.stem}*")):
        if f.is_file() and (f.name == report.name or f.suffix in (".md", ".png")):
            atomic_write_bytes(run.audit_dir / f.name, f.read_bytes())


def run_audit_only(study: Study, exp: Experiment, out: Path, log: Notes) -> Outcome:
    """Audit another experiment's run (trains nothing); the audit files are copied to OUT/runs/<id>/audit/."""
    from emoshift.evaluation.audit import audit_run

    audit = exp.audit or AuditSpec()
    source_id = str(exp.spec.audit_of)
    source = RunDir.of(run_dir(out, source_id))
    source_done = read_json(source.done)
    if source_done is None:
        raise RuntimeError(f"{source_id} has no complete run in {source.path} to audit")
    run = RunDir.of(run_dir(out, exp.id))
    fingerprint = _audit_fingerprint(audit, source_done)
    done = read_json(run.done)
    if run.path.is_dir() and (done is None or done.get("fingerprint") != fingerprint):
        moved = _move_aside(out, run.path, exp.id)
        log.note(f"{run.path} is stale (the audited run or the audit settings changed): moved to {moved}")
        done = None
    todo = missing_files(list(study.roots), run.audit_json)
    if done is not None and not todo:
        log.note(f"complete with the same settings: {run.path}")
        return Outcome(exp.id, "skipped", run.path)

    started = time.monotonic()
    for corpus in todo:
        _copy_audit(audit_run(source.path, corpus, study.roots[corpus], **audit.model_dump()), run)
    atomic_write_json(
        run.done,
        {
            "fingerprint": fingerprint,
            "kind": "audit",
            "audits": source_id,
            "run": os.fspath(source.path),
            "seconds": round(float((done or {}).get("seconds", 0.0)) + time.monotonic() - started, 2),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    status: Status = "updated" if done is not None else "audited"
    return Outcome(exp.id, status, run.path, detail=f"audited on {', '.join(todo)}")


def _adapter(step: AdaptSpec, root: str, progress: bool) -> Callable[[RunDir, Path], None]:
    """``emoshift adapt`` for one seed run (or a single run): ``(source run, output folder)``; a finished
    output is kept (an unsupervised one once its target is scored; few-shot says so itself)."""
    import shutil

    from emoshift.evaluation.evaluate import evaluate_run
    from emoshift.training.adapt import AdaptRequest, adapt_run
    from emoshift.training.fewshot import adapt_few_shot

    def one(source: RunDir, out: Path) -> None:
        if step.few_shot:  # fine-tuned (or refitted) on K speakers; the held-back ones and the sources scored
            adapt_few_shot(source.path, step.corpus, root, int(step.labelled_speakers or 0), out, seed=step.seed,
                           progress=progress)
            return
        done = RunDir.of(out)
        if done.is_complete() and done.metrics(step.corpus).is_file():
            return
        shutil.rmtree(out, ignore_errors=True)  # an unscored or half-written adaptation: done again
        adapt_run(AdaptRequest(run=source.path, name=step.corpus, root=root, output=out, method=step.method),
                  progress=progress)
        evaluate_run(out, {step.corpus: root}, progress=progress)  # every utterance of the target

    return one


def run_adaptation(study: Study, exp: Experiment, out: Path, progress: bool, log: Notes) -> Outcome:
    """Adapt another experiment's finished run (every seed) to a corpus into OUT/runs/<id>/, then evaluate it
    on any corpus of the study it has no result for yet. A run adapted from the source's current run with the
    same step is kept; one from an older source run or another step is moved aside."""
    step, source_id = exp.adapt, str(exp.spec.adapt_of)
    assert step is not None
    source = RunDir.of(run_dir(out, source_id))
    source_done = read_json(source.done)
    if source_done is None:
        raise RuntimeError(f"{source_id} has no complete run in {source.path} to adapt")
    run = RunDir.of(run_dir(out, exp.id))
    fingerprint = adapt_fingerprint(step, source_done)
    done = read_json(run.done)
    status: Status = "adapted"
    if done is not None and done.get("fingerprint") == fingerprint:
        log.note(f"complete with the same source run and step: {run.path}")
        status = "skipped"
    else:
        if done is not None or _adapts_another_run(run, source):
            moved = _move_aside(out, run.path, exp.id)
            log.note(f"{run.path} is stale (the adapted run or the step changed): moved to {moved}")
        with needs(f"adapting {exp.id}"):
            from emoshift.training.seeds import adapt_seeds

        adapt_seeds(source, run, _adapter(step, study.roots[step.corpus], progress), target=step.corpus,
                    fingerprint=fingerprint, done={"kind": "adaptation", "adapts": source_id,
                                                   "adaptation": step.model_dump(mode="json")})
    did = _evaluate_and_audit(study, exp, run, progress)
    status = "updated" if status == "skipped" and did else status
    return Outcome(exp.id, status, run.path, detail="; ".join([step.describe(), *did] if status != "skipped" else did))


def _adapts_another_run(run: RunDir, source: RunDir) -> bool:
    """Whether an interrupted adaptation in ``run`` was made from another config of its source (retrained
    since): its seed runs are not resumed then."""
    if not run.config.is_file():
        return False
    try:
        return load_config(run.config).fingerprint(exclude_roots=True) != load_config(
            source.config
        ).fingerprint(exclude_roots=True)
    except ConfigError:
        return True


def adaptation_is_current(study: Study, exp: Experiment, out: Path) -> bool:
    """Whether an adaptation's run is complete for its source's current run and step, and scored everywhere."""
    assert exp.adapt is not None
    source_done = read_json(RunDir.of(run_dir(out, str(exp.spec.adapt_of))).done)
    run = RunDir.of(run_dir(out, exp.id))
    done = read_json(run.done)
    if source_done is None or done is None or done.get("fingerprint") != adapt_fingerprint(exp.adapt, source_done):
        return False
    return not missing_files(list(study.roots), run.metrics)


def audit_is_current(study: Study, exp: Experiment, out: Path) -> bool:
    """Whether an audit-only experiment's run is complete for its source's current run and settings."""
    source_done = read_json(RunDir.of(run_dir(out, str(exp.spec.audit_of))).done)
    run = RunDir.of(run_dir(out, exp.id))
    done = read_json(run.done)
    if source_done is None or done is None:
        return False
    current = done.get("fingerprint") == _audit_fingerprint(exp.audit or AuditSpec(), source_done)
    return current and not missing_files(list(study.roots), run.audit_json)


def looks_complete(study: Study, exp: Experiment, out: Path) -> bool:
    """A cheap guess (for the ETA) whether an experiment will be skipped."""
    run = RunDir.of(run_dir(out, exp.id))
    done = read_json(run.done)
    if done is None or missing_files(list(study.roots), run.metrics if exp.trains else run.audit_json):
        return False
    if exp.adapt is not None:
        return adaptation_is_current(study, exp, out)
    if exp.trains:
        return _same_run_config(run, study.run_config(exp.id, out), done.get("fingerprint"))
    return True


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return (
        text
        if isinstance(e, ConfigError | ValueError | RuntimeError | OSError)
        else f"{type(e).__name__}: {text}"
    )
