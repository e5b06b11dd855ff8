"""Fairness audit: does a model work equally well for every group of speakers?

The audit joins a run's predictions on one corpus (``RUN/predictions/<corpus>.csv``) with the corpus's
speaker demographics (gender, age, race, ethnicity, as the corpus records them) and reports, per grouping
(``--by gender,age_band,...``):

- per group: speakers, utterances, accuracy / UAR / macro-F1, each with a 95% speaker-level CI
  (None, with ``ci_reason``, for a group of fewer than ``metrics.MIN_CI_SPEAKERS`` speakers), recall per class
  and a confusion matrix;
- the largest gap between groups per metric, the worst/best ratio, and per class the recall gap
  (equal-opportunity difference);
- a permutation test over speakers: is the UAR gap larger than shuffling group labels among speakers gives?

Groups with fewer than ``min_speakers`` (default 3) speakers are flagged ``too_small``: they are reported, never
dropped, but left out of the gaps, ratios and the test (a note says so), because with one or two voices a
"group" difference is a speaker difference. Missing demographics form a group ``unknown``, which is reported
and likewise not compared. A grouping the corpus does not record at all (race for RAVDESS) is reported as
unavailable, not an error, unless no requested grouping is available.

:func:`audit_predictions` is the pure computation; :func:`audit_run` reads a run directory, scans the corpus
for demographics, and writes ``RUN/audit/<corpus>.json``, ``.md`` and the plots.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emoshift.core.extras import optional
from emoshift.core.rundir import RunDir
from emoshift.core.task import task_named
from emoshift.evaluation import audit_dimensional
from emoshift.evaluation.groups import (
    BY_KEYS,  # noqa: F401  (re-exported: callers import it from here)
    DEFAULT_BY,
    MIN_SPEAKERS,
    UNKNOWN,
    AuditError,  # noqa: F401  (re-exported: callers import it from here)
    age_band,  # noqa: F401  (re-exported: callers import it from here)
    audit_sections,
    check_audit,
    demographics_from_utterances,
    fmt,
    gap_verdict,
    parse_age_bands,  # noqa: F401  (re-exported: callers import it from here)
    parse_by,  # noqa: F401  (re-exported: callers import it from here)
    predictions_for,
    read_leaky,
    size_notes,
    speaker_groups,
    write_text,
)
from emoshift.evaluation.metrics import (
    METRICS,
    bootstrap_ci,
    ci_reason,
    classification_metrics,
    collapse_text,
    permutation_p_floor,
    permutation_test_groups,
    prediction_labels,
    read_predictions,
    with_ci,
)

METRIC_LABELS: dict[str, str] = {"accuracy": "accuracy", "uar": "UAR", "macro_f1": "macro-F1"}

# --------------------------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------------------------


def _group_record(
    rows: Sequence[Mapping[str, Any]], labels: list[str], *, seed: int, n_resamples: int
) -> dict:
    y_true = [r["true"] for r in rows]
    y_pred = [r["pred"] for r in rows]
    speakers = [r["speaker"] for r in rows]
    m = classification_metrics(y_true, y_pred, labels)
    ci = bootstrap_ci(y_true, y_pred, speakers, labels, metrics=METRICS, n_resamples=n_resamples, seed=seed)
    record: dict[str, Any] = {"speakers": len(set(speakers)), "n": m["n"]}
    for metric in METRICS:
        record[metric] = m[metric]
        record[f"{metric}_ci"] = ci[metric]
    record["ci_reason"] = ci_reason(record["speakers"])
    record["recall"] = m["per_class_recall"]
    record["confusion"] = m["confusion"]
    record["collapsed"] = m["collapsed"]
    return record


def _audit_one(
    key: str,
    rows: Sequence[Mapping[str, Any]],
    values: Sequence[str | None],
    labels: list[str],
    *,
    corpus: str,
    seed: int,
    n_resamples: int,
    n_permutations: int,
    min_speakers: int,
) -> dict[str, Any]:
    if all(v is None for v in values):
        return {"available": False, "groups": {}, "note": f"{corpus} does not record {key.replace('_', ' ')}"}
    speaker_group, members = speaker_groups(key, rows, values)
    groups: dict[str, dict[str, Any]] = {}
    for name in members:
        record = _group_record(members[name], labels, seed=seed, n_resamples=n_resamples)
        record["too_small"] = record["speakers"] < min_speakers
        groups[name] = record
    notes = size_notes(key, groups, min_speakers)
    compared = [g for g, r in groups.items() if not r["too_small"] and g != UNKNOWN]

    out: dict[str, Any] = {"available": True, "groups": groups, "compared": compared}
    if len(compared) < 2:
        notes.append("fewer than two groups large enough to compare: no gap, ratio or p-value")
        out.update(gap={m: None for m in METRICS}, ratio={m: None for m in METRICS}, p_value_uar=None)
        out["p_value_floor"] = None
        out.update(recall_gap={label: None for label in labels}, best_uar=None, worst_uar=None)
        out["notes"] = notes
        return out

    gap, ratio = {}, {}
    for metric in METRICS:
        scores = [groups[g][metric] for g in compared]
        gap[metric] = max(scores) - min(scores)
        ratio[metric] = min(scores) / max(scores) if max(scores) > 0 else None
    recall_gap: dict[str, float | None] = {}
    for label in labels:
        recalls = [groups[g]["recall"][label] for g in compared if groups[g]["recall"][label] is not None]
        recall_gap[label] = max(recalls) - min(recalls) if len(recalls) >= 2 else None
    kept = [r for r in rows if speaker_group[r["speaker"]] in compared]
    _, p_value = permutation_test_groups(
        [r["true"] for r in kept],
        [r["pred"] for r in kept],
        [r["speaker"] for r in kept],
        speaker_group,
        labels,
        metric="uar",
        n_permutations=n_permutations,
        seed=seed,
    )
    floor = permutation_p_floor([groups[g]["speakers"] for g in compared])
    out.update(gap=gap, ratio=ratio, p_value_uar=p_value, p_value_floor=floor, recall_gap=recall_gap)
    out["best_uar"] = max(compared, key=lambda g: groups[g]["uar"])
    out["worst_uar"] = min(compared, key=lambda g: groups[g]["uar"])
    out["notes"] = notes
    return out


def audit_predictions(
    rows: Sequence[Mapping[str, Any]],
    demographics: Mapping[str, Mapping[str, Any]],
    *,
    by: Sequence[str] = DEFAULT_BY,
    labels: Sequence[str] | None = None,
    age_bands: Sequence[int] | None = None,
    seed: int = 0,
    n_resamples: int = 1000,
    n_permutations: int = 1000,
    min_speakers: int = MIN_SPEAKERS,
    corpus: str = "",
) -> dict[str, Any]:
    """Audit prediction rows (dicts with id, speaker, true, pred[, gender]) against ``demographics``
    (utterance id -> {gender, age, race, ethnicity}). Pure: reads and writes nothing."""
    keys, edges, notes = check_audit(
        rows, demographics, by, age_bands, (min_speakers, n_resamples, n_permutations)
    )
    label_list = prediction_labels(rows, labels)

    report: dict[str, Any] = {"corpus": corpus, "labels": label_list}
    overall = _group_record(rows, label_list, seed=seed, n_resamples=n_resamples)
    report["overall"] = {k: v for k, v in overall.items() if k not in ("recall", "confusion")}
    report["settings"], report["by"] = audit_sections(
        keys, rows, demographics, edges,
        lambda key, rows, values, **kw: _audit_one(key, rows, values, label_list, **kw),
        gap="UAR", corpus=corpus, seed=seed, n_resamples=n_resamples, n_permutations=n_permutations,
        min_speakers=min_speakers,
    )
    report["notes"] = notes
    return report


# --------------------------------------------------------------------------------------------------------
# Report text
# --------------------------------------------------------------------------------------------------------


def collapse_verdict(report: Mapping[str, Any]) -> str | None:
    """A sentence when the audited model predicts (nearly) one class overall (``overall.collapsed``): every
    group then scores about chance, so a gap between groups says nothing about fairness. None otherwise."""
    overall = report.get("overall") or {}
    if not overall.get("collapsed"):
        return None
    return (f"Collapsed model: it {collapse_text(overall['collapsed'], overall.get('n'))}; every group scores "
            "about chance, so the groups' gaps below say nothing about fairness.")


def verdict(key: str, section: Mapping[str, Any], alpha: float = 0.05) -> str:
    """One sentence on whether the groups of ``key`` differ in UAR (a dimensional audit: mean CCC) beyond chance."""
    if task_named(section.get("task")).rated:
        return audit_dimensional.verdict(key, section, alpha)
    name = key.replace("_", " ")
    if not section.get("available"):
        return f"By {name}: not audited ({section.get('note', 'not recorded')})."
    if section.get("p_value_uar") is None:
        return f"By {name}: no comparison (fewer than two groups with enough speakers)."
    groups = section["groups"]
    best, worst = section["best_uar"], section["worst_uar"]
    p = section["p_value_uar"]
    head = (
        f"By {name}: UAR ranges from {groups[worst]['uar']:.3f} ({worst}) to {groups[best]['uar']:.3f} ({best}), "
        f"a gap of {section['gap']['uar']:.3f} (permutation p = {p:.3f})"
    )
    return gap_verdict(head, p, section.get("p_value_floor"), alpha, f"the model serves {worst} speakers worse")


def render_markdown(report: Mapping[str, Any]) -> str:
    """Readable tables and verdict sentences for one audit report."""
    labels = report["labels"]
    settings = report["settings"]
    overall = report["overall"]
    lines = [
        f"# Fairness audit: {report['corpus'] or 'predictions'}",
        "",
        f"{overall['n']} test utterances from {overall['speakers']} speakers; labels: {', '.join(labels)}.",
        f"Intervals: {settings['ci']} ({settings['n_resamples']} resamples). "
        f"p-values: {settings['p_value']} ({settings['n_permutations']} permutations). "
        f"Groups with fewer than {settings['min_speakers']} speakers are reported but not compared.",
        "",
        "Overall: "
        + ", ".join(f"{METRIC_LABELS[m]} {with_ci(overall[m], overall[f'{m}_ci'], overall['speakers'])}" for m in METRICS)
        + ".",
        "",
        "## Verdict",
        "",
    ]
    if report.get("leaky"):
        lines.append(
            "- **Leaky evaluation**: some test speakers were also in training, so every figure here is optimistic."
        )
    if collapse_verdict(report):
        lines.append(f"- **{collapse_verdict(report)}**")
    lines += [f"- {verdict(key, section)}" for key, section in report["by"].items()]
    for note in report.get("notes", []):
        lines.append(f"- Note: {note}.")
    for key, section in report["by"].items():
        lines += ["", f"## By {key.replace('_', ' ')}", ""]
        if not section["available"]:
            lines.append(f"Not available: {section['note']}.")
            continue
        groups = section["groups"]
        lines += [
            "| group | speakers | utterances | accuracy (95% CI) | UAR (95% CI) | macro-F1 (95% CI) |",
            "|---|---:|---:|---|---|---|",
        ]
        for g, r in groups.items():
            flag = " (too small)" if r["too_small"] else ""
            cells = " | ".join(with_ci(r[m], r[f"{m}_ci"], r["speakers"]) for m in METRICS)
            lines.append(f"| {g}{flag} | {r['speakers']} | {r['n']} | {cells} |")
        lines.append("")
        if section.get("p_value_uar") is not None:
            lines.append(
                "Gap (best - worst): "
                + ", ".join(f"{METRIC_LABELS[m]} {fmt(section['gap'][m])}" for m in METRICS)
                + ". Worst/best ratio: "
                + ", ".join(f"{METRIC_LABELS[m]} {fmt(section['ratio'][m])}" for m in METRICS)
                + f". Permutation p-value (UAR gap): {section['p_value_uar']:.3f}."
            )
            lines.append("")
        lines += [
            "Recall per class (equal opportunity):",
            "",
            "| class | " + " | ".join(groups) + " | gap |",
            "|---|" + "---:|" * (len(groups) + 1),
        ]
        for label in labels:
            cells = " | ".join(fmt(groups[g]["recall"][label]) for g in groups)
            lines.append(f"| {label} | {cells} | {fmt(section.get('recall_gap', {}).get(label))} |")
        for note in section.get("notes", []):
            lines += ["", f"Note: {note}."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------
# Run directories
# --------------------------------------------------------------------------------------------------------




def _scan_as_run(run_dir: Path, corpus: str, root: str, labels: str) -> Any:
    """The corpus scanned as the run scanned it (its data options, when RUN/config.yaml is there)."""
    from emoshift.corpora import scan_source

    options: dict[str, Any] = {}
    if RunDir.of(run_dir).config.is_file():
        from emoshift.config import load_run_config

        options = load_run_config(run_dir).data.scan_options()
    return scan_source(corpus, root, labels, **options)


def audit_run(
    run_dir: str | os.PathLike[str],
    name: str,
    root: str,
    *,
    by: Sequence[str] = DEFAULT_BY,
    age_bands: Sequence[int] | None = None,
    seed: int = 0,
    n_resamples: int = 1000,
    n_permutations: int = 1000,
    min_speakers: int = MIN_SPEAKERS,
) -> Path:
    """Audit RUN on corpus ``name`` at ``root``; writes RUN/audit/<corpus>.json, .md and plots.

    Returns the JSON path. Demographics come from scanning the corpus under the run's label policy
    (``label_policy`` in RUN/model.json, default "six"). A dimensional run (``task: dimensional`` in
    model.json) is audited on CCC by :mod:`emoshift.evaluation.audit_dimensional`.
    """
    run_dir = Path(run_dir)
    pred_path, corpus = predictions_for(run_dir, name, root)
    info = RunDir.of(run_dir).info_if_present()
    result = _scan_as_run(run_dir, corpus, root, str(info and info.label_policy or "six"))
    if info is not None and info.task_kind.rated:  # CCC by group: evaluation/audit_dimensional.py
        options = {"n_resamples": n_resamples, "n_permutations": n_permutations, "min_speakers": min_speakers}
        demographics = demographics_from_utterances(result.utterances)
        return audit_dimensional.audit_dimensional_file(
            run_dir, pred_path, corpus, demographics, by=by, age_bands=age_bands, seed=seed, **options
        )
    rows = read_predictions(pred_path)
    report = audit_predictions(
        rows,
        demographics_from_utterances(result.utterances),
        by=by,
        labels=info.labels if info is not None else None,
        age_bands=age_bands,
        seed=seed,
        n_resamples=n_resamples,
        n_permutations=n_permutations,
        min_speakers=min_speakers,
        corpus=corpus,
    )
    report["run"] = str(run_dir)
    report["leaky"] = read_leaky(run_dir, corpus)
    run = RunDir.of(run_dir)
    for key, section in report["by"].items():
        if not section["available"] or not optional("plots", "the audit's plots"):
            continue
        from emoshift.evaluation import plots

        groups = section["groups"]
        plots.plot_group_bars(
            groups,
            METRICS,
            run.audit_plot(corpus, key, "bars"),
            title=f"{corpus}: by {key.replace('_', ' ')}",
        )
        plots.plot_confusions(
            {f"{g} ({r['speakers']} spk, n={r['n']})": r["confusion"] for g, r in groups.items()},
            report["labels"],
            run.audit_plot(corpus, key, "confusion"),
            title=f"{corpus}: confusion by {key.replace('_', ' ')} (share of each true class)",
        )
    write_text(run.audit_md(corpus), render_markdown(report))
    return write_text(run.audit_json(corpus), json.dumps(report, indent=2) + "\n")
