"""One writer per output folder: an exclusive ``flock`` on ``FOLDER/.lock``.

``emoshift train`` and ``emoshift study`` take it for their output folder (:func:`holds_folder`, a decorator,
or :func:`exclusive` as a context manager). A second command on the same folder refuses at once with one line
naming the folder and the holder's pid and command (:class:`FolderBusyError`, exit 2). The lock is the kernel's:
it dies with the process that holds it, so a crashed (even SIGKILLed) holder never leaves the folder stuck. The
``.lock`` file names who has it; a holder that finishes deletes it while still holding the lock, and a taker
that got the lock of a file deleted meanwhile (not the one at the path any more) lets go and takes the new one,
so a finished run holds no ``.lock`` and two takers never both hold one. A killed holder's file stays, naming
it, until the next taker.
Taking an output folder deletes the temp files a killed writer left there (:func:`~emoshift.core.io.remove_temp_files`).

A process pool forked by the holder inherits the lock: its workers call :func:`die_with_parent` so that they
end with the holder instead of keeping its lock after a crash.

Processes the holder starts to work for it (Lightning's DDP workers re-run the same command) are let through:
a lock held by this process's parent counts as held. The same process taking the same folder again (a study
training its experiments) is a no-op. Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import remove_temp_files

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # folder -> depth, for this process

F = TypeVar("F", bound=Callable[..., Any])


class FolderBusyError(EmoshiftError):
    """Another emoshift process writes to the folder this one was asked to write to."""


def _holder(f: Any) -> tuple[int | None, str]:
    """(pid, command) written in an open lock file, or (None, '') when unreadable."""
    f.seek(0)
    text = f.read().decode("utf-8", "replace").strip()
    pid_text, _, command = text.partition(" ")
    return (int(pid_text), command) if pid_text.isdigit() else (None, "")


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike[str], *, wait: bool = False) -> Iterator[None]:
    """Hold ``folder``'s lock for the block; :class:`FolderBusyError` if another process holds it, or with
    ``wait`` (a cache build: the second builder then finds the first one's work) until it lets go."""
    path = Path(folder).resolve()
    if fcntl is None or path in _held:
        _held[path] = _held.get(path, 0) + 1
        try:
            yield
        finally:
            _held[path] -= 1
            if not _held[path]:
                del _held[path]
        return
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_NAME
    while True:
        f = open(lock, "a+b")  # noqa: SIM115  (closed below, or by the with that follows)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with f:
                pid, command = _holder(f)
            if pid is None or pid != os.getppid():  # our parent's lock: we work for it (DDP)
                who = f"pid {pid}" + (f": {command}" if command else "") if pid else "another process"
                raise FolderBusyError(
                    f"{path} is in use by another emoshift command ({who}); wait for it to finish "
                    "or choose another output folder"
                ) from None
            yield
            return
        if _is_at(f, lock):
            break
        f.close()  # its holder deleted it as we waited: take the file at the path now
    with f:
        f.truncate(0)
        f.write(f"{os.getpid()} {' '.join(sys.argv)}\n".encode())
        f.flush()
        if not wait:  # an output folder now ours alone: a killed writer's temp files are stale
            remove_temp_files(path)
        _held[path] = 1
        try:
            yield
        finally:
            del _held[path]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)  # while still held: nobody can be holding the file at the path meanwhile
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _is_at(f: Any, path: Path) -> bool:
    """Whether the open file ``f`` is still the file at ``path`` (not deleted, nor replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def holds_folder(argument: str) -> Callable[[F], F]:
    """Decorate a function so that it runs holding the lock of its ``argument`` (a folder path)."""

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args: Any, **kwargs: Any) -> Any:
            folder = signature.bind(*args, **kwargs).arguments[argument]
            with exclusive(folder):
                return fn(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return wrap


def die_with_parent(parent: int) -> None:
    """In a forked worker: have the kernel SIGKILL this process when its parent ends (Linux; elsewhere a no-op).

    Without it a pool worker outlives a SIGKILLed parent (waiting on a queue nobody writes to) and keeps every
    lock the parent held, inherited across fork. ``parent``: the parent's pid, passed from before the fork.
    """
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before the prctl took effect
        os._exit(1)
