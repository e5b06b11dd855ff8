"""core.lock: one writer per folder, a clear refusal naming the holder, never stuck after a crash (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from emoshift.core.lock import LOCK_NAME, FolderBusyError, exclusive, holds_folder

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from emoshift.core.lock import exclusive
    with exclusive(sys.argv[1]):
        Path(sys.argv[2]).write_text("held")
        time.sleep(120)
    """
)


def start_holder(folder: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A process that holds ``folder``'s lock until killed (returns once it holds it)."""
    marker = tmp_path / f"held-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(marker)], env=env)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the holder did not start"
        time.sleep(0.02)
    return proc


def test_second_taker_refuses_naming_folder_and_pid(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    holder = start_holder(folder, tmp_path)
    try:
        with pytest.raises(FolderBusyError) as info, exclusive(folder):
            pass
        message = str(info.value)
        assert str(folder.resolve()) in message and f"pid {holder.pid}" in message
        assert "\n" not in message
    finally:
        holder.kill()
        holder.wait()


def test_sigkilled_holder_leaves_nothing_stuck(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    holder = start_holder(folder, tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (folder / LOCK_NAME).read_text().startswith(str(holder.pid))  # stale text, but no lock
    with exclusive(folder):
        assert (folder / LOCK_NAME).read_text().startswith(f"{os.getpid()} ")
    assert not (folder / LOCK_NAME).exists()  # released: a finished holder leaves no .lock


def test_same_process_may_nest_and_releases_after(tmp_path: Path) -> None:
    calls = []

    @holds_folder("out")
    def work(x: int, *, out: Path) -> None:
        calls.append(x)
        with exclusive(out):  # nested in the same process: fine
            calls.append(x + 1)

    work(1, out=tmp_path / "o")
    assert calls == [1, 2]
    holder = start_holder(tmp_path / "o", tmp_path)  # released: another process can take it now
    holder.kill()
    holder.wait()


def _cli(*args: str) -> tuple[int, str]:
    """``emoshift ARGS`` in this process (the lock's other holder is a real process): exit code, stderr."""
    from typer.testing import CliRunner

    from emoshift.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def test_train_and_study_refuse_a_busy_output_folder(synth_tiny: Path, tmp_path: Path) -> None:
    from tests.conftest import tiny_overrides

    out = tmp_path / "busy"
    holder = start_holder(out, tmp_path)
    try:
        sets = [a for s in tiny_overrides(synth_tiny, tmp_path / "cache") for a in ("--set", s)]
        train = _cli("train", "-q", "-o", str(out), *sets)
        study = _cli(
            "study", str(Path(__file__).parents[2] / "configs" / "study.yaml"), "--profile", "demo",
            "--only", "L2", "-o", str(out), "--corpus", f"ravdess={synth_tiny / 'ravdess'}",
            "--corpus", f"crema-d={synth_tiny / 'crema-d'}",
        )
    finally:
        holder.kill()
        holder.wait()
    for code, stderr in (train, study):
        assert code == 2, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert str(out.resolve()) in lines[0] and f"pid {holder.pid}" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing was written
