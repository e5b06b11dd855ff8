"""Every plot writes a real PNG atomically, closes its figure, and tolerates missing data."""

from __future__ import annotations

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from emoshift.evaluation.plots import (
    plot_confusion,
    plot_confusions,
    plot_curves,
    plot_group_bars,
    plot_heatmap,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path, min_width=200):
    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width >= min_width and height >= 100
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no temp left
    assert plt.get_fignums() == []  # figure closed


def test_confusion_plots(tmp_path):
    labels = ["angry", "happy", "sad"]
    conf = [[8, 2, 0], [1, 9, 0], [0, 0, 0]]  # "sad" has no true utterances: the row stays blank
    _check_png(plot_confusion(conf, labels, tmp_path / "c.png", title="test"))
    _check_png(plot_confusions({"female": conf, "male": conf}, labels, tmp_path / "g.png", title="by gender"))
    with pytest.raises(ValueError, match="3 labels for a 2x2"):
        plot_confusion([[1, 0], [0, 1]], labels, tmp_path / "x.png")
    assert plt.get_fignums() == []


def test_curves_from_csv_with_missing_columns_and_blank_cells(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,train_loss,val_uar\n0,1.8,\n0,,0.31\n1,1.2,0.45\n2,0.9,0.52\n")
    _check_png(plot_curves(log, tmp_path / "curves.png"))
    rows = [
        {"epoch": e, "train_loss": 2 - e / 3, "val_loss": 2.1 - e / 4, "val_accuracy": 0.2 + e / 10}
        for e in range(5)
    ]
    _check_png(plot_curves(rows, tmp_path / "curves_rows.png"))
    with pytest.raises(ValueError, match="no epoch values"):
        plot_curves([{"epoch": 0, "lr": 0.1}], tmp_path / "none.png")
    with pytest.raises(FileNotFoundError):
        plot_curves(tmp_path / "missing.csv", tmp_path / "none.png")


def test_heatmap_with_missing_cells(tmp_path):
    matrix = [[0.81, 0.22], [None, 0.63]]
    _check_png(
        plot_heatmap(matrix, ["ravdess", "combined"], ["ravdess", "crema-d"], tmp_path / "h.png", title="UAR")
    )
    _check_png(plot_heatmap([[12.0, -3.5]], ["a"], ["x", "y"], tmp_path / "h2.png", fmt=".1f"), min_width=150)
    with pytest.raises(ValueError, match="does not match"):
        plot_heatmap(matrix, ["a"], ["x", "y"], tmp_path / "bad.png")


def test_group_bars_with_ci_and_too_small_group(tmp_path):
    groups = {
        "female": {
            "speakers": 12,
            "n": 480,
            "accuracy": 0.61,
            "accuracy_ci": [0.55, 0.66],
            "uar": 0.6,
            "uar_ci": [0.54, 0.65],
        },
        "male": {
            "speakers": 12,
            "n": 470,
            "accuracy": 0.52,
            "accuracy_ci": [0.47, 0.58],
            "uar": 0.5,
            "uar_ci": None,
        },
        "other": {"speakers": 1, "n": 40, "accuracy": 0.4, "uar": 0.38, "too_small": True},
    }
    _check_png(plot_group_bars(groups, ["accuracy", "uar"], tmp_path / "bars.png", title="by gender"))
    with pytest.raises(ValueError, match="at least one group"):
        plot_group_bars({}, ["uar"], tmp_path / "empty.png")


def _captured(monkeypatch):
    """The figures the plot functions save, kept open for inspection (closed by the caller)."""
    import emoshift.evaluation.plots as plots

    figures = []
    real = plots.save_figure

    def keep(fig, path, **kw):
        figures.append(fig)
        fig.savefig(path, format="png")
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures, real


def test_bars_draw_no_error_bar_where_the_interval_is_na(tmp_path, monkeypatch):
    from emoshift.evaluation.plots import plot_scores_ci

    figures, _ = _captured(monkeypatch)
    groups = {
        "female": {"uar": 0.5, "uar_ci": [0.4, 0.6], "speakers": 6, "n": 60},
        "male": {"uar": 0.4, "uar_ci": None, "speakers": 2, "n": 20, "too_small": True},  # n/a: no bar
    }
    plot_group_bars(groups, ["uar"], tmp_path / "bars.png")
    plot_scores_ci({"A": {"ravdess": (0.5, [0.4, 0.6]), "crema-d": (0.3, None)}}, tmp_path / "ci.png")
    for fig in figures:
        (ax,) = fig.axes
        # one error bar, for the one score with an interval; none drawn at zero width for the other
        segments = [seg for c in ax.collections for seg in c.get_segments()]
        assert len(segments) == 1
        (x0, y0), (x1, y1) = segments[0]
        assert (y0, y1) == pytest.approx((0.4, 0.6))
        plt.close(fig)


def test_score_bars_draw_each_seed_as_a_dot(tmp_path, monkeypatch):
    from emoshift.evaluation.plots import plot_scores_ci

    figures, _ = _captured(monkeypatch)
    scores = {"A": {"ravdess": (0.5, [0.4, 0.6])}, "B": {"ravdess": (0.3, None)}}
    plot_scores_ci(scores, tmp_path / "ci.png", points={"A": {"ravdess": [0.45, 0.5, 0.55]}})
    (fig,) = figures
    (ax,) = fig.axes
    from matplotlib.collections import PathCollection

    dots = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == 1 and sorted(dots[0][:, 1]) == pytest.approx([0.45, 0.5, 0.55])
    assert "each seed" in ax.get_legend_handles_labels()[1]
    plt.close(fig)


def test_confusions_figure_title_clears_the_panel_titles(tmp_path, monkeypatch):
    figures, _ = _captured(monkeypatch)
    labels = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    conf = (np.eye(6, dtype=int) * 5 + 1).tolist()
    groups = ["african american (1 spk, n=12)", "asian (1 spk, n=12)", "caucasian (6 spk, n=72)"]  # the audit's
    plot_confusions({g: conf for g in groups}, labels, tmp_path / "race.png",
                    title="crema-d: confusion by race (share of each true class)")
    (fig,) = figures
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top = fig._suptitle.get_window_extent(renderer)
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3
    for box in titles:  # the figure's title ends above every panel's title (it overlapped the middle one)
        assert top.y0 >= box.y1 + 2
    plt.close(fig)


def test_a_one_epoch_curve_has_an_axis_of_whole_epochs(tmp_path, monkeypatch):
    figures, _ = _captured(monkeypatch)
    plot_curves([{"epoch": 1, "train_loss": 1.9, "val_loss": 1.8, "val_uar": 0.2}], tmp_path / "one.png")
    (fig,) = figures
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert lo < 1 < hi and hi - lo >= 1  # not -0.04..0.04 around the one point
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)
