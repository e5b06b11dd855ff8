"""Speaker-bootstrap speed: emoshift's vectorised ``bootstrap_ci`` against the plain loop, in the same run.

    python benchmarks/bench_metrics.py                        # 10,000 utterances, 100 speakers, 1,000 resamples
    python benchmarks/bench_metrics.py --utterances 50000 --speakers 300

What is timed (best of ``--repeat`` runs, wall clock, after one warm-up call):

* emoshift: ``bootstrap_ci(y_true, y_pred, speakers, labels, n_resamples=R)`` (accuracy and UAR): one confusion
  matrix per speaker, then every resample at once as a (R, S) x (S, L*L) product.
* reference: what one would write by hand: for each resample draw the speakers, concatenate their utterances and
  score them with scikit-learn (``accuracy_score``, ``balanced_accuracy_score``). It is timed on ``--ref-resamples``
  resamples and scaled to R (its cost is linear in R); both sides use the same draws, and the printed intervals
  show they agree.

The unit tests check that the two give the same interval (tests/test_metrics.py); speed is measured only here.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from emoshift.evaluation.metrics import bootstrap_ci

LABELS = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _reference(y_true: np.ndarray, y_pred: np.ndarray, speakers: list[str], n_resamples: int, seed: int) -> list:
    names = sorted(set(speakers))
    where = {s: np.flatnonzero(np.asarray(speakers) == s) for s in names}
    draws = np.random.default_rng(seed).integers(0, len(names), size=(n_resamples, len(names)))
    acc, uar = [], []
    for draw in draws:
        idx = np.concatenate([where[names[k]] for k in draw])
        acc.append(accuracy_score(y_true[idx], y_pred[idx]))
        uar.append(balanced_accuracy_score(y_true[idx], y_pred[idx]))
    return [np.quantile(acc, [0.025, 0.975]).tolist(), np.quantile(uar, [0.025, 0.975]).tolist()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=10_000)
    ap.add_argument("--speakers", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=1_000)
    ap.add_argument("--ref-resamples", type=int, default=100, help="resamples the reference loop is timed on")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    y_true = rng.choice(LABELS, args.utterances)
    y_pred = np.where(rng.random(args.utterances) < 0.5, y_true, rng.choice(LABELS, args.utterances))
    speakers = [f"s{i % args.speakers:04d}" for i in range(args.utterances)]
    t_list, p_list = list(y_true), list(y_pred)

    def ours(r: int = args.resamples) -> dict:
        return bootstrap_ci(t_list, p_list, speakers, LABELS, n_resamples=r, seed=0)

    ours(10)  # warm-up: imports, BLAS
    t_ours = _best(ours, args.repeat)
    t_ref = _best(lambda: _reference(y_true, y_pred, speakers, args.ref_resamples, 0), args.repeat)
    t_ref_scaled = t_ref * args.resamples / args.ref_resamples

    r = args.ref_resamples
    print(f"{args.utterances:,} utterances, {args.speakers} speakers, {len(LABELS)} labels")
    print(f"emoshift bootstrap_ci, {args.resamples} resamples: {t_ours * 1e3:9.1f} ms")
    print(f"reference loop (sklearn), {r} resamples:         {t_ref * 1e3:9.1f} ms "
          f"-> {t_ref_scaled * 1e3:,.0f} ms for {args.resamples}")
    print(f"speed-up: {t_ref_scaled / t_ours:,.1f}x")
    same = ours(r)
    print(f"same draws, {r} resamples: emoshift {same['accuracy']}, {same['uar']}")
    print(f"                          reference {_reference(y_true, y_pred, speakers, r, 0)}")


if __name__ == "__main__":
    main()
