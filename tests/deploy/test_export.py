"""ONNX export: parity with torch on the run's own test files, inputs/outputs, quantisation report, SSL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from emoshift.deploy.export import TOLERANCE, ExportError, export_runs, report_path


def test_export_parity_and_report(exported: tuple[Path, dict]) -> None:
    run, report = exported
    assert (run / "model.onnx").is_file()
    on_disk = json.loads(report_path(run / "model.onnx").read_text())
    assert on_disk["parity"] == report["parity"]
    par = report["parity"]
    assert par["ok"] and par["max_abs_diff"] <= TOLERANCE and par["files"] > 0 and par["windows"] >= par["files"]
    assert report["inputs"] == ["waveform"] and report["outputs"] == ["logits", "probabilities"]


def test_onnx_alone_takes_any_length_and_batch(exported: tuple[Path, dict]) -> None:
    import onnxruntime as ort

    run, _ = exported
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    labels = json.loads(sess.get_modelmeta().custom_metadata_map["labels"])
    assert labels == json.loads((run / "model.json").read_text())["labels"]
    for shape in [(1, 8_000), (3, 16_000), (2, 57_123)]:
        x = (np.random.default_rng(0).standard_normal(shape) * 0.1).astype(np.float32)
        logits, probs = sess.run(["logits", "probabilities"], {"waveform": x})
        assert logits.shape == probs.shape == (shape[0], len(labels))
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert np.allclose(probs, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), atol=1e-5)


def test_quantize_int8_reports_uar_change(exported: tuple[Path, dict], tmp_path: Path) -> None:
    run, _ = exported
    report = export_runs([run], tmp_path / "q.onnx", quantize="int8", max_files=8)
    q = report["quantize"]
    assert q["mode"] == "int8" and q["uar_int8"] is not None
    assert q["uar_change"] == pytest.approx(q["uar_int8"] - q["uar_float"])
    assert (tmp_path / "q.onnx").is_file() and report_path(tmp_path / "q.onnx").is_file()


def test_export_refuses_unfinished_run_and_bad_options(cnn_run: Path, tmp_path: Path) -> None:
    half = tmp_path / "half"
    shutil.copytree(cnn_run, half)
    (half / "done.json").unlink()
    with pytest.raises(ExportError, match="not a finished run"):
        export_runs([half])
    with pytest.raises(ExportError, match="--quantize"):
        export_runs([cnn_run], tmp_path / "x.onnx", quantize="int4")


@pytest.mark.slow
def test_ssl_export_parity(synth_tiny: Path, tmp_path: Path) -> None:
    from emoshift.config import load_config
    from emoshift.training.train import train
    from tests.conftest import tiny_overrides

    sets = [*tiny_overrides(synth_tiny, tmp_path / "cache"), "model.name=hubert", "model.preset=tiny",
            "training.epochs=1", "training.max_batch_seconds=30"]
    run = train(load_config(overrides=sets), tmp_path / "run", progress=False)
    report = export_runs([run], max_files=6)
    assert report["inputs"] == ["waveform", "mask"]
    assert report["parity"]["ok"] and report["parity"]["max_abs_diff"] <= TOLERANCE
