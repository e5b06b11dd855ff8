"""Dimensional emotion end to end: a CNN regressor on a rated manifest (run directory, metrics JSON per the
contract equal to evaluate_regression on the predictions CSV, a corpus without ratings, the console table),
config validation, and speaker k-fold with the acoustic Ridge head on the synthetic IEMOCAP, whose CCC on
held-out speakers must be well above 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.config import ConfigError, load_config
from emoshift.core.io import read_csv
from emoshift.evaluation.regression import evaluate_regression
from emoshift.training.pipeline import TrainError
from emoshift.training.train import train
from tests.corpora.fakes import make_ravdess
from tests.corpora.fakes_rated import make_rated, rated_overrides

TARGETS = ["arousal", "valence", "dominance"]
CONTEXT_KEYS = {"leaky", "corpus", "split", "speakers", "model", "train_corpora", "skipped", "target_range"}


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("rated")
    make_ravdess(tmp / "ravdess", actors=(1,))
    return make_rated(tmp / "corpus", speakers=6, per_speaker=8, seconds=0.6, unrated=1), tmp / "ravdess"


@pytest.fixture(scope="module")
def cnn_run(rated: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    table, ravdess = rated
    tmp = tmp_path_factory.mktemp("dim-run")
    cfg = load_config(overrides=[
        *rated_overrides(table, tmp / "cache"), "training.epochs=2", "features.crop_s=0.5",
        "evaluation.corpora=[ravdess]", f"data.roots.ravdess={ravdess}",
    ])
    return train(cfg, tmp / "run", progress=False)


def _by_target(rows: list[dict[str, str]], prefix: str) -> dict[str, list[float]]:
    return {t: [float(r[f"{prefix}_{t}"]) for r in rows] for t in TARGETS}


def test_run_directory_says_dimensional(cnn_run: Path) -> None:
    info = json.loads((cnn_run / "model.json").read_text())
    assert (info["task"], info["targets"], info["target_range"], info["labels"]) == ("dimensional", TARGETS, [0.0, 1.0], [])
    log = read_csv(cnn_run / "log.csv")
    assert len(log) == 2 and all(r["val_ccc"] != "" and r["val_ccc_valence"] != "" for r in log)
    assert (cnn_run / "plots" / "rated_scatter.png").stat().st_size > 1000
    assert "| CCC (mean) | arousal CCC |" in (cnn_run / "README.md").read_text()
    assert json.loads((cnn_run / "done.json").read_text())["unrated"] == {"rated": {"no valence rating": 1}}


def test_metrics_json_is_evaluate_regression_of_the_predictions(cnn_run: Path) -> None:
    rows = read_csv(cnn_run / "predictions" / "rated.csv")
    assert list(rows[0])[:5] == ["id", "path", "corpus", "speaker", "gender"]
    assert list(rows[0])[5:] == [f"{k}_{t}" for t in TARGETS for k in ("true", "pred")]
    split = {r["id"]: r["split"] for r in read_csv(cnn_run / "splits" / "rated.csv")}
    assert {r["id"] for r in rows} == {i for i, part in split.items() if part == "test"}
    want = evaluate_regression(
        _by_target(rows, "true"), _by_target(rows, "pred"), [r["speaker"] for r in rows], n_resamples=100, seed=0
    )
    metrics = json.loads((cnn_run / "metrics" / "rated.json").read_text())
    assert {k: metrics[k] for k in want} == want
    assert set(metrics) >= CONTEXT_KEYS and metrics["split"] == "test" and not metrics["leaky"]
    true = np.array(list(_by_target(rows, "true").values()))
    assert true.min() >= 0.0 and true.max() <= 1.0  # 1-5 ratings rescaled to the target range


def test_a_corpus_without_ratings_is_predicted_but_not_scored(cnn_run: Path) -> None:
    rows = read_csv(cnn_run / "predictions" / "ravdess.csv")
    assert len(rows) == 15 and all(r["true_arousal"] == "" and r["pred_arousal"] != "" for r in rows)
    m = json.loads((cnn_run / "metrics" / "ravdess.json").read_text())
    assert (m["ratings"], m["ccc"], m["split"], m["predicted"]) == (False, None, "all", 15)
    assert "no arousal/valence/dominance ratings" in m["ci95_reason"]


def test_cli_prints_ccc_per_target(cnn_run: Path, rated: tuple[Path, Path]) -> None:
    result = CliRunner().invoke(
        app, ["evaluate", str(cnn_run), "--on", f"rated={rated[0]}", "--quiet"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    speakers = json.loads((cnn_run / "metrics" / "rated.json").read_text())["speakers"]
    assert "arousal CCC" in result.output and f"n/a ({speakers} speakers)" in result.output


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("training.sampling=class", "training.sampling"),
        ("training.class_weighted_loss=true", "training.class_weighted_loss"),
        ("training.label_smoothing=0.1", "training.label_smoothing"),
        ("data.targets=[arousal, arousal]", "data.targets"),
        ("data.target_range=[1, 0]", "data.target_range"),
    ],
)
def test_config_refuses_what_a_dimensional_run_cannot_use(setting: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=["task=dimensional", setting])
    load_config(overrides=["task=dimensional", "training.augment.mixup_alpha=0.2"])  # mixup of ratings is fine


def test_corpora_without_a_scale_or_ratings_cannot_train(rated: tuple[Path, Path], tmp_path: Path) -> None:
    table, ravdess = rated
    sets = [s for s in rated_overrides(table, tmp_path / "cache") if not s.startswith("data.manifest.scale")]
    with pytest.raises(TrainError, match=r"data\.manifest\.scale=\[low,high\]"):
        train(load_config(overrides=sets), tmp_path / "a", progress=False)
    ravdess_sets = ["task=dimensional", "data.corpora=[ravdess]", f"data.roots.ravdess={ravdess}",
                    f"data.cache_dir={tmp_path / 'cache'}"]
    with pytest.raises(TrainError, match="'ravdess' has no arousal/valence/dominance ratings"):
        train(load_config(overrides=ravdess_sets), tmp_path / "b", progress=False)


# ------------------------------------------------------------------------------------------------ k-fold


@pytest.fixture(scope="module")
def ridge_folds(synth_more: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dim-folds")
    cfg = load_config(overrides=[
        "task=dimensional", "data.corpora=[iemocap]", f"data.roots.iemocap={synth_more / 'iemocap'}",
        "data.split.method=kfold", "data.split.k=5", "model.name=egemaps", "model.speaker_norm=true",
        f"data.cache_dir={tmp / 'cache'}", "evaluation.n_bootstrap=200", "trainer.progress=false",
        "evaluation.corpora=[synth]", f"data.roots.synth={synth_more / 'manifest' / 'manifest.csv'}",
        "data.manifest.scale=[1, 5]",
    ])
    return train(cfg, tmp / "run", progress=False)


def test_kfold_pools_every_speaker_once_and_learns(ridge_folds: Path) -> None:
    rows = read_csv(ridge_folds / "predictions" / "iemocap.csv")
    assert len({r["id"] for r in rows}) == len(rows)
    folds_of = {}
    for r in rows:
        folds_of.setdefault(r["speaker"], set()).add(r["fold"])
    assert len(folds_of) == 10 and all(len(f) == 1 for f in folds_of.values())  # each speaker in one fold
    m = json.loads((ridge_folds / "metrics" / "iemocap.json").read_text())
    assert m["scored_by"] == "pooled out-of-fold predictions" and m["speakers"] == 10
    assert [f["fold"] for f in m["folds"]] == list(range(5)) and set(m["fold_mean"]) == {
        "ccc", "arousal_ccc", "valence_ccc", "dominance_ccc"}
    # the synthetic ratings follow the prosody each take was rendered with: learnable from eGeMAPS
    assert m["ccc"] > 0.3 and m["ci95"]["ccc"][0] > 0.1, m["per_target"]
    assert m["per_target"]["arousal"]["ccc"] > 0.4


def test_fold_ensemble_predicts_the_mean_output(ridge_folds: Path, synth_more: Path) -> None:
    from emoshift.corpora import scan_source
    from emoshift.evaluation.inference import raw_outputs
    from emoshift.models.weights import load_model

    info = json.loads((ridge_folds / "model.json").read_text())
    assert info["ensemble"] == "mean output" and info["task"] == "dimensional"
    m = json.loads((ridge_folds / "metrics" / "synth.json").read_text())
    assert m["scored_by"] == "fold ensemble (mean output)" and m["ratings"] and m["split"] == "all"
    rows = read_csv(ridge_folds / "predictions" / "synth.csv")
    ens, _ = load_model(ridge_folds)
    sc = scan_source("synth", str(synth_more / "manifest" / "manifest.csv"))
    by_id = {u.id: u for u in sc.utterances}
    utts = [by_id[r["id"]] for r in rows]
    cache = str(ridge_folds.parent / "cache")
    each = [raw_outputs(model, i, utts, cache_dir=cache)[1] for model, i in ens.members]
    np.testing.assert_allclose(np.array([[float(r[f"pred_{t}"]) for t in TARGETS] for r in rows]),
                               np.mean(each, axis=0), atol=1e-6)
