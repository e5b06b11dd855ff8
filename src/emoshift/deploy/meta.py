"""What inference needs to know about a model, without torch: labels, input kind, window, silence trimming.

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

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("waveform", "mask") if self.input_kind == "waveform" else ("waveform",)

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
        )

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "labels": list(self.labels), "sample_rate": SAMPLE_RATE})

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        d = json.loads(text)
        d.pop("sample_rate", None)
        d["labels"] = tuple(d["labels"])
        return cls(**d)


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
