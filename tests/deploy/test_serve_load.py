"""The real service (`emoshift serve` on a free loopback port) under a short mixed load from 8 concurrent clients:
good clips (raw and multipart, some uploaded slowly in pieces) and every kind of bad upload of the serve
benchmark (not audio, empty, wrong type, silent, too long, too large by header and while streaming).

Every good request gets the answer the same model gives in this process, every bad one its 4xx with a reason;
an oversized upload is refused while it streams (the client stops sending when the answer comes: what it sent
bounds what the server read); the server's RSS stays bounded; /healthz still answers afterwards. No timing asserts.
"""

from __future__ import annotations

import io
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

httpx = pytest.importorskip("httpx")
psutil = pytest.importorskip("psutil")

LIMIT_MB = 1.0
MAX_SECONDS = 10.0
STREAMED = 64_000_000  # what an oversized streaming client offers: 64x the limit
UPLOAD_TIMEOUT = 8.0  # seconds the service gives an upload to arrive (the slow good clients take ~0.3 s)
ADMITTED = 2 + 4 * 2  # --workers 2 and the default queue of 4 per worker
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _wav(wave: np.ndarray, sr: int = 16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def service(exported: tuple[Path, dict]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    run, _ = exported
    port = _free_port()
    cmd = [sys.executable, "-m", "emoshift", "serve", str(run), "--backend", "onnx", "--port", str(port),
           "--workers", "2", "--max-upload-mb", str(LIMIT_MB), "--max-seconds", str(MAX_SECONDS),
           "--upload-timeout", str(UPLOAD_TIMEOUT)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"serve exited: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "serve did not start"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _reference(run: Path, clips: list[bytes]) -> list[dict[str, Any]]:
    """What the same model answers for each clip in this process, one request at a time."""
    from fastapi.testclient import TestClient

    from emoshift.deploy.backend import open_backend
    from emoshift.deploy.serve.app import ServeSettings, create_app

    client = TestClient(create_app(run, open_backend(run, "onnx"), ServeSettings(max_seconds=MAX_SECONDS)))
    out = []
    for clip in clips:
        r = client.post("/v1/predict", content=clip, headers={"content-type": "audio/wav"})
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def _slowly(body: bytes, pieces: int = 6) -> Iterator[bytes]:
    """A slow uploader: the body in pieces with pauses (no Content-Length: chunked)."""
    step = -(-len(body) // pieces)
    for i in range(0, len(body), step):
        time.sleep(0.05)
        yield body[i : i + step]


def stream_until_answered(url: str, total: int, chunk: int = 64 * 1024) -> tuple[int, dict[str, Any], int]:
    """POST ``total`` bytes as a chunked raw body, stopping as soon as the server answers.

    Returns (status, JSON answer, bytes sent); the bytes sent bound what the server read before refusing.
    """
    host, port = url.removeprefix("http://").split(":")
    sent, answer = 0, b""
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        piece = f"{chunk:x}\r\n".encode() + b"\0" * chunk + b"\r\n"
        while sent < total:
            readable, writable, _ = select.select([s], [s], [], 30)
            if readable:
                break  # the answer came: stop sending
            assert writable, "the server neither read nor answered for 30 s"
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += chunk
        else:
            s.sendall(b"0\r\n\r\n")
        try:
            while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
                data = s.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"no answer after {sent} bytes: {answer[:200]!r}"
    return int(head.split()[1]), json.loads(body[: _length(answer)]), sent


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def _mix(clips: list[bytes]) -> list[tuple[str, Any]]:
    """(kind, what) for 60 requests, in a fixed interleaved order: 36 good, 24 bad (4 of each bad kind ...)."""
    rng = np.random.default_rng(0)
    good: list[tuple[str, Any]] = []
    for i in range(36):
        kind = ("good", "good-multipart", "good-slow")[i % 3]
        good.append((kind, i % len(clips)))
    bad: list[tuple[str, Any]] = [(k, None) for k in ("not audio", "empty", "wrong type", "silent", "too long",
                                                      "too large", "too large streamed") for _ in range(3)]
    bad += [("too large", None), ("silent", None), ("not audio", None)]
    mix = good + bad
    order = rng.permutation(len(mix))
    return [mix[i] for i in order]


EXPECTED = {  # kind -> (status, words in the error)
    "not audio": (400, "unreadable"),
    "empty": (400, "empty"),
    "wrong type": (415, "unsupported content type"),
    "silent": (422, "silent"),
    "too long": (422, "too long"),
    "too large": (413, "1 MB"),
    "too large streamed": (413, "1 MB"),
}


def _send(url: str, kind: str, what: Any, clips: list[bytes]) -> tuple[int, dict[str, Any], int]:
    """One request of the mix: (status, JSON answer, bytes sent when streaming an oversized body, else 0)."""
    if kind == "too large streamed":
        return stream_until_answered(url, STREAMED)
    bodies = {
        "not audio": (b"this is a text file, not audio" * 20, "audio/wav"),
        "empty": (b"", "audio/wav"),
        "wrong type": (clips[0], "text/plain"),
        "silent": (_wav(np.zeros(48_000, np.float32)), "audio/wav"),
        "too long": (_wav((np.random.default_rng(1).standard_normal(8_000 * 12) * 0.1).astype(np.float32), 8_000),
                     "audio/wav"),
        "too large": (b"\0" * int(LIMIT_MB * 1e6 + 100_000), "audio/wav"),
    }
    with httpx.Client(timeout=120) as c:
        if kind == "good-multipart":
            r = c.post(url + "/v1/predict", files={"file": ("a.wav", clips[what], "audio/wav")})
        elif kind == "good-slow":
            r = c.post(url + "/v1/predict", content=_slowly(clips[what]), headers={"content-type": "audio/wav"})
        else:
            body, ctype = (clips[what], "audio/wav") if kind == "good" else bodies[kind]
            r = c.post(url + "/v1/predict", content=body, headers={"content-type": ctype})
    return r.status_code, r.json(), 0


def test_mixed_upload_load_every_answer_right_limits_held_still_healthy(
    service: tuple[str, subprocess.Popen[bytes]], exported: tuple[Path, dict], synth_tiny: Path
) -> None:
    url, proc = service
    run, _ = exported
    clips = [p.read_bytes() for p in sorted((synth_tiny / "ravdess").rglob("*.wav"))[:3]]
    expected = _reference(run, clips)
    for clip in clips:  # warm-up: the first inferences allocate
        httpx.post(url + "/v1/predict", content=clip, headers={"content-type": "audio/wav"}, timeout=120)
    rss_before = psutil.Process(proc.pid).memory_info().rss

    mix = _mix(clips)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda m: _send(url, m[0], m[1], clips), mix))
    rss_after = psutil.Process(proc.pid).memory_info().rss

    assert len(answers) == 60
    streamed = []
    for (kind, what), (status, body, sent) in zip(mix, answers, strict=True):
        if kind.startswith("good"):
            assert status == 200, (kind, body)
            want = expected[what]
            assert body["label"] == want["label"], kind
            assert body["probabilities"].keys() == want["probabilities"].keys()
            np.testing.assert_allclose(list(body["probabilities"].values()), list(want["probabilities"].values()),
                                       atol=1e-4, err_msg=kind)
            assert body["duration_s"] == want["duration_s"]
        else:
            code, words = EXPECTED[kind]
            assert status == code and set(body) == {"error"} and words in body["error"], (kind, status, body)
        if kind == "too large streamed":
            streamed.append(sent)
    # refused while streaming: the server answered long before the client could send what it offered
    assert len(streamed) == 3 and max(streamed) < STREAMED // 4, streamed
    # nothing accumulates: 60 requests (3 oversized streams of 64 MB offered) leave the RSS within 100 MB
    assert rss_after - rss_before < 100e6, (rss_before / 1e6, rss_after / 1e6)
    health = httpx.get(url + "/healthz", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["busy"] == 0
    assert proc.poll() is None
    print(f"streamed oversized uploads refused after {[round(s / 1e6, 2) for s in streamed]} MB sent of "
          f"{STREAMED / 1e6:.0f} MB; RSS {rss_before / 1e6:.0f} -> {rss_after / 1e6:.0f} MB")


def _stall(url: str) -> socket.socket:
    """Open an upload that promises 100 kB, send 1 kB of it, and stop (the socket stays open)."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=120)
    s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\n"
              + b"\0" * 1000)
    return s


def _answer(s: socket.socket) -> tuple[int, dict[str, Any]]:
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
        data = s.recv(65536)
        if not data:
            break
        answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body[: _length(answer)])


def test_stalled_uploads_hold_no_slot_past_the_upload_timeout(
    service: tuple[str, subprocess.Popen[bytes]], synth_tiny: Path
) -> None:
    """As many stalled uploads as the service admits fill it (a good request meanwhile gets 503), then each is
    answered 408 when its upload time runs out, the slots come back and the good request is served."""
    url, proc = service
    clip = sorted((synth_tiny / "ravdess").rglob("*.wav"))[0].read_bytes()
    stalled = [_stall(url) for _ in range(ADMITTED)]
    try:
        deadline = time.monotonic() + 60
        while httpx.get(url + "/healthz", timeout=30).json()["busy"] < ADMITTED:
            assert time.monotonic() < deadline, "the stalled uploads were never admitted"
            time.sleep(0.05)
        full = httpx.post(url + "/v1/predict", content=clip, headers={"content-type": "audio/wav"}, timeout=60)
        answers = [_answer(s) for s in stalled]
    finally:
        for s in stalled:
            s.close()
    assert full.status_code == 503 and "busy" in full.json()["error"]
    for status, body in answers:
        assert status == 408 and set(body) == {"error"} and f"{UPLOAD_TIMEOUT:g} s" in body["error"], (status, body)
    assert httpx.get(url + "/healthz", timeout=30).json()["busy"] == 0
    good = httpx.post(url + "/v1/predict", content=clip, headers={"content-type": "audio/wav"}, timeout=120)
    assert good.status_code == 200 and "label" in good.json()
    assert proc.poll() is None
