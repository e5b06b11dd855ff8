"""Fairness audit of a dimensional run: is the CCC of arousal, valence and dominance the same for every group?

The dimensional twin of :mod:`emoshift.evaluation.audit` (same groupings, ``--by`` any metadata column, same
``too_small`` and ``unknown`` rules, same files: ``RUN/audit/<corpus>.json``, ``.md`` and a bar plot per
grouping), on a dimensional predictions file (``true_<t>``, ``pred_<t>`` per target):

- per group: speakers, utterances, the mean CCC over targets and each target's CCC, each with a 95% speaker
  bootstrap interval (:func:`emoshift.evaluation.regression.evaluate_regression`; none below
  ``MIN_CI_SPEAKERS`` speakers), and each target's Pearson r and MAE;
- the largest gap between compared groups (mean CCC and per target) and the worst/best ratio;
- a permutation test over speakers of that gap: group labels are shuffled among speakers (each keeps all its
  utterances, group sizes fixed) and the gap recomputed; p = (1 + #{gap >= observed}) / (1 + permutations).
  Each speaker's seven regression sums (n, sum t, sum p, sum t^2, sum p^2, sum tp, sum |t-p|) are computed
  once, so a permutation's group CCCs are one matrix product per group.

Only utterances rated on every target are audited (the others are counted in a note).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.extras import optional
from emoshift.core.rundir import RunDir
from emoshift.core.task import DIMENSIONAL
from emoshift.evaluation.groups import (
    DEFAULT_BY,
    MIN_SPEAKERS,
    UNKNOWN,
    AuditError,
    audit_sections,
    check_audit,
    fmt,
    gap_verdict,
    read_leaky,
    size_notes,
    speaker_groups,
    write_text,
)
from emoshift.evaluation.metrics import (
    PredictionsError,
    encode_groups,
    group_gap,
    permutation_p_floor,
    with_ci,
)
from emoshift.evaluation.regression import TARGETS, evaluate_regression, regression_from_sums, regression_sums

Rows = Sequence[Mapping[str, Any]]


# --------------------------------------------------------------------------------------------------------
# The predictions file
# --------------------------------------------------------------------------------------------------------


def _number(raw: str | None, where: str, column: str, *, empty_ok: bool) -> float | None:
    if raw in ("", None):
        if empty_ok:
            return None
        raise PredictionsError(f"{where}: {column} is empty")
    try:
        value = float(raw)
    except ValueError:
        raise PredictionsError(f"{where}: {column} is not a number: {raw!r}") from None
    if not np.isfinite(value):
        raise PredictionsError(f"{where}: {column} is not a finite number: {raw!r}")
    return value


def read_dimensional_predictions(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, targets) of a dimensional predictions CSV: ``id, speaker, ..., true_<t>, pred_<t>``.

    Each row keeps its columns, plus ``true`` = {target: value or None (not rated)} and ``pred`` = {target:
    value}. The targets are those with a ``pred_<t>`` column, in file order."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        targets = [c[5:] for c in columns if c.startswith("pred_") and c[5:] in TARGETS]
        missing = [c for c in ("id", "speaker") if c not in columns]
        missing += [f"true_{t}" for t in targets if f"true_{t}" not in columns]
        if missing or not targets:
            what = ", ".join(missing) if missing else "pred_<target> (arousal, valence, dominance)"
            raise PredictionsError(f"{path}: missing column(s) {what} (found {', '.join(columns)})")
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for line, raw in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if not raw["id"] or not raw["speaker"]:
                raise PredictionsError(f"{where}: empty id or speaker")
            if raw["id"] in seen:
                raise PredictionsError(f"{where}: duplicate id {raw['id']!r}")
            seen.add(raw["id"])
            row: dict[str, Any] = dict(raw)
            row["true"] = {t: _number(raw[f"true_{t}"], where, f"true_{t}", empty_ok=True) for t in targets}
            row["pred"] = {t: _number(raw[f"pred_{t}"], where, f"pred_{t}", empty_ok=False) for t in targets}
            rows.append(row)
    if not rows:
        raise PredictionsError(f"{path}: no predictions")
    return rows, targets


def rated_rows(rows: Rows, targets: Sequence[str]) -> tuple[list[Mapping[str, Any]], int]:
    """The rows rated on every target, and how many were not."""
    kept = [r for r in rows if all(r["true"].get(t) is not None for t in targets)]
    return kept, len(rows) - len(kept)


# --------------------------------------------------------------------------------------------------------
# The group-gap permutation test on CCC
# --------------------------------------------------------------------------------------------------------


def _speaker_sums(rows: Rows, targets: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(S, T, 7) regression sums per speaker (sorted names) and target."""
    g, names = encode_groups([str(r["speaker"]) for r in rows])
    per_target = []
    for t in targets:
        true = np.array([r["true"][t] for r in rows], dtype=np.float64)
        pred = np.array([r["pred"][t] for r in rows], dtype=np.float64)
        per_target.append(regression_sums(true, pred, g, len(names)))
    return np.stack(per_target, axis=1), names


def permutation_test_ccc(
    rows: Rows,
    targets: Sequence[str],
    speaker_group: Mapping[str, str],
    *,
    n_permutations: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float | None]]:
    """Is the CCC gap between groups of speakers larger than chance? -> ``{"gap": {...}, "p_value": {...}}``.

    Keys ``ccc`` (the mean CCC over targets) and each target. Rows need ``speaker``, ``true`` and ``pred``
    (dicts by target, every target rated). Group labels are permuted across speakers; a gap that is undefined
    (a group whose ratings are constant) has p None.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}")
    sums, names = _speaker_sums(rows, targets)
    missing = [s for s in names if s not in speaker_group]
    if missing:
        raise PredictionsError(f"speaker {missing[0]!r} has no group")
    group_idx, group_names = encode_groups([speaker_group[s] for s in names])  # (S,)
    if len(group_names) < 2:
        raise ValueError("a permutation test needs speakers from at least two groups")
    flat = sums.reshape(len(names), -1)  # (S, T*7)

    def gaps(assign: np.ndarray) -> np.ndarray:
        # assign: (R, S) group index per speaker -> (R, 1 + T) gap of the mean CCC and of each target's
        per_group = [((assign == k).astype(np.float64) @ flat).reshape(len(assign), len(targets), 7)
                     for k in range(len(group_names))]
        ccc = np.stack([regression_from_sums(s)["ccc"] for s in per_group], axis=1)  # (R, G, T)
        values = np.concatenate([ccc.mean(axis=2, keepdims=True), ccc], axis=2)  # (R, G, 1 + T)
        return np.stack([group_gap(values[:, :, j]) for j in range(values.shape[2])], axis=1)

    with np.errstate(divide="ignore", invalid="ignore"):
        observed = gaps(group_idx[None, :])[0]  # (1 + T,)
        rng = np.random.default_rng(seed)
        null = gaps(np.stack([rng.permutation(group_idx) for _ in range(n_permutations)]))  # (R, 1 + T)
    keys = ["ccc", *targets]
    gap: dict[str, float | None] = {}
    p_value: dict[str, float | None] = {}
    for j, key in enumerate(keys):
        ok = bool(np.isfinite(observed[j]))
        gap[key] = float(observed[j]) if ok else None
        exceed = int(np.sum(null[:, j] >= observed[j] - 1e-12)) if ok else 0
        p_value[key] = (1 + exceed) / (1 + n_permutations) if ok else None
    return {"gap": gap, "p_value": p_value}


# --------------------------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------------------------


def score_names(targets: Sequence[str]) -> list[str]:
    """The scores a group record carries, as plotted: the mean CCC, then each target's CCC."""
    return ["ccc", *[f"{t}_ccc" for t in targets]]


def group_record(rows: Rows, targets: Sequence[str], *, seed: int, n_resamples: int) -> dict[str, Any]:
    """Speakers, n, ``ccc`` / ``<t>_ccc`` with ``..._ci`` (speaker bootstrap), ``<t>_pearson``, ``<t>_mae``."""
    speakers = [str(r["speaker"]) for r in rows]
    m = evaluate_regression(
        {t: [r["true"][t] for r in rows] for t in targets},
        {t: [r["pred"][t] for r in rows] for t in targets},
        speakers,
        n_resamples=n_resamples,
        seed=seed,
    )
    record: dict[str, Any] = {"speakers": len(set(speakers)), "n": m["n"], "ccc": m["ccc"]}
    record["ccc_ci"] = m["ci95"]["ccc"] if m["ci95"] else None
    for t in targets:
        entry = m["per_target"][t]
        record[f"{t}_ccc"] = entry["ccc"]
        record[f"{t}_ccc_ci"] = entry["ci95"]["ccc"] if entry["ci95"] else None
        record[f"{t}_pearson"] = entry["pearson"]
        record[f"{t}_mae"] = entry["mae"]
    record["ci_reason"] = m["ci95_reason"]
    return record


def _ratio(scores: Sequence[float]) -> float | None:
    return min(scores) / max(scores) if scores and max(scores) > 0 else None


def _audit_one(
    key: str,
    rows: Rows,
    values: Sequence[str | None],
    targets: Sequence[str],
    *,
    corpus: str,
    seed: int,
    n_resamples: int,
    n_permutations: int,
    min_speakers: int,
) -> dict[str, Any]:
    if all(v is None for v in values):
        note = f"{corpus} does not record {key.replace('_', ' ')}"
        return {"task": DIMENSIONAL.name, "available": False, "groups": {}, "note": note}
    speaker_group, members = speaker_groups(key, rows, values)
    groups: dict[str, dict[str, Any]] = {}
    for name, group_rows in members.items():
        record = group_record(group_rows, targets, seed=seed, n_resamples=n_resamples)
        record["too_small"] = record["speakers"] < min_speakers
        groups[name] = record
    notes = size_notes(key, groups, min_speakers)
    compared = [g for g, r in groups.items() if not r["too_small"] and g != UNKNOWN]
    out: dict[str, Any] = {"task": DIMENSIONAL.name, "available": True, "groups": groups, "compared": compared}
    scores = score_names(targets)
    out.update(gap=dict.fromkeys(scores), ratio=dict.fromkeys(scores), p_value_ccc=None, p_values=None)
    out.update(p_value_floor=None, best_ccc=None, worst_ccc=None)
    if len(compared) < 2:
        notes.append("fewer than two groups large enough to compare: no gap, ratio or p-value")
        out["notes"] = notes
        return out
    for score in scores:
        found = [groups[g][score] for g in compared if groups[g][score] is not None]
        out["ratio"][score] = _ratio(found) if len(found) >= 2 else None
    kept = [r for r in rows if speaker_group[r["speaker"]] in compared]
    test = permutation_test_ccc(kept, targets, speaker_group, n_permutations=n_permutations, seed=seed)
    out["gap"] = {"ccc": test["gap"]["ccc"], **{f"{t}_ccc": test["gap"][t] for t in targets}}
    out["p_value_ccc"] = test["p_value"]["ccc"]
    out["p_values"] = {t: test["p_value"][t] for t in targets}
    out["p_value_floor"] = permutation_p_floor([groups[g]["speakers"] for g in compared])
    rated = [g for g in compared if groups[g]["ccc"] is not None]
    if rated:
        out["best_ccc"] = max(rated, key=lambda g: groups[g]["ccc"])
        out["worst_ccc"] = min(rated, key=lambda g: groups[g]["ccc"])
    out["notes"] = notes
    return out


def audit_dimensional_predictions(
    rows: Rows,
    demographics: Mapping[str, Mapping[str, Any]],
    *,
    targets: Sequence[str],
    by: Sequence[str] = DEFAULT_BY,
    age_bands: Sequence[int] | None = None,
    seed: int = 0,
    n_resamples: int = 1000,
    n_permutations: int = 1000,
    min_speakers: int = MIN_SPEAKERS,
    corpus: str = "",
) -> dict[str, Any]:
    """Audit dimensional prediction rows (as :func:`read_dimensional_predictions` gives them) against
    ``demographics`` (utterance id -> {gender, age, ...}). Pure: reads and writes nothing."""
    targets = list(targets)
    kept, unrated = rated_rows(rows, targets)
    if rows and not kept:
        raise AuditError(f"none of the {len(rows)} predictions has a rating for every target ({', '.join(targets)})")
    keys, edges, notes = check_audit(kept, demographics, by, age_bands, (min_speakers, n_resamples, n_permutations))
    if unrated:
        notes.append(f"{unrated} predictions without a rating for every target are not audited")
    report: dict[str, Any] = {"task": DIMENSIONAL.name, "corpus": corpus, "targets": targets, "labels": []}
    report["overall"] = group_record(kept, targets, seed=seed, n_resamples=n_resamples)
    report["settings"], report["by"] = audit_sections(
        keys, kept, demographics, edges,
        lambda key, rows, values, **kw: _audit_one(key, rows, values, targets, **kw),
        gap="mean-CCC", corpus=corpus, seed=seed, n_resamples=n_resamples, n_permutations=n_permutations,
        min_speakers=min_speakers,
    )
    report["notes"] = notes
    return report


# --------------------------------------------------------------------------------------------------------
# Report text
# --------------------------------------------------------------------------------------------------------


def verdict(key: str, section: Mapping[str, Any], alpha: float = 0.05) -> str:
    """One sentence on whether the groups of ``key`` differ in mean CCC beyond chance."""
    name = key.replace("_", " ")
    if not section.get("available"):
        return f"By {name}: not audited ({section.get('note', 'not recorded')})."
    p = section.get("p_value_ccc")
    if p is None or section.get("best_ccc") is None:
        return f"By {name}: no comparison (fewer than two groups with enough speakers and a defined CCC)."
    groups, best, worst = section["groups"], section["best_ccc"], section["worst_ccc"]
    head = (
        f"By {name}: mean CCC ranges from {groups[worst]['ccc']:.3f} ({worst}) to {groups[best]['ccc']:.3f} "
        f"({best}), a gap of {section['gap']['ccc']:.3f} (permutation p = {p:.3f})"
    )
    return gap_verdict(head, p, section.get("p_value_floor"), alpha, f"the model rates {worst} speakers worse")


def render_markdown(report: Mapping[str, Any]) -> str:
    """Readable tables and verdict sentences for one dimensional audit report."""
    targets, settings, overall = report["targets"], report["settings"], report["overall"]
    lines = [
        f"# Fairness audit: {report['corpus'] or 'predictions'} (dimensional)",
        "",
        f"{overall['n']} rated test utterances from {overall['speakers']} speakers; targets: {', '.join(targets)}.",
        f"Intervals: {settings['ci']} ({settings['n_resamples']} resamples). "
        f"p-values: {settings['p_value']} ({settings['n_permutations']} permutations). "
        f"Groups with fewer than {settings['min_speakers']} speakers are reported but not compared.",
        "",
        "Overall: mean CCC " + with_ci(overall["ccc"], overall["ccc_ci"], overall["speakers"]) + "; "
        + ", ".join(f"{t} CCC {with_ci(overall[f'{t}_ccc'], overall[f'{t}_ccc_ci'], overall['speakers'])}" for t in targets)
        + (f" ({overall['ci_reason']})" if overall.get("ci_reason") else "") + ".",
        "",
        "## Verdict",
        "",
    ]
    if report.get("leaky"):
        lines.append(
            "- **Leaky evaluation**: some test speakers were also in training, so every figure here is optimistic."
        )
    lines += [f"- {verdict(key, section)}" for key, section in report["by"].items()]
    lines += [f"- Note: {note}." for note in report.get("notes", [])]
    for key, section in report["by"].items():
        lines += ["", f"## By {key.replace('_', ' ')}", ""]
        if not section["available"]:
            lines.append(f"Not available: {section['note']}.")
            continue
        lines += _section_tables(section, targets)
    return "\n".join(lines) + "\n"


def _section_tables(section: Mapping[str, Any], targets: Sequence[str]) -> list[str]:
    groups = section["groups"]
    lines = [
        "| group | speakers | utterances | mean CCC (95% CI) | " + " | ".join(f"{t} CCC (95% CI)" for t in targets) + " |",
        "|---|---:|---:|---|" + "---|" * len(targets),
    ]
    for g, r in groups.items():
        flag = " (too small)" if r["too_small"] else ""
        cells = " | ".join(with_ci(r[f"{t}_ccc"], r[f"{t}_ccc_ci"], r["speakers"]) for t in targets)
        mean = with_ci(r["ccc"], r["ccc_ci"], r["speakers"])
        lines.append(f"| {g}{flag} | {r['speakers']} | {r['n']} | {mean} | {cells} |")
    lines += ["", "| group | " + " | ".join(f"{t} r | {t} MAE" for t in targets) + " |",
              "|---|" + "---:|---:|" * len(targets)]
    for g, r in groups.items():
        lines.append(f"| {g} | " + " | ".join(f"{fmt(r[f'{t}_pearson'])} | {fmt(r[f'{t}_mae'])}" for t in targets) + " |")
    if section.get("p_value_ccc") is not None:
        gaps = ", ".join(f"{t} {fmt(section['gap'][f'{t}_ccc'])} (p {fmt(section['p_values'][t])})" for t in targets)
        lines += ["", f"Gap (best - worst): mean CCC {fmt(section['gap']['ccc'])} "
                  f"(permutation p {section['p_value_ccc']:.3f}); {gaps}."]
    lines += [f"\nNote: {note}." for note in section.get("notes", [])]
    return lines


# --------------------------------------------------------------------------------------------------------
# Run directories
# --------------------------------------------------------------------------------------------------------


def audit_dimensional_file(
    run_dir: Path,
    pred_path: Path,
    corpus: str,
    demographics: Mapping[str, Mapping[str, Any]],
    **options: Any,
) -> Path:
    """Audit ``pred_path`` (a dimensional run's predictions on ``corpus``); writes RUN/audit/<corpus>.json, .md
    and one bar plot per grouping; returns the JSON path. ``options``: those of ``audit_dimensional_predictions``."""

    rows, targets = read_dimensional_predictions(pred_path)
    report = audit_dimensional_predictions(rows, demographics, targets=targets, corpus=corpus, **options)
    report["run"] = str(run_dir)
    report["leaky"] = read_leaky(run_dir, corpus)
    run = RunDir.of(run_dir)
    for key, section in report["by"].items():
        if section["available"] and optional("plots", "the audit's plots"):
            from emoshift.evaluation import plots

            plots.plot_group_bars(
                section["groups"],
                score_names(targets),
                run.audit_plot(corpus, key, "bars"),
                title=f"{corpus}: CCC by {key.replace('_', ' ')}",
            )
    write_text(run.audit_md(corpus), render_markdown(report))
    return write_text(run.audit_json(corpus), json.dumps(report, indent=2) + "\n")
