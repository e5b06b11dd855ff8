"""Session fixtures built once per test run, also when pytest-xdist workers run it (`make test`)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]) -> Any:
    """``build(folder)``'s value, built once per test run even across xdist workers (JSON-able; paths as strings).

    Under xdist every worker has its own base temp folder inside the run's; the first worker to get here takes
    a lock in that parent folder, builds, and writes the value beside the folder; the others wait on the lock and
    read it. A build that raises leaves no value, so the next worker to need it tries again (and fails the same).
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return json.loads(json.dumps(build(factory.mktemp(name)), default=str))
    # /tmp/pytest-of-USER/pytest-N: this run's base temp, the parent of every worker's
    shared = factory.getbasetemp().parent
    folder, value = shared / name, shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not value.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            folder.mkdir()
            result = json.dumps(build(folder), default=str)
            value.write_text(result)
    return json.loads(value.read_text())
