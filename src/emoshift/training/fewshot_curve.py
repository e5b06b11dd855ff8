"""The few-shot learning curve: UAR on a target corpus's held-back speakers against K, the number of its labelled
speakers adapted on (``emoshift adapt RUN --on NAME=ROOT --learning-curve 0,1,2,4,8 [--seeds 0,1,2] -o OUT``).

Every point is scored on **the same held-back speakers**, so the points are comparable: the target's speakers
are put in the gender-balanced order of the first seed (:func:`emoshift.training.fewshot.speaker_order`), the
first max(K) of them form the *pool* the K speakers are drawn from, and the rest are held back for every K and
seed. For each K > 0 and seed, the K speakers are the first K of the pool in that seed's gender-balanced order
(max(K) takes the whole pool every seed; the seed still changes the fine-tuning); each is an adapted run
(:func:`emoshift.training.fewshot.adapt_on`) in ``OUT/runs/k<K>_s<seed>/``, scored on the held-back speakers
only. K = 0 is the unadapted model (a copy of the run, ``OUT/runs/k0/``) scored on the same speakers.

A point's UAR is the mean over its seeds; its 95% interval covers the held-back speakers and, with several
seeds, the seeds (:func:`emoshift.evaluation.intervals.metric_interval` on the per-seed, per-speaker confusions;
none below 5 held-back speakers, with the reason). Written: ``OUT/curve.csv`` (one row per K), ``OUT/curve.json``
(the same, with the pool, the held-back speakers and each point's speakers per seed) and ``OUT/curve.png``.
A point whose run is complete is not adapted again, so an interrupted curve resumes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.config import ExperimentConfig, save_config
from emoshift.core.io import atomic_write_csv, atomic_write_json, read_csv
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir, write_model_json
from emoshift.evaluation.confusion import batch_metrics
from emoshift.evaluation.evaluate import evaluate_run
from emoshift.evaluation.intervals import metric_interval
from emoshift.evaluation.plots import plot_learning_curve
from emoshift.evaluation.seeded import per_speaker_confusions
from emoshift.training.fewshot import (
    EPOCHS,
    FEW_SHOT,
    AdaptError,
    FewShot,
    Target,
    adapt_on,
    check_k,
    open_run,
    open_target,
    speaker_genders,
    speaker_order,
)

CURVE_COLUMNS = ["k", "uar", "ci95_lo", "ci95_hi", "ci95_reason", "seeds", "per_seed_uar", "speakers", "n"]


@dataclass(frozen=True)
class CurveDir:
    """Where a learning curve writes (OUT is not a run directory; each point's run is)."""

    path: Path

    @property
    def csv(self) -> Path:
        return self.path / "curve.csv"

    @property
    def json(self) -> Path:
        return self.path / "curve.json"

    @property
    def plot(self) -> Path:
        return self.path / "curve.png"

    def point(self, k: int, seed: int | None) -> Path:
        """The run of point K (``k0``: the unadapted model) for ``seed``."""
        return self.path / "runs" / ("k0" if k == 0 else f"k{k}_s{seed}")


@dataclass(frozen=True)
class CurvePlan:
    """Which speakers each point adapts on, and the held-back speakers every point is scored on."""

    ks: list[int]
    seeds: list[int]
    pool: list[str]  # the first max(K) speakers of the first seed's order
    held_back: list[str]  # every other speaker, sorted
    genders: dict[str, str | None]

    def speakers(self, k: int, seed: int) -> list[str]:
        """The K speakers of ``seed``: the first K of the pool in that seed's gender-balanced order."""
        return speaker_order({s: self.genders[s] for s in self.pool}, seed)[:k]


def plan_curve(target: Target, ks: Sequence[int], seeds: Sequence[int]) -> CurvePlan:
    """The curve's speakers (AdaptError, one line, for a K that leaves fewer than 2 speakers held back)."""
    ks = sorted(set(int(k) for k in ks))
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not ks or not seeds:
        raise AdaptError("--learning-curve needs at least one K (e.g. 0,1,2,4,8) and --seeds at least one seed")
    genders = speaker_genders(target.scan)
    for k in ks:
        check_k(k, len(genders), target.name)
    pool = speaker_order(genders, seeds[0])[: ks[-1]]
    return CurvePlan(ks, seeds, pool, sorted(set(genders) - set(pool)), genders)


def learning_curve(
    run_dir: str | os.PathLike[str],
    name: str,
    root: str,
    ks: Sequence[int],
    out: str | os.PathLike[str],
    *,
    seeds: Sequence[int] = (0,),
    epochs: int = EPOCHS,
    lr: float | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Adapt with each K (and seed), score the held-back speakers, write the curve; returns curve.json's dict."""
    run, info, cfg = open_run(run_dir)
    target, cfg = open_target(run, info, cfg, name, root, progress=progress)
    plan = plan_curve(target, ks, seeds)
    where = CurveDir(Path(out))
    where.path.mkdir(parents=True, exist_ok=True)
    points = []
    for k in plan.ks:
        runs: list[tuple[int, Path, list[str]]] = []
        for seed in plan.seeds[:1] if k == 0 else plan.seeds:  # K = 0: one model, whatever the seed
            chosen = plan.speakers(k, seed)
            path = where.point(k, seed)
            if k == 0:
                unadapted(run, info, cfg, target, plan.held_back, path, progress=progress, cache_dir=cache_dir)
            else:
                adapt_on(run, info, cfg, target, FewShot(chosen, plan.held_back, seed, epochs, lr), path,
                         progress=progress, cache_dir=cache_dir, sources=False)
            runs.append((seed, path, chosen))
        points.append(score_point(k, runs, target.name, info.labels, plan.held_back))
    result = {
        "corpus": target.name, "run": str(run.path.resolve()), "method": FEW_SHOT, "metric": "uar",
        "seeds": plan.seeds, "pool": plan.pool, "held_back": plan.held_back, "points": points,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_curve(where, result)
    return result


def unadapted(
    run: RunDir, info: ModelRecord, cfg: ExperimentConfig, target: Target, held_back: list[str],
    out_dir: Path, *, progress: bool, cache_dir: str | None,
) -> Path:
    """K = 0: the run's model unchanged, copied into ``out_dir`` and scored on the held-back speakers only."""
    out = RunDir.of(out_dir)
    if not out.is_complete():
        out.splits_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out.config)
        shutil.copyfile(run.weights, out.weights)
        for corpus in info.train_corpora:
            shutil.copyfile(run.split(corpus), out.split(corpus))
        for path in (run.training_audio, run.training_texts):
            if path.is_file():
                shutil.copyfile(path, out.path / path.name)
        adapted = {"method": FEW_SHOT, "corpus": target.name, "root": target.root, "k": 0, "speakers": [],
                   "seed": None, "held_back": len(held_back), "from": str(run.path.resolve()),
                   "fit": "none: the run's model unchanged (the curve's K = 0)"}
        write_model_json(out, ModelRecord.parse({**info.to_json(), "adapted": adapted}))
        evaluate_run(out.path, {target.name: target.root}, progress=progress,
                     scans={target.name: target.of(held_back)}, cache_dir=cache_dir or cfg.data.cache_dir)
        atomic_write_json(out.done, {"epochs_run": 0, "adaptation": FEW_SHOT,
                                     "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    return out.path


def score_point(
    k: int, runs: list[tuple[int, Path, list[str]]], corpus: str, labels: list[str], held_back: list[str]
) -> dict[str, Any]:
    """One point: the mean UAR over its seeds on the held-back speakers and its interval (speakers and seeds)."""
    rows = []
    for i, (_, path, chosen) in enumerate(runs):
        mine = read_csv(RunDir.of(path).predictions(corpus))
        scored = {r["speaker"] for r in mine}
        if not scored <= set(held_back) - set(chosen):  # the curve's promise, checked on what was scored
            raise AdaptError(f"{path}: scored speakers outside the curve's held-back ones")
        rows += [{**r, "seed": i} for r in mine]
    conf, _, speakers = per_speaker_confusions(rows, labels)  # (S, K_spk, L, L)
    per_seed = batch_metrics(conf.sum(axis=1))["uar"]  # (S,)
    interval, reason = metric_interval(conf, "uar")
    return {
        "k": k, "uar": float(np.mean(per_seed)),
        "ci95": [interval.lo, interval.hi] if interval else None, "ci95_reason": reason,
        "ci95_method": interval.method if interval else None,
        "per_seed": [float(u) for u in per_seed], "seeds": [seed for seed, _, _ in runs],
        "speakers": len(speakers), "n": int(conf[0].sum()),
        "adapted_on": {str(seed): sorted(chosen) for seed, _, chosen in runs},
        "runs": [str(path) for _, path, _ in runs],
    }


def write_curve(where: CurveDir, result: dict[str, Any]) -> None:
    """curve.json, curve.csv (one row per K) and curve.png."""
    atomic_write_json(where.json, result)
    rows = [{
        "k": p["k"], "uar": f"{p['uar']:.6f}",
        "ci95_lo": f"{p['ci95'][0]:.6f}" if p["ci95"] else "", "ci95_hi": f"{p['ci95'][1]:.6f}" if p["ci95"] else "",
        "ci95_reason": p["ci95_reason"] or "", "seeds": len(p["seeds"]),
        "per_seed_uar": ";".join(f"{u:.6f}" for u in p["per_seed"]), "speakers": p["speakers"], "n": p["n"],
    } for p in result["points"]]
    atomic_write_csv(where.csv, CURVE_COLUMNS, rows)
    n = len(result["held_back"])
    plot_learning_curve(result["points"], where.plot,
                        title=f"few-shot adaptation to {result['corpus']}: {n} held-back speakers, "
                              f"{len(result['seeds'])} seed(s)")
