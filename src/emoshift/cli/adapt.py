"""`emoshift adapt`: a trained run adapted to a target corpus, written as a new run directory: to its unlabelled
audio (``--method corpus-norm|adabn``, :mod:`emoshift.training.adapt`), or few-shot to K of its labelled speakers
(``--labelled-speakers K``) and the learning curve over K (``--learning-curve 0,1,2,4,8``,
:mod:`emoshift.training.fewshot`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail, parse_named_roots


@app.command()
def adapt(
    run: Annotated[Path, typer.Argument(help="the trained run directory")],
    on: Annotated[str, typer.Option("--on", help="NAME=ROOT: the target's audio (a corpus folder, a manifest, or a "
                                    "plain folder of audio files under a name of your own); its labels are never read "
                                    "(few-shot: only the K speakers' labels)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the new run directory (must not exist; a learning "
                                         "curve: its output folder)")],
    method: Annotated[str | None, typer.Option(
        "--method", help="corpus-norm (default): the model's input standardisation set to the target's statistics; "
        "adabn: batch-norm statistics re-estimated on the target (CNNs)")] = None,
    labelled_speakers: Annotated[int | None, typer.Option(
        "--labelled-speakers", help="few-shot: adapt on the labelled audio of K target speakers (chosen by --seed, "
        "gender-balanced) and score the target's other speakers only")] = None,
    learning_curve: Annotated[str | None, typer.Option(
        "--learning-curve", help="few-shot learning curve: each K of this list (e.g. 0,1,2,4,8) adapted and scored on "
        "the same held-back speakers; writes OUT/curve.csv, curve.json, curve.png")] = None,
    seed: Annotated[int, typer.Option("--seed", help="few-shot: the seed that chooses the K speakers and "
                                      "fine-tunes")] = 0,
    seeds: Annotated[str | None, typer.Option("--seeds", help="learning curve: seeds, e.g. 0,1,2 (default: "
                                              "--seed)")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="few-shot fine-tuning epochs of a neural run "
                                               "(default 5)")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="few-shot fine-tuning learning rate (default: a tenth of "
                                             "the run's training.lr)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Adapt RUN to a target corpus and write the adapted model as a new run (-o RUN2), which predict, serve, export
    and evaluate use as any other: to its unlabelled audio (--method), or few-shot to K of its labelled speakers
    (--labelled-speakers K, scored on the others), or the few-shot learning curve (--learning-curve)."""
    from emoshift.core.extras import needs

    roots = parse_named_roots([on], "--on")
    if len(roots) != 1:
        fail("--on expects one NAME=ROOT")
    ((name, root),) = roots.items()
    if labelled_speakers is not None or learning_curve is not None:
        if method is not None:
            fail("--method is the unsupervised adaptation; --labelled-speakers / --learning-curve are few-shot: "
                 "give one or the other")
        if labelled_speakers is not None and learning_curve is not None:
            fail("give one of --labelled-speakers K (one adapted run) or --learning-curve 0,1,2,4,8 (the curve)")
        few_shot(run, name, root, output, labelled_speakers, learning_curve, seed, seeds, epochs, lr, quiet)
        return
    with needs("emoshift adapt"):
        from emoshift.training.adapt import AdaptRequest, adapt_run

    request = AdaptRequest(run=run, name=name, root=root, output=output, method=method or "corpus-norm")
    done = adapt_run(request, progress=not quiet)
    r = done.record
    console.print(f"adapted {run} to {r['corpus']} ({r['clips']} unlabelled clips, {r['method']}) -> {done.run}; "
                  f"score it with: emoshift evaluate {done.run} --on NAME=ROOT", highlight=False, soft_wrap=True)


def _ints(text: str, flag: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (one line, exit 2, for anything else)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"{flag} expects whole numbers separated by commas (e.g. 0,1,2,4,8), got {text!r}")
    if not values or min(values) < 0:
        fail(f"{flag} expects non-negative whole numbers separated by commas (e.g. 0,1,2,4,8), got {text!r}")
    return values


def few_shot(run: Path, name: str, root: str, out: Path, k: int | None, curve: str | None, seed: int,
             seeds: str | None, epochs: int | None, lr: float | None, quiet: bool) -> None:
    """The few-shot path of ``emoshift adapt``: one adapted run, or the learning curve."""
    from emoshift.evaluation.metrics import with_ci

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
        console.print(f"{result['corpus']}: few-shot learning curve on {len(result['held_back'])} held-back "
                      f"speakers, {len(result['seeds'])} seed(s)", highlight=False, soft_wrap=True)
        for p in result["points"]:
            console.print(f"  K={p['k']}: UAR {with_ci(p['uar'], p['ci95'], p['speakers'])}", highlight=False)
        console.print(f"wrote {out / 'curve.csv'}, curve.json, curve.png (runs in {out / 'runs'})", soft_wrap=True)
        return
    from emoshift.core.io import read_json
    from emoshift.core.rundir import RunDir, RunError
    from emoshift.training.fewshot import adapt_few_shot

    assert k is not None
    path = RunDir.of(adapt_few_shot(run, name, root, k, out, seed=seed, progress=not quiet, **tuning))
    a = path.info().adapted or {}
    console.print(f"adapted on {a.get('k')} speaker(s) of {a.get('corpus')} ({', '.join(a.get('speakers', []))}; "
                  f"seed {a.get('seed')}): wrote {path.path}", highlight=False, soft_wrap=True)
    for corpus in path.metrics_corpora():
        m = read_json(path.metrics(corpus), RunError)
        console.print(f"  {corpus} ({m.get('split')}, {m.get('speakers')} speakers): UAR "
                      f"{with_ci(m.get('uar'), (m.get('ci95') or {}).get('uar'), m.get('speakers'))}",
                      highlight=False, soft_wrap=True)
