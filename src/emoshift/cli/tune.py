"""`emoshift tune`: an Optuna search over config keys, scored on the validation speakers only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail, verbose_output
from emoshift.cli.train import build_cli_config
from emoshift.core.extras import require


@app.command()
def tune(
    space: Annotated[Path, typer.Option("--space", help="search space YAML: config keys -> ranges or choices")],
    trials: Annotated[int, typer.Option("--trials", "-n", help="finished trials wanted (a rerun continues to N)")],
    config: Annotated[Path | None, typer.Argument(help="experiment YAML (optional)")] = None,
    corpus: Annotated[list[str] | None, typer.Option("--corpus", "-c", help="NAME=ROOT, repeatable")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="registered model name")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", "-e", help="epochs per trial (sets training.epochs)")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", "-s", help="key.path=value, repeatable")] = None,
    storage: Annotated[
        str | None, typer.Option("--storage", help="study database URL, shared by every worker (default: sqlite in OUT)")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="worker processes on this machine")] = 1,
    study_name: Annotated[str | None, typer.Option("--study-name", help="default: the config's name")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("runs/tune"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print the results only")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also print the resolved config")] = False,
) -> None:
    """Search hyperparameters on the validation speakers (resumable; never touches the test speakers)."""
    require("tune", "emoshift tune")  # before any work: the search, and the training it runs, need both extras
    require("train", "emoshift tune")
    cfg = build_cli_config(config, corpus, model, epochs, overrides)
    if verbose:
        verbose_output(cfg)
    from emoshift.training.tune import tune as run_tune

    result = run_tune(cfg, space, out, trials=trials, storage=storage, jobs=jobs, study_name=study_name,
                      progress=not quiet)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.counts.items()))
    console.print(f"{result.out}: {counts}", highlight=False)
    if result.command is None:
        fail(f"no trial completed, so there is no best config (see {result.out / 'trials.csv'})", code=1)
    params = ", ".join(f"{k}={v!r}" for k, v in result.best_params.items())
    console.print(f"best {result.metric} {result.best_value:.4f} (trial {result.best_trial}): {params}", highlight=False)
    console.print(f"best config: {result.out / 'best.yaml'}; trials: {result.out / 'trials.csv'}", highlight=False)
    console.print("train it and score it on the test speakers (the only step that touches them):", highlight=False)
    console.print(result.command, highlight=False, soft_wrap=True)
