"""Repeated training in one ``emoshift train``: the whole run (every fold) once per seed, then pooled.

``training.seeds: [0, 1, 2]`` trains the run as it would train with ``training.seed: s`` (one run, or every fold
of a fold method) for each seed, into its own complete run directory, and pools them::

    RUN/config.yaml            the config as given (training.seeds listed)
    RUN/seeds.json             {"seeds": [0, 1, 2]}: the seed runs the top level pools (written first)
    RUN/seeds/<s>/             seed s: a normal, complete run directory (single, or with folds/<i>/); its config
                               has training.seed: s and no training.seeds
    RUN/model.json             every seed x fold model as "members" (mean probability): what predict, export,
                               serve, evaluate, audit and compare load (an ONNX export holds all of them)
    RUN/splits/<corpus>.csv    the first seed's splits (every seed splits by data.split.seed: the same speakers)
    RUN/predictions/<corpus>.csv, RUN/metrics/<corpus>.json
                               every seed's predictions with a ``seed`` column, and their metrics: the mean over
                               seeds, each seed's scores, seed_mean, seed_sd, n_seeds, a CI over speakers and
                               seeds (:mod:`emoshift.evaluation.seeded`)
    RUN/log.csv                every seed's log.csv rows, a ``seed`` column first
    RUN/done.json              written, then RUN/README.md: the model card

Why a list of seeds and not ``repeats: N``: the seeds are named, so a run is reproducible seed by seed and can be
extended: ``training.seeds: [0, 1, 2, 3]`` on a finished ``[0, 1, 2]`` run trains seed 3 only and pools again
(the study resumes such a run instead of retraining it, :func:`same_recipe`).

The corpora are scanned once for every seed and the feature, embedding and functionals caches are per corpus,
so every seed after the first reads them from the cache. Resume is per seed and per fold: a complete seed run
is skipped, an interrupted one resumes as a run (or its folds) does. Dimensional runs refuse ``training.seeds``
(the config says so in one line). Tracked, each seed run is its own tracked run (the top level is not tracked).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emoshift.config import ExperimentConfig, build_config, load_config, save_config
from emoshift.core.io import atomic_write_json
from emoshift.core.rundir import RunDir, write_model_json
from emoshift.evaluation.modelcard import write_model_card
from emoshift.evaluation.seeded import pool_seeds
from emoshift.training.folds import ensemble_info, pool_logs, runs_all_folds, train_folds
from emoshift.training.pipeline import TrainError, eval_roots, scan_corpora, train_run

log = logging.getLogger("emoshift.training.seeds")


def runs_all_seeds(cfg: ExperimentConfig) -> bool:
    """True when the config trains several seeds (``training.seeds``)."""
    return bool(cfg.training.seeds)


def seed_config(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``cfg`` as one seed trains it: ``training.seed = seed``, no ``training.seeds`` (validated again)."""
    data = cfg.to_dict()
    data["training"]["seed"] = seed
    data["training"]["seeds"] = None
    data["name"] = f"{cfg.name}-seed{seed}"
    return build_config(data)


def same_recipe(old: ExperimentConfig, new: ExperimentConfig) -> bool:
    """Whether two repeated-training configs differ in their seeds only (so a run of ``old`` is extended, not
    retrained: its seed runs that ``new`` lists are reused)."""
    return runs_all_seeds(old) and runs_all_seeds(new) and old.recipe_fingerprint() == new.recipe_fingerprint()


def start_seeds(cfg: ExperimentConfig, run: RunDir) -> tuple[str, bool]:
    """(the config's fingerprint, whether ``run`` already holds its finished run). A run of the same recipe
    with other seeds is extended; anything else in ``run`` is refused (TrainError, one line)."""
    fingerprint = cfg.fingerprint(exclude_roots=True)
    if run.config.is_file():
        old = load_config(run.config)
        if old.fingerprint(exclude_roots=True) != fingerprint and not same_recipe(old, cfg):
            raise TrainError(f"{run.path} holds a run of a different config; choose another -o or delete it")
    if run.is_complete() and run.done_info().get("fingerprint") == fingerprint:
        log.info("run %s is already complete", run.path)
        return fingerprint, True
    run.path.mkdir(parents=True, exist_ok=True)
    run.done.unlink(missing_ok=True)  # other seeds than the finished run's: it is complete again once pooled
    save_config(cfg, run.config)
    atomic_write_json(run.seeds_json, {"seeds": list(cfg.training.seed_list)})
    return fingerprint, False


def train_seeds(
    cfg: ExperimentConfig, run: RunDir, *, progress: bool = True, callbacks: Sequence[Any] = ()
) -> Path:
    """Train the run once per seed into ``RUN/seeds/<s>/`` (skipping complete ones), then pool them."""
    fingerprint, complete = start_seeds(cfg, run)
    if complete:
        return run.path
    started = time.time()
    roots = eval_roots(cfg)
    scans = scan_corpora(cfg, list(roots), progress=progress)  # once, for every seed (and fold)
    seeds = [RunDir.of(run.seed(s)) for s in cfg.training.seed_list]
    for i, seed_run in enumerate(seeds):
        cfg_s = seed_config(cfg, int(seed_run.path.name))
        log.info("seed %s (%d of %d): %s", seed_run.path.name, i + 1, len(seeds), seed_run.path)
        if runs_all_folds(cfg_s):
            train_folds(cfg_s, seed_run, progress=progress, callbacks=callbacks, scans=scans)
        else:
            train_run(cfg_s, seed_run.path, progress=progress, callbacks=callbacks, scans=scans)
    pool_seed_runs(cfg, run, seeds, list(cfg.data.corpora), fingerprint, started)
    return run.path


def pool_seed_runs(
    cfg: ExperimentConfig, run: RunDir, seeds: list[RunDir], corpora: Sequence[str], fingerprint: str,
    started: float, *, done: Mapping[str, Any] | None = None,
) -> None:
    """RUN's top level from its finished seed runs: the splits of ``corpora`` (the seeds share them), model.json
    (every member), the pooled predictions and metrics, log.csv, done.json (plus ``done``) and the model card."""
    for name in corpora:  # the test speakers (the seeds share them): what the leak checks read
        if seeds[0].split(name).is_file():
            run.splits_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(seeds[0].split(name), run.split(name))
    write_model_json(run, ensemble_info(run, members_of(seeds), fingerprint))
    pool_seeds(run, seeds, ci_seed=cfg.evaluation.seed, n_resamples=cfg.evaluation.n_bootstrap,
               figures=cfg.evaluation.figures)
    pool_logs(seeds, run, column="seed", figures=cfg.evaluation.figures)
    atomic_write_json(run.done, {**done_info(seeds, fingerprint, started), **(done or {})})
    write_model_card(run.path)


def adapt_seeds(
    source: RunDir, run: RunDir, adapt_one: Callable[[RunDir, Path], None], *, target: str, fingerprint: str,
    done: Mapping[str, Any] | None = None,
) -> Path:
    """A finished run adapted to ``target`` seed by seed (a study's ``adapt_of`` experiment,
    :mod:`emoshift.study.adapting`): ``adapt_one(seed_run, out)`` adapts one seed run of ``source`` into
    ``RUN/seeds/<s>/`` (a complete one it keeps, so an interrupted adaptation resumes seed by seed), then the
    adapted runs are pooled as :func:`train_seeds` pools trained ones. A source without seeds is adapted into
    ``RUN`` itself. ``done.json`` gets ``fingerprint`` and ``done``."""
    started = time.time()
    cfg = load_config(source.config)
    members = source.seed_dirs()
    if not members:  # one run: adapted in place of RUN
        adapt_one(source, run.path)
        atomic_write_json(run.done, {**run.done_info(), "fingerprint": fingerprint, **(done or {})})
        return run.path
    run.path.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run.config)
    atomic_write_json(run.seeds_json, {"seeds": [int(m.path.name) for m in members]})
    seeds = [RunDir.of(run.seed(int(m.path.name))) for m in members]
    for i, (member, out) in enumerate(zip(members, seeds, strict=True)):
        log.info("seed %s (%d of %d): adapting %s", member.path.name, i + 1, len(seeds), member.path)
        adapt_one(member, out.path)
    pool_seed_runs(cfg, run, seeds, [*cfg.data.corpora, target], fingerprint, started, done=done)
    return run.path


def members_of(seeds: list[RunDir]) -> list[RunDir]:
    """Every model of the seed runs: each seed's folds, or the seed run itself (seed order, then fold order)."""
    out: list[RunDir] = []
    for seed_run in seeds:
        info = seed_run.info()
        if info.members:
            out += [RunDir.of(seed_run.path / m) for m in info.members]
        else:
            out.append(seed_run)
    return out


def done_info(seeds: list[RunDir], fingerprint: str, started: float) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "seconds": round(time.time() - started, 2),
        "seeds": [int(s.path.name) for s in seeds],
        "seed_seconds": [s.done_info().get("seconds") for s in seeds],
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
