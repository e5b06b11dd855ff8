"""The study's claims and how a verdict follows from the numbers: pure logic, no files, no torch.

A claim (``findings:`` in the study file) names two experiments ``a`` and ``b`` and a kind of statement about
their UAR (unweighted average recall) on a corpus. A claim compares recipes, not two training runs, so its
evidence is the **per-seed** paired difference on the same utterances (seed pairs matched in sorted order; a
side with fewer seeds limits the pairs), combined over seeds and speakers
(:func:`emoshift.evaluation.intervals.paired_difference`): the mean difference ``diff = UAR(a) - UAR(b)``, its
95% CI over speakers and seeds, "a beat b in k of N seeds", a standard error and a two-sided p whose null
includes seed variation. Each kind of claim is a test of ``diff`` against a boundary (:func:`boundary`): 0 for
``better`` and ``drop``, ``+margin`` for ``not_better``, ``-margin`` for ``noninferior``; its p
(:func:`finding_p`) is the paired difference's own p for the boundary 0, else the Wald p of
``(diff - boundary) / se``.

The rules, in order:

1. A side that is missing gives no verdict; a side trained from a random-init preset (``model.preset``, e.g.
   the demo's tiny HuBERT) gives no verdict, because its score says nothing about the pretrained model the
   claim is about. Neither enters the correction below (no hypothesis was tested).
2. **Seeds**: ``supported`` / ``contradicted`` need at least :data:`MIN_SEEDS` (3) training seeds per side.
   With fewer the verdict is ``inconclusive``, the reason ``1 seed: training variance not measured`` (or
   ``2 seeds: ...``), and the single-seed numbers are shown.
3. A null CI (too few speakers) is inconclusive with that reason.
4. The CI (95%, unadjusted) is read as before:

   - ``better`` (a beats b): supported when the CI lies above 0, contradicted when below 0. McNemar (accuracy,
     per utterance, the discordant pairs of every seed pair pooled) is reported beside it and can only veto:
     significant in the other direction, the tests disagree and the verdict is inconclusive.
   - ``not_better`` (a does not beat b by more than the margin): supported when the CI's upper end is below
     ``+margin``, contradicted when its lower end is above ``+margin``.
   - ``noninferior`` (a keeps b's score, within the margin): supported when the CI's lower end is above
     ``-margin``, contradicted when its upper end is below ``-margin``.
   - ``drop`` (model ``a`` scores lower on the second corpus than on the first): the same model on two
     corpora, so paired by seed (each seed's model scored both) but not by speaker (different utterances and
     speakers). The per-seed differences give "k of N seeds"; the CI of the mean difference combines the two
     corpora's intervals (each over speakers and seeds, the metrics JSON's) by the normal approximation
     (:func:`unpaired_difference`, Welch-Satterthwaite), as if independent: a seed that scores well on both corpora cancels in the
     difference, so treating the seed parts as independent overstates the spread (conservative, never
     anti-conservative). The seed rule applies to it unchanged: one training run is one draw of the recipe.
5. **Many claims, one study**: a decided CI also needs the finding's p, adjusted across the study's findings
   (``findings.correction: holm``, the default; :func:`holm`), below ``alpha``. A CI that excludes the
   boundary while the adjusted p does not clear the level is inconclusive, and says so.
6. **Power**: each finding states ``mde`` (:func:`mde`), the smallest difference from the boundary it detects
   with 80% power at the study's alpha given its speakers and seeds; an inconclusive verdict says whether that
   was enough to see the gap the study itself reported (``reported_accuracy``, :func:`reported_gap`).

A leaky side keeps its verdict but the reason says so first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import optimize, stats

Kind = Literal["better", "not_better", "noninferior", "drop"]
Verdict = Literal["supported", "contradicted", "inconclusive", "no verdict"]
Correction = Literal["none", "holm"]

ALPHA = 0.05
DEFAULT_MARGIN = 0.02  # 2 UAR points
MIN_SEEDS = 3  # training seeds per side before a verdict can be supported or contradicted
POWER = 0.8  # the power the minimum detectable effect is stated at


# ---------------------------------------------------------------------------------------------------------
# The claims as written in the study file


class ClaimSpec(BaseModel):
    """One claim: ``kind`` of statement about experiment ``a`` against ``b`` (``drop``: ``a`` on two corpora)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim: str = Field(..., description="the sentence, e.g. 'Balancing beats no balancing'")
    kind: Kind
    a: str
    b: str | None = Field(default=None, description="the other experiment (none for 'drop')")
    corpora: list[str] = Field(
        default_factory=list,
        description="test corpora, one finding each (default: the study's corpora); 'drop': [from, to]",
    )
    margin: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="UAR margin (default: findings.margin)"
    )

    @field_validator("corpora")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        from emoshift.corpora import canonical_name

        try:
            return [canonical_name(c) for c in v]
        except KeyError as e:
            raise ValueError(str(e.args[0])) from None

    @model_validator(mode="after")
    def _shape(self) -> ClaimSpec:
        if self.kind == "drop":
            if self.b is not None or len(self.corpora) != 2:
                raise ValueError(
                    f"claim {self.claim!r}: 'drop' takes one experiment (a) and two corpora [from, to]"
                )
        elif self.b is None:
            raise ValueError(f"claim {self.claim!r}: kind {self.kind!r} compares two experiments: give 'b'")
        return self

    @property
    def experiments(self) -> list[str]:
        return [self.a] if self.b is None else [self.a, self.b]


class FindingsSpec(BaseModel):
    """The ``findings:`` block: the claims, the baselines every model is tested against, margin and level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float = Field(default=DEFAULT_MARGIN, gt=0.0, lt=1.0, description="non-inferiority margin (UAR)")
    alpha: float = Field(default=ALPHA, gt=0.0, lt=0.5)
    correction: Correction = Field(
        default="holm",
        description="multiple-comparison correction across the study's findings: holm (step-down) or none",
    )
    baselines: list[str] = Field(
        default_factory=list,
        description="baseline experiments: every other model is tested against the one trained on its corpora",
    )
    claims: list[ClaimSpec] = Field(default_factory=list)

    def check_references(self, trained: Sequence[str]) -> None:
        """ValueError naming the first experiment a claim or baseline refers to that does not train here."""
        for name in [*self.baselines, *(e for c in self.claims for e in c.experiments)]:
            if name not in trained:
                raise ValueError(f"findings refer to {name!r}, which is not a training experiment here")


# ---------------------------------------------------------------------------------------------------------
# Evidence and verdicts


@dataclass(frozen=True)
class Evidence:
    """The numbers one finding rests on (UARs as fractions, means over the seed pairs; ``diff = uar_a - uar_b``)."""

    uar_a: float | None = None
    uar_b: float | None = None
    ci: tuple[float, float] | None = None  # 95% CI of diff over speakers and seeds (one seed: speakers only)
    ci_reason: str | None = None  # why ci is None
    mcnemar_p: float | None = None
    mcnemar_b: int | None = None  # utterances a got right and b wrong (summed over the seed pairs)
    mcnemar_c: int | None = None  # the reverse
    n: int | None = None
    speakers: int | None = None
    missing: str | None = None  # why there is no evidence at all (a run not there, ...)
    # sides trained from a random-init preset, e.g. "L4.9 (model.preset: tiny)"
    random_init: tuple[str, ...] = ()
    leaky: tuple[str, ...] = ()  # sides whose scores are leaky, e.g. "L2 on ravdess"
    method: str = "paired"  # "paired" | "unpaired" (drop)
    note: str = ""  # appended to the reason, e.g. which utterances were paired
    seeds: int = 1  # seed pairs compared: the fewer of the two sides' training seeds
    seeds_a: int | None = None  # training seeds of each side (None: as many as ``seeds``)
    seeds_b: int | None = None
    per_seed: tuple[float, ...] = ()  # diff of each seed pair, in seed order
    p: float | None = None  # two-sided p of diff = 0, its null including seed variation
    se: float | None = None  # standard error of diff (speakers and seeds)
    df: float | None = None  # degrees of freedom of the test's t reference (None: the normal)
    claimed: float | None = None  # the gap the study itself reported for this comparison (fraction)

    @property
    def diff(self) -> float | None:
        return None if self.uar_a is None or self.uar_b is None else self.uar_a - self.uar_b

    @property
    def wins(self) -> int | None:
        """Seed pairs in which a scored above b (None without per-seed numbers)."""
        return sum(d > 0 for d in self.per_seed) if self.per_seed else None


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    p: float | None = None  # the finding's test p (diff against its boundary, :func:`finding_p`)
    p_adjusted: float | None = None  # after the study's correction; None when not in the family decided
    mde: float | None = None  # minimum detectable effect at POWER and alpha (:func:`mde`)


def pts(x: float) -> str:
    """A UAR difference in points, signed: ``+5.2``."""
    return f"{100 * x:+.1f}"


def _interval(ci: tuple[float, float]) -> str:
    return f"95% CI [{pts(ci[0])}, {pts(ci[1])}] points"


def boundary(kind: Kind, margin: float) -> float:
    """The value of ``diff`` a claim's test is against: 0 (better, drop), +margin (not_better), -margin
    (noninferior)."""
    return {"not_better": margin, "noninferior": -margin}.get(kind, 0.0)


def finding_p(kind: Kind, ev: Evidence, margin: float = DEFAULT_MARGIN) -> float | None:
    """Two-sided p of ``diff = boundary(kind)``: the paired difference's own p when the boundary is 0, else
    the Wald p of ``(diff - boundary) / se`` (Student's t with ``ev.df`` degrees of freedom when the evidence
    gives them, the normal otherwise). None without the numbers."""
    b = boundary(kind, margin)
    if b == 0.0 and ev.p is not None:
        return ev.p
    d = ev.diff
    if d is None or ev.se is None or not math.isfinite(ev.se):
        return None
    return two_sided_p(d - b, ev.se, ev.df)


def two_sided_p(distance: float, se: float, df: float | None = None) -> float:
    """Two-sided p of an estimate ``distance`` away from its null value with standard error ``se`` (Student's
    t with ``df`` degrees of freedom, the normal without); with no spread at all, 1 at the null and 0 off it."""
    if se <= 0:
        return 1.0 if distance == 0 else 0.0
    tail = stats.t.sf(abs(distance) / se, df) if df else stats.norm.sf(abs(distance) / se)
    return float(min(1.0, 2 * tail))


def holm(ps: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the given order; None stays None and is not in the family.

    With the m p-values sorted, p_(1) <= ... <= p_(m), the adjusted p_(i) is ``max_{j <= i} min(1, (m - j + 1)
    p_(j))``: the smallest p is multiplied by m, the next by m - 1, ..., never falling below an earlier one.
    Rejecting where the adjusted p < alpha controls the family-wise error at alpha under any dependence.
    Written here (a dozen lines) rather than taken from statsmodels, which emoshift does not depend on;
    tests/study/test_findings.py checks it against a hand computation and statsmodels' ``multipletests``.
    """
    order = sorted((i for i, p in enumerate(ps) if p is not None), key=lambda i: float(ps[i]))  # type: ignore[arg-type]
    m = len(order)
    adjusted: list[float | None] = [None] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(ps[i])))  # type: ignore[arg-type]
        adjusted[i] = running
    return adjusted


def mde(
    se: float | None, alpha: float = ALPHA, power: float = POWER, df: float | None = None
) -> float | None:
    """The minimum detectable effect: the smallest true ``|diff - boundary|`` that the finding's two-sided test
    at level ``alpha`` detects with probability ``power``, for an estimate with standard error ``se``.

    Normal reference (``df`` None): the test rejects when ``|d - b| / se > z(1 - alpha/2)``. With a true
    difference ``delta`` from the boundary the estimate is about ``N(b + delta, se^2)``, so the power is
    ``P(Z > z(1 - alpha/2) - delta/se)`` plus the far tail ``P(Z < -z(1 - alpha/2) - delta/se)``, below 1e-4 at
    80% power and left out (the usual approximation). Setting the power to ``power`` gives
    ``delta = (z(1 - alpha/2) + z(power)) * se``: 2.80 se at alpha 0.05 and 80%.

    Student's t reference (``df`` given, the test's degrees of freedom: a standard error estimated from few
    seeds): the statistic is noncentral t with noncentrality ``delta / se``; ``delta`` is the noncentrality at
    which ``P(|T| > t(1 - alpha/2, df)) = power``, solved exactly (``scipy.stats.nct``; both tails), because
    the shortcut ``(t(1 - alpha/2) + t(power)) * se`` falls short at 2-4 degrees of freedom (76% power at 2).

    ``se`` and ``df`` are the paired difference's (over speakers and seeds, Welch-Satterthwaite df), so more
    speakers or seeds shrink the mde. Checked by simulation (tests/study/test_findings.py): a t statistic with
    ``df`` degrees of freedom has 80% power at the mde (to 1.5 points, df 2 and 4); studies of 3 seeds x 12
    speakers tested through :func:`emoshift.evaluation.intervals.paired_difference` detect an effect at the mde
    of a typical study in 74.5% of them (their df is itself estimated and varies from study to study more than
    a t reference assumes), so the stated mde is somewhat optimistic there; the normal shortcut
    ``2.80 se`` reached 55%. None without an ``se``.
    """
    if se is None or not math.isfinite(se):
        return None
    if not df:
        return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)
    crit = stats.t.ppf(1 - alpha / 2, df)

    def short(nc: float) -> float:
        far = float(stats.nct.cdf(-crit, df, nc))  # NaN far out in scipy, where it is 0
        return float(stats.nct.sf(crit, df, nc)) + (far if math.isfinite(far) else 0.0) - power

    # the shortcut undershoots, so twice it brackets the root
    upper = 2 * (crit + stats.t.ppf(power, df))
    return float(optimize.brentq(short, 0.0, upper)) * se


def reported_gap(claim: ClaimSpec, corpus: str, reported: Mapping[str, Mapping[str, float]]) -> float | None:
    """The gap the study itself reported for this finding, as a fraction: a's figure minus b's on ``corpus``;
    for a ``drop`` (``corpus`` is ``from->to``) a's figure on the first corpus minus the second. ``reported``
    maps experiment -> corpus -> the ``reported_accuracy`` percentage of the study file: accuracies under the
    study's own protocol (random utterance split), not our UARs, so the comparison is of orders of magnitude.
    None when either figure is not reported."""
    if claim.kind == "drop":
        first, second = corpus.split("->")
        pair = reported.get(claim.a, {}).get(first), reported.get(claim.a, {}).get(second)
    else:
        pair = reported.get(claim.a, {}).get(corpus), reported.get(str(claim.b), {}).get(corpus)
    return None if pair[0] is None or pair[1] is None else (pair[0] - pair[1]) / 100


def _mcnemar_text(ev: Evidence, alpha: float) -> str:
    if ev.mcnemar_p is None:
        return ""
    sig = "significant" if ev.mcnemar_p < alpha else "not significant"
    return f"; McNemar b={ev.mcnemar_b} c={ev.mcnemar_c} p={ev.mcnemar_p:.3g} ({sig})"


def _mcnemar_against(ev: Evidence, a_better: bool, alpha: float) -> bool:
    """McNemar is significant and favours the other side than the UAR interval does."""
    if ev.mcnemar_p is None or ev.mcnemar_b is None or ev.mcnemar_c is None or ev.mcnemar_p >= alpha:
        return False
    return ev.mcnemar_c > ev.mcnemar_b if a_better else ev.mcnemar_b > ev.mcnemar_c


def _better(ci: tuple[float, float], ev: Evidence, alpha: float) -> tuple[Verdict, str]:
    lo, hi = ci
    if lo > 0 or hi < 0:
        a_better = lo > 0
        if _mcnemar_against(ev, a_better, alpha):
            return (
                "inconclusive",
                f"{_interval(ci)} excludes 0, but McNemar favours the other model: the tests disagree",
            )
        side = "above" if a_better else "below"
        return ("supported" if a_better else "contradicted"), f"{_interval(ci)} lies {side} 0"
    return "inconclusive", f"{_interval(ci)} includes 0"


def _not_better(ci: tuple[float, float], margin: float) -> tuple[Verdict, str]:
    lo, hi = ci
    m = pts(margin)
    if lo > margin:
        return (
            "contradicted",
            f"{_interval(ci)} lies above the margin {m}: a is better by more than the margin",
        )
    if hi < margin:
        return (
            "supported",
            f"{_interval(ci)} ends below the margin {m}: any gain of a is smaller than the margin",
        )
    return "inconclusive", f"{_interval(ci)} includes the margin {m}"


def _noninferior(ci: tuple[float, float], margin: float) -> tuple[Verdict, str]:
    lo, hi = ci
    m = pts(-margin)
    if lo > -margin:
        return "supported", f"{_interval(ci)} starts above the margin {m}: a loses less than the margin"
    if hi < -margin:
        return "contradicted", f"{_interval(ci)} lies below the margin {m}: a loses more than the margin"
    return "inconclusive", f"{_interval(ci)} includes the margin {m}"


def _seeds_word(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def _wins_text(ev: Evidence) -> str:
    """ "a beat b in 2 of 3 seeds" ("" without per-seed numbers)."""
    if ev.wins is None:
        return ""
    return f"a beat b in {ev.wins} of {_seeds_word(len(ev.per_seed))}"


def _few_seeds(ev: Evidence) -> str:
    """Why fewer than MIN_SEEDS seeds decide nothing, with the numbers of the seeds there are."""
    why = f"{_seeds_word(ev.seeds)}: training variance not measured ({MIN_SEEDS} per side needed"
    if ev.seeds_a is not None and ev.seeds_b is not None and ev.seeds_a != ev.seeds_b:
        why += f"; a has {ev.seeds_a}, b {ev.seeds_b}"
    why += ")"
    if ev.diff is None:
        return why
    if len(ev.per_seed) > 1:
        each = ", ".join(pts(d) for d in ev.per_seed)
        why += f"; per seed a - b: {each} points ({_wins_text(ev)}), mean {pts(ev.diff)}"
    else:
        why += f"; the single seed: a - b = {pts(ev.diff)} points"
    if ev.ci is not None:
        over = "over speakers only" if ev.seeds == 1 else "over speakers and seeds"
        why += f", {_interval(ev.ci)} {over}"
    elif ev.ci_reason:
        why += f", no CI: {ev.ci_reason}"
    return why


def _power_text(kind: Kind, ev: Evidence, mde_: float | None, margin: float) -> str:
    """Whether an inconclusive comparison could have seen the gap the study reported."""
    if mde_ is None:
        return "; power unknown (no standard error)"
    text = f"; power: the smallest difference this comparison detects ({POWER:.0%} power) is {100 * mde_:.1f} points"
    if ev.claimed is None:
        return text + " (the study reports no gap for this comparison)"
    b = boundary(kind, margin)
    effect = abs(ev.claimed - b)
    gap = f"the study's reported gap of {pts(ev.claimed)} points (accuracy, its protocol)"
    if b != 0.0:
        gap += f", {100 * effect:.1f} from the boundary {pts(b)}"
    if effect >= mde_:
        return text + f": enough to see {gap}"
    return text + f": too little to see {gap}; the comparison was underpowered for it"


def judge(
    kind: Kind,
    ev: Evidence,
    *,
    margin: float = DEFAULT_MARGIN,
    alpha: float = ALPHA,
    p_adjusted: float | None = None,
    adjusted_by: str = "",
    min_seeds: int = MIN_SEEDS,
) -> Judgement:
    """The verdict of one finding and its reason (see the module docstring for the rules).

    ``p_adjusted`` is the finding's p after the study's correction (``adjusted_by`` names it, e.g. "Holm over
    6 findings"); without it the raw test p is the level's gate. :func:`decide` judges a study's findings
    together. ``min_seeds`` below MIN_SEEDS is for measuring what fewer seeds would have said
    (``benchmarks/bench_seeds.py``: one seed judged alone, as before issue 20), never for a study's verdicts.
    """
    leaky = f"LEAKY: {', '.join(ev.leaky)} scored on speakers seen in training; " if ev.leaky else ""
    if ev.missing is not None:
        return Judgement("no verdict", leaky + ev.missing)
    if ev.random_init:
        why = (
            f"{' and '.join(ev.random_init)}: a random-init preset, not the pretrained model the claim is "
            "about, so its score can neither support nor contradict the claim"
        )
        return Judgement("no verdict", leaky + why)
    p = finding_p(kind, ev, margin)
    gate = p if p_adjusted is None else p_adjusted
    mde_ = mde(ev.se, alpha, df=ev.df)

    def done(verdict: Verdict, why: str) -> Judgement:
        tail = _mcnemar_text(ev, alpha) + ev.note
        if verdict == "inconclusive":
            tail += _power_text(kind, ev, mde_, margin)
        return Judgement(verdict, leaky + why + tail, p, p_adjusted, mde_)

    if ev.seeds < min_seeds:
        return done("inconclusive", _few_seeds(ev))
    if ev.ci is None:
        return done("inconclusive", f"no 95% CI: {ev.ci_reason or 'too few speakers'}")
    if kind == "not_better":
        verdict, why = _not_better(ev.ci, margin)
    elif kind == "noninferior":
        verdict, why = _noninferior(ev.ci, margin)
    else:  # better, drop: a above b
        verdict, why = _better(ev.ci, ev, alpha)
    if ev.method == "unpaired":
        why += (
            " (not paired by speaker: the two corpora's intervals combined by the normal approximation, "
            "conservatively)"
        )
    if ev.wins is not None:
        why = f"{_wins_text(ev)}; {why}"
    if gate is not None:
        level = f"p={p:.3g}" if p is not None else ""
        if p_adjusted is not None and adjusted_by:
            level += f", {adjusted_by}: {p_adjusted:.3g}"
        if verdict != "inconclusive" and not gate < alpha:
            verdict = "inconclusive"
            why += f", but {level} is not below {alpha:g}"
        else:
            why += f"; {level}"
    return done(verdict, why)


def decide(
    tests: Sequence[tuple[Kind, Evidence, float]],
    *,
    alpha: float = ALPHA,
    correction: Correction = "holm",
    min_seeds: int = MIN_SEEDS,
) -> list[Judgement]:
    """Judge a study's findings together: ``tests`` are (kind, evidence, margin), one per finding.

    The family corrected is the findings that can be decided: both sides there, none random-init, at least
    MIN_SEEDS seeds per side, an interval and a p. Which findings those are follows from the study's design
    (seeds, speakers, presets), never from their results, so leaving the others out keeps the family-wise
    error at ``alpha``; they keep their raw p and no adjusted one. ``correction: none`` judges each finding on
    its own raw p.
    """
    ps: list[float | None] = []
    for kind, ev, margin in tests:
        eligible = ev.missing is None and not ev.random_init and ev.seeds >= min_seeds and ev.ci is not None
        ps.append(finding_p(kind, ev, margin) if eligible else None)
    family = sum(p is not None for p in ps)
    adjusted = holm(ps) if correction == "holm" else ps
    label = f"Holm-adjusted over {family} finding{'' if family == 1 else 's'}" if correction == "holm" else ""
    return [
        judge(kind, ev, margin=margin, alpha=alpha, p_adjusted=adj, adjusted_by=label, min_seeds=min_seeds)
        for (kind, ev, margin), adj in zip(tests, adjusted, strict=True)
    ]


@dataclass(frozen=True)
class Unpaired:
    """The difference of two independent estimates: its interval, standard error, degrees of freedom, p."""

    ci: tuple[float, float]
    se: float
    df: float | None
    p: float


def unpaired_difference(
    diff: float,
    se_a: float | None,
    df_a: float | None,
    se_b: float | None,
    df_b: float | None,
    *,
    alpha: float = ALPHA,
) -> Unpaired | None:
    """``a - b`` of two independent estimates, each with its standard error and the degrees of freedom of its
    t reference (None: normal): ``se = sqrt(se_a^2 + se_b^2)``, the Welch-Satterthwaite degrees of freedom
    ``se^4 / (se_a^4 / df_a + se_b^4 / df_b)`` (a side without df counts as infinite), the ``1 - alpha``
    interval ``diff -+ t(1 - alpha/2, df) se`` and the two-sided p of ``diff = 0``. None when either side has
    no standard error."""
    if se_a is None or se_b is None:
        return None
    se = math.hypot(se_a, se_b)
    parts = [s**4 / d for s, d in ((se_a, df_a), (se_b, df_b)) if d]
    df = se**4 / sum(parts) if parts and sum(parts) > 0 else None
    dist = stats.t(df) if df else stats.norm
    half = float(dist.ppf(1 - alpha / 2)) * se
    return Unpaired(ci=(diff - half, diff + half), se=se, df=df, p=two_sided_p(diff, se, df))
