"""Predict emotions for new audio with a finished run: ``Predictor(RUN).predict_file(path)`` or
``.predict_waveform(wave, sr)``. A file that cannot be read is reported with its reason; the rest go on."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.audio import AUDIO_EXTENSIONS, AudioError, check_not_silent, read


@dataclass
class Prediction:
    path: str
    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "label": self.label, "probabilities": self.probabilities, "error": self.error}


class Predictor:
    """Loads the model lazily on first use (nothing heavy happens in the constructor)."""

    def __init__(self, run_dir: str | os.PathLike[str], *, device: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.device = device
        self._model: Any = None
        self._info: dict[str, Any] | None = None

    def _load(self) -> tuple[Any, dict[str, Any]]:
        if self._model is None:
            from emoshift.evaluation.inference import default_device
            from emoshift.models.weights import load_model

            self._model, self._info = load_model(self.run_dir, device=self.device or default_device())
        assert self._info is not None
        return self._model, self._info

    @property
    def labels(self) -> list[str]:
        return list(self._load()[1]["labels"])

    def predict_waveform(self, wave: np.ndarray, sr: int) -> dict[str, float]:
        from emoshift.evaluation.inference import predict_waveform

        model, info = self._load()
        return predict_waveform(model, info, wave, sr)

    def predict_file(self, path: str | os.PathLike[str]) -> Prediction:
        try:
            wave, sr = read(path)
            check_not_silent(wave, sr)  # the same reason a corpus scan gives
        except AudioError as e:
            return Prediction(str(path), None, error=str(e))
        probs = self.predict_waveform(wave, sr)
        return Prediction(str(path), max(probs, key=probs.__getitem__), probs)

    def predict_paths(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[Prediction]:
        for p in expand_paths(paths):
            yield p if isinstance(p, Prediction) else self.predict_file(p)


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path | Prediction]:
    """Files as given; folders expanded (recursively) to their audio files; missing paths as errors."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                yield Prediction(str(p), None, error="folder holds no audio files")
            yield from found
        elif p.is_file():
            yield p
        else:
            yield Prediction(str(p), None, error="not found")
