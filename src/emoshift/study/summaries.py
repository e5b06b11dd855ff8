"""What the runs hold, read back for the report: one :class:`ExperimentSummary` per experiment of a study.

Everything comes from the run directories (``OUT/runs/<id>/``: ``done.json``, ``metrics/``, ``model.json``,
``log.csv``, ``audit/``), so it can be rebuilt at any time from whatever runs exist; a
:class:`~emoshift.study.plan.StudyResult` adds what happened in this invocation (status, error, wall time).
Also the rows of ``results.csv``. Torch-free, like the report.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from emoshift.core.io import read_csv
from emoshift.core.rundir import RunDir
from emoshift.evaluation.metrics import MIN_CI_SPEAKERS, collapsed
from emoshift.study.records import read_json, read_record, run_dir

if TYPE_CHECKING:  # the spec imports the experiment config (and so torch); summaries read runs only
    from emoshift.study.plan import Outcome, StudyResult
    from emoshift.study.spec import Experiment, Study

RESULT_COLUMNS: tuple[str, ...] = (
    "experiment",
    "corpus",
    "accuracy",
    "accuracy_lo",
    "accuracy_hi",
    "uar",
    "uar_lo",
    "uar_hi",
    "n",
    "leaky",
    "uar_fold_sd",
    "speakers",
    "folds",
    "seeds",
    "uar_seed_mean",
    "uar_seed_sd",
)


@dataclass
class CorpusMetrics:
    """One run's scores on one corpus (RUN/metrics/<corpus>.json)."""

    corpus: str
    accuracy: float
    uar: float
    n: int
    accuracy_ci: list[float] | None = None
    uar_ci: list[float] | None = None
    macro_f1: float | None = None
    leaky: bool = False
    split: str = "test"
    labels: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    ci_reason: str | None = None  # why there is no CI (metrics JSON ci95: null, ci95_reason)
    speakers: int | None = None  # speakers scored (pooled over folds for k-fold CV)
    folds: int | None = None  # k-fold CV: the number of folds pooled (or, unseen corpus, models ensembled)
    uar_fold_sd: float | None = None  # k-fold CV: the standard deviation of the per-fold UARs
    collapsed: dict[str, Any] | None = None  # {"label", "share"} when the model predicts (nearly) one class
    text_overlap: float | None = None  # share of test utterances saying a text the run trained on (None: unknown)
    seeds: int = 1  # training seeds (training.seeds): the scores above are their mean
    seed_uars: list[float] = field(default_factory=list)  # each seed's UAR (two or more seeds)
    uar_seed_sd: float | None = None  # the standard deviation of the seeds' UARs; None with one seed
    ece: float | None = None  # calibration (emoshift.evaluation.confidence); None in a run evaluated before it
    ece_ci: list[float] | None = None
    ece_uncalibrated: float | None = None  # a temperature-scaled run: the network's own probabilities' ECE
    abstention: dict[str, Any] | None = None  # the threshold keeping evaluation.target_accuracy and what it gives

    @classmethod
    def from_json(cls, corpus: str, data: dict[str, Any]) -> CorpusMetrics:
        ci = data.get("ci95") or {}
        folds = data.get("folds")
        raw_seeds = data.get("seeds")
        per_seed: list[Any] = raw_seeds if isinstance(raw_seeds, list) else []
        seed_uars = [float(e["uar"]) for e in per_seed if isinstance(e, dict) and isinstance(e.get("uar"), int | float)]
        return cls(
            corpus=corpus,
            accuracy=float(data["accuracy"]),
            uar=float(data["uar"]),
            n=int(data.get("n", 0)),
            accuracy_ci=ci.get("accuracy"),
            uar_ci=ci.get("uar"),
            macro_f1=data.get("macro_f1"),
            leaky=bool(data.get("leaky", False)),
            text_overlap=data.get("text_overlap"),
            split=str(data.get("split", "test")),
            labels=list(data.get("labels", [])),
            confusion=list(data.get("confusion", [])),
            ci_reason=data.get("ci95_reason") if isinstance(data.get("ci95_reason"), str) else None,
            speakers=_count(data.get("speakers")),
            folds=_count(folds),
            uar_fold_sd=_uar_of(data.get("fold_sd")),
            seeds=len(per_seed) if per_seed else _count(data.get("seeds")) or 1,
            seed_uars=seed_uars,
            uar_seed_sd=_uar_of(data.get("seed_sd")) if per_seed else None,
            # from the confusion matrix, so a run evaluated before metrics JSON had "collapsed" is called out too
            collapsed=collapsed(data["confusion"], data["labels"]) if data.get("confusion") and data.get("labels")
            else None,
            ece=data.get("ece"),
            ece_ci=ci.get("ece"),
            ece_uncalibrated=((data.get("calibration") or {}).get("uncalibrated") or {}).get("ece"),
            abstention=data.get("abstention"),
        )

    @property
    def ci_shown(self) -> bool:
        """Whether the intervals mean something: present and from at least MIN_CI_SPEAKERS speakers (an
        older run may hold a zero-width interval from one or two speakers: it is not shown)."""
        return self.uar_ci is not None and (self.speakers is None or self.speakers >= MIN_CI_SPEAKERS)


def _count(value: Any) -> int | None:
    """A count given as a number or as the list of what is counted (speakers, folds); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return len(value) if isinstance(value, list) else None


def _uar_of(value: Any) -> float | None:
    """``fold_sd`` as a number (the UAR's) or a per-metric object ``{"uar": ..}``."""
    if isinstance(value, dict):
        value = value.get("uar")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class ExperimentSummary:
    """One experiment as the report shows it."""

    id: str
    title: str
    architecture: str
    data_strategy: str
    trains: bool
    source: str  # the experiment whose run produced the metrics (itself, or the run an audit reads)
    run: Path
    status: str  # complete | incomplete | not run | failed | skipped | trained | ...
    error: str | None = None
    train_corpora: list[str] = field(default_factory=list)
    metrics: dict[str, CorpusMetrics] = field(default_factory=dict)
    reported_accuracy: dict[str, float] = field(default_factory=dict)
    seconds_recorded: float | None = None  # done.json: training (or audit) time
    seconds_now: float | None = None  # wall time in this invocation
    epochs_run: int | None = None
    model: str | None = None  # model.json "architecture"
    audits: dict[str, dict[str, Any]] = field(default_factory=dict)  # corpus -> audit JSON
    audit_dir: Path | None = None
    log: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _speakers_scored(run: RunDir, corpus: str) -> int | None:
    """Distinct speakers in RUN/predictions/<corpus>.csv (for metrics JSON without a ``speakers`` key)."""
    try:
        with open(run.predictions(corpus), newline="", encoding="utf-8") as f:
            return len({row.get("speaker") for row in csv.DictReader(f)})
    except (OSError, ValueError, csv.Error):
        return None


def _metrics(run: RunDir) -> dict[str, CorpusMetrics]:
    out: dict[str, CorpusMetrics] = {}
    for path in (run.metrics(c) for c in run.metrics_corpora()):  # perturbed metrics (corpus@spec) aside
        data = read_json(path)
        if data is not None and "accuracy" in data and "uar" in data:
            m = CorpusMetrics.from_json(path.stem, data)
            if m.speakers is None:
                m.speakers = _speakers_scored(run, path.stem)
            out[path.stem] = m
    return out


def _audits(run: RunDir) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(run.audit_dir.glob("*.json")):
        data = read_json(path)
        if data is not None and isinstance(data.get("by"), dict):
            out[path.stem] = data
    return out


def _run_status(run: RunDir, done: dict[str, Any] | None) -> str:
    if done is not None:
        return "complete"
    return "incomplete" if run.path.is_dir() else "not run"


def _summary(exp: Experiment, out: Path, study: Study, outcome: Outcome | None) -> ExperimentSummary:
    """One experiment read back from its run (and, for an audit, from the run it audits)."""
    spec = exp.spec
    source = spec.audit_of or spec.id
    run, source_run = RunDir.of(run_dir(out, spec.id)), RunDir.of(run_dir(out, source))
    done = read_json(run.done)
    summary = ExperimentSummary(
        id=spec.id,
        title=spec.title,
        architecture=spec.architecture,
        data_strategy=spec.data_strategy,
        trains=exp.trains,
        source=source,
        run=run.path,
        status=outcome.status if outcome is not None else _run_status(run, done),
        error=outcome.error if outcome is not None else None,
        train_corpora=exp.train_corpora,
        reported_accuracy=dict(spec.reported_accuracy),
        seconds_recorded=float(done["seconds"]) if done and "seconds" in done else None,
        seconds_now=outcome.seconds if outcome is not None else None,
        epochs_run=int(done["epochs_run"]) if done and isinstance(done.get("epochs_run"), int) else None,
        notes=[f"{spec.id}: {note}" for note in exp.notes],
    )
    if source_run.done.is_file():
        summary.metrics = _metrics(source_run)
    if not exp.trains:
        summary.notes.append(
            f"{spec.id} trains nothing: its scores are those of {source} (the same model), repeated here"
        )
        summary.train_corpora = study.experiment(source).train_corpora
    record = read_record(source_run.path)
    summary.model = record.architecture if record is not None else None
    if exp.audit is not None and run.audit_dir.is_dir():
        summary.audit_dir = run.audit_dir
        summary.audits = _audits(run)
    # k-fold CV: RUN/folds/<i>/ are the fold runs and RUN has no log of its own; fold 0's curves stand in
    log = run.log if run.log.is_file() else RunDir.of(run.path / "folds" / "0").log
    if exp.trains and log.is_file():
        try:
            summary.log = read_csv(log)
        except (OSError, ValueError):
            summary.log = []
    return summary


def collect(
    out: str | os.PathLike[str], study: Study, results: StudyResult | None = None
) -> list[ExperimentSummary]:
    """Read every experiment of ``study`` back from ``out/runs/``; experiments without a run are 'not run'."""
    outcomes = results.outcomes if results is not None else {}
    return [_summary(exp, Path(out), study, outcomes.get(exp.id)) for exp in study.experiments]


def corpus_order(study: Study, summaries: Sequence[ExperimentSummary]) -> list[str]:
    """The study's corpora (as given on the command line), then any other corpus a run was scored on."""
    seen = list(study.roots)
    for s in summaries:
        seen += [c for c in s.metrics if c not in seen]
    return seen


def result_rows(summaries: Sequence[ExperimentSummary], corpora: Sequence[str]) -> list[dict[str, Any]]:
    """The key-results table as data: one row per experiment and corpus with a score (results.csv)."""

    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.6f}"

    rows = []
    for s in summaries:
        for c in corpora:
            m = s.metrics.get(c)
            if m is None:
                continue
            none: list[float | None] = [None, None]
            acc = list(m.accuracy_ci) if m.accuracy_ci and m.ci_shown else none
            uar = list(m.uar_ci) if m.uar_ci and m.ci_shown else none
            rows.append(
                {
                    "experiment": s.id,
                    "corpus": c,
                    "accuracy": num(m.accuracy),
                    "accuracy_lo": num(acc[0]),
                    "accuracy_hi": num(acc[1]),
                    "uar": num(m.uar),
                    "uar_lo": num(uar[0]),
                    "uar_hi": num(uar[1]),
                    "n": m.n,
                    "leaky": "true" if m.leaky else "false",
                    "uar_fold_sd": num(m.uar_fold_sd),
                    "speakers": "" if m.speakers is None else m.speakers,
                    "folds": "" if m.folds is None else m.folds,
                    "seeds": m.seeds,
                    "uar_seed_mean": num(fmean(m.seed_uars) if m.seed_uars else None),
                    "uar_seed_sd": num(m.uar_seed_sd),
                }
            )
    return rows
