"""ONNX export: parity with torch on the run's own test files (synthetic speech at 48 kHz, RAVDESS layout) and on
16 kHz speech (the CREMA-D layout), the float32-derived tolerance, --tolerance and the failing windows, near-ties,
inputs/outputs, the quantised graph's own parity, SSL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.deploy.export import (
    FLOAT32_FACTOR,
    TOLERANCE_FLOOR,
    ExportError,
    Scores,
    export_runs,
    parity_check,
    report_path,
    score_files,
)
from emoshift.deploy.export import TestFile as ExportFile
from emoshift.deploy.meta import ModelMeta
from emoshift.deploy.segments import FileScore, Segment


def test_export_parity_and_report(exported: tuple[Path, dict]) -> None:
    run, report = exported
    assert (run / "model.onnx").is_file()
    on_disk = json.loads(report_path(run / "model.onnx").read_text())
    assert on_disk["parity"] == report["parity"]
    par = report["parity"]
    assert par["ok"] and par["max_abs_diff"] <= par["tolerance"] and par["files"] > 0 and par["windows"] >= par["files"]
    # the tolerance is float32's own error on these windows (torch float32 against a float64 copy), scaled
    assert 0 < par["float32_error"] < 1e-3
    assert par["tolerance"] == pytest.approx(max(TOLERANCE_FLOOR, FLOAT32_FACTOR * par["float32_error"]))
    assert par["label_agreement"] == 1.0 and par["failing"] == [] and par["failing_windows"] == 0
    assert report["inputs"] == ["waveform"] and report["outputs"] == ["logits", "probabilities"]


def _speech_files(root: Path, corpus: str, n: int) -> list[ExportFile]:
    files = sorted((root / corpus).rglob("*.wav"))
    return [ExportFile(str(f), "") for f in files[:: max(1, len(files) // n)][:n]]


@pytest.mark.parametrize(("corpus", "rate"), [("ravdess", 48_000), ("crema-d", 16_000)])
def test_parity_on_speech_at_48_and_16_khz(exported: tuple[Path, dict], synth_tiny: Path, corpus: str,
                                           rate: int) -> None:
    """The synthetic voices as RAVDESS ships them (48 kHz) and as CREMA-D does (16 kHz), resampled on the way in:
    the ONNX graph agrees with torch within the float32-derived tolerance, window by window."""
    import soundfile as sf

    from emoshift.deploy.onnx_backend import OnnxBackend
    from emoshift.deploy.torch_backend import TorchBackend

    run, _ = exported
    files = _speech_files(synth_tiny, corpus, 6)
    assert {sf.info(f.path).samplerate for f in files} == {rate}
    backends = [TorchBackend([run]), OnnxBackend(run / "model.onnx"), TorchBackend([run], precision="float64")]
    (ref, got, exact), problems = score_files(backends, files)
    par = parity_check(files, ref, got, exact, backends[0].meta)
    assert problems == [] and par["files"] == len(files) and par["windows"] >= len(files)
    assert par["ok"], par["failing"]
    assert 0 < par["float32_error"] <= par["max_abs_diff"] * 10 and par["max_abs_diff"] <= par["tolerance"]


def test_tolerance_option_refuses_naming_the_windows(exported: tuple[Path, dict], tmp_path: Path) -> None:
    run, _ = exported
    out = tmp_path / "strict.onnx"
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(out), "--tolerance", "1e-12", "--max-files", "4"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "--tolerance" in res.output and ".wav@" in res.output and "nothing exported" in res.output
    assert not out.exists()
    par = json.loads(report_path(out).read_text())["parity"]
    assert not par["ok"] and par["tolerance"] == 1e-12 and par["tolerance_from"] == "--tolerance"
    assert par["failing"] and all(w["max_abs_diff"] > 1e-12 and ".wav@" in w["window"] for w in par["failing"])
    assert [w["max_abs_diff"] for w in par["failing"]] == sorted((w["max_abs_diff"] for w in par["failing"]), reverse=True)
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(out), "--tolerance", "-1"])
    assert res.exit_code == 2 and "--tolerance must be a positive number" in res.output


def _fake(probs: list[list[float]]) -> tuple[list[ExportFile], Scores]:
    mat = np.array(probs, np.float64)
    segs = [Segment(i * 1.0, i * 1.0 + 1.0, None, {}) for i in range(len(probs))]
    return [ExportFile("clip.wav", "")], Scores([mat], [FileScore(None, {}, len(probs), segs, "window")])


def test_issue_24_numbers_pass() -> None:
    """The report in issue 24: ONNX 1.06e-4 from torch on a network whose float32 arithmetic alone moves it by
    3e-5 (the order measured for ResNet-18 on 48 kHz speech): the old fixed 1e-4 refused it; accepted now."""
    meta = ModelMeta(labels=("a", "b", "c"), input_kind="spectrogram", model="m", window_s=1.0, trim_silence=False,
                     trim_top_db=40.0)
    files, exact = _fake([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    _, torch32 = _fake([[0.60003, 0.29997, 0.1], [0.2, 0.7, 0.1]])
    _, onnx = _fake([[0.600136, 0.299864, 0.1], [0.2, 0.7, 0.1]])
    par = parity_check(files, torch32, onnx, exact, meta)
    assert par["max_abs_diff"] == pytest.approx(1.06e-4, rel=1e-3) and par["max_abs_diff"] > TOLERANCE_FLOOR
    assert par["ok"] and par["tolerance"] == pytest.approx(FLOAT32_FACTOR * 3e-5, rel=1e-3)
    par = parity_check(files, torch32, onnx, exact, meta, tolerance=1e-5)  # stricter by choice: refused, named
    assert not par["ok"] and [w["window"] for w in par["failing"]] == ["clip.wav@0.00-1.00s"]


def test_labels_must_agree_except_near_ties() -> None:
    """A label change where torch's two best classes were within float32 noise is a near-tie and passes; a label
    change elsewhere fails even under a generous --tolerance."""
    meta = ModelMeta(labels=("a", "b"), input_kind="spectrogram", model="m", window_s=1.0, trim_silence=False,
                     trim_top_db=40.0)
    files, torch32 = _fake([[0.50002, 0.49998], [0.9, 0.1]])
    _, exact = _fake([[0.500021, 0.499979], [0.9, 0.1]])
    _, tie = _fake([[0.49999, 0.50001], [0.9, 0.1]])
    par = parity_check(files, torch32, tie, exact, meta)
    assert par["ok"] and par["near_tie_flips"] == 1 and par["label_agreement"] == 0.5
    _, flip = _fake([[0.50002, 0.49998], [0.3, 0.7]])
    par = parity_check(files, torch32, flip, exact, meta, tolerance=0.9)
    assert not par["ok"] and par["failing"] == [
        {"window": "clip.wav@1.00-2.00s", "max_abs_diff": pytest.approx(0.6), "torch": "a", "onnx": "b",
         "margin": pytest.approx(0.8)}]


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
    # the int8 graph's own parity against torch (not the float graph's) is what the CLI prints first
    qp = q["parity"]
    assert qp["graph"] == "int8" and qp["max_abs_diff"] > report["parity"]["max_abs_diff"] and qp["windows"] > 0
    from emoshift.cli.export import summary_lines

    lines = summary_lines(report)
    assert f"max |p_int8 - p_torch| = {qp['max_abs_diff']:.2e}" in lines[1] and "the file written" in lines[1]
    assert "float graph before quantising" in lines[3]


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
    assert report["parity"]["ok"] and report["parity"]["max_abs_diff"] <= report["parity"]["tolerance"]
