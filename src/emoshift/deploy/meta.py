"""What inference needs to know about a model, without torch: task, labels or targets, input kind, window,
silence trimming.

A categorical model's outputs are probabilities over ``labels``; a dimensional model's (``task``
``dimensional``) are its values for ``targets`` (arousal, valence, dominance) on ``target_range``, and
``labels`` is empty. :attr:`ModelMeta.outputs` names the columns of either; :attr:`ModelMeta.output` names the
graph output a backend returns (``probabilities`` or ``values``).

Read from RUN/model.json (the torch backend) or from the ONNX file's metadata (the ONNX backend), so an exported
``model.onnx`` is usable on its own with onnxruntime.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from emoshift.core.errors import EmoshiftError

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
    task: str = "categorical"  # "categorical" | "dimensional"
    targets: tuple[str, ...] = ()  # dimensional: the rated dimensions, in output order
    target_range: tuple[float, float] | None = None  # dimensional: the scale of the outputs

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("waveform", "mask") if self.input_kind == "waveform" else ("waveform",)

    @property
    def dimensional(self) -> bool:
        return self.task == "dimensional"

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of the model's output columns: its targets (dimensional) or its labels."""
        return self.targets if self.dimensional else self.labels

    @property
    def output(self) -> str:
        """The graph output a backend returns: ``values`` (B, T) for dimensional, ``probabilities`` (B, C)."""
        return "values" if self.dimensional else "probabilities"

    @property
    def graph_outputs(self) -> tuple[str, ...]:
        return ("values",) if self.dimensional else ("logits", "probabilities")

    @classmethod
    def from_info(cls, info: dict[str, Any], *, members: int = 1) -> ModelMeta:
        feats = info.get("features", {})
        if int(feats.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise BackendError(f"the model expects {feats['sample_rate']} Hz audio; only 16 kHz models are served")
        return cls(
            labels=tuple(info["labels"]),
            input_kind=str(info["input_kind"]),
            model=str(info["model"]),
            window_s=float(info.get("window_s", feats.get("crop_s", 3.0))),  # a family may set its own
            trim_silence=bool(feats.get("trim_silence", True)),
            trim_top_db=float(feats.get("trim_top_db", 40.0)),
            members=members,
            config_fingerprint=info.get("config_fingerprint"),
            task=str(info.get("task", "categorical")),
            targets=tuple(info.get("targets") or ()),
            target_range=_pair(info.get("target_range")),
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
