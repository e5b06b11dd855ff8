"""The acoustic baseline in 5-fold speaker cross-validation: in-domain and cross-corpus UAR, and its speed.

    emoshift synth /tmp/synth-full --scale full --seed 0        # RAVDESS-sized: 24 actors, 1,440 files
    python benchmarks/bench_baseline.py --root /tmp/synth-full  # egemaps + svm, global and per-speaker norm
    python benchmarks/bench_baseline.py --root DIR --feature-set compare --head logreg

What it does, exactly as the k-fold trainer will:

1. functionals of every RAVDESS and CREMA-D file into a ``FunctionalCache`` (timed: first build, then a second
   build that must reuse everything);
2. ``data.splits.make_split(method="kfold", k=5, fold=i)`` on RAVDESS (speaker-disjoint, gender-stratified);
   the head is fitted on each fold's train + val speakers (a linear head has nothing to tune on validation)
   and scores the fold's test speakers: the pooled out-of-fold predictions cover every speaker once;
3. in-domain metrics on the pooled predictions (speaker-bootstrap CI over all speakers) plus per-fold UAR,
   mean and sd; cross-corpus: every fold model scores all of CREMA-D, the ensemble (mean probability) is
   scored, with the fold models' own UARs (mean, sd) beside it.

Time per fold is the wall time of ``fit`` + ``predict_proba`` on that fold (features already cached).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, required=True, help="folder with ravdess/ and crema-d/ (emoshift synth)"
    )
    parser.add_argument("--feature-set", default="egemaps", choices=["egemaps", "compare"])
    parser.add_argument("--head", default="svm", choices=["svm", "logreg"])
    parser.add_argument(
        "--normalise", nargs="+", default=["global", "speaker"], choices=["global", "speaker"]
    )
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--cache", type=Path, default=None, help="functionals cache root (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    from emoshift.config.split import SplitConfig
    from emoshift.corpora import scan
    from emoshift.data.splits import make_split
    from emoshift.evaluation.metrics import classification_metrics, evaluate_predictions
    from emoshift.features.functionals import FunctionalCache, FunctionalsConfig
    from emoshift.models.acoustic import AcousticBaseline, HeadConfig

    cache_root = args.cache or Path(tempfile.mkdtemp(prefix="emoshift-baseline-"))
    cfg = FunctionalsConfig(feature_set=args.feature_set)
    cache = FunctionalCache(cache_root)
    corpora = {name: scan(name, str(args.root / name), labels="six") for name in ("ravdess", "crema-d")}
    stores = {}
    for name, sc in corpora.items():
        t0 = time.perf_counter()
        store = cache.build(name, sc.utterances, cfg, workers=args.workers, progress=True)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = cache.build(name, sc.utterances, cfg, workers=args.workers)
        second = time.perf_counter() - t0
        assert again.stats is not None and again.stats.extracted == 0
        print(
            f"{name}: {len(sc.utterances)} files, {len({u.speaker for u in sc.utterances})} speakers; "
            f"{args.feature_set} ({cfg.dim}) cache build {first:.1f} s ({len(sc.utterances) / first:.1f} files/s, "
            f"{args.workers} workers), rebuild {second:.2f} s (all reused); {len(store.skipped)} skipped"
        )
        stores[name] = store

    labels = sorted({u.emotion for u in corpora["ravdess"].utterances})
    rav = [u for u in corpora["ravdess"].utterances if u.id in stores["ravdess"]]
    crema = [u for u in corpora["crema-d"].utterances if u.id in stores["crema-d"] and u.emotion in labels]
    x_rav = stores["ravdess"].matrix([u.id for u in rav])
    x_crema = stores["crema-d"].matrix([u.id for u in crema])
    row_of = {u.id: i for i, u in enumerate(rav)}
    for normalise in args.normalise:
        head = HeadConfig(head=args.head, normalise=normalise, seed=args.seed)
        oof_pred: dict[str, str] = {}
        folds, ens, fold_cross, times = [], np.zeros((len(crema), len(labels))), [], []
        for fold in range(args.k):
            split = make_split(rav, SplitConfig(method="kfold", k=args.k, fold=fold, seed=args.seed))
            train = [u for u in rav if split.assignment.get(u.id) in ("train", "val")]
            test = [u for u in rav if split.assignment.get(u.id) == "test"]
            t0 = time.perf_counter()
            model = AcousticBaseline(head, labels=labels, feature_set=args.feature_set).fit(
                x_rav[[row_of[u.id] for u in train]], [u.emotion for u in train], [u.speaker for u in train]
            )
            pred = model.predict(x_rav[[row_of[u.id] for u in test]], [u.speaker for u in test])
            times.append(time.perf_counter() - t0)
            oof_pred.update({u.id: p for u, p in zip(test, pred, strict=True)})
            m = classification_metrics([u.emotion for u in test], pred, labels)
            folds.append(
                {"fold": fold, "n": m["n"], "speakers": len({u.speaker for u in test}), "uar": m["uar"]}
            )
            proba = model.predict_proba(x_crema, [u.speaker for u in crema])
            ens += proba
            fold_cross.append(
                classification_metrics(
                    [u.emotion for u in crema], [labels[i] for i in proba.argmax(1)], labels
                )["uar"]
            )
        assert sorted(oof_pred) == sorted(u.id for u in rav), "every speaker scored exactly once"
        pooled = evaluate_predictions(
            [u.emotion for u in rav], [oof_pred[u.id] for u in rav], [u.speaker for u in rav], labels
        )
        cross = evaluate_predictions(
            [u.emotion for u in crema], [labels[i] for i in ens.argmax(1)], [u.speaker for u in crema], labels
        )
        fold_uar = np.array([f["uar"] for f in folds])
        print(
            f"\n{args.feature_set} + {args.head}, {normalise} normalisation, {args.k}-fold speaker CV on RAVDESS"
        )
        print("  folds: " + ", ".join(f"{f['fold']}: {f['uar']:.3f} ({f['speakers']} spk)" for f in folds))
        print(
            f"  in-domain pooled UAR {_ci(pooled)} over {len({u.speaker for u in rav})} speakers; "
            f"fold mean {fold_uar.mean():.3f} sd {fold_uar.std(ddof=1):.3f}"
        )
        print(
            f"  cross-corpus CREMA-D ({len(crema)} files): ensemble UAR {_ci(cross)}; "
            f"fold models mean {np.mean(fold_cross):.3f} sd {np.std(fold_cross, ddof=1):.3f}"
        )
        print(
            f"  time per fold (fit + predict, cached features): mean {np.mean(times):.2f} s, "
            f"max {np.max(times):.2f} s; total {np.sum(times):.1f} s"
        )
    return 0


def _ci(m: dict) -> str:  # type: ignore[type-arg]
    ci = (m.get("ci95") or {}).get("uar")
    return f"{m['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{m['uar']:.3f} ({m['ci95_reason']})"


if __name__ == "__main__":
    sys.exit(main())
