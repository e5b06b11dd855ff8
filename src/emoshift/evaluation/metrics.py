"""Classification metrics, speaker-level confidence intervals, and paired / group tests.

Everything is computed from confusion matrices. The point metrics equal scikit-learn's on the same
predictions (the tests check ``accuracy_score``, ``balanced_accuracy_score``, ``f1_score(average="macro")``,
``recall_score`` and ``confusion_matrix``):

- accuracy: correct / n
- uar (unweighted average recall = balanced accuracy): mean recall over the labels present in ``y_true``
- macro_f1: mean F1 over the labels present in ``y_true`` or ``y_pred`` (scikit-learn's default label set)

Utterances of one speaker are not independent (same voice, same sentences), so confidence intervals treat the
*speaker* as the unit: one confusion matrix per speaker, and the interval of one training run is
:func:`emoshift.evaluation.intervals.metric_interval` with one seed (a delete-one-speaker jackknife with t
quantiles; that module says why it replaced the percentile speaker bootstrap, which under-covered at small
speaker counts). It covers the sampling of test speakers only: how training fell out is not measured by one
run.

One or two speakers cannot show speaker-to-speaker variation: an interval from them would be far too narrow
(of zero width with one speaker). Below :data:`MIN_CI_SPEAKERS` speakers no interval is computed; the
interval is ``None`` and :func:`ci_reason` says why, e.g. ``"2 test speakers: too few for a speaker
interval"``.

A model that gives (nearly) every utterance one label has collapsed to that class: its UAR is chance and its
interval is narrow only because every resample scores the same (``16.7 [16.7, 16.7]``). :func:`collapsed`
calls it out when one label takes at least :data:`COLLAPSED_SHARE` (95%) of the predictions while the
utterances hold at least two true labels; the metrics JSON carries it as ``collapsed``
(``{"label": "sad", "share": 1.0}``, or null), and the CLI, the study report and the audit print it.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from emoshift.core.errors import EmoshiftError
from emoshift.evaluation.confusion import METRICS, batch_metrics, confusion_stack
from emoshift.evaluation.intervals import MIN_CI_SPEAKERS, ci_reason, metric_interval, paired_difference

# One predicted label taking at least this share of the utterances (with two or more true labels among them)
# is a collapse to one class. A working six-class model on balanced test sets stays far below it; a share this
# high means the model ignores its input for (nearly) every utterance.
COLLAPSED_SHARE = 0.95


class PredictionsError(EmoshiftError, ValueError):
    """A predictions file or array that cannot be used (message is one line, for the user)."""


# --------------------------------------------------------------------------------------------------------
# Encoding and confusion matrices
# --------------------------------------------------------------------------------------------------------



def with_ci(
    value: float | None,
    ci: Sequence[float | None] | None,
    speakers: int | None = None,
    *,
    number: Callable[[float], str] = lambda v: f"{v:.3f}",
) -> str:
    """The one way a score and its interval are written (reports, audits, model cards, the CLI tables):
    ``0.512 [0.401, 0.620]``; ``0.512 n/a (2 speakers)`` when there is no interval, or only one from fewer than
    MIN_CI_SPEAKERS speakers (never a zero-width ``x [x, x]``); ``0.512 n/a`` when the speakers are unknown;
    "–" for no score. ``number`` writes each figure (a percentage in the study report)."""
    if value is None:
        return "–"
    too_few = speakers is not None and speakers < MIN_CI_SPEAKERS
    if ci and None not in ci and not too_few:
        return f"{number(value)} [{number(ci[0])}, {number(ci[1])}]"  # type: ignore[arg-type]
    if speakers is not None:
        return f"{number(value)} n/a ({speakers} speaker{'' if speakers == 1 else 's'})"
    return f"{number(value)} n/a"

def _encode(values: Sequence[str], labels: Sequence[str], what: str) -> np.ndarray:
    """Label strings -> indices into ``labels`` (int64). Unknown labels are an error, not silently dropped."""
    index = {label: i for i, label in enumerate(labels)}
    try:
        return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    except KeyError as e:
        raise PredictionsError(f"{what} label {e.args[0]!r} is not one of {list(labels)}") from None


def encode_groups(groups: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(groups))
    return _encode(groups, names, "group"), names


def _prepare(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    labels = list(labels)
    if len(set(labels)) != len(labels) or not labels:
        raise PredictionsError(f"labels must be a non-empty list without repeats, got {labels}")
    if len(y_true) != len(y_pred):
        raise PredictionsError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise PredictionsError("no predictions to score")
    return _encode(y_true, labels, "true"), _encode(y_pred, labels, "predicted"), labels


def percentile(values: np.ndarray, alpha: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return [float(lo), float(hi)]


def speaker_draws(n_speakers: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(R, S) how many times each speaker is drawn in each resample (speakers drawn with replacement)."""
    draws = rng.integers(0, n_speakers, size=(n_resamples, n_speakers))
    draws += (np.arange(n_resamples) * n_speakers)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_resamples * n_speakers)
    return counts.reshape(n_resamples, n_speakers).astype(np.float64)


def check_resampling(n_resamples: int, alpha: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def collapsed(confusion: Sequence[Sequence[float]] | np.ndarray, labels: Sequence[str]) -> dict[str, Any] | None:
    """``{"label": "sad", "share": 1.0}`` when one predicted label takes at least :data:`COLLAPSED_SHARE` of
    the utterances of ``confusion`` (rows true, columns predicted) and at least two true labels are present;
    None otherwise (a test set of one true class cannot tell a collapse from a right answer)."""
    conf = np.asarray(confusion, dtype=np.float64)
    if conf.ndim != 2 or conf.size == 0 or conf.sum() <= 0 or int((conf.sum(axis=1) > 0).sum()) < 2:
        return None
    predicted = conf.sum(axis=0)
    top = int(predicted.argmax())
    share = float(predicted[top] / conf.sum())
    return {"label": str(labels[top]), "share": round(share, 4)} if share >= COLLAPSED_SHARE else None


def collapse_text(found: Mapping[str, Any], n: int | None = None) -> str:
    """``predicts 'sad' for all 864 utterances (collapsed to one class: its UAR is chance)``, or ``for 97.2%
    of 864 utterances``, from :func:`collapsed`'s record."""
    share = float(found["share"])
    of = f"{n} utterances" if n else "the utterances"
    much = f"all {of}" if share >= 1.0 else f"{100 * share:.1f}% of {of}"
    return f"predicts {found['label']!r} for {much} (collapsed to one class: its UAR is about chance)"


# --------------------------------------------------------------------------------------------------------
# Point metrics
# --------------------------------------------------------------------------------------------------------


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """accuracy, uar, macro_f1, n, labels, per_class_recall, confusion (rows true, columns predicted) and
    collapsed (:func:`collapsed`: the one class a collapsed model predicts, or None).

    ``per_class_recall[label]`` is None for a label with no true utterances (recall is undefined there).
    """
    t, p, labels = _prepare(y_true, y_pred, labels)
    conf = confusion_stack(t, p, np.zeros_like(t), len(labels), 1)[0]
    m = batch_metrics(conf)
    support = conf.sum(axis=1)
    recall = {
        label: (float(conf[i, i] / support[i]) if support[i] > 0 else None) for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(m["accuracy"]),
        "uar": float(m["uar"]),
        "macro_f1": float(m["macro_f1"]),
        "n": len(t),
        "labels": labels,
        "per_class_recall": recall,
        "confusion": conf.tolist(),
        "collapsed": collapsed(conf, labels),
    }


# --------------------------------------------------------------------------------------------------------
# Bootstrap over speakers
# --------------------------------------------------------------------------------------------------------


def bootstrap_ci(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    speakers: Sequence[str],
    labels: Sequence[str],
    *,
    metrics: Sequence[str] = ("accuracy", "uar"),
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    min_speakers: int = MIN_CI_SPEAKERS,
) -> dict[str, list[float] | None]:
    """The speaker-level ``1 - alpha`` interval per metric of one training run's predictions.

    Returns e.g. ``{"accuracy": [lo, hi], "uar": [lo, hi]}``; ``metrics`` may name accuracy, uar, macro_f1.
    The interval is :func:`~emoshift.evaluation.intervals.metric_interval` with one seed (delete-one-speaker
    jackknife, t quantiles; deterministic: ``n_resamples`` and ``seed`` are kept for the signature and change
    nothing). With fewer than ``min_speakers`` speakers every interval is None (see :func:`ci_reason`).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    check_resampling(n_resamples, alpha)
    t, p, labels = _prepare(y_true, y_pred, labels)
    if len(speakers) != len(t):
        raise PredictionsError(f"speakers has {len(speakers)} items but y_true has {len(t)}")
    g, names = encode_groups(speakers)
    if len(names) < min_speakers:
        return {m: None for m in metrics}
    per_speaker = confusion_stack(t, p, g, len(labels), len(names))[None]  # (1 seed, K, L, L)
    out: dict[str, list[float] | None] = {}
    for m in metrics:
        interval, _ = metric_interval(per_speaker, m, alpha=alpha)
        out[m] = None if interval is None else [interval.lo, interval.hi]
    return out


def evaluate_predictions(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    speakers: Sequence[str],
    labels: Sequence[str],
    *,
    seed: int = 0,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """The metrics JSON content: the point metrics plus ``ci95`` for accuracy and UAR (:func:`bootstrap_ci`).

    With fewer than :data:`MIN_CI_SPEAKERS` speakers ``ci95`` is None and ``ci95_reason`` says why; otherwise
    ``ci95_reason`` is None.
    """
    out = classification_metrics(y_true, y_pred, labels)
    reason = ci_reason(len(set(speakers)))
    out["ci95"] = (
        None if reason else bootstrap_ci(y_true, y_pred, speakers, labels, n_resamples=n_resamples, seed=seed)
    )
    out["ci95_reason"] = reason
    return out


# --------------------------------------------------------------------------------------------------------
# Paired comparison of two models on the same utterances
# --------------------------------------------------------------------------------------------------------


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> tuple[int, int, float]:
    """McNemar's exact test on paired correctness: (b, c, two-sided p).

    b = utterances A got right and B got wrong, c = the reverse. Under "same error rate" b ~ Binomial(b+c, 1/2).
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise PredictionsError(f"correct_a has {a.size} items but correct_b has {b_.size}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return b, c, p


def paired_bootstrap_diff(
    y_true: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    speakers: Sequence[str],
    labels: Sequence[str],
    *,
    metric: str = "uar",
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    min_speakers: int = MIN_CI_SPEAKERS,
) -> dict[str, Any]:
    """Difference ``metric(A) - metric(B)`` with a paired speaker-level interval.

    Both models are scored on the same speakers: :func:`~emoshift.evaluation.intervals.paired_difference`
    with one seed (each speaker left out of both at once; deterministic: ``n_resamples`` and ``seed`` change
    nothing). Returns ``{"a": .., "b": .., "diff": .., "ci": [lo, hi], "ci_reason": None}``; with fewer than
    ``min_speakers`` speakers ``ci`` is None and ``ci_reason`` says why.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    check_resampling(n_resamples, alpha)
    t, pa, labels = _prepare(y_true, pred_a, labels)
    _, pb, _ = _prepare(y_true, pred_b, labels)
    if len(speakers) != len(t):
        raise PredictionsError(f"speakers has {len(speakers)} items but y_true has {len(t)}")
    g, names = encode_groups(speakers)
    conf_a = confusion_stack(t, pa, g, len(labels), len(names))  # (K, L, L)
    conf_b = confusion_stack(t, pb, g, len(labels), len(names))
    a = float(batch_metrics(conf_a.sum(axis=0))[metric])
    b = float(batch_metrics(conf_b.sum(axis=0))[metric])
    reason = ci_reason(len(names), min_speakers)
    if reason:
        return {"a": a, "b": b, "diff": a - b, "ci": None, "ci_reason": reason}
    paired = paired_difference(conf_a[None], conf_b[None], metric, alpha=alpha)
    ci = None if paired.ci is None else [paired.ci.lo, paired.ci.hi]
    return {"a": a, "b": b, "diff": a - b, "ci": ci, "ci_reason": paired.reason}


# --------------------------------------------------------------------------------------------------------
# Do groups of speakers differ? (permutation test)
# --------------------------------------------------------------------------------------------------------


def group_gap(values: np.ndarray) -> np.ndarray:
    """(..., G) -> (...): the largest minus the smallest value over the last axis (the groups); NaN where fewer
    than two groups have a value (NaN marks a group without one). The gap statistic of both audits."""
    finite = np.isfinite(values)
    hi = np.where(finite, values, -np.inf).max(axis=-1)
    lo = np.where(finite, values, np.inf).min(axis=-1)
    return np.where(finite.sum(axis=-1) >= 2, hi - lo, np.nan)


def permutation_test_groups(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    speakers: Sequence[str],
    speaker_groups: Mapping[str, str],
    labels: Sequence[str],
    *,
    metric: str = "uar",
    statistic: Callable[[np.ndarray], np.ndarray] = group_gap,
    n_permutations: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Is the gap in ``metric`` between groups of speakers larger than chance? -> (observed, p-value).

    Group labels are permuted across speakers (each speaker keeps all its utterances and group sizes in
    speakers stay fixed); the statistic (default: largest minus smallest group metric) is recomputed for every
    permutation. p = (1 + #{permuted >= observed}) / (1 + n_permutations), so it is never 0.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}")
    t, p, labels = _prepare(y_true, y_pred, labels)
    if len(speakers) != len(t):
        raise PredictionsError(f"speakers has {len(speakers)} items but y_true has {len(t)}")
    g, names = encode_groups(speakers)
    missing = [s for s in names if s not in speaker_groups]
    if missing:
        raise PredictionsError(f"speaker {missing[0]!r} has no group")
    group_idx, group_names = encode_groups([speaker_groups[s] for s in names])  # (S,)
    if len(group_names) < 2:
        raise ValueError("a permutation test needs speakers from at least two groups")
    per_speaker = confusion_stack(t, p, g, len(labels), len(names)).reshape(len(names), -1).astype(np.float64)

    def group_values(assign: np.ndarray) -> np.ndarray:
        # assign: (R, S) group index per speaker -> (R, G) metric per group
        out = []
        for k in range(len(group_names)):
            conf = (assign == k).astype(np.float64) @ per_speaker  # (R, L*L)
            out.append(batch_metrics(conf.reshape(-1, len(labels), len(labels)))[metric])
        return np.stack(out, axis=-1)

    observed = float(statistic(group_values(group_idx[None, :]))[0])
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(group_idx) for _ in range(n_permutations)])  # (R, S)
    null = statistic(group_values(perms))
    exceed = int(np.sum(null >= observed - 1e-12))
    return observed, (1 + exceed) / (1 + n_permutations)


def permutation_p_floor(group_sizes: Sequence[int]) -> float:
    """The smallest p-value an exact permutation test of a symmetric group statistic (such as the largest
    minus smallest group metric) can reach with these group sizes (in speakers).

    Only the observed partition of speakers (and its relabelings among equally large groups) is as extreme as
    itself, so p >= (ways to reproduce it) / (ways to assign the labels). With 3 + 3 speakers that is
    2 / 20 = 0.1: no gap, however large, can then be called significant at 5%.
    """
    sizes = [int(n) for n in group_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"need at least two non-empty groups, got sizes {sizes}")
    log_assignments = math.lgamma(sum(sizes) + 1) - sum(math.lgamma(n + 1) for n in sizes)
    log_same = sum(math.lgamma(c + 1) for c in Counter(sizes).values())
    return min(1.0, math.exp(log_same - log_assignments))


# --------------------------------------------------------------------------------------------------------
# The predictions CSV (written by `emoshift evaluate`): id, path, corpus, speaker, gender, true, pred, p_<label>
# --------------------------------------------------------------------------------------------------------

REQUIRED_COLUMNS: tuple[str, ...] = ("id", "speaker", "true", "pred")


def read_predictions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a predictions CSV as dicts; ``p_<label>`` columns become floats (empty -> None). An id appears
    once, or once per ``seed`` (a repeated-training run's predictions)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise PredictionsError(
                f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(columns)})"
            )
        rows: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for line, raw in enumerate(reader, start=2):
            row: dict[str, Any] = dict(raw)
            if not row["id"] or not row["true"] or not row["pred"]:
                raise PredictionsError(f"{path}:{line}: empty id, true or pred")
            key = (row.get("seed") or "", row["id"])  # a repeated-training run: each utterance once per seed
            if key in seen:
                raise PredictionsError(f"{path}:{line}: duplicate id {row['id']!r}" + (f" (seed {key[0]})" if key[0] else ""))
            seen.add(key)
            for c in columns:
                if c.startswith("p_"):
                    try:
                        row[c] = float(raw[c]) if raw[c] not in ("", None) else None
                    except ValueError:
                        raise PredictionsError(f"{path}:{line}: {c} is not a number: {raw[c]!r}") from None
            rows.append(row)
    if not rows:
        raise PredictionsError(f"{path}: no predictions")
    return rows


def prediction_labels(rows: Sequence[Mapping[str, Any]], declared: Sequence[str] | None = None) -> list[str]:
    """The label list to score with: ``declared`` (the model's labels, in order) plus any other label seen in
    the rows (appended, sorted), else the ``p_<label>`` columns, else the sorted labels seen."""
    seen = sorted({r["true"] for r in rows} | {r["pred"] for r in rows})
    base = list(declared) if declared else [c[2:] for c in rows[0] if c.startswith("p_")] if rows else []
    return base + [label for label in seen if label not in base]
