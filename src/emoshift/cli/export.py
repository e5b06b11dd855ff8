"""`emoshift export`: a run -> RUN/model.onnx (waveform in, logits and probabilities out; a dimensional run: values),
checked against torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail


@app.command()
def export(
    runs: Annotated[list[Path], typer.Argument(help="run directory; several runs = an ensemble (mean probabilities)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx")] = "onnx",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="default RUN/model.onnx")] = None,
    quantize: Annotated[str | None, typer.Option("--quantize", help="int8: quantise weights, report UAR (CCC) change")] = None,
    max_files: Annotated[int, typer.Option("--max-files", min=1, help="test files used for the self-check")] = 64,
) -> None:
    """Export a trained model to ONNX with its log-mel front end inside; checks parity with torch on test files."""
    from emoshift.core.errors import EmoshiftError
    from emoshift.core.extras import require
    from emoshift.deploy.export import export_runs, report_path

    require("train", "emoshift export")  # torch traces the model, onnx and onnxscript write the graph
    try:
        report = export_runs(runs, output, fmt=fmt, quantize=quantize, max_files=max_files)
    except EmoshiftError as e:
        fail(str(e))
    par = report["parity"]
    console.print(f"wrote {report['output']} ({report['bytes'] / 1e6:.1f} MB, {report['members']} member(s), "
                  f"inputs {', '.join(report['inputs'])}) in {report['seconds']:.0f} s", highlight=False, soft_wrap=True)
    console.print(f"parity: max |p_onnx - p_torch| = {par['max_abs_diff']:.2e} over {par['windows']} windows of "
                  f"{par['files']} test files (tolerance {par['tolerance']:g})", highlight=False, soft_wrap=True)
    q = report.get("quantize")
    from emoshift.core.task import task_named

    if q and task_named(report.get("task")).rated:  # ratings: the mean CCC of each graph, no labels to agree on
        change = "n/a" if q["ccc_change"] is None else f"{q['ccc_change']:+.4f}"
        console.print(f"int8: mean CCC {_num(q['ccc_float'])} -> {_num(q['ccc_int8'])} (change {change}), max "
                      f"|int8 - float| {q['max_abs_diff_vs_float']:.2e}, {q['bytes_float'] / 1e6:.1f} -> "
                      f"{q['bytes_int8'] / 1e6:.1f} MB", highlight=False, soft_wrap=True)
    elif q:
        change = "n/a" if q["uar_change"] is None else f"{q['uar_change']:+.4f}"
        console.print(f"int8: UAR {q['uar_float']:.4f} -> {q['uar_int8']:.4f} (change {change}), label agreement "
                      f"{q['label_agreement']:.1%}, {q['bytes_float'] / 1e6:.1f} -> {q['bytes_int8'] / 1e6:.1f} MB",
                      highlight=False, soft_wrap=True)
    console.print(f"report: {report_path(Path(report['output']))}", highlight=False, soft_wrap=True)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
