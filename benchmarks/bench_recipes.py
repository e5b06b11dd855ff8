"""Do the defaults learn? Each model family with its default recipe (no --epochs, no width, no schedule set) in
5-fold speaker cross-validation, side by side with the eGeMAPS + SVM baseline on the same folds.

    emoshift synth /tmp/recipes --scale small --seed 7          # a seed the tests do not use
    python benchmarks/bench_recipes.py --root /tmp/recipes       # resnet18, efficientnet_b0, hubert (tiny), egemaps
    python benchmarks/bench_recipes.py --root /tmp/recipes --models egemaps resnet18 --set training.epochs=10

Every run is a real ``emoshift train`` (``emoshift.train``) with ``data.split.method=kfold, k=5``: in-domain
UAR is the pooled out-of-fold score on RAVDESS (a speaker-bootstrap CI over all its speakers) with the fold mean
and sd; cross-corpus UAR is the fold ensemble on every CREMA-D utterance. Time per fold is the run's wall time
divided by its folds (feature caches are shared, so the first model pays for the log-mels). ``--set`` applies to
every model except the baseline and is printed, so a run with overrides is never mistaken for the defaults.
HuBERT runs the ``tiny`` random-init preset (no weights can be fetched here): its row shows the pipeline, not
what a pretrained encoder learns.

Measured so far (the baseline's 5 folds, the CNNs' partial folds, the contended timings and why the defaults
were kept): docs/recipes.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS = ["egemaps", "resnet18", "efficientnet_b0", "hubert"]
BASELINE = "egemaps"


def _overrides(model: str, root: Path, cache: Path, k: int, extra: list[str]) -> list[str]:
    sets = [
        "data.corpora=[ravdess]",
        f"data.roots.ravdess={root / 'ravdess'}",
        f"data.roots.crema-d={root / 'crema-d'}",
        "evaluation.corpora=[crema-d]",
        f"data.cache_dir={cache}",
        "data.split.method=kfold",
        f"data.split.k={k}",
        f"model.name={model}",
        "trainer.progress=false",
    ]
    if model == "hubert":
        sets.append("model.preset=tiny")
    return sets if model == BASELINE else [*sets, *extra]


def _cell(m: dict) -> str:
    ci = (m.get("ci95") or {}).get("uar")
    interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f" n/a ({m.get('speakers')} speakers)"
    return f"{m['uar']:.3f}{interval}"


def run_model(model: str, root: Path, work: Path, k: int, extra: list[str]) -> dict:
    import emoshift

    cfg = emoshift.load_config(None, _overrides(model, root, work / "cache", k, extra))
    t0 = time.perf_counter()
    run = Path(emoshift.train(cfg, work / "runs" / model, progress=False))
    seconds = time.perf_counter() - t0
    ind = json.loads((run / "metrics" / "ravdess.json").read_text())
    cross = json.loads((run / "metrics" / "crema-d.json").read_text())
    runs = sorted((run / "folds").glob("*/done.json"))
    epochs = [json.loads(d.read_text()).get("epochs_run") for d in runs]
    epochs = [e for e in epochs if e]  # the acoustic family trains no epochs (0)
    mean_epochs = sum(epochs) / len(epochs) if epochs else None
    return {"model": model, "in": ind, "cross": cross, "seconds_per_fold": seconds / k, "epochs": mean_epochs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="folder with ravdess/ and crema-d/ (emoshift synth)")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="override for the non-baseline models")
    parser.add_argument("--work", type=Path, default=None, help="keep runs and caches here (default: a temp dir)")
    args = parser.parse_args(argv)
    models = [BASELINE, *[m for m in args.models if m != BASELINE]]
    with tempfile.TemporaryDirectory(prefix="emoshift-recipes-") as tmp:
        work = args.work or Path(tmp)
        rows = []
        for model in models:
            print(f"{model}: training {args.folds} folds ...", flush=True)
            rows.append(run_model(model, args.root, work, args.folds, args.sets))
        base = rows[0]
        print(f"\nroot {args.root}, {args.folds}-fold speaker CV on RAVDESS; cross-corpus: fold ensemble on all of "
              f"CREMA-D; overrides for non-baseline models: {args.sets or 'none (defaults)'}")
        print(f"{'model':16s} {'in-domain UAR [95% CI]':30s} {'fold mean±sd':14s} {'vs base':>8s} "
              f"{'CREMA-D UAR [95% CI]':30s} {'vs base':>8s} {'s/fold':>7s} {'epochs':>6s}")
        for r in rows:
            fm, fs = (r["in"].get("fold_mean") or {}).get("uar"), (r["in"].get("fold_sd") or {}).get("uar")
            spread = f"{fm:.3f}±{fs:.3f}" if fm is not None and fs is not None else "-"
            print(f"{r['model']:16s} {_cell(r['in']):30s} {spread:14s} {r['in']['uar'] - base['in']['uar']:+8.3f} "
                  f"{_cell(r['cross']):30s} {r['cross']['uar'] - base['cross']['uar']:+8.3f} "
                  f"{r['seconds_per_fold']:7.1f} {'-' if r['epochs'] is None else format(r['epochs'], '6.1f'):>6s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
