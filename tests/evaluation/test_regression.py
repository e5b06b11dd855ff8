"""CCC, Pearson's r and MAE against direct computations; speaker-bootstrap intervals against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import mean_absolute_error

from emoshift.evaluation.metrics import PredictionsError, speaker_draws
from emoshift.evaluation.regression import (
    ccc,
    evaluate_regression,
    paired_bootstrap_ccc_diff,
    regression_bootstrap_ci,
    regression_metrics,
)


def direct_ccc(t: np.ndarray, p: np.ndarray) -> float:
    # Lin (1989) written out with numpy's own moments, no shared code with the module
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    return float(2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2))


def data(n_speakers: int = 8, per: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, n_speakers * per)
    p = 0.6 * t + 0.2 + rng.normal(0, 0.15, t.size)
    speakers = [f"s{i // per}" for i in range(t.size)]
    return t, p, speakers


def test_point_metrics_equal_direct_scipy_and_sklearn() -> None:
    t, p, _ = data()
    m = regression_metrics(t, p)
    assert m["ccc"] == pytest.approx(direct_ccc(t, p), rel=1e-12)
    assert m["pearson"] == pytest.approx(pearsonr(t, p).statistic, rel=1e-10)
    assert m["mae"] == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
    assert m["n"] == t.size
    assert ccc(t, p) == pytest.approx(direct_ccc(t, p), rel=1e-12)


def test_ccc_properties_that_pearson_lacks() -> None:
    t, _, _ = data()
    assert ccc(t, t) == pytest.approx(1.0)
    assert ccc(t, np.full_like(t, t.mean())) == pytest.approx(0.0)  # constant prediction: no agreement
    shifted = regression_metrics(t, t + 0.5)
    assert shifted["pearson"] == pytest.approx(1.0)
    assert shifted["ccc"] < 0.5  # a shift is punished
    assert regression_metrics(t, np.full_like(t, 0.3))["pearson"] is None  # undefined, not NaN in JSON


def test_bootstrap_interval_equals_a_plain_loop_over_the_same_draws() -> None:
    t, p, speakers = data()
    ci = regression_bootstrap_ci(t, p, speakers, n_resamples=200, seed=3)
    names = sorted(set(speakers))
    idx = np.array([names.index(s) for s in speakers])
    draws = speaker_draws(len(names), 200, np.random.default_rng(3))
    values = {"ccc": [], "pearson": [], "mae": []}
    for w in draws:
        rows = np.concatenate([np.tile(np.flatnonzero(idx == s), int(c)) for s, c in enumerate(w)])
        values["ccc"].append(direct_ccc(t[rows], p[rows]))
        values["pearson"].append(pearsonr(t[rows], p[rows]).statistic)
        values["mae"].append(mean_absolute_error(t[rows], p[rows]))
    for m, v in values.items():
        assert ci[m] == pytest.approx(list(np.quantile(v, [0.025, 0.975])), rel=1e-9), m
    assert ci["ccc"][0] < direct_ccc(t, p) < ci["ccc"][1]


def test_no_interval_below_five_speakers() -> None:
    t, p, speakers = data(n_speakers=2)
    assert regression_bootstrap_ci(t, p, speakers) == {"ccc": None, "pearson": None, "mae": None}
    out = evaluate_regression({"arousal": t}, {"arousal": p}, speakers)
    assert out["ci95"] is None and out["per_target"]["arousal"]["ci95"] is None
    assert out["ci95_reason"] == "2 test speakers: too few for a speaker bootstrap"


def test_evaluate_regression_per_target_and_mean() -> None:
    t, p, speakers = data()
    t2, p2, _ = data(seed=1)
    out = evaluate_regression({"arousal": t, "valence": t2}, {"arousal": p, "valence": p2}, speakers, seed=0)
    assert out["task"] == "dimensional" and out["targets"] == ["arousal", "valence"]
    assert out["per_target"]["valence"]["ccc"] == pytest.approx(direct_ccc(t2, p2))
    assert out["ccc"] == pytest.approx((direct_ccc(t, p) + direct_ccc(t2, p2)) / 2)
    lo, hi = out["ci95"]["ccc"]
    assert lo < out["ccc"] < hi
    assert out["per_target"]["arousal"]["ci95"] == regression_bootstrap_ci(t, p, speakers, seed=0)


def test_paired_ccc_difference() -> None:
    t, p, speakers = data(n_speakers=10)
    worse = p + np.random.default_rng(9).normal(0, 0.3, p.size)
    out = paired_bootstrap_ccc_diff(t, p, worse, speakers, n_resamples=500)
    assert out["diff"] == pytest.approx(direct_ccc(t, p) - direct_ccc(t, worse))
    assert out["ci"][0] > 0  # clearly better on the same utterances
    same = paired_bootstrap_ccc_diff(t, p, p, speakers)
    assert same["diff"] == 0 and same["ci"] == [0.0, 0.0]
    few = paired_bootstrap_ccc_diff(t[:24], p[:24], worse[:24], speakers[:24])
    assert few["ci"] is None and "2 test speakers" in few["ci_reason"]


@pytest.mark.parametrize(
    ("t", "p", "message"),
    [
        ([0.1, 0.2], [0.1], "2 true values but 1 predictions"),
        ([], [], "no values"),
        ([0.1, np.nan], [0.1, 0.2], "finite"),
    ],
)
def test_bad_values_are_one_clear_error(t: list[float], p: list[float], message: str) -> None:
    with pytest.raises(PredictionsError, match=message):
        regression_metrics(t, p)
