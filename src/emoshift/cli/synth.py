"""`emoshift synth OUT`: write synthetic RAVDESS- and CREMA-D-like corpora for tests, demos and trials.

emoshift synth demo-data --scale small --seed 0
emoshift synth /tmp/tiny --scale tiny
emoshift synth /tmp/tiny --scale tiny --corpora ravdess,crema-d,iemocap,manifest   (or --corpora all)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail

_SCALES = ("tiny", "small", "full")


@app.command("synth")
def synth(
    out: Annotated[
        Path,
        typer.Argument(
            metavar="OUT", help="Folder to write OUT/ravdess and OUT/crema-d into.", show_default=False
        ),
    ],
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            help="tiny (224 files, seconds; for tests), small (960 files; for `make demo`) or full "
            "(the real sizes: 1,440 + 7,442 files).",
        ),
    ] = "small",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 0,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Processes writing files (default: one per available CPU core)."),
    ] = None,
    corpora: Annotated[
        str,
        typer.Option(
            "--corpora",
            help="Comma-separated: ravdess, crema-d, iemocap (OUT/iemocap), manifest (OUT/manifest/manifest.csv), "
            "or all.",
        ),
    ] = "ravdess,crema-d",
) -> None:
    """Generate both synthetic corpora in their real layouts (re-running with the same scale and seed is free)."""
    if scale not in _SCALES:
        fail(f"--scale must be one of {', '.join(_SCALES)}, got {scale!r}")
    if seed < 0:
        fail(f"--seed must be a non-negative integer, got {seed}")
    if workers is not None and workers < 1:
        fail(f"--workers must be at least 1, got {workers}")

    from emoshift.core.progress import is_terminal
    from emoshift.synth import CORPORA, generate

    names = list(CORPORA) if corpora.strip().lower() == "all" else corpora.split(",")
    try:  # a bar on a terminal; elsewhere no progress line, since the summary below says it once
        summary = generate(out, scale=scale, seed=seed, workers=workers, progress=is_terminal(), corpora=names)
    except OSError as e:  # a SynthError is printed by the application, like every EmoshiftError
        fail(str(e))
    if summary["cached"]:
        console.print(f"{summary['out']} already holds the {scale} corpora for seed {seed}: nothing to do")
    for corpus, n_files in summary["files"].items():
        minutes = summary["audio_s"].get(corpus, 0.0) / 60
        console.print(
            f"{corpus:8s} {n_files:5d} files  {summary['speakers'][corpus]:3d} speakers  "
            f"{minutes:6.1f} min of audio  -> {Path(summary['out']) / corpus}",
            highlight=False,
        )
    if not summary["cached"]:
        kept = sum(summary["files"].values()) - summary["written"]
        console.print(
            f"wrote {summary['written']} files in {summary['seconds']:.1f} s (scale {scale}, seed {seed})"
            + (f"; {kept} already there" if kept else ""),
            highlight=False,
        )
