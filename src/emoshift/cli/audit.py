"""`emoshift audit` (fairness audit per speaker group) and `emoshift compare` (paired test of two runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail, parse_named_roots


@app.command("audit")
def audit(
    run: Path = typer.Argument(..., help="Run directory (holds model.json and predictions/<corpus>.csv)."),
    on: list[str] = typer.Option(..., "--on", help="NAME=ROOT of a corpus to audit on (repeatable)."),
    by: str = typer.Option(
        "gender,age_band", "--by", help="Groupings, comma-separated: gender, age_band, race, ethnicity."
    ),
    age_bands: str | None = typer.Option(
        None,
        "--age-bands",
        help="Lower edges of age bands, e.g. 20,35,50 (default: decades 20-29, 30-39, ...).",
    ),
    min_speakers: int = typer.Option(
        3, "--min-speakers", help="Groups with fewer speakers are not compared."
    ),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples (over speakers) per CCC CI (dimensional runs)."),
    permutations: int = typer.Option(
        1000, "--permutations", help="Permutations for the group-difference test."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the CCC bootstrap and the permutation test."),
) -> None:
    """Audit a run for group differences: per-group metrics with CIs, gaps, ratios, a permutation test
    (UAR for a categorical run, CCC for a dimensional one).

    Writes RUN/audit/<corpus>.json, <corpus>.md and per-grouping bar and confusion plots.
    """
    import json

    from emoshift.evaluation.audit import audit_run, collapse_verdict, parse_age_bands, parse_by, verdict
    from emoshift.evaluation.modelcard import refresh_model_card

    roots = parse_named_roots(on, "--on")
    # every user error below is an EmoshiftError (AuditError, PredictionsError, ...), printed by the
    # application as one line; anything else is a bug and keeps its traceback
    keys = parse_by(by)
    edges = parse_age_bands(age_bands)
    for name, root in roots.items():
        path = audit_run(
            run,
            name,
            root,
            by=keys,
            age_bands=edges,
            seed=seed,
            n_resamples=resamples,
            n_permutations=permutations,
            min_speakers=min_speakers,
        )
        report = json.loads(path.read_text(encoding="utf-8"))
        console.print(
            f"[bold]{report['corpus']}[/]: wrote {path} and {path.with_suffix('.md').name}",
            soft_wrap=True,
        )
        if collapse_verdict(report):
            console.print(f"  [bold yellow]{collapse_verdict(report)}[/]", highlight=False, soft_wrap=True)
        for key, section in report["by"].items():
            console.print(f"  {verdict(key, section)}", highlight=False, soft_wrap=True)
    # the card's fairness section reads audit/ (here, not in audit_run: the card reads the audit module)
    card = refresh_model_card(run)
    if card is not None:
        console.print(f"updated {card}", highlight=False, soft_wrap=True)


@app.command("compare")
def compare(
    run_a: Path = typer.Argument(..., help="First run directory (A)."),
    run_b: Path = typer.Argument(..., help="Second run directory (B)."),
    on: str = typer.Option(..., "--on", help="NAME=ROOT of the corpus both runs are tested on."),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Output JSON (default RUN_A/compare/<RUN_B name>_<corpus>.json)."
    ),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples (over speakers; the CCC of dimensional runs)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling (the CCC of dimensional runs)."),
) -> None:
    """Paired comparison of two runs on the same test utterances: McNemar + speaker-level CI of the UAR difference
    (dimensional runs: paired bootstrap CI of the CCC difference, per target and mean)."""
    from emoshift.evaluation.compare import compare_runs

    ((name, root),) = parse_named_roots([on], "--on").items()
    if resamples < 1:
        fail(f"--resamples must be at least 1, got {resamples}")
    path, result = compare_runs(run_a, run_b, name, root, out=out, seed=seed, n_resamples=resamples)
    console.print(result["verdict"], highlight=False, soft_wrap=True)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)
