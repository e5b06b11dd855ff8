"""Repeated training (``training.seeds``): the whole run once per seed into RUN/seeds/<s>/, pooled; resume after a
kill between seeds and between folds; the config key; a one-seed run says ``"seeds": 1``. On the acoustic
family (seconds; its fit is deterministic, so its seeds agree) with k-fold, as tests/training/test_folds.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from emoshift.config import load_config
from emoshift.core.io import read_csv
from emoshift.core.overrides import ConfigError
from emoshift.core.rundir import RunDir
from emoshift.training import seeds as seeds_mod
from emoshift.training.pipeline import TrainError
from emoshift.training.seeds import seed_config
from emoshift.training.train import train
from tests.conftest import tiny_overrides

SEEDS = [3, 7]


def _sets(synth: Path, cache: Path, *extra: str) -> list[str]:
    return [
        *tiny_overrides(synth, cache),
        "model.name=egemaps",
        "model.head=logreg",
        "data.split.method=kfold",
        "data.split.k=2",
        f"training.seeds=[{', '.join(map(str, SEEDS))}]",
        *extra,
    ]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def seeded(synth_tiny: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(load_config(overrides=_sets(synth_tiny, cache)), tmp_path_factory.mktemp("seeds") / "run",
                 progress=False)


def _metrics(run: Path, corpus: str) -> dict:
    return json.loads((run / "metrics" / f"{corpus}.json").read_text())


def test_every_seed_is_a_complete_run_and_the_top_level_pools_them(seeded: Path) -> None:
    rd = RunDir.of(seeded)
    assert rd.is_multi_seed() and [int(s.path.name) for s in rd.seed_dirs()] == SEEDS
    for s in SEEDS:
        seed_run = RunDir.of(seeded / "seeds" / str(s))
        assert seed_run.is_complete() and seed_run.is_ensemble()  # each seed: the whole k-fold run
        cfg = load_config(seed_run.config)
        assert cfg.training.seeds is None and cfg.data.split.fold is None
        assert [f.name for f in (seed_run.path / "folds").iterdir()] and seed_run.fold(1).is_dir()
    info = json.loads((seeded / "model.json").read_text())
    assert info["members"] == [f"seeds/{s}/folds/{i}" for s in SEEDS for i in range(2)]
    assert json.loads((seeded / "done.json").read_text())["seeds"] == SEEDS


def test_pooled_metrics_are_the_mean_over_seeds_with_a_seed_column(seeded: Path) -> None:
    corpus = "ravdess"  # another corpus pools the same way: tests/deploy/test_seed_runs.py
    m = _metrics(seeded, corpus)
    per = [_metrics(seeded / "seeds" / str(s), corpus) for s in SEEDS]
    assert [e["seed"] for e in m["seeds"]] == SEEDS and m["n_seeds"] == 2
    for key in ("uar", "accuracy", "macro_f1"):
        assert m[key] == pytest.approx(np.mean([p[key] for p in per]))
        assert [e[key] for e in m["seeds"]] == [p[key] for p in per]
    uars = [p["uar"] for p in per]
    assert m["seed_mean"] == pytest.approx(np.mean(uars)) and m["seed_sd"] == pytest.approx(np.std(uars, ddof=1))
    assert [e["fold_sd"] for e in m["seeds"]] == [p["fold_sd"]["uar"] for p in per]  # each seed's folds' sd
    lo, hi = m["ci95"]["uar"]
    assert lo <= m["uar"] <= hi and m["ci95_method"]
    rows = read_csv(seeded / "predictions" / f"{corpus}.csv")
    assert [r["seed"] for r in rows] == [str(s) for s in SEEDS for _ in range(len(rows) // 2)]
    for s in SEEDS:  # each seed's own predictions, as its run wrote them
        own = read_csv(seeded / "seeds" / str(s) / "predictions" / f"{corpus}.csv")
        mine = [r for r in rows if r["seed"] == str(s)]
        assert [(r["id"], r["pred"]) for r in mine] == [(r["id"], r["pred"]) for r in own]
    assert m["confusion"] == np.sum([p["confusion"] for p in per], axis=0).tolist()


def test_one_seed_run_metrics_say_one_seed(seeded: Path) -> None:
    m = _metrics(seeded / "seeds" / str(SEEDS[0]), "ravdess")
    assert m["seeds"] == 1 and m["seed_sd"] is None
    assert "seed" in read_csv(seeded / "seeds" / str(SEEDS[0]) / "predictions" / "ravdess.csv")[0]
    card = (seeded / "seeds" / str(SEEDS[0]) / "README.md").read_text()
    assert "training variance not measured (1 seed)" in card
    top = (seeded / "README.md").read_text()
    assert "2 training seeds x k-fold speaker cross-validation" in top and "seed mean" in top


class Killed(BaseException):
    """Training stopped dead at a chosen run directory (nothing after it runs, as after a SIGKILL)."""


def _killed(monkeypatch: pytest.MonkeyPatch, where: Path) -> None:
    """Make training die when it reaches run directory ``where`` (a seed run, or a seed's fold run)."""
    import emoshift.training.folds as folds_mod

    real_folds, real_fold_run = seeds_mod.train_folds, folds_mod.train_run

    def guard(path: object) -> None:
        if Path(os.fspath(path)).resolve() == where.resolve():  # type: ignore[arg-type]
            raise Killed(str(path))

    def fold_run(cfg, path, **kw):  # type: ignore[no-untyped-def]
        guard(path)
        return real_fold_run(cfg, path, **kw)

    def seed_folds(cfg, run, **kw):  # type: ignore[no-untyped-def]
        guard(run.path)
        return real_folds(cfg, run, **kw)

    monkeypatch.setattr(folds_mod, "train_run", fold_run)
    monkeypatch.setattr(seeds_mod, "train_folds", seed_folds)


@pytest.mark.parametrize("where", ["seeds/7", "seeds/7/folds/1"], ids=["between-seeds", "between-folds"])
def test_killed_then_resumed_equals_the_uninterrupted_run(
    seeded: Path, synth_tiny: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    cfg = load_config(overrides=_sets(synth_tiny, cache))
    run = tmp_path / "run"
    shutil.copytree(seeded / "seeds" / "3", run / "seeds" / "3")  # seed 3 finished before the kill
    _killed(monkeypatch, run / where)
    with pytest.raises(Killed):
        train(cfg, run, progress=False)
    assert not (run / "done.json").exists() and not (run / "metrics").exists()
    stamps = {p: os.stat(p).st_mtime_ns for p in run.rglob("done.json")}
    monkeypatch.undo()
    train(cfg, run, progress=False)
    assert {p: os.stat(p).st_mtime_ns for p in stamps} == stamps  # what was complete is skipped
    after, before = _metrics(run, "ravdess"), _metrics(seeded, "ravdess")
    for key in ("uar", "accuracy", "seeds", "seed_mean", "seed_sd", "ci95", "confusion"):
        assert after[key] == before[key], key


def test_adding_a_seed_reuses_the_finished_ones(seeded: Path, synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(seeded, run)
    stamps = {s: os.stat(run / "seeds" / str(s) / "done.json").st_mtime_ns for s in SEEDS}
    cfg = load_config(overrides=_sets(synth_tiny, cache, "training.seeds=[3, 7, 11]"))
    train(cfg, run, progress=False)
    assert {s: os.stat(run / "seeds" / str(s) / "done.json").st_mtime_ns for s in SEEDS} == stamps
    assert [e["seed"] for e in _metrics(run, "ravdess")["seeds"]] == [3, 7, 11]
    other = load_config(overrides=_sets(synth_tiny, cache, "data.split.k=3"))
    with pytest.raises(TrainError, match="different config"):
        train(other, run, progress=False)


def test_seeds_config_key() -> None:
    cfg = load_config(overrides=["training.seeds=[0,1,2]"])
    assert cfg.training.seeds == [0, 1, 2] and cfg.training.seed_list == [0, 1, 2]
    one = load_config(overrides=["training.seeds=[5]"])  # one seed is one run with that seed
    assert one.training.seeds is None and one.training.seed == 5
    assert one.fingerprint() == load_config(overrides=["training.seed=5"]).fingerprint()
    assert seed_config(cfg, 2).training.seed == 2 and seed_config(cfg, 2).training.seeds is None
    # training.seed is not read by a multi-seed run; adding a seed keeps the recipe
    assert cfg.fingerprint() == load_config(overrides=["training.seeds=[0,1,2]", "training.seed=9"]).fingerprint()
    assert cfg.recipe_fingerprint() == load_config(overrides=["training.seeds=[0,1,2,3]"]).recipe_fingerprint()
    for bad, why in (("[]", "empty"), ("[1, 1]", "repeats"), ("[-1, 2]", "non-negative")):
        with pytest.raises(ConfigError, match=why):
            load_config(overrides=[f"training.seeds={bad}"])
    with pytest.raises(ConfigError, match="training.seeds cannot be used with task: dimensional"):
        load_config(overrides=["task=dimensional", "training.seeds=[0,1]"])
