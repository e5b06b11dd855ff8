"""Speaker cross-validation in one ``emoshift train``: every fold trained as a normal run, then pooled.

``data.split.method`` ``kfold`` (k gender-stratified speaker folds), ``loso`` (one speaker per fold) or
``corpus`` (the folds the corpus defines: IEMOCAP sessions, MSP-Podcast partitions, a manifest's ``fold``
column), with ``data.split.fold`` unset, trains every fold (``kfold`` with a per-corpus ``k``: ``max(k)`` fold
runs, fold run i testing fold i of every corpus that has one; see :mod:`emoshift.data.splits`)::

    RUN/config.yaml            the config as given (no fold)
    RUN/folds/<i>/             fold i: a normal, complete run directory (its config has data.split.fold: i)
    RUN/model.json             the fold ensemble: {"members": ["folds/0", ...], "ensemble": "mean probability",
                               labels, features, model, ...}; predict, evaluate, audit and compare use it
                               (a dimensional run: "mean output", with the folds' task, targets, target_range)
    RUN/splits/<corpus>.csv    id, speaker, split: every utterance the folds tested, as "test"
    RUN/predictions/<corpus>.csv, RUN/metrics/<corpus>.json
                               pooled out-of-fold predictions and their metrics (+ folds, fold_mean, fold_sd);
                               other corpora scored by the fold ensemble (:mod:`emoshift.evaluation.evaluate`)
    RUN/log.csv                every fold's log.csv rows, a ``fold`` column first; RUN/plots/curves.png draws
                               one line per fold
    RUN/done.json              written, then RUN/README.md: the ensemble's model card (what each fold trained on)

The corpora are scanned once and the scans handed to every fold; features, embeddings and functionals are
cached per corpus (not per fold), so every fold after the first reads them from the cache. Resume is per fold:
a fold whose ``done.json`` exists is skipped, an interrupted one resumes from its own checkpoint. Tracked
(``tracking.backend: mlflow``), the pooled run is an MLflow run and each fold a run nested under it.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoshift.config import ExperimentConfig, build_config
from emoshift.config.split import FOLD_METHODS
from emoshift.core.io import atomic_write_csv, atomic_write_json, read_csv
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir, write_model_json
from emoshift.data.splits import Split, corpus_fold_names, make_folds, save_split
from emoshift.evaluation.evaluate import evaluate_run
from emoshift.evaluation.inference import OutputsMemo
from emoshift.evaluation.modelcard import write_model_card
from emoshift.training.pipeline import (
    TrainError,
    corpus_ratings,
    eval_roots,
    scan_corpora,
    start_run,
    train_run,
)
from emoshift.training.tracking import start_tracking

if TYPE_CHECKING:
    from collections.abc import Sequence

    from emoshift.corpora import Scan

log = logging.getLogger("emoshift.training.folds")

# model.json keys every fold shares with the ensemble (the rest are per fold: training_speakers is the union)
SHARED_KEYS: tuple[str, ...] = (
    "input_kind", "task", "labels", "label_policy", "features", "train_corpora", "architecture",
)


def runs_all_folds(cfg: ExperimentConfig) -> bool:
    """True when the config asks for every fold of a fold method (``data.split.fold`` unset)."""
    return cfg.data.split.method in FOLD_METHODS and cfg.data.split.fold is None


def fold_config(cfg: ExperimentConfig, fold: int) -> ExperimentConfig:
    """``cfg`` with ``data.split.fold = fold`` (validated again)."""
    data = cfg.to_dict()
    data["data"]["split"]["fold"] = fold
    data["name"] = f"{cfg.name}-fold{fold}"
    return build_config(data)


def corpus_folds(cfg: ExperimentConfig, scans: dict[str, Scan]) -> dict[str, list[Split]]:
    """Each training corpus's test folds (fold i of each trains together). ``kfold`` with a per-corpus ``k``
    may give corpora different counts: fold run i tests the corpora that have a fold i, the others only train
    in it (:mod:`emoshift.data.splits`, "Unequal fold counts"); ``loso`` and ``corpus`` need equal counts."""
    out: dict[str, list[Split]] = {}
    # a dimensional run folds its rated utterances only (those are what each fold's split holds)
    rated = cfg.task_kind.rated
    ratings = corpus_ratings(cfg, {n: scans[n] for n in cfg.data.corpora})[0] if rated else {}
    for name in cfg.data.corpora:
        utts = scans[name].utterances
        if rated:
            utts = [u for u in utts if u.id in ratings[name]]
        if cfg.data.split.method == "corpus" and not corpus_fold_names(utts):
            raise TrainError(
                f"corpus {name!r} defines no folds of its own (data.split.method: corpus needs IEMOCAP sessions, "
                "MSP-Podcast partitions or a manifest 'fold' column); use data.split.method: kfold"
            )
        try:
            out[name] = make_folds(utts, cfg.data.split, corpus=name)
        except ValueError as e:
            raise TrainError(f"corpus {name!r}: {e}") from None
    counts = {name: len(f) for name, f in out.items()}
    if cfg.data.split.method != "kfold" and len(set(counts.values())) > 1:
        shown = ", ".join(f"{n}: {c}" for n, c in counts.items())
        raise TrainError(f"the training corpora give different numbers of folds ({shown}); train them separately")
    return out


def train_folds(
    cfg: ExperimentConfig,
    run: RunDir,
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    scans: dict[str, Scan] | None = None,
) -> Path:
    """Train every fold into ``RUN/folds/<i>/`` (skipping complete ones), then pool and evaluate them.
    ``scans``: the corpora already scanned (a repeated-training run scans once for every seed)."""
    fingerprint, complete = start_run(cfg, run)
    if complete:
        return run.path
    started = time.time()
    tracker = start_tracking(cfg, run)  # the pooled run; each fold's run is its child
    with tracker.active():
        roots = eval_roots(cfg)
        if scans is None or not set(roots) <= set(scans):
            scans = scan_corpora(cfg, list(roots), progress=progress)  # once, for every fold
        folds = corpus_folds(cfg, scans)
        n_folds = max(len(f) for f in folds.values())  # kfold: max(k); a corpus with fewer folds trains only past them
        members = []
        memo = OutputsMemo()  # each fold model scores each utterance once: at its fold's evaluation, reused below
        for i in range(n_folds):
            member = run.fold(i)
            log.info("fold %d of %d: %s", i + 1, n_folds, member)
            cfg_i = fold_config(cfg, i)
            train_run(cfg_i, member, progress=progress, callbacks=callbacks, scans=scans, parent=tracker, memo=memo)
            members.append(RunDir.of(member))
        for name, splits in folds.items():
            save_split(tested(splits), run.split(name))
        write_model_json(run, ensemble_info(run, members, fingerprint))
        evaluate_run(run.path, roots, progress=progress, scans=scans, memo=memo)
        pool_logs(members, run, figures=cfg.evaluation.figures)
        atomic_write_json(run.done, done_info(members, fingerprint, started))
        write_model_card(run.path)  # the top level predict/export/serve use: the ensemble and its members' data
        tracker.log_results(run)
    return run.path


def pool_logs(members: list[RunDir], run: RunDir, *, column: str = "fold", figures: bool = True) -> None:
    """RUN/log.csv: the members' training logs one after another, with a ``fold`` column (``column``: a
    repeated-training run's ``seed``, its members' own fold column kept); and their curves (``figures``)."""
    from emoshift.evaluation.plots import plot_curves

    def key(i: int, m: RunDir) -> Any:
        return int(m.path.name) if column == "seed" else i

    rows = [{column: key(i, m), **row} for i, m in enumerate(members) if m.log.is_file() for row in read_csv(m.log)]
    if not rows:
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    atomic_write_csv(run.log, columns, rows)
    if figures:
        plot_curves(run.log, run.curves_plot)


def tested(splits: list[Split]) -> Split:
    """The utterances the folds test, each marked "test" (the pooled run's split file)."""
    assignment = {i: "test" for s in splits for i in s.ids("test")}
    speakers = {i: s.speakers[i] for s in splits for i in s.ids("test")}
    return Split(assignment, speakers, leaky=any(s.leaky for s in splits), method="pooled")


MEMBER_KEYS = ("temperature", "temperature_fit")  # a member's own calibration (emoshift.training.calibrate)


def ensemble_info(run: RunDir, members: list[RunDir], fingerprint: str) -> ModelRecord:
    """The pooled run's model.json: the first member's description, the members (folders relative to ``run``),
    and what they saw together."""
    infos = [m.info() for m in members]
    first = infos[0]
    # each fold model keeps its own temperature (fitted on its own validation speakers): the pooled record has none
    return ModelRecord.parse({
        **{k: v for k, v in first.to_json().items() if k not in MEMBER_KEYS},
        "members": [m.path.relative_to(run.path).as_posix() for m in members],
        "ensemble": first.task_kind.ensemble,
        **{k: getattr(first, k) for k in SHARED_KEYS},
        "training_speakers": sorted({s for i in infos for s in i.training_speakers}),
        "leaky_split": any(i.leaky_split for i in infos),
        "config_fingerprint": fingerprint,
    })


def done_info(members: list[RunDir], fingerprint: str, started: float) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "seconds": round(time.time() - started, 2),
        "folds": len(members),
        "fold_seconds": [m.done_info().get("seconds") for m in members],
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
