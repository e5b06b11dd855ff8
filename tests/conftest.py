"""Shared fixtures: the synthetic corpus (generated once per session) and a tiny, fast experiment config.

`make test` runs the suite in pytest-xdist workers (one per core). A session fixture that several test files
use is built once for the whole run, not once per worker: ``tests.once.built_once`` lets the first worker that needs it build
it into a folder every worker shares, while the others wait for it. Those fixtures are read-only to the tests
(a test that changes a run copies it first).
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
from pathlib import Path

import pytest
import typer.main
import typer.testing

from tests.once import built_once

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# librosa (the log-mel parity tests' reference; emoshift never imports it) compiles its numba kernels when it is
# first imported, 30 s in a fresh environment; without LLVM's optimisation passes, 20 s. The same results: the
# passes change how fast the kernels run, not what they compute.
os.environ.setdefault("NUMBA_OPT", "0")
# `make test` runs one xdist worker per core: one torch/BLAS thread each (and in the commands they start), so
# that the workers do not oversubscribe the cores with threads that wait on each other. Set before anything
# imports torch; code that sets its own thread count (study jobs, cache builders) still does.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    # ... and each worker has a core of its own (its affinity, Linux), which the processes its tests start inherit.
    # Pools sized by the cores a process may use (emoshift.core.cores: the feature caches, synth) then work in
    # the worker's process instead of forking workers that fight the other test worker for the same cores (each
    # fork paid for nothing: openSMILE's configuration parsed again; 70 s less CPU over the suite), and a test's
    # own processes (DDP ranks, study jobs, a command it kills) take turns on its worker's core.
    _worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    _count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if hasattr(os, "sched_setaffinity") and 0 < _count <= len(_cpus := sorted(os.sched_getaffinity(0))):
        os.sched_setaffinity(0, {_cpus[_worker % len(_cpus)]})

    # A worker that has sent its last result still takes 6-8 s to exit: the interpreter frees every module and
    # object of torch, Lightning and transformers one by one, and the run waits for it. This exit handler,
    # registered as the worker starts and so run after those the tests' code registers, ends the process there:
    # every result is sent by then and the output is flushed here. (xdist reads results, not exit codes.)
    atexit.register(lambda: (sys.stdout.flush(), sys.stderr.flush(), os._exit(0)))

# typer's CliRunner.invoke(app, ...) converts the Typer app into its click command at every call: about 90 ms
# of typer reading every command's signature (its annotations evaluated one by one), more than most invocations
# take themselves, and the suite invokes the CLI about a thousand times (the bad-config table alone 584). The
# app does not change once imported, so each worker builds its command once; what is invoked is the same click
# command typer builds. (typer.testing imports typer.main.get_command under this name; where a typer release
# no longer does, nothing is patched and every call builds it again.)
if hasattr(typer.testing, "_get_command"):
    typer.testing._get_command = functools.lru_cache(maxsize=8)(typer.main.get_command)  # type: ignore[attr-defined]

# The longest test files, then the folders of long end-to-end tests, collected first. `make test`'s workers (xdist,
# --dist loadfile) take test files in collection order, each holding its current file and the next; the longest
# first, the many short files fill the gaps at the end instead of one long file running alone last (README
# "Development" lists the slowest tests). The order inside a file is unchanged; no test depends on the order.
LONG_FIRST = (
    "study/test_study.py",
    "study/test_domain_shift.py",
    "test_readme.py",
    "test_legacy_runs.py",
    "study/test_fanout.py",  # after files the other worker takes meanwhile: it compares with test_study's full study
    "crash/test_kill_train.py",
    "deploy/test_install.py",
    "training/test_train.py",
    "training/test_dann.py",
    "training/test_fewshot.py",
    "features/test_logmel.py",
    "crash",
    "study",
    "training",
    "deploy",
    "robustness",
    "test_architecture.py",
    "test_docs.py",
    "synth/test_synth.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(Path(__file__).parent).as_posix()
        return next((i for i, p in enumerate(LONG_FIRST) if path == p or path.startswith(f"{p}/")), len(LONG_FIRST))

    items.sort(key=rank)  # stable


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$EMOSHIFT_CACHE`` for the whole run, never the user's ``~/.cache/emoshift``: one folder every xdist worker
    (and every command a test starts) shares, so a graph one export traced serves the exports of runs of the
    same structure in the other worker too (emoshift.deploy.traced)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "emoshift-cache"
    folder.mkdir(exist_ok=True)
    os.environ["EMOSHIFT_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic RAVDESS + CREMA-D pair in the real layouts (seconds to generate)."""
    from emoshift.synth.generate import generate

    def build(folder: Path) -> Path:
        generate(folder / "tiny", scale="tiny", seed=0)
        return folder / "tiny"

    return Path(built_once(tmp_path_factory, "synth-tiny", build))


@pytest.fixture(scope="session")
def synth_more(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic IEMOCAP and manifest corpora (OUT/iemocap, OUT/manifest/manifest.csv)."""
    from emoshift.synth.generate import generate

    def build(folder: Path) -> Path:
        generate(folder / "more", scale="tiny", seed=0, corpora=("iemocap", "manifest"))
        return folder / "more"

    return Path(built_once(tmp_path_factory, "synth-more", build))


def tiny_overrides(root: Path, cache: Path, *, corpora: tuple[str, ...] = ("ravdess",)) -> list[str]:
    """--set overrides that make a run take seconds on 2 CPU cores."""
    sets = [
        f"data.corpora=[{', '.join(corpora)}]",
        f"data.cache_dir={cache}",
        "features.n_mels=32",
        "features.crop_s=1.0",
        "model.name=resnet18",
        "model.width_mult=0.125",
        "training.batch_size=16",
        "training.lr=0.003",
        "training.epochs=4",
        "training.early_stopping_patience=null",
        "evaluation.n_bootstrap=100",
        "evaluation.figures=false",  # RUN/plots/: the tests that look at figures turn them on
        "trainer.progress=false",
    ]
    for name in ("ravdess", "crema-d"):
        sets.append(f"data.roots.{name}={root / name}")
    return sets


@pytest.fixture(scope="session")
def cnn_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ResNet run (1-s crops, 32 mels), trained for 2 epochs, temperature-scaled on its validation
    speakers (so every deploy test, export parity included, runs a calibrated graph), with its figures; not
    exported."""
    from emoshift.config import load_config
    from emoshift.training.train import train

    def build(tmp: Path) -> Path:
        cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp / "cache"), "training.epochs=2",
                                     "evaluation.calibrate=temperature", "evaluation.figures=true"])
        return train(cfg, tmp / "run", progress=False)

    return Path(built_once(tmp_path_factory, "deploy-cnn", build))


@pytest.fixture(scope="session")
def ssl_norm_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny frozen HuBERT head trained on RAVDESS with ``model.domain_norm: corpus`` (each corpus's cached
    embeddings standardised with its own statistics), scored on RAVDESS's test speakers and CREMA-D."""
    from emoshift.config import load_config
    from emoshift.training.train import train

    def build(tmp: Path) -> Path:
        cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp / "cache"), "model.name=hubert",
                                     "model.preset=tiny", "model.mode=frozen", "model.pooling=stats",
                                     "model.domain_norm=corpus", "training.epochs=2",
                                     "evaluation.corpora=[crema-d]"])
        return train(cfg, tmp / "run", progress=False)

    return Path(built_once(tmp_path_factory, "ssl-norm", build))


@pytest.fixture(scope="session")
def exported(cnn_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A copy of the CNN run with RUN/model.onnx and its export report."""
    import shutil

    from emoshift.deploy.export import export_runs

    def build(tmp: Path) -> tuple[Path, dict]:
        shutil.copytree(cnn_run, tmp / "run")
        return tmp / "run", export_runs([tmp / "run"], max_files=12)

    run, report = built_once(tmp_path_factory, "deploy-exported", build)
    return Path(run), report
