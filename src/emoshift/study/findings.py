"""The study's claims and how a verdict follows from the numbers: pure logic, no files, no torch.

A claim (``findings:`` in the study file) names two experiments ``a`` and ``b`` and a kind of statement about
their UAR (unweighted average recall) on a corpus; the evidence is a paired comparison on the same
utterances (:func:`emoshift.evaluation.compare.compare_predictions`: McNemar's exact test and the paired
speaker-bootstrap 95% CI of ``diff = UAR(a) - UAR(b)``). The verdict, at 95%, is read off that interval:

- ``better`` (a beats b): supported when the CI lies above 0, contradicted when it lies below 0, else
  inconclusive. McNemar (accuracy, per utterance) is reported beside it and can only veto: when it is
  significant in the other direction the two tests disagree and the verdict is inconclusive.
- ``not_better`` (a does not beat b by more than the margin): supported when the CI's upper end is below
  ``+margin``, contradicted when its lower end is above ``+margin``, else inconclusive.
- ``noninferior`` (a keeps b's score, within the margin): supported when the CI's lower end is above
  ``-margin``, contradicted when its upper end is below ``-margin``, else inconclusive.
- ``drop`` (model ``a`` scores lower on the second corpus than on the first): not paired (different
  utterances, different speakers), so the CI of the difference combines the two independent speaker-bootstrap
  CIs by the normal approximation (:func:`unpaired_diff_ci`); supported when it lies above 0.

Before any of that: a side that is missing gives no verdict; a side trained from a random-init preset
(``model.preset``, e.g. the demo's tiny HuBERT) gives no verdict, because its score says nothing about the
pretrained model the claim is about; a null CI (too few speakers) is inconclusive with that reason. A leaky
side keeps its verdict but the reason says so first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["better", "not_better", "noninferior", "drop"]
Verdict = Literal["supported", "contradicted", "inconclusive", "no verdict"]

ALPHA = 0.05
DEFAULT_MARGIN = 0.02  # 2 UAR points
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


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
    """The numbers one finding rests on (UARs as fractions; ``diff = uar_a - uar_b``)."""

    uar_a: float | None = None
    uar_b: float | None = None
    ci: tuple[float, float] | None = None
    ci_reason: str | None = None  # why ci is None
    mcnemar_p: float | None = None
    mcnemar_b: int | None = None  # utterances a got right and b wrong
    mcnemar_c: int | None = None  # the reverse
    n: int | None = None
    speakers: int | None = None
    missing: str | None = None  # why there is no evidence at all (a run not there, ...)
    # sides trained from a random-init preset, e.g. "L4.9 (model.preset: tiny)"
    random_init: tuple[str, ...] = ()
    leaky: tuple[str, ...] = ()  # sides whose scores are leaky, e.g. "L2 on ravdess"
    method: str = "paired"  # "paired" | "unpaired" (drop)
    note: str = ""  # appended to the reason, e.g. which utterances were paired

    @property
    def diff(self) -> float | None:
        return None if self.uar_a is None or self.uar_b is None else self.uar_a - self.uar_b


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str


def pts(x: float) -> str:
    """A UAR difference in points, signed: ``+5.2``."""
    return f"{100 * x:+.1f}"


def _interval(ci: tuple[float, float]) -> str:
    return f"95% CI [{pts(ci[0])}, {pts(ci[1])}] points"


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


def judge(kind: Kind, ev: Evidence, *, margin: float = DEFAULT_MARGIN, alpha: float = ALPHA) -> Judgement:
    """The verdict of one finding and its reason (see the module docstring for the rules)."""
    leaky = f"LEAKY: {', '.join(ev.leaky)} scored on speakers seen in training; " if ev.leaky else ""
    if ev.missing is not None:
        return Judgement("no verdict", leaky + ev.missing)
    if ev.random_init:
        why = (
            f"{' and '.join(ev.random_init)}: a random-init preset, not the pretrained model the claim is "
            "about, so its score can neither support nor contradict the claim"
        )
        return Judgement("no verdict", leaky + why)
    if ev.ci is None:
        return Judgement("inconclusive", leaky + f"no 95% CI: {ev.ci_reason or 'too few speakers'}" + ev.note)
    if kind == "not_better":
        verdict, why = _not_better(ev.ci, margin)
    elif kind == "noninferior":
        verdict, why = _noninferior(ev.ci, margin)
    else:  # better, drop: a above b
        verdict, why = _better(ev.ci, ev, alpha)
    if ev.method == "unpaired":
        why += " (independent speakers: the two speaker-bootstrap CIs combined by the normal approximation)"
    return Judgement(verdict, leaky + why + _mcnemar_text(ev, alpha) + ev.note)


def unpaired_diff_ci(
    ci_a: Sequence[float] | None, ci_b: Sequence[float] | None, diff: float, z: float = Z95
) -> tuple[float, float] | None:
    """95% CI of ``UAR(a) - UAR(b)`` measured on independent speakers, from each side's 95% CI.

    Each interval gives a standard error ``(hi - lo) / (2 z)``; the difference's is the root of the summed
    squares, and the interval ``diff -+ z * se``. None when either side has no interval.
    """
    if not ci_a or not ci_b:
        return None
    se_a = (float(ci_a[1]) - float(ci_a[0])) / (2 * z)
    se_b = (float(ci_b[1]) - float(ci_b[0])) / (2 * z)
    half = z * math.hypot(se_a, se_b)
    return diff - half, diff + half
