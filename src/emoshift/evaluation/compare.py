"""Is model A better than model B on the same test utterances?

Two paired tests on ``RUN/predictions/<corpus>.csv`` of both runs:

- McNemar's exact test on per-utterance correctness: b = utterances A got right and B got wrong, c = the
  reverse; under "equally accurate" b ~ Binomial(b + c, 1/2).
- A paired speaker-level interval of the UAR difference (A - B): each speaker is left out of both models at
  once (delete-one-speaker jackknife, t quantiles: :func:`emoshift.evaluation.intervals.paired_difference`),
  so the interval reflects speaker variation too. With fewer than ``metrics.MIN_CI_SPEAKERS`` shared speakers
  there is no interval: ``uar_diff_ci95`` is None and ``uar_diff_ci95_reason`` says why.

For a dimensional run (``task: dimensional`` in model.json, predictions ``true_<t>``/``pred_<t>``) the test is
the paired speaker bootstrap of the CCC difference (A - B), per target and of the mean CCC over targets, all on
the same resampled speakers (:func:`emoshift.evaluation.regression.paired_bootstrap_ccc_diff`). McNemar's test
is not run: it counts utterances one model got right and the other wrong, and a rating has no right or wrong
per utterance (any threshold would be arbitrary); the output says so (``mcnemar: null`` and ``mcnemar_note``).
Only utterances rated on every compared target are scored.

Runs tested on different utterances (a generalist scores only its test speakers of a corpus it trained on, a
specialist every utterance of a corpus it never saw) are compared on the utterances both scored, and the
result says how many each scored alone (``only_a``, ``only_b``): comparing all of each would mix model quality
with test-set differences. Runs that scored no utterance in common are refused.

A repeated-training run (``training.seeds``) scored each utterance once per seed (a ``seed`` column): two such
runs are paired seed by seed on the same utterances (seed s of A with seed s of B, every seed's rows in the same
speaker resample), which needs the same seeds on both sides; a run of several seeds and a run of one are refused
(one line).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.errors import EmoshiftError
from emoshift.core.rundir import RunDir
from emoshift.core.task import CATEGORICAL, DIMENSIONAL
from emoshift.evaluation.audit_dimensional import rated_rows, read_dimensional_predictions
from emoshift.evaluation.groups import predictions_for, read_leaky, write_text
from emoshift.evaluation.metrics import (
    check_resampling,
    ci_reason,
    classification_metrics,
    encode_groups,
    mcnemar_exact,
    paired_bootstrap_diff,
    percentile,
    prediction_labels,
    read_predictions,
)
from emoshift.evaluation.regression import (
    paired_bootstrap_ccc_diff,
    regression_metrics,
    regression_sums,
    resampled_metrics,
)

MCNEMAR_NOTE = (
    "McNemar's test is for classifiers (utterances one model got right and the other wrong); a rating has no "
    "right or wrong per utterance, so it is not run: the paired speaker bootstrap of the CCC difference is the test"
)


class CompareError(EmoshiftError, ValueError):
    """The two runs cannot be compared as asked (message is one line, for the user)."""


def compare_predictions(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    labels: Sequence[str] | None = None,
    *,
    seed: int = 0,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Paired comparison of two prediction sets on the utterances both scored (matched by id, and by seed for
    repeated-training runs)."""
    rows_a, rows_b = paired_by_seed(rows_a, rows_b)
    by_a = {r["id"]: r for r in rows_a}
    by_b = {r["id"]: r for r in rows_b}
    ids, only_a, only_b = _shared(rows_a, rows_b)
    rows_a, rows_b = [by_a[i] for i in ids], [by_b[i] for i in ids]
    differ = [i for i in ids if by_a[i]["true"] != by_b[i]["true"]]
    if differ:
        raise CompareError(
            f"the runs disagree on the true label of {len(differ)} utterances (e.g. {differ[0]}: "
            f"{by_a[differ[0]]['true']} vs {by_b[differ[0]]['true']}); were they trained with different label policies?"
        )
    label_list = prediction_labels(list(rows_a) + list(rows_b), labels)
    y_true = [by_a[i]["true"] for i in ids]
    pred_a = [by_a[i]["pred"] for i in ids]
    pred_b = [by_b[i]["pred"] for i in ids]
    speakers = [by_a[i]["speaker"] for i in ids]
    m_a = classification_metrics(y_true, pred_a, label_list)
    m_b = classification_metrics(y_true, pred_b, label_list)
    diff = paired_bootstrap_diff(
        y_true, pred_a, pred_b, speakers, label_list, metric="uar", n_resamples=n_resamples, seed=seed
    )
    b, c, p = mcnemar_exact(
        [t == p for t, p in zip(y_true, pred_a, strict=True)],
        [t == p for t, p in zip(y_true, pred_b, strict=True)],
    )
    return {
        "n": len(ids),
        "only_a": only_a,
        "only_b": only_b,
        "speakers": len(set(speakers)),
        "labels": label_list,
        "uar_a": m_a["uar"],
        "uar_b": m_b["uar"],
        "uar_diff": diff["diff"],
        "uar_diff_ci95": diff["ci"],
        "uar_diff_ci95_reason": diff["ci_reason"],
        "accuracy_a": m_a["accuracy"],
        "accuracy_b": m_b["accuracy"],
        "macro_f1_a": m_a["macro_f1"],
        "macro_f1_b": m_b["macro_f1"],
        "mcnemar": {"b": b, "c": c, "p_value": p},
        "seed": seed,
        "n_resamples": n_resamples,
    }


def _paired_on(result: Mapping[str, Any], name_a: str, name_b: str) -> str:
    """" on the N utterances both scored (M scored by B alone left out)": empty when both scored the same."""
    alone = [f"{result[k]} scored by {n} alone" for n, k in ((name_a, "only_a"), (name_b, "only_b")) if result.get(k)]
    return f"; paired on the {result['n']} utterances both scored ({' and '.join(alone)} left out)" if alone else ""


def verdict(result: Mapping[str, Any], name_a: str = "A", name_b: str = "B", alpha: float = 0.05) -> str:
    """A short verdict with the numbers."""
    ci = result["uar_diff_ci95"]
    interval = (
        f"95% CI {ci[0]:+.3f} to {ci[1]:+.3f}"
        if ci
        else f"no CI: {result.get('uar_diff_ci95_reason') or 'too few speakers'}"
    )
    mc = result["mcnemar"]
    head = (
        f"{name_a} vs {name_b}"
        + (f" on {result['corpus']}" if result.get("corpus") else "")
        + f" (n={result['n']}, {result['speakers']} speakers{_paired_on(result, name_a, name_b)}): "
        f"UAR {result['uar_a']:.3f} vs {result['uar_b']:.3f}, "
        f"difference {result['uar_diff']:+.3f} ({interval}); accuracy {result['accuracy_a']:.3f} "
        f"vs {result['accuracy_b']:.3f}, McNemar b={mc['b']} c={mc['c']} p={mc['p_value']:.3g}."
    )
    leaky = [n for n, key in ((name_a, "leaky_a"), (name_b, "leaky_b")) if result.get(key)]
    if leaky:
        head += f" Warning: {' and '.join(leaky)} tested on speakers seen in training (leaky)."
    uar_sig = bool(ci) and (ci[0] > 0 or ci[1] < 0)
    mc_sig = mc["p_value"] < alpha
    better = name_a if result["uar_diff"] > 0 else name_b
    if uar_sig and mc_sig:
        return head + f" {better} is better: both tests agree at the 5% level."
    if uar_sig:
        return (
            head
            + f" {better} has the higher UAR (CI excludes 0), but McNemar finds no significant accuracy difference."
        )
    if mc_sig:
        better = name_a if mc["b"] > mc["c"] else name_b
        if not ci:
            return head + f" {better} is more often right (McNemar); too few speakers for a UAR interval."
        return head + f" {better} is more often right (McNemar), but the UAR difference's CI includes 0."
    return head + " No significant difference at the 5% level."


# --------------------------------------------------------------------------------------------------------
# Dimensional runs: the CCC difference
# --------------------------------------------------------------------------------------------------------


def seeds_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The seeds a predictions file holds when it holds several (a repeated-training run), else []."""
    seeds = list(dict.fromkeys(str(r.get("seed") or "") for r in rows))
    return seeds if len(seeds) > 1 else []


def paired_by_seed(
    rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]]
) -> tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]:
    """The rows as they are, or (repeated-training runs) with ids ``"<seed>/<id>"`` so seed s of A pairs with
    seed s of B; CompareError (one line) when the runs were not trained with the same seeds."""
    sa, sb = seeds_of(rows_a), seeds_of(rows_b)
    if not sa and not sb:
        return rows_a, rows_b
    if sorted(sa) != sorted(sb):
        def said(s: list[str], rows: Sequence[Mapping[str, Any]]) -> str:
            return ", ".join(s) if s else str(rows[0].get("seed") or "one") if rows else "none"

        raise CompareError(
            f"the runs were trained with different seeds (A: {said(sa, rows_a)}; B: {said(sb, rows_b)}): "
            "compare runs trained with the same training.seeds"
        )
    return [{**r, "id": f"{r['seed']}/{r['id']}"} for r in rows_a], [{**r, "id": f"{r['seed']}/{r['id']}"} for r in rows_b]


def _shared(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]]) -> tuple[list[str], int, int]:
    """(the utterance ids both runs scored, sorted; how many A scored alone; how many B scored alone). Runs that
    scored no utterance in common are refused."""
    by_a, by_b = {r["id"] for r in rows_a}, {r["id"] for r in rows_b}
    if not by_a or not by_b:
        raise CompareError("no predictions to compare")
    shared = sorted(by_a & by_b)
    if not shared:
        raise CompareError(
            f"the runs scored no utterance in common ({len(by_a)} by A, e.g. {min(by_a)}; {len(by_b)} by B, e.g. "
            f"{min(by_b)}): were they evaluated on the same corpus?"
        )
    return shared, len(by_a) - len(shared), len(by_b) - len(shared)


def _mean_ccc_diff(
    true: Mapping[str, Sequence[float]],
    pred_a: Mapping[str, Sequence[float]],
    pred_b: Mapping[str, Sequence[float]],
    speakers: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
) -> tuple[list[float] | None, str | None]:
    """Paired speaker-bootstrap interval of mean-CCC(A) - mean-CCC(B) over the targets (None with a reason
    below ``MIN_CI_SPEAKERS`` speakers); the resamples are those of ``paired_bootstrap_ccc_diff``."""
    g, names = encode_groups(list(speakers))
    reason = ci_reason(len(names))
    if reason:
        return None, reason
    sums = np.stack(
        [
            np.stack([regression_sums(np.asarray(true[t]), np.asarray(p[t]), g, len(names)) for t in true], axis=1)
            for p in (pred_a, pred_b)
        ],
        axis=1,
    )  # (S, 2, T, 7)
    boot = resampled_metrics(sums, n_resamples, seed)["ccc"].mean(axis=2)  # (R, 2)
    return percentile(boot[:, 0] - boot[:, 1], 0.05), None


def _same_ratings(a: Mapping[str, Any], b: Mapping[str, Any], targets: Sequence[str]) -> bool:
    return all(b["true"].get(t) is not None and abs(a["true"][t] - b["true"][t]) <= 1e-6 for t in targets)


def compare_dimensional(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    targets: Sequence[str],
    *,
    seed: int = 0,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Paired comparison of two dimensional prediction sets (rows as ``read_dimensional_predictions`` gives
    them) on the same utterances: CCC of each, per target and their mean, and the paired bootstrap of the
    difference."""
    check_resampling(n_resamples, 0.05)
    ids, only_a, only_b = _shared(rows_a, rows_b)
    wanted = set(ids)
    targets = list(targets)
    kept_a, unrated = rated_rows([r for r in rows_a if r["id"] in wanted], targets)
    by_b = {r["id"]: r for r in rows_b}
    differ = [r["id"] for r in kept_a if not _same_ratings(r, by_b[r["id"]], targets)]
    if differ:
        raise CompareError(
            f"the runs disagree on the ratings of {len(differ)} utterances (e.g. {differ[0]}); were they trained "
            "with different target ranges or corpus scales?"
        )
    if not kept_a:
        raise CompareError(f"no utterance is rated on every target ({', '.join(targets)}): nothing to compare")
    kept_a = sorted(kept_a, key=lambda r: r["id"])
    speakers = [str(r["speaker"]) for r in kept_a]
    true = {t: [r["true"][t] for r in kept_a] for t in targets}
    pred_a = {t: [r["pred"][t] for r in kept_a] for t in targets}
    pred_b = {t: [by_b[r["id"]]["pred"][t] for r in kept_a] for t in targets}
    per_target: dict[str, dict[str, Any]] = {}
    for t in targets:
        d = paired_bootstrap_ccc_diff(true[t], pred_a[t], pred_b[t], speakers, n_resamples=n_resamples, seed=seed)
        m_a, m_b = regression_metrics(true[t], pred_a[t]), regression_metrics(true[t], pred_b[t])
        per_target[t] = {
            "ccc_a": d["a"], "ccc_b": d["b"], "diff": d["diff"], "ci95": d["ci"],
            "pearson_a": m_a["pearson"], "pearson_b": m_b["pearson"], "mae_a": m_a["mae"], "mae_b": m_b["mae"],
        }
    ci, reason = _mean_ccc_diff(true, pred_a, pred_b, speakers, n_resamples=n_resamples, seed=seed)
    ccc_a = float(np.mean([per_target[t]["ccc_a"] for t in targets]))
    ccc_b = float(np.mean([per_target[t]["ccc_b"] for t in targets]))
    return {
        "task": DIMENSIONAL.name,
        "n": len(kept_a),
        "only_a": only_a,
        "only_b": only_b,
        "speakers": len(set(speakers)),
        "unrated": unrated,
        "targets": targets,
        "ccc_a": ccc_a,
        "ccc_b": ccc_b,
        "ccc_diff": ccc_a - ccc_b,
        "ccc_diff_ci95": ci,
        "ccc_diff_ci95_reason": reason,
        "per_target": per_target,
        "mcnemar": None,
        "mcnemar_note": MCNEMAR_NOTE,
        "seed": seed,
        "n_resamples": n_resamples,
    }


def _excludes_zero(ci: Sequence[float] | None) -> bool:
    return bool(ci) and (ci[0] > 0 or ci[1] < 0)  # type: ignore[index]


def verdict_dimensional(result: Mapping[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """A short verdict with the numbers: mean CCC and each target's, the paired bootstrap interval."""
    ci = result["ccc_diff_ci95"]
    interval = f"95% CI {ci[0]:+.3f} to {ci[1]:+.3f}" if ci else f"no CI: {result['ccc_diff_ci95_reason']}"
    parts = []
    for t, r in result["per_target"].items():
        t_ci = f" [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]" if r["ci95"] else ""
        parts.append(f"{t} {r['ccc_a']:.3f} vs {r['ccc_b']:.3f} ({r['diff']:+.3f}{t_ci})")
    head = (
        f"{name_a} vs {name_b}"
        + (f" on {result['corpus']}" if result.get("corpus") else "")
        + f" (n={result['n']}, {result['speakers']} speakers{_paired_on(result, name_a, name_b)}): "
        f"mean CCC {result['ccc_a']:.3f} vs "
        f"{result['ccc_b']:.3f}, difference {result['ccc_diff']:+.3f} ({interval}); " + "; ".join(parts) + "."
    )
    leaky = [n for n, key in ((name_a, "leaky_a"), (name_b, "leaky_b")) if result.get(key)]
    if leaky:
        head += f" Warning: {' and '.join(leaky)} tested on speakers seen in training (leaky)."
    better = name_a if result["ccc_diff"] > 0 else name_b
    apart = [t for t, r in result["per_target"].items() if _excludes_zero(r["ci95"])]
    if _excludes_zero(ci):
        tail = f" {better} has the higher mean CCC (the interval excludes 0)."
    elif not ci:
        tail = " Too few speakers for an interval: no verdict."
    else:
        tail = " No significant difference in mean CCC at the 5% level."
    if apart:
        tail += f" Per target, the interval excludes 0 for {', '.join(apart)}."
    return head + tail + " (No McNemar test: it does not apply to ratings.)"


def compare_runs(
    run_a: str | os.PathLike[str],
    run_b: str | os.PathLike[str],
    name: str,
    root: str,
    *,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    n_resamples: int = 1000,
) -> tuple[Path, dict[str, Any]]:
    """Compare two runs on corpus ``name`` (evaluating either first if its predictions are missing).

    Writes JSON to ``out`` (default RUN_A/compare/<RUN_B name>_<corpus>.json); returns (path, result).
    """
    run_a, run_b = Path(run_a), Path(run_b)
    path_a, corpus = predictions_for(run_a, name, root)
    path_b, _ = predictions_for(run_b, name, root)
    info_a, info_b = RunDir.of(run_a).info_if_present(), RunDir.of(run_b).info_if_present()
    tasks = [CATEGORICAL if i is None else i.task_kind for i in (info_a, info_b)]
    if tasks[0] != tasks[1]:
        raise CompareError(f"{run_a.name} is {tasks[0]} and {run_b.name} is {tasks[1]}: compare runs of one task")
    if tasks[0].rated:
        return _compare_dimensional_runs(run_a, run_b, path_a, path_b, corpus, out=out, seed=seed, n=n_resamples)
    declared = list(dict.fromkeys([*(info_a.labels if info_a else []), *(info_b.labels if info_b else [])]))
    result = compare_predictions(
        read_predictions(path_a),
        read_predictions(path_b),
        declared or None,
        seed=seed,
        n_resamples=n_resamples,
    )
    result = {"run_a": str(run_a), "run_b": str(run_b), "corpus": corpus, **result}
    result["leaky_a"], result["leaky_b"] = read_leaky(run_a, corpus), read_leaky(run_b, corpus)
    result["verdict"] = verdict(result, run_a.name, run_b.name)
    target = Path(out) if out is not None else RunDir.of(run_a).compare_json(run_b.name, corpus)
    return write_text(target, json.dumps(result, indent=2) + "\n"), result


def _compare_dimensional_runs(
    run_a: Path, run_b: Path, path_a: Path, path_b: Path, corpus: str, *, out: Any, seed: int, n: int
) -> tuple[Path, dict[str, Any]]:
    rows_a, targets_a = read_dimensional_predictions(path_a)
    rows_b, targets_b = read_dimensional_predictions(path_b)
    targets = [t for t in targets_a if t in targets_b]
    if not targets:
        raise CompareError(f"the runs share no target ({', '.join(targets_a)} vs {', '.join(targets_b)})")
    result = compare_dimensional(rows_a, rows_b, targets, seed=seed, n_resamples=n)
    left = sorted(set(targets_a) ^ set(targets_b))
    result["targets_not_shared"] = left
    result = {"run_a": str(run_a), "run_b": str(run_b), "corpus": corpus, **result}
    result["leaky_a"], result["leaky_b"] = read_leaky(run_a, corpus), read_leaky(run_b, corpus)
    result["verdict"] = verdict_dimensional(result, run_a.name, run_b.name)
    target = Path(out) if out is not None else RunDir.of(run_a).compare_json(run_b.name, corpus)
    return write_text(target, json.dumps(result, indent=2) + "\n"), result
