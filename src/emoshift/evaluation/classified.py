"""What a categorical run's evaluation writes for a corpus (scored by :mod:`emoshift.evaluation.scoring`):

- ``RUN/metrics/<corpus>.json``: accuracy, uar, macro_f1, n, labels, per_class_recall, confusion, ci95, leaky,
  ``text_overlap`` (the share of test utterances saying a text the run trained on; null where texts are unknown)
  and the context keys (``corpus``, ``split``, ``speakers``, ``model``, ``train_corpora``, ``excluded_labels``,
  ``skipped``, ``distill_teacher``); a fold run adds ``scored_by``, ``folds``, ``fold_mean``, ``fold_sd``
  (each fold's ``fold, n, speakers, accuracy, uar, macro_f1``); one run is one training seed, so the metrics say
  ``"seeds": 1`` and ``seed_sd`` null (a repeated-training run pools its seeds: :mod:`emoshift.evaluation.seeded`);
  a corpus with raters' votes adds ``agreement`` (:mod:`emoshift.evaluation.agreement`: cross-entropy and
  Jensen-Shannon distance to the raters' distribution, UAR on the high- and low-agreement halves);
- ``RUN/predictions/<corpus>.csv``: ``id,path,corpus,speaker,gender,true,pred,p_<label>...[,fold],seed``;
- ``RUN/plots/confusion_<corpus>.png``;
- calibration: ``ece``, ``mce``, ``brier``, ``nll`` (with intervals in ``ci95``), ``calibration`` and, once every
  corpus is scored, ``abstention``; ``RUN/plots/reliability_<corpus>.png`` and ``risk_coverage_<corpus>.png``
  (:mod:`emoshift.evaluation.confidence`).

Utterances whose label the model does not know are left out and counted (``excluded_labels``).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from emoshift.core.io import atomic_write_csv, atomic_write_json
from emoshift.corpora.base import Utterance
from emoshift.data.texts import overlap_mark
from emoshift.evaluation.agreement import KEY as AGREEMENT
from emoshift.evaluation.agreement import agreement_scores
from emoshift.evaluation.scoring import Scored, Scorer, fold_summary
from emoshift.evaluation.seeded import one_seed

if TYPE_CHECKING:
    from emoshift.corpora import Scan

FOLD_METRICS: list[str] = ["accuracy", "uar", "macro_f1"]


def evaluate_categorical(scorer: Scorer, name: str, root: str, sc: Scan) -> dict[str, Any]:
    """Score corpus ``name`` with a categorical run and write its files; returns its metrics."""
    labels = scorer.info.labels
    outside: Counter[str] = Counter()

    def known(utts: list[Utterance]) -> list[Utterance]:  # counts what it leaves out
        outside.update(u.emotion for u in utts if u.emotion not in labels)
        return [u for u in utts if u.emotion in labels]

    empty = f"{name}: no test utterances with labels the model knows ({', '.join(labels)})"
    return _write(scorer, name, scorer.score(name, sc, known, empty), outside)


def fold_score(fold: int, utts: list[Utterance], probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    from emoshift.evaluation.metrics import classification_metrics

    m = classification_metrics([u.emotion for u in utts], [labels[i] for i in probs.argmax(axis=1)], labels)
    return {"fold": fold, "n": m["n"], "speakers": len({u.speaker for u in utts}), **{k: m[k] for k in FOLD_METRICS},
            "collapsed": m["collapsed"]}


def _write(scorer: Scorer, name: str, s: Scored, outside: Counter[str]) -> dict[str, Any]:
    from emoshift.evaluation.confidence import confidence_metrics, plot_confidence
    from emoshift.evaluation.metrics import evaluate_predictions
    from emoshift.evaluation.plots import plot_confusion

    run, info, labels = scorer.run, scorer.info, scorer.info.labels
    pred = [labels[i] for i in s.values.argmax(axis=1)]
    metrics = evaluate_predictions(
        [u.emotion for u in s.kept],
        pred,
        [u.speaker for u in s.kept],
        labels,
        seed=scorer.cfg.evaluation.seed,
        n_resamples=scorer.cfg.evaluation.n_bootstrap,
    )
    metrics.update(
        {
            "leaky": s.leaky,
            "training_audio": s.training_audio,
            "text_overlap": s.text_overlap,
            "corpus": name,
            "split": s.part,
            "speakers": len({u.speaker for u in s.kept}),
            "model": info.model,
            "train_corpora": info.train_corpora,
            "excluded_labels": dict(outside),
            "skipped": [{"path": k.path, "reason": k.reason} for k in s.skipped],
            "distill_teacher": info.distill_teacher,
            **one_seed(metrics["uar"]),
        }
    )
    agreement = agreement_scores(s.kept, s.values, labels)  # None: no raters' votes on this corpus
    if agreement is not None:
        metrics[AGREEMENT] = agreement
    if scorer.is_ensemble:
        scores = [fold_score(i, utts, probs, labels) for i, utts, probs in s.members]
        metrics.update({"scored_by": s.scored_by, **fold_summary(scores, FOLD_METRICS)})
    # calibration (ece, mce, brier, nll with their intervals): emoshift.evaluation.confidence
    y = np.array([labels.index(u.emotion) for u in s.kept], dtype=np.int64)
    confidence_metrics(s.values, y, [u.speaker for u in s.kept], metrics, seed=scorer.cfg.evaluation.seed,
                       n_resamples=scorer.cfg.evaluation.n_bootstrap, temperature=info.temperature,
                       uncalibrated=s.uncalibrated)
    atomic_write_json(run.metrics(name), metrics)
    cols = ["id", "path", "corpus", "speaker", "gender", "true", "pred", *[f"p_{lab}" for lab in labels]]
    if s.fold is not None:
        cols.append("fold")
    cols.append("seed")
    seed = scorer.cfg.training.seed
    rows = []
    for i, (u, p, probs_u) in enumerate(zip(s.kept, pred, s.values, strict=True)):
        row = {"id": u.id, "path": u.path, "corpus": u.corpus, "speaker": u.speaker, "gender": u.gender or "",
               "true": u.emotion, "pred": p}
        row.update({f"p_{lab}": f"{float(v):.6f}" for lab, v in zip(labels, probs_u, strict=True)})
        if s.fold is not None:
            row["fold"] = s.fold[i]
        row["seed"] = seed
        rows.append(row)
    atomic_write_csv(run.predictions(name), cols, rows)
    marks = "".join(f", {m}" for m in ("LEAKY" if s.leaky else "", overlap_mark(s.text_overlap)) if m)
    title = f"{info.model} on {name} ({s.part}{marks}): UAR {metrics['uar']:.3f}"
    if metrics["collapsed"]:  # one class for (nearly) every utterance: say so where the eye goes first
        title += f"\nCOLLAPSED: predicts {metrics['collapsed']['label']!r} for {metrics['collapsed']['share']:.0%}"
    if scorer.figures:
        plot_confusion(metrics["confusion"], labels, run.confusion_plot(name), title=title)
        plot_confidence(run, name, s.values, y, metrics, s.uncalibrated)
    return metrics
