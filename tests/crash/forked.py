"""The kill tests' processes, forked from a server that has imported emoshift's training stack once.

A fresh ``python -m emoshift train`` spends 10-15 s of a loaded CI core importing torch, Lightning and what they
import (Lightning's version checks import torchmetrics, which imports transformers and matplotlib) before it does
anything; the kill tests start about twenty such processes. Here each is a child of a multiprocessing
*forkserver* that imported those modules once per test worker: a real process with its own pid, killed with
SIGKILL like any other, that then runs the same ``emoshift`` entry point (or ``python -c`` script) as the
command would. What is on disk when it dies, and what the rerun makes of it, is what the tests check; how the
process was started is not part of that.

Only the imports are shared: the server starts no thread and opens no file of a run, so a child starts as a
fresh interpreter would, with the modules already in memory. This module imports nothing heavy itself, so that
unpickling its child function in the server costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import sys
import tempfile
from typing import Any

# What the server imports before it forks: the CLI and every entry point the kill tests run (train, study,
# export; the feature and embedding caches), and Lightning, torch and transformers under them.
PRELOAD = [
    "emoshift.cli",
    "emoshift.training.train",
    "emoshift.training.fit",
    "emoshift.study",
    "emoshift.deploy.export",
    "emoshift.features.cache",
    "emoshift.features.embedding_cache",
    "emoshift.models.ssl",
]

_context: Any = None


def _forkserver() -> Any:
    global _context
    if _context is None:
        from multiprocessing import forkserver

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        # the server is a fresh interpreter: it finds this module (the child function) and emoshift through the
        # test run's own sys.path, passed as PYTHONPATH while it starts
        before = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            forkserver.ensure_running()
        finally:
            if before is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = before
        _context = context
    return _context


def _child(args: list[str], env: dict[str, str], stderr_path: str) -> None:
    """In the forked child: the environment, stdout to /dev/null, stderr to a file, then the command's code."""
    os.environ.clear()
    os.environ.update(env)
    err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(err, 2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    if args[:2] == ["-m", "emoshift"]:
        sys.argv = ["emoshift", *args[2:]]
        # __main__'s spec as `python -m emoshift` has it: Lightning's DDP launcher starts the other ranks as
        # `python -m <__main__.__spec__.name> ARGS` (a fresh interpreter each)
        sys.modules["__main__"].__spec__ = importlib.util.find_spec("emoshift.__main__")
        from emoshift.cli import main

        main()
    elif args[0] == "-c":
        sys.argv = ["-c", *args[2:]]
        exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
    else:
        raise ValueError(f"not a command this launcher runs: {args}")


class _Stderr:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()


class Forked:
    """What the kill tests use of :class:`subprocess.Popen` (poll, wait, send_signal, returncode, stderr), for
    ``[sys.executable, "-m", "emoshift", ...]`` or ``[sys.executable, "-c", SCRIPT, ...]`` run as a forked child."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        if args[0] != sys.executable:
            raise ValueError(f"not a Python command: {args}")
        fd, self._stderr_path = tempfile.mkstemp(prefix="emoshift-kill-", suffix=".stderr")
        os.close(fd)
        self.stderr = _Stderr(self._stderr_path)
        self._process = _forkserver().Process(target=_child, args=(list(args[1:]), env, self._stderr_path))
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise TimeoutError(f"pid {self.pid} still running after {timeout} s")
        return self._process.exitcode

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.unlink(self._stderr_path)
