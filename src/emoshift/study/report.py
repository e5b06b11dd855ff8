"""The study report: ``OUT/report.md``, a self-contained ``OUT/report.html`` and ``OUT/results.csv``.

Everything is read back from the run directories (``OUT/runs/<id>/``, :mod:`emoshift.study.summaries`), so the
report can be rebuilt at any time from whatever runs exist; a :class:`~emoshift.study.plan.StudyResult` adds
what happened in this invocation (failures, wall time). The report is first built as a list of blocks (headings, paragraphs, tables, images),
then rendered twice (:mod:`emoshift.study.render`): Markdown with relative image links, and HTML with every
plot embedded as a base64 PNG data URI and inline CSS (no external file, script or font).

Sections: key results (accuracy and UAR with 95% CIs per corpus, the fold sd and, trained over several seeds,
the seeds' mean and sd beside them, the study's own numbers, and a chart of the UARs with their CIs and each
seed's UAR as a dot), the findings (each claim of the study as a paired test with a verdict,
:mod:`emoshift.study.claims`; also ``OUT/findings.csv``), what closes the gap (a leave-one-corpus-out benchmark of the
levers, :mod:`emoshift.study.gap`; also ``OUT/domain_shift.csv``), the cross-corpus UAR matrix, confusion matrices,
calibration and abstention (:mod:`emoshift.study.calibration`), training curves, the fairness audit, robustness to
channels (the study file's ``robustness:`` perturbations, :mod:`emoshift.study.robustness`), leakage flags, run time,
errors and the environment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from emoshift.core.extras import optional
from emoshift.core.io import atomic_write_csv, atomic_write_text
from emoshift.core.rundir import RunDir
from emoshift.data.texts import overlap_mark
from emoshift.evaluation.metrics import collapse_text, with_ci
from emoshift.evaluation.seeded import NOT_MEASURED
from emoshift.study.calibration import confidence_blocks
from emoshift.study.claims import FINDING_COLUMNS, Finding, findings_blocks, gather
from emoshift.study.environment import environment
from emoshift.study.gap import gap_blocks, gap_paths
from emoshift.study.matrix import matrix_blocks, matrix_paths
from emoshift.study.render import (
    Block,
    Bullets,
    Heading,
    Image,
    Para,
    Table,
    clock,
    corpus_title,
    pct,
    render_html,
    render_markdown,
)
from emoshift.study.robustness import robustness_blocks
from emoshift.study.summaries import (
    RESULT_COLUMNS,
    CorpusMetrics,
    ExperimentSummary,
    collect,
    corpus_order,
    result_rows,
)

if TYPE_CHECKING:  # the spec imports the experiment config (and so torch); the report reads runs only
    from emoshift.study.plan import StudyResult
    from emoshift.study.spec import Study

REPORTED_PROTOCOL = "study's protocol (random utterance split, likely leaky)"
FIGURES = "the report's figures"  # what a core install without the plots extra leaves out (one note)


def _fold_spread(m: CorpusMetrics) -> str:
    """``, fold sd 3.1 (6 folds)`` for a k-fold score, and ``, seed mean 51.2, sd 2.0 (3 seeds)`` for a score
    trained over several seeds (the score is then their mean); else nothing."""
    out = "" if m.folds is None or m.uar_fold_sd is None else f", fold sd {pct(m.uar_fold_sd)} ({m.folds} folds)"
    if m.seed_uars and m.uar_seed_sd is not None:
        out += f", seed mean {pct(fmean(m.seed_uars))}, sd {pct(m.uar_seed_sd)} ({len(m.seed_uars)} seeds)"
    return out


def key_results(
    summaries: Sequence[ExperimentSummary], corpora: Sequence[str], *, compact: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the key-results table (shared by the report and the CLI's console table).

    ``compact`` (for a terminal) leaves out the title, architecture and data columns and the intervals, marks a corpus the model
    never saw with "*", a leaky score with "!" and a model collapsed to one class with "#", heads the study's reported numbers "study†", and gives a
    failed experiment's status without its error; the caller explains the marks.
    """
    reported = [c for c in corpora if any(c in s.reported_accuracy for s in summaries)]
    header = ["ID"] if compact else ["ID", "experiment", "architecture", "data"]
    # ECE beside UAR (runs evaluated before calibration was measured have none: then no column)
    calibrated = [c for c in corpora if any((m := s.metrics.get(c)) is not None and m.ece is not None
                                            for s in summaries)]
    for c in corpora:
        if compact:
            header += [f"{corpus_title(c)} acc", f"{corpus_title(c)} UAR"]
        else:
            header += [f"{corpus_title(c)} acc % [95% CI]", f"{corpus_title(c)} UAR % [95% CI]"]
            header += [f"{corpus_title(c)} ECE [95% CI]"] if c in calibrated else []
    if compact:
        header += [f"{corpus_title(c)} study†" for c in reported]
    else:
        header += [f"{corpus_title(c)} acc %, {REPORTED_PROTOCOL}" for c in reported]
    header.append("status")
    rows = []
    for s in summaries:
        row = [s.id] if compact else [s.id, s.title, s.architecture, s.data_strategy]
        for c in corpora:
            m = s.metrics.get(c)
            if m is None:
                row += ["–", "–"] + (["–"] if c in calibrated and not compact else [])
            elif compact:
                mark = ("!" if m.leaky else "") + ("*" if m.split == "all" else "") + ("#" if m.collapsed else "")
                row += [pct(m.accuracy) + mark, pct(m.uar) + mark]
            else:
                mark = (" ⚠ leaky" if m.leaky else "") + (" (unseen)" if m.split == "all" else "")
                mark += f" ⚠ collapsed: predicts {m.collapsed['label']!r} only" if m.collapsed else ""
                row += [
                    with_ci(m.accuracy, m.accuracy_ci, m.speakers, number=pct) + mark,
                    with_ci(m.uar, m.uar_ci, m.speakers, number=pct) + _fold_spread(m) + mark,
                ]
                row += [_ece_cell(m)] if c in calibrated else []
        row += [f"{s.reported_accuracy[c]:.2f}" if c in s.reported_accuracy else "–" for c in reported]
        row.append(s.status if compact or not s.error else f"{s.status}: {s.error}")
        rows.append(row)
    return header, rows


def _ece_cell(m: CorpusMetrics) -> str:
    """``0.084 [0.056, 0.130]``, with ``; 0.104 before temperature scaling`` for a calibrated run."""
    cell = with_ci(m.ece, m.ece_ci, m.speakers)
    return cell + (f"; {m.ece_uncalibrated:.3f} before temperature scaling" if m.ece_uncalibrated is not None else "")


COMPACT_MARKS: tuple[tuple[str, str], ...] = (
    ("*", "a corpus the model never saw (every utterance)"),
    ("!", "leaky split"),
    ("#", "the model predicts one class for (nearly) every utterance (collapsed)"),
)


def marks_legend(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The legend of the marks a compact key-results table uses (none it does not use): "*", "!", "#" in
    its cells, "†" in its header."""
    cells = " ".join(c for row in rows for c in row[1:-1])  # not the ID or the status
    used = [f"{mark} {what}" for mark, what in COMPACT_MARKS if mark in cells]
    lines = ["   ".join(used)] if used else []
    if any("†" in h for h in header):
        lines.append(f"† accuracy the study reported, {REPORTED_PROTOCOL}: not measured here")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Sections


def _overview(
    study: Study, summaries: Sequence[ExperimentSummary], results: StudyResult | None
) -> list[Block]:
    blocks: list[Block] = [Heading(study.title, 1)]
    if study.description:
        blocks.append(Para(study.description))
    roots = ", ".join(f"{corpus_title(c)} = {r}" for c, r in study.roots.items()) or "none"
    facts = [
        f"Study file: {study.path}; profile: {study.profile or 'none (defaults)'}"
        + (f" ({study.profile_description.strip()})" if study.profile_description else ""),
        f"Corpora: {roots}",
    ]
    if study.overrides:
        facts.append("Overrides (--set): " + " ".join(study.overrides))
    counts: dict[str, int] = {}
    for s in summaries:
        counts[s.status] = counts.get(s.status, 0) + 1
    facts.append(f"{len(summaries)} experiments: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    failed = [s for s in summaries if s.status == "failed"]
    if failed:
        facts.append("FAILED: " + "; ".join(f"{s.id} ({s.error})" for s in failed))
    if results is not None:
        facts.append(f"This invocation ran {', '.join(results.selected)} in {clock(results.seconds)}")
    blocks.append(Bullets(facts))
    return blocks


def _key_results(summaries: Sequence[ExperimentSummary], corpora: Sequence[str], out: Path) -> list[Block]:
    header, rows = key_results(summaries, corpora)
    notes = [
        "Accuracy and UAR (unweighted average recall) in %, with 95% confidence intervals from a bootstrap over "
        "speakers; 'n/a (N speakers)' where N is too few for one. Every split is by speaker: a corpus the model "
        "was trained on is scored on held-out speakers (with k-fold speaker CV: the pooled out-of-fold "
        "predictions, every speaker scored once by a fold model that never heard them; 'fold sd' is the spread "
        "of the per-fold UARs), a corpus it never saw on every utterance (marked 'unseen'; with k-fold CV by "
        "the ensemble of the fold models).",
        _seeds_note(summaries),
        "ECE (expected calibration error, 15 equal-width confidence bins, top label): how far the model's "
        "confidence is from its accuracy, 0 is perfectly calibrated; with evaluation.calibrate: temperature "
        "the ECE of the network's own probabilities follows it. Each run's plots/reliability_<corpus>.png and "
        "plots/risk_coverage_<corpus>.png show them.",
        f"The columns '{REPORTED_PROTOCOL}' are the accuracies the original study reported, copied from it and "
        "not measured here; its 99.73% on RAVDESS is far above published speaker-independent results and "
        "probably comes from splitting clips at random (the same actors in train and test).",
    ]
    notes += [
        f"{s.id} on {corpus_title(c)}: the model {collapse_text(m.collapsed, m.n)}; its interval and fold sd are "
        "narrow because every resample scores the same, not because the score is certain."
        for s in summaries for c in corpora if (m := s.metrics.get(c)) is not None and m.collapsed
    ]
    notes += [n for s in summaries if s.metrics for n in s.notes]  # experiments without a score: no notes
    return [Heading("Key results"), Table(header, rows), *_key_chart(summaries, corpora, out), Bullets(notes)]


def _seeds_note(summaries: Sequence[ExperimentSummary]) -> str:
    """What the scores say about training randomness: several seeds (training.seeds) or one."""
    scored = [s for s in summaries if s.metrics]
    one = [s.id for s in scored if max(m.seeds for m in s.metrics.values()) == 1]
    several = ("Trained over several seeds (training.seeds), a score is the mean over the seeds, its interval "
               "covers the speakers and the seeds, and 'seed mean, sd' is the spread of the seeds' UARs (the chart "
               "draws each seed's UAR as a dot).")
    if not one:
        return several
    if len(one) == len(scored):
        return f"Every experiment trained one seed: {NOT_MEASURED}; the intervals cover the speakers only."
    return f"{several} {', '.join(one)} trained one seed: {NOT_MEASURED}; their intervals cover the speakers only."


def _key_chart(summaries: Sequence[ExperimentSummary], corpora: Sequence[str], out: Path) -> list[Block]:
    """UAR with its 95% CI per experiment and test corpus, as bars (hatched where there is no CI), and each
    seed's UAR as a dot where there are several seeds."""
    points = {
        s.id: {corpus_title(c): m.seed_uars for c in corpora if (m := s.metrics.get(c)) is not None and m.seed_uars}
        for s in summaries
        if s.trains and s.metrics
    }
    scores = {
        s.id: {
            corpus_title(c): (m.uar, m.uar_ci if m.ci_shown else None)
            for c in corpora
            if (m := s.metrics.get(c)) is not None
        }
        for s in summaries
        if s.trains and s.metrics
    }
    if not scores or not optional("plots", FIGURES):
        return []
    from emoshift.evaluation.plots import plot_scores_ci

    seeded = any(points.values())
    path = plot_scores_ci(scores, out / "plots" / "key_results_uar.png", title="UAR per experiment and test corpus",
                          points=points if seeded else None)
    caption = ("key results: UAR with 95% CIs over speakers and seeds (dots: each training seed's UAR)" if seeded
               else "key results: UAR with 95% speaker-bootstrap CIs")
    return [Image(path, caption)]


def _cross_corpus(summaries: Sequence[ExperimentSummary], corpora: Sequence[str], out: Path) -> list[Block]:
    trained = [s for s in summaries if s.trains and s.metrics]
    blocks: list[Block] = [
        Heading("Cross-corpus matrix (UAR)"),
        Para(
            "Rows: each experiment and the corpora it was trained on; columns: the test corpus. In-domain cells "
            "are held-out test speakers, the others every utterance of a corpus the model never saw."
        ),
    ]
    if not trained or not corpora:
        return [*blocks, Para("No run has been evaluated yet.")]
    labels = [f"{s.id} ({'+'.join(corpus_title(c) for c in s.train_corpora)})" for s in trained]
    matrix = [[s.metrics[c].uar if c in s.metrics else None for c in corpora] for s in trained]
    table = Table(
        ["experiment (training data)", *[corpus_title(c) for c in corpora]],
        [[label, *[pct(v) for v in row]] for label, row in zip(labels, matrix, strict=True)],
    )
    if not optional("plots", FIGURES):
        return [*blocks, table]
    from emoshift.evaluation.plots import plot_heatmap

    path = plot_heatmap(
        matrix,
        labels,
        [corpus_title(c) for c in corpora],
        out / "plots" / "cross_corpus_uar.png",
        title="UAR: training data x test corpus",
        fmt=".2f",
        xlabel="test corpus",
        ylabel="experiment (training data)",
    )
    return [*blocks, Image(path, "cross-corpus UAR heatmap"), table]


def _confusions(summaries: Sequence[ExperimentSummary], corpora: Sequence[str], out: Path) -> list[Block]:
    blocks: list[Block] = [Heading("Confusion matrices"), Para("Rows: true class; each row sums to 1.")]
    any_plot = False
    for s in summaries:
        if not s.trains or not s.metrics:
            continue
        blocks.append(Heading(f"{s.id}: {s.title}", 3))
        for c in corpora:
            m = s.metrics.get(c)
            if m is None:
                continue
            path = RunDir.of(s.run).confusion_plot(c)
            if not path.is_file() and m.confusion and m.labels:
                if not optional("plots", FIGURES):
                    continue
                from emoshift.evaluation.plots import plot_confusion

                path = out / "plots" / f"confusion_{s.id}_{c}.png"
                if not _drawn_since(path, RunDir.of(s.run).metrics(c)):
                    plot_confusion(m.confusion, m.labels, path, title=f"{s.id} on {c}")
            blocks.append(Image(path, f"{s.id} on {corpus_title(c)} ({m.split})"))
            any_plot = True
    return blocks if any_plot else [*blocks[:1], Para("No run has been evaluated yet.")]


def _drawn_since(figure: Path, source: Path) -> bool:
    """``figure`` (one the report draws for a run that drew none) was drawn after ``source`` (the run's metrics
    or done.json) last changed: a report written again over the same runs draws it again only for a run that
    was retrained or evaluated again since."""
    try:
        return figure.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def _best_epoch(log: Sequence[dict[str, str]]) -> tuple[str, str]:
    best: tuple[float, str] | None = None
    for row in log:
        try:
            v = float(row.get("val_uar") or "nan")
        except ValueError:
            continue
        if v == v and (best is None or v > best[0]):
            best = (v, str(row.get("epoch", "?")))
    return (pct(best[0]), best[1]) if best else ("–", "–")


def _curves(summaries: Sequence[ExperimentSummary], out: Path) -> list[Block]:
    rows, images = [], []
    for s in summaries:
        if not s.trains or not s.log:
            continue
        uar, epoch = _best_epoch(s.log)
        epochs = len({r.get("epoch") for r in s.log})
        rows.append([s.id, str(epochs), uar, epoch, s.model or "–"])
        path = RunDir.of(s.run).curves_plot
        if not path.is_file():
            if not optional("plots", FIGURES):
                continue
            from emoshift.evaluation.plots import plot_curves

            path = out / "plots" / f"curves_{s.id}.png"
            try:
                if not _drawn_since(path, RunDir.of(s.run).done):
                    plot_curves(s.log, path)
            except ValueError:
                continue
        images.append(Image(path, f"{s.id}: training curves"))
    if not rows:
        return [Heading("Training curves"), Para("No training log yet.")]
    table = Table(["ID", "epochs", "best validation UAR %", "at epoch", "model"], rows)
    note = Para("A k-fold cross-validated run shows its first fold's curves (RUN/folds/0/log.csv).")
    return [Heading("Training curves"), note, table, *images]


def _fairness_summary(audited: Sequence[ExperimentSummary]) -> Table:
    """One row per experiment, corpus and grouping: the groups compared, the gaps and the p-value."""
    rows = []
    for s in audited:
        for corpus, report in s.audits.items():
            for key, section in report["by"].items():
                if not section.get("available"):
                    rows.append([s.id, corpus_title(corpus), key, "not recorded", "–", "–", "–"])
                    continue
                gap = section.get("gap") or {}
                p = section.get("p_value_uar")
                compared = ", ".join(section.get("compared", [])) or "none with enough speakers"
                rows.append(
                    [
                        s.id,
                        corpus_title(corpus),
                        key,
                        compared,
                        pct(gap.get("uar")),
                        pct(gap.get("accuracy")),
                        "–" if p is None else f"{p:.3f}",
                    ]
                )
    header = [
        "ID",
        "corpus",
        "by",
        "groups compared",
        "UAR gap (pts)",
        "accuracy gap (pts)",
        "p-value (UAR gap)",
    ]
    return Table(header, rows)


def _group_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, section in report["by"].items():
        for group, r in (section.get("groups") or {}).items():
            rows.append(
                [
                    key,
                    group + (" (too small)" if r.get("too_small") else ""),
                    str(r.get("speakers", "")),
                    str(r.get("n", "")),
                    with_ci(r.get("accuracy"), r.get("accuracy_ci"), r.get("speakers"), number=pct),
                    with_ci(r.get("uar"), r.get("uar_ci"), r.get("speakers"), number=pct),
                ]
            )
    return rows


def _audit_detail(s: ExperimentSummary, corpus: str, report: dict[str, Any]) -> list[Block]:
    """One audit of one corpus: a verdict per grouping, the per-group scores, the plots."""
    from emoshift.evaluation.audit import collapse_verdict, verdict

    collapse = collapse_verdict(report)
    blocks: list[Block] = [
        Heading(f"{s.id} on {corpus_title(corpus)} (model of {s.source})", 3),
        Bullets([*([collapse] if collapse else []), *(verdict(key, section) for key, section in report["by"].items())]),
    ]
    rows = _group_rows(report)
    if rows:
        header = ["by", "group", "speakers", "utterances", "accuracy % [95% CI]", "UAR % [95% CI]"]
        blocks.append(Table(header, rows))
    if s.audit_dir is None:
        return blocks
    run = RunDir.of(s.run)
    for key, section in report["by"].items():
        if not section.get("available"):
            continue
        for kind, what in (("bars", "scores by group"), ("confusion", "confusions by group")):
            path = run.audit_plot(corpus, key, kind)
            if path.is_file():
                blocks.append(Image(path, f"{s.id} on {corpus_title(corpus)}: {what} ({key})"))
    return blocks


def _fairness(summaries: Sequence[ExperimentSummary]) -> list[Block]:
    blocks: list[Block] = [
        Heading("Fairness audit"),
        Para(
            "Per group of speakers: accuracy and UAR with 95% speaker-bootstrap CIs; the UAR gap between the "
            "groups large enough to compare and a permutation-test p-value (groups shuffled among speakers)."
        ),
    ]
    audited = [s for s in summaries if s.audits]
    if not audited:
        return [*blocks, Para("No audit has been run.")]
    blocks.append(_fairness_summary(audited))
    for s in audited:
        for corpus, report in s.audits.items():
            blocks += _audit_detail(s, corpus, report)
    return blocks


def _leakage(summaries: Sequence[ExperimentSummary], corpora: Sequence[str]) -> list[Block]:
    rows = []
    for s in summaries:
        for c in corpora:
            m = s.metrics.get(c)
            if m is not None:
                what = (
                    "held-out test speakers"
                    if m.split == "test"
                    else "every utterance (corpus not trained on)"
                )
                rows.append(
                    [
                        s.id,
                        corpus_title(c),
                        what,
                        "LEAKY: test speakers also in training" if m.leaky else "no",
                        _overlap_cell(m.text_overlap),
                    ]
                )
    leaky = [r for r in rows if r[3] != "no"]
    text = (
        f"{len(leaky)} of {len(rows)} scores come from a leaky split (a test speaker also in training): "
        "they overstate what the model does for new voices."
        if leaky
        else "No score here is leaky: every test speaker is unseen in training (speaker-independent splits)."
    )
    blocks: list[Block] = [
        Heading("Leakage flags"),
        Para(text + _overlap_text(rows) + f" The study's own numbers were measured under its protocol "
             f"({REPORTED_PROTOCOL})."),
    ]
    if rows:
        blocks.append(Table(["ID", "corpus", "scored on", "leaky", "text overlap"], rows))
    return blocks


def _overlap_cell(share: float | None) -> str:
    """The ``text overlap`` cell: marked as a leak when test texts were heard in training; ``n/a`` unknown."""
    return overlap_mark(share) or ("n/a" if share is None else "no")


def _overlap_text(rows: Sequence[Sequence[str]]) -> str:
    """The sentence on text overlap under the leakage table (none when no score has it)."""
    overlapping = [r for r in rows if r[4].startswith("TEXT OVERLAP")]
    if not overlapping:
        return ""
    return (
        f" {len(overlapping)} of {len(rows)} scores test sentences the model heard in training (text overlap: "
        "the share of test utterances whose text was among the training utterances'): a speaker-independent "
        "split of an acted corpus still repeats its few sentences, so those scores may partly measure "
        "recognising them; data.split.disjoint: [speaker, text] keeps texts apart where the corpus allows."
    )


def _run_time(summaries: Sequence[ExperimentSummary]) -> list[Block]:
    rows = []
    for s in summaries:
        kind = "training" if s.trains else "audit"
        rows.append(
            [
                s.id,
                s.status,
                f"{clock(s.seconds_recorded)} ({kind})",
                clock(s.seconds_now),
                "–" if s.epochs_run is None else str(s.epochs_run),
            ]
        )
    total = sum(s.seconds_recorded or 0.0 for s in summaries)
    return [
        Heading("Run time"),
        Table(
            ["ID", "status", "recorded time (done.json)", "wall time in this invocation", "epochs run"], rows
        ),
        Para(f"Recorded time of all runs: {clock(total)}."),
    ]


def _errors(summaries: Sequence[ExperimentSummary], out: Path) -> list[Block]:
    failed = [s for s in summaries if s.status == "failed"]
    if not failed:
        return []
    rows = []
    for s in failed:
        trace = out / "errors" / f"{s.id}.txt"
        rows.append([s.id, s.error or "", os.path.relpath(trace, out) if trace.is_file() else "–"])
    return [Heading("Errors"), Table(["ID", "error", "traceback"], rows)]


def build_blocks(
    out: Path,
    study: Study,
    summaries: Sequence[ExperimentSummary],
    results: StudyResult | None = None,
    findings: Sequence[Finding] = (),
) -> list[Block]:
    corpora = corpus_order(study, summaries)
    blocks: list[Block] = []
    blocks += _overview(study, summaries, results)
    blocks += _key_results(summaries, corpora, out)
    blocks += findings_blocks(findings, study.findings)
    blocks += gap_blocks(out, study, findings)  # a leave-one-corpus-out benchmark (configs/domain_shift.yaml)
    matrix = getattr(study, "matrix", None)  # an N-corpus study (configs/cross_corpus.yaml) has its own matrix
    blocks += matrix_blocks(out, study) if matrix is not None else _cross_corpus(summaries, corpora, out)
    blocks += _confusions(summaries, corpora, out)
    blocks += confidence_blocks(summaries, corpora, corpus_title)  # calibration and abstention
    blocks += _curves(summaries, out)
    blocks += _fairness(summaries)
    blocks += robustness_blocks(summaries, corpora, getattr(study, "robustness", ()), corpus_title)
    blocks += _leakage(summaries, corpora)
    blocks += _run_time(summaries)
    blocks += _errors(summaries, out)
    blocks += [Heading("Environment"), Table(["", ""], [list(p) for p in environment(study)])]
    return blocks


def write_report(
    out: str | os.PathLike[str], study: Study, results: StudyResult | None = None
) -> dict[str, Path]:
    """Write ``out/report.md``, ``out/report.html``, ``out/results.csv`` and ``out/findings.csv`` (atomically);
    returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = collect(out, study, results)
    corpora = corpus_order(study, summaries)
    paths = {
        "results": out / "results.csv",
        "findings": out / "findings.csv",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    atomic_write_csv(paths["results"], RESULT_COLUMNS, result_rows(summaries, corpora))
    paths.update(matrix_paths(out, study))  # an N-corpus study: OUT/cross_corpus.csv
    findings = gather(out, study, summaries)
    atomic_write_csv(paths["findings"], FINDING_COLUMNS, [f.row() for f in findings])
    paths.update(gap_paths(out, study, findings))  # a benchmark study: OUT/domain_shift.csv
    blocks = build_blocks(out, study, summaries, results, findings)
    atomic_write_text(paths["markdown"], render_markdown(blocks, out))
    atomic_write_text(paths["html"], render_html(blocks, study.title))
    return paths
