"""Voice activity detection with Silero VAD, run through onnxruntime directly (no torch).

The ``silero-vad`` package ships its models as files; its Python API imports torch, so only the file is used:
``silero_vad/data/silero_vad_16k_sequence.onnx`` (many 32 ms frames per call, LSTM state carried between calls),
found without importing the package. :func:`speech_spans` is a port of silero's
``get_speech_timestamps_from_probs`` (threshold with hysteresis, minimum speech and silence durations, padding;
no maximum speech duration: long spans are cut into windows by the caller).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.extras import MissingExtraError, installed
from emoshift.deploy.meta import BackendError

FRAME = 512  # samples per VAD frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame each frame sees
MAX_FRAMES = 512  # frames per onnxruntime call (~16 s)
MODEL_FILE = "silero_vad_16k_sequence.onnx"


def available() -> bool:
    """Whether Silero VAD is installed (the ``vad`` extra); without it the speech check is off by default."""
    return installed("silero_vad")


def model_path(what: str = "voice activity detection") -> Path:
    spec = importlib.util.find_spec("silero_vad") if available() else None  # without its (torch) __init__
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("vad", "silero-vad", what)
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.is_file():
        raise BackendError(f"silero-vad is installed but {MODEL_FILE} is missing from it; reinstall silero-vad")
    return path


_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def _session() -> Any:
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            _SESSION = ort.InferenceSession(str(model_path()), opts, providers=["CPUExecutionProvider"])
    return _SESSION


class SpeechProbabilities:
    """Streaming: ``feed(block)`` with consecutive 16 kHz blocks, then ``finish()`` -> one probability per frame."""

    def __init__(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._rest = np.zeros(0, np.float32)
        self._probs: list[np.ndarray] = []
        self.samples = 0

    def _run(self, frames: np.ndarray) -> None:  # (n, FRAME)
        for i in range(0, len(frames), MAX_FRAMES):
            block = frames[i : i + MAX_FRAMES]
            contexts = np.empty((len(block), CONTEXT), np.float32)
            contexts[0] = self._context
            contexts[1:] = block[:-1, -CONTEXT:]
            self._context = block[-1, -CONTEXT:].copy()
            probs, self._h, self._c = _session().run(
                ["speech_probs", "hn", "cn"],
                {"input": np.concatenate([contexts, block], axis=1), "h": self._h, "c": self._c},
            )
            self._probs.append(np.asarray(probs, np.float32).reshape(-1))

    def feed(self, block: np.ndarray) -> None:
        self.samples += len(block)
        data = np.concatenate([self._rest, np.asarray(block, np.float32)])
        n = len(data) // FRAME
        if n:
            self._run(data[: n * FRAME].reshape(n, FRAME))
        self._rest = data[n * FRAME :]

    def finish(self) -> np.ndarray:
        if len(self._rest):
            last = np.zeros(FRAME, np.float32)
            last[: len(self._rest)] = self._rest
            self._run(last[None])
            self._rest = np.zeros(0, np.float32)
        return np.concatenate(self._probs) if self._probs else np.zeros(0, np.float32)


def speech_spans(
    probs: Iterable[float],
    n_samples: int,
    *,
    sr: int = 16_000,
    threshold: float = 0.5,
    min_speech_ms: float = 250,
    min_silence_ms: float = 100,
    pad_ms: float = 30,
) -> list[tuple[int, int]]:
    """Frame probabilities -> speech spans ``[(start, end), ...]`` in samples (silero's state machine)."""
    neg = max(threshold - 0.15, 0.01)
    min_speech, min_silence, pad = (sr * ms / 1000 for ms in (min_speech_ms, min_silence_ms, pad_ms))
    spans: list[list[int]] = []
    triggered, start, temp_end = False, 0, 0
    for i, p in enumerate(probs):
        cur = FRAME * i
        if p >= threshold and temp_end:
            temp_end = 0
        if p >= threshold and not triggered:
            triggered, start = True, cur
            continue
        if p < neg and triggered:
            temp_end = temp_end or cur
            if cur - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                spans.append([start, temp_end])
            triggered, temp_end = False, 0
    if triggered and n_samples - start > min_speech:
        spans.append([start, n_samples])
    for i, span in enumerate(spans):  # padding, halving the gap where two spans are closer than 2 pads
        if i == 0:
            span[0] = int(max(0, span[0] - pad))
        if i < len(spans) - 1:
            gap = spans[i + 1][0] - span[1]
            if gap < 2 * pad:
                span[1] += int(gap // 2)
                spans[i + 1][0] = int(max(0, spans[i + 1][0] - gap // 2))
            else:
                span[1] = int(min(n_samples, span[1] + pad))
                spans[i + 1][0] = int(max(0, spans[i + 1][0] - pad))
        else:
            span[1] = int(min(n_samples, span[1] + pad))
    return [(int(a), int(b)) for a, b in spans]
