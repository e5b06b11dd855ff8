"""A temperature-scaled run (tests/conftest.py ``cnn_run``) deployed: the graph divides the logits by the
temperature, torch, ONNX and the service give the same probabilities, and abstention (``--min-confidence``,
``min_confidence``) answers ``uncertain`` exactly where the top probability is below the threshold."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.core.rundir import RunDir


def _windows(synth_tiny: Path, seconds: float, n: int = 3) -> np.ndarray:
    from emoshift.core.audio import load

    size = int(seconds * 16_000)
    waves = [load(p, 16_000)[:size] for p in sorted((synth_tiny / "ravdess").rglob("*.wav"))[:n]]
    return np.stack([np.pad(w, (0, size - len(w))) for w in waves]).astype(np.float32)  # (B, S)


def test_graph_divides_logits_by_the_temperature_in_torch_and_onnx(exported: tuple[Path, dict],
                                                                   synth_tiny: Path) -> None:
    import torch

    from emoshift.deploy.graph import ServingModel, build_serving_model
    from emoshift.deploy.onnx_backend import OnnxBackend
    from emoshift.deploy.torch_backend import TorchBackend

    run, report = exported
    info = RunDir.of(run).info()
    assert info.temperature is not None and info.temperature != 1.0
    model, _ = build_serving_model([run])
    bare = ServingModel(list(model.members), info)  # the same network without the temperature
    waves = _windows(synth_tiny, 1.0)
    with torch.inference_mode():
        logits, probs = model(torch.from_numpy(waves))
        raw, _ = bare(torch.from_numpy(waves))
    assert torch.allclose(logits, raw / info.temperature, atol=1e-6)
    assert torch.allclose(probs, torch.softmax(raw / info.temperature, dim=-1), atol=1e-6)
    torch_p, onnx_p = TorchBackend([run]).values(waves), OnnxBackend(run / "model.onnx").values(waves)
    assert np.abs(torch_p - probs.numpy()).max() < 1e-6
    assert np.abs(onnx_p - torch_p).max() < 1e-4 and report["parity"]["ok"]


def test_service_gives_the_predictors_probabilities(exported: tuple[Path, dict], synth_tiny: Path) -> None:
    from emoshift.deploy.backend import open_backend
    from emoshift.deploy.predict import Predictor
    from emoshift.deploy.serve.app import create_app

    run, _ = exported
    path = sorted((synth_tiny / "ravdess").rglob("*.wav"))[0]
    client = TestClient(create_app(run, open_backend(run)))
    body = client.post("/v1/predict", content=path.read_bytes(), headers={"content-type": "audio/wav"}).json()
    for backend in ("onnx", "torch"):
        want = Predictor(run, backend=backend).predict_file(path).probabilities
        assert max(abs(body["probabilities"][k] - want[k]) for k in want) < 1e-4, backend
    top = max(body["probabilities"].values())
    sure = client.post(f"/v1/predict?min_confidence={top}", content=path.read_bytes(),
                       headers={"content-type": "audio/wav"}).json()
    unsure = client.post(f"/v1/predict?min_confidence={min(1.0, top + 1e-3)}", content=path.read_bytes(),
                         headers={"content-type": "audio/wav"}).json()
    assert sure["status"] == "ok" and sure["label"] == body["label"]
    assert unsure["status"] == "uncertain" and unsure["label"] is None
    assert unsure["probabilities"] == body["probabilities"]
    bad = client.post("/v1/predict?min_confidence=1.5", content=path.read_bytes(), headers={"content-type": "audio/wav"})
    assert bad.status_code == 400 and "min_confidence must lie between 0 and 1" in bad.json()["error"]


def test_predict_min_confidence_counts(exported: tuple[Path, dict], synth_tiny: Path) -> None:
    run, _ = exported
    folder = synth_tiny / "ravdess" / "Actor_01"
    plain = json.loads(CliRunner().invoke(app, ["predict", str(run), str(folder), "--format", "json"]).output)
    tops = sorted(max(p["probabilities"].values()) for p in plain)
    assert len(tops) >= 4
    k = len(tops) // 2
    threshold = (tops[k - 1] + tops[k]) / 2  # between two clips: k of them below it, by hand
    res = CliRunner().invoke(app, ["predict", str(run), str(folder), "--format", "json",
                                   "--min-confidence", f"{threshold!r}"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert sum(p["status"] == "uncertain" for p in got) == k
    for before, after in zip(plain, got, strict=True):
        below = max(before["probabilities"].values()) < threshold
        assert (after["status"], after["label"]) == (("uncertain", None) if below else ("ok", before["label"]))
    res = CliRunner().invoke(app, ["predict", str(run), str(folder), "--format", "csv",
                                   "--min-confidence", f"{threshold!r}"])
    files = [r for r in csv.DictReader(io.StringIO(res.output)) if r["segment"] == "file"]
    assert sum(r["label"] == "" for r in files) == k
    table = CliRunner().invoke(app, ["predict", str(run), str(folder), "--min-confidence", f"{threshold!r}"],
                               terminal_width=200)
    assert f"{k} of {len(tops)} file(s) uncertain" in table.output


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_bad_min_confidence_is_one_line(exported: tuple[Path, dict], synth_tiny: Path, value: str) -> None:
    run, _ = exported
    res = CliRunner().invoke(app, ["predict", str(run), str(synth_tiny / "ravdess"), "--min-confidence", value])
    assert res.exit_code == 2 and "--min-confidence must lie between 0 and 1" in res.output
