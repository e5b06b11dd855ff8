"""The package as users install it: `python -m build` makes an sdist and a wheel from the repository's files (the
wheel built from the sdist, so a file the sdist lacks is missing from the wheel too), and the wheel's core
install, in a fresh virtual environment, holds no torch, stays under 400 MB and runs `emoshift predict --backend
onnx` and `emoshift audit` on a run that the full install trained and exported.

Needs PyPI (the core dependencies really install). Where uv is installed (`make setup` installs it), uv builds and
installs: its cache already holds what `make setup` downloaded, so the test takes seconds, not a minute; a user's
`pip install` installs the same wheel with the same dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

import emoshift

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
CORE_LIMIT_MB = 400
FRAMEWORKS = ("torch", "lightning", "transformers", "sklearn", "silero_vad", "fastapi", "matplotlib")


def _repository_files() -> list[str]:
    """What a fresh clone holds: the tracked files, plus new ones not yet committed (git's ignore rules apply)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def _clean_env() -> dict[str, str]:
    """The environment without this test run's own Python setup (PYTHONPATH pointing at src/, the dev venv)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _size_mb(folder: Path) -> float:
    """What ``du -s`` counts: the blocks the files take on disk (pip's byte-compiled __pycache__ included)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total / 2**20


def _uv() -> list[str] | None:
    """``python -m uv`` where uv is installed, else None (pip then)."""
    import importlib.util

    return [sys.executable, "-m", "uv"] if importlib.util.find_spec("uv") else None


def _run(args: list[str | Path], env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env or _clean_env(),
                          check=False, **kw)  # type: ignore[call-overload]


def test_wheel_core_install_predicts_and_audits(exported: tuple[Path, dict], synth_tiny: Path,
                                                 tmp_path: Path) -> None:
    # 1. sdist and wheel from the repository's files (a copy: building writes egg-info into the tree)
    files = _repository_files()
    src = tmp_path / "src"
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    dist = tmp_path / "dist"
    installer = ["--installer", "uv"] if _uv() else []  # the isolated build environments
    built = _run([sys.executable, "-m", "build", *installer, "--outdir", dist, src], env=dict(os.environ), timeout=900)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = dist.glob("emoshift-*.whl")
    (sdist,) = dist.glob("emoshift-*.tar.gz")
    assert wheel.name == f"emoshift-{emoshift.__version__}-py3-none-any.whl"  # the one version string

    # every package file (modules, py.typed, the service's page) in the wheel, and everything to build it in the sdist
    package = sorted(f.removeprefix("src/") for f in files if f.startswith("src/emoshift/"))
    assert "emoshift/deploy/serve/static/index.html" in package and "emoshift/py.typed" in package
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert [f for f in package if f not in in_wheel] == []
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert [f for f in ["pyproject.toml", "README.md", *(f"src/{p}" for p in package)] if f not in in_sdist] == []

    # 2. the core install in a fresh virtual environment: no torch, under 400 MB
    venv = tmp_path / "core-venv"
    started = time.monotonic()
    uv = _uv()  # uv makes the venv in a blink (no pip in it: uv installs); python -m venv installs pip first
    made = _run([*uv, "venv", "-q", "--python", sys.executable, venv] if uv else [sys.executable, "-m", "venv", venv],
                timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    bin_ = venv / "bin"
    # uv compiles the byte code as pip does, so that the size below counts what pip's install holds
    install = [*uv, "pip", "install", "-q", "--compile-bytecode", "--python", bin_ / "python", wheel] if uv else [
        bin_ / "python", "-m", "pip", "install", "-q", wheel]
    installed = _run(install, timeout=900)
    seconds = time.monotonic() - started
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    size = _size_mb(venv)
    print(f"\ncore install ({'uv' if uv else 'pip'}): {seconds:.0f} s, {size:.0f} MB")
    assert size < CORE_LIMIT_MB, f"the core install takes {size:.0f} MB"
    found = _run([bin_ / "python", "-c", "import importlib.util, json; "
                  f"print(json.dumps([m for m in {list(FRAMEWORKS)!r} if importlib.util.find_spec(m)]))"])
    assert found.returncode == 0 and json.loads(found.stdout) == [], found.stdout + found.stderr

    version = _run([bin_ / "emoshift", "--version"])
    assert (version.returncode, version.stdout.strip()) == (0, f"emoshift {emoshift.__version__}")

    # 3. predict through the exported graph, and audit, on a copy of the run the full install made
    run = tmp_path / "run"
    shutil.copytree(exported[0], run)
    clip = sorted((synth_tiny / "ravdess").rglob("*.wav"))[0]
    pred = _run([bin_ / "emoshift", "predict", run, clip, "--backend", "onnx", "--format", "json"], timeout=300)
    assert pred.returncode == 0, pred.stderr[-3000:]
    rows = json.loads(pred.stdout)
    labels = json.loads((run / "model.json").read_text(encoding="utf-8"))["labels"]
    assert len(rows) == 1 and rows[0]["label"] in labels and abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-3
    assert "pip install 'emoshift[vad]'" in pred.stderr  # the speech check is off, and it says how to turn it on

    audit = _run([bin_ / "emoshift", "audit", run, "--on", f"ravdess={synth_tiny / 'ravdess'}", "--min-speakers",
                  "1", "--resamples", "50", "--permutations", "50"], timeout=300)
    assert audit.returncode == 0, audit.stderr[-3000:]
    report = json.loads((run / "audit" / "ravdess.json").read_text(encoding="utf-8"))
    assert report["corpus"] == "ravdess" and report["by"]
    assert "note: the audit's plots skipped (the 'plots' extra is not installed): pip install 'emoshift[plots]'" in audit.stderr

    # 4. what the core install cannot do, it says in one line (a real missing torch, no simulation)
    train = _run([bin_ / "emoshift", "train", "--corpus", f"ravdess={synth_tiny / 'ravdess'}", "-o",
                  tmp_path / "new-run"], timeout=300)
    assert train.returncode == 2 and "Traceback" not in train.stderr, train.stderr[-3000:]
    assert train.stderr.strip().splitlines()[-1].endswith("pip install 'emoshift[train]'"), train.stderr
