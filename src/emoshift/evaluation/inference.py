"""Batched inference shared by evaluation, prediction and distillation (teacher logits).

The saved model's family (:func:`emoshift.models.families.family_for_info`) says how its inputs are read and
batched: spectrogram models see the centred 3-second crop (``features.crop_s``) of the cached log-mel; waveform
models see up to ``MAX_SECONDS`` of audio (centred), batched by length so little is padded. A fold ensemble (:class:`emoshift.models.ensemble.Ensemble`) predicts
the mean of its members' probabilities; its logits are the log of that mean (``softmax`` gives it back). A
dimensional model's "logits" are its outputs ``(N, T)`` on the run's ``target_range``; an ensemble's, their mean.
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
from emoshift.models.ensemble import Ensemble
from emoshift.models.families import MAX_SECONDS, family_for_info, is_dimensional, num_outputs

__all__ = [
    "MAX_SECONDS",
    "LogitsMemo",
    "default_device",
    "ensemble_probabilities",
    "logits_for_utterances",
    "predict_waveform",
    "prepare_waveform",
    "softmax",
]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


Scored = tuple[list[Utterance], np.ndarray, list[Skipped]]  # kept utterances, logits (N, C), skipped ones


class LogitsMemo:
    """Logits one process already computed, by saved model (model.json's ``config_fingerprint``) and the exact
    utterances asked for. A speaker cross-validation run (:mod:`emoshift.training.folds`) hands one to each
    fold's evaluation and to the pooled one, so each fold model scores each corpus once (the pooled
    out-of-fold predictions and the fold ensemble reuse the folds' own logits, bit for bit)."""

    def __init__(self) -> None:
        self._scored: dict[tuple[str, tuple[str, ...]], Scored] = {}

    @staticmethod
    def _key(info: dict[str, Any], utterances: Sequence[Utterance]) -> tuple[str, tuple[str, ...]] | None:
        fingerprint = info.get("config_fingerprint")
        return (str(fingerprint), tuple(u.id for u in utterances)) if fingerprint else None

    def get(self, info: dict[str, Any], utterances: Sequence[Utterance]) -> Scored | None:
        key = self._key(info, utterances)
        return self._scored.get(key) if key else None

    def put(self, info: dict[str, Any], utterances: Sequence[Utterance], scored: Scored) -> None:
        key = self._key(info, utterances)
        if key:
            self._scored[key] = scored


def logits_for_utterances(
    model: Any,
    info: dict[str, Any],
    utterances: Sequence[Utterance],
    *,
    cache_dir: str | Path,
    batch_size: int = 64,
    device: torch.device | None = None,
    progress: bool = False,
    desc: str = "predicting",
    memo: LogitsMemo | None = None,
) -> tuple[list[Utterance], np.ndarray, list[Skipped]]:
    """Logits ``(N, C)`` for the utterances that could be read, plus the skipped ones with reasons; with
    ``memo``, a single model's logits for the same utterances are computed once."""
    if isinstance(model, Ensemble):
        kept, mean, _, skipped = ensemble_probabilities(
            model, utterances, cache_dir=cache_dir, batch_size=batch_size, device=device, progress=progress, desc=desc,
            memo=memo,
        )
        if is_dimensional(info):  # the mean of the members' outputs is the ensemble's output
            return kept, mean, skipped
        with np.errstate(divide="ignore"):  # a label no member predicts: probability 0, logit -inf
            return kept, np.log(mean), skipped
    known = memo.get(info, utterances) if memo is not None else None
    if known is not None:
        return known
    device = device or default_device()
    if isinstance(model, nn.Module):
        model.to(device).eval()
    family = family_for_info(info)
    with progress_bar(len(utterances), desc, enabled=progress) as advance:
        scored = family.logits(
            model,
            info,
            utterances,
            cache_dir=str(cache_dir),
            batch_size=batch_size,
            device=device,
            advance=advance,
            progress=progress,
        )
    if memo is not None:
        memo.put(info, utterances, scored)
    return scored


def ensemble_probabilities(
    ensemble: Ensemble,
    utterances: Sequence[Utterance],
    *,
    cache_dir: str | Path,
    batch_size: int = 64,
    device: torch.device | None = None,
    progress: bool = False,
    desc: str = "predicting",
    memo: LogitsMemo | None = None,
) -> tuple[list[Utterance], np.ndarray, list[np.ndarray], list[Skipped]]:
    """(utterances every member could read, mean probability ``(N, C)``, each member's ``(N, C)``, skipped).

    A dimensional ensemble's members give outputs ``(N, T)``, averaged as they are (no softmax)."""
    per_member: list[dict[str, np.ndarray]] = []
    skipped: dict[str, Skipped] = {}
    for i, (model, info) in enumerate(ensemble.members):
        kept, logits, bad = logits_for_utterances(
            model, info, utterances, cache_dir=cache_dir, batch_size=batch_size, device=device,
            progress=progress, desc=f"{desc} (fold {i})", memo=memo,
        )
        values = logits if is_dimensional(info) else softmax(logits)
        per_member.append({u.id: row for u, row in zip(kept, values, strict=True)})
        skipped.update({s.path: s for s in bad})
    common = [u for u in utterances if all(u.id in m for m in per_member)]
    members = [np.stack([m[u.id] for u in common]) if common else np.zeros((0, 0)) for m in per_member]
    mean = np.mean(members, axis=0) if common else np.zeros((0, num_outputs(ensemble.members[0][1])))
    return common, mean, members, list(skipped.values())


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
def predict_waveform(model: Any, info: dict[str, Any], wave: np.ndarray, sr: int) -> dict[str, float]:
    """Class probabilities for one waveform (any sample rate, mono or (S, channels)); an ensemble averages its
    members' probabilities. A dimensional model gives ``{target: value}`` on its ``target_range``."""
    names = info["targets"] if is_dimensional(info) else info["labels"]
    if isinstance(model, Ensemble):
        each = [predict_waveform(m, m_info, wave, sr) for m, m_info in model.members]
        return {lab: float(np.mean([p[lab] for p in each])) for lab in names}
    x = prepare_waveform(wave, sr, info)
    if isinstance(model, nn.Module):
        x = x.to(next(model.parameters()).device)
    logits = family_for_info(info).predict(model, x)  # (1, C)
    if is_dimensional(info):
        return {t: float(v) for t, v in zip(names, logits[0].double().cpu().numpy(), strict=True)}
    probs = torch.softmax(logits.double(), dim=-1)[0].cpu().numpy()
    return {lab: float(p) for lab, p in zip(info["labels"], probs, strict=True)}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax ``(N, C)``; a logit of -inf (probability 0) stays 0."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
