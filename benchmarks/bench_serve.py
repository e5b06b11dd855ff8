"""`emoshift serve` under load, on 127.0.0.1 only: ONNX and torch backends side by side.

    python benchmarks/bench_serve.py                 # trains a throwaway resnet18 at the demo's width (0.25)
    python benchmarks/bench_serve.py --run RUN       # an existing run (exported here if it has no model.onnx)

For each backend a real `emoshift serve RUN --backend B` is started on a free loopback port; ``--requests``
(default 1,000) requests are sent from ``--clients`` (default 8) concurrent clients, a mix of good 3-s clips
(``--good`` share, default 80%) and every kind of bad upload in turn (not audio, empty, wrong content type,
silent, too large, too long). Printed: req/s, p50/p95 latency of the good requests and of all, the count per
status code (no 5xx is expected), the server's RSS before and after, and ONNX/torch ratios measured in the same run.
Goals on 2 cores (issue 12): >= 40 req/s, p95 < 250 ms, RSS growth < 50 MB.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wav(wave: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def requests_mix(good: bytes, *, max_mb: float, good_share: float, n: int) -> list[tuple[str, bytes, str, int]]:
    """(kind, body, content type, expected status) for n requests, deterministic order."""
    rng = np.random.default_rng(0)
    bad = [
        ("not audio", b"this is a text file, not audio" * 20, "audio/wav", 400),
        ("empty", b"", "audio/wav", 400),
        ("wrong type", good, "text/plain", 415),
        ("silent", _wav(np.zeros(48_000, np.float32), 16_000), "audio/wav", 422),
        ("too large", b"\0" * int(max_mb * 1e6 + 1000), "audio/wav", 413),
        ("too long", _wav((rng.standard_normal(8_000 * 12) * 0.1).astype(np.float32), 8_000), "audio/wav", 422),
    ]
    out, k = [], 0
    for _ in range(n):
        if rng.random() < good_share:
            out.append(("good", good, "audio/wav", 200))
        else:
            out.append(bad[k % len(bad)])
            k += 1
    return out


def _rss(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 1e6


def load_test(run: Path, backend: str, mix: list[tuple[str, bytes, str, int]], *, clients: int, workers: int,
              max_mb: float, max_seconds: float) -> dict[str, Any]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "emoshift", "serve", str(run), "--backend", backend, "--port", str(port),
           "--workers", str(workers), "--max-upload-mb", str(max_mb), "--max-seconds", str(max_seconds)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client() as c:  # warm-up: first inference allocates
            for _ in range(5):
                c.post(url + "/v1/predict", content=mix[0][1], headers={"content-type": "audio/wav"})
        rss_before = _rss(proc.pid)
        results: list[tuple[str, int, float]] = []
        lock, nxt = threading.Lock(), [0]

        def client() -> None:
            with httpx.Client(timeout=60) as c:
                while True:
                    with lock:
                        i = nxt[0]
                        nxt[0] += 1
                    if i >= len(mix):
                        return
                    kind, body, ctype, _ = mix[i]
                    t0 = time.perf_counter()
                    try:
                        status = c.post(url + "/v1/predict", content=body, headers={"content-type": ctype}).status_code
                    except httpx.HTTPError:
                        status = -1  # connection dropped (the server closed an over-limit upload early)
                    with lock:
                        results.append((kind, status, time.perf_counter() - t0))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss_after = _rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat_good = [dt for kind, s, dt in results if kind == "good" and s == 200]
    lat_all = [dt for _, _, dt in results]
    expected = {kind: status for kind, _, _, status in mix}
    wrong = Counter(kind for kind, s, _ in results if s != expected[kind])
    return {
        "backend": backend, "requests": len(results), "seconds": wall, "rps": len(results) / wall,
        "p50_good_ms": 1e3 * float(np.percentile(lat_good, 50)), "p95_good_ms": 1e3 * float(np.percentile(lat_good, 95)),
        "p50_all_ms": 1e3 * float(np.percentile(lat_all, 50)), "p95_all_ms": 1e3 * float(np.percentile(lat_all, 95)),
        "status": dict(sorted(Counter(s for _, s, _ in results).items())), "unexpected": dict(wrong),
        "rss_before_mb": rss_before, "rss_after_mb": rss_after,
    }


def train_run(work: Path) -> Path:
    from emoshift.config import load_config
    from emoshift.synth.generate import generate
    from emoshift.training.train import train

    root = work / "synth-tiny"
    generate(root, scale="tiny", seed=0)
    sets = ["data.corpora=[ravdess]", f"data.roots.ravdess={root / 'ravdess'}", f"data.cache_dir={work / 'cache'}",
            "model.name=resnet18", "model.width_mult=0.25", "training.batch_size=16", "training.epochs=1",
            "training.early_stopping_patience=null", "evaluation.n_bootstrap=10", "trainer.progress=false"]
    return train(load_config(overrides=sets), work / "run", progress=False)


def three_second_clip(run: Path) -> bytes:
    """A synthetic take from the run's test files, repeated to exactly 3.0 s at 16 kHz."""
    import csv

    from emoshift.core.audio import load

    with open(next((run / "predictions").glob("*.csv")), newline="") as f:
        rows = list(csv.DictReader(f))
    wave = load(rows[0]["path"], 16_000)
    return _wav(np.tile(wave, -(-48_000 // len(wave)))[:48_000], 16_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="server inference threads")
    ap.add_argument("--good", type=float, default=0.8, help="share of good requests")
    ap.add_argument("--backends", default="onnx,torch")
    args = ap.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.clients <= 64:
        sys.exit("--requests must be 1..100000 and --clients 1..64")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="emoshift-bench-serve-") as tmp:
        run = args.run or train_run(Path(tmp))
        if not (run / "model.onnx").is_file():
            from emoshift.deploy.export import export_runs

            print(f"exporting {run} ...", flush=True)
            export_runs([run], max_files=8)
        mix = requests_mix(three_second_clip(run), max_mb=2.0, good_share=args.good, n=args.requests)
        print(f"run {run}; {args.requests} requests ({sum(k == 'good' for k, *_ in mix)} good 3-s clips), "
              f"{args.clients} clients, {args.workers} server workers, {os.cpu_count()} CPUs", flush=True)
        rows = [load_test(run, b, mix, clients=args.clients, workers=args.workers, max_mb=2.0, max_seconds=10.0)
                for b in args.backends.split(",")]
    keys = [("rps", "req/s", "{:.1f}"), ("p50_good_ms", "p50 good (ms)", "{:.0f}"),
            ("p95_good_ms", "p95 good (ms)", "{:.0f}"), ("p50_all_ms", "p50 all (ms)", "{:.0f}"),
            ("p95_all_ms", "p95 all (ms)", "{:.0f}"), ("rss_before_mb", "RSS before (MB)", "{:.0f}"),
            ("rss_after_mb", "RSS after (MB)", "{:.0f}")]
    print(f"\n{'':18s}" + "".join(f"{r['backend']:>12s}" for r in rows) + ("   onnx/torch" if len(rows) == 2 else ""))
    for key, name, fmt in keys:
        line = f"{name:18s}" + "".join(f"{fmt.format(r[key]):>12s}" for r in rows)
        if len(rows) == 2 and rows[1][key]:
            line += f"   {rows[0][key] / rows[1][key]:10.2f}"
        print(line)
    for r in rows:
        print(f"{r['backend']}: status counts {r['status']}; unexpected {r['unexpected'] or 'none'}; "
              f"RSS growth {r['rss_after_mb'] - r['rss_before_mb']:+.1f} MB")


if __name__ == "__main__":
    main()
