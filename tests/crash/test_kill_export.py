"""`emoshift export` killed while writing the model, then rerun: the same graph and weights, no partial file.

Kills are timed by what is on disk, never by sleeping (tests/crash/kill.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tests.crash.kill import cli, kill_when, partial_files, run, start


def test_export_killed_then_rerun_writes_the_same_model(
    cnn_run: Path, exported: tuple[Path, dict], tmp_path: Path
) -> None:
    # the session's tiny trained run (tests/conftest.py), copied: the session fixtures are read-only; the
    # reference is the same run's uninterrupted export, the session's (`exported`)
    trained = tmp_path / "run"
    shutil.copytree(cnn_run, trained)
    ref, cut = exported[0] / "model.onnx", tmp_path / "cut.onnx"
    args = cli("export", str(trained), "-o", str(cut), "--max-files", "8")
    kill_when(start(args), lambda: bool(partial_files(tmp_path)), "writing the model")
    assert not cut.exists()
    run(args)
    import onnx
    from onnx import numpy_helper

    a, b = onnx.load(str(ref)), onnx.load(str(cut))  # the same graph and weights (names may differ per export)
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    wa, wb = ([numpy_helper.to_array(t) for t in m.graph.initializer] for m in (a, b))
    assert len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))
    assert partial_files(tmp_path) == []
