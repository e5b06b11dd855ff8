"""Metrics equal scikit-learn; the speaker interval covers the truth at about the nominal rate; paired tests."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import expit, logit
from scipy.stats import binomtest
from scipy.stats import t as student_t
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    recall_score,
)

from emoshift.evaluation.metrics import (
    MIN_CI_SPEAKERS,
    PredictionsError,
    bootstrap_ci,
    ci_reason,
    classification_metrics,
    evaluate_predictions,
    group_gap,
    mcnemar_exact,
    paired_bootstrap_diff,
    permutation_p_floor,
    permutation_test_groups,
    prediction_labels,
    read_predictions,
    with_ci,
)

LABELS = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]


@pytest.mark.parametrize("seed", range(5))
def test_point_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 300))
    y_true = list(rng.choice(LABELS[:5], n))  # "sad" never occurs as truth
    # "fearful" is never predicted; "sad" is predicted although absent from the truth
    y_pred = list(rng.choice(["angry", "disgust", "happy", "neutral", "sad"], n))
    m = classification_metrics(y_true, y_pred, LABELS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
        assert m["uar"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
        assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
        recall = recall_score(y_true, y_pred, labels=LABELS, average=None, zero_division=0)
    assert m["confusion"] == confusion_matrix(y_true, y_pred, labels=LABELS).tolist()
    for label, r in zip(LABELS, recall, strict=True):
        if label == "sad":
            assert m["per_class_recall"][label] is None  # no true "sad": undefined, not 0
        else:
            assert m["per_class_recall"][label] == pytest.approx(r, abs=1e-12)
    assert m["per_class_recall"]["fearful"] == 0.0
    assert m["n"] == n and m["labels"] == LABELS


def test_unknown_labels_and_bad_shapes_are_errors():
    with pytest.raises(PredictionsError, match="predicted label 'calm' is not one of"):
        classification_metrics(["angry"], ["calm"], LABELS)
    with pytest.raises(PredictionsError, match="y_true has 2 items but y_pred has 1"):
        classification_metrics(["angry", "sad"], ["sad"], LABELS)
    with pytest.raises(PredictionsError, match="no predictions"):
        classification_metrics([], [], LABELS)


def _simulate(rng, n_speakers=30, per_class=5, labels=LABELS[:4], a=6.0, b=4.0):
    """Speakers with their own skill p_s ~ Beta(a, b): each utterance is right with probability p_s.
    Every speaker has ``per_class`` utterances of each class, so the population accuracy and UAR are both
    E[p_s] = a / (a + b)."""
    skill = rng.beta(a, b, n_speakers)
    y_true, y_pred, speakers = [], [], []
    for s in range(n_speakers):
        for c, label in enumerate(labels):
            for _ in range(per_class):
                right = rng.random() < skill[s]
                wrong = labels[(c + 1 + rng.integers(len(labels) - 1)) % len(labels)]
                y_true.append(label)
                y_pred.append(label if right else wrong)
                speakers.append(f"s{s}")
    return y_true, y_pred, speakers


def test_speaker_interval_covers_the_truth_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    truth = 0.6
    hits = {"accuracy": 0, "uar": 0}
    n_sims = 200
    for sim in range(n_sims):
        y_true, y_pred, speakers = _simulate(rng)
        ci = bootstrap_ci(y_true, y_pred, speakers, LABELS[:4], n_resamples=300, seed=sim)
        for metric in hits:
            lo, hi = ci[metric]
            hits[metric] += lo <= truth <= hi
    for metric, h in hits.items():
        assert 0.88 <= h / n_sims <= 0.99, (metric, h / n_sims)


def test_interval_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y_true, y_pred, speakers = _simulate(rng)
    a = bootstrap_ci(y_true, y_pred, speakers, LABELS, seed=3, n_resamples=500)
    # a jackknife: no resampling, so neither the seed nor the resample count changes it
    assert a == bootstrap_ci(y_true, y_pred, speakers, LABELS, seed=4, n_resamples=50)
    point = classification_metrics(y_true, y_pred, LABELS)
    for metric in ("accuracy", "uar"):
        assert a[metric][0] < point[metric] < a[metric][1]
        lo, hi = logit(a[metric])  # symmetric around the estimate on the logit scale
        assert (lo + hi) / 2 == pytest.approx(logit(point[metric]), abs=1e-12)
    # one speaker: no interval at all (never one of zero width)
    one = bootstrap_ci(y_true[:20], y_pred[:20], speakers[:20], LABELS, metrics=("accuracy",))
    assert one == {"accuracy": None}
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(y_true, y_pred, speakers, LABELS, metrics=("f2",))


def test_interval_equals_leaving_out_the_utterances_speaker_by_speaker():
    """The vectorised interval (per-speaker confusion counts, one subtracted at a time) gives exactly what
    dropping each speaker's utterances and scoring the rest with scikit-learn gives: the delete-one-speaker
    jackknife standard error times the t quantile with (speakers - 1) degrees of freedom, on the logit scale
    (the standard error divided by p (1 - p)) and mapped back."""
    rng = np.random.default_rng(1)
    n, n_speakers = 2_000, 40
    y_true = list(rng.choice(LABELS, n))
    y_pred = list(rng.choice(LABELS, n))
    speakers = [f"s{i % n_speakers:02d}" for i in range(n)]
    got = bootstrap_ci(y_true, y_pred, speakers, LABELS)

    for metric, score in (("accuracy", accuracy_score), ("uar", balanced_accuracy_score)):
        left_out = []
        for s in sorted(set(speakers)):
            keep = [i for i, sp in enumerate(speakers) if sp != s]
            left_out.append(score([y_true[i] for i in keep], [y_pred[i] for i in keep]))
        se = np.sqrt((n_speakers - 1) / n_speakers * np.sum((np.array(left_out) - np.mean(left_out)) ** 2))
        point = score(y_true, y_pred)
        half = student_t.ppf(0.975, n_speakers - 1) * se / (point * (1 - point))
        assert got[metric] == pytest.approx(list(expit([logit(point) - half, logit(point) + half])), abs=1e-12)


def test_evaluate_predictions_has_the_metrics_json_keys():
    rng = np.random.default_rng(5)
    y_true, y_pred, speakers = _simulate(rng, n_speakers=8)
    out = evaluate_predictions(y_true, y_pred, speakers, LABELS[:4], n_resamples=200)
    assert list(out) == [
        "accuracy",
        "uar",
        "macro_f1",
        "n",
        "labels",
        "per_class_recall",
        "confusion",
        "collapsed",
        "ci95",
        "ci95_reason",
    ]
    assert set(out["ci95"]) == {"accuracy", "uar"}
    assert out["ci95"]["uar"][0] <= out["uar"] <= out["ci95"]["uar"][1]
    assert out["ci95_reason"] is None


@pytest.mark.parametrize("n_speakers", [1, 2, 4, 5, 6])
def test_ci_is_null_with_its_reason_below_five_speakers(n_speakers):
    rng = np.random.default_rng(n_speakers)
    y_true, y_pred, speakers = _simulate(rng, n_speakers=n_speakers)
    out = evaluate_predictions(y_true, y_pred, speakers, LABELS[:4], n_resamples=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert out["uar"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
        assert out["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert MIN_CI_SPEAKERS == 5
    if n_speakers < 5:
        assert out["ci95"] is None
        noun = "speaker" if n_speakers == 1 else "speakers"
        assert out["ci95_reason"] == f"{n_speakers} test {noun}: too few for a speaker bootstrap"
        assert bootstrap_ci(y_true, y_pred, speakers, LABELS[:4]) == {"accuracy": None, "uar": None}
    else:
        assert out["ci95_reason"] is None
        lo, hi = out["ci95"]["uar"]
        assert lo < hi  # a real interval, not a collapsed one
    assert ci_reason(1) == "1 test speaker: too few for a speaker bootstrap"
    assert ci_reason(2) == "2 test speakers: too few for a speaker bootstrap"
    assert ci_reason(5) is None


def test_mcnemar_exact_matches_the_binomial_test():
    a = [True] * 10 + [False] * 0 + [True] * 50
    b = [False] * 10 + [True] * 50
    assert mcnemar_exact(a, b) == (10, 0, pytest.approx(2 * 0.5**10))
    rng = np.random.default_rng(0)
    a = rng.random(200) < 0.7
    b = rng.random(200) < 0.6
    n_b, n_c, p = mcnemar_exact(a, b)
    assert (n_b, n_c) == (int(np.sum(a & ~b)), int(np.sum(~a & b)))
    assert p == pytest.approx(binomtest(n_b, n_b + n_c, 0.5).pvalue)
    assert mcnemar_exact(a, a) == (0, 0, 1.0)


def test_paired_bootstrap_diff():
    rng = np.random.default_rng(3)
    y_true, good, speakers = _simulate(rng, a=9, b=1)
    bad = list(rng.choice(LABELS[:4], len(y_true)))
    same = paired_bootstrap_diff(y_true, good, good, speakers, LABELS[:4], n_resamples=200)
    assert same["diff"] == 0.0 and same["ci"] == [0.0, 0.0] and same["ci_reason"] is None
    better = paired_bootstrap_diff(y_true, good, bad, speakers, LABELS[:4], n_resamples=200)
    assert better["diff"] == pytest.approx(better["a"] - better["b"])
    assert better["ci"][0] > 0.4  # ~0.9 vs ~0.25 UAR
    few = [i for i, s in enumerate(speakers) if s in {"s0", "s1", "s2"}]
    pick = [y_true[i] for i in few], [good[i] for i in few], [bad[i] for i in few], [speakers[i] for i in few]
    three = paired_bootstrap_diff(*pick, LABELS[:4], n_resamples=200)
    assert three["ci"] is None and three["ci_reason"] == "3 test speakers: too few for a speaker bootstrap"
    assert three["diff"] == pytest.approx(three["a"] - three["b"])


def _two_groups(rng, n_per_group=8, per_speaker=24, same=False):
    """Female speakers predicted perfectly; male speakers at chance (or, with ``same``, a copy of the
    female speakers' predictions)."""
    y_true, y_pred, speakers, groups = [], [], [], {}
    for s in range(n_per_group):
        truth = [LABELS[i % 6] for i in range(per_speaker)]
        pred_f = list(truth) if not same else [t if rng.random() < 0.5 else LABELS[0] for t in truth]
        pred_m = list(rng.choice(LABELS, per_speaker)) if not same else list(pred_f)
        for spk, gender, pred in ((f"f{s}", "female", pred_f), (f"m{s}", "male", pred_m)):
            y_true += truth
            y_pred += pred
            speakers += [spk] * per_speaker
            groups[spk] = gender
    return y_true, y_pred, speakers, groups


def test_permutation_test_finds_a_real_gap_and_not_a_fake_one():
    rng = np.random.default_rng(0)
    y_true, y_pred, speakers, groups = _two_groups(rng)
    gap, p = permutation_test_groups(y_true, y_pred, speakers, groups, LABELS, n_permutations=500)
    assert gap > 0.6
    assert p < 0.01
    y_true, y_pred, speakers, groups = _two_groups(rng, same=True)
    gap, p = permutation_test_groups(y_true, y_pred, speakers, groups, LABELS, n_permutations=500)
    assert gap == pytest.approx(0.0) and p == 1.0
    with pytest.raises(ValueError, match="at least two groups"):
        permutation_test_groups(y_true, y_pred, speakers, dict.fromkeys(groups, "x"), LABELS)


def test_permutation_p_floor_is_the_exact_minimum():
    assert permutation_p_floor([3, 3]) == pytest.approx(2 / 20)  # 20 ways to pick 3 of 6, two are extreme
    assert permutation_p_floor([2, 4]) == pytest.approx(1 / 15)
    assert permutation_p_floor([8, 8]) < 1e-3
    # the Monte Carlo test never goes below the floor: perfect vs chance with 3 + 3 speakers
    rng = np.random.default_rng(0)
    y_true, y_pred, speakers, groups = _two_groups(rng, n_per_group=3)
    _, p = permutation_test_groups(y_true, y_pred, speakers, groups, LABELS, n_permutations=2000)
    assert p == pytest.approx(0.1, abs=0.03)


def test_read_predictions_and_labels(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "id,path,corpus,speaker,gender,true,pred,p_angry,p_sad\n"
        "c/1,/a/1.wav,c,c/01,male,angry,sad,0.4,0.6\n"
        "c/2,/a/2.wav,c,c/01,male,sad,sad,0.1,0.9\n"
    )
    rows = read_predictions(path)
    assert rows[0]["p_sad"] == 0.6 and rows[1]["pred"] == "sad"
    assert prediction_labels(rows) == ["angry", "sad"]
    assert prediction_labels(rows, ["sad", "angry", "happy"]) == ["sad", "angry", "happy"]
    (tmp_path / "bad.csv").write_text("id,speaker,true\nc/1,c/01,angry\n")
    with pytest.raises(PredictionsError, match="missing column"):
        read_predictions(tmp_path / "bad.csv")
    (tmp_path / "dup.csv").write_text("id,speaker,true,pred\nc/1,s,angry,sad\nc/1,s,angry,sad\n")
    with pytest.raises(PredictionsError, match="dup.csv:3: duplicate id"):
        read_predictions(tmp_path / "dup.csv")


@pytest.mark.parametrize(
    ("args", "kwargs", "text"),
    [
        ((0.5123, [0.4011, 0.6204], 12), {}, "0.512 [0.401, 0.620]"),
        ((0.5123, None, 2), {}, "0.512 n/a (2 speakers)"),
        ((0.5123, None, 1), {}, "0.512 n/a (1 speaker)"),
        ((0.5123, [0.5123, 0.5123], 3), {}, "0.512 n/a (3 speakers)"),  # never a zero-width interval
        ((0.5123, [0.4, None], None), {}, "0.512 n/a"),
        ((0.5123, None, None), {}, "0.512 n/a"),
        ((None, [0.4, 0.6], 9), {}, "–"),
        ((0.417, None, 2), {"number": lambda v: f"{100 * v:.1f}"}, "41.7 n/a (2 speakers)"),
        ((0.417, [0.352, 0.48], 9), {"number": lambda v: f"{100 * v:.1f}"}, "41.7 [35.2, 48.0]"),
    ],
)
def test_one_formatter_for_a_score_and_its_interval(args: tuple, kwargs: dict, text: str) -> None:  # type: ignore[type-arg]
    assert with_ci(*args, **kwargs) == text


def test_group_gap_needs_two_groups_with_a_value() -> None:
    values = np.array([[0.2, 0.5, np.nan], [np.nan, 0.4, np.nan], [np.nan, np.nan, np.nan], [0.1, 0.9, 0.3]])
    np.testing.assert_allclose(group_gap(values), [0.3, np.nan, np.nan, 0.8])


# --------------------------------------------------------------------------------------------------------
# A model collapsed to one class is called out (issue 24 #8)


def test_collapsed_names_the_one_class_a_model_predicts_at_the_documented_share():
    from emoshift.evaluation.metrics import COLLAPSED_SHARE, collapse_text, collapsed

    labels = ["angry", "happy", "neutral", "sad", "fearful", "disgust"]
    y_true = [labels[i % 6] for i in range(864)]  # the demo's L4.9: "sad" for all 864 clips
    m = classification_metrics(y_true, ["sad"] * 864, labels)
    assert m["collapsed"] == {"label": "sad", "share": 1.0}
    assert m["uar"] == pytest.approx(1 / 6)
    assert collapse_text(m["collapsed"], 864).startswith("predicts 'sad' for all 864 utterances")
    # nearly: at the threshold it is called out, just below it is not
    n = 200
    at = int(COLLAPSED_SHARE * n)
    near = ["sad"] * at + ["angry"] * (n - at)
    assert collapsed(classification_metrics(y_true[:n], near, labels)["confusion"], labels) == {
        "label": "sad", "share": COLLAPSED_SHARE}
    below = ["sad"] * (at - 1) + ["angry"] * (n - at + 1)
    assert classification_metrics(y_true[:n], below, labels)["collapsed"] is None
    # a working model, and a test set of one true class (all right is no collapse), are not called out
    assert classification_metrics(y_true, y_true, labels)["collapsed"] is None
    assert classification_metrics(["sad"] * 10, ["sad"] * 10, labels)["collapsed"] is None
    # the metrics JSON content carries it too (the pooled k-fold and every evaluation write this)
    assert evaluate_predictions(y_true, ["sad"] * 864, [f"s{i % 12}" for i in range(864)], labels,
                                n_resamples=20)["collapsed"]["label"] == "sad"
