"""``evaluation.calibrate: temperature`` on the tiny CNN run (tests/conftest.py ``cnn_run`` is calibrated): fitted
on validation speakers only (instrumented), lowers their NLL, and evaluation reports calibration and abstention."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emoshift.config import load_config
from emoshift.core.io import read_csv
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir
from emoshift.core.task import softmax
from emoshift.evaluation.calibration import calibration_scores
from tests.training.test_tune import Touched


def _parts(run: Path) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for r in read_csv(run / "splits" / "ravdess.csv"):
        parts.setdefault(r["split"], set()).add(r["speaker"])
    return parts


def test_temperature_is_stored_and_lowers_validation_nll(cnn_run: Path) -> None:
    info = RunDir.of(cnn_run).info()
    fit = info.temperature_fit or {}
    assert info.temperature is not None and info.temperature > 0
    assert fit["val_nll_after"] <= fit["val_nll_before"]  # never worse: T = 1 is the fallback
    n_val = sum(1 for r in read_csv(cnn_run / "splits" / "ravdess.csv") if r["split"] == "val")
    assert fit["val_utterances"] == n_val


def test_fitted_on_validation_speakers_only(cnn_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The calibration step, given what the pipeline gives it, reads validation speakers and no test speaker,
    and fits the very temperature the run stored."""
    from emoshift.models.weights import load_model
    from emoshift.training.calibrate import calibrate
    from emoshift.training.pipeline import prepare_data

    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    cfg = load_config(run / "config.yaml")
    prep = prepare_data(cfg, RunDir.of(run))  # the saved split: the same validation items as in training
    model, info = load_model(run, device="cpu")
    bare = ModelRecord.parse({k: v for k, v in info.to_json().items() if k not in ("temperature", "temperature_fit")})
    touched = Touched(monkeypatch)
    fitted = calibrate(cfg, model, bare, prep.val)
    parts = _parts(run)
    assert touched.speakers and touched.speakers <= parts["val"]
    assert not touched.speakers & parts["test"] and not touched.speakers & parts["train"]
    assert fitted.temperature == pytest.approx(info.temperature, rel=1e-3)
    unchanged = calibrate(cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(
        update={"calibrate": "none"})}), model, bare, prep.val)
    assert unchanged.temperature is None


def test_metrics_report_calibration_before_and_after(cnn_run: Path) -> None:
    run = RunDir.of(cnn_run)
    m = json.loads(run.metrics("ravdess").read_text())
    t = m["calibration"]["temperature"]
    assert t == pytest.approx(run.info().temperature) and m["calibration"]["bins"] == 15
    rows = read_csv(run.predictions("ravdess"))
    labels = m["labels"]
    probs = np.array([[float(r[f"p_{lab}"]) for lab in labels] for r in rows])
    y = np.array([labels.index(r["true"]) for r in rows])
    for k, v in calibration_scores(probs, y).items():
        assert m[k] == pytest.approx(v, abs=1e-4)  # the CSV keeps 6 decimals
        assert m["ci95"] is None or len(m["ci95"][k]) == 2
    # the network's own probabilities: softmax(T * log p) undoes the temperature
    before = softmax(t * np.log(np.maximum(probs, 1e-12)))
    for k, v in calibration_scores(before, y).items():
        assert m["calibration"]["uncalibrated"][k] == pytest.approx(v, abs=1e-3)
    assert run.reliability_plot("ravdess").read_bytes()[:4] == b"\x89PNG"


def test_cross_corpus_abstention_statement(cnn_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    """The threshold comes from the in-domain test predictions and is applied, as stated, to the other corpus."""
    from emoshift.evaluation.calibration import answered_at, threshold_for_accuracy
    from emoshift.evaluation.evaluate import evaluate_run

    run_path = tmp_path / "run"
    shutil.copytree(cnn_run, run_path)
    run = RunDir.of(run_path)
    out = evaluate_run(run_path, {"crema-d": str(synth_tiny / "crema-d")}, progress=False)
    statement: dict[str, Any] = out["crema-d"]["abstention"]
    assert json.loads(run.metrics("crema-d").read_text())["abstention"] == statement

    def load(corpus: str) -> tuple[np.ndarray, np.ndarray]:
        rows, labels = read_csv(run.predictions(corpus)), run.info().labels
        probs = np.array([[float(r[f"p_{lab}"]) for lab in labels] for r in rows])
        return probs, np.array([labels.index(r["true"]) for r in rows])

    home, away = load("ravdess"), load("crema-d")
    target = load_config(run_path / "config.yaml").evaluation.target_accuracy
    threshold = threshold_for_accuracy(*home, target)
    assert statement["threshold"] == threshold and statement["threshold_from"] == ["ravdess"]
    if threshold is not None:
        hand = int((away[0].max(axis=1) >= threshold).sum())
        assert statement["answered"] == hand and statement["coverage"] == pytest.approx(hand / len(away[1]))
        assert statement == {**statement, **answered_at(*away, threshold)}
    assert run.risk_coverage_plot("crema-d").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(run.metrics("crema-d").read_text())["calibration"]["uncalibrated"] is not None
