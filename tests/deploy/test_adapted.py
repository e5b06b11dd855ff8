"""A run adapted by `emoshift adapt` on a plain folder of unlabelled audio (corpus-norm: the target's statistics
in its weights, a CNN's or a frozen SSL head's; adabn: its batch-norm statistics): its ONNX graph matches its
torch path, and it predicts and serves (the few-shot path writes a normal fine-tuned run:
tests/training/test_fewshot.py predicts with it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoshift.cli import app


@pytest.fixture(scope="module")
def corpus_norm_run(cnn_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CNN run turned into a ``model.domain_norm: corpus`` one without training again: the same weights
    behind a fixed per-bin standardisation holding made-up training statistics (what adapt replaces)."""
    import torch

    from emoshift.models.cnn_nets import from_backbone_config
    from emoshift.models.weights import load_model, save_weights

    run = tmp_path_factory.mktemp("corpus-norm") / "run"
    shutil.copytree(cnn_run, run)
    model, info = load_model(run)
    n_mels = int(info.features["n_mels"])
    fixed = from_backbone_config(info.model, info.required("backbone_config"), num_labels=info.num_outputs,
                                 dropout=info.dropout or 0.0, bin_norm=n_mels)
    fixed.load_state_dict({**model.state_dict(), "norm.mean": torch.full((n_mels,), -50.0),
                           "norm.std": torch.full((n_mels,), 20.0)})
    save_weights(fixed, run / "model.safetensors")
    (run / "model.json").write_text(json.dumps({**info.to_json(), "domain_norm": "corpus"}))
    return run


def test_corpus_norm_adapted_run_exports_and_predicts(corpus_norm_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from emoshift.deploy.export import export_runs
    from emoshift.deploy.predict import Predictor
    from emoshift.features.domain_norm import CorpusStats

    wavs = sorted((synth_tiny / "crema-d" / "AudioWAV").glob("*.wav"))[:8]
    target = tmp_path / "calls"  # a plain folder of audio, nothing about labels anywhere
    (target / "day1").mkdir(parents=True)
    for w in wavs:
        shutil.copy(w, target / "day1" / w.name)
    res = CliRunner().invoke(app, ["adapt", str(corpus_norm_run), "--on", f"calls={target}", "-o",
                                   str(tmp_path / "run2"), "-q"])
    assert res.exit_code == 0, res.output
    run2 = tmp_path / "run2"
    record = json.loads((run2 / "model.json").read_text())
    assert record["adapted"] == {"method": "corpus-norm", "corpus": "calls", "root": str(target.resolve()),
                                 "clips": 8, "from": str(corpus_norm_run.resolve())}
    assert record["domain_norm"] == "corpus"
    stats = CorpusStats.load(run2 / "domain_stats.safetensors")
    weights = load_file(str(run2 / "model.safetensors"))
    assert stats.clips == {"calls": 8}
    np.testing.assert_allclose(weights["norm.mean"].numpy(), stats.moments["calls"].mean, rtol=1e-6)
    np.testing.assert_allclose(weights["norm.std"].numpy(), stats.moments["calls"].std, rtol=1e-6)
    assert not np.allclose(weights["norm.mean"].numpy(), -50.0)  # the made-up training statistics are gone
    assert "Adapted to calls (8 unlabelled clips" in (run2 / "README.md").read_text()
    report = export_runs([run2], max_files=2)  # the graph holds the target's statistics: parity with torch
    assert report["parity"]["ok"] and report["parity"]["files"] > 0
    adapted = Predictor(run2).predict_file(wavs[0])
    source = Predictor(corpus_norm_run).predict_file(wavs[0])
    assert adapted.error is None and adapted.label in record["labels"]
    assert adapted.probabilities != source.probabilities
    _serves(run2, wavs[0], adapted.probabilities)


def _serves(run: Path, wav: Path, expected: dict[str, float]) -> None:
    """``emoshift serve RUN`` answers with the adapted model's probabilities (the ONNX backend when exported)."""
    from fastapi.testclient import TestClient

    from emoshift.deploy.backend import open_backend
    from emoshift.deploy.serve.app import ServeSettings, create_app

    client = TestClient(create_app(run, open_backend(run, "auto"), ServeSettings()))
    answer = client.post("/v1/predict", files={"file": ("clip.wav", wav.read_bytes(), "audio/wav")})
    assert answer.status_code == 200, answer.text
    got = answer.json()["probabilities"]
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), atol=1e-4)


def test_adabn_adapted_run_exports_predicts_and_serves(cnn_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from emoshift.deploy.export import export_runs
    from emoshift.deploy.predict import Predictor

    wavs = sorted((synth_tiny / "crema-d" / "AudioWAV").glob("*.wav"))[:8]
    target = tmp_path / "calls"
    target.mkdir()
    for w in wavs:
        shutil.copy(w, target / w.name)
    res = CliRunner().invoke(app, ["adapt", str(cnn_run), "--on", f"calls={target}", "--method", "adabn", "-o",
                                   str(tmp_path / "run2"), "-q"])
    assert res.exit_code == 0, res.output
    run2 = tmp_path / "run2"
    assert json.loads((run2 / "model.json").read_text())["adapted"]["method"] == "adabn"
    before, after = load_file(str(cnn_run / "model.safetensors")), load_file(str(run2 / "model.safetensors"))
    moved = [k for k in after if not np.array_equal(before[k].numpy(), after[k].numpy())]
    assert moved and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in moved)
    report = export_runs([run2], max_files=2)  # the re-estimated statistics are in the graph: parity with torch
    assert report["parity"]["ok"] and report["parity"]["files"] > 0
    adapted = Predictor(run2).predict_file(wavs[0])
    assert adapted.error is None and adapted.probabilities != Predictor(cnn_run).predict_file(wavs[0]).probabilities
    _serves(run2, wavs[0], adapted.probabilities)


def test_frozen_ssl_corpus_norm_adapted_run_exports_and_predicts(
    ssl_norm_run: Path, synth_tiny: Path, tmp_path: Path
) -> None:
    """A frozen SSL head trained with model.domain_norm: corpus, adapted: the target's embedding statistics in
    its weights (embed_norm), so in its ONNX graph, which matches torch."""
    from safetensors.torch import load_file

    from emoshift.deploy.export import export_runs
    from emoshift.deploy.predict import Predictor
    from emoshift.features.domain_norm import CorpusStats

    wavs = sorted((synth_tiny / "crema-d" / "AudioWAV").glob("*.wav"))[:6]
    target = tmp_path / "calls"
    target.mkdir()
    for w in wavs:
        shutil.copy(w, target / w.name)
    res = CliRunner().invoke(app, ["adapt", str(ssl_norm_run), "--on", f"calls={target}", "-o",
                                   str(tmp_path / "run2"), "-q"])
    assert res.exit_code == 0, res.output
    run2 = tmp_path / "run2"
    record = json.loads((run2 / "model.json").read_text())
    assert record["adapted"]["clips"] == 6 and record["domain_norm"] == "corpus" and record["mode"] == "frozen"
    stats = CorpusStats.load(run2 / "domain_stats.safetensors")
    assert stats.over == "embedding" and stats.clips == {"calls": 6}
    weights, before = load_file(str(run2 / "model.safetensors")), load_file(str(ssl_norm_run / "model.safetensors"))
    np.testing.assert_allclose(weights["embed_norm.mean"].numpy(), stats.moments["calls"].mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(weights["embed_norm.std"].numpy(), stats.moments["calls"].std, rtol=1e-5)
    assert not np.allclose(weights["embed_norm.mean"].numpy(), before["embed_norm.mean"].numpy())
    assert all(np.array_equal(weights[k].numpy(), v.numpy()) for k, v in before.items() if not k.startswith("embed_norm."))
    report = export_runs([run2], max_files=2)  # the graph holds the target's statistics: parity with torch
    assert report["parity"]["ok"] and report["parity"]["files"] > 0
    adapted, source = Predictor(run2).predict_file(wavs[0]), Predictor(ssl_norm_run).predict_file(wavs[0])
    assert adapted.error is None and adapted.probabilities != source.probabilities
