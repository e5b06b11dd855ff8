"""Inference with torch on the same graph the exporter traces (:class:`emoshift.deploy.graph.ServingModel`), so
``--backend torch`` and ``--backend onnx`` score the same windows the same way.

``precision="float64"`` runs a float64 copy of the graph: the exporter's reference for how far float32
arithmetic alone moves the network's outputs (:mod:`emoshift.deploy.export`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.deploy.meta import LazyBackend, ModelMeta

PRECISIONS = ("float32", "float64")


class TorchBackend(LazyBackend):
    name = "torch"

    def __init__(
        self, runs: Sequence[str | os.PathLike[str]], *, threads: int | None = None, precision: str = "float32"
    ) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.runs = [Path(r) for r in runs]
        self.threads = threads
        self.precision = precision
        if precision == "float64":
            self.name = "torch-float64"

    def _open(self) -> tuple[Any, ModelMeta]:
        import torch

        from emoshift.deploy.graph import build_serving_model, member_runs

        if self.threads:
            torch.set_num_threads(self.threads)
        model, info = build_serving_model(self.runs)
        if self.precision == "float64":
            model = model.double()
        return model, ModelMeta.from_info(info, members=len(member_runs(self.runs)))

    def preload(self, handle: Any, meta: ModelMeta) -> None:
        """Use an already loaded model (a float64 backend takes a float64 copy of it)."""
        import copy

        super().preload(copy.deepcopy(handle).double() if self.precision == "float64" else handle, meta)

    def values(self, waves: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        import torch

        model = self._load()
        dtype = np.float64 if self.precision == "float64" else np.float32
        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=dtype))  # (B, S)
        with torch.inference_mode():
            if self.meta.input_kind == "waveform":
                m = torch.ones(x.shape, dtype=torch.long) if mask is None else torch.from_numpy(np.asarray(mask, np.int64))
                out = model(x, m)
            else:
                out = model(x)
        last = out[-1] if self.precision == "float64" else out[-1].float()
        return last.numpy()  # type: ignore[no-any-return]  # probabilities (B, C) or values (B, T)
