"""Is model A better than model B on the same test utterances?

Two paired tests on ``RUN/predictions/<corpus>.csv`` of both runs:

- McNemar's exact test on per-utterance correctness: b = utterances A got right and B got wrong, c = the
  reverse; under "equally accurate" b ~ Binomial(b + c, 1/2).
- A paired bootstrap over speakers of the UAR difference (A - B): each resample draws speakers with
  replacement and scores both models on the same draw, so the interval reflects speaker variation too. With
  fewer than ``metrics.MIN_CI_SPEAKERS`` shared speakers there is no interval: ``uar_diff_ci95`` is None and
  ``uar_diff_ci95_reason`` says why.

Comparing runs tested on different utterances would mix model quality with test-set differences, so that is
refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emoshift.core.errors import EmoshiftError
from emoshift.core.rundir import RunDir
from emoshift.evaluation.audit import predictions_for, read_leaky, read_model_info, write_text
from emoshift.evaluation.metrics import (
    classification_metrics,
    mcnemar_exact,
    paired_bootstrap_diff,
    prediction_labels,
    read_predictions,
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
    """Paired comparison of two prediction sets on the same utterances (matched by id)."""
    by_a = {r["id"]: r for r in rows_a}
    by_b = {r["id"]: r for r in rows_b}
    only_a, only_b = sorted(set(by_a) - set(by_b)), sorted(set(by_b) - set(by_a))
    if only_a or only_b:
        example = (only_a or only_b)[0]
        raise CompareError(
            f"the runs were tested on different utterances ({len(only_a)} only in A, {len(only_b)} only in B, "
            f"e.g. {example}); compare runs evaluated on the same test set"
        )
    ids = sorted(by_a)
    if not ids:
        raise CompareError("no predictions to compare")
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
        + f" (n={result['n']}, {result['speakers']} speakers): UAR {result['uar_a']:.3f} vs {result['uar_b']:.3f}, "
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
    info_a, info_b = read_model_info(run_a), read_model_info(run_b)
    declared = list(dict.fromkeys(list(info_a.get("labels") or []) + list(info_b.get("labels") or [])))
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
