"""``evaluate_run(RUN, {name: root})``: metrics, predictions and a confusion plot per corpus.

For a corpus the model trained on, only its held-out test speakers are used (``RUN/splits/<corpus>.csv``);
for any other corpus, every utterance. ``leaky`` is true when any test speaker was seen in training, or the
corpus's speakers are unknown (a manifest scanned with ``allow_leak``).

A pooled cross-validation run (model.json lists fold ``members``, :mod:`emoshift.training.folds`) is scored
differently: on a corpus it trained on, every fold model predicts its own test speakers and the out-of-fold
predictions are pooled (each speaker scored once, by a model that never saw it; a ``fold`` column says which);
on any other corpus the fold ensemble predicts (mean probability). Either way the metrics are those of the
pooled predictions, plus ``folds`` (each fold's ``fold, n, speakers, accuracy, uar, macro_f1``),
``fold_mean`` and ``fold_sd`` (sample standard deviation over folds; null with one fold).

A dimensional run (model.json ``task: dimensional``) is scored the same way with regression metrics (CCC per
target): :mod:`emoshift.evaluation.dimensional`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoshift.config import ExperimentConfig, load_run_config
from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_csv, atomic_write_json
from emoshift.core.rundir import RunDir
from emoshift.corpora import Scan, resolve_name, scan_source
from emoshift.corpora.base import Skipped, Utterance
from emoshift.evaluation.inference import (
    LogitsMemo,
    default_device,
    ensemble_probabilities,
    logits_for_utterances,
    softmax,
)
from emoshift.models.ensemble import Ensemble
from emoshift.models.families import is_dimensional
from emoshift.models.weights import load_model

FOLD_METRICS: tuple[str, ...] = ("accuracy", "uar", "macro_f1")


class EvaluationError(EmoshiftError, RuntimeError):
    """Evaluation cannot proceed (message is for the user)."""


def test_utterances(run: RunDir, name: str, sc: Scan, info: dict[str, Any]) -> tuple[list[Utterance], str, bool]:
    """(utterances, which split, leaky) for corpus ``name`` under this run."""
    from emoshift.data.splits import load_split, shared_speakers

    seen = set(info.get("training_speakers", []))
    if name in info.get("train_corpora", []):
        path = run.split(name)
        if not path.is_file():
            raise EvaluationError(f"{run.path} trained on {name} but {path} is missing")
        split = load_split(path)
        test_ids = {i for i, part in split.assignment.items() if part == "test"}
        utts = [u for u in sc.utterances if u.id in test_ids]
        leaky = bool(split.leaky or sc.leaky or shared_speakers(split) or {u.speaker for u in utts} & seen)
        return utts, "test", leaky
    return list(sc.utterances), "all", bool(sc.leaky or {u.speaker for u in sc.utterances} & seen)


def scan_for_run(cfg: ExperimentConfig, info: dict[str, Any], name: str, root: str, *, progress: bool) -> Scan:
    """Scan a corpus (folder or manifest table) with the run's data options and label policy."""
    labels = "native" if is_dimensional(info) else str(info.get("label_policy") or cfg.data.labels)
    return scan_source(name, root, labels, **cfg.data.scan_options(), progress=progress)


@dataclass
class Scored:
    """One corpus's predictions: utterances, probabilities ``(N, C)`` and, for a pooled run, the folds."""

    part: str
    leaky: bool
    kept: list[Utterance]
    probs: np.ndarray
    skipped: list[Skipped]
    fold: list[int] | None = None  # out-of-fold: the fold whose model scored each row
    fold_scores: list[dict[str, Any]] = field(default_factory=list)
    scored_by: str = "model"


@dataclass
class _Context:
    run: RunDir
    cfg: ExperimentConfig
    model: Any
    info: dict[str, Any]
    cache_dir: str
    batch_size: int
    progress: bool
    memo: LogitsMemo | None = None  # logits this process computed already (a k-fold run's folds)

    def known(self, utts: list[Utterance]) -> list[Utterance]:
        return [u for u in utts if u.emotion in self.info["labels"]]

    def logits(self, model: Any, info: dict[str, Any], utts: list[Utterance], desc: str) -> Any:
        return logits_for_utterances(
            model, info, utts, cache_dir=self.cache_dir, batch_size=self.batch_size, progress=self.progress, desc=desc,
            memo=self.memo,
        )


def evaluate_run(
    run_dir: str | os.PathLike[str],
    corpora: dict[str, str],
    *,
    progress: bool = True,
    batch_size: int | None = None,
    scans: dict[str, Scan] | None = None,
    cache_dir: str | None = None,
    memo: LogitsMemo | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate a finished run on each ``name -> root``; writes metrics/, predictions/ and plots/. ``memo``:
    logits computed earlier in this process (a k-fold run evaluates each fold model once)."""
    run = RunDir.of(run_dir)
    cfg = load_run_config(run.path)
    model, info = load_model(run.path, device=default_device())
    ctx = _Context(
        run, cfg, model, info, cache_dir or cfg.data.cache_dir, batch_size or cfg.evaluation.batch_size, progress,
        memo,
    )
    results: dict[str, dict[str, Any]] = {}
    for raw_name, root in corpora.items():
        name = resolve_name(raw_name, root)
        sc = (scans or {}).get(name) or scan_for_run(cfg, info, name, root, progress=progress)
        if is_dimensional(info):  # ratings, not classes: emoshift.evaluation.dimensional
            from emoshift.evaluation.dimensional import evaluate_dimensional

            results[name] = evaluate_dimensional(ctx, name, root, sc)
            continue
        if isinstance(model, Ensemble) and name in info.get("train_corpora", []):
            scored, outside = _out_of_fold(ctx, model, name, sc)
        else:
            scored, outside = _scored(ctx, name, sc)
        results[name] = _write(ctx, name, scored, outside)
    return results


def _scored(ctx: _Context, name: str, sc: Scan) -> tuple[Scored, Counter[str]]:
    """The run's model (or the fold ensemble, by mean probability) on the corpus's test utterances."""
    utts, part, leaky = test_utterances(ctx.run, name, sc, ctx.info)
    outside = Counter(u.emotion for u in utts if u.emotion not in ctx.info["labels"])
    utts = ctx.known(utts)
    if not utts:
        raise EvaluationError(f"{name}: no test utterances with labels the model knows ({', '.join(ctx.info['labels'])})")
    if not isinstance(ctx.model, Ensemble):
        kept, logits, skipped = ctx.logits(ctx.model, ctx.info, utts, f"evaluating {name}")
        return Scored(part, leaky, kept, softmax(logits), skipped), outside
    kept, mean, members, skipped = ensemble_probabilities(
        ctx.model, utts, cache_dir=ctx.cache_dir, batch_size=ctx.batch_size, progress=ctx.progress,
        desc=f"evaluating {name}", memo=ctx.memo,
    )
    scores = [_fold_score(i, kept, probs, ctx.info["labels"]) for i, probs in enumerate(members)]
    return Scored(part, leaky, kept, mean, skipped, None, scores, "fold ensemble (mean probability)"), outside


def _out_of_fold(ctx: _Context, ens: Ensemble, name: str, sc: Scan) -> tuple[Scored, Counter[str]]:
    """Each fold model on its own test speakers, pooled: every test utterance scored once, by its fold."""
    kept: list[Utterance] = []
    probs: list[np.ndarray] = []
    folds: list[int] = []
    skipped: list[Skipped] = []
    scores: list[dict[str, Any]] = []
    outside: Counter[str] = Counter()
    leaky = False
    for i, ((model, info), path) in enumerate(zip(ens.members, ens.paths, strict=True)):
        utts, _, fold_leaky = test_utterances(RunDir.of(path), name, sc, info)
        outside.update(u.emotion for u in utts if u.emotion not in ctx.info["labels"])
        k, logits, bad = ctx.logits(model, info, ctx.known(utts), f"evaluating {name} (fold {i})")
        p = softmax(logits)
        kept += k
        probs.append(p)
        folds += [i] * len(k)
        skipped += bad
        leaky |= fold_leaky
        if k:
            scores.append(_fold_score(i, k, p, ctx.info["labels"]))
    ids = Counter(u.id for u in kept)
    twice = [i for i, c in ids.items() if c > 1]
    if twice:
        raise EvaluationError(f"{name}: {len(twice)} utterance(s) are in the test part of several folds, e.g. {twice[0]}")
    if not kept:
        raise EvaluationError(f"{name}: no test utterances with labels the model knows ({', '.join(ctx.info['labels'])})")
    stacked = np.concatenate(probs)
    return Scored("test", leaky, kept, stacked, skipped, folds, scores, "pooled out-of-fold predictions"), outside


def _fold_score(fold: int, utts: list[Utterance], probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    from emoshift.evaluation.metrics import classification_metrics

    m = classification_metrics([u.emotion for u in utts], [labels[i] for i in probs.argmax(axis=1)], labels)
    return {"fold": fold, "n": m["n"], "speakers": len({u.speaker for u in utts}), **{k: m[k] for k in FOLD_METRICS},
            "collapsed": m["collapsed"]}


def fold_summary(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """``folds``, ``fold_mean`` and ``fold_sd`` (ddof 1; null below two folds) of per-fold scores."""
    values = {k: np.array([s[k] for s in scores], dtype=np.float64) for k in FOLD_METRICS}
    return {
        "folds": scores,
        "fold_mean": {k: float(v.mean()) for k, v in values.items()},
        "fold_sd": {k: float(v.std(ddof=1)) for k, v in values.items()} if len(scores) >= 2 else None,
    }


def _write(ctx: _Context, name: str, s: Scored, outside: Counter[str]) -> dict[str, Any]:
    from emoshift.evaluation.metrics import evaluate_predictions
    from emoshift.evaluation.plots import plot_confusion

    run, info, labels = ctx.run, ctx.info, ctx.info["labels"]
    pred = [labels[i] for i in s.probs.argmax(axis=1)]
    metrics = evaluate_predictions(
        [u.emotion for u in s.kept],
        pred,
        [u.speaker for u in s.kept],
        labels,
        seed=ctx.cfg.evaluation.seed,
        n_resamples=ctx.cfg.evaluation.n_bootstrap,
    )
    metrics.update(
        {
            "leaky": s.leaky,
            "corpus": name,
            "split": s.part,
            "speakers": len({u.speaker for u in s.kept}),
            "model": info["model"],
            "train_corpora": info.get("train_corpora", []),
            "excluded_labels": dict(outside),
            "skipped": [{"path": k.path, "reason": k.reason} for k in s.skipped],
            "distill_teacher": info.get("distill_teacher"),
        }
    )
    if isinstance(ctx.model, Ensemble):
        metrics.update({"scored_by": s.scored_by, **fold_summary(s.fold_scores)})
    atomic_write_json(run.metrics(name), metrics)
    cols = ["id", "path", "corpus", "speaker", "gender", "true", "pred", *[f"p_{lab}" for lab in labels]]
    if s.fold is not None:
        cols.append("fold")
    rows = []
    for i, (u, p, probs_u) in enumerate(zip(s.kept, pred, s.probs, strict=True)):
        row = {"id": u.id, "path": u.path, "corpus": u.corpus, "speaker": u.speaker, "gender": u.gender or "",
               "true": u.emotion, "pred": p}
        row.update({f"p_{lab}": f"{float(v):.6f}" for lab, v in zip(labels, probs_u, strict=True)})
        if s.fold is not None:
            row["fold"] = s.fold[i]
        rows.append(row)
    atomic_write_csv(run.predictions(name), cols, rows)
    title = f"{info['model']} on {name} ({s.part}{', LEAKY' if s.leaky else ''}): UAR {metrics['uar']:.3f}"
    if metrics["collapsed"]:  # one class for (nearly) every utterance: say so where the eye goes first
        title += f"\nCOLLAPSED: predicts {metrics['collapsed']['label']!r} for {metrics['collapsed']['share']:.0%}"
    plot_confusion(metrics["confusion"], labels, run.confusion_plot(name), title=title)
    return metrics
