"""`emoshift adapt`: a finished run adapted to a target corpus; few-shot (``--labelled-speakers K``) and its
learning curve (``--learning-curve 0,1,2,4,8``): :mod:`emoshift.training.fewshot`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail, parse_named_roots


def _ints(text: str, flag: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (one line, exit 2, for anything else)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"{flag} expects whole numbers separated by commas (e.g. 0,1,2,4,8), got {text!r}")
    if not values or min(values) < 0:
        fail(f"{flag} expects non-negative whole numbers separated by commas (e.g. 0,1,2,4,8), got {text!r}")
    return values


def _target(on: list[str]) -> tuple[str, str]:
    roots = parse_named_roots(on, "--on")
    if len(roots) != 1:
        fail(f"--on names the one target corpus to adapt to (NAME=ROOT), got {len(roots)}")
    return next(iter(roots.items()))


def few_shot(run: Path, on: list[str], out: Path, k: int | None, curve: str | None, seed: int, seeds: str | None,
             epochs: int | None, lr: float | None, quiet: bool) -> None:
    """The few-shot path of ``emoshift adapt``: one adapted run, or the learning curve."""
    from emoshift.evaluation.metrics import with_ci

    name, root = _target(on)
    if lr is not None and lr <= 0:
        fail(f"--lr must be positive, got {lr}")
    if epochs is not None and epochs < 1:
        fail(f"--epochs must be at least 1, got {epochs}")
    tuning: dict[str, Any] = {"lr": lr, **({"epochs": epochs} if epochs is not None else {})}
    if curve is not None:
        from emoshift.training.fewshot_curve import learning_curve

        seed_list = _ints(seeds, "--seeds") if seeds else [seed]
        result = learning_curve(run, name, root, _ints(curve, "--learning-curve"), out, seeds=seed_list,
                                progress=not quiet, **tuning)
        console.print(f"[bold]{result['corpus']}[/]: few-shot learning curve on {len(result['held_back'])} held-back "
                      f"speakers, {len(result['seeds'])} seed(s)", soft_wrap=True)
        for p in result["points"]:
            console.print(f"  K={p['k']}: UAR {with_ci(p['uar'], p['ci95'], p['speakers'])}", highlight=False)
        console.print(f"wrote {out / 'curve.csv'}, curve.json, curve.png (runs in {out / 'runs'})", soft_wrap=True)
        return
    from emoshift.core.io import read_json
    from emoshift.core.rundir import RunDir, RunError
    from emoshift.training.fewshot import adapt_few_shot

    assert k is not None
    path = RunDir.of(adapt_few_shot(run, name, root, k, out, seed=seed, progress=not quiet, **tuning))
    a = path.info().adaptation or {}
    console.print(f"adapted on {a.get('k')} speaker(s) of {a.get('corpus')} ({', '.join(a.get('speakers', []))}; "
                  f"seed {a.get('seed')}): wrote {path.path}", highlight=False, soft_wrap=True)
    for corpus in path.metrics_corpora():
        m = read_json(path.metrics(corpus), RunError)
        console.print(f"  {corpus} ({m.get('split')}, {m.get('speakers')} speakers): UAR "
                      f"{with_ci(m.get('uar'), (m.get('ci95') or {}).get('uar'), m.get('speakers'))}",
                      highlight=False, soft_wrap=True)


@app.command("adapt")
def adapt(
    run: Path = typer.Argument(..., help="A finished run directory."),
    on: list[str] = typer.Option(..., "--on", help="NAME=ROOT of the target corpus to adapt to."),
    out: Path = typer.Option(..., "-o", "--out", help="The adapted run directory (a curve: its output folder)."),
    labelled_speakers: int | None = typer.Option(
        None, "--labelled-speakers", help="Few-shot: adapt on the labelled audio of K target speakers (chosen by "
        "--seed, gender-balanced) and score the target's other speakers only."),
    learning_curve: str | None = typer.Option(
        None, "--learning-curve", help="Few-shot learning curve: each K of this list (e.g. 0,1,2,4,8) adapted and "
        "scored on the same held-back speakers; writes OUT/curve.csv, curve.json, curve.png."),
    seed: int = typer.Option(0, "--seed", help="Few-shot: the seed that chooses the K speakers and fine-tunes."),
    seeds: str | None = typer.Option(None, "--seeds", help="Learning curve: seeds, e.g. 0,1,2 (default: --seed)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Few-shot fine-tuning epochs of a neural run "
                                      "(default 5)."),
    lr: float | None = typer.Option(None, "--lr", help="Few-shot fine-tuning learning rate (default: a tenth of "
                                    "the run's training.lr)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Adapt a finished run to a target corpus: few-shot on K labelled speakers (--labelled-speakers K), or its
    learning curve over K (--learning-curve 0,1,2,4,8). The adapted run is a normal run directory (predict,
    evaluate, export use it) whose model card and model.json say what it was adapted on."""
    if (labelled_speakers is None) == (learning_curve is None):
        fail("give one of --labelled-speakers K (one adapted run) or --learning-curve 0,1,2,4,8 (the curve)")
    few_shot(run, on, out, labelled_speakers, learning_curve, seed, seeds, epochs, lr, quiet)
