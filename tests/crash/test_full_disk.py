"""A full disk (ENOSPC) in the middle of `emoshift train`, `study`, `export` and `features` (the cache build):
each ends in one line ``error: no space left on device while writing PATH`` (exit 2) and leaves nothing
half-written. The disk "fills up" in the low-level file write: a file whose path matches a pattern takes a few
bytes, then its next write raises ENOSPC (files opened by ``open`` and by ``os.fdopen``, as the atomic writes
and pool workers do; forked workers inherit the patch).
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import tiny_overrides


class _FillsUp:
    """A file that takes ``budget`` bytes, then fails every write with ENOSPC."""

    def __init__(self, f: Any, budget: int = 16) -> None:
        self._f, self._budget = f, budget

    def write(self, data: Any) -> int:
        if len(data) > self._budget:
            self._f.write(data[: self._budget])  # a partial file really is on disk
            self._f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget -= len(data)
        return int(self._f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _FillsUp:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def __iter__(self) -> Any:
        return iter(self._f)


def fill_disk_on(monkeypatch: pytest.MonkeyPatch, pattern: str) -> None:
    """Writes to files whose path matches ``pattern`` (fnmatch) hit a full disk."""
    real_open, real_fdopen = builtins.open, os.fdopen

    def writing(mode: str) -> bool:
        return any(c in mode for c in "wax+")

    def patched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real_open(file, mode, *args, **kwargs)
        path = str(file) if isinstance(file, str | os.PathLike) else ""
        return _FillsUp(f) if writing(mode) and fnmatch.fnmatch(path, pattern) else f

    def patched_fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        path = os.readlink(f"/proc/self/fd/{fd}")  # atomic_open's temp file: DIR/.NAME.xxxx.tmp
        f = real_fdopen(fd, mode, *args, **kwargs)
        return _FillsUp(f) if writing(mode) and fnmatch.fnmatch(path, pattern) else f

    monkeypatch.setattr(builtins, "open", patched_open)
    monkeypatch.setattr(io, "open", patched_open)  # pathlib's write_bytes and friends
    monkeypatch.setattr(os, "fdopen", patched_fdopen)


def run_cli(monkeypatch: pytest.MonkeyPatch, pattern: str, *args: str) -> str:
    """Run ``emoshift ARGS`` in this process with the disk full on ``pattern``; returns its one error line."""
    from emoshift.cli import app

    fill_disk_on(monkeypatch, pattern)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        monkeypatch.undo()
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output[-3000:], result.exception)
    assert len(lines) == 1 and lines[0].startswith("error: no space left on device while writing "), result.output
    return lines[0].removeprefix("error: no space left on device while writing ")


def nothing_half_written(root: Path) -> None:
    assert sorted(str(p) for p in root.rglob("*.tmp")) == []  # no temp file, no temp folder
    for p in root.rglob("*.json"):
        json.loads(p.read_text())


def _sets(synth: Path, cache: Path) -> list[str]:
    sets = [*tiny_overrides(synth, cache), "training.epochs=1", "evaluation.corpora=[crema-d]"]
    return [a for s in sets for a in ("--set", s)]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds an fd's path through /proc")
@pytest.mark.parametrize(
    ("pattern", "written"),
    [
        ("*/.best.safetensors.*.tmp", "checkpoints/best.safetensors"),  # inside Lightning's fit, first epoch
    ],
)
def test_train_full_disk(synth_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str,
                         written: str) -> None:
    out = tmp_path / "run"
    path = run_cli(monkeypatch, pattern, "train", "-q", "-o", str(out), *_sets(synth_tiny, tmp_path / "cache"))
    assert path == str(out / written)
    assert not (out / written).exists() and not (out / "done.json").exists()
    nothing_half_written(tmp_path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds an fd's path through /proc")
def test_feature_cache_build_full_disk_in_a_worker_and_in_the_data_file(
    synth_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    args = ["features", "ravdess", str(synth_tiny / "ravdess"), "--cache", str(cache), "--set", "n_mels=32"]
    # a pool worker's shard: its error reaches the parent inside the data file's write, which names that file
    shards = run_cli(monkeypatch, "*/shards-*.tmp/shard-*", *args, "--workers", "2")
    assert fnmatch.fnmatch(shards, f"{cache}/ravdess-*/features-*.npy")
    data = run_cli(monkeypatch, "*/.features-*.npy.*.tmp", *args, "--workers", "0")  # the data file itself
    assert fnmatch.fnmatch(data, f"{cache}/ravdess-*/features-*.npy")
    (folder,) = cache.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # no index, no data file, no shard
    nothing_half_written(tmp_path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds an fd's path through /proc")
def test_study_full_disk_stops_the_study_in_one_line(
    synth_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Path(__file__).parents[2] / "configs" / "study.yaml"
    out = tmp_path / "study"
    sets = [a for s in ["training.epochs=1", "training.batch_size=16", "model.width_mult=0.125",
                        "features.n_mels=32", "features.crop_s=1.0", "evaluation.n_bootstrap=20", "evaluation.figures=false",
                        "data.split.method=speaker", f"data.cache_dir={tmp_path / 'cache'}"] for a in ("--set", s)]
    path = run_cli(monkeypatch, "*/.log.csv.*.tmp", "study", str(config), "--profile", "demo", "--only", "L2",
                   "-q", "-o", str(out), "--corpus", f"ravdess={synth_tiny / 'ravdess'}",
                   "--corpus", f"crema-d={synth_tiny / 'crema-d'}", *sets)
    assert path.startswith(str(out / "runs" / "L2")) and path.endswith("log.csv")
    assert not Path(path).exists()
    nothing_half_written(tmp_path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds an fd's path through /proc")
def test_export_full_disk(cnn_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def exporter_fills_the_disk(model: Any, args: Any, f: str, **kwargs: Any) -> None:
        # torch writes the graph from C++, past any Python-level patch: the disk fills up in its write
        with open(f, "wb") as out:
            out.write(b"\x08\x07" * 8)
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "m.onnx"
    monkeypatch.setattr(torch.onnx, "export", exporter_fills_the_disk)
    path = run_cli(monkeypatch, "*/.emoshift-export-*/*", "export", str(cnn_run), "-o", str(target), "--max-files", "4")
    assert path == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
