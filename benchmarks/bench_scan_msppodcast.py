"""MSP-Podcast scan speed on a generated tree, against a bare soundfile loop over the same files, same run.

    python benchmarks/bench_scan_msppodcast.py                 # 50,000 tiny WAVs (0.2 s, 16 kHz) in a temp dir
    python benchmarks/bench_scan_msppodcast.py --files 5000 --seconds 2.0 --keep /tmp/msp

What is timed (wall clock and CPU time, best of ``--repeat``):

* reference: one thread, ``soundfile.read(path)`` of every file (nothing else: no checks, no labels);
* ``emoshift.corpora.msppodcast.scan(root)`` with the default thread pool, exactly as ``emoshift corpus index
  msp-podcast`` runs it: list Audios/, read labels_consensus.csv, and decode every kept file once with all the
  bad-file checks (LFS pointer, empty, truncated header, non-finite samples, silence by energy);
* the same scan with ``workers=1``.

The tree is generated once (not timed): ``Audios/MSP-PODCAST_XXXX_YYYY.wav`` with a tone plus noise, and a
labels file with one row per file over every class, partition and some Unknown speakers.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

CLASSES = "ASHUFDCNOX"
PARTS = ("Train", "Development", "Test1", "Test2")


def generate(root: Path, n: int, seconds: float, sr: int = 16_000) -> None:
    """``n`` files of one small WAV each (the same bytes, written n times: generation is not the point)."""
    audio = root / "Audios"
    audio.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    first = audio / "MSP-PODCAST_0000_0000.wav"
    sf.write(first, wave, sr, subtype="PCM_16")
    data = first.read_bytes()
    first.unlink()
    rows = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    for i in range(n):
        stem = f"MSP-PODCAST_{i // 1000 + 1:04d}_{i % 1000 + 1:04d}"
        (audio / f"{stem}.wav").write_bytes(data)
        speaker = "Unknown" if i % 7 == 0 else str((i // 1000) % 400 + 1)
        part = PARTS[((i // 1000) % 400) % 4]
        rows.append(
            f"{stem}.wav,{CLASSES[i % 10]},4.0,4.0,4.0,{speaker},{'Male' if (i // 1000) % 2 else 'Female'},{part}"
        )
    (root / "Labels").mkdir()
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(rows) + "\n")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run)."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        best = min(best, (wall, cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=0.2, help="length of each generated file")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="build the tree here and keep it")
    args = parser.parse_args()

    from emoshift.corpora import msppodcast

    root = args.keep or Path(tempfile.mkdtemp(prefix="msp-bench-"))
    try:
        if not (root / "Audios").is_dir():
            t0 = time.perf_counter()
            generate(root, args.files, args.seconds)
            print(f"generated {args.files:,} files in {time.perf_counter() - t0:.1f} s under {root}")
        files = sorted((root / "Audios").iterdir())
        n = len(files)
        print(f"{n:,} files of {args.seconds} s; {os.cpu_count()} CPU cores; load {os.getloadavg()[0]:.2f}")

        ref = timed(lambda: [sf.read(str(p), dtype="float32") for p in files], args.repeat)
        result = msppodcast.scan(root)
        kept, excluded, left_out = (
            len(result.utterances),
            sum(result.excluded.values()),
            sum(result.left_out.values()),
        )
        if kept + excluded + left_out + len(result.skipped) != n:
            raise SystemExit("scan lost files: every file must be kept, excluded, left out or skipped")
        scan = timed(lambda: msppodcast.scan(root), args.repeat)
        serial = timed(lambda: msppodcast.scan(root, workers=1), args.repeat)

        print(
            f"scan result (policy six): {kept:,} kept, {left_out:,} left out by the policy, {excluded:,} excluded "
            f"({dict(result.excluded)}), {len(result.skipped)} skipped; every one of them decoded or accounted for"
        )
        print(f"{'what':<38}{'wall s':>9}{'files/s':>10}{'CPU s':>8}{'vs ref':>8}")
        for name, (wall, cpu) in (
            ("reference: soundfile.read loop, 1 thr", ref),
            ("msppodcast.scan (thread pool)", scan),
            ("msppodcast.scan (workers=1)", serial),
        ):
            print(f"{name:<38}{wall:>9.2f}{n / wall:>10,.0f}{cpu:>8.2f}{ref[0] / wall:>8.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
