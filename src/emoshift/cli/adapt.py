"""`emoshift adapt`: a trained run adapted to a target corpus's unlabelled audio, written as a new run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail, parse_named_roots


@app.command()
def adapt(
    run: Annotated[Path, typer.Argument(help="the trained run directory")],
    on: Annotated[str, typer.Option("--on", help="NAME=ROOT: the target's audio (a corpus folder, a manifest, or a "
                                    "plain folder of audio files under a name of your own); its labels are never read")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the new run directory (must not exist)")],
    method: Annotated[str, typer.Option(
        "--method", help="corpus-norm: the model's input standardisation set to the target's statistics; adabn: "
        "batch-norm statistics re-estimated on the target (CNNs)")] = "corpus-norm",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Adapt RUN to a target corpus's unlabelled audio and write the adapted model as a new run (-o RUN2), which
    predict, serve, export and evaluate use as any other."""
    from emoshift.core.extras import needs

    roots = parse_named_roots([on], "--on")
    if len(roots) != 1:
        fail("--on expects one NAME=ROOT")
    ((name, root),) = roots.items()
    with needs("emoshift adapt"):
        from emoshift.training.adapt import AdaptRequest, adapt_run

    done = adapt_run(AdaptRequest(run=run, name=name, root=root, output=output, method=method), progress=not quiet)
    r = done.record
    console.print(f"adapted {run} to {r['corpus']} ({r['clips']} unlabelled clips, {r['method']}) -> {done.run}; "
                  f"score it with: emoshift evaluate {done.run} --on NAME=ROOT", highlight=False, soft_wrap=True)
