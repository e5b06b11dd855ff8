"""The verdict rules of the study's findings, on constructed evidence: one case per verdict and rule."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from emoshift.study.findings import ClaimSpec, Evidence, FindingsSpec, judge, unpaired_diff_ci


def _ev(lo: float, hi: float, **extra: object) -> Evidence:
    fields: dict = {
        "uar_a": 0.6,
        "uar_b": 0.55,
        "ci": (lo, hi),
        "mcnemar_p": 0.2,
        "mcnemar_b": 30,
        "mcnemar_c": 25,
    }
    fields.update(extra)
    return Evidence(**fields)


@pytest.mark.parametrize(
    ("kind", "lo", "hi", "verdict"),
    [
        ("better", 0.01, 0.09, "supported"),
        ("better", -0.09, -0.01, "contradicted"),
        ("better", -0.01, 0.09, "inconclusive"),
        # not_better, margin 0.02: a's gain, if any, must stay below the margin
        ("not_better", -0.06, 0.015, "supported"),
        ("not_better", 0.005, 0.015, "supported"),  # a is better, but by less than the margin
        ("not_better", 0.03, 0.08, "contradicted"),
        ("not_better", -0.01, 0.04, "inconclusive"),
        # noninferior, margin 0.02: a may lose at most the margin
        ("noninferior", -0.015, 0.03, "supported"),
        ("noninferior", -0.09, -0.03, "contradicted"),
        ("noninferior", -0.04, 0.01, "inconclusive"),
        ("drop", 0.1, 0.3, "supported"),
        ("drop", -0.3, -0.1, "contradicted"),
        ("drop", -0.1, 0.3, "inconclusive"),
    ],
)
def test_verdict_follows_the_interval(kind: str, lo: float, hi: float, verdict: str) -> None:
    judgement = judge(kind, _ev(lo, hi), margin=0.02)  # type: ignore[arg-type]
    assert judgement.verdict == verdict
    assert "95% CI" in judgement.reason and "McNemar b=30 c=25 p=0.2" in judgement.reason


def test_margin_changes_the_verdict() -> None:
    ev = _ev(-0.04, 0.01)
    assert judge("noninferior", ev, margin=0.02).verdict == "inconclusive"
    assert judge("noninferior", ev, margin=0.05).verdict == "supported"
    assert "-5.0" in judge("noninferior", ev, margin=0.05).reason


def test_mcnemar_the_other_way_makes_the_tests_disagree() -> None:
    ev = _ev(0.01, 0.05, mcnemar_p=0.001, mcnemar_b=5, mcnemar_c=40)
    judgement = judge("better", ev)
    assert judgement.verdict == "inconclusive" and "disagree" in judgement.reason
    # the same McNemar result agreeing with the interval changes nothing
    agree = _ev(0.01, 0.05, mcnemar_p=0.001, mcnemar_b=40, mcnemar_c=5)
    assert judge("better", agree).verdict == "supported"
    # a stricter level makes that McNemar p non-significant: no veto
    assert judge("better", ev, alpha=0.0005).verdict == "supported"


def test_random_init_preset_gets_no_verdict_whatever_the_numbers() -> None:
    ev = _ev(0.2, 0.4, random_init=("L4.9 (model.preset: tiny)",))
    judgement = judge("better", ev)
    assert judgement.verdict == "no verdict"
    assert "L4.9 (model.preset: tiny)" in judgement.reason and "random-init" in judgement.reason


def test_null_interval_is_inconclusive_with_its_reason() -> None:
    ev = Evidence(uar_a=0.9, uar_b=0.1, ci=None, ci_reason="2 test speakers: too few for a speaker bootstrap")
    judgement = judge("better", ev)
    assert judgement.verdict == "inconclusive"
    assert "2 test speakers: too few for a speaker bootstrap" in judgement.reason


def test_missing_run_gets_no_verdict_and_leaky_runs_say_so() -> None:
    assert judge("better", Evidence(missing="L4.9 has not run to completion")).verdict == "no verdict"
    leaky = judge("better", _ev(0.01, 0.09, leaky=("L2 on ravdess",)))
    assert leaky.verdict == "supported" and leaky.reason.startswith("LEAKY: L2 on ravdess")


def test_unpaired_interval_combines_standard_errors() -> None:
    lo, hi = unpaired_diff_ci([0.5, 0.7], [0.2, 0.3], 0.35)  # se 0.2/2z and 0.1/2z
    half = 0.5 * math.sqrt(0.2**2 + 0.1**2)
    assert (lo, hi) == pytest.approx((0.35 - half, 0.35 + half))
    assert unpaired_diff_ci(None, [0.2, 0.3], 0.1) is None
    ev = Evidence(uar_a=0.6, uar_b=0.25, ci=(lo, hi), method="unpaired")
    judgement = judge("drop", ev)
    assert judgement.verdict == "supported" and "normal approximation" in judgement.reason


def test_claims_are_validated() -> None:
    with pytest.raises(ValidationError, match="'drop' takes one experiment"):
        ClaimSpec(claim="x", kind="drop", a="L2", b="L4.3", corpora=["ravdess", "crema-d"])
    with pytest.raises(ValidationError, match="give 'b'"):
        ClaimSpec(claim="x", kind="better", a="L2")
    with pytest.raises(ValidationError, match="unknown corpus"):
        ClaimSpec(claim="x", kind="better", a="L2", b="L3", corpora=["nosuch"])
    assert ClaimSpec(claim="x", kind="better", a="A", b="B", corpora=["CREMA-D"]).corpora == ["crema-d"]
    spec = FindingsSpec(baselines=["L0"], claims=[ClaimSpec(claim="x", kind="better", a="A", b="B")])
    spec.check_references(["L0", "A", "B"])
    with pytest.raises(ValueError, match="'B', which is not a training experiment"):
        spec.check_references(["L0", "A"])
