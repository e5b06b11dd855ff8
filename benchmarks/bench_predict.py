"""Prediction latency on CPU: one 3-second file end to end, in process and as a fresh `emoshift predict`.

    python benchmarks/bench_predict.py                    # trains a throwaway run on the tiny synthetic corpus
    python benchmarks/bench_predict.py --run RUN          # an existing run directory (any spectrogram model)
    python benchmarks/bench_predict.py --file take.wav    # your own file instead of the synthetic 3 s take

What is timed:

* in process, after ``--warmup`` calls: ``Predictor(RUN).predict_file(path)`` (decode -> silence check ->
  resample -> trim -> log-mel -> centred crop -> model -> softmax), ``--reps`` times, p50 and p95; and each stage
  on its own, the same way, to show where the time goes.
* the same through ``RUN/model.onnx`` (exported here when missing): ``Predictor(RUN, backend="onnx")``, which
  imports neither torch nor transformers, with the torch/onnx ratio of per-file latency;
* start-up, ``--procs`` fresh processes each, p50: ``python -c "import emoshift.cli"`` (what every command
  pays), ``import torch`` and ``from transformers import ResNetModel`` for reference, a cold
  ``Predictor.predict_file`` in a new process split into import / model load / first prediction, and the full
  ``emoshift predict RUN file.wav`` command.

The default run is trained for one epoch on ``emoshift.synth.generate`` scale tiny with the default features (128 mels,
3 s crops) and ResNet-18 at full width, so the model costs what a real one does (its accuracy is irrelevant).
The default file is a synthetic RAVDESS take at 48 kHz repeated to exactly 3.0 s, so resampling is timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

warnings.filterwarnings("ignore")

# Run in a fresh interpreter: times import, model load and the first prediction of one file; prints JSON.
COLD = """
import json, sys, time
t0 = time.perf_counter()
from emoshift.deploy.predict import Predictor
t1 = time.perf_counter()
p = Predictor(sys.argv[1], backend=sys.argv[3])
p.labels  # loads the model
t2 = time.perf_counter()
pred = p.predict_file(sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first": t3 - t2, "label": pred.label, "error": pred.error}))
"""


def _no_grad(fn: Any, *args: Any) -> Any:
    import torch

    with torch.no_grad():
        return fn(*args)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def _times(fn: Callable[[], Any], reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _wall(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return dt, proc.stdout


def _loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "n/a"


def train_run(work: Path) -> Path:
    """One epoch on the tiny synthetic RAVDESS: default features, ResNet-18 at full width."""
    from emoshift.config import load_config
    from emoshift.synth.generate import generate
    from emoshift.training.train import train

    root = work / "synth-tiny"
    generate(root, scale="tiny", seed=0)
    sets = [
        "data.corpora=[ravdess]",
        f"data.roots.ravdess={root / 'ravdess'}",
        f"data.cache_dir={work / 'cache'}",
        "model.name=resnet18",
        "model.width_mult=1.0",
        "training.batch_size=16",
        "training.epochs=1",
        "training.early_stopping_patience=null",
        "evaluation.n_bootstrap=10",
        "trainer.progress=false",
    ]
    return train(load_config(overrides=sets), work / "run", progress=False)


def three_second_take(work: Path, source_root: Path | None, sr: int) -> Path:
    """A synthetic RAVDESS take resampled to ``sr`` and repeated/cut to exactly 3.0 s, as 16-bit WAV."""
    import soundfile as sf

    from emoshift.core.audio import read, resample

    if source_root is None:
        from emoshift.synth.generate import generate

        source_root = work / "synth-tiny"
        generate(source_root, scale="tiny", seed=0)
    src = sorted((source_root / "ravdess").rglob("*.wav"))[0]
    wave, native = read(src)
    wave = resample(wave, native, sr)
    n = 3 * sr
    wave = np.tile(wave, -(-n // len(wave)))[:n]
    out = work / f"take-3s-{sr // 1000}k.wav"
    sf.write(str(out), wave, sr, subtype="PCM_16")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="run directory to use (default: train a throwaway one)")
    parser.add_argument("--file", type=Path, help="audio file to predict (default: a synthetic 3.0 s take)")
    parser.add_argument(
        "--sr", type=int, default=48000, help="sample rate of the synthetic take (default 48 kHz)"
    )
    parser.add_argument("--reps", type=int, default=50, help="timed in-process predictions")
    parser.add_argument("--warmup", type=int, default=5, help="untimed predictions first")
    parser.add_argument("--procs", type=int, default=5, help="fresh processes per start-up measurement")
    parser.add_argument("--work", type=Path, help="folder for the throwaway run and file (kept)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads here and OMP_NUM_THREADS in the subprocesses (0 = default)",
    )
    args = parser.parse_args()
    if args.reps < 2 or args.procs < 1 or args.warmup < 0:
        sys.exit("--reps must be at least 2, --procs at least 1, --warmup at least 0")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    os.environ.update({"HF_HUB_OFFLINE": "1"})
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="emoshift-bench-predict-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        from emoshift.core import audio
        from emoshift.deploy.predict import Predictor
        from emoshift.evaluation.inference import prepare_waveform
        from emoshift.models import family_of

        t0 = time.perf_counter()
        run = args.run if args.run is not None else train_run(work)
        trained = "" if args.run is not None else f" (trained here in {time.perf_counter() - t0:.0f} s)"
        path = args.file if args.file is not None else three_second_take(work, None, args.sr)
        info_sf = __import__("soundfile").info(str(path))

        from emoshift.core.rundir import load_model

        predictor = Predictor(run, backend="torch")
        model, info = load_model(run, device="cpu")
        n_params = sum(p.numel() for p in model.parameters())
        feats = info.features
        print(
            f"run: {run}{trained}; {info.model} ({n_params / 1e6:.1f} M parameters), {feats['n_mels']} mels, "
            f"{feats['crop_s']:g} s crops, {len(info.labels)} labels"
        )
        print(f"file: {path.name}, {info_sf.duration:.2f} s at {info_sf.samplerate / 1000:g} kHz")
        print(
            f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, python "
            f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads); "
            f"load average before: {_loadavg()}"
        )

        # ---------------------------------------------------------------------------------- in process
        wave, sr = audio.read(path)
        x = prepare_waveform(wave, sr, info)  # (1, 1, n_mels, T)
        stages: list[tuple[str, Callable[[], Any]]] = [
            ("decode (soundfile)", lambda: audio.read(path)),
            ("silence check", lambda: audio.is_silent(wave, sr)),
            ("features (resample, trim, log-mel, crop)", lambda: prepare_waveform(wave, sr, info)),
            ("model forward " + "x".join(map(str, x.shape)), lambda: _no_grad(family_of(info.model, info.mode).predict, model, x)),
            ("predict_file, end to end (torch backend)", lambda: predictor.predict_file(path)),
        ]
        if not (Path(run) / "model.onnx").is_file():
            from emoshift.deploy.export import export_runs

            rep = export_runs([run], max_files=8)
            print(f"exported {run}/model.onnx (parity {rep['parity']['max_abs_diff']:.1e})")
        onnx_predictor = Predictor(run, backend="onnx")
        stages.append(("predict_file, end to end (onnx backend)", lambda: onnx_predictor.predict_file(path)))
        print(f"\nin process, {args.reps} calls after {args.warmup} warm-up calls      p50 ms    p95 ms")
        p50: dict[str, float] = {}
        for name, fn in stages:
            ts = _times(fn, args.reps, args.warmup)
            p50[name] = _pct(ts, 50)
            print(f"  {name:52s} {_pct(ts, 50) * 1e3:8.1f}  {_pct(ts, 95) * 1e3:8.1f}")
        t_name, o_name = stages[-2][0], stages[-1][0]
        print(f"  per-file latency ratio torch / onnx: {p50[t_name] / p50[o_name]:.2f}")
        for pr in (predictor, onnx_predictor):
            pred = pr.predict_file(path)
            if pred.error:
                raise RuntimeError(f"prediction failed: {pred.error}")

        # ---------------------------------------------------------------------------------- start-up
        py = sys.executable
        cli = shutil.which("emoshift", path=str(Path(py).parent)) or ""
        predict_cmd = [cli] if cli else [py, "-m", "emoshift"]
        commands: list[tuple[str, list[str]]] = [
            ('python -c "import emoshift.cli"', [py, "-c", "import emoshift.cli"]),
            ('python -c "import torch"', [py, "-c", "import torch"]),
            (
                'python -c "from transformers import ResNetModel"',
                [py, "-c", "from transformers import ResNetModel"],
            ),
            ("emoshift predict RUN file --backend torch", [*predict_cmd, "predict", str(run), str(path), "--backend", "torch"]),
            ("emoshift predict RUN file --backend onnx", [*predict_cmd, "predict", str(run), str(path), "--backend", "onnx"]),
        ]
        print(f"\nstart-up, {args.procs} fresh processes each                          p50 s     min s")
        for name, cmd in commands:
            ts = [_wall(cmd, env)[0] for _ in range(args.procs)]
            print(f"  {name:52s} {statistics.median(ts):8.2f}  {min(ts):8.2f}")
        for backend in ("torch", "onnx"):
            cold = [json.loads(_wall([py, "-c", COLD, str(run), str(path), backend], env)[1]) for _ in range(args.procs)]
            for key, name in [
                ("import", f"cold {backend} Predictor: import emoshift.deploy.predict"),
                ("load", f"cold {backend} Predictor: load the model (+ torch or onnxruntime)"),
                ("first", f"cold {backend} Predictor: first predict_file"),
            ]:
                ts = [c[key] for c in cold]
                print(f"  {name:52s} {statistics.median(ts):8.2f}  {min(ts):8.2f}")
        print(f"load average after: {_loadavg()}")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
