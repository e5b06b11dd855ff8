"""The report's "Calibration and abstention" section: per experiment and test corpus, the ECE (and, for a
temperature-scaled run, the ECE before scaling), the confidence threshold that keeps the run's target in-domain
accuracy and what it gives there, and the run's reliability and risk-coverage plots
(:mod:`emoshift.evaluation.confidence` writes them all). Nothing when no run has calibration scores (runs
evaluated before they were measured)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from emoshift.core.rundir import RunDir
from emoshift.evaluation.confidence import abstention_text
from emoshift.study.render import Block, Bullets, Heading, Image, Para
from emoshift.study.summaries import ExperimentSummary


def confidence_blocks(
    summaries: Sequence[ExperimentSummary], corpora: Sequence[str], title: Callable[[str], str] = str
) -> list[Block]:
    shown = [s for s in summaries if s.trains and any(m.ece is not None for m in s.metrics.values())]
    if not shown:
        return []
    blocks: list[Block] = [
        Heading("Calibration and abstention"),
        Para("ECE: expected calibration error (15 equal-width confidence bins, top label; 0 is perfectly "
             "calibrated). The threshold is the lowest top-probability at which the answered in-domain test clips "
             "reach the run's evaluation.target_accuracy; each corpus line says what answering only above it "
             "gives there (share answered, accuracy and UAR of the answered clips)."),
    ]
    for s in shown:
        blocks.append(Heading(f"{s.id}: {s.title}", 3))
        lines = []
        for c in corpora:
            m = s.metrics.get(c)
            if m is None or m.ece is None:
                continue
            ece = f"{title(c)} ({m.split}): ECE {m.ece:.3f}"
            if m.ece_uncalibrated is not None:
                ece += f" ({m.ece_uncalibrated:.3f} before temperature scaling)"
            if m.abstention:
                ece += "; " + abstention_text(title(c), m.abstention).split(": ", 1)[1]
            lines.append(ece)
        blocks.append(Bullets(lines))
        run = RunDir.of(s.run)
        for c in corpora:
            for path, what in ((run.reliability_plot(c), "reliability"), (run.risk_coverage_plot(c), "risk-coverage")):
                if c in s.metrics and path.is_file():
                    blocks.append(Image(path, f"{s.id} on {title(c)}: {what}"))
    return blocks
