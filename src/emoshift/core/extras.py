"""The optional extras: which ``pip install 'emoshift[...]'`` provides which import, and the one error a command
raises when its extra is missing.

The core install (``pip install emoshift``) holds what needs no deep-learning framework: corpus scan and index,
synth, ``predict`` through an exported ONNX model, ``audit``, ``compare`` and the study report (their figures
need the ``plots`` extra: :func:`optional` leaves them out with a note). Everything else is an extra (``pyproject.toml`` ``[project.optional-dependencies]``; the README says why the split is where it is)::

    with needs("emoshift train"):          # at the import site of what the extra provides
        from emoshift.training.train import train

turns a missing ``torch`` into one line, ``emoshift train needs the 'train' extra (torch is not installed):
pip install 'emoshift[train]'`` (a :class:`MissingExtraError`: the CLI prints it, exit 2), never an ImportError
traceback. A module this table does not know (a bug, a broken install) keeps its ImportError and traceback.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from emoshift.core.errors import EmoshiftError

# extra -> the top-level import names its requirements provide (pyproject.toml lists the distributions; the
# names differ: scikit-learn -> sklearn, python-multipart -> python_multipart, mlflow-skinny -> mlflow, onnx-ir ->
# onnx_ir; starlette, huggingface_hub and pandas come with fastapi, transformers and audformat).
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": (
        "torch", "lightning", "transformers", "huggingface_hub", "safetensors", "sklearn", "opensmile", "onnx",
        "onnxscript", "onnx_ir",
    ),
    "serve": ("fastapi", "starlette", "uvicorn", "python_multipart"),
    "plots": ("matplotlib",),
    "vad": ("silero_vad",),
    "track": ("mlflow", "sqlalchemy", "alembic", "tensorboard"),
    "tune": ("optuna", "optuna_integration"),
    "slurm": ("submitit",),
    # corpus sources (emoshift/corpora/sources.py)
    "hf": ("datasets",),
    "lhotse": ("lhotse",),
    "audformat": ("audformat", "pandas"),  # pandas: audformat's tables
}


class MissingExtraError(EmoshiftError):
    """A command needs an extra that is not installed; the message names it and the command that installs it."""

    def __init__(self, extra: str, module: str, what: str | None = None) -> None:
        self.extra, self.module = extra, module
        fix = f"pip install 'emoshift[{extra}]'"
        super().__init__(
            f"{what} needs the '{extra}' extra ({module} is not installed): {fix}"
            if what
            else f"the '{extra}' extra is not installed ({module} is missing): {fix}"
        )


def extra_of(module: str) -> str | None:
    """The extra that provides ``module`` (a dotted name; its top-level package decides), or None."""
    top = module.split(".")[0]
    return next((extra for extra, names in EXTRAS.items() if top in names), None)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it)."""
    if sys.modules.get(module) is not None:  # imported already: some packages (optuna_integration) replace
        return True  # their module object with one whose __spec__ is None, on which find_spec raises
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import, or a broken spec
        return False


def require(extra: str, what: str | None = None) -> None:
    """Raise :class:`MissingExtraError` unless every module ``extra`` provides is importable (a check before a
    command starts work it could not finish)."""
    for module in EXTRAS[extra]:
        if not installed(module):
            raise MissingExtraError(extra, module, what)


_NOTED: set[tuple[str, str]] = set()


def optional(extra: str, what: str) -> bool:
    """Whether ``extra`` is installed, for a part of a command that can be left out (the audit's plots without
    the ``plots`` extra); when it is not, a one-line note (once per process) says what is skipped and the fix."""
    if all(installed(module) for module in EXTRAS[extra]):
        return True
    if (extra, what) not in _NOTED:
        _NOTED.add((extra, what))
        logging.getLogger("emoshift").warning(
            "note: %s skipped (the '%s' extra is not installed): pip install 'emoshift[%s]'", what, extra, extra
        )
    return False


@contextmanager
def needs(what: str | None = None) -> Iterator[None]:
    """Around an import site: a ModuleNotFoundError of a module an extra provides becomes the one-line
    :class:`MissingExtraError` naming that extra; any other ImportError propagates unchanged."""
    try:
        yield
    except ModuleNotFoundError as e:
        err = missing_extra(e, what)
        if err is None:
            raise
        raise err from None


def missing_extra(err: ImportError, what: str | None = None) -> MissingExtraError | None:
    """The :class:`MissingExtraError` for an ImportError of a module an extra provides, else None."""
    name = getattr(err, "name", None)
    extra = extra_of(name) if isinstance(err, ModuleNotFoundError) and name else None
    return None if extra is None or name is None else MissingExtraError(extra, name.split(".")[0], what)
