"""Emotion over time: a file is scored in windows, or on the speech segments voice activity detection finds.

``score(backend, blocks, Segmentation(...))`` streams 16 kHz blocks (:mod:`emoshift.deploy.audio_stream`) and
returns a :class:`FileScore`: one :class:`Segment` per window or speech piece (start, end, label, probabilities) and
the file-level label, the duration-weighted mean of the segments' probabilities. Memory holds one window (plus one
decoded block) at a time, whatever the file's length.

- ``window`` (default): windows of ``window_s`` every ``hop_s`` (defaults: the model's training crop and a third
  of it); a last window ends at the file's end so the tail is scored. A file no longer than one window is scored
  whole, its leading and trailing silence trimmed first when the model was trained so (as its training clips were).
- ``vad``: Silero VAD speech spans; a span longer than the window is cut into equal pieces no longer than it.
  Non-speech is not scored; a file without speech is an error ("no speech").
- ``speech_check`` (``emoshift predict`` and the service turn it on): in ``window``/``none`` mode the VAD runs
  alongside the windows, and a file in which it finds no speech is refused as "no speech" instead of labelled
  (white noise, a hum, a constant).
- ``none``: as ``window``, but only the file-level result is reported.

A dimensional model (``meta.task``) gives values instead of probabilities: each segment's ``values`` (``{target:
value}``) and, for the file, their duration-weighted mean; ``label`` is None and ``probabilities`` empty.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoshift.core.audio import AudioError, trim_bounds
from emoshift.deploy.audio_stream import SR, Blocks, LevelMeter
from emoshift.deploy.backend import Backend
from emoshift.deploy.meta import BackendError

MODES = ("window", "vad", "none")


class TooLongError(AudioError):
    """The audio is longer than the limit (the service answers 422)."""


class NoSpeechError(AudioError):
    """Voice activity detection found no speech (the service answers 422)."""


@dataclass(frozen=True)
class Segmentation:
    mode: str = "window"
    window_s: float | None = None  # None: the model's training crop
    hop_s: float | None = None  # None: window / 3
    vad_threshold: float = 0.5
    batch_size: int = 16
    max_seconds: float | None = None
    speech: bool = False  # also run VAD in window mode (for the timeline's shading)
    speech_check: bool = False  # window/none mode: no speech found by the VAD -> NoSpeechError, not a label
    # The check is lenient on purpose: "no speech" only when not even 250 ms reach this speech probability (white
    # noise, hum and DC peak near 0.05; quiet synthetic "sad" voices and band-limited vowels near 0.8 with no
    # 250 ms run over 0.5), so that quiet speech is labelled rather than refused.
    check_threshold: float = 0.3

    def sizes(self, model_window_s: float) -> tuple[int, int]:
        if self.mode not in MODES:
            raise BackendError(f"segments must be one of {', '.join(MODES)}, got {self.mode!r}")
        window = self.window_s if self.window_s is not None else model_window_s
        hop = self.hop_s if self.hop_s is not None else window / 3
        if not (window > 0 and hop > 0) or not (math.isfinite(window) and math.isfinite(hop)):
            raise BackendError(f"--window and --hop must be positive seconds, got {window:g} and {hop:g}")
        if window < 0.1:
            raise BackendError(f"--window must be at least 0.1 s, got {window:g}")
        return max(1, round(window * SR)), max(1, round(hop * SR))


@dataclass
class Segment:
    start_s: float
    end_s: float
    label: str | None  # None for a dimensional model
    probabilities: dict[str, float]
    values: dict[str, float] | None = None  # a dimensional model's {target: value}

    def to_dict(self) -> dict[str, Any]:
        span = {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3)}
        if self.values is not None:
            return {**span, **{k: round(v, 6) for k, v in self.values.items()}}
        return {**span, "label": self.label, "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


@dataclass
class FileScore:
    label: str | None  # None for a dimensional model
    probabilities: dict[str, float]
    duration_s: float
    segments: list[Segment]
    mode: str
    speech: list[tuple[float, float]] = field(default_factory=list)  # VAD spans (s), when VAD ran
    values: dict[str, float] | None = None  # a dimensional model's file-level {target: value}


def _probs_of(backend: Backend, waves: list[np.ndarray]) -> np.ndarray:
    """(n, C) probabilities for waveforms of possibly different lengths, in as few calls as allowed."""
    lengths = {len(w) for w in waves}
    if len(lengths) == 1:
        return backend.values(np.stack(waves))  # (n, S)
    if backend.meta.input_kind == "waveform":  # pad and mask
        n = max(lengths)
        x = np.zeros((len(waves), n), np.float32)
        mask = np.zeros((len(waves), n), np.int64)
        for i, w in enumerate(waves):
            x[i, : len(w)], mask[i, : len(w)] = w, 1
        return backend.values(x, mask)
    return np.concatenate([backend.values(w[None]) for w in waves])  # the CNN graph takes no mask


class _Batcher:
    def __init__(self, backend: Backend, size: int) -> None:
        self.backend, self.size = backend, max(1, size)
        self.spans: list[tuple[int, int]] = []
        self.waves: list[np.ndarray] = []
        self.probs: list[np.ndarray] = []

    def add(self, start: int, end: int, wave: np.ndarray) -> None:
        self.spans.append((start, end))
        self.waves.append(wave)
        if len(self.waves) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.waves:
            self.probs.append(_probs_of(self.backend, self.waves))
            self.waves = []

    def segments(self, labels: tuple[str, ...], *, rated: bool = False) -> list[Segment]:
        """One segment per span; ``labels`` name the output columns (a dimensional model's: its targets)."""
        self.flush()
        probs = np.concatenate(self.probs) if self.probs else np.zeros((0, len(labels)), np.float32)
        if rated:
            return [Segment(a / SR, b / SR, None, {}, {t: float(v) for t, v in zip(labels, p, strict=True)})
                    for (a, b), p in zip(self.spans, probs, strict=True)]
        return [
            Segment(a / SR, b / SR, labels[int(np.argmax(p))], {lab: float(v) for lab, v in zip(labels, p, strict=True)})
            for (a, b), p in zip(self.spans, probs, strict=True)
        ]


def _check_length(samples: int, limit: float | None) -> None:
    if limit is not None and samples > limit * SR:
        raise TooLongError(f"too long: more than {limit:g} s of audio")


def _windows(blocks: Blocks, w: int, h: int, batch: _Batcher, meter: LevelMeter, seg: Segmentation,
             vad: Any, trim: tuple[bool, float]) -> None:
    buf, buf_start, next_start, last_end = np.zeros(0, np.float32), 0, 0, 0
    for block in blocks():
        meter.feed(block)
        _check_length(meter.samples, seg.max_seconds)
        if vad is not None:
            vad.feed(block)
        buf = np.concatenate([buf, block])
        while next_start + w <= buf_start + len(buf):
            off = next_start - buf_start
            batch.add(next_start, next_start + w, buf[off : off + w].copy())
            last_end, next_start = next_start + w, next_start + h
        keep_from = min(next_start, buf_start + len(buf) - w)  # the last window may end at the file's end
        if keep_from > buf_start:
            buf, buf_start = buf[keep_from - buf_start :], keep_from
    meter.check()
    total = meter.samples
    if total <= w:  # the whole file is one input, trimmed as training clips were
        a, b = trim_bounds(buf, SR, top_db=trim[1]) if trim[0] else (0, len(buf))
        batch.add(a, b, buf[a:b].copy())
    elif last_end < total:
        batch.add(total - w, total, buf[len(buf) - w :].copy())


def _pieces(spans: list[tuple[int, int]], w: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        k = max(1, math.ceil((b - a) / w))
        edges = np.linspace(a, b, k + 1).round().astype(int)
        out.extend((int(x), int(y)) for x, y in zip(edges[:-1], edges[1:], strict=True) if y > x)
    return out


def _extract(blocks: Blocks, pieces: list[tuple[int, int]]) -> Iterator[tuple[int, int, np.ndarray]]:
    """The audio of sorted, non-overlapping ``pieces`` (samples), keeping only what the next piece needs."""
    buf, buf_start, i = np.zeros(0, np.float32), 0, 0
    for block in blocks():
        buf = np.concatenate([buf, block])
        end = buf_start + len(buf)
        while i < len(pieces) and pieces[i][1] <= end:
            a, b = pieces[i]
            yield a, b, buf[a - buf_start : b - buf_start].copy()
            i += 1
        drop = (pieces[i][0] if i < len(pieces) else end) - buf_start
        if drop > 0:
            buf, buf_start = buf[drop:], buf_start + drop


def score(backend: Backend, blocks: Blocks, seg: Segmentation | None = None) -> FileScore:
    """Score a stream of 16 kHz blocks; raises AudioError (empty, silent, too long, no speech, unreadable)."""
    from emoshift.deploy import vad as vad_mod

    seg = seg or Segmentation()
    meta = backend.meta
    w, h = seg.sizes(meta.window_s)
    batch, meter = _Batcher(backend, seg.batch_size), LevelMeter()
    speech: list[tuple[int, int]] = []
    if seg.mode == "vad":
        probs = vad_mod.SpeechProbabilities()
        for block in blocks():
            meter.feed(block)
            _check_length(meter.samples, seg.max_seconds)
            probs.feed(block)
        meter.check()
        speech = vad_mod.speech_spans(probs.finish(), meter.samples, threshold=seg.vad_threshold)
        if not speech:
            raise NoSpeechError("no speech: voice activity detection found none")
        for a, b, wave in _extract(blocks, _pieces(speech, w)):
            batch.add(a, b, wave)
    else:
        v = vad_mod.SpeechProbabilities() if seg.speech or seg.speech_check else None
        _windows(blocks, w, h, batch, meter, seg, v, (meta.trim_silence, meta.trim_top_db))
        if v is not None:
            frame_probs = v.finish()
            speech = vad_mod.speech_spans(frame_probs, meter.samples, threshold=seg.vad_threshold)
            if seg.speech_check and not vad_mod.speech_spans(
                frame_probs, meter.samples, threshold=seg.check_threshold
            ):
                raise NoSpeechError("no speech: voice activity detection found none")
    rated = meta.task_kind.rated  # values per target, not probabilities and a label
    names = meta.outputs  # the output columns: labels, or a dimensional model's targets
    segments = batch.segments(names, rated=rated)
    weights = np.array([s.end_s - s.start_s for s in segments], np.float64)  # (n,)
    probs_mat = np.array([[(s.values if s.values is not None else s.probabilities)[k] for k in names]
                          for s in segments], np.float64)
    mean = (weights[:, None] * probs_mat).sum(axis=0) / max(weights.sum(), 1e-12)  # (C,) or (T,)
    by_name = {k: float(v) for k, v in zip(names, mean, strict=True)}
    return FileScore(
        label=None if rated else meta.labels[int(np.argmax(mean))],
        probabilities={} if rated else by_name,
        duration_s=meter.samples / SR,
        segments=segments,
        mode=seg.mode,
        speech=[(a / SR, b / SR) for a, b in speech],
        values=by_name if rated else None,
    )
