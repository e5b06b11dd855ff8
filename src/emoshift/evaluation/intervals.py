"""Confidence intervals over speakers and training seeds, and the paired difference of two recipes.

What an interval covers
-----------------------
A score is measured on a sample of test speakers, by models that one training run produced. Both are random:
another sample of speakers, or another training seed (initialisation, data order, dropout), gives another
score. The target of every interval here is **what the recipe scores**: the expected metric over the speaker
population *and* over training randomness. Its two sources of error are

* speakers: the same K test speakers are scored in every seed, so their sampling error is shared by all seeds
  and does not shrink with more seeds;
* seeds: each seed's models fall out differently (in a k-fold run every fold model does), an error that is
  independent from seed to seed and shrinks as 1/S over S seeds.

The input is one confusion matrix per seed and speaker, ``(S, K, L, L)`` counts (rows true, columns
predicted), the same K speakers in every seed; ``S == 1`` is the single-level case (one training run: its
interval covers the speaker sampling only, and training variance is not measured).

The method: delete-one-speaker jackknife + seed variance, t quantiles
--------------------------------------------------------------------
The estimate is the mean over seeds of each seed's pooled metric, ``theta = mean_s metric(sum_k C[s, k])``.

* Speaker variance: the delete-one-speaker jackknife of ``theta`` (speaker ``k`` left out of every seed at
  once, ``theta_(k)``): ``v_spk = (K - 1) / K * sum_k (theta_(k) - mean theta_(.))^2``.
* Seed variance: ``v_seed = var_s(theta_s) / S`` (the sample variance of the per-seed scores, ddof 1; 0 with
  one seed).
* ``se = sqrt(v_spk + v_seed)`` and the interval is ``theta +- t(df, 1 - alpha/2) * se`` with the
  Welch-Satterthwaite degrees of freedom ``df = se^4 / (v_spk^2 / (K - 1) + v_seed^2 / (S - 1))`` (``K - 1``
  with one seed). For a metric (not a difference) that interval is made on the logit scale (below).

Why this and not a bootstrap: a percentile bootstrap over speakers treats the K observed speakers as the
population, which is too narrow at small K (the sample sd is biased low and the normal / percentile quantile
ignores that it is estimated: 84.7% coverage at 6 speakers, 89.9% at 12, ``benchmarks/bench_coverage.py``);
a bootstrap over 3 seeds is worse still (3 values cannot show their own spread's uncertainty). The jackknife
variance is, if anything, conservative (Efron-Stein), and the t quantile with K - 1 (or Welch-Satterthwaite)
degrees of freedom pays for estimating the spread from few speakers or seeds: with 3 seeds whose spread
dominates, df is near 2 and the interval honestly wide. The variance of ``theta_s`` across seeds also holds
the utterance-level noise that the speaker jackknife sees, so that part is counted twice: the interval errs
on the wide side. It is deterministic (no resampling), so ``n_resamples`` and ``seed`` are accepted for the
API's stability and do not change the result.

A metric's interval (in [0, 1]) is made on the logit scale and mapped back (the delta method: the standard
error divided by ``theta (1 - theta)``): it stays inside (0, 1) and leans away from the near bound, as the
estimate's spread does, which keeps the coverage at high scores (at a UAR of 0.8-0.9 and 8 speakers: 94.8-95.5%
on the logit scale against 93.0-94.0% symmetric, at the same width). A difference's interval is symmetric, cut
to [-1, 1].

Measured coverage of 95% intervals (``python benchmarks/bench_coverage.py``: a simulated 5-fold speaker
cross-validation, 6 classes, fold-model sd 0 or 0.3 logit, which gives a seed sd of pooled UAR of 0.03-0.04;
400 simulated studies per cell, Monte Carlo se 1-1.5 points; the whole table is in ``docs/measuring.md``):

====================  ==========================  ===================  ===================
speakers x seeds      target                      percentile (old)     this method
====================  ==========================  ===================  ===================
5 x 1, fold sd 0      these models = the recipe   83.8%                96.0%
6 x 1, fold sd 0      these models = the recipe   85.3%                95.8%
8 x 1, fold sd 0      these models = the recipe   89.7%                96.0%
12 x 1, fold sd 0     these models = the recipe   91.2%                95.3%
8 x 1, fold sd 0.3    these models                --                   97.3%
8 x 3, fold sd 0.3    the recipe                  90.0%                98.0%
12 x 3, fold sd 0.3   the recipe                  87.3%                96.8%
24 x 3, fold sd 0.3   the recipe                  91.5%                96.8%
91 x 3, fold sd 0.3   the recipe                  79.5%                94.3%
91 x 5, fold sd 0.3   the recipe                  84.3%                96.3%
====================  ==========================  ===================  ===================

At least 93.2% wherever an interval is printed, from 5 speakers up (a one-seed interval of these models, a
several-seed one of the recipe; the percentile two-level bootstrap over seeds and speakers, also measured, stayed
below 93% in 11 of the 24 multi-seed cells).

Tried and not kept: removing the utterance noise counted twice (the speaker part estimated as ``(S
v_jack(mean) - mean_s v_jack(s)) / (S - 1)``) narrowed the interval by about 5% only and dropped coverage to
91-94%.

Below :data:`MIN_CI_SPEAKERS` speakers there is no interval: the functions return ``None`` and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from emoshift.evaluation.confusion import METRICS, batch_metrics

MIN_CI_SPEAKERS = 5  # fewer speakers than this: no interval (null, with a reason)
METHOD = "speaker jackknife t"  # one seed
METHOD_SEEDS = "speaker jackknife + seed variance, Welch-Satterthwaite t"  # two or more seeds


@dataclass(frozen=True)
class Interval:
    """A confidence interval and how it was made (``se`` and ``df``: the standard error and degrees of
    freedom of its t quantile)."""

    lo: float
    hi: float
    method: str
    se: float | None = None
    df: float | None = None


@dataclass(frozen=True)
class PairedDifference:
    """``metric(a) - metric(b)`` on the same utterances, per seed paired by seed index."""

    diff: float  # mean over seeds of the per-seed difference
    per_seed: list[float]  # the per-seed differences
    ci: Interval | None  # over speakers AND seeds (None with a reason when it cannot hold)
    reason: str | None
    p: float | None  # two-sided p of "no difference" whose null includes seed variation
    se: float | None  # standard error of diff (speakers and seeds), for power / MDE
    wins: int  # seeds where a beat b
    n_seeds: int
    n_speakers: int
    df: float | None = None  # degrees of freedom of the t reference (p, ci)


def ci_reason(n_speakers: int, min_speakers: int = MIN_CI_SPEAKERS) -> str | None:
    """Why there is no interval for ``n_speakers`` test speakers (None when there can be one).

    ``ci_reason(2) == "2 test speakers: too few for a speaker bootstrap"``; ``ci_reason(1)`` is singular.
    """
    if n_speakers >= min_speakers:
        return None
    noun = "speaker" if n_speakers == 1 else "speakers"
    return f"{n_speakers} test {noun}: too few for a speaker bootstrap"


def _check(per_speaker: np.ndarray, metric: str, alpha: float) -> np.ndarray:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    conf = np.asarray(per_speaker, dtype=np.float64)
    if conf.ndim != 4 or conf.shape[-1] != conf.shape[-2] or conf.shape[0] < 1:
        raise ValueError(f"per-speaker confusions must be (seeds, speakers, L, L), got shape {conf.shape}")
    return conf


def _seed_scores(conf: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(S, K, L, L) -> per-seed pooled metric (S,) and the same with each speaker left out (S, K)."""
    total = conf.sum(axis=1)  # (S, L, L)
    per_seed = batch_metrics(total)[metric]  # (S,)
    left_out = batch_metrics(total[:, None] - conf)[metric]  # (S, K)
    return per_seed, left_out


def _combine(per_seed: np.ndarray, left_out: np.ndarray) -> tuple[float, float, float]:
    """Per-seed values (S,) and leave-one-speaker-out values (S, K) -> (estimate, se, df)."""
    n_seeds, k = left_out.shape
    jack = left_out.mean(axis=0)  # (K,) the seed-mean without speaker k
    v_spk = (k - 1) / k * float(np.sum((jack - jack.mean()) ** 2))
    v_seed = float(per_seed.var(ddof=1)) / n_seeds if n_seeds > 1 else 0.0
    var = v_spk + v_seed
    if n_seeds == 1 or v_seed == 0.0:
        df = float(k - 1)
    else:
        df = var**2 / (v_spk**2 / (k - 1) + v_seed**2 / (n_seeds - 1))
    return float(per_seed.mean()), float(np.sqrt(var)), df


def _interval(estimate: float, se: float, df: float, alpha: float, method: str, lowest: float) -> Interval:
    """``estimate +- t * se``, kept within the range (``[-1, 1]`` for a difference): the truth lies there, so
    cutting off the rest never loses coverage."""
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    lo, hi = max(estimate - half, lowest), min(estimate + half, 1.0)
    return Interval(lo=lo, hi=hi, method=method, se=se, df=df)


def _logit_interval(estimate: float, se: float, df: float, alpha: float, method: str) -> Interval:
    """The t interval of a metric in [0, 1] made on the logit scale and mapped back: ``expit(logit(estimate) +-
    t * se / (estimate * (1 - estimate)))`` (the delta method). It stays inside (0, 1) and leans away from the
    near bound, as the estimate's spread does: at a UAR of 0.8-0.9 it covers 94.8-95.5% at 8 speakers where the
    symmetric interval covers 93.0-94.0%, at the same width. ``se`` stays on the metric's own scale."""
    if se == 0 or not 0 < estimate < 1:  # no spread (every speaker alike), or a metric at its bound
        return _interval(estimate, se, df, alpha, method, 0.0)
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se / (estimate * (1 - estimate))
    center = float(special.logit(estimate))
    lo, hi = float(special.expit(center - half)), float(special.expit(center + half))
    return Interval(lo=lo, hi=hi, method=f"{method}, logit scale", se=se, df=df)


def metric_interval(
    per_speaker: np.ndarray,
    metric: str = "uar",
    *,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[Interval | None, str | None]:
    """The ``1 - alpha`` interval of the mean over seeds of ``metric(sum over speakers)``.

    ``per_speaker``: (S seeds, K speakers, L, L) confusion counts, the same K speakers in every seed (S == 1:
    speakers only). Returns ``(interval, None)``, or ``(None, reason)`` below :data:`MIN_CI_SPEAKERS`
    speakers or where the metric is undefined. ``n_resamples`` and ``seed`` do not change the (deterministic)
    jackknife result; they keep the signature of a resampling method.
    """
    conf = _check(per_speaker, metric, alpha)
    reason = ci_reason(conf.shape[1])
    if reason:
        return None, reason
    per_seed, left_out = _seed_scores(conf, metric)
    if not (np.all(np.isfinite(per_seed)) and np.all(np.isfinite(left_out))):
        return None, f"{metric} is undefined on these utterances"
    estimate, se, df = _combine(per_seed, left_out)
    return _logit_interval(estimate, se, df, alpha, METHOD if conf.shape[0] == 1 else METHOD_SEEDS), None


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    metric: str = "uar",
    *,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairedDifference:
    """``metric(a) - metric(b)`` on the same speakers and utterances, seed ``s`` of a paired with seed ``s``
    of b: (S, K, L, L) each. Its interval and two-sided t test (``p``) count both the speakers (jackknifed
    together in both recipes and all seeds) and the spread of the per-seed differences (seed variation is part
    of the null). ``wins`` counts the seeds where a scored higher than b."""
    conf_a, conf_b = _check(a, metric, alpha), _check(b, metric, alpha)
    if conf_a.shape != conf_b.shape:
        raise ValueError(
            f"a and b must have the same shape (seeds, speakers, L, L): {conf_a.shape} vs {conf_b.shape}"
        )
    n_seeds, k = conf_a.shape[:2]
    seed_a, out_a = _seed_scores(conf_a, metric)
    seed_b, out_b = _seed_scores(conf_b, metric)
    per_seed = seed_a - seed_b  # (S,)
    diff = float(per_seed.mean())
    wins = int(np.sum(per_seed > 0))
    listed = [float(d) for d in per_seed]
    reason = ci_reason(k)
    left_out = out_a - out_b  # (S, K)
    if not reason and not (np.all(np.isfinite(per_seed)) and np.all(np.isfinite(left_out))):
        reason = f"{metric} is undefined on these utterances"
    if reason:
        return PairedDifference(diff, listed, None, reason, None, None, wins, n_seeds, k)
    _, se, df = _combine(per_seed, left_out)
    ci = _interval(diff, se, df, alpha, METHOD if n_seeds == 1 else METHOD_SEEDS, -1.0)
    return PairedDifference(diff, listed, ci, None, _t_test(diff, se, df), se, wins, n_seeds, k, df)


def _t_test(diff: float, se: float, df: float) -> float:
    """Two-sided p of "no difference" against t(df); with no spread at all, 1 for identical recipes and 0
    for a difference without any noise."""
    if se > 0:
        return float(2 * stats.t.sf(abs(diff) / se, df))
    return 1.0 if diff == 0 else 0.0
