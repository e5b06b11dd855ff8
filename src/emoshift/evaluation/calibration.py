"""Calibration and abstention of a categorical model: are its probabilities honest, and when should it not answer?

Measured on the class probabilities ``(N, K)`` of the utterances a run scores (``RUN/predictions/<corpus>.csv``,
``p_<label>`` columns) and their true classes:

- ``ece`` (expected calibration error, top-label): the confidence of the predicted class put in
  :data:`N_BINS` (15) equal-width bins ``(0, 1/15], (1/15, 2/15], ... (14/15, 1]``;
  ``ece = sum_b (n_b / N) |accuracy_b - mean confidence_b|`` over the non-empty bins (Guo et al. 2017);
- ``mce`` (maximum calibration error): the largest ``|accuracy_b - mean confidence_b|`` over non-empty bins;
- ``brier``: the multi-class Brier score, ``mean_i sum_k (p_ik - y_ik)^2`` with ``y`` one-hot: the squared
  error *summed over the classes* (Brier's original convention), so it runs from 0 (perfect) to 2 (all the
  probability on a wrong class); divide by K for the per-class mean some libraries print;
- ``nll``: the mean negative log-likelihood of the true class, ``-mean_i log p_i,true`` (natural log; a
  probability below :data:`EPS` counts as EPS, so a zero probability gives a large, finite loss).

Each has a percentile speaker-bootstrap interval: per speaker the sufficient statistics (per bin: count, summed
confidence, summed correctness; summed Brier and NLL) are computed once, and each resample is a weighted sum of
them. (Accuracy and UAR now use the delete-one-speaker jackknife of :mod:`emoshift.evaluation.intervals`, which
works on confusion matrices; moving these four to a jackknife of the same statistics is a follow-up.)

Temperature scaling (``evaluation.calibrate: temperature``): one scalar ``T > 0`` divides the logits before the
softmax; it is fitted by minimising the NLL on the run's *validation* speakers (:func:`fit_temperature`, scipy on
``log T``), never on a test speaker. It cannot change the predicted class, only the confidence.

Abstention: a prediction whose top probability is below ``min_confidence`` is answered ``uncertain``
(:func:`confident`). The risk-coverage curve (:func:`risk_coverage`) is accuracy and UAR of the answered
utterances against the share answered, as the threshold rises; :func:`threshold_for_accuracy` is the lowest
threshold whose answered utterances reach a target accuracy (the most coverage that keeps it).

numpy and scipy only: the ONNX serving path (no torch) uses :func:`confident`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

N_BINS = 15
EPS = 1e-12
CALIBRATION_METRICS: tuple[str, ...] = ("ece", "mce", "brier", "nll")
CALIBRATE = ("none", "temperature")  # evaluation.calibrate
LOG_T_BOUNDS = (-5.0, 5.0)  # T in [e^-5, e^5] ~ [0.007, 148]: far past any useful temperature either way


# --------------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------------


def _checked(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if probs.ndim != 2 or y.shape != (probs.shape[0],):
        raise ValueError(f"probabilities must be (N, K) and labels (N,), got {probs.shape} and {y.shape}")
    if probs.shape[0] == 0:
        raise ValueError("no predictions to measure")
    if y.min() < 0 or y.max() >= probs.shape[1]:
        raise ValueError(f"label indices must lie in [0, {probs.shape[1]})")
    return probs, y


def bin_of(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """The bin ``b`` of each confidence: ``(b/n_bins, (b+1)/n_bins]``; a confidence of 0 goes to bin 0."""
    return np.clip(np.ceil(np.asarray(confidence) * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def _stats(probs: np.ndarray, y: np.ndarray, groups: np.ndarray, n_groups: int, n_bins: int) -> np.ndarray:
    """Per group: ``[count_b..., conf_b..., correct_b..., brier_sum, nll_sum]``, shape (G, 3B + 2)."""
    conf = probs.max(axis=1)  # (N,)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    onehot = np.eye(probs.shape[1])[y]
    brier = ((probs - onehot) ** 2).sum(axis=1)
    nll = -np.log(np.maximum(probs[np.arange(len(y)), y], EPS))
    flat = groups * n_bins + bin_of(conf, n_bins)
    size = n_groups * n_bins
    count = np.bincount(flat, minlength=size).reshape(n_groups, n_bins)
    conf_sum = np.bincount(flat, weights=conf, minlength=size).reshape(n_groups, n_bins)
    correct_sum = np.bincount(flat, weights=correct, minlength=size).reshape(n_groups, n_bins)
    brier_sum = np.bincount(groups, weights=brier, minlength=n_groups)[:, None]
    nll_sum = np.bincount(groups, weights=nll, minlength=n_groups)[:, None]
    return np.concatenate([count, conf_sum, correct_sum, brier_sum, nll_sum], axis=1)


def _from_stats(stats: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    """(..., 3B + 2) summed statistics -> ece, mce, brier, nll, each (...)."""
    count, conf, correct = stats[..., :n_bins], stats[..., n_bins : 2 * n_bins], stats[..., 2 * n_bins : 3 * n_bins]
    n = count.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(correct - conf)  # n_b |acc_b - conf_b|
        ece = gap.sum(axis=-1) / n
        mce = np.where(count > 0, gap / np.where(count > 0, count, 1), -np.inf).max(axis=-1)
        return {"ece": ece, "mce": mce, "brier": stats[..., -2] / n, "nll": stats[..., -1] / n}


def calibration_scores(probs: np.ndarray, y: np.ndarray, *, n_bins: int = N_BINS) -> dict[str, float]:
    """``{"ece", "mce", "brier", "nll"}`` of probabilities ``(N, K)`` against true class indices ``(N,)``."""
    probs, y = _checked(probs, y)
    stats = _stats(probs, y, np.zeros(len(y), dtype=np.int64), 1, n_bins)[0]
    return {k: float(v) for k, v in _from_stats(stats, n_bins).items()}


def calibration_bootstrap(
    probs: np.ndarray,
    y: np.ndarray,
    speakers: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    n_bins: int = N_BINS,
) -> dict[str, list[float] | None]:
    """Percentile interval of each calibration metric, resampling speakers with replacement (as
    :func:`emoshift.evaluation.metrics.bootstrap_ci` does; the caller checks there are enough speakers)."""
    from emoshift.evaluation.metrics import check_resampling, encode_groups, percentile, speaker_draws

    check_resampling(n_resamples, alpha)
    probs, y = _checked(probs, y)
    g, names = encode_groups(list(speakers))
    per_speaker = _stats(probs, y, g, len(names), n_bins)  # (S, 3B + 2)
    weights = speaker_draws(len(names), n_resamples, np.random.default_rng(seed))  # (R, S)
    values = _from_stats(weights @ per_speaker, n_bins)  # each (R,)
    return {k: percentile(values[k], alpha) for k in CALIBRATION_METRICS}


def reliability(probs: np.ndarray, y: np.ndarray, *, n_bins: int = N_BINS) -> dict[str, np.ndarray]:
    """Per bin: ``count``, ``confidence`` (mean) and ``accuracy`` (NaN in an empty bin): the reliability diagram."""
    probs, y = _checked(probs, y)
    stats = _stats(probs, y, np.zeros(len(y), dtype=np.int64), 1, n_bins)[0]
    count = stats[:n_bins]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"count": count, "confidence": stats[n_bins : 2 * n_bins] / count,
                "accuracy": stats[2 * n_bins : 3 * n_bins] / count}


# --------------------------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------------------------


def tempered_nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean NLL of ``softmax(logits / temperature)`` for true class indices ``y``."""
    from scipy.special import log_softmax

    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on ``(logits (N, K), y (N,))``
    (:func:`temperature_search`'s; 1.0 where it finds none)."""
    return temperature_search(logits, y)[0]


def temperature_search(logits: np.ndarray, y: np.ndarray) -> tuple[float, str | None]:
    """(T, why T is 1.0 or None): a bounded scalar search over ``log T`` (scipy's Brent; the NLL is smooth and
    unimodal in ``log T``). ``logits`` may be log-probabilities (the acoustic family's outputs): softmax of
    them gives the probabilities back, so ``T`` acts on them the same way.

    Where the optimum lies at a bound of the search there is no finite one: a validation set the model gets
    entirely right (every clip's top class the true one) has its NLL fall towards 0 as ``T -> 0``, and
    following it would make every later answer a certainty. ``T`` then stays 1.0, and the reason says why; so
    it does when no temperature beats 1.0."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    logits = np.where(np.isfinite(logits), logits, -1e4)  # log(0) of an ensemble: a very small logit
    _checked(logits, y)
    right = float((logits.argmax(axis=1) == np.asarray(y)).mean())
    if right == 1.0:  # the NLL falls towards 0 as T -> 0: no optimum to find
        return 1.0, "no finite optimum (100% of the validation clips are right: the NLL falls as T -> 0): T stays 1"
    best = minimize_scalar(lambda log_t: tempered_nll(logits, y, float(np.exp(log_t))),
                           bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    lo, hi = LOG_T_BOUNDS
    if not lo + 0.01 < best.x < hi - 0.01:
        return 1.0, (f"no finite optimum (the NLL keeps falling towards T = {np.exp(best.x):.3g}; "
                     f"{right:.0%} of the validation clips are right): T stays 1")
    t = float(np.exp(best.x))
    if tempered_nll(logits, y, t) > tempered_nll(logits, y, 1.0):
        return 1.0, "no temperature lowers the validation NLL: T stays 1"
    return t, None


# --------------------------------------------------------------------------------------------------------
# Abstention
# --------------------------------------------------------------------------------------------------------


def confident(probabilities: Sequence[float] | np.ndarray | dict[str, float], min_confidence: float | None) -> bool:
    """Whether a prediction is answered: its top probability is at least ``min_confidence`` (None: always)."""
    if min_confidence is None:
        return True
    values = list(probabilities.values()) if isinstance(probabilities, dict) else list(probabilities)
    return bool(values) and max(values) >= min_confidence


def check_min_confidence(value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"min_confidence must lie in [0, 1], got {value:g}")


def risk_coverage(probs: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Answering only the utterances whose top probability is at least each distinct confidence, from the
    lowest (everything answered) up: ``threshold``, ``coverage`` (share answered), ``accuracy`` and ``uar``
    (mean recall over the true classes among the answered) of the answered utterances, each ``(M,)``."""
    probs, y = _checked(probs, y)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    thresholds = np.unique(conf)  # ascending
    order = np.argsort(conf, kind="stable")
    conf_sorted, correct_sorted, y_sorted = conf[order], correct[order], y[order]
    start = np.searchsorted(conf_sorted, thresholds, side="left")  # answered = order[start:]
    n = len(y)
    k = probs.shape[1]
    # suffix sums per class: hits and supports of the answered utterances at each start
    onehot = np.eye(k)[y_sorted]  # (N, K)
    hits = np.vstack([np.cumsum((onehot * correct_sorted[:, None])[::-1], axis=0)[::-1], np.zeros((1, k))])
    support = np.vstack([np.cumsum(onehot[::-1], axis=0)[::-1], np.zeros((1, k))])
    h, s = hits[start], support[start]  # (M, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(s > 0, h / np.where(s > 0, s, 1), 0.0)
        uar = recall.sum(axis=1) / (s > 0).sum(axis=1)
    answered = n - start
    return {"threshold": thresholds, "coverage": answered / n, "accuracy": h.sum(axis=1) / answered, "uar": uar}


def threshold_for_accuracy(probs: np.ndarray, y: np.ndarray, target: float) -> float | None:
    """The lowest confidence threshold at which the answered utterances reach ``target`` accuracy (the most
    coverage that keeps it); None when no threshold does."""
    curve = risk_coverage(probs, y)
    ok = np.flatnonzero(curve["accuracy"] >= target)
    return float(curve["threshold"][ok[0]]) if ok.size else None


def answered_at(probs: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    """What a threshold gives: ``answered`` (count), ``coverage``, ``accuracy`` and ``uar`` of the answered
    (None when nothing is answered)."""
    from emoshift.evaluation.metrics import batch_metrics, confusion_stack

    probs, y = _checked(probs, y)
    keep = probs.max(axis=1) >= threshold
    n_kept = int(keep.sum())
    out: dict[str, Any] = {"answered": n_kept, "coverage": n_kept / len(y), "accuracy": None, "uar": None}
    if n_kept:
        t, p = y[keep], probs[keep].argmax(axis=1)
        m = batch_metrics(confusion_stack(t, p, np.zeros_like(t), probs.shape[1], 1)[0])
        out.update(accuracy=float(m["accuracy"]), uar=float(m["uar"]))
    return out
