"""Batched inference shared by evaluation, prediction and distillation (teacher logits).

The saved model's family (:func:`emoshift.models.family_of`) says how its inputs are read and batched:
spectrogram models see the centred 3-second crop (``features.crop_s``) of the cached log-mel; waveform models
see up to ``MAX_SECONDS`` of audio (centred), batched by length so little is padded.

What the outputs are is the record's task (:mod:`emoshift.core.task`): a categorical model's raw outputs are
logits and its values probabilities; a dimensional model's raw outputs are its values, ratings ``(N, T)`` on the
run's ``target_range``. A fold ensemble (:class:`emoshift.models.ensemble.Ensemble`) combines its members'
values (mean probability, or mean output); its raw outputs are given back from that (the log of the mean
probability, so ``softmax`` gives it again).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoshift.config.features import FeatureConfig
from emoshift.core.audio import resample, trim_silence
from emoshift.core.progress import progress as progress_bar
from emoshift.core.record import ModelRecord
from emoshift.core.task import softmax
from emoshift.corpora.base import Skipped, Utterance
from emoshift.models import family_of
from emoshift.models.ensemble import Ensemble
from emoshift.models.families import MAX_SECONDS

__all__ = [
    "MAX_SECONDS",
    "OutputsMemo",
    "default_device",
    "ensemble_values",
    "predict_waveform",
    "prepare_waveform",
    "raw_outputs",
    "softmax",
]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def raw_outputs(
    model: Any,
    info: ModelRecord,
    utterances: Sequence[Utterance],
    *,
    cache_dir: str | Path,
    batch_size: int = 64,
    device: torch.device | None = None,
    progress: bool = False,
    desc: str = "predicting",
) -> tuple[list[Utterance], np.ndarray, list[Skipped]]:
    """Raw outputs ``(N, K)`` (logits, or values) for the utterances that could be read, plus the skipped ones
    with reasons."""
    if isinstance(model, Ensemble):
        kept, combined, _, skipped = ensemble_values(
            model, utterances, cache_dir=cache_dir, batch_size=batch_size, device=device, progress=progress, desc=desc
        )
        return kept, info.task_kind.raw(combined), skipped
    device = device or default_device()
    if isinstance(model, nn.Module):
        model.to(device).eval()
    family = family_of(info.model, info.mode)
    with progress_bar(len(utterances), desc, enabled=progress) as advance:
        return family.outputs(
            model,
            info,
            utterances,
            cache_dir=str(cache_dir),
            batch_size=batch_size,
            device=device,
            advance=advance,
            progress=progress,
        )


def ensemble_values(
    ensemble: Ensemble,
    utterances: Sequence[Utterance],
    *,
    cache_dir: str | Path,
    batch_size: int = 64,
    device: torch.device | None = None,
    progress: bool = False,
    desc: str = "predicting",
    memo: OutputsMemo | None = None,
    calibrated: bool = True,
) -> tuple[list[Utterance], np.ndarray, list[np.ndarray], list[Skipped]]:
    """(utterances every member could read, the combined values ``(N, K)``, each member's ``(N, K)``, skipped):
    mean probability, or a dimensional ensemble's mean output (:meth:`emoshift.core.task.Task.combine`).
    ``memo``: outputs of the members (by their run folders) already computed in this process are reused.
    Each member's probabilities are its own calibrated ones (its ``temperature``; ``calibrated=False``: as
    the networks give them): a fold ensemble calibrates each member, see :mod:`emoshift.training.calibrate`."""
    per_member: list[dict[str, np.ndarray]] = []
    skipped: dict[str, Skipped] = {}
    first = ensemble.members[0][1]
    for i, ((model, info), path) in enumerate(zip(ensemble.members, ensemble.paths, strict=True)):
        kept, raw, bad = (memo or OutputsMemo(enabled=False)).outputs(
            path, model, info, utterances, cache_dir=cache_dir, batch_size=batch_size, device=device,
            progress=progress, desc=f"{desc} (fold {i})",
        )
        values = info.values(raw, calibrated=calibrated)
        per_member.append({u.id: row for u, row in zip(kept, values, strict=True)})
        skipped.update({s.path: s for s in bad})
    common = [u for u in utterances if all(u.id in m for m in per_member)]
    members = [np.stack([m[u.id] for u in common]) if common else np.zeros((0, 0)) for m in per_member]
    combined = first.task_kind.combine(members) if common else np.zeros((0, first.num_outputs))
    return common, combined, members, list(skipped.values())


class OutputsMemo:
    """Raw outputs already computed in this process, by (the model's run folder, utterance id).

    A k-fold run scores each fold model when the fold is trained (its test speakers, the other corpora); the
    pooled evaluation that follows runs the same fold models on the same utterances (out of fold, and the fold
    ensemble on the other corpora). ``training.folds`` hands one memo to both, so each fold model scores each
    utterance once. Only models loaded from a finished run folder are memoised: the weights on disk are what the
    key names, and nothing writes them after the run is done. ``enabled=False`` memoises nothing.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._rows: dict[tuple[str, str], np.ndarray] = {}
        self._skipped: dict[tuple[str, str], Skipped] = {}
        self.computed = 0  # utterances run through a model (what the memo did not have): for tests and logs

    def outputs(
        self, run_dir: str | Path, model: Any, info: ModelRecord, utterances: Sequence[Utterance], **kwargs: Any
    ) -> tuple[list[Utterance], np.ndarray, list[Skipped]]:
        """What :func:`raw_outputs` gives for ``utterances``, computing only those not already memoised."""
        if not self.enabled:
            self.computed += len(utterances)
            return raw_outputs(model, info, utterances, **kwargs)
        key = str(Path(run_dir).resolve())
        todo = [u for u in utterances if (key, u.id) not in self._rows and (key, u.id) not in self._skipped]
        if todo:
            self.computed += len(todo)
            kept, raw, bad = raw_outputs(model, info, todo, **kwargs)
            self._rows.update({(key, u.id): row for u, row in zip(kept, raw, strict=True)})
            by_path = {b.path: b for b in bad}
            done = {u.id for u in kept}
            for u in todo:
                if u.id not in done and u.path in by_path:
                    self._skipped[(key, u.id)] = by_path[u.path]
        kept = [u for u in utterances if (key, u.id) in self._rows]
        raw = np.stack([self._rows[(key, u.id)] for u in kept]) if kept else np.zeros((0, info.num_outputs))
        skipped = {self._skipped[(key, u.id)].path: self._skipped[(key, u.id)]
                   for u in utterances if (key, u.id) in self._skipped}
        return kept, raw, list(skipped.values())


def prepare_waveform(wave: np.ndarray, sr: int, info: ModelRecord) -> torch.Tensor:
    """One waveform -> the model's input with batch dim: ``(1, 1, n_mels, T)`` or ``(1, S)``."""
    fcfg = FeatureConfig.model_validate(info.features)
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim == 2:  # (S, channels) -> mono
        w = w.mean(axis=1)
    w = resample(w, sr, fcfg.sample_rate)
    if fcfg.trim_silence:
        w = trim_silence(w, fcfg.sample_rate, top_db=fcfg.trim_top_db)
    return family_of(info.model, info.mode).prepare_input(w, fcfg)


@torch.no_grad()
def predict_waveform(model: Any, info: ModelRecord, wave: np.ndarray, sr: int) -> dict[str, float]:
    """The values for one waveform (any sample rate, mono or (S, channels)), by output name: class
    probabilities, or a dimensional model's ``{target: value}`` on its ``target_range``. An ensemble combines
    its members' values."""
    names, task = info.outputs, info.task_kind
    if isinstance(model, Ensemble):
        each = [predict_waveform(m, m_info, wave, sr) for m, m_info in model.members]
        combined = task.combine([np.array([[p[n] for n in names]]) for p in each])[0]
        return {n: float(v) for n, v in zip(names, combined, strict=True)}
    x = prepare_waveform(wave, sr, info)
    if isinstance(model, nn.Module):
        x = x.to(next(model.parameters()).device)
    raw = family_of(info.model, info.mode).predict(model, x)  # (1, K)
    values = info.values(raw.double().cpu().numpy())[0]
    return {n: float(v) for n, v in zip(names, values, strict=True)}
