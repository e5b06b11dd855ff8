"""Calibration figures of a categorical run on a corpus (:mod:`emoshift.evaluation.calibration`):

- ``RUN/plots/reliability_<corpus>.png``: the reliability diagram (accuracy against mean confidence per
  confidence bin, the diagonal is perfect calibration) above the histogram of the confidences;
- ``RUN/plots/risk_coverage_<corpus>.png``: accuracy and UAR of the answered utterances against the share
  answered, as the confidence threshold rises; the threshold that keeps the target in-domain accuracy marked.

Figures are written atomically and closed (:func:`emoshift.evaluation.plots.save_figure`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emoshift.evaluation.calibration import N_BINS, reliability, risk_coverage  # noqa: E402
from emoshift.evaluation.plots import save_figure  # noqa: E402


def plot_reliability(
    probs: np.ndarray, y: np.ndarray, path: str | os.PathLike[str], *, title: str = "",
    uncalibrated: np.ndarray | None = None,
) -> Path:
    """Reliability diagram (top) and confidence histogram (bottom); ``uncalibrated`` (the probabilities before
    temperature scaling) is drawn beside, in grey."""
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    width = 1.0 / N_BINS
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        top.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1, label="perfectly calibrated")
        series = [("calibrated" if uncalibrated is not None else "model", probs, "tab:blue")]
        if uncalibrated is not None:
            series.insert(0, ("before temperature scaling", uncalibrated, "0.65"))
        for name, p, colour in series:
            r = reliability(p, y)
            seen = r["count"] > 0
            top.bar(centres[seen], r["accuracy"][seen], width=width * 0.9, color=colour, alpha=0.75,
                    edgecolor="black", lw=0.4, label=f"{name}: accuracy")
            top.plot(r["confidence"][seen], r["accuracy"][seen], "o", color=colour, ms=3)
            bottom.bar(centres, r["count"] / max(1, len(y)), width=width * 0.9, color=colour, alpha=0.75)
        top.set_ylabel("accuracy in bin")
        top.set_ylim(0, 1)
        top.set_xlim(0, 1)
        top.legend(fontsize=7, loc="upper left")
        top.set_title(title, fontsize=9)
        bottom.set_xlabel("confidence (top probability)")
        bottom.set_ylabel("share")
    except BaseException:
        plt.close(fig)
        raise
    return save_figure(fig, path)


def plot_risk_coverage(
    probs: np.ndarray, y: np.ndarray, path: str | os.PathLike[str], *, title: str = "",
    marked: dict[str, Any] | None = None,
) -> Path:
    """Accuracy and UAR of the answered utterances against coverage; ``marked`` (``threshold``, ``coverage``,
    ``accuracy``) is drawn as a point with its threshold."""
    curve = risk_coverage(probs, y)
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    try:
        ax.step(curve["coverage"], curve["accuracy"], where="post", label="accuracy of answered")
        ax.step(curve["coverage"], curve["uar"], where="post", label="UAR of answered")
        if marked and marked.get("accuracy") is not None:
            ax.plot([marked["coverage"]], [marked["accuracy"]], "o", color="tab:red",
                    label=f"threshold {marked['threshold']:.3f}")
        ax.set_xlabel("coverage (share answered)")
        ax.set_ylabel("score of the answered clips")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
        ax.set_title(title, fontsize=9)
    except BaseException:
        plt.close(fig)
        raise
    return save_figure(fig, path)
