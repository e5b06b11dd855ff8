"""`emoshift predict`: backends agree, readable names, segments in csv/json, timelines, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from emoshift.cli import app


def _long_take(synth_tiny: Path, tmp_path: Path) -> Path:
    from emoshift.core.audio import load

    takes = sorted((synth_tiny / "ravdess").rglob("*.wav"))[:3]
    wave = np.concatenate([load(t, 16_000) for t in takes])  # about 4 s: several 1-s windows
    out = tmp_path / "long take.wav"
    sf.write(str(out), wave, 16_000)
    return out


def test_json_csv_and_plot(exported: tuple[Path, dict], synth_tiny: Path, tmp_path: Path) -> None:
    run, _ = exported
    long = _long_take(synth_tiny, tmp_path)
    res = CliRunner().invoke(app, ["predict", str(run), str(long), "--format", "json", "--hop", "0.5",
                                   "--plot", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)[0]
    assert out["name"] == "long take.wav" and len(out["segments"]) >= 6 and out["duration_s"] > 3
    assert out["segments"][1]["start_s"] == 0.5
    assert (tmp_path / "plots" / "long take.png").stat().st_size > 1000
    res = CliRunner().invoke(app, ["predict", str(run), str(long), "--format", "csv", "--hop", "0.5"])
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert rows[0]["segment"] == "file" and len(rows) == 1 + len(out["segments"])
    assert {"start_s", "end_s", "label"} <= set(rows[0]) and any(k.startswith("p_") for k in rows[0])


def test_backends_agree_and_table_shows_names(exported: tuple[Path, dict], synth_tiny: Path) -> None:
    run, _ = exported
    folder = synth_tiny / "ravdess" / "Actor_01"
    outs = {}
    for backend in ("onnx", "torch"):
        res = CliRunner().invoke(app, ["predict", str(run), str(folder), "--format", "json", "--backend", backend])
        assert res.exit_code == 0, res.output
        outs[backend] = json.loads(res.output)
    for a, b in zip(outs["onnx"], outs["torch"], strict=True):
        assert a["label"] == b["label"]
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) < 1e-4
    res = CliRunner().invoke(app, ["predict", str(run), str(folder)], terminal_width=200)
    first = sorted(folder.glob("*.wav"))[0].name
    assert first in res.output  # the whole file name, not a cut absolute path


def test_bad_options_and_files_are_one_line(exported: tuple[Path, dict], tmp_path: Path) -> None:
    run, _ = exported
    (tmp_path / "empty.wav").write_bytes(b"")
    res = CliRunner().invoke(app, ["predict", str(run), str(tmp_path / "empty.wav"), "--format", "json"])
    assert res.exit_code == 1 and "empty" in json.loads(res.output)[0]["error"]
    res = CliRunner().invoke(app, ["predict", str(run), str(tmp_path / "empty.wav"), "--window", "-1"])
    assert res.exit_code == 2 and "--window" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["predict", str(tmp_path), str(tmp_path / "empty.wav"), "--backend", "onnx"])
    assert res.exit_code == 2 and "not a finished run" in res.output
