"""The exported graph, in torch: 16 kHz waveforms in, logits and probabilities out (the front end inside).

:class:`ServingModel` wraps one or more trained runs (a k-fold ensemble is a list of member runs) so that

    spectrogram family:  waveform (B, S) float32                    -> logits (B, C), probabilities (B, C)
    waveform family:     waveform (B, S) float32, mask (B, S) int64 -> logits (B, C), probabilities (B, C)

For spectrogram models the log-mel front end is :class:`DftLogMel`: the centred STFT of
:mod:`emoshift.features.logmel` written as a strided convolution with a windowed DFT basis (plain Conv and
MatMul, so it exports to ONNX without complex numbers or the STFT op), then the same Slaney filterbank,
``10 log10``, top-db clipping and per-utterance standardisation. An input shorter than the model's training crop
is padded with zero-valued frames up to the crop, exactly as training's ``crop_or_pad`` padded short clips.

The graph's outputs are the record's task's (:mod:`emoshift.core.task`, ``graph_outputs``): a categorical
model gives ``logits`` and ``probabilities``; an ensemble's probabilities are the mean of its members'
probabilities and its logits the mean of their logits (so ``probabilities`` is not ``softmax(logits)`` for an
ensemble of more than one member). A calibrated member's logits are divided by its temperature (model.json
``temperature``, :mod:`emoshift.training.calibrate`) before anything else: ``logits`` are the calibrated ones.
A dimensional model has one output, ``values`` ``(B, T)``: the head's raw
outputs on the run's ``target_range``, one column per target (an ensemble: the mean of its members').
This module needs torch (it is what the exporter traces and what ``--backend torch`` runs); the ONNX inference
path never imports it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from emoshift.config.features import FeatureConfig
from emoshift.core.errors import EmoshiftError
from emoshift.core.record import ModelRecord
from emoshift.features.logmel import AMIN, mel_filterbank


class ExportUnsupportedError(EmoshiftError, ValueError):
    """A model family that cannot be expressed as an ONNX graph (the message says why, in one line)."""


class DftLogMel(nn.Module):
    """``(B, S)`` waveforms at ``cfg.sample_rate`` -> ``(B, n_mels, T)`` log-mel dB, ``T >= min_frames``.

    Frames ``T = cfg.frames_for_samples(S)``; when that is fewer than ``min_frames`` the missing frames are 0 dB
    (training's zero padding of short clips). top_db is measured over the real frames only.
    """

    def __init__(self, cfg: FeatureConfig, *, min_frames: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        self.min_frames = int(min_frames)
        n_fft, win = cfg.fft_size, cfg.win_length
        window = np.zeros(n_fft)
        left = (n_fft - win) // 2  # torch.stft centres a shorter window in n_fft with zeros
        window[left : left + win] = 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(win) / win)  # periodic Hann
        k = np.arange(n_fft // 2 + 1)[:, None]  # (F, 1)
        n = np.arange(n_fft)[None, :]  # (1, n_fft)
        angle = 2 * math.pi * k * n / n_fft  # (F, n_fft)
        basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])  # (2F, n_fft)
        self.register_buffer("basis", torch.from_numpy(basis[:, None, :].astype(np.float32)), persistent=False)
        self.register_buffer("fb_t", torch.from_numpy(mel_filterbank(cfg).T.astype(np.float32)), persistent=False)
        self.basis: Tensor  # (2F, 1, n_fft)
        self.fb_t: Tensor  # (F, n_mels)

    def forward(self, wave: Tensor) -> Tensor:  # (B, S) -> (B, n_mels, T)
        n_fft, n_bins = self.cfg.fft_size, self.fb_t.shape[0]
        x = nn.functional.pad(wave[:, None, :], (n_fft // 2, n_fft // 2))  # (B, 1, S + n_fft)
        spec = nn.functional.conv1d(x, self.basis, stride=self.cfg.hop_length)  # (B, 2F, T)
        power = spec[:, :n_bins] ** 2 + spec[:, n_bins:] ** 2  # (B, F, T) = |X|^2
        if self.cfg.power != 2.0:
            power = power.pow(self.cfg.power / 2.0)
        mel = power.transpose(1, 2) @ self.fb_t  # (B, T, n_mels)
        db = 10.0 * torch.log10(mel.clamp(min=AMIN))  # (B, T, n_mels)
        if self.cfg.top_db is not None:
            peak = db.amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
            db = torch.maximum(db, peak - self.cfg.top_db)
        db = db.transpose(1, 2)  # (B, n_mels, T)
        if self.min_frames > 1:
            # Pad to at least min_frames with zeros, as training padded short clips: append min_frames zero
            # frames, then keep max(T, min_frames) of them (a data-dependent length the exporter keeps symbolic).
            pad = db.new_zeros(db.shape[0], db.shape[1], self.min_frames)
            keep = torch.sym_max(db.shape[2], self.min_frames)
            db = torch.cat([db, pad], dim=2)[:, :, :keep]
        return db


class _SpectrogramMember(nn.Module):
    def __init__(self, front: DftLogMel, model: nn.Module) -> None:
        super().__init__()
        self.front = front
        self.model = model

    def forward(self, wave: Tensor) -> Tensor:  # (B, S) -> (B, C)
        return self.model(self.front(wave)[:, None])  # type: ignore[no-any-return]  # (B, 1, n_mels, T)


class ServingModel(nn.Module):
    """Members of one family and one label list -> ``(logits, probabilities)``, each ``(B, C)``; members of a
    dimensional model -> ``(values,)``, ``(B, T)``. The last output is what a backend returns."""

    def __init__(self, members: list[nn.Module], info: ModelRecord, temperatures: list[float] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.input_kind = str(info.input_kind)
        self.rated = info.task_kind.rated  # outputs ("values",), else ("logits", "probabilities")
        # each member's model.json temperature (evaluation.calibrate), 1.0 when it has none: logits / T. A buffer,
        # not constants in the graph: runs that differ only in their temperature share one traced graph
        # (emoshift.deploy.traced)
        temps = [float(t) for t in temperatures] if temperatures else [1.0] * len(members)
        self.register_buffer("temperature", torch.tensor(temps, dtype=torch.float32), persistent=False)
        self.temperature: Tensor  # (M,)

    def forward(self, wave: Tensor, mask: Tensor | None = None) -> tuple[Tensor, ...]:
        if self.input_kind == "waveform":
            raw = [m(wave, mask) for m in self.members]  # each (B, K): logits, or values
        else:
            raw = [m(wave) for m in self.members]
        if not self.rated:  # calibrated logits, as ModelRecord.values divides them (the temperature buffer)
            raw = [r / self.temperature[i] for i, r in enumerate(raw)]
        mean = raw[0] if len(raw) == 1 else torch.stack(raw).mean(dim=0)  # (B, K)
        if self.rated:  # a rated model: its values are its outputs, the mean of the members'
            return (mean,)
        if len(raw) == 1:
            return mean, torch.softmax(mean, dim=-1)
        return mean, torch.softmax(torch.stack(raw), dim=-1).mean(dim=0)  # mean logits, mean probability


def member_runs(run_dirs: list[Any]) -> list[Path]:
    """The single runs behind ``run_dirs``: a fold ensemble (model.json ``members``) stands for its fold runs."""
    from emoshift.core.rundir import RunDir
    from emoshift.models.ensemble import member_paths

    out: list[Path] = []
    for run in run_dirs:
        info = RunDir.of(run).info()
        out.extend(member_paths(Path(run), info) if info.is_ensemble else [Path(run)])
    return out


def check_exportable(info: ModelRecord) -> None:
    """Raise ExportUnsupportedError, in one line, for a family the graph cannot hold."""
    enc = info.encoder_config or {}
    if enc.get("model_type") == "whisper":
        raise ExportUnsupportedError(
            f"{info.model} with a Whisper encoder cannot be exported: its log-mel front end is transformers' "
            "numpy WhisperFeatureExtractor, which runs outside the network; use --backend torch"
        )
    from emoshift.models.weights import family_of_record

    family = family_of_record(info)
    if not family.exportable:
        raise ExportUnsupportedError(f"{info.model} cannot be exported to ONNX: {family.not_exportable}")


def check_same_family(infos: list[ModelRecord]) -> None:
    first = infos[0]
    for other in infos[1:]:
        for key in ("labels", "input_kind", "features", "task", "targets", "target_range"):
            if getattr(other, key) != getattr(first, key):
                raise ExportUnsupportedError(
                    f"ensemble members differ in {key}: every member must share labels, input kind and features"
                )


def build_serving_model(run_dirs: list[Any]) -> tuple[ServingModel, ModelRecord]:
    """Load each member run (eval mode, CPU) and wrap them; returns the model and the first member's info."""
    from emoshift.models.weights import load_model

    loaded = [load_model(r, device="cpu") for r in member_runs(run_dirs)]
    infos = [info for _, info in loaded]
    for info in infos:
        check_exportable(info)
    check_same_family(infos)
    info = infos[0]
    members: list[nn.Module] = []
    if info.input_kind == "spectrogram":
        cfg = FeatureConfig.model_validate(info.features)
        for model, _ in loaded:
            members.append(_SpectrogramMember(DftLogMel(cfg, min_frames=cfg.frames_for(cfg.crop_s)), model))
    else:
        members = [model for model, _ in loaded]
    temperatures = [i.temperature if i.temperature is not None else 1.0 for i in infos]
    return ServingModel(members, info, temperatures).eval(), info
