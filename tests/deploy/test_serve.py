"""Every endpoint and every kind of bad upload, through FastAPI's TestClient."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from emoshift.deploy.backend import open_backend
from emoshift.deploy.serve.app import ServeSettings, create_app
from tests.deploy.conftest import tones


def wav_bytes(wave: np.ndarray, sr: int = 16_000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format=fmt, subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(exported: tuple[Path, dict], synth_tiny: Path) -> tuple[TestClient, bytes, Path]:
    run, _ = exported
    app = create_app(run, open_backend(run), ServeSettings(max_upload_mb=1.0, max_seconds=20.0, workers=1, queue=1))
    take = sorted((synth_tiny / "ravdess").rglob("*.wav"))[0].read_bytes()
    return TestClient(app), take, run


def test_predict_multipart_and_raw_body(served: tuple[TestClient, bytes, Path]) -> None:
    client, take, run = served
    a = client.post("/v1/predict", files={"file": ("../../etc/passwd", take, "audio/wav")})
    b = client.post("/v1/predict", content=take, headers={"content-type": "audio/wav"})
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()
    body = a.json()
    assert set(body) == {"status", "label", "probabilities", "duration_s", "segments"} and body["status"] == "ok"
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["segments"] and {"start_s", "end_s", "label", "probabilities"} <= set(body["segments"][0])
    assert not Path("../../etc/passwd").with_suffix(".wav").exists()
    none = client.post("/v1/predict?segments=none", content=take, headers={"content-type": "audio/wav"}).json()
    assert none["segments"] == [] and none["label"] == body["label"]
    vad = client.post("/v1/predict?segments=vad", content=take, headers={"content-type": "audio/x-wav"})
    assert vad.status_code == 200 and vad.json()["segments"]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "words"),
    [
        (b"this is not audio at all", "audio/wav", 400, "unreadable"),
        (b"", "audio/wav", 400, "empty"),
        (b"RIFF....WAVE", "application/octet-stream", 400, "unreadable"),
        ("WAV", "text/plain", 415, "unsupported content type"),
        ("SILENT", "audio/wav", 422, "silent"),
        ("LONG", "audio/wav", 422, "too long"),
        ("NOISE_VAD", "audio/wav", 422, "no speech"),
    ],
)
def test_bad_uploads_are_4xx_in_plain_words(served: tuple[TestClient, bytes, Path], body: object, ctype: str,
                                            status: int, words: str) -> None:
    client, take, _ = served
    url = "/v1/predict"
    if body == "WAV":
        body = take
    elif body == "SILENT":
        body = wav_bytes(np.zeros(16_000, np.float32))
    elif body == "LONG":
        body = wav_bytes(tones([("low", 30.0)]), sr=8_000)  # 30 s > 20 s limit, still under 1 MB
    elif body == "NOISE_VAD":
        body, url = wav_bytes((np.random.default_rng(0).standard_normal(16_000) * 0.01).astype(np.float32)), url + "?segments=vad"
    r = client.post(url, content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and words in r.json()["error"] and "Traceback" not in r.text


def test_too_large_is_refused_while_streaming(served: tuple[TestClient, bytes, Path]) -> None:
    client, _, _ = served
    sent = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        for _ in range(100):
            sent.append(1)
            yield b"\0" * 100_000
    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "audio/wav"})
    assert r.status_code == 413 and "1 MB" in r.json()["error"]
    big = client.post("/v1/predict", files={"file": ("a.wav", b"\0" * 1_200_000, "audio/wav")})
    assert big.status_code == 413
    by_header = client.post("/v1/predict", content=b"\0" * 2_000_000, headers={"content-type": "audio/wav"})
    assert by_header.status_code == 413


def test_multipart_part_typed_as_text_is_refused(served: tuple[TestClient, bytes, Path]) -> None:
    client, take, _ = served
    r = client.post("/v1/predict", files={"file": ("a.txt", take, "text/plain")})
    assert r.status_code == 415 and "text/plain" in r.json()["error"] and "audio" in r.json()["error"]
    for ctype in ("audio/x-wav", "application/octet-stream"):  # what browsers and curl send for audio
        assert client.post("/v1/predict", files={"file": ("a.wav", take, ctype)}).status_code == 200


def test_every_request_is_logged_in_one_line(served: tuple[TestClient, bytes, Path],
                                             caplog: pytest.LogCaptureFixture) -> None:
    import logging

    client, take, _ = served
    with caplog.at_level(logging.INFO, logger="emoshift.serve"):
        ok = client.post("/v1/predict", content=take, headers={"content-type": "audio/wav"}).json()
        client.post("/v1/predict", content=b"x", headers={"content-type": "text/plain"})
        client.get("/healthz")
    lines = [r.getMessage() for r in caplog.records if r.name == "emoshift.serve"]
    assert len(lines) == 3
    assert "POST /v1/predict 200" in lines[0] and f"-> {ok['label']}" in lines[0] and " ms " in lines[0]
    assert "POST /v1/predict 415" in lines[1] and "unsupported content type" in lines[1]
    assert "GET /healthz 200" in lines[2]


def test_multipart_without_file_field_and_bad_query(served: tuple[TestClient, bytes, Path]) -> None:
    client, take, _ = served
    r = client.post("/v1/predict", files={"audio": ("a.wav", take, "audio/wav")})
    assert r.status_code == 400 and "'file'" in r.json()["error"]
    r = client.post("/v1/predict?segments=sometimes", content=take, headers={"content-type": "audio/wav"})
    assert r.status_code == 400 and "segments" in r.json()["error"]


def test_busy_server_answers_503_with_retry_after(served: tuple[TestClient, bytes, Path]) -> None:
    client, take, _ = served
    gate = client.app.state.gate  # type: ignore[attr-defined]
    gate.inside = gate.limit  # every admission slot taken
    try:
        r = client.post("/v1/predict", content=take, headers={"content-type": "audio/wav"})
    finally:
        gate.inside = 0
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]


def test_model_health_card_page_docs(served: tuple[TestClient, bytes, Path]) -> None:
    client, _, run = served
    m = client.get("/v1/model").json()
    assert m["labels"] and m["family"]["model"] == "resnet18" and m["backend"] == "onnx"
    assert m["training_data"][0]["corpus"] == "ravdess" and m["training_data"][0]["utterances"]["train"] > 0
    first = m["metrics"][0]
    assert (first["uar"]["ci95"] is None) == (first["speakers"] < 5)  # an interval only from 5 speakers on
    assert first["ci95_reason"] is None or "too few for a speaker bootstrap" in first["ci95_reason"]
    assert "protocol" in m and "fairness" in m
    assert "## Training data" in m["card"]
    assert client.get("/v1/model/card").text == (run / "README.md").read_text()
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "<script" in page.text and "http" not in page.text.split("<body>")[1].replace(
        "http://www.w3.org/2000/svg", "")  # no CDN: nothing is fetched from elsewhere
    assert client.get("/openapi.json").json()["paths"]["/v1/predict"]
    assert client.get("/docs").status_code == 200


def test_api_key_checked_on_every_v1_request(exported: tuple[Path, dict]) -> None:
    run, _ = exported
    client = TestClient(create_app(run, open_backend(run), ServeSettings(api_key="s3cret")))
    assert client.get("/v1/model").status_code == 401
    assert client.get("/v1/model", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/v1/model", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/v1/predict", content=b"x", headers={"content-type": "audio/wav"}).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_serve_refuses_public_host_without_key(exported: tuple[Path, dict]) -> None:
    from typer.testing import CliRunner

    from emoshift.cli import app

    run, _ = exported
    res = CliRunner().invoke(app, ["serve", str(run), "--host", "0.0.0.0"], env={"EMOSHIFT_API_KEY": ""})
    assert res.exit_code == 2 and "--api-key" in res.output
