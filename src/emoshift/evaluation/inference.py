"""Batched inference shared by evaluation, prediction and distillation (teacher logits).

The saved model's family (:func:`emoshift.models.families.family_for_info`) says how its inputs are read and
batched: spectrogram models see the centred 3-second crop (``features.crop_s``) of the cached log-mel; waveform
models see up to ``MAX_SECONDS`` of audio (centred), batched by length so little is padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoshift.core.audio import resample, trim_silence
from emoshift.core.progress import progress as progress_bar
from emoshift.corpora.base import Skipped, Utterance
from emoshift.features.logmel import FeatureConfig
from emoshift.models.families import MAX_SECONDS, family_for_info

__all__ = ["MAX_SECONDS", "default_device", "logits_for_utterances", "predict_waveform", "prepare_waveform", "softmax"]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def logits_for_utterances(
    model: nn.Module,
    info: dict[str, Any],
    utterances: Sequence[Utterance],
    *,
    cache_dir: str | Path,
    batch_size: int = 64,
    device: torch.device | None = None,
    progress: bool = False,
    desc: str = "predicting",
) -> tuple[list[Utterance], np.ndarray, list[Skipped]]:
    """Logits ``(N, C)`` for the utterances that could be read, plus the skipped ones with reasons."""
    device = device or default_device()
    model.to(device).eval()
    family = family_for_info(info)
    with progress_bar(len(utterances), desc, enabled=progress) as advance:
        return family.logits(
            model,
            info,
            utterances,
            cache_dir=str(cache_dir),
            batch_size=batch_size,
            device=device,
            advance=advance,
            progress=progress,
        )


def prepare_waveform(wave: np.ndarray, sr: int, info: dict[str, Any]) -> torch.Tensor:
    """One waveform -> the model's input with batch dim: ``(1, 1, n_mels, T)`` or ``(1, S)``."""
    fcfg = FeatureConfig.model_validate(info["features"])
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim == 2:  # (S, channels) -> mono
        w = w.mean(axis=1)
    w = resample(w, sr, fcfg.sample_rate)
    if fcfg.trim_silence:
        w = trim_silence(w, fcfg.sample_rate, top_db=fcfg.trim_top_db)
    return family_for_info(info).prepare_input(w, fcfg)


@torch.no_grad()
def predict_waveform(model: nn.Module, info: dict[str, Any], wave: np.ndarray, sr: int) -> dict[str, float]:
    """Class probabilities for one waveform (any sample rate, mono or (S, channels))."""
    x = prepare_waveform(wave, sr, info)
    device = next(model.parameters()).device
    logits = family_for_info(info).predict(model, x.to(device))  # (1, C)
    probs = torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()
    return {lab: float(p) for lab, p in zip(info["labels"], probs, strict=True)}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
