"""`emoshift train` and `emoshift evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail, parse_named_roots, verbose_output
from emoshift.core.extras import needs


def build_cli_config(
    config: Path | None,
    corpus: list[str] | None,
    model: str | None,
    epochs: int | None,
    overrides: list[str] | None,
):  # type: ignore[no-untyped-def]
    """YAML (optional) + CLI shortcuts + --set overrides -> validated ExperimentConfig."""
    from emoshift.config import load_config
    from emoshift.models import CONFIG_CHECKS

    roots = parse_named_roots(corpus)
    shortcut: list[str] = []
    if roots:
        shortcut.append(f"data.corpora=[{', '.join(roots)}]")
        shortcut.extend(f"data.roots.{k}={v}" for k, v in roots.items())
    if model:
        shortcut.append(f"model.name={model}")
    if epochs is not None:
        shortcut.append(f"training.epochs={epochs}")
    return load_config(config, [*shortcut, *(overrides or [])], checks=CONFIG_CHECKS)


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="experiment YAML (optional)")] = None,
    corpus: Annotated[list[str] | None, typer.Option("--corpus", "-c", help="NAME=ROOT, repeatable")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="registered model name")] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", "-e", help="epochs to train (sets training.epochs)")
    ] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", "-s", help="key.path=value, repeatable")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory")] = Path("runs/run"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print the results only")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="also print the resolved config and each skipped file")
    ] = False,
) -> None:
    """Train a model (resumes RUN if it was interrupted) and evaluate it on its test speakers."""
    with needs("emoshift train"):
        cfg = build_cli_config(config, corpus, model, epochs, overrides)
    missing = [name for name in cfg.data.corpora if not cfg.data.roots.get(name)]
    if missing:  # before the heavy imports below, as every config check
        fail(f"no root folder for corpus {missing[0]!r}: pass --corpus {missing[0]}=/path/to/{missing[0]}")
    if verbose:
        verbose_output(cfg)
    with needs("emoshift train"):
        from emoshift.training.train import train as run_train

    _print_metrics(run_train(cfg, out, progress=not quiet))


def _print_metrics(run: Path) -> None:
    import json

    from rich.table import Table

    from emoshift.core.rundir import RunDir
    from emoshift.evaluation.metrics import with_ci

    rd = RunDir.of(run)
    metrics = [rd.metrics(c) for c in rd.metrics_corpora()]
    if not metrics:
        return
    loaded = [(p, json.loads(p.read_text())) for p in metrics]
    from emoshift.core.task import task_named

    if any(task_named(m.get("task")).rated for _, m in loaded):
        console.print(_dimensional_table(str(run), loaded))
        _print_training_audio(loaded)
        return
    from emoshift.evaluation.seeded import seed_text

    table = Table(title=f"{run}")
    for col in ("corpus", "split", "n", "accuracy [95% CI]", "UAR [95% CI]", "macro-F1", "ECE [95% CI]", "seeds (UAR)",
                "leaky", "text overlap"):
        table.add_column(col)
    def fmt(m: dict, key: str) -> str:  # type: ignore[type-arg]
        return with_ci(m.get(key), (m.get("ci95") or {}).get(key), m.get("speakers"))

    for p, m in loaded:
        leaky = "[red]LEAKY[/]" if m.get("leaky") else "no"
        table.add_row(p.stem, m.get("split", ""), str(m["n"]), fmt(m, "accuracy"), fmt(m, "uar"),
                      f"{m['macro_f1']:.3f}", fmt(m, "ece"), seed_text(m), leaky, _overlap_cell(m.get("text_overlap")))
    console.print(table)
    _print_abstention(loaded)
    _print_collapses(loaded)
    _print_training_audio(loaded)
    _print_agreement(loaded)


def _print_agreement(loaded: list[tuple[Path, dict]]) -> None:  # type: ignore[type-arg]
    """One line per corpus with raters' votes: the predicted distribution against theirs (metrics ``agreement``)."""
    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for p, m in loaded:
        if a := m.get("agreement"):
            console.print(f"{p.stem}: against the raters' votes ({a['n']} clips): cross-entropy "
                          f"{num(a['cross_entropy'])}, JS distance {num(a['js_distance'])}; UAR "
                          f"{num(a['uar_high'])} on the high-agreement half ({a['n_high']}), {num(a['uar_low'])} "
                          f"on the low ({a['n_low']})", highlight=False, soft_wrap=True)


def _overlap_cell(share: object) -> str:
    """The ``text overlap`` column: red as a leak when test texts were heard in training; ``-`` unknown."""
    if not isinstance(share, int | float) or isinstance(share, bool):
        return "-"
    return f"[red]{share:.0%}[/]" if share > 0 else "0%"


def _print_abstention(loaded: list[tuple[Path, dict]]) -> None:  # type: ignore[type-arg]
    """The confidence threshold that keeps evaluation.target_accuracy in-domain, and what it gives per corpus."""
    from emoshift.evaluation.confidence import abstention_text

    lines = [abstention_text(p.stem, m["abstention"]) for p, m in loaded if m.get("abstention")]
    if lines:
        console.print("abstention (plots/risk_coverage_<corpus>.png):\n  " + "\n  ".join(lines), highlight=False,
                      soft_wrap=True)


def _print_training_audio(loaded: list[tuple[Path, dict]]) -> None:  # type: ignore[type-arg]
    """The leak a speaker check cannot see: test audio the model trained on, under another name or path."""
    for p, m in loaded:
        if m.get("training_audio"):
            console.print(f"[red]leaky:[/] {p.stem}: {m['training_audio']} of {m['n']} test utterances are audio "
                          "this model trained on (the same decoded samples)", highlight=False, soft_wrap=True)


def _print_collapses(loaded: list[tuple[Path, dict]]) -> None:  # type: ignore[type-arg]
    """One warning line per corpus on which the model predicts (nearly) one class (metrics ``collapsed``)."""
    from emoshift.evaluation.metrics import collapse_text

    for p, m in loaded:
        if m.get("collapsed"):
            console.print(f"[bold yellow]warning:[/] {p.stem}: the model {collapse_text(m['collapsed'], m.get('n'))}",
                          highlight=False)


def _dimensional_table(title: str, loaded: list[tuple[Path, dict]]):  # type: ignore[no-untyped-def,type-arg]
    """CCC per target (and their mean) with the speaker-bootstrap CI, or ``n/a (k speakers)`` below 5."""
    from rich.table import Table

    from emoshift.core.task import task_named
    from emoshift.evaluation.metrics import with_ci

    targets = list(next(m for _, m in loaded if task_named(m.get("task")).rated)["targets"])
    table = Table(title=title)
    for col in ("corpus", "split", "n", "CCC [95% CI]", *[f"{t} CCC" for t in targets], "leaky"):
        table.add_column(col)

    def fmt(value: float | None, ci: list[float] | None, m: dict) -> str:  # type: ignore[type-arg]
        if value is None:
            return "no ratings" if not m.get("ratings", True) else "n/a"
        return with_ci(value, ci, m.get("speakers"))

    for p, m in loaded:
        per = m.get("per_target") or {}
        cells = [fmt((per.get(t) or {}).get("ccc"), ((per.get(t) or {}).get("ci95") or {}).get("ccc"), m) for t in targets]
        leaky = "[red]LEAKY[/]" if m.get("leaky") else "no"
        table.add_row(p.stem, m.get("split", ""), str(m.get("n", "")),
                      fmt(m.get("ccc"), (m.get("ci95") or {}).get("ccc"), m), *cells, leaky)
    return table


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run directory")],
    on: Annotated[list[str], typer.Option("--on", help="NAME=ROOT, repeatable")],
    perturb: Annotated[
        list[str] | None,
        typer.Option("--perturb", "-p", help="also score through a channel effect, repeatable: mp3:16k, opus:8k, "
                     "gsm, telephone, noise:snr=10, reverb:rt60=0.6, gain:-20db, clip"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print the results only")] = False,
) -> None:
    """Evaluate RUN on held-out test speakers of its corpora, or on every utterance of an unseen corpus; with
    --perturb, also on the same utterances through each channel effect (metrics/<corpus>@<spec>.json)."""
    from emoshift.data.channel import parse_perturbation

    roots = parse_named_roots(on, "--on")
    if not roots:
        fail("give at least one --on NAME=ROOT")
    perturbations = [parse_perturbation(s) for s in perturb or []]  # a bad SPEC: one line, before any work
    with needs("emoshift evaluate"):
        from emoshift.evaluation.evaluate import evaluate_run
        from emoshift.evaluation.robustness import evaluate_perturbations

    evaluate_run(run, roots, progress=not quiet)
    _print_metrics(run)
    if perturbations:
        results = evaluate_perturbations(run, roots, perturbations, progress=not quiet)
        _print_robustness(run, list(results))


def _print_robustness(run: Path, corpora: list[str]) -> None:
    from rich.table import Table

    from emoshift.evaluation.metrics import with_ci
    from emoshift.evaluation.robustness import robustness_rows

    table = Table(title=f"{run}: robustness (same utterances, clean vs perturbed)")
    for col in ("corpus", "perturbation", "n", "UAR clean", "UAR perturbed [95% CI]", "drop [95% CI, paired]"):
        table.add_column(col)
    for corpus in corpora:
        for r in robustness_rows(run, corpus):
            table.add_row(corpus, r["perturbation"], str(r["n"]), f"{r['uar_clean']:.3f}",
                          with_ci(r["uar"], r["uar_ci95"], r["speakers"]),
                          with_ci(r["uar_drop"], r["uar_drop_ci95"], r["speakers"], number=lambda v: f"{v:+.3f}"))
    console.print(table)


@app.command("models")
def models_cmd() -> None:
    """List the registered models (what --model / model.name accepts)."""
    from rich.table import Table

    from emoshift.models import get_spec, list_models

    t = Table(title="registered models")
    t.add_column("name")
    t.add_column("input")
    t.add_column("description")
    for name in list_models():
        spec = get_spec(name)
        t.add_row(name, spec.input_kind, spec.description)
    console.print(t)
