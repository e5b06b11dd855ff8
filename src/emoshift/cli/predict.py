"""`emoshift predict`: label and probabilities per file, and per window or speech segment of a long file; bad files
are reported, the rest predicted. Uses RUN/model.onnx (onnxruntime, no torch) when it exists. A dimensional run
prints its ratings instead (CSV columns ``arousal,valence,dominance``: the targets it was trained on)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail, speech_check, speech_found


def _csv(preds: list[Any], names: list[str], labels: list[str]) -> None:
    import csv
    import sys

    w = csv.writer(sys.stdout)
    w.writerow(["path", "segment", "start_s", "end_s", "label", *[f"p_{lab}" for lab in labels], "error"])
    for p, name in zip(preds, names, strict=True):
        if p.error:
            w.writerow([name, "file", "", "", "", *["" for _ in labels], p.error])
            continue
        w.writerow([name, "file", "0.000", f"{p.duration_s:.3f}", p.label or "",  # uncertain: no label
                    *[f"{p.probabilities[lab]:.4f}" for lab in labels], ""])
        for i, s in enumerate(p.segments):
            w.writerow([name, i, f"{s.start_s:.3f}", f"{s.end_s:.3f}", s.label,
                        *[f"{s.probabilities[lab]:.4f}" for lab in labels], ""])


def _csv_values(preds: list[Any], names: list[str], targets: list[str]) -> None:
    """A dimensional model's ratings: one column per target (``arousal,valence,dominance``)."""
    import csv
    import sys

    w = csv.writer(sys.stdout)
    w.writerow(["path", "segment", "start_s", "end_s", *targets, "error"])
    for p, name in zip(preds, names, strict=True):
        if p.error:
            w.writerow([name, "file", "", "", *["" for _ in targets], p.error])
            continue
        w.writerow([name, "file", "0.000", f"{p.duration_s:.3f}", *[f"{p.values[t]:.4f}" for t in targets], ""])
        for i, s in enumerate(p.segments):
            w.writerow([name, i, f"{s.start_s:.3f}", f"{s.end_s:.3f}", *[f"{s.values[t]:.4f}" for t in targets], ""])


def out_of_range(preds: list[Any], value_range: tuple[float, float] | None) -> int:
    """How many file and segment values of dimensional predictions lie outside ``value_range``."""
    if value_range is None:
        return 0
    lo, hi = value_range
    values = [v for p in preds if not p.error for d in (p.values, *(s.values or {} for s in p.segments))
              for v in d.values()]
    return sum(1 for v in values if not lo <= v <= hi)


def _table_values(preds: list[Any], names: list[str], targets: list[str]) -> None:
    from rich.table import Table

    t = Table()
    t.add_column("file", min_width=min(40, max(len(n) for n in names)), overflow="fold")
    t.add_column("seconds", justify="right")
    for target in targets:
        t.add_column(target, justify="right")
    for p, name in zip(preds, names, strict=True):
        if p.error:
            t.add_row(name, "", f"[red]skipped: {p.error}[/]", *["" for _ in targets[1:]])
        else:
            t.add_row(name, f"{p.duration_s:.1f}", *[f"{p.values[x]:.3f}" for x in targets])
    console.print(t)
    for p, name in zip(preds, names, strict=True):
        if p.error or len(p.segments) < 2:
            continue
        s_t = Table(title=f"{name}: {len(p.segments)} segments", title_justify="left")
        for col in ("start_s", "end_s", *targets):
            s_t.add_column(col, justify="right")
        for s in p.segments:
            s_t.add_row(f"{s.start_s:.2f}", f"{s.end_s:.2f}", *[f"{s.values[x]:.3f}" for x in targets])
        console.print(s_t)


def _table(preds: list[Any], names: list[str], labels: list[str]) -> None:
    from rich.table import Table

    t = Table()
    t.add_column("file", min_width=min(40, max(len(n) for n in names)), overflow="fold")  # names kept whole
    t.add_column("seconds", justify="right")
    t.add_column("emotion")
    for lab in labels:
        t.add_column(lab, justify="right")
    for p, name in zip(preds, names, strict=True):
        if p.status == "no speech":
            t.add_row(name, "", "[yellow]no speech[/]", *["" for _ in labels])
        elif p.status == "uncertain":
            t.add_row(name, f"{p.duration_s:.1f}", "[yellow]uncertain[/]",
                      *[f"{p.probabilities[lab]:.2f}" for lab in labels])
        elif p.error:
            t.add_row(name, "", f"[red]skipped: {p.error}[/]", *["" for _ in labels])
        else:
            t.add_row(name, f"{p.duration_s:.1f}", f"[bold]{p.label}[/]", *[f"{p.probabilities[lab]:.2f}" for lab in labels])
    console.print(t)
    for p, name in zip(preds, names, strict=True):
        if p.error or len(p.segments) < 2:
            continue
        s_t = Table(title=f"{name}: {len(p.segments)} segments", title_justify="left")
        for col in ("start_s", "end_s", "label"):
            s_t.add_column(col, justify="right" if col != "label" else "left")
        for lab in labels:
            s_t.add_column(f"p_{lab}", justify="right")
        for s in p.segments:
            s_t.add_row(f"{s.start_s:.2f}", f"{s.end_s:.2f}", s.label, *[f"{s.probabilities[lab]:.2f}" for lab in labels])
        console.print(s_t)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run directory of a trained model")],
    paths: Annotated[list[Path], typer.Argument(help="audio files or folders")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
    backend: Annotated[str, typer.Option("--backend", help="auto (model.onnx if present) | onnx | torch")] = "auto",
    window: Annotated[float | None, typer.Option("--window", help="window seconds (default: the model's crop)")] = None,
    hop: Annotated[float | None, typer.Option("--hop", help="hop seconds (default: window / 3)")] = None,
    vad: Annotated[bool, typer.Option("--vad", help="score speech segments found by Silero VAD instead of windows")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="folder for one timeline PNG per file")] = None,
    vad_check: Annotated[bool | None, typer.Option(
        "--vad-check/--no-vad-check", show_default=False,
        help="answer 'no speech' (no label) for a file in which Silero VAD finds no speech (default: on when "
        "the 'vad' extra is installed)")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        "--min-confidence", help="answer 'uncertain' (no label; JSON status 'uncertain', CSV an empty label) for a "
        "file whose top probability is below P (0-1)", metavar="P")] = None,
) -> None:
    """Predict the emotion of each audio file (folders are searched recursively), over time for long files."""
    import json
    import sys

    if fmt not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json, got {fmt!r}")
    from emoshift.core.extras import require
    from emoshift.deploy.predict import Predictor, display_names
    from emoshift.deploy.segments import Segmentation

    if plot is not None:
        require("plots", "--plot")

    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        fail(f"--min-confidence must lie between 0 and 1, got {min_confidence:g}")
    seg = Segmentation(mode="vad" if vad else "window", window_s=window, hop_s=hop,
                       speech=plot is not None and speech_found(), speech_check=speech_check(vad, vad_check))
    predictor = Predictor(run, backend=backend, segmentation=seg, min_confidence=min_confidence)
    labels = predictor.labels
    if min_confidence is not None and predictor.targets:
        fail("--min-confidence is for a model of emotion classes; this one predicts ratings")
    seg.sizes(predictor.backend.meta.window_s)  # bad --window/--hop: one line before any file is read
    preds = list(predictor.predict_paths(paths))
    names = display_names([p.path for p in preds])
    if fmt == "json":
        rows = [{**p.to_dict(), "path": p.path, "name": n} for p, n in zip(preds, names, strict=True)]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif predictor.targets:  # a dimensional model: its ratings, one column per target
        (_csv_values if fmt == "csv" else _table_values)(preds, names, predictor.targets)
        outside = out_of_range(preds, predictor.backend.meta.target_range)
        if outside and fmt == "table":
            lo, hi = predictor.backend.meta.target_range or (0.0, 1.0)
            console.print(f"[yellow]note: {outside} value(s) fall outside the model's target_range [{lo:g}, {hi:g}] "
                          "(its outputs are not clipped: the network only learned to aim inside it)[/]",
                          highlight=False)
    elif fmt == "csv":
        _csv(preds, names, labels)
    else:
        _table(preds, names, labels)
    if plot is not None:
        from emoshift.deploy.timeline import plot_timeline, summary

        meta = predictor.backend.meta
        for p, name in zip(preds, names, strict=True):
            if not p.error:
                out = plot / (name.replace("/", "__").rsplit(".", 1)[0] + ".png")
                plot_timeline(p.segments, list(meta.outputs), out, title=f"{name}: {summary(p)}",
                              duration_s=p.duration_s, speech=p.speech, value_range=meta.target_range)
    bad = sum(1 for p in preds if p.status == "skipped")
    quiet = sum(1 for p in preds if p.status == "no speech")
    unsure = sum(1 for p in preds if p.status == "uncertain")
    if unsure and fmt == "table":
        console.print(f"[yellow]{unsure} of {len(preds)} file(s) uncertain (top probability below "
                      f"{min_confidence:g}: not labelled)[/]", highlight=False)
    if (bad or quiet) and fmt == "table":
        said = [f"{bad} of {len(preds)} file(s) skipped"] if bad else []
        said += [f"{quiet} held no speech (not labelled; --no-vad-check labels them anyway)"] if quiet else []
        console.print(f"[yellow]{', '.join(said)}[/]", highlight=False)
    if bad == len(preds):
        raise typer.Exit(1)
