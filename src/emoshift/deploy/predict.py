"""Predict emotions for new audio with a finished run: ``Predictor(RUN).predict_file(path)`` or
``.predict_waveform(wave, sr)``. A file that cannot be read is reported with its reason; the rest go on.

The model runs through :mod:`emoshift.deploy`: ``RUN/model.onnx`` with onnxruntime when it exists (``backend=
"auto"``; nothing imports torch on that path), else the torch graph. A file longer than the model's window is
scored in windows or on voice-activity segments; each :class:`Prediction` carries its ``segments`` and the
file-level label (the duration-weighted mean of the segments' probabilities).

A dimensional run (model.json ``task: dimensional``) predicts ratings instead: each :class:`Prediction` holds
``values`` (``{target: value}`` for the targets it was trained on, on its ``target_range``), per file and per
segment; ``label`` is None and ``to_dict`` gives the targets as keys (``{"arousal": .., "valence": ..}``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.audio import AUDIO_EXTENSIONS, AudioError


@dataclass
class Prediction:
    path: str
    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    duration_s: float | None = None
    segments: list[Any] = field(default_factory=list)  # emoshift.deploy.segments.Segment
    speech: list[tuple[float, float]] = field(default_factory=list)
    targets: tuple[str, ...] = ()  # a dimensional model's targets (empty: categorical)
    values: dict[str, float] = field(default_factory=dict)  # dimensional: {target: value}; {} on error
    uncertain: bool = False  # its top probability is below min_confidence: no label (probabilities kept)

    @property
    def status(self) -> str:
        """``ok`` (labelled), ``uncertain`` (below ``min_confidence``: probabilities, no label), ``no speech``
        (the VAD found none: answered, not labelled) or ``skipped``."""
        if self.error is None:
            return "uncertain" if self.uncertain else "ok"
        return "no speech" if self.error.startswith("no speech") else "skipped"

    def to_dict(self) -> dict[str, Any]:
        if self.targets:
            head: dict[str, Any] = {t: self.values.get(t) for t in self.targets}
        else:
            head = {"label": self.label, "probabilities": self.probabilities}
        return {"path": self.path, "status": self.status, **head, "error": self.error,
                "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
                "segments": [s.to_dict() for s in self.segments]}


class Predictor:
    """Opens the backend lazily on first use (nothing heavy happens in the constructor)."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        device: str | None = None,
        backend: str = "auto",
        segmentation: Any = None,  # emoshift.deploy.segments.Segmentation; None = windows with the model's sizes
        min_confidence: float | None = None,  # a file whose top probability is below it is answered "uncertain"
    ) -> None:
        from emoshift.evaluation.calibration import check_min_confidence

        check_min_confidence(min_confidence)
        self.min_confidence = min_confidence
        self.run_dir = Path(run_dir)
        self.device = device  # kept for callers; the serving graph runs on CPU
        self.backend_name = backend
        self.segmentation = segmentation
        self._backend: Any = None

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from emoshift.deploy.backend import open_backend

            self._backend = open_backend(self.run_dir, self.backend_name)
        return self._backend

    @property
    def labels(self) -> list[str]:
        return list(self.backend.meta.labels)

    @property
    def task(self) -> str:
        return str(self.backend.meta.task)

    @property
    def targets(self) -> list[str]:
        """A dimensional model's targets, in output order ([] for a categorical model)."""
        return list(self.backend.meta.targets)

    @property
    def outputs(self) -> list[str]:
        """What each prediction reports: the labels' probabilities, or a dimensional model's targets."""
        return list(self.backend.meta.outputs)

    def _predict(self, name: str, blocks: Any) -> Prediction:
        from emoshift.deploy.segments import score
        from emoshift.evaluation.calibration import confident

        targets = tuple(self.targets)
        try:
            r = score(self.backend, blocks, self.segmentation)
        except AudioError as e:
            return Prediction(name, None, error=str(e), targets=targets)
        uncertain = not targets and r.label is not None and not confident(r.probabilities, self.min_confidence)
        return Prediction(name, None if uncertain else r.label, r.probabilities, duration_s=r.duration_s,
                          segments=r.segments, speech=r.speech, targets=targets, values=r.values or {},
                          uncertain=uncertain)

    def predict_waveform(self, wave: np.ndarray, sr: int) -> dict[str, float]:
        """File-level probabilities for one waveform (any rate, mono or ``(S, channels)``); a dimensional
        model's ``{target: value}``."""
        from emoshift.deploy.audio_stream import array_blocks

        p = self._predict("waveform", array_blocks(wave, sr))
        if p.error:
            raise AudioError(p.error)
        return p.values if p.targets else p.probabilities

    def predict_file(self, path: str | os.PathLike[str]) -> Prediction:
        from emoshift.deploy.audio_stream import file_blocks

        try:
            blocks = file_blocks(path)
        except AudioError as e:
            return Prediction(str(path), None, error=str(e), targets=tuple(self.targets))
        return self._predict(str(path), blocks)

    def predict_paths(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[Prediction]:
        for p in expand_paths(paths):
            if isinstance(p, Prediction):
                p.targets = tuple(self.targets)
                yield p
            else:
                yield self.predict_file(p)


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path | Prediction]:
    """Files as given; folders expanded (recursively) to their audio files; missing paths as errors."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                yield Prediction(str(p), None, error="folder holds no audio files")
            yield from found
        elif p.is_file() or p.is_symlink():  # a broken or looping link: predict_file says which
            yield p
        else:
            yield Prediction(str(p), None, error="not found")


def display_names(paths: list[str]) -> list[str]:
    """Names a person can read: each path relative to the files' common folder (just the name when unique)."""
    if not paths:
        return []
    names = [Path(p).name for p in paths]
    if len(set(names)) == len(names):
        return names
    try:
        common = Path(os.path.commonpath([str(Path(p).absolute()) for p in paths]))
    except ValueError:  # different drives
        return paths
    return [str(Path(p).absolute().relative_to(common)) if Path(p).absolute() != common else Path(p).name
            for p in paths]
