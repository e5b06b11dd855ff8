"""`emoshift study` on the session's tiny synthetic pair, as the end-to-end study tests run it.

``run`` invokes the CLI on configs/study.yaml under the demo profile with :func:`fast_sets` (one epoch at tiny
widths, 2 folds). The whole study made that way, once per test run, is ``full_study`` (tests/study/conftest.py):
test_study checks it and works on copies of it, and it is test_fanout's sequential reference.
"""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from emoshift.cli import app

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "study.yaml"


def overrides(cache: Path) -> list[str]:
    """The overrides (``key=value``) that make every phase of the study take seconds."""
    return [
        "training.epochs=1",
        "training.batch_size=16",
        "model.width_mult=0.125",
        "features.n_mels=32",
        "features.crop_s=1.0",
        "evaluation.n_bootstrap=50",
        "evaluation.figures=false",  # the full study has L2b draw them
        "data.split.k=2",  # 2 folds of the tiny corpus's 8 actors: 4 test speakers a fold, 8 pooled
        # one seed, but L2 over two: the repeated-training path runs end to end (pooled metrics, perturbation,
        # findings over seeds) at a third of the demo's 3-seed cost; verdicts over seeds are test_findings'
        "training.seeds=null",
        "L2:training.seeds=[0,1]",
        f"data.cache_dir={cache}",
    ]


def fast_sets(cache: Path) -> list[str]:
    """:func:`overrides` as ``--set`` arguments."""
    return [a for s in overrides(cache) for a in ("--set", s)]


def run(corpus: dict[str, str], out: Path, *extra: str) -> tuple[int, str, float]:
    """``emoshift study configs/study.yaml --profile demo`` into ``out`` (features cached beside it):
    (exit code, output, seconds)."""
    args = ["study", str(CONFIG), "-o", str(out), "--profile", "demo"]
    for name, root in corpus.items():
        args += ["--corpus", f"{name}={root}"]
    started = time.monotonic()
    result = CliRunner().invoke(app, [*args, *fast_sets(out.parent / "cache"), *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output, time.monotonic() - started
