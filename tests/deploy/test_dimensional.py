"""A dimensional run deployed: the Predictor, `emoshift predict`, the ONNX export and the service give the
ratings of the targets the run was trained on (here arousal and valence, not dominance), torch and onnxruntime
agree, the values are the model's raw outputs, and long audio gets a timeline per target."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.deploy.backend import open_backend
from emoshift.deploy.meta import ModelMeta
from emoshift.deploy.predict import Predictor
from emoshift.deploy.segments import Segmentation, score
from emoshift.deploy.serve.app import ServeSettings, create_app
from emoshift.deploy.timeline import plot_timeline

TRAINED = ["arousal", "valence"]


def _takes(table: Path, n: int = 3) -> list[Path]:
    return sorted((table.parent / "wav").glob("*.wav"))[:n]


def test_predictor_gives_the_trained_targets(dim_exported: tuple[Path, dict, Path]) -> None:
    run, _, table = dim_exported
    for backend in ("torch", "onnx"):
        predictor = Predictor(run, backend=backend)
        assert (predictor.task, predictor.targets, predictor.labels) == ("dimensional", TRAINED, [])
        p = predictor.predict_file(_takes(table)[0])
        assert p.error is None and p.label is None and set(p.values) == set(TRAINED)
        d = p.to_dict()
        assert {"arousal", "valence"} <= set(d) and "dominance" not in d and "label" not in d
        assert len(p.segments) >= 2 and set(d["segments"][0]) == {"start_s", "end_s", *TRAINED}
        weights = np.array([s.end_s - s.start_s for s in p.segments])
        for t in TRAINED:  # the file's value is the duration-weighted mean of its windows'
            seg = np.array([s.values[t] for s in p.segments])
            assert p.values[t] == pytest.approx(float((weights * seg).sum() / weights.sum()), abs=1e-9)
        wave, sr = sf.read(_takes(table)[0], dtype="float32")
        assert predictor.predict_waveform(wave, sr) == pytest.approx(p.values, abs=1e-6)
    bad = Predictor(run).predict_file(table)  # not audio: an error, not a traceback, still a dimensional row
    assert bad.error and set(bad.to_dict()) >= {"arousal", "valence", "error"} and bad.to_dict()["arousal"] is None


def test_values_are_the_models_raw_outputs(dim_exported: tuple[Path, dict, Path]) -> None:
    """One crop-long window through the serving graph equals the trained model on its own features."""
    from emoshift.evaluation.inference import predict_waveform
    from emoshift.models.weights import load_model

    run, _, table = dim_exported
    model, info = load_model(run, device="cpu")
    wave, _ = sf.read(_takes(table)[1], dtype="float32")
    window = wave[: int(info.features["crop_s"] * 16_000)]
    direct = predict_waveform(model, info, window, 16_000)  # {target: value}
    served = open_backend(run, "torch").values(window[None])[0]  # (T,)
    assert list(direct) == TRAINED
    assert served == pytest.approx([direct[t] for t in TRAINED], abs=2e-3)
    assert not np.allclose(served.sum(), 1.0, atol=1e-3) or served.min() < 0  # values, not a softmax


def test_onnx_export_outputs_values_and_matches_torch(dim_exported: tuple[Path, dict, Path]) -> None:
    import onnx

    run, report, table = dim_exported
    assert report["task"] == "dimensional" and report["outputs"] == ["values"] and report["targets"] == TRAINED
    assert report["parity"]["ok"] and report["parity"]["max_abs_diff"] < 1e-4 and report["parity"]["windows"] >= 8
    assert "ccc_torch" in report and "uar_torch" not in report
    assert report["ccc_torch"] == pytest.approx(report["ccc_onnx"], abs=1e-3)
    proto = onnx.load(str(run / "model.onnx"))
    assert [o.name for o in proto.graph.output] == ["values"]
    assert json.loads({p.key: p.value for p in proto.metadata_props}["targets"]) == TRAINED
    meta = open_backend(run, "onnx").meta
    assert (meta.task, meta.targets, meta.target_range, meta.output) == ("dimensional", tuple(TRAINED), (0.0, 1.0),
                                                                       "values")
    waves = np.stack([sf.read(p, dtype="float32")[0][:12_000] for p in _takes(table)])  # (3, S)
    torch_v, onnx_v = open_backend(run, "torch").values(waves), open_backend(run, "onnx").values(waves)
    assert torch_v.shape == onnx_v.shape == (3, 2)
    assert float(np.abs(torch_v - onnx_v).max()) < 1e-4


def test_predict_cli_csv_json_table_and_timeline(dim_exported: tuple[Path, dict, Path], tmp_path: Path) -> None:
    run, _, table = dim_exported
    takes = [str(p) for p in _takes(table, 2)]
    # the rated fixture's clips are pitched tones, not speech: the VAD rightly finds none, so its check is off
    nv = "--no-vad-check"
    runner = CliRunner()
    out = runner.invoke(app, ["predict", str(run), *takes, nv, "--format", "csv", "--plot", str(tmp_path)])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == ["path", "segment", "start_s", "end_s", "arousal", "valence", "error"]
    file_rows = [r for r in rows if r["segment"] == "file"]
    expected = Predictor(run).predict_file(takes[0]).values
    assert float(file_rows[0]["arousal"]) == pytest.approx(expected["arousal"], abs=1e-4)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(Path(t).stem + ".png" for t in takes)
    js = json.loads(runner.invoke(app, ["predict", str(run), takes[0], nv, "--format", "json"]).stdout)
    assert js[0]["arousal"] == pytest.approx(expected["arousal"], abs=1e-6) and "label" not in js[0]
    shown = runner.invoke(app, ["predict", str(run), takes[0], nv], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "arousal" in shown.output and "valence" in shown.output


def test_service_answers_the_ratings(dim_exported: tuple[Path, dict, Path]) -> None:
    run, _, table = dim_exported
    client = TestClient(create_app(run, open_backend(run), ServeSettings(workers=1, queue=1, speech_check=False)))  # tones: no VAD check
    take = _takes(table)[0]
    body = client.post("/v1/predict", content=take.read_bytes(), headers={"content-type": "audio/wav"}).json()
    assert set(body) == {"arousal", "valence", "duration_s", "segments"}
    expected = Predictor(run, backend="onnx").predict_file(take).values
    assert body["arousal"] == pytest.approx(expected["arousal"], abs=1e-6)
    assert set(body["segments"][0]) == {"start_s", "end_s", "arousal", "valence"}
    model = client.get("/v1/model").json()
    assert (model["task"], model["targets"], model["labels"]) == ("dimensional", TRAINED, [])


class _LevelBackend:
    """A stand-in dimensional model: arousal is the window's RMS, valence its peak."""

    name = "level"

    def __init__(self) -> None:
        self.meta = ModelMeta(labels=(), input_kind="spectrogram", model="level", window_s=1.0, trim_silence=False,
                              trim_top_db=40.0, task="dimensional", targets=("arousal", "valence"),
                              target_range=(0.0, 1.0))

    def values(self, waves: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return np.stack([np.sqrt((waves**2).mean(axis=1)), np.abs(waves).max(axis=1)], axis=1)


def test_long_audio_rated_in_windows_with_a_timeline(tmp_path: Path) -> None:
    from emoshift.deploy.audio_stream import array_blocks

    t = np.arange(4 * 16_000) / 16_000
    wave = (np.where(t < 2.0, 0.1, 0.5) * np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # quiet, then loud
    r = score(_LevelBackend(), array_blocks(wave, 16_000), Segmentation(window_s=1.0, hop_s=1.0))
    assert r.label is None and r.probabilities == {} and [s.start_s for s in r.segments] == [0.0, 1.0, 2.0, 3.0]
    assert [round(s.values["valence"], 2) for s in r.segments] == [0.1, 0.1, 0.5, 0.5]
    assert r.values["valence"] == pytest.approx(0.3, abs=1e-3)
    png = plot_timeline(r.segments, ["arousal", "valence"], tmp_path / "t.png", value_range=(0.0, 1.0))
    assert png.stat().st_size > 5_000


def test_an_acoustic_ridge_run_predicts_through_its_family(dim_exported: tuple[Path, dict, Path], tmp_path: Path) -> None:
    """eGeMAPS functionals with a Ridge head (no serving graph): the family's own path, same answers."""
    from emoshift.config import load_config
    from emoshift.evaluation.inference import predict_waveform
    from emoshift.models.weights import load_model
    from emoshift.training.train import train
    from tests.corpora.fakes_rated import rated_overrides

    table = dim_exported[2]
    sets = [s for s in rated_overrides(table, tmp_path / "cache") if not s.startswith(("model.", "features.n_mels"))]
    run = train(load_config(overrides=[*sets, "model.name=egemaps", "data.targets=[valence, arousal]"]),
                tmp_path / "run", progress=False)
    predictor = Predictor(run)
    assert predictor.backend.name == "torch" and predictor.targets == ["valence", "arousal"]
    take = _takes(table)[2]
    wave, _ = sf.read(take, dtype="float32")
    window = wave[:16_000]  # the model's 1-s window
    model, info = load_model(run, device="cpu")
    got = predictor.backend.values(window[None])[0]
    want = predict_waveform(model, info, window, 16_000)
    assert got == pytest.approx([want["valence"], want["arousal"]], abs=1e-9)
    p = predictor.predict_file(take)
    assert set(p.to_dict()) >= {"valence", "arousal"} and "dominance" not in p.to_dict() and p.segments


def test_export_cli_quantised_reports_ccc(dim_exported: tuple[Path, dict, Path], tmp_path: Path) -> None:
    run = dim_exported[0]
    out = tmp_path / "model.int8.onnx"
    result = CliRunner().invoke(app, ["export", str(run), "-o", str(out), "--quantize", "int8", "--max-files", "2"])
    assert result.exit_code == 0, result.output
    q = json.loads((tmp_path / "model.int8.onnx.json").read_text())["quantize"]
    assert {"ccc_float", "ccc_int8", "ccc_change", "max_abs_diff_vs_float"} <= set(q) and "label_agreement" not in q
    text = " ".join(result.output.split())
    assert f"max |v_int8 - v_torch| = {q['parity']['max_abs_diff']:.2e}" in text and out.is_file()
    assert "mean CCC: torch" in text and "int8" in text and "p_onnx" not in text


def test_export_prints_values_parity_and_ccc(dim_exported: tuple[Path, dict, Path]) -> None:
    """A dimensional export says |v_onnx - v_torch| (values, not probabilities) and prints both graphs' CCC."""
    from emoshift.cli.export import summary_lines

    _, report, _ = dim_exported
    text = "\n".join(summary_lines(report))
    assert f"max |v_onnx - v_torch| = {report['parity']['max_abs_diff']:.2e}" in text and "p_onnx" not in text
    ccc = [x for x in (report["ccc_torch"], report["ccc_onnx"])]
    assert "mean CCC: torch " + ("n/a" if ccc[0] is None else f"{ccc[0]:.4f}") in text


def test_dimensional_card_is_not_a_classifier(dim_exported: tuple[Path, dict, Path]) -> None:
    run = dim_exported[0]
    card = (run / "README.md").read_text()
    front = card.split("---")[1]
    assert "pipeline_tag" not in front and "audio-classification" not in front and "dimensional-emotion" in front
    assert "Label policy" not in card and "Targets: arousal, valence" in card and "not clipped" in card


def _drawn(monkeypatch: pytest.MonkeyPatch, segments: list, labels: list[str], tmp_path: Path, **kw: object) -> object:
    import matplotlib.pyplot as plt

    kept: list = []
    close = plt.close
    monkeypatch.setattr(plt, "close", kept.append)  # keep the figure to look at it
    plot_timeline(segments, labels, tmp_path / "t.png", **kw)
    close(kept[0])  # out of pyplot's registry (no figure left open for later tests); the object stays readable
    return kept[0].axes[0]


def test_timeline_shows_values_outside_the_range(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from emoshift.deploy.segments import Segment

    segs = [Segment(0.0, 1.0, None, {}, {"arousal": 0.5, "valence": -0.173}),
            Segment(1.0, 2.0, None, {}, {"arousal": 0.6, "valence": 0.2})]
    ax = _drawn(monkeypatch, segs, ["arousal", "valence"], tmp_path, value_range=(0.0, 1.0))
    bottom, top = ax.get_ylim()
    assert bottom < -0.173 and top == 1.0  # the axis widens to the data; the range is drawn as dashed bounds
    assert sorted(round(line.get_ydata()[0], 3) for line in ax.lines if line.get_linestyle() == "--") == [0.0, 1.0]


def test_one_segment_timeline_has_a_colour_per_label(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from matplotlib.colors import to_hex

    from emoshift.deploy.segments import Segment

    labels = ["angry", "happy", "sad"]
    seg = Segment(0.0, 1.0, "happy", {"angry": 0.2, "happy": 0.5, "sad": 0.3})
    ax = _drawn(monkeypatch, [seg], labels, tmp_path)
    colours = [to_hex(c.get_colors()[0]) for c in ax.collections]
    assert len(colours) == 3 and len(set(colours)) == 3
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == labels
    assert len({to_hex(h.get_color()) for h in legend.legend_handles}) == 3
