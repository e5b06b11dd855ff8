"""core.io: a write that fails at any point leaves the old file whole and no temp file; fsync; normal permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import emoshift.core.io as io_mod
from emoshift.core.io import (
    atomic_open,
    atomic_save_npy,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    file_fingerprint,
    fsync_dir,
    read_csv,
)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_exception_after_partial_writes_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.txt"
    target.write_text("old content\n")
    with pytest.raises(RuntimeError, match="crash"), atomic_open(target, "w") as f:
        f.write("new first half")
        f.flush()  # the partial bytes are on disk, in the temp file
        raise RuntimeError("crash")
    assert target.read_text() == "old content\n"
    assert _names(tmp_path) == ["data.txt"], "no temp file may be left behind"


def test_failed_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "data.json"
    atomic_write_json(target, {"v": 1})

    def no_rename(src: object, dst: object) -> None:
        raise OSError("simulated failure of os.replace")

    monkeypatch.setattr(io_mod.os, "replace", no_rename)
    with pytest.raises(OSError, match="os.replace"):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert _names(tmp_path) == ["data.json"]


def test_new_file_has_the_permissions_open_gives(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_data_is_fsynced_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.bin"
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(io_mod.os, "fsync", fsync)
    monkeypatch.setattr(io_mod.os, "replace", replace)
    io_mod.atomic_write_bytes(target, b"payload")
    assert events == ["fsync", "replace"]
    assert target.read_bytes() == b"payload"
    events.clear()
    fsync_dir(tmp_path)
    assert events == ["fsync"]


def test_creates_the_folder_and_round_trips(tmp_path: Path) -> None:
    atomic_write_csv(tmp_path / "a" / "t.csv", ["k", "v"], [{"k": "x", "v": 1}, {"k": "y,z", "v": 2}])
    assert read_csv(tmp_path / "a" / "t.csv") == [{"k": "x", "v": "1"}, {"k": "y,z", "v": "2"}]
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    atomic_save_npy(tmp_path / "a" / "x.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "x.npy"), arr)
    assert _names(tmp_path / "a") == ["t.csv", "x.npy"]
    with pytest.raises(ValueError):  # object arrays would need pickle: refused
        atomic_save_npy(tmp_path / "a" / "o.npy", np.array([{"a": 1}], dtype=object))
    assert _names(tmp_path / "a") == ["t.csv", "x.npy"]


def test_file_fingerprint_changes_when_the_file_is_rewritten(tmp_path: Path) -> None:
    p = tmp_path / "a.wav"
    p.write_bytes(b"1234")
    first = file_fingerprint(p)
    assert first[0] == 4
    os.utime(p, ns=(first[1] + 10**9, first[1] + 10**9))
    assert file_fingerprint(p) != first
    with pytest.raises(OSError):
        file_fingerprint(tmp_path / "missing.wav")


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_is_one_line_naming_the_path_and_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import errno

    from emoshift.core.errors import EmoshiftError
    from emoshift.core.io import DiskFullError

    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"v": 1})

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "write":  # the temp file takes some bytes, then the disk is full
        real_fdopen = os.fdopen

        class FillsUp:
            def __init__(self, f: Any) -> None:
                self.f, self.budget = f, 10

            def write(self, data: str) -> int:
                if len(data) > self.budget:
                    self.f.write(data[: self.budget])
                    self.f.flush()
                    full()
                self.budget -= len(data)
                return int(self.f.write(data))

            def __getattr__(self, name: str) -> Any:
                return getattr(self.f, name)

            def __enter__(self) -> FillsUp:
                return self

            def __exit__(self, *exc: object) -> None:
                self.f.close()

        monkeypatch.setattr(io_mod.os, "fdopen", lambda *a, **k: FillsUp(real_fdopen(*a, **k)))
    else:
        monkeypatch.setattr(io_mod.os, "fsync", full)
    with pytest.raises(DiskFullError) as info:
        atomic_write_json(target, {"v": 2, "pad": "x" * 100_000})
    monkeypatch.undo()
    assert isinstance(info.value, EmoshiftError)
    assert str(info.value) == f"no space left on device while writing {target}"
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert _names(tmp_path) == ["metrics.json"]


def test_other_os_errors_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def denied(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(io_mod.os, "fsync", denied)
    with pytest.raises(OSError, match="Input/output"):
        atomic_write_text(tmp_path / "x.txt", "x")
    assert _names(tmp_path) == []
