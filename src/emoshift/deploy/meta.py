"""What inference needs to know about a model, without torch: task, labels or targets, input kind, window,
silence trimming.

:class:`ModelMeta` is the serving view of the model record (:class:`emoshift.core.record.ModelRecord`,
:meth:`ModelMeta.from_info`), carried whole in an exported ONNX file's metadata (:meth:`ModelMeta.to_json`) so
that ``model.onnx`` is usable on its own with onnxruntime, without its run directory. What the outputs are is its
task's (:mod:`emoshift.core.task`): :attr:`ModelMeta.outputs` names the columns (labels, or a rated model's
targets on ``target_range``), :attr:`ModelMeta.output` the graph output a backend returns (``probabilities`` or
``values``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from emoshift.core.errors import EmoshiftError
from emoshift.core.record import ModelRecord
from emoshift.core.task import CATEGORICAL, Task, task_named

SAMPLE_RATE = 16_000  # every exported graph takes 16 kHz mono float32
META_KEY = "emoshift"  # ONNX metadata_props key holding this record as JSON


class BackendError(EmoshiftError):
    """A model cannot be used for inference as asked (one-line message)."""


@dataclass(frozen=True)
class ModelMeta:
    labels: tuple[str, ...]
    input_kind: str  # "spectrogram" | "waveform"
    model: str  # registry name, e.g. "resnet18"
    window_s: float  # the model's input length: its training crop; default analysis window for long audio
    trim_silence: bool  # training trimmed each clip's leading/trailing silence (a file shorter than the window is)
    trim_top_db: float
    members: int = 1  # ensemble size (1 = a single run)
    config_fingerprint: str | None = None
    task: str = CATEGORICAL.name  # a name of emoshift.core.task.TASKS
    targets: tuple[str, ...] = ()  # dimensional: the rated dimensions, in output order
    target_range: tuple[float, float] | None = None  # dimensional: the scale of the outputs

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("waveform", "mask") if self.input_kind == "waveform" else ("waveform",)

    @property
    def task_kind(self) -> Task:
        return task_named(self.task)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of the model's output columns: its labels, or a rated model's targets."""
        return tuple(self.task_kind.output_names(self.labels, self.targets))

    @property
    def output(self) -> str:
        """The graph output a backend returns: ``probabilities`` (B, C), or a rated model's ``values`` (B, T)."""
        return self.task_kind.output

    @property
    def graph_outputs(self) -> tuple[str, ...]:
        return self.task_kind.graph_outputs

    @classmethod
    def from_info(cls, info: ModelRecord, *, members: int = 1) -> ModelMeta:
        """The serving view of ``info``."""
        feats = info.features
        if int(feats.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise BackendError(f"the model expects {feats['sample_rate']} Hz audio; only 16 kHz models are served")
        window = info.window_s if info.window_s is not None else feats.get("crop_s", 3.0)  # a family may set its own
        return cls(
            labels=tuple(info.labels),
            input_kind=str(info.input_kind),
            model=info.model,
            window_s=float(window),
            trim_silence=bool(feats.get("trim_silence", True)),
            trim_top_db=float(feats.get("trim_top_db", 40.0)),
            members=members,
            config_fingerprint=info.config_fingerprint,
            task=info.task_kind.name,
            targets=tuple(info.targets or ()),
            target_range=_pair(info.target_range),
        )

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "labels": list(self.labels), "targets": list(self.targets),
                           "target_range": None if self.target_range is None else list(self.target_range),
                           "sample_rate": SAMPLE_RATE})

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        d = json.loads(text)
        d.pop("sample_rate", None)
        d["labels"] = tuple(d["labels"])
        d["targets"] = tuple(d.get("targets") or ())  # files exported before dimensional models lack these
        d["target_range"] = _pair(d.get("target_range"))
        return cls(**d)


def _pair(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


class LazyBackend:
    """A backend that opens its model on first use, once, under a lock (nothing heavy in the constructor);
    subclasses say how in :meth:`_open`, which returns the loaded handle and the model's facts."""

    name: str

    def __init__(self) -> None:
        self._handle: Any = None
        self._meta: ModelMeta | None = None
        self._lock = threading.Lock()

    def _open(self) -> tuple[Any, ModelMeta]:
        raise NotImplementedError

    def _load(self) -> Any:
        with self._lock:
            if self._handle is None:
                self._handle, self._meta = self._open()
        return self._handle

    def preload(self, handle: Any, meta: ModelMeta) -> None:
        """Use an already loaded model (the exporter checks the very module it traced)."""
        self._handle, self._meta = handle, meta

    @property
    def meta(self) -> ModelMeta:
        self._load()
        assert self._meta is not None
        return self._meta
