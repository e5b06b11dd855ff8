"""Coverage of the speaker-bootstrap 95% CI of UAR on pooled out-of-fold predictions, by simulation.

    python benchmarks/bench_coverage.py                      # default grid, 400 datasets per cell
    python benchmarks/bench_coverage.py --sims 1000 --speakers 24 91 --fold-sd 0 0.3

Each simulated dataset mimics a k-fold speaker cross-validation whose out-of-fold predictions are pooled:

* ``S`` speakers, ``per_class`` utterances of each of ``L`` classes per speaker (a balanced acted corpus);
* speakers are dealt into ``k`` folds; each fold's model has its own skill offset ``f ~ N(0, fold_sd)``
  (fold-level variation: different training speakers, different seeds);
* each speaker has a skill offset ``u ~ N(0, speaker_sd)`` and each class an offset ``c``;
* an utterance of class c by speaker s, scored by the model of s's fold, is right with probability
  ``expit(mu + c + u + f)``, otherwise predicted as one of the other classes at random.

Two truths, two coverages:

* ``procedure``: the population UAR of the training recipe, ``mean_c E_{u,f}[expit(mu + c + u + f)]`` (Monte
  Carlo, 2 million draws): what "this recipe scores on new speakers" means, fold models being random too;
* ``these models``: the population UAR of the k fold models actually drawn (fold effects fixed, speakers
  random): ``mean_c sum_k (S_k / S) E_u[expit(mu + c + u + f_k)]`` (Gauss-Hermite quadrature).

Every dataset gets the interval emoshift prints (``metrics.bootstrap_ci``, resampling speakers with
replacement, 1,000 resamples); a coverage is the share of intervals that contain the truth, with its Monte
Carlo standard error beside it. With ``fold sd`` 0 the two truths coincide. Cells with fewer than ``MIN_CI_SPEAKERS`` speakers have no
interval in emoshift and are reported as such. A reference line gives the same for the point estimate's
spread, so the interval widths can be read against the true sampling sd.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.special import expit

from emoshift.evaluation.metrics import MIN_CI_SPEAKERS, batch_metrics, bootstrap_ci, confusion_stack

LABELS = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]


def true_uar(
    mu: float, class_offsets: np.ndarray, speaker_sd: float, fold_sd: float, rng: np.random.Generator
) -> float:
    z = rng.normal(0.0, 1.0, 2_000_000) * np.hypot(speaker_sd, fold_sd)  # u + f, independent normals
    return float(np.mean([expit(mu + c + z).mean() for c in class_offsets]))


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)  # E[g(Z)], Z ~ N(0, 1) = sum w g(x) / sqrt(2 pi)


def conditional_uar(
    mu: float, class_offsets: np.ndarray, speaker_sd: float, fold_effect: np.ndarray, share: np.ndarray
) -> float:
    """UAR of fixed fold models over the speaker population (each fold scores its share of speakers)."""
    z = speaker_sd * _NODES  # (Q,)
    grid = expit(
        mu + class_offsets[:, None, None] + fold_effect[None, :, None] + z[None, None, :]
    )  # (L, k, Q)
    per_fold = grid @ (_WEIGHTS / np.sqrt(2 * np.pi))  # (L, k)
    return float((per_fold @ share).mean())


def simulate(
    rng: np.random.Generator,
    *,
    n_speakers: int,
    k: int,
    per_class: int,
    mu: float,
    class_offsets: np.ndarray,
    speaker_sd: float,
    fold_sd: float,
) -> tuple[list[str], list[str], list[str], float]:
    """Pooled out-of-fold (true, pred, speaker) of one simulated k-fold cross-validation, and the UAR of its
    fold models over the speaker population."""
    n_labels = len(class_offsets)
    fold_of = rng.permutation(n_speakers) % k  # (S,) fold of each speaker: k folds of (nearly) equal size
    fold_effect = rng.normal(0.0, fold_sd, k)  # (k,)
    speaker_effect = rng.normal(0.0, speaker_sd, n_speakers)  # (S,)
    logit = mu + class_offsets[None, :] + (speaker_effect + fold_effect[fold_of])[:, None]  # (S, L)
    right = rng.random((n_speakers, n_labels, per_class)) < expit(logit)[:, :, None]  # (S, L, U)
    true = np.broadcast_to(np.arange(n_labels)[None, :, None], right.shape)
    wrong = (true + 1 + rng.integers(0, n_labels - 1, right.shape)) % n_labels
    pred = np.where(right, true, wrong)
    speakers = np.broadcast_to(np.arange(n_speakers)[:, None, None], right.shape)
    share = np.bincount(fold_of, minlength=k) / n_speakers  # (k,)
    return (
        [LABELS[i] for i in true.ravel()],
        [LABELS[i] for i in pred.ravel()],
        [f"s{i:03d}" for i in speakers.ravel()],
        conditional_uar(mu, class_offsets, speaker_sd, fold_effect, share),
    )


def point_uar(true: list[str], pred: list[str]) -> float:
    index = {label: i for i, label in enumerate(LABELS)}
    t = np.array([index[x] for x in true])
    p = np.array([index[x] for x in pred])
    conf = confusion_stack(t, p, np.zeros_like(t), len(LABELS), 1)[0]
    return float(batch_metrics(conf)["uar"])


def run_cell(args: argparse.Namespace, n_speakers: int, fold_sd: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    class_offsets = np.linspace(-0.8, 0.8, len(LABELS))
    truth = true_uar(args.mu, class_offsets, args.speaker_sd, fold_sd, rng)
    hits, hits_cond, widths, estimates = 0, 0, [], []
    for sim in range(args.sims):
        true, pred, speakers, truth_cond = simulate(
            rng,
            n_speakers=n_speakers,
            k=args.k,
            per_class=args.per_class,
            mu=args.mu,
            class_offsets=class_offsets,
            speaker_sd=args.speaker_sd,
            fold_sd=fold_sd,
        )
        estimates.append(point_uar(true, pred))
        ci = bootstrap_ci(
            true, pred, speakers, LABELS, metrics=("uar",), n_resamples=args.resamples, seed=sim
        )
        interval = ci["uar"]
        if interval is None:
            continue
        hits += interval[0] <= truth <= interval[1]
        hits_cond += interval[0] <= truth_cond <= interval[1]
        widths.append(interval[1] - interval[0])
    coverage = hits / args.sims if widths else float("nan")
    coverage_cond = hits_cond / args.sims if widths else float("nan")
    return {
        "truth": truth,
        "coverage": coverage,
        "se": float(np.sqrt(coverage * (1 - coverage) / args.sims)) if widths else float("nan"),
        "coverage_cond": coverage_cond,
        "se_cond": float(np.sqrt(coverage_cond * (1 - coverage_cond) / args.sims))
        if widths
        else float("nan"),
        "width": float(np.mean(widths)) if widths else float("nan"),
        "sd": float(np.std(estimates, ddof=1)),
        "bias": float(np.mean(estimates) - truth),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=400, help="simulated datasets per cell")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument("--speakers", type=int, nargs="+", default=[4, 6, 12, 24, 91])
    parser.add_argument("--fold-sd", type=float, nargs="+", default=[0.0, 0.15, 0.3], help="logit scale")
    parser.add_argument("--speaker-sd", type=float, default=0.5, help="logit scale")
    parser.add_argument("--mu", type=float, default=0.0, help="logit of the average skill")
    parser.add_argument("--k", type=int, default=5, help="folds")
    parser.add_argument("--per-class", type=int, default=8, help="utterances per speaker and class")
    parser.add_argument("--seed", type=int, default=20240)
    args = parser.parse_args(argv)
    print(
        f"speaker-bootstrap 95% CI of pooled out-of-fold UAR: {args.sims} datasets per cell, "
        f"{args.resamples} resamples, k={args.k}, {len(LABELS)} classes x {args.per_class} utterances per speaker, "
        f"speaker sd {args.speaker_sd}, mu {args.mu} (logit scale); no interval below {MIN_CI_SPEAKERS} speakers"
    )
    print(
        f"{'speakers':>8} {'fold sd':>7} {'truth':>6} {'cov. procedure':>14} {'cov. these models':>17} "
        f"{'mean width':>10} {'true sd':>7} {'bias':>7} {'s':>5}"
    )
    for i, n_speakers in enumerate(args.speakers):
        for j, fold_sd in enumerate(args.fold_sd):
            t0 = time.perf_counter()
            r = run_cell(args, n_speakers, fold_sd, args.seed + 100 * i + j)
            cov = "no interval" if np.isnan(r["coverage"]) else f"{r['coverage']:.3f}±{r['se']:.3f}"
            cond = (
                "no interval" if np.isnan(r["coverage"]) else f"{r['coverage_cond']:.3f}±{r['se_cond']:.3f}"
            )
            print(
                f"{n_speakers:>8} {fold_sd:>7.2f} {r['truth']:>6.3f} {cov:>14} {cond:>17} {r['width']:>10.3f} "
                f"{r['sd']:>7.3f} {r['bias']:>+7.3f} {time.perf_counter() - t0:>5.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
