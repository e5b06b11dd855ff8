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
from typing import TYPE_CHECKING, Any

import numpy as np

from emoshift.core.io import atomic_write_csv, atomic_write_json
from emoshift.core.rundir import RunDir
from emoshift.corpora.base import Utterance
from emoshift.data.texts import overlap_mark
from emoshift.evaluation.scoring import Scored, Scorer, fold_summary

if TYPE_CHECKING:
    from emoshift.corpora import Scan


def evaluate_dimensional(scorer: Scorer, name: str, root: str, sc: Scan) -> dict[str, Any]:
    """Score corpus ``name`` (scanned as ``sc`` from ``root``) with a dimensional run; returns its metrics."""
    from emoshift.data.targets import native_scale, rated

    info = scorer.info
    targets, target_range = list(info.targets or []), tuple(info.target_range or ())
    out = scorer.score(name, sc, list, f"{name}: no test utterances")
    # as the predictions CSV holds them: the metrics are those of the CSV
    out.values = np.round(np.asarray(out.values, dtype=np.float64), 6)
    scale = native_scale(name, root, scorer.cfg.data.manifest.scale)
    truth, unrated = rated(out.kept, targets, scale, target_range) if scale else ({}, Counter())  # type: ignore[arg-type]
    truth = {k: tuple(round(v, 6) for v in vs) for k, vs in truth.items()}
    metrics = _metrics(scorer, name, out, truth, dict(unrated), scale is not None)
    _write_predictions(scorer.run, name, out, truth, targets)
    rows = [i for i, u in enumerate(out.kept) if u.id in truth]
    if rows and scorer.figures:
        true = {t: [truth[out.kept[i].id][j] for i in rows] for j, t in enumerate(targets)}
        pred = {t: out.values[rows, j].tolist() for j, t in enumerate(targets)}
        scores = {t: (metrics["per_target"][t] or {}).get("ccc") for t in targets}
        from emoshift.evaluation.plots import plot_scatter

        marks = "".join(f", {m}" for m in ("LEAKY" if out.leaky else "", overlap_mark(out.text_overlap)) if m)
        title = f"{info.model} on {name} ({out.part}{marks}): CCC {_f(metrics['ccc'])}"
        plot_scatter(true, pred, scorer.run.scatter_plot(name), value_range=target_range, scores=scores, title=title)  # type: ignore[arg-type]
    atomic_write_json(scorer.run.metrics(name), metrics)
    return metrics


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------------------------------------ metrics


def _metrics(
    scorer: Scorer,
    name: str,
    out: Scored,
    truth: dict[str, tuple[float, ...]],
    unrated: dict[str, int],
    has_ratings: bool,
) -> dict[str, Any]:
    from emoshift.evaluation.regression import evaluate_regression

    info, targets = scorer.info, list(scorer.info.targets or [])
    rows = [i for i, u in enumerate(out.kept) if u.id in truth]
    if rows:
        metrics = evaluate_regression(
            {t: [truth[out.kept[i].id][j] for i in rows] for j, t in enumerate(targets)},
            {t: out.values[rows, j].tolist() for j, t in enumerate(targets)},
            [out.kept[i].speaker for i in rows],
            seed=scorer.cfg.evaluation.seed,
            n_resamples=scorer.cfg.evaluation.n_bootstrap,
        )
        metrics["ratings"] = True
    else:
        reason = (f"{name} has no {'/'.join(targets)} ratings" if not has_ratings
                  else f"no utterance of {name} is rated for every target")
        metrics = {"task": info.task_kind.name, "targets": targets, "n": 0, "ccc": None,
                   "per_target": {t: None for t in targets}, "ci95": None, "ci95_reason": reason, "ratings": False}
    metrics.update(
        {
            "leaky": out.leaky,
            "training_audio": out.training_audio,
            "text_overlap": out.text_overlap,
            "corpus": name,
            "split": out.part,
            "speakers": len({out.kept[i].speaker for i in rows}),
            "predicted": len(out.kept),
            "model": info.model,
            "train_corpora": info.train_corpora,
            "target_range": list(info.target_range or []),
            "unrated": unrated,
            "skipped": [{"path": k.path, "reason": k.reason} for k in out.skipped],
            "distill_teacher": info.distill_teacher,
        }
    )
    if scorer.is_ensemble:
        scores = [_fold_score(i, utts, v, truth, targets) for i, utts, v in out.members]
        keys = ["ccc", *[f"{t}_ccc" for t in targets]]
        metrics.update({"scored_by": out.scored_by, **fold_summary([s for s in scores if s is not None], keys)})
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


# ------------------------------------------------------------------------------------------------ files


def _write_predictions(
    run: RunDir, name: str, out: Scored, truth: dict[str, tuple[float, ...]], targets: list[str]
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
