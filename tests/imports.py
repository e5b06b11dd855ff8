"""What importing modules in a fresh interpreter loads: the torch-free checks of tests/test_architecture.py and
tests/core/test_rundir.py.

Each check needs an interpreter that has imported nothing else, and starting one per module costs its imports
(numpy, pydantic, matplotlib: about 2 s each). Loading is monotone: if importing every module of a list, one
after the other in one interpreter, leaves torch out of ``sys.modules``, then importing any one of them alone
does too. So the list is checked in one interpreter first, and a module is checked alone only when the list
loads something it must not (to name the culprit)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache

HEAVY = ("torch", "transformers", "lightning")


def _loaded(modules: tuple[str, ...]) -> list[str]:
    code = (f"import importlib, json, sys\nfor m in {list(modules)!r}: importlib.import_module(m)\n"
            f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


@cache
def _together(modules: tuple[str, ...]) -> list[str]:
    return _loaded(modules)


def heavy_loaded(module: str, together: tuple[str, ...] = ()) -> list[str]:
    """Which of HEAVY importing ``module`` alone in a fresh interpreter loads. ``together``: the whole list it
    belongs to, checked in one interpreter once per test process; ``module`` alone only if that list loads one."""
    if together and not _together(tuple(together)):
        return []
    return _loaded((module,))
