"""Logs a person can read: what a tiny ``emoshift train`` writes when stdout and stderr are files (a log, CI).

One line per epoch and per phase, with its figures; the results table whole (not wrapped); no third-party
banner or tip (Lightning's litlogger tip, its GPU/TPU lines, transformers/MLflow/Optuna notes, warnings); no
line twice. ``--verbose`` adds the resolved config and each skipped file; ``--quiet`` prints the results only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from tests.conftest import tiny_overrides

BANNERS = ("Tip", "litlogger", "\U0001f4a1", "GPU available", "TPU available", "HPU available", "LOCAL_RANK",
           "Warning", "warn(", "UserWarning", "FutureWarning", "transformers", "mlflow", "MLflow", "optuna",
           "Optuna", "lightning.pytorch", "Trainer(", "Sanity Checking", "it/s]", "\r", "\x1b[")
EPOCH = re.compile(r"^epoch (\d+)/(\d+): train loss [\d.]+, val loss [\d.]+, val UAR [\d.]+, val acc [\d.]+ \(")


@pytest.fixture(scope="module")
def corpus(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RAVDESS tree plus one empty file with a valid name (skipped: it must show under --verbose)."""
    root = tmp_path_factory.mktemp("logs") / "ravdess"
    shutil.copytree(synth_tiny / "ravdess", root)
    actor = sorted(p for p in root.rglob("Actor_*") if p.is_dir())[0]
    (actor / f"03-01-01-01-01-02-{actor.name[-2:]}.wav").write_bytes(b"")
    return root


def _sets(corpus: Path, tmp: Path, epochs: int) -> list[str]:
    sets = tiny_overrides(corpus.parent, tmp / "cache") + [f"data.roots.ravdess={corpus}",
                                                            f"training.epochs={epochs}", "trainer.progress=true"]
    return [a for s in sets if not s.startswith("data.roots.crema-d") for a in ("--set", s)]


@pytest.fixture(scope="module")
def logged(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    """A 2-epoch train with --verbose, stdout and stderr sent to files, in a fresh process: their lines."""
    tmp = tmp_path_factory.mktemp("logged")
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "80"}
    with open(out, "wb") as o, open(err, "wb") as e:
        r = subprocess.run([sys.executable, "-m", "emoshift", "train", "-v", "-o", str(tmp / "run"),
                            *_sets(corpus, tmp, 2)], stdout=o, stderr=e, env=env, stdin=subprocess.DEVNULL,
                           timeout=600)
    assert r.returncode == 0, err.read_text()
    return out.read_text().splitlines(), err.read_text().splitlines()


def test_one_line_per_epoch_and_phase(logged: tuple[list[str], list[str]]) -> None:
    _, err = logged
    epochs = [m.groups() for m in map(EPOCH.match, err) if m]
    assert epochs == [("1", "2"), ("2", "2")], err
    for phase in ("decoding ravdess:", "log-mel ravdess:", "evaluating ravdess:"):
        assert sum(line.startswith(phase) for line in err) == 1, (phase, err)


def test_no_banner_and_no_line_twice(logged: tuple[list[str], list[str]]) -> None:
    out, err = logged
    for line in out + err:
        assert not any(b in line for b in BANNERS), line
    lines = [line for line in out + err if line.strip() and not line.startswith(" ")]  # config YAML indents
    assert len(lines) == len(set(lines)), [x for x in lines if lines.count(x) > 1]


def test_the_results_table_is_whole(logged: tuple[list[str], list[str]]) -> None:
    """80 columns asked for (COLUMNS), yet each row of the table is one line: all rows the same width."""
    out, _ = logged
    rows = [line for line in out if line[:1] in "┃│┏┡└"]
    assert len(rows) >= 5 and len({len(r) for r in rows}) == 1, out
    assert any("ravdess" in r and "test" in r for r in rows)


def test_verbose_adds_the_config_and_the_skipped_file(logged: tuple[list[str], list[str]], corpus: Path) -> None:
    _, err = logged
    assert "resolved config:" in err and any(line.startswith("  epochs: 2") for line in err)
    assert any(line.startswith("skipped ") and line.endswith(".wav: empty: file has 0 bytes") for line in err), err


def test_quiet_prints_the_results_only(corpus: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["train", "-q", "-o", str(tmp_path / "run"), *_sets(corpus, tmp_path, 1)])
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert r.stderr == ""
    title, *rows = r.stdout.splitlines()
    table = [line for line in rows if line[:1] in "┃│┏┡└"]
    rest = rows[len(table):]  # after the table, the abstention statement (a result too), nothing else
    assert title.strip() == str(tmp_path / "run") and table and rows[: len(table)] == table, r.stdout
    assert not rest or (rest[0].startswith("abstention (") and all(line.startswith("  ") or not line.strip() for line in rest[1:])), r.stdout
    assert "epoch" not in r.stdout and "files in" not in r.stdout, r.stdout
