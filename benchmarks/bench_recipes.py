"""Do the defaults learn? Each model family with its default recipe (no --epochs, no width, no schedule set) in
5-fold speaker cross-validation, side by side with the eGeMAPS + SVM baseline on the same folds.

    emoshift synth /tmp/recipes --scale small --seed 7          # a seed the tests do not use
    python benchmarks/bench_recipes.py --root /tmp/recipes       # resnet18, efficientnet_b0, hubert (tiny), egemaps
    python benchmarks/bench_recipes.py --root /tmp/recipes --models egemaps resnet18 --set training.epochs=10
    python benchmarks/bench_recipes.py --root /tmp/full --models egemaps resnet18 --actors 12 24 --plot curve.png

Every run is a real ``emoshift train`` (``emoshift.train``) with ``data.split.method=kfold, k=5``: in-domain
UAR is the pooled out-of-fold score on RAVDESS (a speaker-bootstrap CI over all its speakers) with the fold mean
and sd; cross-corpus UAR is the fold ensemble on every CREMA-D utterance. Time per fold is the run's wall time
divided by its folds (feature caches are shared, so the first model pays for the log-mels). ``--actors N ...``
runs the whole comparison once per N on the first N RAVDESS actors (a learning curve: does a model catch the
baseline with more speakers?), and ``--plot`` draws UAR with its CI against N for each model. On an emoshift
synthetic corpus a last row, ``oracle-prosody``, is logistic regression on the prosody parameters each take was
rendered with (no audio), on the same folds: roughly the most any model can get out of that corpus. ``--set`` and
``--config`` (a recipe file, e.g. ``configs/recipes/cnn_small_corpus.yaml``) apply to every model except the
baseline and are printed, so a run with overrides is never mistaken for the defaults.
HuBERT runs the ``tiny`` random-init preset (no weights can be fetched here): its row shows the pipeline, not
what a pretrained encoder learns.

What it measured (defaults and recipes against the baseline, a learning curve, speaker normalisation, and why
the defaults were kept): docs/recipes.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def run_model(model: str, root: Path, work: Path, k: int, extra: list[str], config: Path | None = None) -> dict:
    import emoshift

    recipe = None if model == BASELINE else config  # the baseline always runs its own defaults
    cfg = emoshift.load_config(recipe, _overrides(model, root, work / "cache", k, extra))
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


def oracle_row(synth_root: Path, baseline_run: Path, k: int) -> dict | None:
    """A reference no model can beat by much: logistic regression on the prosody each take was rendered with
    (the generator's own parameters, :func:`emoshift.synth.annotate.cues`: loudness, rate, pitch level and
    range, tension, ...), on the baseline's folds (trained on every speaker outside the fold), CREMA-D by the
    ensemble of the fold models. It sees no audio, so it measures neither voice nor channel: only how well the
    emotions can be told apart from what the renderer was asked for. None when ``synth_root`` has no
    ``.synth.json`` (not an emoshift synthetic corpus)."""
    import csv

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from emoshift.evaluation.metrics import classification_metrics, evaluate_predictions
    from emoshift.synth.annotate import applied_prosody, cues
    from emoshift.synth.plan import plan

    meta_path = synth_root / ".synth.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    jobs, _ = plan(synth_root, scale=meta["scale"], seed=meta["seed"], corpora=["ravdess", "crema-d"])
    params = {(j.corpus, Path(j.path).name): list(cues(applied_prosody(j)).values()) for j in jobs}

    def table(corpus: str) -> list[dict[str, str]]:
        with open(baseline_run / "predictions" / f"{corpus}.csv", newline="") as f:
            return list(csv.DictReader(f))

    t0 = time.perf_counter()
    rows_in, rows_x = table("ravdess"), table("crema-d")
    labels = [c.removeprefix("p_") for c in rows_in[0] if c.startswith("p_")]
    x_in = np.array([params["ravdess", Path(r["path"]).name] for r in rows_in])
    x_x = np.array([params["crema-d", Path(r["path"]).name] for r in rows_x])
    y_in = np.array([r["true"] for r in rows_in])
    folds = np.array([int(r["fold"]) for r in rows_in])
    pred_in = np.empty(len(rows_in), dtype=object)
    prob_x = np.zeros((len(rows_x), len(labels)))
    per_fold = []
    for f in range(k):
        test = folds == f
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x_in[~test], y_in[~test])
        pred_in[test] = head.predict(x_in[test])
        prob_x += head.predict_proba(x_x)[:, [list(head.classes_).index(lab) for lab in labels]] / k
        per_fold.append(classification_metrics(list(y_in[test]), list(pred_in[test]), labels)["uar"])

    def scored(rows: list[dict[str, str]], pred: list[str]) -> dict:
        m = evaluate_predictions([r["true"] for r in rows], pred, [r["speaker"] for r in rows], labels)
        return {**m, "speakers": len({r["speaker"] for r in rows})}

    ind = {**scored(rows_in, list(pred_in)), "fold_mean": {"uar": float(np.mean(per_fold))},
           "fold_sd": {"uar": float(np.std(per_fold, ddof=1))}}
    cross = scored(rows_x, [labels[i] for i in prob_x.argmax(axis=1)])
    return {"model": "oracle-prosody", "in": ind, "cross": cross,
            "seconds_per_fold": (time.perf_counter() - t0) / k, "epochs": None}


def subset_root(root: Path, actors: int, out: Path) -> Path:
    """``out`` with ``ravdess/`` holding the first ``actors`` actor folders of ``root/ravdess`` (hard links where
    the file system allows, else copies) and ``crema-d`` pointing at ``root/crema-d``."""
    folders = sorted(d for d in (root / "ravdess").iterdir() if d.is_dir() and d.name.startswith("Actor_"))
    if actors > len(folders):
        raise SystemExit(f"--actors {actors}: {root / 'ravdess'} has only {len(folders)} actor folders")
    for folder in folders[:actors]:
        dest = out / "ravdess" / folder.name
        dest.mkdir(parents=True, exist_ok=True)
        for f in folder.iterdir():
            if f.is_file() and not (dest / f.name).exists():
                try:
                    os.link(f, dest / f.name)
                except OSError:
                    shutil.copy2(f, dest / f.name)
    if not (out / "crema-d").exists():
        (out / "crema-d").symlink_to((root / "crema-d").resolve(), target_is_directory=True)
    return out


def print_table(rows: list[dict], root: Path, folds: int, sets: list[str]) -> None:
    base = rows[0]
    print(f"\nroot {root}, {folds}-fold speaker CV on RAVDESS; cross-corpus: fold ensemble on all of "
          f"CREMA-D; overrides for non-baseline models: {sets or 'none (defaults)'}")
    print(f"{'model':16s} {'in-domain UAR [95% CI]':30s} {'fold mean±sd':14s} {'vs base':>8s} "
          f"{'CREMA-D UAR [95% CI]':30s} {'vs base':>8s} {'s/fold':>7s} {'epochs':>6s}")
    for r in rows:
        fm, fs = (r["in"].get("fold_mean") or {}).get("uar"), (r["in"].get("fold_sd") or {}).get("uar")
        spread = f"{fm:.3f}±{fs:.3f}" if fm is not None and fs is not None else "-"
        print(f"{r['model']:16s} {_cell(r['in']):30s} {spread:14s} {r['in']['uar'] - base['in']['uar']:+8.3f} "
              f"{_cell(r['cross']):30s} {r['cross']['uar'] - base['cross']['uar']:+8.3f} "
              f"{r['seconds_per_fold']:7.1f} {'-' if r['epochs'] is None else format(r['epochs'], '6.1f'):>6s}")


def plot_curve(curve: dict[int, list[dict]], path: Path) -> None:
    """UAR [95% CI] against the number of RAVDESS actors, in-domain and on CREMA-D, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    ns = sorted(curve)
    for ax, part, title in zip(axes, ("in", "cross"), ("RAVDESS (pooled out-of-fold)", "CREMA-D (fold ensemble)"), strict=True):
        for i, model in enumerate(r["model"] for r in curve[ns[0]]):
            ms = [next(r[part] for r in curve[n] if r["model"] == model) for n in ns]
            uar = [m["uar"] for m in ms]
            cis = [(m.get("ci95") or {}).get("uar") or [m["uar"], m["uar"]] for m in ms]
            err = [[u - c[0] for u, c in zip(uar, cis, strict=True)], [c[1] - u for u, c in zip(uar, cis, strict=True)]]
            ax.errorbar([n + 0.25 * i for n in ns], uar, yerr=err, marker="o", capsize=3, label=model)
        ax.set(title=title, xlabel="RAVDESS actors in the corpus", xticks=ns)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("UAR (95% speaker-bootstrap CI)")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="folder with ravdess/ and crema-d/ (emoshift synth)")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="override for the non-baseline models")
    parser.add_argument("--config", type=Path, default=None,
                        help="a recipe YAML for the non-baseline models (e.g. configs/recipes/cnn_small_corpus.yaml)")
    parser.add_argument("--work", type=Path, default=None, help="keep runs and caches here (default: a temp dir)")
    parser.add_argument("--actors", type=int, nargs="+", default=None,
                        help="learning curve: run once per N on the first N RAVDESS actors")
    parser.add_argument("--plot", type=Path, default=None, help="with --actors: save the learning curve here")
    args = parser.parse_args(argv)
    models = [BASELINE, *[m for m in args.models if m != BASELINE]]
    with tempfile.TemporaryDirectory(prefix="emoshift-recipes-") as tmp:
        work = args.work or Path(tmp)
        curve: dict[int, list[dict]] = {}
        for n in args.actors or [0]:
            root = subset_root(args.root, n, work / f"actors-{n}" / "data") if n else args.root
            out = work / f"actors-{n}" if n else work
            rows = []
            for model in models:
                print(f"{model}{f' ({n} actors)' if n else ''}: training {args.folds} folds ...", flush=True)
                rows.append(run_model(model, root, out, args.folds, args.sets, args.config))
            oracle = oracle_row(args.root, out / "runs" / BASELINE, args.folds)
            rows += [oracle] if oracle else []
            print_table(rows, root, args.folds, [*([f"--config {args.config}"] if args.config else []), *args.sets])
            curve[n] = rows
        if args.plot and args.actors:
            plot_curve(curve, args.plot)
            print(f"learning curve: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
