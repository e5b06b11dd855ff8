"""Confusion matrices and the classification metrics computed from them, in batches.

The one home of ``accuracy``, ``uar`` and ``macro_f1`` on confusion counts (rows true, columns predicted): the
point metrics (:mod:`emoshift.evaluation.metrics`) and every interval (:mod:`emoshift.evaluation.intervals`)
score through :func:`batch_metrics`, so a resample, a left-out speaker or a seed is scored exactly as the
headline figure is. numpy only.
"""

from __future__ import annotations

import numpy as np

METRICS: tuple[str, ...] = ("accuracy", "uar", "macro_f1")


def confusion_stack(
    t: np.ndarray, p: np.ndarray, groups: np.ndarray, n_labels: int, n_groups: int
) -> np.ndarray:
    """One confusion matrix per group from encoded arrays: (G, L, L), rows true, columns predicted."""
    flat = (groups * n_labels + t) * n_labels + p
    counts = np.bincount(flat, minlength=n_groups * n_labels * n_labels)
    return counts.reshape(n_groups, n_labels, n_labels)


def batch_metrics(conf: np.ndarray) -> dict[str, np.ndarray]:
    """accuracy, uar and macro_f1 of a batch of confusion matrices (..., L, L); NaN where undefined."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)  # (..., L)
    support = conf.sum(axis=-1)  # true counts per class
    predicted = conf.sum(axis=-2)
    total = support.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = tp.sum(axis=-1) / total
        present = support > 0
        recall = np.where(present, tp / np.where(present, support, 1), 0.0)
        uar = recall.sum(axis=-1) / present.sum(axis=-1)
        seen = (support + predicted) > 0
        f1 = np.where(seen, 2 * tp / np.where(seen, support + predicted, 1), 0.0)
        macro_f1 = f1.sum(axis=-1) / seen.sum(axis=-1)
    return {"accuracy": accuracy, "uar": uar, "macro_f1": macro_f1}
