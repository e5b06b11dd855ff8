"""Figures: confusion matrices, training curves, predicted-against-true scatters (dimensional), cross-corpus heatmaps and per-group bars with CIs.

matplotlib with the non-interactive Agg backend (no display needed). Every figure is written to a temporary
file and renamed into place, then closed, so a crash never leaves half a PNG and long runs do not leak figures.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from emoshift.core.io import atomic_open  # noqa: E402

METRIC_NAMES: dict[str, str] = {"accuracy": "accuracy", "uar": "UAR", "macro_f1": "macro-F1"}


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    path = Path(path)
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


@contextlib.contextmanager
def _figure(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Iterator[tuple[Figure, Any]]:
    """``plt.subplots(*args, **kwargs)`` for the ``with`` block; saved to ``path`` when the block succeeds
    and closed either way, so a drawing error never leaves an open figure behind."""
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
    except BaseException:
        plt.close(fig)
        raise
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------------------
# Confusion matrices
# --------------------------------------------------------------------------------------------------------


def _row_normalised(confusion: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(confusion, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {counts.shape}")
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(support > 0, counts / np.where(support > 0, support, 1), np.nan)
    return share, counts


def _draw_confusion(ax: Axes, confusion: Sequence[Sequence[float]], labels: Sequence[str], title: str) -> Any:
    share, counts = _row_normalised(confusion)
    if len(labels) != share.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {share.shape[0]}x{share.shape[0]} confusion matrix")
    image = ax.imshow(np.nan_to_num(share), cmap="Blues", vmin=0.0, vmax=1.0)
    small = len(labels) > 8
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            if np.isnan(share[i, j]):
                continue
            colour = "white" if share[i, j] > 0.6 else "black"
            text = f"{share[i, j]:.2f}" if small else f"{share[i, j]:.2f}\n({int(counts[i, j])})"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=7 if small else 8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return image


def plot_confusion(
    confusion: Sequence[Sequence[float]],
    labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
) -> Path:
    """Confusion matrix normalised per true class (rows sum to 1), with the share and count in each cell."""
    size = max(4.0, 0.75 * len(labels) + 2)
    with _figure(path, figsize=(size + 1, size)) as (fig, ax):
        image = _draw_confusion(ax, confusion, labels, title or "confusion (share of each true class)")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return Path(path)


def plot_confusions(
    confusions: Mapping[str, Sequence[Sequence[float]]],
    labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
) -> Path:
    """Several row-normalised confusion matrices side by side (e.g. one per speaker group)."""
    if not confusions:
        raise ValueError("no confusion matrices to plot")
    n = len(confusions)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    size = max(3.5, 0.6 * len(labels) + 1.5)
    # constrained layout makes room for the figure title above the panels' own (tight_layout ignores a
    # suptitle, which then overlapped the first row's titles); long group names wrap within their panel
    with _figure(path, rows, cols, figsize=(cols * size, rows * size), squeeze=False, layout="constrained") as (
        fig,
        axes,
    ):
        for ax, (name, conf) in zip(axes.ravel(), confusions.items(), strict=False):
            _draw_confusion(ax, conf, labels, textwrap.fill(name, width=max(20, int(size * 7))))
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        if title:
            fig.suptitle(textwrap.fill(title, width=max(40, int(cols * size * 9))))
    return Path(path)


# --------------------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------------------

LOSS_COLUMNS: tuple[str, ...] = ("train_loss", "val_loss")
SCORE_COLUMNS: tuple[str, ...] = ("val_uar", "val_accuracy", "val_ccc")


def _read_log(log: str | os.PathLike[str] | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(log, str | os.PathLike):
        path = Path(log)
        if not path.is_file():
            raise FileNotFoundError(f"training log not found: {path}")
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    return list(log)


def _series(rows: Sequence[Mapping[str, Any]], column: str) -> tuple[list[float], list[float]]:
    """(epochs, values) for rows where ``column`` holds a number; the last value per epoch wins (a CSV
    logger may write several rows per epoch, each with only some columns filled)."""
    by_epoch: dict[float, float] = {}
    for row in rows:
        value, epoch = row.get(column), row.get("epoch")
        if value in (None, "") or epoch in (None, ""):
            continue
        try:
            v, e = float(value), float(epoch)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            by_epoch[e] = v
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


def plot_curves(
    log: str | os.PathLike[str] | Iterable[Mapping[str, Any]], path: str | os.PathLike[str]
) -> Path:
    """Training curves from a CSV log (column ``epoch`` and any of train_loss, val_loss, val_uar,
    val_accuracy, val_ccc) or from the same rows as dicts: losses on the left, validation scores on the right.
    A pooled cross-validation log (a ``fold`` column) draws one line per fold and column; a repeated-training
    log (a ``seed`` column) one per seed (and fold)."""
    rows = _read_log(log)

    def tag(r: Mapping[str, Any]) -> str:  # "seed 1 fold 0 ", "fold 2 ", or "" (one run)
        return "".join(f"{k} {r[k]} " for k in ("seed", "fold") if r.get(k) not in (None, ""))

    by_fold = {t: [r for r in rows if tag(r) == t] for t in dict.fromkeys(tag(r) for r in rows)}
    panels = []
    for columns, ylabel in ((LOSS_COLUMNS, "loss"), (SCORE_COLUMNS, "score")):
        lines = {f"{tag}{c}": _series(part, c) for c in columns for tag, part in by_fold.items()}
        lines = {c: s for c, s in lines.items() if s[0]}
        if lines:
            panels.append((ylabel, lines))
    if not panels:
        raise ValueError(f"the log has no epoch values for any of {', '.join(LOSS_COLUMNS + SCORE_COLUMNS)}")
    with _figure(path, 1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False) as (fig, axes):
        for ax, (ylabel, lines) in zip(axes[0], panels, strict=True):
            for column, (epochs, values) in lines.items():
                ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, markersize=3, label=column)
            ax.set_xlabel("epoch")
            # whole epochs only, half an epoch of margin: one epoch is a point at 1, not an axis of -0.04..0.04
            every = [e for epochs, _ in lines.values() for e in epochs]
            first, last = math.floor(min(every)), math.ceil(max(every))
            ax.set_xlim(first - 0.5, last + 0.5)
            if last - first < 12:
                ax.set_xticks(range(first, last + 1))
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(ylabel)
            if ylabel == "score":  # CCC (dimensional) may dip below 0
                ax.set_ylim(min(0.0, *(min(v) for _, v in lines.values())), 1.0)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
    return Path(path)


# --------------------------------------------------------------------------------------------------------
# Dimensional emotion: predicted against true
# --------------------------------------------------------------------------------------------------------


def plot_scatter(
    true: Mapping[str, Sequence[float]],
    pred: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    *,
    value_range: tuple[float, float],
    scores: Mapping[str, float | None] | None = None,
    title: str = "",
) -> Path:
    """One panel per target: predicted (y) against true (x) on ``value_range``, the identity line dashed, the
    target's CCC in the panel title when ``scores`` has it."""
    targets = list(pred)
    if not targets:
        raise ValueError("plot_scatter needs at least one target")
    lo, hi = value_range
    pad = 0.05 * (hi - lo)
    with _figure(path, 1, len(targets), figsize=(3.8 * len(targets), 3.8), squeeze=False) as (fig, axes):
        for ax, t in zip(axes[0], targets, strict=True):
            x, y = np.asarray(true[t], dtype=np.float64), np.asarray(pred[t], dtype=np.float64)
            ax.scatter(x, y, s=8, alpha=0.5, edgecolors="none")
            ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(min(lo, float(y.min(initial=lo))) - pad, max(hi, float(y.max(initial=hi))) + pad)
            ax.set_aspect("equal", adjustable="box")
            score = (scores or {}).get(t)
            ax.set_title(f"{t}" + (f" (CCC {score:.3f})" if score is not None else ""))
            ax.set_xlabel(f"true {t}")
            ax.set_ylabel(f"predicted {t}")
            ax.grid(alpha=0.3)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return Path(path)


# --------------------------------------------------------------------------------------------------------
# Heatmaps (train corpus x test corpus)
# --------------------------------------------------------------------------------------------------------


def plot_heatmap(
    matrix: Sequence[Sequence[float | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    fmt: str = ".2f",
    xlabel: str = "",
    ylabel: str = "",
) -> Path:
    """A labelled heatmap; ``None``/NaN cells are drawn blank with a dash. Colour scale 0-1 when the values
    fit in it (accuracies, UARs), else the data range. ``fmt`` is a format spec such as ``.2f`` or ``.1%``."""
    values = np.array([[np.nan if v is None else float(v) for v in row] for row in matrix], dtype=np.float64)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"matrix shape {values.shape} does not match {len(row_labels)}x{len(col_labels)} labels"
        )
    finite = values[np.isfinite(values)]
    unit = finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0)
    vmin, vmax = (0.0, 1.0) if unit else (float(finite.min()), float(finite.max()))
    figsize = (max(4.0, 1.1 * len(col_labels) + 2), max(3.0, 0.8 * len(row_labels) + 1.5))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    with _figure(path, figsize=figsize) as (fig, ax):
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                if np.isfinite(v):
                    bright = (v - vmin) / ((vmax - vmin) or 1.0) > 0.6
                    ax.text(
                        j, i, format(v, fmt), ha="center", va="center", color="black" if bright else "white"
                    )
                else:
                    ax.text(j, i, "–", ha="center", va="center", color="black")
        ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right")
        ax.set_yticks(range(len(row_labels)), row_labels)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return Path(path)


# --------------------------------------------------------------------------------------------------------
# Grouped bars with CI error bars


def _ci_bars(
    ax: Axes, at: Sequence[float] | np.ndarray, heights: Sequence[float], cis: Sequence[Sequence[float] | None]
) -> None:
    """Error bars from each bar's ``[lo, hi]``, only where there is an interval: a bar whose interval is n/a
    (None) gets none at all, not a zero-width bar that reads as a certain score."""
    keep = [i for i, (h, ci) in enumerate(zip(heights, cis, strict=True)) if ci is not None and math.isfinite(h)]
    if not keep:
        return
    xs = np.asarray(at, dtype=np.float64)[keep]
    ys = np.array([heights[i] for i in keep])
    lo = np.array([max(heights[i] - float(cis[i][0]), 0.0) for i in keep])  # type: ignore[index]
    hi = np.array([max(float(cis[i][1]) - heights[i], 0.0) for i in keep])  # type: ignore[index]
    ax.errorbar(xs, ys, yerr=np.vstack([lo, hi]), fmt="none", ecolor="black", capsize=3, linewidth=1)
# --------------------------------------------------------------------------------------------------------


def plot_group_bars(
    groups: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
) -> Path:
    """One cluster of bars per group, one bar per metric, with ``<metric>_ci`` as error bars.

    ``groups`` is ``{group: {metric: value, metric_ci: [lo, hi], ...}}`` (the audit's group records fit).
    Groups marked ``too_small`` are hatched and starred; their bars are shown, not hidden.
    """
    if not groups or not metrics:
        raise ValueError("plot_group_bars needs at least one group and one metric")
    names = list(groups)
    width = 0.8 / len(metrics)
    x = np.arange(len(names))
    with _figure(path, figsize=(max(5.0, 1.4 * len(names) + 2), 4)) as (fig, ax):
        for k, metric in enumerate(metrics):
            heights, cis = [], []
            for name in names:
                record = groups[name]
                value = record.get(metric)
                heights.append(float("nan") if value is None else float(value))
                cis.append(record.get(f"{metric}_ci"))
            at = x + (k - (len(metrics) - 1) / 2) * width
            bars = ax.bar(at, heights, width, label=METRIC_NAMES.get(metric, metric))
            _ci_bars(ax, at, heights, cis)
            for bar, name in zip(bars, names, strict=True):
                if groups[name].get("too_small"):
                    bar.set_hatch("//")
                    bar.set_alpha(0.6)
        ticks = []
        for name in names:
            record = groups[name]
            label = name + (" *" if record.get("too_small") else "")
            if record.get("speakers") is not None:
                label += f"\n({record['speakers']} spk, n={record.get('n', '?')})"
            ticks.append(label)
        ax.set_xticks(x, ticks)
        ax.set_ylim(0.0, 1.05)
        ax.set_ylabel("score (95% CI)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        full_title = title
        if any(groups[n].get("too_small") for n in names):
            full_title += ("\n" if title else "") + "* too few speakers to compare"
        ax.set_title(full_title)
        fig.tight_layout()
    return Path(path)


# --------------------------------------------------------------------------------------------------------
# Scores with CI bars: one cluster per run, one bar per test corpus (the study's key-results chart)
# --------------------------------------------------------------------------------------------------------


def plot_scores_ci(
    scores: Mapping[str, Mapping[str, tuple[float, Sequence[float] | None]]],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    ylabel: str = "UAR (95% CI)",
    points: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> Path:
    """``scores[run][corpus] = (value, [lo, hi] or None)`` as clustered bars with CI error bars.

    A bar without an interval (too few speakers for one) is hatched and gets no error bar; a run without a
    score on a corpus leaves a gap. ``points[run][corpus]``: values drawn as dots on that bar (each training
    seed's score, when the bar is their mean).
    """
    runs = list(scores)
    corpora = list(dict.fromkeys(c for r in runs for c in scores[r]))
    if not runs or not corpora:
        raise ValueError("plot_scores_ci needs at least one run with a score")
    width = 0.8 / len(corpora)
    x = np.arange(len(runs))
    no_ci = False
    with _figure(path, figsize=(max(6.0, 0.9 * len(runs) * len(corpora) + 2), 4)) as (fig, ax):
        for k, corpus in enumerate(corpora):
            heights, cis, hatched = [], [], []
            for run in runs:
                value, ci = scores[run].get(corpus, (float("nan"), None))
                heights.append(float(value))
                cis.append(ci)
                hatched.append(ci is None and math.isfinite(float(value)))
            at = x + (k - (len(corpora) - 1) / 2) * width
            bars = ax.bar(at, heights, width, label=corpus)
            _ci_bars(ax, at, heights, cis)
            for a, run in zip(at, runs, strict=True):
                dots = list((points or {}).get(run, {}).get(corpus, []))
                if dots:  # spread across the bar so equal values stay visible
                    xs = a + np.linspace(-0.25, 0.25, len(dots)) * width if len(dots) > 1 else [a]
                    ax.scatter(xs, dots, s=12, color="black", zorder=3,
                               label="each seed" if "each seed" not in ax.get_legend_handles_labels()[1] else None)
            for bar, hatch in zip(bars, hatched, strict=True):
                if hatch:
                    bar.set_hatch("//")
                    bar.set_alpha(0.6)
                    no_ci = True
        ax.set_xticks(x, runs)
        ax.set_ylim(0.0, 1.05)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="test corpus")
        ax.set_title(title + (("\n" if title else "") + "hatched: no CI (too few speakers)" if no_ci else ""))
        fig.tight_layout()
    return Path(path)


# --------------------------------------------------------------------------------------------------------
# A learning curve: a score per K with its CI (few-shot adaptation)
# --------------------------------------------------------------------------------------------------------


def plot_learning_curve(
    points: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    xlabel: str = "K labelled target speakers adapted on",
    ylabel: str = "UAR on the held-back speakers (95% CI)",
) -> Path:
    """``points``: ``{"k", "uar", "ci95": [lo, hi] or None, "per_seed": [uar, ...]}`` in K order, drawn as a line
    with CI error bars (none where a point has no interval: it is drawn hollow) and each seed's score as a dot."""
    if not points:
        raise ValueError("plot_learning_curve needs at least one point")
    ks = [int(p["k"]) for p in points]
    ys = [float("nan") if p.get("uar") is None else float(p["uar"]) for p in points]
    with _figure(path, figsize=(max(5.0, 0.6 * len(ks) + 3), 4)) as (fig, ax):
        ax.plot(ks, ys, color="tab:blue", linewidth=1.5, zorder=2)
        with_ci = [i for i, p in enumerate(points) if p.get("ci95")]
        without = [i for i in range(len(points)) if i not in with_ci]
        ax.scatter([ks[i] for i in with_ci], [ys[i] for i in with_ci], color="tab:blue", zorder=3)
        ax.scatter([ks[i] for i in without], [ys[i] for i in without], facecolors="white", edgecolors="tab:blue",
                   zorder=3, label="no CI (too few speakers)" if without else None)
        _ci_bars(ax, ks, ys, [p.get("ci95") for p in points])
        for k, p in zip(ks, points, strict=True):
            seeds = list(p.get("per_seed") or [])
            if len(seeds) > 1:
                ax.scatter([k] * len(seeds), seeds, s=10, color="gray", zorder=1,
                           label="each seed" if "each seed" not in ax.get_legend_handles_labels()[1] else None)
        ax.set_xticks(ks)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=8, loc="upper left")
        ax.set_title(title)
        fig.tight_layout()
    return Path(path)
