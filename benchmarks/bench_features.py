"""Feature extraction speed: emoshift's cache build against librosa, on the same files, in the same run.

    python benchmarks/bench_features.py                      # synthetic corpora (emoshift.synth.generate, scale small)
    python benchmarks/bench_features.py --root /data/RAVDESS # any folder of audio files
    python benchmarks/bench_features.py --scale tiny --repeat 1
    python benchmarks/bench_features.py --functionals egemaps,compare --no-logmel   # openSMILE vs librosa

What is timed (best of ``--repeat`` runs for each line; wall clock, and CPU time of all processes):

* librosa, one process, as a user would write it: ``librosa.load(path, sr=16000)`` (soundfile + soxr_hq),
  ``librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=128,
  power=2.0)``, ``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80)``; librosa's defaults otherwise.
  One warm-up call first, so numba's JIT is not timed. Timed with numpy's BLAS threads as set and with one
  BLAS thread (spinning BLAS threads lose badly on a busy machine); the faster is the baseline.
* emoshift, ``FeatureCache.build`` into an empty cache directory, exactly as ``emoshift features`` fills it:
  decode (soundfile) -> silence check -> resample (soxr HQ) -> [trim] -> log-mel (one float64 STFT per chunk
  of 8 files) -> float32 data file + index, fsync'ed, with ``--workers`` processes (default 2). Everything a
  build does is counted: forking the pool, writing shards, concatenating and committing the cache.
  With trimming on (the default config) and off; with it off the spectrograms are compared with librosa's
  (max abs difference in dB), so both sides provably computed the same thing.

* with ``--functionals egemaps[,compare]``: emoshift's ``FunctionalCache.build`` (openSMILE functionals through
  ``opensmile``'s ``process_signal`` on our decoded 16 kHz waveforms, cached as float32 + JSON index) into an
  empty cache directory, with ``--workers`` processes and in one process, against the same librosa line.
  ``--no-logmel`` leaves out the log-mel lines and the stage breakdown.

Then the single-process CPU time per file, stage by stage, shows what limits the speed-up. CPU ms per file
is the figure to trust on a shared machine: wall-clock rates there depend on what else is running.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Timing:
    wall_s: float  # best run
    cpu_s: float  # CPU time of that run: this process, its threads and its finished children
    runs: list[float]

    def rate(self, n: int) -> float:
        return n / self.wall_s


def measure(fn: Callable[[], object], repeat: int) -> Timing:
    best: tuple[float, float] | None = None
    runs = []
    for _ in range(repeat):
        r0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = sum(b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime for a, b in ((r0, r1), (c0, c1)))
        runs.append(wall)
        if best is None or wall < best[0]:
            best = (wall, cpu)
    assert best is not None
    return Timing(best[0], best[1], runs)


def _speechlike_tree(out: Path, scale: str, seed: int) -> str:
    """Synthetic RAVDESS (48 kHz) and CREMA-D (16 kHz) look-alikes from emoshift.synth.generate."""
    from emoshift.synth.generate import generate

    summary = generate(out, scale=scale, seed=seed, progress=sys.stderr.isatty())
    return f"emoshift.synth.generate scale={scale} seed={seed}" + (" (reused)" if summary.get("cached") else "")


def _audio_files(root: Path) -> list[Path]:
    exts = {".wav", ".flac", ".ogg"}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and not p.name.startswith("._"))


def _loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="folder of audio files (default: synthetic corpora)")
    parser.add_argument("--scale", default="small", help="emoshift.synth.generate scale when --root is not given")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="emoshift worker processes (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N files (0 = all)")
    parser.add_argument("--functionals", default="", help="also time openSMILE functionals: egemaps,compare")
    parser.add_argument("--no-logmel", action="store_true", help="skip the log-mel cache lines and stages")
    args = parser.parse_args()

    import librosa
    import soundfile as sf
    import torch
    from threadpoolctl import threadpool_limits  # comes with scikit-learn

    from emoshift.config.features import FeatureConfig
    from emoshift.core import audio
    from emoshift.corpora.base import Utterance
    from emoshift.features.cache import FeatureCache, FeatureStore
    from emoshift.features.logmel import log_mel_many

    work = Path(tempfile.mkdtemp(prefix="emoshift-bench-"))
    try:
        if args.root is not None:
            root, source = args.root, str(args.root)
        else:
            root = work / "audio"
            source = _speechlike_tree(root, args.scale, args.seed)
        files = _audio_files(root)[: args.limit or None]
        if not files:
            sys.exit(f"no audio files under {root}")
        n = len(files)
        infos = [sf.info(str(p)) for p in files]
        rates = [i.samplerate for i in infos]
        seconds = sum(i.duration for i in infos)
        by_rate = ", ".join(f"{rates.count(r)} at {r / 1000:g} kHz" for r in sorted(set(rates), reverse=True))
        print(f"files: {n} ({by_rate}), {seconds:.0f} s of audio, mean {seconds / n:.2f} s; {source}")
        print(
            f"machine: {os.cpu_count()} CPUs, python {platform.python_version()}, torch {torch.__version__}, "
            f"librosa {getattr(librosa, '__version__', '?')}; load average before: {_loadavg()}"
        )
        header = f"\n{'':44s}{'files/s':>9s}{'x librosa':>11s}{'CPU ms/file':>13s}   runs (s)"
        print(header)

        def row(label: str, t: Timing, baseline: float | None, note: str = "") -> None:
            ratio = f"{t.rate(n) / baseline:10.1f}x" if baseline else f"{'':11s}"
            runs = ", ".join(f"{r:.2f}" for r in t.runs)
            print(f"{label:44s}{t.rate(n):9.1f}{ratio}{1000 * t.cpu_s / n:13.2f}   {runs}{note}")

        # ---------------------------------------------------------------------------------------- librosa
        def librosa_one(path: Path) -> np.ndarray:
            y, _ = librosa.load(path, sr=16000)
            S = librosa.feature.melspectrogram(
                y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=128, power=2.0
            )
            return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80)

        def librosa_all() -> None:
            for p in files:
                librosa_one(p)

        librosa_one(files[0])  # warm-up: numba JIT, FFT plans
        lib_default = measure(librosa_all, args.repeat)
        with threadpool_limits(limits=1):
            lib_single = measure(librosa_all, args.repeat)
        lib = min(lib_default, lib_single, key=lambda t: t.wall_s)
        row("librosa, 1 process, BLAS threads as set", lib_default, None)
        row("librosa, 1 process, 1 BLAS thread", lib_single, None)

        # ---------------------------------------------------------------------------------------- emoshift
        utts = [
            Utterance(id=f"bench/{i}", path=str(p), corpus="bench", speaker="bench/0", gender=None,
                      emotion="neutral", native_label="")
            for i, p in enumerate(files)
        ]  # fmt: skip
        last: dict[str, FeatureStore] = {}
        if args.functionals:
            _functionals_rows(args, utts, work, lambda label, t, note="": row(label, t, lib.rate(n), note))
        if args.no_logmel:
            return

        def build(cfg: FeatureConfig, workers: int) -> None:
            cache_root = work / f"cache-{time.perf_counter_ns()}"  # empty every time: nothing is reused
            last["store"] = FeatureCache(cache_root).build("bench", utts, cfg, workers=workers)

        default, no_trim = FeatureConfig(), FeatureConfig(trim_silence=False)
        FeatureCache(work / "warm").build("bench", utts[:2], default, workers=0)  # warm-up: first torch calls
        for label, cfg, workers in [
            (f"emoshift, {args.workers} workers, trim on (default)", default, args.workers),
            (f"emoshift, {args.workers} workers, trim off", no_trim, args.workers),
            ("emoshift, 1 process, trim on (default)", default, 0),
            ("emoshift, 1 process, trim off", no_trim, 0),
        ]:
            t = measure(functools.partial(build, cfg, workers), args.repeat)
            store = last["store"]
            note = f"  ({len(store.skipped)} files skipped)" if store.skipped else ""
            row(label, t, lib.rate(n), note)
            if cfg is no_trim and workers:
                sample = files[:: max(1, n // 40)]
                diff = max(
                    float(np.abs(store.get(utts[files.index(p)].id) - librosa_one(p)).max()) for p in sample
                )
                print(f"{'':44s}(trim off vs librosa, {len(sample)} files: max |diff| {diff:.1e} dB)")
        print(f"load average after: {_loadavg()}")

        # ------------------------------------------------------------------------------ where the time goes
        torch.set_num_threads(1)  # as in a worker process
        subset = files[:: max(1, n // 200)]  # every corpus and sample rate, in proportion

        def cpu_ms(fn: Callable[[], object]) -> float:
            best = float("inf")
            for _ in range(max(1, args.repeat)):
                t0 = time.process_time()
                fn()
                best = min(best, time.process_time() - t0)
            return 1000 * best / len(subset)

        decoded = [audio.read(p) for p in subset]
        resampled = [audio.resample(w, sr, 16000) for w, sr in decoded]
        trimmed = [audio.trim_silence(w, 16000, top_db=40.0) for w in resampled]
        stages = {
            "read (soundfile + file checks)": cpu_ms(lambda: [audio.read(p) for p in subset]),
            "silence check": cpu_ms(lambda: [audio.is_silent(w, sr) for w, sr in decoded]),
            "resample (soxr HQ)": cpu_ms(lambda: [audio.resample(w, sr, 16000) for w, sr in decoded]),
            "trim silence": cpu_ms(lambda: [audio.trim_silence(w, 16000, top_db=40.0) for w in resampled]),
            "log-mel (chunks of 8, float64 FFT)": cpu_ms(
                lambda: [log_mel_many(trimmed[i : i + 8], default) for i in range(0, len(subset), 8)]
            ),
        }
        with threadpool_limits(limits=1):
            lib_load = cpu_ms(lambda: [librosa.load(p, sr=16000) for p in subset])
            lib_total = cpu_ms(lambda: [librosa_one(p) for p in subset])
        print(f"\nCPU ms per file, one process, one thread, {len(subset)} of the files:")
        for name, ms in stages.items():
            print(f"  {name:36s} {ms:6.2f}")
        print(f"  {'= emoshift (decode to log-mel)':36s} {sum(stages.values()):6.2f}")
        print(f"  {'librosa.load (decode + resample)':36s} {lib_load:6.2f}")
        print(f"  {'librosa, all of it':36s} {lib_total:6.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _functionals_rows(args: argparse.Namespace, utts: list, work: Path, row: Callable[..., None]) -> None:  # type: ignore[type-arg]
    """One line per feature set and worker count: FunctionalCache.build into an empty cache directory."""
    from emoshift.features.functionals import FunctionalCache, FunctionalsConfig

    for name in [s.strip() for s in args.functionals.split(",") if s.strip()]:
        cfg = FunctionalsConfig(feature_set=name)  # type: ignore[arg-type]
        FunctionalCache(work / "warm-smile").build("bench", utts[:1], cfg, workers=0)  # warm-up: openSMILE load
        skipped: list[int] = []
        for label, workers in [(f"{args.workers} workers", args.workers), ("1 process", 0)]:

            def build(cfg: FunctionalsConfig = cfg, workers: int = workers, skipped: list[int] = skipped) -> None:
                root = work / f"smile-{time.perf_counter_ns()}"  # empty every time: nothing is reused
                store = FunctionalCache(root).build("bench", utts, cfg, workers=workers)
                skipped.append(len(store.skipped))

            t = measure(build, args.repeat)
            note = f"  ({skipped[-1]} files skipped)" if skipped and skipped[-1] else ""
            row(f"openSMILE {name} ({cfg.dim}), {label}", t, note)


if __name__ == "__main__":
    main()
