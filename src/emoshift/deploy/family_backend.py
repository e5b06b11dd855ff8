"""Inference for a model the serving graph cannot hold (a family with ``exportable = False``, such as the
openSMILE functionals with a linear head): each window goes through the family's own waveform path
(:func:`emoshift.evaluation.inference.predict_waveform`), a fold ensemble averaging its members."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.record import ModelRecord
from emoshift.deploy.meta import SAMPLE_RATE, LazyBackend, ModelMeta


class FamilyBackend(LazyBackend):
    name = "torch"  # the non-ONNX backend, as far as the user is concerned

    def __init__(self, run: str | os.PathLike[str]) -> None:
        super().__init__()
        self.run = Path(run)
        self._info: ModelRecord | None = None

    def _open(self) -> tuple[Any, ModelMeta]:
        from emoshift.models.weights import load_model

        model, self._info = load_model(self.run, device="cpu")
        return model, ModelMeta.from_info(self._info, members=len(self._info.members or [None]))

    def values(self, waves: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``(B, C)`` (or a dimensional model's ``(B, T)``) for 16 kHz windows ``(B, S)``; a mask marks each
        window's real samples."""
        from emoshift.evaluation.inference import predict_waveform

        model = self._load()
        assert self._info is not None  # set by _load
        out = []
        for i, wave in enumerate(np.asarray(waves, dtype=np.float32)):
            n = int(np.asarray(mask[i]).sum()) if mask is not None else len(wave)
            probs = predict_waveform(model, self._info, wave[:n], SAMPLE_RATE)
            out.append([probs[name] for name in self.meta.outputs])  # labels, or a dimensional model's targets
        return np.asarray(out, dtype=np.float64)  # the family computes in float64: keep it
