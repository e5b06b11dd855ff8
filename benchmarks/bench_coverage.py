"""Coverage of 95% intervals of pooled out-of-fold UAR over speakers and training seeds, by simulation.

    python benchmarks/bench_coverage.py                      # the docs/measuring.md grid, 400 datasets per cell
    python benchmarks/bench_coverage.py --sims 1000 --speakers 8 24 --seeds 1 3 --fold-sd 0.3 --markdown

Each simulated dataset mimics a k-fold speaker cross-validation, trained once per seed, whose out-of-fold
predictions are pooled per seed:

* ``K`` speakers, ``per_class`` utterances of each of ``L`` classes per speaker (a balanced acted corpus);
  speakers are dealt into ``k`` folds once (the split does not depend on the training seed);
* each speaker has a skill offset ``u ~ N(0, speaker_sd)`` and each class an offset ``c``;
* every seed trains every fold anew: the model of fold ``j`` in seed ``s`` has its own skill offset
  ``f[s, j] ~ N(0, fold_sd)`` (training randomness: initialisation, data order; a fold's training speakers);
* an utterance of class c by speaker i, scored in seed s by the model of i's fold, is right with probability
  ``expit(mu + c + u_i + f[s, fold(i)])``, otherwise predicted as one of the other classes at random.

The seed sd of pooled UAR this gives (column ``seed sd``) is 0.026-0.044 at ``fold_sd`` 0.3 (0.006-0.032 at 0:
utterance noise alone), the 0.013-0.038 that issue 20 measured on the demo study's experiments.

Two truths, two coverages:

* ``recipe``: the population UAR of the training recipe, ``mean_c E_{u,f}[expit(mu + c + u + f)]`` (Monte
  Carlo, 2 million draws): what "this recipe scores on new speakers" means, fold models being random too;
* ``models``: the population UAR of the models actually trained (fold effects fixed, speakers random), averaged
  over the seeds: ``mean_s mean_c sum_j (K_j / K) E_u[expit(mu + c + u + f[s, j])]`` (Gauss-Hermite).

With ``fold sd`` 0 the two coincide. Every dataset gets three intervals:

* ``old``: the percentile speaker bootstrap emoshift printed before issue 20 (speakers resampled with
  replacement, the same draw in every seed, 1,000 resamples, 2.5% and 97.5% quantiles of the seed mean);
* ``2-level``: the percentile two-level bootstrap (seeds resampled too, independently of the speakers);
* ``new``: :func:`emoshift.evaluation.intervals.metric_interval` (delete-one-speaker jackknife + seed
  variance, Welch-Satterthwaite t).

A coverage is the share of intervals that contain the truth, with its Monte Carlo standard error. With one seed
an interval cannot see training randomness: its target is ``models`` and the report says training variance was
not measured; from two seeds on the target is ``recipe``. Cells with fewer than ``MIN_CI_SPEAKERS`` speakers have
no interval in emoshift and are reported as such. ``true sd`` is the sd of the estimate over the datasets.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.special import expit

from emoshift.evaluation.confusion import batch_metrics
from emoshift.evaluation.intervals import MIN_CI_SPEAKERS, metric_interval
from emoshift.evaluation.metrics import percentile, speaker_draws

N_LABELS = 6
METHODS = ("old", "2-level", "new")


def true_uar(
    mu: float, class_offsets: np.ndarray, speaker_sd: float, fold_sd: float, rng: np.random.Generator
) -> float:
    z = rng.normal(0.0, 1.0, 2_000_000) * np.hypot(speaker_sd, fold_sd)  # u + f, independent normals
    return float(np.mean([expit(mu + c + z).mean() for c in class_offsets]))


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)  # E[g(Z)], Z ~ N(0, 1) = sum w g(x) / sqrt(2 pi)


def conditional_uar(
    mu: float, class_offsets: np.ndarray, speaker_sd: float, fold_effect: np.ndarray, share: np.ndarray
) -> float:
    """UAR of fixed fold models (S, k) over the speaker population (each fold scores its share of speakers),
    averaged over the seeds."""
    z = speaker_sd * _NODES  # (Q,)
    grid = expit(mu + class_offsets[:, None, None, None] + fold_effect[None, :, :, None] + z)  # (L, S, k, Q)
    per_fold = grid @ (_WEIGHTS / np.sqrt(2 * np.pi))  # (L, S, k)
    return float((per_fold @ share).mean())


def simulate(
    rng: np.random.Generator,
    *,
    n_speakers: int,
    n_seeds: int,
    k: int,
    per_class: int,
    mu: float,
    class_offsets: np.ndarray,
    speaker_sd: float,
    fold_sd: float,
) -> tuple[np.ndarray, float]:
    """Per-seed, per-speaker confusion counts (S, K, L, L) of one simulated k-fold run trained with S seeds,
    and the UAR of its fold models over the speaker population (mean over seeds)."""
    n_labels = len(class_offsets)
    fold_of = rng.permutation(n_speakers) % k  # (K,) fold of each speaker: k folds of (nearly) equal size
    fold_effect = rng.normal(0.0, fold_sd, (n_seeds, k))  # (S, k) every seed trains every fold anew
    speaker_effect = rng.normal(0.0, speaker_sd, n_speakers)  # (K,)
    logit = mu + class_offsets + (speaker_effect + fold_effect[:, fold_of])[..., None]  # (S, K, L)
    right = rng.binomial(per_class, expit(logit))  # (S, K, L)
    wrong = rng.multinomial(per_class - right, [1 / (n_labels - 1)] * (n_labels - 1))  # (S, K, L, L-1)
    conf = np.zeros((n_seeds, n_speakers, n_labels, n_labels))
    for c in range(n_labels):
        conf[..., c, c] = right[..., c]
        conf[..., c, [j for j in range(n_labels) if j != c]] = wrong[..., c, :]
    share = np.bincount(fold_of, minlength=k) / n_speakers  # (k,)
    return conf, conditional_uar(mu, class_offsets, speaker_sd, fold_effect, share)


def percentile_bootstraps(
    conf: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> tuple[list[float] | None, list[float] | None]:
    """The old interval (speakers resampled, the same draw in every seed) and the two-level one (seeds
    resampled too): percentile 95% intervals of the mean over seeds of pooled UAR."""
    n_seeds, n_speakers = conf.shape[:2]
    weights = speaker_draws(n_speakers, n_resamples, rng)  # (R, K)
    resampled = np.einsum("rk,skij->rsij", weights, conf)  # (R, S, L, L)
    uar = batch_metrics(resampled)["uar"]  # (R, S)
    seeds = rng.integers(0, n_seeds, (n_resamples, n_seeds))  # (R, S) the seeds drawn
    return percentile(uar.mean(axis=1), 0.05), percentile(
        np.take_along_axis(uar, seeds, 1).mean(axis=1), 0.05
    )


def run_cell(args: argparse.Namespace, n_speakers: int, n_seeds: int, fold_sd: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    class_offsets = np.linspace(-0.8, 0.8, N_LABELS)
    truth = true_uar(args.mu, class_offsets, args.speaker_sd, fold_sd, rng)
    hits = {m: 0 for m in METHODS}
    hits_models = {m: 0 for m in METHODS}
    widths: dict[str, list[float]] = {m: [] for m in METHODS}
    estimates, seed_sds = [], []
    for _ in range(args.sims):
        conf, truth_models = simulate(
            rng,
            n_speakers=n_speakers,
            n_seeds=n_seeds,
            k=args.k,
            per_class=args.per_class,
            mu=args.mu,
            class_offsets=class_offsets,
            speaker_sd=args.speaker_sd,
            fold_sd=fold_sd,
        )
        per_seed = batch_metrics(conf.sum(axis=1))["uar"]  # (S,)
        estimates.append(per_seed.mean())
        if n_seeds > 1:
            seed_sds.append(per_seed.std(ddof=1))
        interval, _ = metric_interval(conf, "uar")
        if interval is None:
            continue
        old, two_level = percentile_bootstraps(conf, args.resamples, rng)
        for m, ci in zip(METHODS, (old, two_level, [interval.lo, interval.hi]), strict=True):
            assert ci is not None
            hits[m] += ci[0] <= truth <= ci[1]
            hits_models[m] += ci[0] <= truth_models <= ci[1]
            widths[m].append(ci[1] - ci[0])
    printed = bool(widths["new"])
    out: dict = {
        "truth": truth,
        "sd": float(np.std(estimates, ddof=1)),
        "seed_sd": float(np.mean(seed_sds)) if seed_sds else float("nan"),
        "printed": printed,
    }
    for m in METHODS:
        out[m] = hits[m] / args.sims if printed else float("nan")
        out[f"{m}_models"] = hits_models[m] / args.sims if printed else float("nan")
        out[f"{m}_width"] = float(np.mean(widths[m])) if printed else float("nan")
    return out


def _cov(p: float, n: int) -> str:
    return "no interval" if np.isnan(p) else f"{p:.3f}±{np.sqrt(p * (1 - p) / n):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=400, help="simulated datasets per cell")
    parser.add_argument(
        "--resamples", type=int, default=1000, help="bootstrap resamples per percentile interval"
    )
    parser.add_argument("--speakers", type=int, nargs="+", default=[4, 5, 6, 8, 12, 24, 91])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5], help="training seeds per run")
    parser.add_argument("--fold-sd", type=float, nargs="+", default=[0.0, 0.3], help="logit scale")
    parser.add_argument("--speaker-sd", type=float, default=0.5, help="logit scale")
    parser.add_argument("--mu", type=float, default=0.0, help="logit of the average skill")
    parser.add_argument("--k", type=int, default=5, help="folds")
    parser.add_argument("--per-class", type=int, default=8, help="utterances per speaker and class")
    parser.add_argument("--seed", type=int, default=20240)
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as markdown (docs/measuring.md)"
    )
    args = parser.parse_args(argv)
    print(
        f"95% intervals of pooled out-of-fold UAR: {args.sims} datasets per cell, {args.resamples} resamples for "
        f"the percentile bootstraps, k={args.k}, {N_LABELS} classes x {args.per_class} utterances per speaker, "
        f"speaker sd {args.speaker_sd}, mu {args.mu} (logit scale); no interval below {MIN_CI_SPEAKERS} speakers; "
        "coverage of the recipe's UAR (speakers and training random), and of these models' (new, one seed)"
    )
    head = ["speakers", "seeds", "fold sd", "seed sd", "truth", "old", "2-level", "new", "new: models",
            "width old", "width new", "true sd", "s"]  # fmt: skip
    print("| " + " | ".join(head) + " |" if args.markdown else " ".join(f"{h:>12}" for h in head))
    if args.markdown:
        print("|" + "---|" * len(head))
    for i, n_speakers in enumerate(args.speakers):
        for j, n_seeds in enumerate(args.seeds):
            for m, fold_sd in enumerate(args.fold_sd):
                t0 = time.perf_counter()
                r = run_cell(args, n_speakers, n_seeds, fold_sd, args.seed + 1000 * i + 100 * j + m)
                seed_sd = "–" if np.isnan(r["seed_sd"]) else f"{r['seed_sd']:.3f}"
                cells = [
                    str(n_speakers), str(n_seeds), f"{fold_sd:.2f}", seed_sd, f"{r['truth']:.3f}",
                    _cov(r["old"], args.sims), _cov(r["2-level"], args.sims), _cov(r["new"], args.sims),
                    _cov(r["new_models"], args.sims), f"{r['old_width']:.3f}", f"{r['new_width']:.3f}",
                    f"{r['sd']:.3f}", f"{time.perf_counter() - t0:.1f}",
                ]  # fmt: skip
                line = (
                    "| " + " | ".join(cells) + " |" if args.markdown else " ".join(f"{c:>12}" for c in cells)
                )
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
