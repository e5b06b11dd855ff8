"""Inference with torch on the same graph the exporter traces (:class:`emoshift.deploy.graph.ServingModel`), so
``--backend torch`` and ``--backend onnx`` score the same windows the same way."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.deploy.meta import ModelMeta


class TorchBackend:
    name = "torch"

    def __init__(self, runs: Sequence[str | os.PathLike[str]], *, threads: int | None = None) -> None:
        self.runs = [Path(r) for r in runs]
        self.threads = threads
        self._model: Any = None
        self._meta: ModelMeta | None = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import torch

                from emoshift.deploy.graph import build_serving_model, member_runs

                if self.threads:
                    torch.set_num_threads(self.threads)
                model, info = build_serving_model(self.runs)
                self._meta = ModelMeta.from_info(info, members=len(member_runs(self.runs)))
                self._model = model
        return self._model

    @property
    def meta(self) -> ModelMeta:
        self._load()
        assert self._meta is not None
        return self._meta

    def probabilities(self, waves: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        import torch

        model = self._load()
        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))  # (B, S)
        with torch.inference_mode():
            if self.meta.input_kind == "waveform":
                m = torch.ones(x.shape, dtype=torch.long) if mask is None else torch.from_numpy(np.asarray(mask, np.int64))
                _, probs = model(x, m)
            else:
                _, probs = model(x)
        return probs.float().numpy()  # type: ignore[no-any-return]
