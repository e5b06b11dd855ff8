"""Calibration scores, their speaker bootstrap, temperature fitting and abstention, against independent
implementations written here (plain loops over explicit bin edges) and hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss

from emoshift.evaluation.calibration import (
    answered_at,
    calibration_bootstrap,
    calibration_scores,
    confident,
    fit_temperature,
    risk_coverage,
    tempered_nll,
    threshold_for_accuracy,
)
from emoshift.evaluation.metrics import speaker_draws


def reference(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """ECE/MCE over the bins (lo, hi] (a confidence of exactly 0 in the first), Brier summed over classes,
    NLL: one utterance at a time."""
    n = len(y)
    edges = [i / n_bins for i in range(n_bins + 1)]
    ece, mce = 0.0, 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        members = [i for i in range(n) if (lo < probs[i].max() <= hi) or (b == 0 and probs[i].max() == 0)]
        if not members:
            continue
        acc = sum(int(np.argmax(probs[i]) == y[i]) for i in members) / len(members)
        conf = sum(float(probs[i].max()) for i in members) / len(members)
        ece += len(members) / n * abs(acc - conf)
        mce = max(mce, abs(acc - conf))
    brier = sum(sum((probs[i][k] - (1.0 if k == y[i] else 0.0)) ** 2 for k in range(probs.shape[1]))
                for i in range(n)) / n
    nll = -sum(math.log(max(probs[i][y[i]], 1e-12)) for i in range(n)) / n
    return {"ece": ece, "mce": mce, "brier": brier, "nll": nll}


def _random_case(seed: int, n: int = 300, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, rng.integers(0, k, size=n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_the_reference_and_sklearn(seed: int) -> None:
    probs, y = _random_case(seed)
    got, ref = calibration_scores(probs, y), reference(probs, y)
    assert got == pytest.approx(ref, abs=1e-12)
    assert got["nll"] == pytest.approx(log_loss(y, probs, labels=range(4)), abs=1e-12)


def test_perfectly_calibrated_case_has_zero_ece() -> None:
    # 100 clips at each confidence 0.5, 0.7, 0.9 (two classes), exactly that share of them right
    probs, y = [], []
    for conf in (0.5 + 1e-9, 0.7, 0.9):  # 0.5 + tiny: the top class is class 0, not a tie
        for i in range(100):
            probs.append([conf, 1 - conf])
            y.append(0 if i < round(conf * 100) else 1)
    got = calibration_scores(np.array(probs), np.array(y))
    assert got["ece"] == pytest.approx(0.0, abs=1e-8) and got["mce"] == pytest.approx(0.0, abs=1e-8)
    assert got == pytest.approx(reference(np.array(probs), np.array(y)), abs=1e-12)


def test_overconfident_case() -> None:
    # always 95% sure, right half the time: ECE = MCE = 0.45; Brier and NLL by hand
    probs = np.array([[0.95, 0.05, 0.0]] * 10)
    y = np.array([0] * 5 + [1] * 5)
    got = calibration_scores(probs, y)
    assert got["ece"] == pytest.approx(0.45) and got["mce"] == pytest.approx(0.45)
    right, wrong = 0.05**2 + 0.05**2, 0.95**2 + 0.95**2  # (1 - .95)^2 + .05^2 ; .95^2 + (1 - .05)^2
    assert got["brier"] == pytest.approx((right + wrong) / 2)
    assert got["nll"] == pytest.approx(-(math.log(0.95) + math.log(0.05)) / 2)
    assert got == pytest.approx(reference(probs, y), abs=1e-12)


def test_bootstrap_equals_resampling_the_speakers_by_hand() -> None:
    probs, y = _random_case(3, n=120)
    speakers = [f"s{i % 8}" for i in range(len(y))]
    got = calibration_bootstrap(probs, y, speakers, n_resamples=40, seed=5)
    names = sorted(set(speakers))
    draws = speaker_draws(len(names), 40, np.random.default_rng(5))  # the same draws the bootstrap makes
    values: dict[str, list[float]] = {k: [] for k in got}
    for row in draws:
        idx = [i for s, times in zip(names, row, strict=True) for i in range(len(y)) if speakers[i] == s
               for _ in range(int(times))]
        for k, v in reference(probs[idx], y[idx]).items():
            values[k].append(v)
    for k, interval in got.items():
        assert interval == pytest.approx(list(np.quantile(values[k], [0.025, 0.975])), abs=1e-9), k


def test_temperature_recovers_an_overconfident_models_temperature_and_lowers_nll() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 5))
    tempered = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(5, p=p) for p in tempered])  # labels drawn as if the true temperature were 2.5
    t = fit_temperature(logits, y)
    assert t == pytest.approx(2.5, rel=0.1)
    assert tempered_nll(logits, y, t) < tempered_nll(logits, y, 1.0)
    grid = [tempered_nll(logits, y, s) for s in (t * 0.9, t * 1.1)]
    assert min(grid) > tempered_nll(logits, y, t)  # a minimum, not just lower


def test_risk_coverage_and_threshold_against_hand_counts() -> None:
    # six clips: confidences and whether right (class 0 or 1 true)
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.45, 0.55], [0.5, 0.5]])
    y = np.array([0, 0, 0, 1, 1, 0])  # right: yes, yes, no, no, yes, yes (a tie picks class 0)
    curve = risk_coverage(probs, y)
    assert list(curve["threshold"]) == pytest.approx([0.5, 0.55, 0.6, 0.7, 0.8, 0.9])
    assert list(curve["coverage"]) == pytest.approx([6 / 6, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert list(curve["accuracy"]) == pytest.approx([4 / 6, 3 / 5, 2 / 4, 2 / 3, 1.0, 1.0])
    # UAR at threshold 0.6: answered 0.9 (0, right), 0.8 (0, right), 0.7 (true 0, wrong), 0.6 (true 1, wrong)
    assert curve["uar"][2] == pytest.approx((2 / 3 + 0 / 1) / 2)
    assert threshold_for_accuracy(probs, y, 0.75) == pytest.approx(0.8)
    assert threshold_for_accuracy(probs, y, 0.6) == pytest.approx(0.5)
    assert threshold_for_accuracy(np.array([[0.9, 0.1]]), np.array([1]), 0.5) is None
    at = answered_at(probs, y, 0.6)
    assert at == {"answered": 4, "coverage": pytest.approx(4 / 6), "accuracy": pytest.approx(0.5),
                  "uar": pytest.approx(1 / 3)}
    assert answered_at(probs, y, 0.95) == {"answered": 0, "coverage": 0.0, "accuracy": None, "uar": None}


def test_confident() -> None:
    assert confident({"a": 0.6, "b": 0.4}, 0.6) and not confident({"a": 0.59, "b": 0.41}, 0.6)
    assert confident([0.2, 0.8], None) and not confident([], 0.1)


def test_a_validation_set_it_gets_all_right_keeps_temperature_one() -> None:
    """Every clip right: the NLL falls towards T -> 0 (no finite optimum); following it would make every later
    answer a certainty, so T stays 1 and the search says why."""
    from emoshift.evaluation.calibration import temperature_search

    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.5, 0.2], [0.1, 0.0, 0.9]] * 10)
    y = np.array([0, 1, 2] * 10)
    t, why = temperature_search(logits, y)
    assert t == 1.0 and why is not None and "no finite optimum" in why and "100% of the validation clips" in why
    assert fit_temperature(logits, y) == 1.0
