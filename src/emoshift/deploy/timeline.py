"""A timeline per file: probability of each emotion over time (a dimensional model: each target's value on its
range), speech segments shaded (matplotlib, Agg)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emoshift.core.io import atomic_write_bytes


def plot_timeline(
    segments: Sequence[Any],
    labels: Sequence[str],
    out: str | os.PathLike[str],
    *,
    title: str = "",
    duration_s: float | None = None,
    speech: Sequence[tuple[float, float]] = (),
    value_range: tuple[float, float] | None = None,
) -> Path:
    """One line per emotion at each segment's centre (steps across the segment), speech spans shaded grey.

    Segments with ``values`` (a dimensional model) plot those, one line per target named in ``labels``, against
    ``value_range`` (default 0-1) drawn as dashed bounds; the network's outputs are not clipped to it, so the axis
    widens to show any value outside it. Each label has its own colour, whatever the number of segments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    try:
        for a, b in speech:
            ax.axvspan(a, b, color="0.88", zorder=0, lw=0)
        order = sorted(segments, key=lambda s: (s.start_s + s.end_s) / 2)
        centres = [(s.start_s + s.end_s) / 2 for s in order]
        rated = bool(order) and getattr(order[0], "values", None) is not None
        lo, hi = value_range or (0.0, 1.0)
        seen = [lo, hi]
        for i, lab in enumerate(labels):
            ys = [(s.values if rated else s.probabilities)[lab] for s in order]
            seen += ys
            colour = f"C{i % 10}"  # hlines does not cycle colours: each label names its own
            if len(order) == 1:
                ax.hlines(ys, order[0].start_s, order[0].end_s, label=lab, lw=2, colors=colour)
            else:
                ax.plot(centres, ys, label=lab, lw=1.6, marker="." if len(order) < 60 else None, color=colour)
        end = duration_s if duration_s is not None else max((s.end_s for s in order), default=1.0)
        ax.set_xlim(0, max(end, 1e-3))
        bottom, top = min(seen), max(seen)
        pad = 0.03 * (top - bottom or 1.0)
        ax.set_ylim(bottom - pad if bottom < lo else lo, top + pad if top > hi else hi)
        if rated:  # the declared range, so a value beyond it shows as beyond it
            for bound in (lo, hi):
                ax.axhline(bound, color="0.5", lw=0.8, ls="--", zorder=0)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("rating" if rated else "probability")
        ax.set_title(title + ("  (grey: speech)" if speech else ""), fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)


def summary(prediction: Any) -> str:
    """A prediction in a few words: its label, or a dimensional model's values (``arousal 0.62, valence 0.41``)."""
    if getattr(prediction, "targets", ()):
        return ", ".join(f"{t} {prediction.values[t]:.2f}" for t in prediction.targets)
    return str(prediction.label)
