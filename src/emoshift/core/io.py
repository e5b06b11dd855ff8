"""Atomic file writes: write to a temporary file in the same folder, fsync it, then rename over the target.

A crash never leaves a half-written file behind; readers see the old file or the new one. The new file gets
the permissions a plain ``open()`` would give it (0666 less the umask), not ``mkstemp``'s 0600. Every atomic
write in the package goes through :func:`atomic_open`; :func:`fsync_dir` makes a rename itself durable.
A full disk ends a write with :class:`DiskFullError` ("no space left on device while writing PATH"): the
temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from emoshift.core.errors import EmoshiftError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class DiskFullError(EmoshiftError):
    """The disk (or quota) filled up while writing a file; nothing half-written is left behind."""


def disk_full(error: BaseException, path: str | os.PathLike[str]) -> DiskFullError | None:
    """A :class:`DiskFullError` naming ``path`` when ``error`` is ENOSPC/EDQUOT, else None."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"no space left on device while writing {path}")
    return None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the permissions open() would
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        full = disk_full(e, target)
        if full is not None:
            raise full from e
        raise


def remove_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files :func:`atomic_open` leaves when its process is killed (``.NAME.*.tmp``) under
    ``folder``, skipping sub-folders that have their own ``.lock`` (caches clean up after themselves). Only
    for a folder this process holds the lock of: nobody else can be writing there. Returns what was deleted."""
    root, gone = Path(folder), []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not (here / d / ".lock").exists()]
        for name in filenames:
            if name.startswith(".") and name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    (here / name).unlink()
                    gone.append(here / name)
    return gone


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, error: type[Exception]) -> Any:
    """The JSON ``path`` holds; ``error`` (one line, naming the file) when it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: hostile nesting
        raise error(f"{path}: cannot be read ({type(e).__name__})") from None
    except json.JSONDecodeError as e:
        raise error(f"{path} is not valid JSON: {e.msg} (line {e.lineno})") from None


def atomic_write_csv(path: str | os.PathLike[str], fieldnames: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(fieldnames))
        w.writeheader()
        for row in rows:
            w.writerow(row)


def atomic_save_npy(path: str | os.PathLike[str], arr: Any) -> None:
    """``np.save`` to ``path`` atomically (no pickled objects: ``allow_pickle=False``)."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make the renames in ``directory`` durable (POSIX); a no-op where a directory cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_fingerprint(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(size in bytes, modification time in ns): changes whenever the file is rewritten; OSError if unreadable."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
