"""`emoshift export`: a run -> RUN/model.onnx (waveform in, logits and probabilities out; a dimensional run: values),
checked against torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    tolerance: Annotated[float | None, typer.Option(
        "--tolerance", help="largest |onnx - torch| output difference accepted (default: 10x float32's own error "
        "on the test files, at least 1e-4); window labels must still agree except at near-ties")] = None,
    retrace: Annotated[bool, typer.Option(
        "--retrace", help="trace the network afresh even where a graph of its structure is kept "
        "($EMOSHIFT_CACHE/graphs): the weights are otherwise put into that graph")] = False,
) -> None:
    """Export a trained model to ONNX with its log-mel front end inside; checks parity with torch on test files."""
    from emoshift.core.errors import EmoshiftError
    from emoshift.core.extras import require
    from emoshift.deploy.export import export_runs

    require("train", "emoshift export")  # torch traces the model, onnx and onnxscript write the graph
    try:
        report = export_runs(runs, output, fmt=fmt, quantize=quantize, max_files=max_files, tolerance=tolerance,
                             reuse_graph=not retrace, progress=True)
    except EmoshiftError as e:
        fail(str(e))
    for line in summary_lines(report):
        console.print(line, highlight=False, soft_wrap=True)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What ``emoshift export`` prints: the file, the parity of the graph written, and each graph's score."""
    from emoshift.core.task import task_named
    from emoshift.deploy.export import report_path

    par, q = report["parity"], report.get("quantize")
    dimensional = task_named(report.get("task")).rated
    sym, key, name = ("v", "ccc", "mean CCC") if dimensional else ("p", "uar", "UAR")
    graph = "the kept graph of its structure, its weights put in" if report.get("graph") == "reused" else "traced"
    lines = [f"wrote {report['output']} ({report['bytes'] / 1e6:.1f} MB, {report['members']} member(s), "
             f"inputs {', '.join(report['inputs'])}; graph {graph}) in {report['seconds']:.0f} s"]
    check = (f"max |{sym}_onnx - {sym}_torch| = {par['max_abs_diff']:.2e} over {par['windows']} windows of "
             f"{par['files']} test files (tolerance {par['tolerance']:.2e}; float32's own error "
             f"{par['float32_error']:.2e})")
    if not dimensional:
        check += f", window labels agree {_pct(par['label_agreement'])}"
    if q is None:
        lines += [f"parity: {check}",
                  f"{name}: torch {_num(report[f'{key}_torch'])}, onnx {_num(report[f'{key}_onnx'])}"]
    else:  # the file written is the int8 graph: its parity first, the float graph's check it passed second
        qp = q["parity"]
        agree = "" if dimensional else f", window labels agree with torch {_pct(qp['label_agreement'])}"
        change = "n/a" if q[f"{key}_change"] is None else f"{q[f'{key}_change']:+.4f}"
        lines += [f"parity (int8, the file written): max |{sym}_int8 - {sym}_torch| = {qp['max_abs_diff']:.2e} over "
                  f"{qp['windows']} windows{agree}",
                  f"{name}: torch {_num(q[f'{key}_torch'])}, float onnx {_num(q[f'{key}_float'])}, int8 "
                  f"{_num(q[f'{key}_int8'])} (int8 - float {change}); {q['bytes_float'] / 1e6:.1f} -> "
                  f"{q['bytes_int8'] / 1e6:.1f} MB",
                  f"float graph before quantising: {check}"]
    lines.append(f"report: {report_path(Path(report['output']))}")
    return lines


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"
