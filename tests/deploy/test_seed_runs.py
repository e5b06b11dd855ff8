"""Deploying a repeated-training run (``training.seeds``): the top level is every seed's model averaged (mean
probability): predict gives the mean of the seeds, the ONNX export holds every seed as a member and matches torch,
and another corpus is pooled over the seeds as the training corpus is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def seed_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emoshift.config import load_config
    from emoshift.training.train import train

    tmp = tmp_path_factory.mktemp("deploy-seeds")
    sets = [*tiny_overrides(synth_tiny, tmp / "cache"), "training.epochs=1", "training.seeds=[0, 1]",
            "evaluation.corpora=[crema-d]"]
    return Path(train(load_config(overrides=sets), tmp / "run", progress=False))


def _clip(synth_tiny: Path) -> Path:
    return sorted((synth_tiny / "crema-d").rglob("*.wav"))[0]


def test_a_seed_run_predicts_the_mean_of_its_seeds(seed_run: Path, synth_tiny: Path) -> None:
    from emoshift.deploy.predict import Predictor

    assert json.loads((seed_run / "model.json").read_text())["members"] == ["seeds/0", "seeds/1"]
    clip = _clip(synth_tiny)
    got = Predictor(seed_run, backend="torch").predict_file(clip)
    each = [Predictor(seed_run / "seeds" / s, backend="torch").predict_file(clip) for s in ("0", "1")]
    assert each[0].probabilities != each[1].probabilities  # two seeds, two models
    for label, p in got.probabilities.items():
        assert p == pytest.approx(np.mean([e.probabilities[label] for e in each]), abs=1e-5)


def test_a_seed_run_exports_every_seed(seed_run: Path, synth_tiny: Path) -> None:
    from emoshift.deploy.export import export_runs
    from emoshift.deploy.predict import Predictor

    report = export_runs([seed_run], max_files=4)
    assert report["members"] == 2 and report["parity"]["max_abs_diff"] <= 1e-4
    clip = _clip(synth_tiny)
    onnx = Predictor(seed_run, backend="onnx").predict_file(clip)
    torch_ = Predictor(seed_run, backend="torch").predict_file(clip)
    for label in onnx.probabilities:
        assert onnx.probabilities[label] == pytest.approx(torch_.probabilities[label], abs=1e-4)


def test_another_corpus_is_pooled_over_the_seeds(seed_run: Path) -> None:
    m = json.loads((seed_run / "metrics" / "crema-d.json").read_text())
    per = [json.loads((seed_run / "seeds" / s / "metrics" / "crema-d.json").read_text()) for s in ("0", "1")]
    assert m["n_seeds"] == 2 and m["split"] == "all"
    assert m["uar"] == pytest.approx(np.mean([p["uar"] for p in per]))
    assert m["ece"] == pytest.approx(np.mean([p["ece"] for p in per]))  # calibration: the seeds' mean
    before = [p["calibration"]["uncalibrated"] for p in per]  # None: no temperature scaling in this run
    assert (m["calibration"]["uncalibrated"] is None) == (None in before)
    assert [e["fold_sd"] for e in m["seeds"]] == [None, None]  # no folds: no fold sd
    assert m["seed_sd"] == pytest.approx(np.std([p["uar"] for p in per], ddof=1))


def test_a_seed_run_is_perturbed_seed_by_seed_and_pooled(seed_run: Path, synth_tiny: Path) -> None:
    from emoshift.evaluation.robustness import evaluate_perturbations

    got = evaluate_perturbations(seed_run, {"crema-d": str(synth_tiny / "crema-d")}, ["telephone"], progress=False)
    m = got["crema-d"]["telephone"]
    per = [json.loads((seed_run / "seeds" / s / "metrics" / "crema-d@telephone.json").read_text()) for s in "01"]
    assert json.loads((seed_run / "metrics" / "crema-d@telephone.json").read_text()) == m
    assert m["n_seeds"] == 2 and [e["seed"] for e in m["seeds"]] == [0, 1]
    for key in ("uar", "uar_clean", "uar_drop"):  # the mean of the seeds, each paired with its own clean scores
        assert m[key] == pytest.approx(np.mean([p[key] for p in per]))
    assert m["uar_clean"] == pytest.approx(json.loads((seed_run / "metrics" / "crema-d.json").read_text())["uar"])
    assert m["n"] == per[0]["n"] and "_pairs" not in m and "_pairs" not in per[0]
