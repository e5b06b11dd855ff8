"""What a categorical run's evaluation writes about its confidence (measures: :mod:`emoshift.evaluation.calibration`).

Per corpus, into ``RUN/metrics/<corpus>.json``:

- ``ece``, ``mce``, ``brier``, ``nll`` and their speaker-bootstrap intervals in ``ci95`` (beside accuracy and
  UAR; null with too few speakers, as theirs);
- ``calibration``: ``{"bins": 15, "brier": "<its convention>", "temperature": T or null, "uncalibrated":
  {"ece", "mce", "brier", "nll"} or null}``: a run calibrated with ``evaluation.calibrate: temperature`` also gives
  the scores of the network's own probabilities, so the effect of the temperature is read off one file;
- ``abstention`` (written once every corpus is scored, :func:`state_abstention`): the confidence threshold whose
  answered in-domain test utterances reach ``evaluation.target_accuracy`` (pooled over the run's training
  corpora) and what it gives on this corpus: ``{"target_accuracy", "threshold", "threshold_from",
  "answered", "coverage", "accuracy", "uar"}`` (``threshold`` null, with a ``reason``, when no threshold
  reaches the target or the run has no in-domain predictions).

and ``RUN/plots/reliability_<corpus>.png`` and ``RUN/plots/risk_coverage_<corpus>.png``.

The threshold is read off the in-domain *test* predictions: it describes the test set (how much a model must
leave unanswered to be this accurate on speakers it never heard, and what that costs on another corpus); it is
not tuned on anything the model is then scored by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emoshift.core.io import atomic_write_json, read_json
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir, RunError
from emoshift.evaluation.calibration import (
    CALIBRATION_METRICS,
    N_BINS,
    answered_at,
    calibration_bootstrap,
    calibration_scores,
    threshold_for_accuracy,
)

BRIER_CONVENTION = "sum over classes of the squared error, mean over utterances (0 best, 2 worst)"


def confidence_metrics(
    probs: np.ndarray,
    y: np.ndarray,
    speakers: Sequence[str],
    metrics: dict[str, Any],
    *,
    seed: int,
    n_resamples: int,
    temperature: float | None = None,
    uncalibrated: np.ndarray | None = None,
) -> None:
    """Add the calibration scores (and their intervals, where ``metrics["ci95"]`` has intervals) to ``metrics``."""
    metrics.update(calibration_scores(probs, y))
    if metrics.get("ci95") is not None:
        metrics["ci95"].update(calibration_bootstrap(probs, y, speakers, n_resamples=n_resamples, seed=seed))
    metrics["calibration"] = {
        "bins": N_BINS,
        "brier": BRIER_CONVENTION,
        "temperature": temperature,
        "uncalibrated": calibration_scores(uncalibrated, y) if uncalibrated is not None else None,
    }


def plot_confidence(run: RunDir, name: str, probs: np.ndarray, y: np.ndarray, metrics: dict[str, Any],
                    uncalibrated: np.ndarray | None = None) -> None:
    """``RUN/plots/reliability_<name>.png``."""
    from emoshift.evaluation.calibration_plots import plot_reliability

    title = f"{metrics.get('model', '')} on {name}: ECE {metrics['ece']:.3f}"
    if (before := metrics["calibration"]["uncalibrated"]) is not None:
        t = metrics["calibration"]["temperature"]  # None for a fold ensemble: each member has its own
        title += f" (before temperature scaling {before['ece']:.3f}, " + \
            (f"T = {t:.2f})" if t is not None else "each fold model its own T)")
    plot_reliability(probs, y, run.reliability_plot(name), title=title, uncalibrated=uncalibrated)


def predicted(run: RunDir, corpus: str, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, K), true class indices (N,)) from ``RUN/predictions/<corpus>.csv``."""
    from emoshift.evaluation.metrics import read_predictions

    rows = read_predictions(run.predictions(corpus))
    index = {label: i for i, label in enumerate(labels)}
    rows = [r for r in rows if r["true"] in index]
    probs = np.array([[r[f"p_{label}"] for label in labels] for r in rows], dtype=np.float64).reshape(-1, len(labels))
    return probs, np.array([index[r["true"]] for r in rows], dtype=np.int64)


def state_abstention(
    run: RunDir, info: ModelRecord, target: float, corpora: Sequence[str], *, figures: bool = True
) -> dict[str, Any]:
    """The threshold keeping ``target`` accuracy on the in-domain test predictions, and what it gives on each
    of ``corpora``: written into their metrics JSON (``abstention``), drawn as their risk-coverage plots
    (``figures``); returns the statements by corpus."""
    from emoshift.evaluation.calibration_plots import plot_risk_coverage

    labels = info.labels
    home = [c for c in info.train_corpora if run.predictions(c).is_file() and run.metrics(c).is_file()]
    threshold, reason = None, None
    if home:
        parts = [predicted(run, c, labels) for c in home]
        threshold = threshold_for_accuracy(np.concatenate([p for p, _ in parts]),
                                           np.concatenate([y for _, y in parts]), target)
        if threshold is None:
            reason = f"no confidence threshold reaches {target:.0%} accuracy on the in-domain test utterances"
    else:
        reason = "no in-domain test predictions (the run's training corpora were not scored)"
    out: dict[str, Any] = {}
    for corpus in corpora:
        try:
            metrics = read_json(run.metrics(corpus), RunError)
        except RunError:
            continue
        probs, y = predicted(run, corpus, labels)
        if not len(y):
            continue
        statement: dict[str, Any] = {"target_accuracy": target, "threshold": threshold, "threshold_from": home}
        if threshold is None:
            statement.update(reason=reason, answered=None, coverage=None, accuracy=None, uar=None)
        else:
            statement.update(answered_at(probs, y, threshold))
        metrics["abstention"] = statement
        atomic_write_json(run.metrics(corpus), metrics)
        title = f"{info.model} on {corpus} ({metrics.get('split', '')}): answered clips"
        if threshold is not None:
            title += f"\nthreshold {threshold:.3f} keeps {target:.0%} in-domain accuracy: " \
                     f"{statement['coverage']:.0%} answered here"
        if figures:
            plot_risk_coverage(probs, y, run.risk_coverage_plot(corpus), title=title,
                               marked=statement if threshold is not None else None)
        out[corpus] = statement
    return out


def abstention_text(corpus: str, statement: dict[str, Any]) -> str:
    """One line: ``ravdess: threshold 0.612 (keeps 90% in-domain accuracy) answers 41.7% here, accuracy 90.3%,
    UAR 88.1%``."""
    target = statement["target_accuracy"]
    if statement.get("threshold") is None:
        return f"{corpus}: {statement.get('reason') or 'no threshold'} (target {target:.0%})"
    acc = "–" if statement["accuracy"] is None else f"{100 * statement['accuracy']:.1f}%"
    uar = "–" if statement["uar"] is None else f"{100 * statement['uar']:.1f}%"
    return (f"{corpus}: threshold {statement['threshold']:.3f} (keeps {target:.0%} in-domain accuracy) answers "
            f"{100 * statement['coverage']:.1f}% here, accuracy {acc}, UAR {uar}")


__all__ = ["BRIER_CONVENTION", "CALIBRATION_METRICS", "abstention_text", "confidence_metrics", "plot_confidence",
           "predicted", "state_abstention"]
