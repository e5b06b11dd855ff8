"""Inference with torch on the same graph the exporter traces (:class:`emoshift.deploy.graph.ServingModel`), so
``--backend torch`` and ``--backend onnx`` score the same windows the same way."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.deploy.meta import LazyBackend, ModelMeta


class TorchBackend(LazyBackend):
    name = "torch"

    def __init__(self, runs: Sequence[str | os.PathLike[str]], *, threads: int | None = None) -> None:
        super().__init__()
        self.runs = [Path(r) for r in runs]
        self.threads = threads

    def _open(self) -> tuple[Any, ModelMeta]:
        import torch

        from emoshift.deploy.graph import build_serving_model, member_runs

        if self.threads:
            torch.set_num_threads(self.threads)
        model, info = build_serving_model(self.runs)
        return model, ModelMeta.from_info(info, members=len(member_runs(self.runs)))

    def values(self, waves: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        import torch

        model = self._load()
        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))  # (B, S)
        with torch.inference_mode():
            if self.meta.input_kind == "waveform":
                m = torch.ones(x.shape, dtype=torch.long) if mask is None else torch.from_numpy(np.asarray(mask, np.int64))
                out = model(x, m)
            else:
                out = model(x)
        return out[-1].float().numpy()  # type: ignore[no-any-return]  # probabilities (B, C) or values (B, T)
