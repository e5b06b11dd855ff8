"""`emoshift predict` and the service run the VAD by default: audio in which it finds no speech (the issue's 2 s
of white noise, which once came out as ``disgust 0.70``) answers "no speech" with no label, in every output
format; ``--no-vad-check`` labels it anyway. Speech-like audio is labelled as before."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from tests.robustness.badfiles import _wav, speechlike

runner = CliRunner()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("no-speech")
    noise, voice = tmp / "noise.wav", tmp / "voice.wav"
    _wav(noise, (np.random.default_rng(0).standard_normal(32_000) * 0.3).astype(np.float32))  # 2 s
    _wav(voice, speechlike(seconds=2.0))
    return noise, voice


def _predict(run: Path, *args: str) -> str:
    r = runner.invoke(app, ["predict", str(run), *args, "--backend", "torch"])
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return r.stdout


def test_json_says_no_speech_and_gives_no_label(cnn_run: Path, clips: tuple[Path, Path]) -> None:
    noise, voice = clips
    rows = {Path(r["path"]).name: r for r in json.loads(_predict(cnn_run, str(noise), str(voice), "-f", "json"))}
    assert rows["noise.wav"]["status"] == "no speech"
    assert rows["noise.wav"]["label"] is None and rows["noise.wav"]["probabilities"] == {}
    assert rows["voice.wav"]["status"] == "ok" and rows["voice.wav"]["label"] is not None


def test_csv_and_table_say_no_speech(cnn_run: Path, clips: tuple[Path, Path]) -> None:
    noise, voice = clips
    rows = list(csv.DictReader(io.StringIO(_predict(cnn_run, str(noise), "-f", "csv"))))
    assert [(r["label"], r["error"].split(":")[0]) for r in rows] == [("", "no speech")]
    table = " ".join(_predict(cnn_run, str(noise), str(voice)).split())
    assert "no speech" in table and "1 held no speech" in table and "skipped" not in table


def test_a_voice_recorded_at_8_khz_is_speech(cnn_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    import soundfile as sf
    import soxr

    source = sorted((synth_tiny / "ravdess").rglob("*.wav"))[0]
    wave, sr = sf.read(source, dtype="float32")
    phone = tmp_path / "phone.wav"
    sf.write(phone, soxr.resample(wave, sr, 8_000), 8_000, subtype="PCM_16")
    [row] = json.loads(_predict(cnn_run, str(phone), "-f", "json"))
    assert row["status"] == "ok" and row["label"] is not None, row


def test_no_vad_check_labels_it_anyway(cnn_run: Path, clips: tuple[Path, Path]) -> None:
    noise, _ = clips
    [row] = json.loads(_predict(cnn_run, str(noise), "-f", "json", "--no-vad-check"))
    assert row["status"] == "ok" and row["label"] is not None and row["error"] is None


def test_the_service_answers_no_speech_unless_told_not_to(cnn_run: Path, clips: tuple[Path, Path]) -> None:
    from fastapi.testclient import TestClient

    from emoshift.deploy.backend import open_backend
    from emoshift.deploy.serve.app import ServeSettings, create_app

    noise, _ = clips
    for check, status in ((True, 422), (False, 200)):
        app_ = create_app(cnn_run, open_backend(cnn_run, "torch"), ServeSettings(workers=1, speech_check=check))
        with TestClient(app_) as c:
            r = c.post("/v1/predict", content=noise.read_bytes(), headers={"content-type": "audio/wav"})
        assert r.status_code == status, r.json()
        assert r.json().get("error", "").startswith("no speech") if check else r.json()["label"]
