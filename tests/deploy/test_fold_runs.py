"""Deploying what k-fold training and the acoustic family produce: a fold ensemble predicts, exports (every
fold a member of the graph) and serves; a family the serving graph cannot hold predicts through its own path
and refuses export in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from tests.conftest import tiny_overrides

KFOLD = ["data.split.method=kfold", "data.split.k=2"]


@pytest.fixture(scope="module")
def fold_runs(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from emoshift.config import load_config
    from emoshift.training.train import train

    tmp = tmp_path_factory.mktemp("deploy-folds")
    base = [*tiny_overrides(synth_tiny, tmp / "cache"), *KFOLD]
    cnn = train(load_config(overrides=[*base, "training.epochs=1", "evaluation.figures=true"]), tmp / "cnn",
                progress=False)  # figures: the pooled curves (tested below); the folds draw none
    eg = train(load_config(overrides=[*base, "model.name=egemaps"]), tmp / "egemaps", progress=False)
    return {"cnn": Path(cnn), "egemaps": Path(eg)}


def _clip(synth_tiny: Path) -> Path:
    return sorted((synth_tiny / "crema-d").rglob("*.wav"))[0]


def test_fold_ensemble_predicts_the_mean_of_its_folds(fold_runs: dict[str, Path], synth_tiny: Path) -> None:
    from emoshift.deploy.predict import Predictor

    run = fold_runs["cnn"]
    members = json.loads((run / "model.json").read_text())["members"]
    assert len(members) == 2
    clip = _clip(synth_tiny)
    ensemble = Predictor(run, backend="torch").predict_file(clip)
    folds = [Predictor(run / m, backend="torch").predict_file(clip) for m in members]
    for label, p in ensemble.probabilities.items():
        assert p == pytest.approx(np.mean([f.probabilities[label] for f in folds]), abs=1e-5)


def test_fold_ensemble_exports_every_fold(fold_runs: dict[str, Path], synth_tiny: Path) -> None:
    from emoshift.deploy.export import export_runs
    from emoshift.deploy.predict import Predictor

    run = fold_runs["cnn"]
    report = export_runs([run], max_files=6)
    assert report["members"] == 2 and report["parity"]["max_abs_diff"] <= 1e-4
    clip = _clip(synth_tiny)
    onnx = Predictor(run, backend="onnx").predict_file(clip)  # the exported file belongs to this run
    torch_ = Predictor(run, backend="torch").predict_file(clip)
    for label in onnx.probabilities:
        assert onnx.probabilities[label] == pytest.approx(torch_.probabilities[label], abs=1e-4)


def test_fold_ensemble_top_level_card_log_and_curves(fold_runs: dict[str, Path]) -> None:
    """The pooled run's top level (what predict, export and serve use) has its card, log.csv and curves, and
    says what each fold model trained on; each fold's card names it by its place."""
    import csv

    from fastapi.testclient import TestClient

    from emoshift.deploy.backend import open_backend
    from emoshift.deploy.serve.app import ServeSettings, create_app

    run = fold_runs["cnn"]
    card = (run / "README.md").read_text()
    assert f"# {run.name}: speech emotion recognition" in card and f"emoshift predict {run.name} speech.wav" in card
    assert "An ensemble of 2 fold models (k-fold speaker cross-validation; mean probability)" in card
    assert "| corpus | fold model | train | val | test |" in card
    for i in range(2):
        split = list(csv.DictReader((run / "folds" / str(i) / "splits" / "ravdess.csv").read_text().splitlines()))
        n = {part: sum(1 for r in split if r["split"] == part) for part in ("train", "val", "test")}
        assert f"| ravdess | folds/{i} | {n['train']} | {n['val']} | {n['test']} |" in card
        fold_card = (run / "folds" / str(i) / "README.md").read_text()
        assert f"# {run.name}/folds/{i}: speech emotion recognition" in fold_card
        assert f"emoshift predict {run.name}/folds/{i} speech.wav" in fold_card
    log = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert {r["fold"] for r in log} == {"0", "1"} and (run / "plots" / "curves.png").is_file()
    m = TestClient(create_app(run, open_backend(run, "torch"), ServeSettings())).get("/v1/model").json()
    assert [d["member"] for d in m["training_data"]] == ["folds/0", "folds/1"]
    assert all(d["utterances"]["train"] > 0 and d["speakers"]["train"] > 0 for d in m["training_data"])
    assert m["ensemble"]["members"] == 2 and m["ensemble"]["method"] == "kfold"
    assert m["ensemble"]["tested_out_of_fold"]["ravdess"]["speakers"] == 8  # every actor tested once
    assert "each fold model trained on its fold's train and val speakers" in m["protocol"]["split"]


def test_acoustic_family_predicts_and_refuses_export(fold_runs: dict[str, Path], synth_tiny: Path) -> None:
    run = fold_runs["egemaps"]
    res = CliRunner().invoke(app, ["predict", str(run), str(_clip(synth_tiny)), "--format", "json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)[0]
    assert row["error"] is None and row["label"] in row["probabilities"]
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)

    res = CliRunner().invoke(app, ["export", str(run)])
    assert res.exit_code == 2
    assert "egemaps cannot be exported to ONNX" in res.output and "Traceback" not in res.output
    assert not (run / "model.onnx").exists()


def test_acoustic_family_serves(fold_runs: dict[str, Path], synth_tiny: Path) -> None:
    from fastapi.testclient import TestClient

    from emoshift.deploy.backend import open_backend
    from emoshift.deploy.serve.app import ServeSettings, create_app

    run = fold_runs["egemaps"]
    client = TestClient(create_app(run, open_backend(run, "auto"), ServeSettings()))
    answer = client.post("/v1/predict", files={"file": ("clip.wav", _clip(synth_tiny).read_bytes(), "audio/wav")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["label"] in body["probabilities"]
