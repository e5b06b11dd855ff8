"""Dimensional-emotion metrics: CCC, Pearson's r and MAE per target, with speaker-bootstrap intervals.

For arousal, valence and dominance the standard score is Lin's concordance correlation coefficient

    CCC = 2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))^2)

with population (ddof 0) moments, as in the AVEC challenges and audEERING's papers. It is 1 only when the
predictions equal the truth, 0 for predictions uncorrelated with it (a constant prediction included), and it
punishes a shift or a wrong scale that Pearson's r forgives. ``pearson`` equals ``scipy.stats.pearsonr`` and
``mae`` scikit-learn's ``mean_absolute_error`` (the tests check both).

Intervals resample *speakers* with replacement, as the classification metrics do (see
:mod:`emoshift.evaluation.metrics`). Every metric here is a function of seven sums (n, sum t, sum p, sum t^2,
sum p^2, sum tp, sum |t - p|), so one row of sums per speaker is computed once and each resample's sums are a
weighted sum of those rows: 1,000 resamples are one matrix product, for every target at once. All targets use
the same resampled speakers, so the interval of the mean CCC is coherent with the per-target ones. Below
:data:`~emoshift.evaluation.metrics.MIN_CI_SPEAKERS` speakers there is no interval (``None``) and
``ci95_reason`` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from emoshift.core.task import DIMENSIONAL
from emoshift.evaluation.metrics import (
    MIN_CI_SPEAKERS,
    PredictionsError,
    check_resampling,
    ci_reason,
    encode_groups,
    percentile,
    speaker_draws,
)

TARGETS: tuple[str, ...] = ("arousal", "valence", "dominance")
REGRESSION_METRICS: tuple[str, ...] = ("ccc", "pearson", "mae")


# --------------------------------------------------------------------------------------------------------
# Sufficient statistics
# --------------------------------------------------------------------------------------------------------


def _vectors(
    y_true: ArrayLike, y_pred: ArrayLike, what: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    name = f"{what}: " if what else ""
    if t.shape != p.shape:
        raise PredictionsError(f"{name}{t.size} true values but {p.size} predictions")
    if t.size == 0:
        raise PredictionsError(f"{name}no values to score")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise PredictionsError(f"{name}true values and predictions must be finite numbers")
    return t, p


def regression_sums(t: np.ndarray, p: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """(G, 7) per-group sums: n, sum t, sum p, sum t^2, sum p^2, sum tp, sum |t - p|."""
    cols = (np.ones_like(t), t, p, t * t, p * p, t * p, np.abs(t - p))
    return np.stack([np.bincount(groups, weights=c, minlength=n_groups) for c in cols], axis=1)


def regression_from_sums(s: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics from (..., 7) sums; NaN where undefined (no values, or Pearson with a constant side)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = s[..., 0]
        mt, mp = s[..., 1] / n, s[..., 2] / n
        vt = np.maximum(s[..., 3] / n - mt * mt, 0.0)
        vp = np.maximum(s[..., 4] / n - mp * mp, 0.0)
        cov = s[..., 5] / n - mt * mp
        ccc = 2 * cov / (vt + vp + (mt - mp) ** 2)
        pearson = cov / np.sqrt(vt * vp)
        mae = s[..., 6] / n
    return {"ccc": ccc, "pearson": pearson, "mae": mae}


def _number(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# --------------------------------------------------------------------------------------------------------
# Point metrics and intervals for one target
# --------------------------------------------------------------------------------------------------------


def ccc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Lin's concordance correlation coefficient (population moments); NaN when both sides are constant
    and equal (0/0)."""
    t, p = _vectors(y_true, y_pred)
    return float(regression_from_sums(regression_sums(t, p, np.zeros(t.size, dtype=np.int64), 1)[0])["ccc"])


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, Any]:
    """``{"ccc", "pearson", "mae", "n"}``; a metric that is undefined on these values is None."""
    t, p = _vectors(y_true, y_pred)
    m = regression_from_sums(regression_sums(t, p, np.zeros(t.size, dtype=np.int64), 1)[0])
    return {**{k: _number(float(v)) for k, v in m.items()}, "n": int(t.size)}


def resampled_metrics(per_speaker: np.ndarray, n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """(S, ..., 7) per-speaker sums -> metrics of each resample, arrays of shape (R, ...)."""
    s = per_speaker.shape[0]
    weights = speaker_draws(s, n_resamples, np.random.default_rng(seed))  # (R, S)
    flat = per_speaker.reshape(s, -1)  # (S, ...*7)
    resampled = (weights @ flat).reshape((n_resamples, *per_speaker.shape[1:]))  # (R, ..., 7)
    return regression_from_sums(resampled)


def regression_bootstrap_ci(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    speakers: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    min_speakers: int = MIN_CI_SPEAKERS,
) -> dict[str, list[float] | None]:
    """Percentile speaker-bootstrap interval of ccc, pearson and mae: ``{"ccc": [lo, hi], ...}``.

    With fewer than ``min_speakers`` speakers every interval is None (see :func:`ci_reason`).
    """
    check_resampling(n_resamples, alpha)
    t, p = _vectors(y_true, y_pred)
    if len(speakers) != t.size:
        raise PredictionsError(f"speakers has {len(speakers)} items but there are {t.size} values")
    g, names = encode_groups(speakers)
    if len(names) < min_speakers:
        return {m: None for m in REGRESSION_METRICS}
    values = resampled_metrics(regression_sums(t, p, g, len(names)), n_resamples, seed)
    return {m: percentile(values[m], alpha) for m in REGRESSION_METRICS}


# --------------------------------------------------------------------------------------------------------
# The metrics JSON content for a dimensional run
# --------------------------------------------------------------------------------------------------------


def evaluate_regression(
    y_true: Mapping[str, ArrayLike],
    y_pred: Mapping[str, ArrayLike],
    speakers: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    min_speakers: int = MIN_CI_SPEAKERS,
) -> dict[str, Any]:
    """Metrics of every target, and their mean CCC, with speaker-bootstrap intervals.

    ``y_true`` and ``y_pred`` map a target name (``arousal``...) to values in the same order as ``speakers``.
    Returns::

        {"task": <the dimensional task's name>, "targets": [...], "n": N, "ccc": mean CCC over targets,
         "per_target": {"arousal": {"ccc": .., "pearson": .., "mae": .., "ci95": {"ccc": [lo, hi], ...} | None}},
         "ci95": {"ccc": [lo, hi]} | None, "ci95_reason": None | "2 test speakers: ..."}
    """
    targets = list(y_true)
    if not targets:
        raise PredictionsError("no dimensional targets to score")
    missing = [t for t in targets if t not in y_pred]
    if missing:
        raise PredictionsError(f"no predictions for target(s) {missing}")
    check_resampling(n_resamples, alpha)
    pairs = {k: _vectors(y_true[k], y_pred[k], k) for k in targets}
    n = next(iter(pairs.values()))[0].size
    if any(t.size != n for t, _ in pairs.values()) or len(speakers) != n:
        raise PredictionsError(f"targets and speakers must have the same length ({n} values)")
    g, names = encode_groups(speakers)
    sums = np.stack([regression_sums(t, p, g, len(names)) for t, p in pairs.values()], axis=1)  # (S, T, 7)
    point = regression_from_sums(sums.sum(axis=0))  # each (T,)
    reason = ci_reason(len(names), min_speakers)
    boot = None if reason else resampled_metrics(sums, n_resamples, seed)  # each (R, T)
    per_target: dict[str, Any] = {}
    for j, name in enumerate(targets):
        entry: dict[str, Any] = {m: _number(point[m][j]) for m in REGRESSION_METRICS}
        entry["ci95"] = (
            None if boot is None else {m: percentile(boot[m][:, j], alpha) for m in REGRESSION_METRICS}
        )
        per_target[name] = entry
    return {
        "task": DIMENSIONAL.name,
        "targets": targets,
        "n": int(n),
        "ccc": _number(float(np.mean(point["ccc"]))),
        "per_target": per_target,
        "ci95": None if boot is None else {"ccc": percentile(boot["ccc"].mean(axis=1), alpha)},
        "ci95_reason": reason,
    }


def paired_bootstrap_ccc_diff(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    speakers: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    min_speakers: int = MIN_CI_SPEAKERS,
) -> dict[str, Any]:
    """``CCC(A) - CCC(B)`` on the same utterances with a paired speaker-bootstrap interval.

    Same shape as :func:`emoshift.evaluation.metrics.paired_bootstrap_diff`:
    ``{"a", "b", "diff", "ci": [lo, hi] | None, "ci_reason"}``.
    """
    check_resampling(n_resamples, alpha)
    t, pa = _vectors(y_true, pred_a, "model A")
    _, pb = _vectors(y_true, pred_b, "model B")
    if pa.size != pb.size or len(speakers) != t.size:
        raise PredictionsError(f"both models and the speakers must cover the same {t.size} utterances")
    g, names = encode_groups(speakers)
    sums = np.stack([regression_sums(t, pa, g, len(names)), regression_sums(t, pb, g, len(names))], axis=1)  # (S, 2, 7)
    point = regression_from_sums(sums.sum(axis=0))["ccc"]
    a, b = float(point[0]), float(point[1])
    reason = ci_reason(len(names), min_speakers)
    if reason:
        return {"a": a, "b": b, "diff": a - b, "ci": None, "ci_reason": reason}
    boot = resampled_metrics(sums, n_resamples, seed)["ccc"]  # (R, 2)
    return {
        "a": a,
        "b": b,
        "diff": a - b,
        "ci": percentile(boot[:, 0] - boot[:, 1], alpha),
        "ci_reason": None,
    }
