"""`emoshift predict`: top label and probabilities per file; bad files are reported, the rest predicted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run directory of a trained model")],
    paths: Annotated[list[Path], typer.Argument(help="audio files or folders")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
) -> None:
    """Predict the emotion of each audio file (folders are searched recursively)."""
    import csv
    import json
    import sys

    if fmt not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json, got {fmt!r}")
    from emoshift.evaluation.predict import Predictor

    predictor = Predictor(run)
    labels = predictor.labels
    preds = list(predictor.predict_paths(paths))
    if fmt == "json":
        sys.stdout.write(json.dumps([p.to_dict() for p in preds], indent=2) + "\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(["path", "label", *[f"p_{lab}" for lab in labels], "error"])
        for p in preds:
            w.writerow([p.path, p.label or "", *[f"{p.probabilities.get(lab, float('nan')):.4f}" if p.label else ""
                                                  for lab in labels], p.error or ""])
    else:
        from rich.table import Table

        t = Table()
        t.add_column("file")
        t.add_column("emotion")
        for lab in labels:
            t.add_column(lab, justify="right")
        for p in preds:
            if p.error:
                t.add_row(p.path, f"[red]skipped: {p.error}[/]", *["" for _ in labels])
            else:
                t.add_row(p.path, f"[bold]{p.label}[/]", *[f"{p.probabilities[lab]:.2f}" for lab in labels])
        console.print(t)
    bad = sum(1 for p in preds if p.error)
    if bad:
        console.print(f"[yellow]{bad} of {len(preds)} file(s) skipped[/]", highlight=False) if fmt == "table" else None
    if bad == len(preds):
        raise typer.Exit(1)
