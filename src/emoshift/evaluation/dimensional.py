"""Evaluating a dimensional run (model.json ``task: dimensional``): outputs, metrics, predictions, a scatter.

The same protocol as the categorical path in :mod:`emoshift.evaluation.evaluate`: a corpus the model trained on
is scored on its held-out test speakers, any other corpus on every utterance; a pooled cross-validation run
pools each fold's out-of-fold outputs on its training corpora and scores other corpora with the fold ensemble
(the mean of the members' outputs). The model's outputs are on the run's ``target_range``; a corpus's ratings
are rescaled to that range from its native scale (:mod:`emoshift.data.targets`).

Written per corpus:

- ``RUN/predictions/<corpus>.csv``: ``id,path,corpus,speaker,gender[,fold]`` then ``true_<t>,pred_<t>`` for each
  target (``true_<t>`` empty where the corpus has no rating);
- ``RUN/metrics/<corpus>.json``: :func:`~emoshift.evaluation.regression.evaluate_regression` on the rated
  utterances (CCC, Pearson r, MAE per target with speaker-bootstrap intervals, the mean CCC) plus the context
  keys the categorical metrics have, ``target_range``, ``unrated`` (utterances without a rating, by reason) and,
  for a fold run, ``folds`` / ``fold_mean`` / ``fold_sd`` with ``ccc`` and ``<t>_ccc``. A corpus without
  ratings (RAVDESS, CREMA-D...) still gets its predictions; its metrics say ``ratings: false``;
- ``RUN/plots/<corpus>_scatter.png``: predicted against true, one panel per target.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from emoshift.core.io import atomic_write_csv, atomic_write_json
from emoshift.core.rundir import RunDir
from emoshift.corpora.base import Skipped, Utterance
from emoshift.models.ensemble import Ensemble

if TYPE_CHECKING:
    from emoshift.corpora import Scan
    from emoshift.evaluation.evaluate import _Context


@dataclass
class Outputs:
    """One corpus's model outputs ``(N, T)`` for ``kept``, and for a fold run the folds' scores."""

    part: str
    leaky: bool
    kept: list[Utterance]
    values: np.ndarray
    skipped: list[Skipped]
    fold: list[int] | None = None
    member_values: list[tuple[int, list[Utterance], np.ndarray]] = field(default_factory=list)
    scored_by: str = "model"


def evaluate_dimensional(ctx: _Context, name: str, root: str, sc: Scan) -> dict[str, Any]:
    """Score corpus ``name`` (scanned as ``sc`` from ``root``) with a dimensional run; returns its metrics."""
    from emoshift.data.targets import native_scale, rated

    info = ctx.info
    targets, target_range = list(info["targets"]), tuple(info["target_range"])
    if isinstance(ctx.model, Ensemble) and name in info.get("train_corpora", []):
        out = _out_of_fold(ctx, ctx.model, name, sc)
    else:
        out = _scored(ctx, name, sc)
    out.values = np.round(out.values, 6)  # as the predictions CSV holds them: the metrics are those of the CSV
    scale = native_scale(name, root, ctx.cfg.data.manifest.scale)
    truth, unrated = rated(out.kept, targets, scale, target_range) if scale else ({}, Counter())  # type: ignore[arg-type]
    truth = {k: tuple(round(v, 6) for v in vs) for k, vs in truth.items()}
    metrics = _metrics(ctx, name, out, truth, dict(unrated), scale is not None)
    _write_predictions(ctx.run, name, out, truth, targets)
    rows = [i for i, u in enumerate(out.kept) if u.id in truth]
    if rows:
        true = {t: [truth[out.kept[i].id][j] for i in rows] for j, t in enumerate(targets)}
        pred = {t: out.values[rows, j].tolist() for j, t in enumerate(targets)}
        scores = {t: (metrics["per_target"][t] or {}).get("ccc") for t in targets}
        from emoshift.evaluation.plots import plot_scatter

        title = f"{info['model']} on {name} ({out.part}{', LEAKY' if out.leaky else ''}): CCC {_f(metrics['ccc'])}"
        plot_scatter(true, pred, ctx.run.scatter_plot(name), value_range=target_range, scores=scores, title=title)  # type: ignore[arg-type]
    atomic_write_json(ctx.run.metrics(name), metrics)
    return metrics


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------------------------------------ outputs


def _scored(ctx: _Context, name: str, sc: Scan) -> Outputs:
    from emoshift.evaluation.evaluate import EvaluationError, test_utterances
    from emoshift.evaluation.inference import ensemble_probabilities

    utts, part, leaky, _ = test_utterances(ctx.run, name, sc, ctx.info, cache_dir=ctx.cache_dir)
    if not utts:
        raise EvaluationError(f"{name}: no test utterances")
    if not isinstance(ctx.model, Ensemble):
        kept, values, skipped = ctx.logits(ctx.model, ctx.info, utts, f"evaluating {name}")
        return Outputs(part, leaky, kept, np.asarray(values, dtype=np.float64), skipped)
    kept, mean, members, skipped = ensemble_probabilities(  # dimensional members: the mean of their outputs
        ctx.model, utts, cache_dir=ctx.cache_dir, batch_size=ctx.batch_size, progress=ctx.progress,
        desc=f"evaluating {name}",
    )
    per = [(i, kept, m) for i, m in enumerate(members)]
    return Outputs(part, leaky, kept, mean, skipped, None, per, "fold ensemble (mean output)")


def _out_of_fold(ctx: _Context, ens: Ensemble, name: str, sc: Scan) -> Outputs:
    """Each fold model on its own test speakers, pooled: every test utterance scored once, by its fold."""
    from emoshift.evaluation.evaluate import EvaluationError, test_utterances

    kept: list[Utterance] = []
    values: list[np.ndarray] = []
    folds: list[int] = []
    skipped: list[Skipped] = []
    per: list[tuple[int, list[Utterance], np.ndarray]] = []
    leaky = False
    for i, ((model, info), path) in enumerate(zip(ens.members, ens.paths, strict=True)):
        utts, _, fold_leaky, _ = test_utterances(RunDir.of(path), name, sc, info, cache_dir=ctx.cache_dir)
        k, v, bad = ctx.logits(model, info, utts, f"evaluating {name} (fold {i})")
        kept += k
        values.append(np.asarray(v, dtype=np.float64))
        folds += [i] * len(k)
        skipped += bad
        leaky |= fold_leaky
        if k:
            per.append((i, k, values[-1]))
    twice = [u for u, c in Counter(u.id for u in kept).items() if c > 1]
    if twice:
        raise EvaluationError(f"{name}: {len(twice)} utterance(s) are in the test part of several folds, e.g. {twice[0]}")
    if not kept:
        raise EvaluationError(f"{name}: no test utterances")
    return Outputs("test", leaky, kept, np.concatenate(values), skipped, folds, per, "pooled out-of-fold predictions")


# ------------------------------------------------------------------------------------------------ metrics


def _metrics(
    ctx: _Context,
    name: str,
    out: Outputs,
    truth: dict[str, tuple[float, ...]],
    unrated: dict[str, int],
    has_ratings: bool,
) -> dict[str, Any]:
    from emoshift.evaluation.regression import evaluate_regression

    info, targets = ctx.info, list(ctx.info["targets"])
    rows = [i for i, u in enumerate(out.kept) if u.id in truth]
    if rows:
        metrics = evaluate_regression(
            {t: [truth[out.kept[i].id][j] for i in rows] for j, t in enumerate(targets)},
            {t: out.values[rows, j].tolist() for j, t in enumerate(targets)},
            [out.kept[i].speaker for i in rows],
            seed=ctx.cfg.evaluation.seed,
            n_resamples=ctx.cfg.evaluation.n_bootstrap,
        )
        metrics["ratings"] = True
    else:
        reason = (f"{name} has no {'/'.join(targets)} ratings" if not has_ratings
                  else f"no utterance of {name} is rated for every target")
        metrics = {"task": "dimensional", "targets": targets, "n": 0, "ccc": None,
                   "per_target": {t: None for t in targets}, "ci95": None, "ci95_reason": reason, "ratings": False}
    metrics.update(
        {
            "leaky": out.leaky,
            "corpus": name,
            "split": out.part,
            "speakers": len({out.kept[i].speaker for i in rows}),
            "predicted": len(out.kept),
            "model": info["model"],
            "train_corpora": info.get("train_corpora", []),
            "target_range": list(info["target_range"]),
            "unrated": unrated,
            "skipped": [{"path": k.path, "reason": k.reason} for k in out.skipped],
            "distill_teacher": info.get("distill_teacher"),
        }
    )
    if isinstance(ctx.model, Ensemble):
        scores = [_fold_score(i, utts, v, truth, targets) for i, utts, v in out.member_values]
        metrics.update({"scored_by": out.scored_by, **fold_summary([s for s in scores if s is not None], targets)})
    return metrics


def _fold_score(
    fold: int, utts: list[Utterance], values: np.ndarray, truth: dict[str, tuple[float, ...]], targets: list[str]
) -> dict[str, Any] | None:
    from emoshift.evaluation.regression import regression_metrics

    rows = [i for i, u in enumerate(utts) if u.id in truth]
    if not rows:
        return None
    per = {t: regression_metrics([truth[utts[i].id][j] for i in rows], values[rows, j].tolist())["ccc"]
           for j, t in enumerate(targets)}
    known = [v for v in per.values() if v is not None]
    return {"fold": fold, "n": len(rows), "speakers": len({utts[i].speaker for i in rows}),
            "ccc": float(np.mean(known)) if len(known) == len(per) else None, **{f"{t}_ccc": v for t, v in per.items()}}


def fold_summary(scores: list[dict[str, Any]], targets: list[str]) -> dict[str, Any]:
    """``folds``, ``fold_mean`` and ``fold_sd`` (ddof 1; null below two folds) of the folds' CCCs; a fold whose
    CCC is undefined (constant outputs and ratings) is left out of that key's mean and sd."""
    keys = ["ccc", *[f"{t}_ccc" for t in targets]]
    values = {k: np.array([s[k] for s in scores if s.get(k) is not None], dtype=np.float64) for k in keys}
    return {
        "folds": scores,
        "fold_mean": {k: float(v.mean()) if v.size else None for k, v in values.items()},
        "fold_sd": {k: float(v.std(ddof=1)) if v.size >= 2 else None for k, v in values.items()}
        if len(scores) >= 2 else None,
    }


# ------------------------------------------------------------------------------------------------ files


def _write_predictions(
    run: RunDir, name: str, out: Outputs, truth: dict[str, tuple[float, ...]], targets: list[str]
) -> None:
    cols = ["id", "path", "corpus", "speaker", "gender"]
    if out.fold is not None:
        cols.append("fold")
    for t in targets:
        cols += [f"true_{t}", f"pred_{t}"]
    rows = []
    for i, u in enumerate(out.kept):
        row: dict[str, Any] = {"id": u.id, "path": u.path, "corpus": u.corpus, "speaker": u.speaker,
                               "gender": u.gender or ""}
        if out.fold is not None:
            row["fold"] = out.fold[i]
        true = truth.get(u.id)
        for j, t in enumerate(targets):
            row[f"true_{t}"] = "" if true is None else f"{true[j]:.6f}"
            row[f"pred_{t}"] = f"{float(out.values[i, j]):.6f}"
        rows.append(row)
    atomic_write_csv(run.predictions(name), cols, rows)
