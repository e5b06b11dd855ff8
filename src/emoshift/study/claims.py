"""The study's findings, measured: each claim of ``findings:`` tested on the runs in ``OUT/runs/``.

For every claim and test corpus this reads both runs' ``predictions/<corpus>.csv`` and compares them on the
utterances both scored (:func:`emoshift.evaluation.compare.compare_predictions`: McNemar and the paired
speaker-bootstrap CI of the UAR difference); a ``drop`` claim reads one run's two metrics JSON instead. The
verdict follows from those numbers by the rules of :mod:`emoshift.study.findings`. Plus one ``better`` claim
per model and corpus against the acoustic baseline trained on the same corpora. Torch-free, like the report;
the rows go to ``OUT/findings.csv``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from emoshift.core.errors import EmoshiftError
from emoshift.core.rundir import RunDir
from emoshift.evaluation.compare import compare_predictions
from emoshift.evaluation.metrics import read_predictions
from emoshift.study.findings import (
    ClaimSpec,
    Evidence,
    FindingsSpec,
    Judgement,
    judge,
    unpaired_diff_ci,
)
from emoshift.study.records import read_record, run_dir
from emoshift.study.summaries import ExperimentSummary

if TYPE_CHECKING:  # the spec imports the experiment config (and so torch); the findings read runs only
    from emoshift.study.spec import Study

FINDING_COLUMNS: tuple[str, ...] = (
    "claim",
    "a",
    "b",
    "corpus",
    "uar_a",
    "uar_b",
    "diff",
    "ci95_low",
    "ci95_high",
    "mcnemar_p",
    "verdict",
    "reason",
    "kind",
    "margin",
    "n",
    "speakers",
)


@dataclass(frozen=True)
class Finding:
    """One claim on one test corpus (``drop``: on two, ``corpus`` is ``from->to``), with its verdict."""

    claim: ClaimSpec
    corpus: str
    evidence: Evidence
    judgement: Judgement
    margin: float

    def row(self) -> dict[str, Any]:
        """The findings.csv row: fractions with 6 decimals, empty where there is no number."""
        ev, ci = self.evidence, self.evidence.ci

        def num(x: float | None) -> str:
            return "" if x is None else f"{x:.6f}"

        return {
            "claim": self.claim.claim,
            "a": self.claim.a,
            "b": self.claim.b or self.claim.a,
            "corpus": self.corpus,
            "uar_a": num(ev.uar_a),
            "uar_b": num(ev.uar_b),
            "diff": num(ev.diff),
            "ci95_low": num(ci[0] if ci else None),
            "ci95_high": num(ci[1] if ci else None),
            "mcnemar_p": "" if ev.mcnemar_p is None else f"{ev.mcnemar_p:.6g}",
            "verdict": self.judgement.verdict,
            "reason": self.judgement.reason,
            "kind": self.claim.kind,
            "margin": num(self.margin) if self.claim.kind in ("not_better", "noninferior") else "",
            "n": "" if ev.n is None else ev.n,
            "speakers": "" if ev.speakers is None else ev.speakers,
        }


# ---------------------------------------------------------------------------------------------------------
# Reading the runs


def random_init(run: Path) -> str | None:
    """``"model.preset: tiny"`` when the run's model was built from a random-init preset, else None."""
    try:
        cfg = yaml.safe_load(RunDir.of(run).config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    model = cfg.get("model") if isinstance(cfg, dict) else None
    preset = model.get("preset") if isinstance(model, dict) else None
    return f"model.preset: {preset}" if preset else None


def _bootstrap_settings(study: Study, eid: str) -> tuple[int, int]:
    """(n_resamples, seed) of experiment ``eid``'s evaluation settings."""
    cfg = study.experiment(eid).config
    if cfg is None:
        return 1000, 0
    return max(cfg.evaluation.n_bootstrap, 1), cfg.evaluation.seed


def _rows(out: Path, eid: str, corpus: str) -> list[dict[str, Any]] | str:
    """The run's predictions on ``corpus``, or why there are none."""
    run = RunDir.of(run_dir(out, eid))
    if not run.done.is_file():
        return f"{eid} has not run to completion"
    path = run.predictions(corpus)
    if not path.is_file():
        return f"{eid} has no predictions on {corpus}"
    try:
        return read_predictions(path)
    except (OSError, ValueError, EmoshiftError) as e:
        return f"{eid}: {e}"


def _sides(
    claim: ClaimSpec, corpus: str, by_id: Mapping[str, ExperimentSummary], out: Path
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(random-init sides, leaky sides) of a claim on ``corpus``."""
    rand, leaky = [], []
    for eid in claim.experiments:
        preset = random_init(run_dir(out, eid))
        if preset:
            rand.append(f"{eid} ({preset})")
        m = by_id[eid].metrics.get(corpus) if eid in by_id else None
        if m is not None and m.leaky:
            leaky.append(f"{eid} on {corpus}")
    return tuple(rand), tuple(leaky)


def _labels(out: Path, *eids: str) -> list[str] | None:
    labels: list[str] = []
    for eid in eids:
        record = read_record(run_dir(out, eid))
        labels += [x for x in (record.labels if record else []) if x not in labels]
    return labels or None


def paired_evidence(
    out: Path, study: Study, claim: ClaimSpec, corpus: str, by_id: Mapping[str, ExperimentSummary]
) -> Evidence:
    """Both runs compared on the utterances of ``corpus`` that both scored."""
    b = str(claim.b)  # a paired claim names b (ClaimSpec validates it)
    rand, leaky = _sides(claim, corpus, by_id, out)
    rows_a, rows_b = _rows(out, claim.a, corpus), _rows(out, b, corpus)
    if isinstance(rows_a, str) or isinstance(rows_b, str):
        return Evidence(
            missing=rows_a if isinstance(rows_a, str) else str(rows_b), random_init=rand, leaky=leaky
        )
    shared = {r["id"] for r in rows_a} & {r["id"] for r in rows_b}
    note = ""
    if len(shared) < max(len(rows_a), len(rows_b)):
        note = (
            f" (paired on the {len(shared)} utterances both scored: {len(rows_a)} by a, {len(rows_b)} by b)"
        )
    if not shared:
        why = f"{claim.a} and {b} scored no utterance of {corpus} in common"
        return Evidence(missing=why, random_init=rand, leaky=leaky)
    n_resamples, seed = _bootstrap_settings(study, claim.a)
    try:
        result = compare_predictions(
            [r for r in rows_a if r["id"] in shared],
            [r for r in rows_b if r["id"] in shared],
            _labels(out, claim.a, b),
            seed=seed,
            n_resamples=n_resamples,
        )
    except EmoshiftError as e:
        return Evidence(missing=str(e), random_init=rand, leaky=leaky)
    ci = result["uar_diff_ci95"]
    mc = result["mcnemar"]
    return Evidence(
        uar_a=result["uar_a"],
        uar_b=result["uar_b"],
        ci=(float(ci[0]), float(ci[1])) if ci else None,
        ci_reason=result["uar_diff_ci95_reason"],
        mcnemar_p=float(mc["p_value"]),
        mcnemar_b=int(mc["b"]),
        mcnemar_c=int(mc["c"]),
        n=int(result["n"]),
        speakers=int(result["speakers"]),
        random_init=rand,
        leaky=leaky,
        note=note,
    )


def drop_evidence(out: Path, claim: ClaimSpec, by_id: Mapping[str, ExperimentSummary]) -> Evidence:
    """Model ``a`` on its first corpus against the second: two independent speaker sets, not paired."""
    first, second = claim.corpora
    summary = by_id.get(claim.a)
    metrics = summary.metrics if summary is not None else {}
    rand = (f"{claim.a} ({p})",) if (p := random_init(run_dir(out, claim.a))) else ()
    missing = [c for c in (first, second) if c not in metrics]
    if missing:
        return Evidence(missing=f"{claim.a} has no score on {' or '.join(missing)}", random_init=rand)
    m1, m2 = metrics[first], metrics[second]
    leaky = tuple(f"{claim.a} on {m.corpus}" for m in (m1, m2) if m.leaky)
    hidden = [m for m in (m1, m2) if not m.ci_shown]
    ci = None if hidden else unpaired_diff_ci(m1.uar_ci, m2.uar_ci, m1.uar - m2.uar)
    reason = "; ".join(
        f"{m.corpus}: {m.ci_reason or (f'{m.speakers} speakers' if m.speakers is not None else 'no CI')}"
        for m in hidden
    )
    speakers = None if m1.speakers is None or m2.speakers is None else m1.speakers + m2.speakers
    return Evidence(
        uar_a=m1.uar,
        uar_b=m2.uar,
        ci=ci,
        ci_reason=reason or None,
        n=m1.n + m2.n,
        speakers=speakers,
        random_init=rand,
        leaky=leaky,
        method="unpaired",
    )


# ---------------------------------------------------------------------------------------------------------
# The claims, tested


def baseline_claims(spec: FindingsSpec, summaries: Sequence[ExperimentSummary]) -> list[ClaimSpec]:
    """One ``better`` claim per trained model against the baseline trained on the same corpora."""
    by_id = {s.id: s for s in summaries}
    baselines = [b for b in spec.baselines if b in by_id]
    claims = []
    for s in summaries:
        if not s.trains or s.id in spec.baselines:
            continue
        for b in baselines:
            if set(by_id[b].train_corpora) == set(s.train_corpora):
                text = f"{s.id} beats the acoustic baseline {b} (trained on the same corpora)"
                claims.append(ClaimSpec(claim=text, kind="better", a=s.id, b=b))
                break
    return claims


def _corpora(claim: ClaimSpec, study: Study, by_id: Mapping[str, ExperimentSummary]) -> list[str]:
    """The test corpora of a paired claim: its own, else the study's and any other both runs were scored on."""
    if claim.corpora:
        return list(claim.corpora)
    seen = list(study.roots)
    for eid in claim.experiments:
        if eid in by_id:
            seen += [c for c in by_id[eid].metrics if c not in seen]
    return seen


def gather(
    out: str | os.PathLike[str], study: Study, summaries: Sequence[ExperimentSummary]
) -> list[Finding]:
    """Every finding of the study's ``findings:`` block (claims, then the baseline comparisons)."""
    out = Path(out)
    spec = study.findings
    by_id = {s.id: s for s in summaries}
    findings = []
    for claim in [*spec.claims, *baseline_claims(spec, summaries)]:
        margin = claim.margin if claim.margin is not None else spec.margin
        if claim.kind == "drop":
            tests = [("->".join(claim.corpora), drop_evidence(out, claim, by_id))]
        else:
            tests = [(c, paired_evidence(out, study, claim, c, by_id)) for c in _corpora(claim, study, by_id)]
        for corpus, ev in tests:
            verdict = judge(claim.kind, ev, margin=margin, alpha=spec.alpha)
            findings.append(Finding(claim, corpus, ev, verdict, margin))
    return findings
