"""How much does one training seed decide? The study's experiments trained over several seeds, their spread,
and how often a verdict from one seed disagrees with the verdict over all of them.

    emoshift synth /tmp/seeds-data --scale small --seed 11          # a corpus seed the tests do not use
    python benchmarks/bench_seeds.py --root /tmp/seeds-data --out /tmp/seeds-out            # 5 seeds, demo profile
    python benchmarks/bench_seeds.py --root /tmp/seeds-data --out /tmp/seeds-out --seeds 0 1 2 3 4 \\
        --only L2 L4.3 L4.5 L4.6 --markdown

It runs ``configs/study.yaml`` (``--profile demo`` unless ``--profile`` says otherwise) on the RAVDESS-like and
CREMA-D-like folders under ``--root`` with ``training.seeds`` set to ``--seeds`` for every experiment of
``--only`` (and what they need), through the library (``run_study``: an interrupted benchmark resumes). Then it
prints:

1. per experiment and corpus: each seed's pooled UAR, their mean and sd (the seed sd of pooled UAR: what one
   training run cannot show), the mean fold sd, and the half-width of the interval printed for the run (over
   speakers and seeds);
2. per claim and corpus: the verdict over all the seeds (``OUT/findings.csv``: at least 3 seeds per side decide),
   and the verdict each single seed gives when it is judged alone as emoshift judged before issue 20 (one training
   run per side, the seed rule waived: ``min_seeds=1``), and how many single-seed verdicts disagree with the
   all-seed one.

A single seed's verdicts are computed on a view of the study whose ``runs/<id>`` are the seed runs
(``OUT/runs/<id>/seeds/<s>``, complete run directories), so both verdicts come from the same predictions and the
same rules (:func:`emoshift.study.claims.gather`), only the seeds differ. Nothing here is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from emoshift.core.rundir import RunDir
from emoshift.study import load_study, run_study
from emoshift.study.claims import gather
from emoshift.study.records import run_dir
from emoshift.study.summaries import collect

STUDY = Path(__file__).resolve().parents[1] / "configs" / "study.yaml"
DEFAULT_ONLY = ["L2", "L4.3", "L4.5", "L4.6"]  # the experiments behind issue 20's table


def _metrics(run: RunDir, corpus: str) -> dict[str, Any] | None:
    path = run.metrics(corpus)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def spread_rows(out: Path, ids: list[str], corpora: list[str]) -> list[dict[str, Any]]:
    """Per experiment and corpus: each seed's UAR, their mean and sd, the mean fold sd, the CI half-width."""
    rows = []
    for eid in ids:
        run = RunDir.of(run_dir(out, eid))
        for corpus in corpora:
            m = _metrics(run, corpus)
            if m is None or not isinstance(m.get("seeds"), list):
                continue
            per_seed = [s["uar"] for s in m["seeds"]]
            fold_sds = [s["fold_sd"] for s in m["seeds"] if s.get("fold_sd") is not None]
            ci = (m.get("ci95") or {}).get("uar")
            rows.append(
                {
                    "experiment": eid,
                    "corpus": corpus,
                    "seeds": per_seed,
                    "mean": statistics.fmean(per_seed),
                    "seed_sd": statistics.stdev(per_seed) if len(per_seed) > 1 else None,
                    "fold_sd": statistics.fmean(fold_sds) if fold_sds else None,
                    "ci_half": (ci[1] - ci[0]) / 2 if ci else None,
                }
            )
    return rows


def seed_view(out: Path, view: Path, ids: list[str], seed: int) -> None:
    """``view/runs/<id>`` -> ``out/runs/<id>/seeds/<seed>`` for every multi-seed run (links, nothing copied)."""
    (view / "runs").mkdir(parents=True, exist_ok=True)
    for eid in ids:
        target = RunDir.of(run_dir(out, eid)).seed(seed)
        link = run_dir(view, eid)
        if Path(target).is_dir() and not link.exists():
            os.symlink(target, link, target_is_directory=True)


def verdict_rows(out: Path, study: Any, ids: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    """Per finding: the all-seed verdict and each single seed's verdict (judged alone, min_seeds=1)."""
    everything = {(f.claim.claim, f.corpus): f for f in gather(out, study, collect(out, study))}
    single: dict[tuple[str, str], list[str]] = {key: [] for key in everything}
    for s in seeds:
        view = out / "seed-views" / str(s)
        seed_view(out, view, ids, s)
        for f in gather(view, study, collect(view, study), min_seeds=1):
            if (f.claim.claim, f.corpus) in single:
                single[(f.claim.claim, f.corpus)].append(f.judgement.verdict)
    rows = []
    for key, f in everything.items():
        if f.evidence.missing is not None or len(single[key]) != len(seeds):
            continue  # a side not in --only: nothing to compare
        alone = single[key]
        rows.append(
            {
                "claim": key[0],
                "corpus": key[1],
                "diff": f.evidence.diff,
                "ci": f.evidence.ci,
                "wins": f.evidence.wins,
                "n_seeds": f.evidence.seeds,
                "verdict": f.judgement.verdict,
                "single": alone,
                "disagree": sum(v != f.judgement.verdict for v in alone),
            }
        )
    return rows


def _pts(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _u(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def print_tables(spread: list[dict[str, Any]], verdicts: list[dict[str, Any]], markdown: bool) -> None:
    sep = " | " if markdown else "  "
    head = ["experiment", "corpus", "UAR per seed", "seed mean", "seed sd", "fold sd", "CI half-width"]
    print(("| " + sep.join(head) + " |") if markdown else sep.join(head))
    if markdown:
        print("|" + "---|" * len(head))
    for r in spread:
        cells = [r["experiment"], r["corpus"], " ".join(f"{u:.3f}" for u in r["seeds"]), _u(r["mean"]),
                 _u(r["seed_sd"]), _u(r["fold_sd"]), _u(r["ci_half"])]  # fmt: skip
        print(("| " + sep.join(cells) + " |") if markdown else sep.join(cells))
    print()
    head = ["claim", "corpus", "difference (all seeds) [95% CI]", "wins", "verdict, all seeds",
            "single-seed verdicts", "disagree"]  # fmt: skip
    print(("| " + sep.join(head) + " |") if markdown else sep.join(head))
    if markdown:
        print("|" + "---|" * len(head))
    for r in verdicts:
        ci = f" [{_pts(r['ci'][0])}, {_pts(r['ci'][1])}]" if r["ci"] else ""
        counts = Counter(r["single"])
        alone = ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))
        cells = [r["claim"], r["corpus"], _pts(r["diff"]) + ci, f"{r['wins']} of {r['n_seeds']}", r["verdict"],
                 alone, f"{r['disagree']} of {len(r['single'])}"]  # fmt: skip
        print(("| " + sep.join(cells) + " |") if markdown else sep.join(cells))
    total = sum(r["disagree"] for r in verdicts)
    n = sum(len(r["single"]) for r in verdicts)
    if n:
        print(
            f"\nsingle-seed verdicts that disagree with the all-seed verdict: {total} of {n} ({100 * total / n:.0f}%)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="emoshift synth output: ravdess/ and crema-d/")
    ap.add_argument("--out", type=Path, required=True, help="the study's output folder (resumed when re-run)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--only", nargs="+", default=DEFAULT_ONLY, help="experiment ids (plus what they need)")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="key=value for every experiment")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    if len(args.seeds) < 3:
        ap.error("--seeds: give at least 3 (a verdict over seeds needs 3 per side)")
    roots = {"ravdess": str(args.root / "ravdess"), "crema-d": str(args.root / "crema-d")}
    seeds = "[" + ",".join(str(s) for s in args.seeds) + "]"
    study = load_study(STUDY, profile=args.profile, roots=roots,
                       overrides=[f"training.seeds={seeds}", *args.sets])  # fmt: skip
    study = study.model_copy(update={"robustness": ()})  # channels are not what this measures: no perturbed scores
    run_study(study, args.out, only=args.only)
    ids = [e.id for e in study.experiments if run_dir(args.out, e.id).is_dir()]
    print(f"{len(args.seeds)} seeds {args.seeds}, profile {args.profile}, corpus {args.root}\n")
    print_tables(
        spread_rows(args.out, ids, list(roots)), verdict_rows(args.out, study, ids, args.seeds), args.markdown
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
