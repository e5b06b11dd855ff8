"""Choosing a backend for a run: ``auto`` takes ``RUN/model.onnx`` when it exists, torch otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from emoshift.core.extras import require
from emoshift.deploy.meta import BackendError, ModelMeta

BACKENDS = ("auto", "onnx", "torch")
ONNX_NAME = "model.onnx"


class Backend(Protocol):
    name: str

    @property
    def meta(self) -> ModelMeta: ...

    def values(self, waves: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``(B, K)``: what ``meta.output`` names, class probabilities or a rated model's values (``meta.task``)."""
        ...


def onnx_path(run: str | os.PathLike[str]) -> Path:
    return Path(run) / ONNX_NAME


def open_backend(run: str | os.PathLike[str], backend: str = "auto", *, threads: int | None = None) -> Backend:
    """The backend for ``run`` (a run directory, or a ``.onnx`` file for ``onnx``/``auto``)."""
    if backend not in BACKENDS:
        raise BackendError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    path = Path(run)
    if not path.exists():
        raise BackendError(f"{path} not found")
    if path.is_file() and path.suffix == ".onnx":
        if backend == "torch":
            raise BackendError(f"{path} is an ONNX file; --backend torch needs a run directory")
        from emoshift.deploy.onnx_backend import OnnxBackend

        return OnnxBackend(path, threads=threads)
    from emoshift.core.rundir import RunDir

    info = RunDir.of(path).info()  # one-line RunError when it is not a finished run
    exported = onnx_path(path)
    if backend == "onnx" or (backend == "auto" and exported.is_file()):
        from emoshift.deploy.onnx_backend import OnnxBackend

        onnx = OnnxBackend(exported, threads=threads)
        fp = onnx.meta.config_fingerprint
        if fp is not None and info.config_fingerprint not in (None, fp):
            raise BackendError(f"{exported} was exported from another run; export again (emoshift export {path})")
        return onnx
    # the torch graph (or a family's own path): the training stack, which the core install lacks
    require("train", "--backend torch" if backend == "torch" else f"{path} (no {ONNX_NAME}: the torch backend)")
    from emoshift.models.weights import family_of_record

    if not family_of_record(info).exportable:  # no serving graph: the family's own path
        from emoshift.deploy.family_backend import FamilyBackend

        return FamilyBackend(path)
    from emoshift.deploy.torch_backend import TorchBackend

    return TorchBackend([path], threads=threads)
