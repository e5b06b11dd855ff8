"""Batched inference shared by evaluation, prediction and distillation (teacher logits).

Spectrogram models see the centred 3-second crop (``features.crop_s``) of the cached log-mel; waveform models
see up to ``MAX_SECONDS`` of audio (centred), batched by length so little is padded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoshift.core.audio import AudioError, crop_or_pad, load, resample, trim_silence
from emoshift.corpora.base import Skipped, Utterance
from emoshift.features.logmel import FeatureConfig, log_mel

MAX_SECONDS = 8.0


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(desc),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


@torch.no_grad()
def _forward(model: nn.Module, info: dict[str, Any], x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if info["input_kind"] == "waveform":
        return model(x, mask)
    return model(x)


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
    fcfg = FeatureConfig.model_validate(info["features"])
    kept: list[Utterance] = []
    skipped: list[Skipped] = []
    out: list[np.ndarray] = []
    t0 = time.time()
    if info["input_kind"] == "spectrogram":
        from emoshift.features.cache import FeatureCache

        by_corpus: dict[str, list[Utterance]] = {}
        for u in utterances:
            by_corpus.setdefault(u.corpus, []).append(u)
        frames = fcfg.frames_for(fcfg.crop_s)
        cache = FeatureCache(Path(cache_dir) / "features")
        with _progress(len(utterances), desc, progress) as bar:
            task = bar.add_task(desc, total=len(utterances), rate="")
            for corpus, utts in by_corpus.items():
                store = cache.build(corpus, utts, fcfg, progress=progress)
                skipped.extend(store.skipped)
                usable = [u for u in utts if u.id in store]
                for i in range(0, len(usable), batch_size):
                    chunk = usable[i : i + batch_size]
                    x = np.stack([crop_or_pad(store.get(u.id), frames, mode="center") for u in chunk])
                    xt = torch.from_numpy(x.astype(np.float32)).unsqueeze(1).to(device)  # (B, 1, n_mels, T)
                    out.append(_forward(model, info, xt, None).float().cpu().numpy())
                    kept.extend(chunk)
                    bar.update(task, advance=len(chunk), rate=f"{len(kept) / max(1e-9, time.time() - t0):.1f} files/s")
    else:
        waves: list[np.ndarray] = []
        for u in utterances:
            try:
                w = load(u.path, fcfg.sample_rate, trim=fcfg.trim_silence, trim_top_db=fcfg.trim_top_db)
            except AudioError as e:
                skipped.append(Skipped(u.path, str(e)))
                continue
            waves.append(crop_or_pad(w, int(MAX_SECONDS * fcfg.sample_rate), mode="center") if len(w) > MAX_SECONDS * fcfg.sample_rate else w)
            kept.append(u)
        order = np.argsort([len(w) for w in waves], kind="stable")
        logits = np.zeros((len(kept), len(info["labels"])), dtype=np.float32)
        from emoshift.data.bucketing import collate_waveforms

        with _progress(len(kept), desc, progress) as bar:
            task = bar.add_task(desc, total=len(kept), rate="")
            done = 0
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                wave, mask = collate_waveforms([waves[j] for j in idx])
                logits[idx] = _forward(model, info, wave.to(device), mask.to(device)).float().cpu().numpy()
                done += len(idx)
                bar.update(task, advance=len(idx), rate=f"{done / max(1e-9, time.time() - t0):.1f} files/s")
        out = [logits]
    return kept, (np.concatenate(out) if out else np.zeros((0, len(info["labels"])), np.float32)), skipped


def prepare_waveform(wave: np.ndarray, sr: int, info: dict[str, Any]) -> torch.Tensor:
    """One waveform -> the model's input with batch dim: ``(1, 1, n_mels, T)`` or ``(1, S)``."""
    fcfg = FeatureConfig.model_validate(info["features"])
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim == 2:  # (S, channels) -> mono
        w = w.mean(axis=1)
    w = resample(w, sr, fcfg.sample_rate)
    if fcfg.trim_silence:
        w = trim_silence(w, fcfg.sample_rate, top_db=fcfg.trim_top_db)
    if info["input_kind"] == "spectrogram":
        spec = crop_or_pad(log_mel(w, fcfg.sample_rate, fcfg), fcfg.frames_for(fcfg.crop_s), mode="center")
        return torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32))[None, None]
    if len(w) > MAX_SECONDS * fcfg.sample_rate:
        w = crop_or_pad(w, int(MAX_SECONDS * fcfg.sample_rate), mode="center")
    return torch.from_numpy(w)[None]


@torch.no_grad()
def predict_waveform(model: nn.Module, info: dict[str, Any], wave: np.ndarray, sr: int) -> dict[str, float]:
    """Class probabilities for one waveform (any sample rate, mono or (S, channels))."""
    x = prepare_waveform(wave, sr, info)
    device = next(model.parameters()).device
    mask = torch.ones(x.shape, dtype=torch.long, device=device) if info["input_kind"] == "waveform" else None
    probs = torch.softmax(_forward(model, info, x.to(device), mask).float(), dim=-1)[0].cpu().numpy()
    return {lab: float(p) for lab, p in zip(info["labels"], probs, strict=True)}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
