"""A CNN with ``model.speaker_norm``: trained on each speaker's own z-scores, evaluated the same way (a re-run
of evaluate gives the same predictions), its fixed standardisation set to the training speakers' pooled
statistics (what a clip of an unknown speaker gets: predict, export, the ONNX graph agree with torch)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def spk_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emoshift.config import load_config
    from emoshift.training.train import train

    tmp = tmp_path_factory.mktemp("spknorm")
    sets = [*tiny_overrides(synth_tiny, tmp / "cache"), "model.speaker_norm=true", "training.epochs=2",
            "evaluation.corpora=[crema-d]"]
    return train(load_config(overrides=sets), tmp / "run", progress=False)


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_model_json_and_the_fixed_standardisation_are_the_training_speakers(spk_run: Path) -> None:
    from emoshift.config.features import FeatureConfig
    from emoshift.features.cache import FeatureCache
    from emoshift.features.speaker_norm import pooled, speaker_moments
    from emoshift.models.weights import load_model

    info = json.loads((spk_run / "model.json").read_text())
    assert info["speaker_norm"] is True and "standardised per speaker" in info["architecture"]
    card = (spk_run / "README.md").read_text()
    assert "standardised per speaker" in card and "unknown speaker" in card
    model, _ = load_model(spk_run)
    splits = _rows(spk_run / "splits" / "ravdess.csv")
    train_speakers = {r["speaker"] for r in splits.values() if r["split"] == "train"}
    store = FeatureCache(Path(_config_cache(spk_run)) / "features").open(
        "ravdess", FeatureConfig.model_validate(info["features"])
    )
    moments = speaker_moments(store, {uid: r["speaker"] for uid, r in splits.items()})
    want = pooled([m for spk, m in moments.items() if spk in train_speakers])
    np.testing.assert_allclose(model.norm.mean.numpy(), want.mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(model.norm.std.numpy(), want.std, rtol=1e-5)


def _config_cache(run: Path) -> str:
    import yaml

    return str(yaml.safe_load((run / "config.yaml").read_text())["data"]["cache_dir"])


def test_evaluate_normalises_every_test_speaker_as_training_did(spk_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    from emoshift.evaluation.evaluate import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(spk_run, run)
    before = {c: _rows(spk_run / "predictions" / f"{c}.csv") for c in ("ravdess", "crema-d")}
    evaluate_run(run, {"ravdess": str(synth_tiny / "ravdess"), "crema-d": str(synth_tiny / "crema-d")},
                 progress=False)
    for corpus, rows in before.items():
        after = _rows(run / "predictions" / f"{corpus}.csv")
        assert after.keys() == rows.keys() and rows
        probs = [k for k in next(iter(rows.values())) if k.startswith("p_")]
        a = np.array([[float(rows[u][k]) for k in probs] for u in rows])
        b = np.array([[float(after[u][k]) for k in probs] for u in rows])
        np.testing.assert_allclose(a, b, atol=2e-6)


def test_export_parity_and_single_clip_prediction(spk_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    from emoshift.deploy.export import export_runs
    from emoshift.deploy.predict import Predictor

    run = tmp_path / "run"
    shutil.copytree(spk_run, run)
    report = export_runs([run], max_files=4)
    assert report["parity"]["ok"] and report["parity"]["files"] > 0
    clip = sorted((synth_tiny / "ravdess").rglob("*.wav"))[0]
    torch_p = Predictor(run, backend="torch").predict_file(clip)
    onnx_p = Predictor(run, backend="onnx").predict_file(clip)
    assert torch_p.error is None and onnx_p.error is None
    np.testing.assert_allclose(list(torch_p.probabilities.values()), list(onnx_p.probabilities.values()), atol=1e-4)


def test_ssl_refuses_speaker_norm(synth_tiny: Path, tmp_path: Path) -> None:
    from emoshift.config import ConfigError, load_config
    from emoshift.models import CONFIG_CHECKS

    sets = [*tiny_overrides(synth_tiny, tmp_path), "model.name=hubert", "model.preset=tiny", "model.speaker_norm=true"]
    with pytest.raises(ConfigError, match="speaker_norm"):
        load_config(overrides=sets, checks=CONFIG_CHECKS)


def test_a_test_speakers_scores_use_that_speakers_own_statistics(spk_run: Path) -> None:
    """The predictions CSV equals the model applied by hand to each test speaker's z-scored log-mels; with the
    training speakers' statistics instead (what one clip of an unknown speaker gets) the answers differ."""
    import torch

    from emoshift.config.features import FeatureConfig
    from emoshift.core.audio import crop_or_pad
    from emoshift.features.cache import FeatureCache
    from emoshift.features.speaker_norm import speaker_moments
    from emoshift.models.weights import load_model

    info = json.loads((spk_run / "model.json").read_text())
    model, _ = load_model(spk_run)
    fcfg = FeatureConfig.model_validate(info["features"])
    store = FeatureCache(Path(_config_cache(spk_run)) / "features").open("ravdess", fcfg)
    rows = _rows(spk_run / "predictions" / "ravdess.csv")
    moments = speaker_moments(store, {uid: r["speaker"] for uid, r in rows.items()})
    probs = [k for k in next(iter(rows.values())) if k.startswith("p_")]
    frames = fcfg.frames_for(fcfg.crop_s)

    def probs_of(net: torch.nn.Module, spec: np.ndarray) -> np.ndarray:
        crop = crop_or_pad(spec.astype(np.float32), frames, mode="center")
        with torch.no_grad():
            return torch.softmax(net(torch.from_numpy(crop)[None, None]), dim=-1)[0].numpy()

    own, fallback = [], []
    for uid, r in rows.items():
        m, x = moments[r["speaker"]], store.get(uid)
        own.append(probs_of(model.normalised(), (x - m.mean[:, None]) / m.std[:, None]))  # the speaker's z-scores
        fallback.append(probs_of(model, x))  # the raw log-mel through the training speakers' standardisation
    got = np.array([[float(r[k]) for k in probs] for r in rows.values()])
    np.testing.assert_allclose(np.array(own), got, atol=1e-5)
    assert np.abs(np.array(fallback) - got).max() > 1e-3
