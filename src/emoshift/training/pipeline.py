"""The training pipeline's steps: scan -> split by speaker -> prepare the family's inputs -> fit -> save -> evaluate.

:func:`train_run` is one run made of them; :mod:`emoshift.training.folds` runs them once per fold and
:mod:`emoshift.training.tune` runs scan to fit per trial, and :func:`emoshift.training.train.train` picks one
run or the folds. Plain functions (lightning-hydra-template style). What depends on the kind of model (caches, batches, how it
trains, what model.json records) is the model family's (:mod:`emoshift.models.families`). Re-running ``train``
on an interrupted run directory resumes from ``checkpoints/last.ckpt``; on a complete one it returns at once.
Speaker cross-validation (every fold of ``kfold``/``loso``/``corpus``, pooled) is :mod:`emoshift.training.folds`;
``tracking:`` (TensorBoard, MLflow) is :mod:`emoshift.training.tracking`.
Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch

from emoshift.config import ExperimentConfig, load_config, save_config
from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_json
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir, write_model_json
from emoshift.corpora import EMOTIONS, Scan
from emoshift.data.datasets import Item
from emoshift.data.fingerprints import record_training_audio
from emoshift.data.texts import record_training_texts
from emoshift.evaluation.inference import OutputsMemo
from emoshift.evaluation.modelcard import write_model_card
from emoshift.models import family_of
from emoshift.models.families import Family, FitData, Fitted
from emoshift.training.calibrate import calibrate
from emoshift.training.fit import fit_lightning
from emoshift.training.tracking import Tracker, start_tracking

log = logging.getLogger("emoshift.training.train")  # the name users filter on


class TrainError(EmoshiftError, RuntimeError):
    """Training cannot start or continue (message is for the user)."""


@dataclass
class Prepared:
    scans: dict[str, Scan]
    splits: dict[str, Any]  # corpus -> splits.Split
    labels: list[str]  # [] for task dimensional
    train: list[Item]
    val: list[Item]
    unrated: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # dimensional: left out, why
    unlabelled: dict[str, Scan] = dataclasses.field(default_factory=dict)  # data.unlabelled, label-free


def num_outputs(cfg: ExperimentConfig, labels: list[str]) -> int:
    """The model's outputs: one per class, or one per target of a dimensional run."""
    return len(cfg.task_kind.output_names(labels, cfg.data.targets))


# ------------------------------------------------------------------------------------------------ data


def scan_corpora(cfg: ExperimentConfig, names: list[str], *, progress: bool = False) -> dict[str, Scan]:
    """Scan each corpus (a built-in layout or a manifest table) with every data option of the config."""
    from emoshift.corpora import scan_source

    d = cfg.data
    scans = {}
    for name in names:
        root = d.roots.get(name)
        if not root:
            raise TrainError(f"no root folder for corpus {name!r}: pass --corpus {name}=/path/to/{name}")
        scans[name] = scan_source(name, root, scan_policy(cfg), **d.scan_options(), progress=progress)
        if not scans[name].utterances:
            raise TrainError(f"corpus {name!r} at {root}: no usable utterances")
    return scans


def scan_policy(cfg: ExperimentConfig) -> str:
    """The label policy corpora are scanned with: ``data.labels``, or ``native`` for a dimensional run (its
    ratings do not depend on a category, so no utterance is left out for its label)."""
    return cfg.task_kind.scan_policy(cfg.data.labels)


def label_list(scans: dict[str, Scan]) -> list[str]:
    present = {u.emotion for s in scans.values() for u in s.utterances}
    return [e for e in EMOTIONS if e in present]


def prepare_data(
    cfg: ExperimentConfig, run: RunDir, *, progress: bool = False, scans: dict[str, Scan] | None = None
) -> Prepared:
    """Scan the training corpora (unless ``scans`` holds them) and split each by speaker (splits are saved, and
    reused on resume)."""
    from emoshift.data.splits import check_disjoint, load_split, make_split, save_split

    scans = scans if scans is not None else scan_corpora(cfg, cfg.data.corpora, progress=progress)
    scans = {name: scans[name] for name in cfg.data.corpora}
    rated = cfg.task_kind.rated  # items carry ratings (targets), not a class index
    ratings, unrated = corpus_ratings(cfg, scans) if rated else ({}, {})
    labels = [] if rated else label_list(scans)
    if not rated and len(labels) < 2:
        raise TrainError(f"the training corpora hold fewer than two labels under policy {cfg.data.labels!r}")
    if rated and cfg.training.targets == "soft":
        raise TrainError("training.targets: soft applies to task categorical (the raters' votes over emotion classes)")
    if soft_labels(cfg):
        check_votes(scans, labels)
    splits = {}
    for name, sc in scans.items():
        path = run.split(name)
        utts = [u for u in sc.utterances if u.id in ratings[name]] if rated else sc.utterances
        try:
            split = make_split(utts, cfg.data.split, corpus=name)  # deterministic for the config's seed
        except ValueError as e:
            raise TrainError(f"corpus {name!r}: {e}") from None
        if sc.leaky:  # speakers unknown (a manifest without a speaker column): every score says so
            split = dataclasses.replace(split, leaky=True)
        report_text_cost(cfg, name, split)
        check_disjoint(split, allow_leak=cfg.data.split.allow_leak or split.leaky)
        if path.is_file():  # resuming: the saved split must be the one this corpus and config give
            if load_split(path).assignment != split.assignment:
                raise TrainError(
                    f"{path} no longer matches corpus {name!r} (files were added, removed or relabelled "
                    "since this run started): use a new run directory"
                )
        else:
            save_split(split, path)
        splits[name] = split
    index = {lab: i for i, lab in enumerate(labels)}
    train: list[Item] = []
    val: list[Item] = []
    for ci, name in enumerate(cfg.data.corpora):
        for u in scans[name].utterances:
            part = splits[name].assignment.get(u.id)
            if part not in ("train", "val"):
                continue
            item = Item(u, 0, ci, ratings[name][u.id]) if rated else Item(u, index[u.emotion], ci)
            (train if part == "train" else val).append(item)
    if not train or not val:
        raise TrainError(
            "the split left no training or no validation utterances; use more speakers or other ratios"
        )
    return Prepared(scans, splits, labels, train, val, unrated, scan_unlabelled_corpora(cfg))


def scan_unlabelled_corpora(cfg: ExperimentConfig) -> dict[str, Scan]:
    """``data.unlabelled``: each target corpus's audio, label-free (:mod:`emoshift.corpora.unlabelled`)."""
    from emoshift.corpora.unlabelled import scan_unlabelled

    d = cfg.data
    return {name: scan_unlabelled(name, root, **d.scan_options()) for name, root in d.unlabelled.items()}


def check_votes(scans: dict[str, Scan], labels: list[str]) -> None:
    """``training.targets: soft``: every training corpus has raters' votes (TrainError, one line, if one has
    none); utterances without them train on their one-hot label, and the log says how many."""
    from emoshift.data.targets import TargetsError, require_votes

    try:
        missing = require_votes({name: sc.utterances for name, sc in scans.items()}, labels)
    except TargetsError as e:
        raise TrainError(str(e)) from None
    for name, n in missing.items():
        if n:
            log.warning("%s: %d utterance(s) have no raters' votes; they train on their one-hot label", name, n)
def report_text_cost(cfg: ExperimentConfig, name: str, split: Any) -> None:
    """A text-disjoint split's cost (the utterances it leaves out), and what it cannot keep apart, in the log."""
    from emoshift.data.texts import shared_text

    if split.text_cost is not None:
        log.warning("%s: %s", name, split.text_cost.summary())
    if cfg.data.split.text_disjoint and (shared := shared_text(name)) is not None:
        log.warning(
            "%s: every utterance also says %r, which no split can keep apart; only the rest of each text is "
            "disjoint", name, shared,
        )


def corpus_ratings(
    cfg: ExperimentConfig, scans: dict[str, Scan]
) -> tuple[dict[str, dict[str, tuple[float, ...]]], dict[str, dict[str, int]]]:
    """Task dimensional: each training corpus's rescaled ratings by utterance id, and the utterances left out
    (no rating for a requested target) counted by reason; a corpus without ratings is a TrainError."""
    from emoshift.data.targets import TargetsError, rated, require_scale

    d = cfg.data
    ratings, unrated = {}, {}
    for name, sc in scans.items():
        try:
            scale = require_scale(name, d.roots[name], d.manifest.scale)
        except TargetsError as e:
            raise TrainError(str(e)) from None
        ratings[name], why = rated(sc.utterances, d.targets, scale, d.target_range)
        if why:
            unrated[name] = dict(why)
            log.warning("%s: %d utterance(s) left out (%s)", name, sum(why.values()),
                        ", ".join(f"{k}: {n}" for k, n in why.most_common()))
        if not ratings[name]:
            raise TrainError(f"corpus {name!r} has no utterance rated for every target in data.targets {d.targets}")
    return ratings, unrated


def drop_uncached(items: list[Item], stores: dict[str, Any]) -> list[Item]:
    return [it for it in items if it.utt.id in stores[it.utt.corpus]]


# ------------------------------------------------------------------------------------------------ train


def train_run(
    cfg: ExperimentConfig,
    run_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    scans: dict[str, Scan] | None = None,
    parent: Tracker | None = None,
    memo: OutputsMemo | None = None,
) -> Path:
    """One run: scan (unless ``scans`` holds the corpora) -> split -> prepare -> fit -> save -> evaluate.

    ``parent``: the tracker of the pooled run whose fold this is (:mod:`emoshift.training.tracking`); ``memo``
    keeps its evaluation's model outputs for the pooled evaluation after the folds."""
    run = RunDir.of(run_dir)
    fingerprint, complete = start_run(cfg, run)
    if complete:
        return run.path
    tracker = start_tracking(cfg, run, parent=parent, fold=cfg.data.split.fold)
    if not progress:  # quiet: keep Lightning's banners (GPU available, tips) out of the output
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    started = time.time()
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)

    with tracker.active():  # the tracked run ends FINISHED, or FAILED when a step raises
        prep = prepare_data(cfg, run, progress=progress, scans=scans)  # scan + speaker split
        family, model, data = set_up_fit(cfg, prep, progress=progress)
        fitted = family.fit(
            cfg, data, run, model=model, progress=progress, callbacks=callbacks, loggers=tracker.loggers(),
            fit_loop=fit_lightning,
        )
        if not fitted.is_main:
            return run.path  # DDP workers stop here; rank 0 saves and evaluates

        family.save(fitted.model, run)
        record = model_info(cfg, family, fitted.model, prep, fingerprint)
        # evaluation.calibrate: a temperature fitted on the validation speakers (emoshift.training.calibrate)
        write_model_json(run, calibrate(cfg, fitted.model, record, prep.val, progress=progress))
        # what it learned from, by content: the same audio under another name or path is a leak when tested
        record_training_audio(run, [it.utt for it in (*prep.train, *prep.val)], cfg.data.cache_dir)
        record_training_texts(run, [it.utt for it in (*prep.train, *prep.val)])  # said again in test: text overlap
        evaluate_and_plot(cfg, run, prep, progress=progress, scans=scans, memo=memo)
        atomic_write_json(run.done, done_info(cfg, fitted, prep, fingerprint, started))  # the run is complete
        write_model_card(run.path)  # RUN/README.md (Hugging Face model-card layout), from the finished run
        tracker.log_results(run)
    shutil.rmtree(run.checkpoints, ignore_errors=True)  # so checkpoints are no longer needed
    return run.path


def start_run(cfg: ExperimentConfig, run: RunDir) -> tuple[str, bool]:
    """(the config's fingerprint, whether ``run`` already holds its finished run); an unfinished run directory
    is created (or kept, to resume) with the resolved config in it."""
    fingerprint = cfg.fingerprint(exclude_roots=True)
    if check_run_dir(cfg, run, fingerprint):
        log.info("run %s is already complete", run.path)
        return fingerprint, True
    run.path.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run.config)
    return fingerprint, False


def check_run_dir(cfg: ExperimentConfig, run: RunDir, fingerprint: str) -> bool:
    """True when ``run`` already holds this config's finished run; TrainError when it holds another config's."""
    if run.is_complete():
        if run.done_info().get("fingerprint") not in (None, fingerprint):
            raise TrainError(f"{run.path} holds a finished run of a different config; choose another -o")
        return True
    if run.config.is_file():
        old = load_config(run.config)
        if old.fingerprint(exclude_roots=True) != fingerprint:
            raise TrainError(
                f"{run.path} holds an unfinished run of a different config; choose another -o or delete it"
            )
    return False


def set_up_fit(cfg: ExperimentConfig, prep: Prepared, *, progress: bool) -> tuple[Family, Any, FitData]:
    """What the fit step takes (a run's and a tuning trial's alike): the model's family, the model built fresh
    from the training seed, and the inputs it trains on."""
    family = family_of(cfg.model.name, cfg.model.mode)
    torch.manual_seed(cfg.training.seed)
    model = family.build(cfg, num_labels=num_outputs(cfg, prep.labels))
    return family, model, prepare_inputs(cfg, family, model, prep, progress=progress)


def prepare_inputs(cfg: ExperimentConfig, family: Family, model: Any, prep: Prepared, *, progress: bool) -> FitData:
    """Teacher logits (distillation), then the family's stores; items without a stored input are dropped."""
    teacher_by_id: dict[str, torch.Tensor] = {}
    if cfg.training.distill is not None:
        # Before the student opens its stores: the teacher's inference may add to the same cache.
        from emoshift.training.distill import teacher_logits

        logits = teacher_logits(cfg.training.distill.teacher, prep.train, prep.labels, cfg, progress=progress)
        teacher_by_id = {it.utt.id: row for it, row in zip(prep.train, logits, strict=True)}
    scans = {**prep.scans, **prep.unlabelled}  # the unlabelled corpora's inputs are cached as any corpus's
    stores = family.prepare_stores(cfg, model, scans, progress=progress, train=prep.train)
    first = len(cfg.data.corpora)  # the unlabelled corpora's domain indices follow the training corpora's
    unlabelled = [Item(u, -1, first + i) for i, sc in enumerate(prep.unlabelled.values()) for u in sc.utterances]
    if stores:
        prep.train, prep.val = drop_uncached(prep.train, stores), drop_uncached(prep.val, stores)
        unlabelled = drop_uncached(unlabelled, stores)
    teacher = torch.stack([teacher_by_id[it.utt.id] for it in prep.train]) if teacher_by_id else None  # (N, C)
    return FitData(prep.labels, prep.train, prep.val, stores, teacher, unlabelled)


def model_info(cfg: ExperimentConfig, family: Family, model: Any, prep: Prepared, fingerprint: str) -> ModelRecord:
    """model.json (its keys are a contract: runs written by older versions carry the same ones)."""
    return ModelRecord.parse({
        **family.architecture_info(cfg, model),
        "input_kind": family.input_kind,
        "task": cfg.task,
        **({"targets": list(cfg.data.targets), "target_range": list(cfg.data.target_range)}
           if cfg.task_kind.rated else {}),
        "labels": prep.labels,
        "label_policy": scan_policy(cfg),
        "features": cfg.features.model_dump(mode="json"),
        "train_corpora": cfg.data.corpora,
        "training_speakers": sorted({it.utt.speaker for it in prep.train} | {it.utt.speaker for it in prep.val}),
        "leaky_split": any(s.leaky for s in prep.splits.values()),
        "distill_teacher": str(cfg.training.distill.teacher) if cfg.training.distill else None,
        **({"dann": dann_record(cfg, prep)} if cfg.training.dann is not None else {}),
        "architecture": family.describe(cfg),
        "config_fingerprint": fingerprint,
    })


def dann_record(cfg: ExperimentConfig, prep: Prepared) -> dict[str, Any]:
    """model.json ``dann``: how the corpus classifier trained (it is not part of the saved model)."""
    from emoshift.config.dann import domains

    dann = cfg.training.dann
    assert dann is not None  # the caller asks only then
    return {
        "weight": dann.weight, "schedule": dann.schedule, "domains": domains(cfg.data.corpora, cfg.data.unlabelled),
        "unlabelled": {name: len(sc.utterances) for name, sc in prep.unlabelled.items()},  # utterances each
    }


def eval_roots(cfg: ExperimentConfig) -> dict[str, str]:
    """The training corpora, then every extra evaluation corpus that has a root: name -> root."""
    roots = {name: cfg.data.roots[name] for name in cfg.data.corpora}
    roots.update({name: cfg.data.roots[name] for name in cfg.evaluation.corpora if name in cfg.data.roots})
    return roots


def evaluate_and_plot(
    cfg: ExperimentConfig,
    run: RunDir,
    prep: Prepared,
    *,
    progress: bool,
    scans: dict[str, Scan] | None = None,
    memo: OutputsMemo | None = None,
) -> None:
    """Evaluate on the training corpora (their test speakers) and on any extra corpus; plot the curves."""
    from emoshift.evaluation.evaluate import evaluate_run
    from emoshift.evaluation.plots import plot_curves
    from emoshift.evaluation.scoring import draws_figures

    # a training corpus without test speakers (a kfold run past its own k: training-only) has nothing to score
    roots = {n: r for n, r in eval_roots(cfg).items() if n not in prep.splits or prep.splits[n].ids("test")}
    evaluate_run(run.path, roots, progress=progress, scans={**(scans or {}), **prep.scans}, memo=memo)
    if run.log.is_file() and draws_figures(cfg, run):
        plot_curves(run.log, run.curves_plot)


def done_info(
    cfg: ExperimentConfig, fitted: Fitted, prep: Prepared, fingerprint: str, started: float
) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "seconds": round(time.time() - started, 2),
        "epochs_run": fitted.epochs_run,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "samples": {"train": len(prep.train), "val": len(prep.val)},
        **({"text_disjoint": {n: sp.text_cost.as_dict() for n, sp in prep.splits.items() if sp.text_cost}}
           if cfg.data.split.text_disjoint else {}),
        "label_counts": {} if cfg.task_kind.rated else dict(Counter(prep.labels[it.label] for it in prep.train)),
        **({"unrated": prep.unrated} if cfg.task_kind.rated else {}),
        **({"targets": {"kind": "soft", "soft_mix": cfg.training.soft_mix}} if soft_labels(cfg) else {}),
    }


def soft_labels(cfg: ExperimentConfig) -> bool:
    """Whether the run trains on the raters' vote distributions (``training.targets: soft``, categorical)."""
    return not cfg.task_kind.rated and cfg.training.targets == "soft"
