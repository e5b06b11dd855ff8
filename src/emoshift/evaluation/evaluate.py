"""``evaluate_run(RUN, {name: root})``: metrics, predictions and a plot per corpus.

How a corpus is scored (held-out test speakers of a training corpus, every utterance of another; a pooled
cross-validation run's out-of-fold predictions or its fold ensemble) is the same for both tasks:
:mod:`emoshift.evaluation.scoring`. What is written from the scores is the run's task's:

- categorical (:mod:`emoshift.evaluation.classified`): accuracy, UAR, macro-F1, a confusion plot;
- dimensional (:mod:`emoshift.evaluation.rated`): CCC per target, a scatter plot.

A pooled run's metrics add ``folds`` (each fold's scores), ``fold_mean`` and ``fold_sd`` (sample standard
deviation over folds; null with one fold). A repeated-training run (``training.seeds``, RUN/seeds/<s>/) is
evaluated seed by seed, each as the run it is, and pooled over the seeds (:mod:`emoshift.evaluation.seeded`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from emoshift.config import ExperimentConfig, load_run_config
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir
from emoshift.core.task import CATEGORICAL, DIMENSIONAL, Task
from emoshift.corpora import Scan, resolve_name, scan_source
from emoshift.evaluation.classified import evaluate_categorical
from emoshift.evaluation.inference import OutputsMemo, default_device
from emoshift.evaluation.modelcard import refresh_model_card
from emoshift.evaluation.rated import evaluate_dimensional
from emoshift.evaluation.scoring import EvaluationError, Scorer, test_utterances
from emoshift.evaluation.seeded import pool_seeds
from emoshift.models.weights import load_model

__all__ = ["EvaluationError", "evaluate_run", "scan_for_run", "test_utterances"]

# what each task writes for a scored corpus: (scorer, name, root, scan) -> metrics
WRITERS: dict[Task, Callable[[Scorer, str, str, Scan], dict[str, Any]]] = {
    CATEGORICAL: evaluate_categorical,
    DIMENSIONAL: evaluate_dimensional,
}


def scan_for_run(cfg: ExperimentConfig, info: ModelRecord, name: str, root: str, *, progress: bool) -> Scan:
    """Scan a corpus (folder or manifest table) with the run's data options and label policy."""
    labels = info.task_kind.scan_policy(str(info.label_policy or cfg.data.labels))
    return scan_source(name, root, labels, **cfg.data.scan_options(), progress=progress)


def evaluate_run(
    run_dir: str | os.PathLike[str],
    corpora: dict[str, str],
    *,
    progress: bool = True,
    batch_size: int | None = None,
    scans: dict[str, Scan] | None = None,
    cache_dir: str | None = None,
    memo: OutputsMemo | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate a finished run on each ``name -> root``; writes metrics/, predictions/ and plots/. ``memo``:
    model outputs already computed in this process (a k-fold run's folds, :mod:`emoshift.training.folds`)."""
    run = RunDir.of(run_dir)
    cfg = load_run_config(run.path)
    if run.is_multi_seed():
        return _evaluate_seeds(run, cfg, corpora, progress=progress, batch_size=batch_size, scans=scans,
                               cache_dir=cache_dir)
    model, info = load_model(run.path, device=default_device())
    scorer = Scorer(
        run, cfg, model, info, cache_dir or cfg.data.cache_dir, batch_size or cfg.evaluation.batch_size, progress,
        memo or OutputsMemo(enabled=False),
    )
    write = WRITERS[info.task_kind]
    results: dict[str, dict[str, Any]] = {}
    for raw_name, root in corpora.items():
        name = resolve_name(raw_name, root)
        sc = (scans or {}).get(name) or scan_for_run(cfg, info, name, root, progress=progress)
        results[name] = write(scorer, name, root, sc)
    if not info.task_kind.rated:  # the abstention threshold: needs the in-domain predictions, so after them all
        from emoshift.evaluation.confidence import state_abstention

        target = cfg.evaluation.target_accuracy
        for name, statement in state_abstention(run, info, target, list(results), figures=scorer.figures).items():
            results[name]["abstention"] = statement
    refresh_model_card(run.path)  # a finished run's card gains the new rows (training writes it when it finishes)
    return results


def _evaluate_seeds(
    run: RunDir,
    cfg: ExperimentConfig,
    corpora: dict[str, str],
    *,
    progress: bool,
    batch_size: int | None,
    scans: dict[str, Scan] | None,
    cache_dir: str | None,
) -> dict[str, dict[str, Any]]:
    """Each seed run evaluated as the run it is, then the corpora pooled over the seeds."""
    seeds = run.seed_dirs()
    names: list[str] = []
    for seed_run in seeds:
        done = evaluate_run(seed_run.path, corpora, progress=progress, batch_size=batch_size, scans=scans,
                            cache_dir=cache_dir)
        names = list(done)
    pooled = pool_seeds(run, seeds, ci_seed=cfg.evaluation.seed, n_resamples=cfg.evaluation.n_bootstrap,
                        figures=cfg.evaluation.figures)
    refresh_model_card(run.path)
    return {n: pooled[n] for n in names if n in pooled}
