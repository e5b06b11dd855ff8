"""Inference on an exported ``model.onnx`` with onnxruntime and numpy only (no torch, no transformers).

``OnnxBackend(path).values(waves, mask)``: ``(B, S)`` float32 16 kHz waveforms (and a ``(B, S)`` 0/1 mask
for waveform models) -> ``(B, C)`` probabilities (a dimensional model: its ``(B, T)`` values). The session is created on first use; ``run`` is thread-safe, so
one backend serves a pool of workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.deploy.meta import META_KEY, BackendError, LazyBackend, ModelMeta


class OnnxBackend(LazyBackend):
    name = "onnx"

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.threads = threads

    def _open(self) -> tuple[Any, ModelMeta]:
        import onnxruntime as ort

        if not self.path.is_file():
            raise BackendError(f"{self.path} not found: export the run first (emoshift export RUN)")
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a bad file
            raise BackendError(f"{self.path}: not a usable ONNX model ({str(e).splitlines()[0][:200]})") from None
        raw = session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise BackendError(f"{self.path} was not written by `emoshift export` (no {META_KEY} metadata)")
        return session, ModelMeta.from_json(raw)

    def values(self, waves: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``(B, S)`` float32 -> ``(B, C)`` float32; ``mask`` (B, S) marks real samples (waveform models)."""
        session = self._load()
        feeds: dict[str, np.ndarray] = {"waveform": np.ascontiguousarray(waves, dtype=np.float32)}
        if self.meta.input_kind == "waveform":
            m = np.ones(waves.shape, np.int64) if mask is None else np.asarray(mask, dtype=np.int64)
            feeds["mask"] = m
        return np.asarray(session.run([self.meta.output], feeds)[0], dtype=np.float32)  # (B, C) or (B, T)
