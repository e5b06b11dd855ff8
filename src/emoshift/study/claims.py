"""The study's findings, measured: each claim of ``findings:`` tested on the runs in ``OUT/runs/``.

For every claim and test corpus this reads both runs' ``predictions/<corpus>.csv``, splits them by training
seed (the ``seed`` column; a run without it is one seed) and compares them seed pair by seed pair on the
utterances both scored: the per-seed paired UAR differences combined over speakers and seeds
(:func:`emoshift.evaluation.intervals.paired_difference`: mean, CI, p, se, wins) and McNemar on the discordant
utterances of all seed pairs; a ``drop`` claim reads one run's predictions on two corpora. The verdicts follow
from those numbers by the rules of :mod:`emoshift.study.findings`, all findings judged together (Holm's
correction across them, ``findings.correction``), each with the gap the study itself reported beside it
(``reported_accuracy``) for the power statement. Also the report's Findings section (:func:`findings_blocks`),
as :mod:`emoshift.study.matrix` writes its own. Plus one ``better`` claim
per model and corpus against the acoustic baseline trained on the same corpora. Torch-free, like the report;
the rows go to ``OUT/findings.csv``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from emoshift.core.errors import EmoshiftError
from emoshift.core.rundir import RunDir
from emoshift.evaluation.confusion import batch_metrics, confusion_stack
from emoshift.evaluation.intervals import Interval, metric_interval, paired_difference
from emoshift.evaluation.metrics import mcnemar_exact, prediction_labels, read_predictions, with_ci
from emoshift.study.findings import (
    ALPHA,
    MIN_SEEDS,
    POWER,
    ClaimSpec,
    Evidence,
    FindingsSpec,
    Judgement,
    decide,
    pts,
    reported_gap,
    unpaired_difference,
)
from emoshift.study.records import read_record, run_dir
from emoshift.study.render import Block, Bullets, Heading, Para, Table, corpus_title, pct
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
    "seeds",
    "wins",
    "p",
    "p_adjusted",
    "mde",
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
            "seeds": "" if ev.missing is not None else ev.seeds,
            "wins": "" if ev.wins is None else ev.wins,
            "p": "" if self.judgement.p is None else f"{self.judgement.p:.6g}",
            "p_adjusted": "" if self.judgement.p_adjusted is None else f"{self.judgement.p_adjusted:.6g}",
            "mde": num(self.judgement.mde),
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


Rows = list[dict[str, Any]]


def _rows(out: Path, eid: str, corpus: str) -> Rows | str:
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


def by_seed(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Mapping[str, Any]]]:
    """A run's predictions split by training seed (the ``seed`` column), in sorted seed order (numerically
    where the seeds are numbers): one ``{id: row}`` per seed. Rows without the column (a run from before
    repeated training) are one seed."""
    groups: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r.get("seed") or ""), {})[str(r["id"])] = r
    keys = sorted(groups, key=lambda k: (0, int(k), k) if k.lstrip("-").isdigit() else (1, 0, k))
    return [groups[k] for k in keys]


def _confusions(
    seeds: Sequence[Mapping[str, Mapping[str, Any]]], ids: Sequence[str], labels: Sequence[str]
) -> np.ndarray:
    """(S seeds, K speakers, L, L) confusion counts of utterances ``ids`` (speakers sorted by name)."""
    index = {label: i for i, label in enumerate(labels)}
    first = seeds[0]
    speakers, g = np.unique([str(first[i]["speaker"]) for i in ids], return_inverse=True)
    t = np.array([index[first[i]["true"]] for i in ids], dtype=np.int64)
    return np.stack(
        [
            confusion_stack(
                t, np.array([index[s[i]["pred"]] for i in ids], dtype=np.int64), g, len(labels), len(speakers)
            )  # fmt: skip
            for s in seeds
        ]
    )


def _per_seed_uar(conf: np.ndarray) -> np.ndarray:
    """(S, K, L, L) -> each seed's UAR over all its speakers (S,)."""
    return np.asarray(batch_metrics(conf.sum(axis=1))["uar"], dtype=np.float64)


def _differing_truth(
    seeds_a: Sequence[Mapping[str, Any]], seeds_b: Sequence[Mapping[str, Any]], ids: Sequence[str]
) -> str | None:
    """Why the two runs cannot be compared when they disagree on a true label (None when they agree)."""
    a, b = seeds_a[0], seeds_b[0]
    differ = [i for i in ids if a[i]["true"] != b[i]["true"]]
    if not differ:
        return None
    return (
        f"the runs disagree on the true label of {len(differ)} utterances (e.g. {differ[0]}: {a[differ[0]]['true']} "
        f"vs {b[differ[0]]['true']}); were they trained with different label policies?"
    )


def paired_evidence(
    out: Path, study: Study, claim: ClaimSpec, corpus: str, by_id: Mapping[str, ExperimentSummary]
) -> Evidence:
    """Both runs compared on the utterances of ``corpus`` that both scored, seed by seed.

    Seeds are paired in sorted order (a's first seed with b's first, ...); a side with fewer seeds limits the
    pairs. The per-seed paired UAR differences are combined by
    :func:`emoshift.evaluation.intervals.paired_difference` (mean, CI over speakers and seeds, p, se); McNemar
    counts the discordant utterances of every seed pair together.
    """
    b = str(claim.b)  # a paired claim names b (ClaimSpec validates it)
    rand, leaky = _sides(claim, corpus, by_id, out)
    rows_a, rows_b = _rows(out, claim.a, corpus), _rows(out, b, corpus)
    if isinstance(rows_a, str) or isinstance(rows_b, str):
        return Evidence(
            missing=rows_a if isinstance(rows_a, str) else str(rows_b), random_init=rand, leaky=leaky
        )
    seeds_a, seeds_b = by_seed(rows_a), by_seed(rows_b)
    n_seeds = min(len(seeds_a), len(seeds_b))
    pairs_a, pairs_b = seeds_a[:n_seeds], seeds_b[:n_seeds]
    shared = sorted(set.intersection(*(set(s) for s in [*pairs_a, *pairs_b])))
    note = ""
    if len(shared) < max(len(pairs_a[0]), len(pairs_b[0])):
        note = (
            f" (paired on the {len(shared)} utterances both scored: {len(pairs_a[0])} by a, "
            f"{len(pairs_b[0])} by b)"
        )
    if not shared:
        why = f"{claim.a} and {b} scored no utterance of {corpus} in common"
        return Evidence(missing=why, random_init=rand, leaky=leaky)
    differ = _differing_truth(pairs_a, pairs_b, shared)
    if differ:
        return Evidence(missing=differ, random_init=rand, leaky=leaky)
    n_resamples, seed = _bootstrap_settings(study, claim.a)
    labels = prediction_labels(
        [r for s in [*pairs_a, *pairs_b] for r in s.values()], _labels(out, claim.a, b)
    )
    conf_a, conf_b = _confusions(pairs_a, shared, labels), _confusions(pairs_b, shared, labels)
    result = paired_difference(
        conf_a, conf_b, "uar", alpha=study.findings.alpha, n_resamples=n_resamples, seed=seed
    )
    correct_a = [s[i]["true"] == s[i]["pred"] for s in pairs_a for i in shared]
    correct_b = [s[i]["true"] == s[i]["pred"] for s in pairs_b for i in shared]
    mc_b, mc_c, mc_p = mcnemar_exact(correct_a, correct_b)
    return Evidence(
        uar_a=float(_per_seed_uar(conf_a).mean()),
        uar_b=float(_per_seed_uar(conf_b).mean()),
        ci=(result.ci.lo, result.ci.hi) if result.ci else None,
        ci_reason=result.reason,
        mcnemar_p=mc_p,
        mcnemar_b=mc_b,
        mcnemar_c=mc_c,
        n=len(shared),
        speakers=result.n_speakers,
        random_init=rand,
        leaky=leaky,
        note=note,
        seeds=n_seeds,
        seeds_a=len(seeds_a),
        seeds_b=len(seeds_b),
        per_seed=tuple(result.per_seed),
        p=result.p,
        se=result.se,
        df=result.df,
    )


def _corpus_scores(
    seeds: Sequence[Mapping[str, Mapping[str, Any]]], labels: Sequence[str] | None, alpha: float
) -> tuple[np.ndarray, Interval | None, str | None, int, int]:
    """One run on one corpus: (per-seed UAR (S,), its interval over speakers and seeds or None, why none,
    utterances, speakers)."""
    ids = sorted(set.intersection(*(set(s) for s in seeds)))
    conf = _confusions(seeds, ids, prediction_labels([r for s in seeds for r in s.values()], labels))
    ci, reason = metric_interval(conf, "uar", alpha=alpha)
    return _per_seed_uar(conf), ci, reason, len(ids), conf.shape[1]


def drop_evidence(
    out: Path, claim: ClaimSpec, by_id: Mapping[str, ExperimentSummary], alpha: float = ALPHA
) -> Evidence:
    """Model ``a`` on its first corpus against the second: paired by seed (each seed's model scored both),
    not by speaker (two independent speaker sets).

    Per seed, the UAR on the first corpus minus that on the second gives "k of N seeds"; the mean difference's
    interval combines each corpus's interval over speakers and seeds
    (:func:`emoshift.evaluation.intervals.metric_interval`) as independent (:func:`unpaired_difference`), which
    overstates the seed part of the spread (a seed good on both corpora cancels in the difference), so it errs
    on the wide side. The seed rule applies as to any claim.
    """
    first, second = claim.corpora
    summary = by_id.get(claim.a)
    rand = (f"{claim.a} ({p})",) if (p := random_init(run_dir(out, claim.a))) else ()
    rows = {c: _rows(out, claim.a, c) for c in (first, second)}
    missing = [r for r in rows.values() if isinstance(r, str)]
    if missing:  # not run, or no predictions on one corpus: the first reason
        return Evidence(missing=missing[0], random_init=rand)
    metrics = summary.metrics if summary is not None else {}
    leaky = tuple(f"{claim.a} on {c}" for c in (first, second) if c in metrics and metrics[c].leaky)
    seeds = {c: by_seed(rows[c]) for c in (first, second)}  # type: ignore[arg-type]
    n_seeds = min(len(s) for s in seeds.values())
    labels = _labels(out, claim.a)
    scored = {c: _corpus_scores(seeds[c][:n_seeds], labels, alpha) for c in (first, second)}
    (uar_1, ci_1, why_1, n_1, k_1), (uar_2, ci_2, why_2, n_2, k_2) = scored[first], scored[second]
    diff = float(uar_1.mean() - uar_2.mean())
    combined = unpaired_difference(
        diff, *((None, None) if ci_1 is None else (ci_1.se, ci_1.df)),
        *((None, None) if ci_2 is None else (ci_2.se, ci_2.df)), alpha=alpha,
    )  # fmt: skip
    reason = "; ".join(f"{c}: {why}" for c, why in ((first, why_1), (second, why_2)) if why)
    return Evidence(
        uar_a=float(uar_1.mean()),
        uar_b=float(uar_2.mean()),
        ci=combined.ci if combined else None,
        ci_reason=reason or None,
        n=n_1 + n_2,
        speakers=k_1 + k_2,
        random_init=rand,
        leaky=leaky,
        method="unpaired",
        seeds=n_seeds,
        seeds_a=len(seeds[first]),
        seeds_b=len(seeds[second]),
        per_seed=tuple(float(d) for d in uar_1 - uar_2),
        p=combined.p if combined else None,
        se=combined.se if combined else None,
        df=combined.df if combined else None,
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
    out: str | os.PathLike[str],
    study: Study,
    summaries: Sequence[ExperimentSummary],
    *,
    min_seeds: int = MIN_SEEDS,
) -> list[Finding]:
    """Every finding of the study's ``findings:`` block (claims, then the baseline comparisons), judged
    together: the p-values corrected across them (``findings.correction``, Holm by default). ``min_seeds``: see
    :func:`emoshift.study.findings.judge` (lower only to measure what fewer seeds would have said)."""
    out = Path(out)
    spec = study.findings
    by_id = {s.id: s for s in summaries}
    reported = {s.id: s.reported_accuracy for s in summaries}
    tested: list[tuple[ClaimSpec, str, Evidence, float]] = []
    for claim in [*spec.claims, *baseline_claims(spec, summaries)]:
        margin = claim.margin if claim.margin is not None else spec.margin
        if claim.kind == "drop":
            tests = [("->".join(claim.corpora), drop_evidence(out, claim, by_id, spec.alpha))]
        else:
            tests = [(c, paired_evidence(out, study, claim, c, by_id)) for c in _corpora(claim, study, by_id)]
        for corpus, ev in tests:
            ev = replace(ev, claimed=reported_gap(claim, corpus, reported))
            tested.append((claim, corpus, ev, margin))
    judgements = decide(
        [(claim.kind, ev, margin) for claim, _, ev, margin in tested],
        alpha=spec.alpha,
        correction=spec.correction,
        min_seeds=min_seeds,
    )
    return [
        Finding(claim, corpus, ev, judgement, margin)
        for (claim, corpus, ev, margin), judgement in zip(tested, judgements, strict=True)
    ]


# ---------------------------------------------------------------------------------------------------------
# The report's section


def _seeds_cell(f: Finding) -> str:
    """"2 of 3" (a beat b in 2 of 3 seed pairs), "1 seed" / "-" without per-seed numbers."""
    ev = f.evidence
    if ev.wins is None:
        return "–"
    return f"{ev.wins} of {ev.seeds}"


def _p_cell(p: float | None) -> str:
    return "–" if p is None else f"{p:.3g}"


def findings_blocks(findings: Sequence[Finding], spec: FindingsSpec) -> list[Block]:
    """The report's Findings section: how the claims are tested and judged, a count per verdict, the table."""
    if spec.correction == "holm":
        correction = (
            "Holm's step-down correction across the study's findings that can be decided (both sides there, "
            f"neither random-init, at least {MIN_SEEDS} seeds per side, an interval): a verdict needs the "
            f"adjusted p below {spec.alpha:g}"
        )
    else:
        correction = "no correction for multiple comparisons (findings.correction: none): each claim on its own p"
    blocks: list[Block] = [
        Heading("Findings"),
        Para(
            "Each claim of the study tested on the same utterances, training seed by training seed (seeds "
            "paired in sorted order; a side with fewer seeds limits the pairs): the UAR difference a - b of "
            "each seed pair, their mean with a 95% CI over speakers and seeds and a two-sided p whose null "
            "includes seed variation, 'k of N' (a beat b in k of the N "
            "seed pairs), and McNemar's exact test on per-utterance correctness pooled over the seed pairs "
            "(b: utterances a got right and b wrong, c: the reverse). "
            f"Verdicts at {1 - spec.alpha:.0%}, with {correction}. "
            f"mde: the smallest difference the comparison detects with {POWER:.0%} power at {spec.alpha:g}, "
            "given its speakers and seeds; an inconclusive verdict says whether that was small enough to see "
            "the gap the study itself reported (its accuracies under its own protocol):"
        ),
        Bullets(
            [
                f"Seeds: supported or contradicted needs at least {MIN_SEEDS} training seeds per side "
                "(training.seeds); with fewer the verdict is inconclusive ('1 seed: training variance not "
                "measured') and the single-seed numbers are shown.",
                "'a beats b': supported when the CI lies above 0, contradicted when it lies below 0, otherwise "
                "inconclusive; when McNemar is significant the other way, the tests disagree: inconclusive.",
                f"'a does not beat b': supported when the CI ends below +{100 * spec.margin:g} points (the "
                "margin), contradicted when it starts above it.",
                f"'a keeps b's score' (non-inferiority, margin {100 * spec.margin:g} UAR points): supported when "
                "the CI starts above minus the margin, contradicted when it ends below it.",
                "'a drops from corpus X to Y': the same model on different speakers, so paired by seed but not "
                "by speaker: the difference's CI combines the two corpora's intervals (normal approximation, "
                "independent, Welch-Satterthwaite t; conservative); supported when it lies above 0.",
                "A decided CI also needs its p below the level after the correction (p tests a - b against 0, or "
                "against the margin for the margin claims).",
                "No verdict when a run is missing, or when a side is a random-init preset (model.preset): it "
                "is not the pretrained model the claim is about. Inconclusive when there is no CI (too few "
                "speakers). A leaky side is flagged in the reason.",
            ]
        ),
    ]
    if not findings:
        return [*blocks, Para("The study file states no claims (no 'findings:' block).")]
    rows = []
    for f in findings:
        ev, ci = f.evidence, f.evidence.ci
        diff = with_ci(ev.diff, ci, ev.speakers if ev.method == "paired" else None, number=pts)
        mde_ = "–" if f.judgement.mde is None else f"{100 * f.judgement.mde:.1f}"
        b = f.claim.b or f.claim.a
        corpus = " -> ".join(corpus_title(c) for c in f.corpus.split("->"))
        rows.append([f.claim.claim, f"{f.claim.a} vs {b}", corpus, pct(ev.uar_a), pct(ev.uar_b), diff,
                     _seeds_cell(f), _p_cell(f.judgement.p), _p_cell(f.judgement.p_adjusted), mde_,
                     _p_cell(ev.mcnemar_p), f.judgement.verdict, f.judgement.reason])  # fmt: skip
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.judgement.verdict] = counts.get(f.judgement.verdict, 0) + 1
    header = ["claim", "a vs b", "corpus", "UAR a %", "UAR b %", "a - b (pts) [95% CI]", "a beat b (seeds)",
              "p", "adjusted p", "mde (pts)", "McNemar p", "verdict", "reason"]  # fmt: skip
    summary = Para(f"{len(findings)} findings: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + ".")
    return [*blocks, summary, Table(header, rows)]
