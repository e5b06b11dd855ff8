"""`emoshift study`: run every phase of the study (or some) and write the report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from emoshift.cli import app
from emoshift.cli._common import console, parse_named_roots, verbose_output

if TYPE_CHECKING:
    from emoshift.study.launch import LaunchOptions
    from emoshift.study.spec import Study
    from emoshift.study.summaries import ExperimentSummary


def _ids(items: list[str] | None) -> list[str] | None:
    """``--only L2 --only L4.5`` or ``--only L2,L4.5``."""
    ids = [i.strip() for item in items or [] for i in item.split(",") if i.strip()]
    return ids or None


def _launch_options(jobs: int | None, launcher: str, slurm: dict[str, object]) -> LaunchOptions:
    """--jobs / --launcher / --slurm-* as typed options (one-line errors); the --slurm-* given, or none."""
    from emoshift.study.launch import LaunchError, LaunchOptions

    given = {k: v for k, v in slurm.items() if v is not None}
    if given and launcher != "slurm":
        raise LaunchError("--slurm-* options need --launcher slurm")
    return LaunchOptions.build(jobs=jobs, launcher=launcher, slurm=given or None)


@app.command("study")
def study(
    config: Path = typer.Argument(
        ..., help="Study file: configs/study.yaml, cross_corpus.yaml (N x N matrix) or domain_shift.yaml (levers)."
    ),
    corpus: list[str] = typer.Option(
        None, "--corpus", help="NAME=ROOT of a corpus (repeatable); every experiment is tested on each."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: runs/<id>/, report.md/.html, results.csv."
    ),
    only: list[str] = typer.Option(
        None,
        "--only",
        help="Run just these experiment ids (repeatable or comma-separated), plus what they need.",
    ),
    profile: str | None = typer.Option(
        None, "--profile", help="Profile from the study file, e.g. demo or paper."
    ),
    overrides: list[str] = typer.Option(
        None, "--set", help="key=value for every experiment, or ID:key=value for one (repeatable)."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress output (the final table is printed)."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also print each experiment's resolved config and each skipped file."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        help="Run this many jobs (experiments and folds) at once, each as soon as what it needs is done "
        "[default: 1; with --launcher slurm: no cap].",
        show_default=False,
    ),
    launcher: str = typer.Option(
        "pool", "--launcher", help="pool (this machine) or slurm (each job a SLURM job, through submitit)."
    ),
    slurm_partition: str | None = typer.Option(None, "--slurm-partition", help="SLURM partition of every job."),
    slurm_time: str | None = typer.Option(
        None, "--slurm-time", help="Time limit of each SLURM job: minutes or [D-]H:MM[:SS] [default: 4:00:00]."
    ),
    slurm_gpus: int | None = typer.Option(
        None, "--slurm-gpus-per-job", help="GPUs of each SLURM job [default: 1].", show_default=False
    ),
    slurm_cpus: int | None = typer.Option(
        None, "--slurm-cpus-per-job", help="CPUs of each SLURM job [default: 8].", show_default=False
    ),
    slurm_mem: str | None = typer.Option(None, "--slurm-mem", help="Memory of each SLURM job, e.g. 32G."),
    slurm_account: str | None = typer.Option(None, "--slurm-account", help="SLURM account to charge."),
) -> None:
    """Run the study: train, evaluate and audit each experiment into OUT/runs/<id>/, then write the report.

    Experiments already complete with the same config are skipped, so an interrupted study resumes.
    Exits 1 when an experiment failed (the others still run and the report lists the error).
    With --jobs N (or --launcher slurm) experiments and their folds run as parallel jobs; the report is the same.
    """
    from emoshift.core.extras import needs

    with needs("emoshift study"):
        from emoshift.study import load_study, run_study, write_report
    from emoshift.study.report import collect

    slurm: dict[str, object] = {"partition": slurm_partition, "time_min": slurm_time, "gpus_per_job": slurm_gpus,
                                "cpus_per_job": slurm_cpus, "mem": slurm_mem, "account": slurm_account}
    launch = _launch_options(jobs, launcher, slurm)
    spec = load_study(config, profile=profile, roots=parse_named_roots(corpus), overrides=overrides or [],
                      only=_ids(only))
    if verbose:
        _print_configs(spec)
    result = run_study(spec, out, progress=not quiet, launch=launch)
    paths = write_report(out, spec, result)
    _print_key_results(collect(out, spec, result), spec)
    console.print(f"report: {paths['html']} (with {paths['markdown'].name} and {paths['results'].name})")
    _print_tables(paths)
    if not result.ok:
        console.print(f"[bold red]failed:[/] {', '.join(result.failed)} (see the report's Errors section)")
        raise typer.Exit(1)


def _print_tables(paths: dict[str, Path]) -> None:
    """The tables only some studies write: an N-corpus study's matrix, a benchmark's domain_shift.csv."""
    for key, what in (("cross_corpus", "cross-corpus matrix"), ("domain_shift", "what closes the gap")):
        if key in paths:
            console.print(f"{what}: {paths[key]}")


def _print_configs(spec: Study) -> None:
    """Each selected training experiment's resolved config (``--verbose``)."""
    for eid in spec.select(spec.only):
        exp = spec.experiment(eid)
        if exp.trains and exp.adapt is None:
            print(f"{eid}:", file=sys.stderr)
            verbose_output(exp.config)


def _print_key_results(summaries: list[ExperimentSummary], spec: Study) -> None:
    """The key-results table (the report's, compact) and the legend of the marks it uses."""
    from rich.table import Table

    from emoshift.study.report import corpus_order, key_results, marks_legend

    header, rows = key_results(summaries, corpus_order(spec, summaries), compact=True)
    table = Table(title="Key results, % (speaker-independent splits; 95% CIs in the report)")
    table.add_column(header[0], no_wrap=True)
    for h in header[1:-1]:  # "RAVDESS acc" -> two header lines, so the numbers get the width
        table.add_column(h.replace(" ", "\n", 1), justify="right", no_wrap=True)
    table.add_column(header[-1], no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    legend = marks_legend(header, rows)  # only the marks this table uses
    if legend:
        console.print(legend, highlight=False)
