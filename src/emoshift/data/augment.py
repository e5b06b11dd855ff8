"""Batch augmentation for training (never applied to validation or test batches).

All functions take a ``torch.Generator`` so a run is reproducible and resumes identically: the training
module reseeds it from (seed, epoch) at the start of every epoch.

Hand-written rather than taken from torchaudio: torchaudio has no build matching our torch here, and these are
a few lines of tensor indexing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from emoshift.data.channel import Perturbation, parse_perturbation

if TYPE_CHECKING:
    from emoshift.config import AugmentConfig


class WaveChannel:
    """The channel effects ``training.augment`` asks for (``reverb_p``, ``codec_p``, ``telephone_p``), drawn for
    one training clip: room -> codec -> telephone line, each with its own probability, by the effects of
    :mod:`emoshift.data.channel` (the ones ``evaluate --perturb`` measures). Every draw takes the same numbers
    from ``rng`` whatever it hits, so a clip's effects depend on the generator's seed alone: the step's
    (waveform batches, :func:`augment_waveforms`) or the dataset's (seed, epoch, item) (log-mel training, where
    the perturbed clip's features are computed on the fly and never cached)."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        self.codecs = [parse_perturbation(c) for c in cfg.codecs]  # one line for a bitrate out of range

    @property
    def active(self) -> bool:
        return self.cfg.codec_p > 0 or self.cfg.telephone_p > 0 or self.cfg.reverb_p > 0

    def draw(self, rng: np.random.Generator) -> list[tuple[Perturbation, int]]:
        """The effects for one clip, each with its seed (empty: the clip stays clean)."""
        hit = rng.random(3)  # (room, codec, telephone)
        codec = int(rng.integers(max(1, len(self.codecs))))
        lo, hi = self.cfg.reverb_rt60
        rt60 = round(float(rng.uniform(lo, hi)), 3)
        seed = int(rng.integers(2**31 - 1))
        out: list[tuple[Perturbation, int]] = []
        if hit[0] < self.cfg.reverb_p:
            out.append((Perturbation("reverb", rt60), seed))
        if hit[1] < self.cfg.codec_p and self.codecs:
            out.append((self.codecs[codec], seed))
        if hit[2] < self.cfg.telephone_p:
            out.append((Perturbation("telephone"), seed))
        return out

    @staticmethod
    def apply(wave: np.ndarray, sr: int, draws: list[tuple[Perturbation, int]]) -> np.ndarray:
        """``wave`` ``(S,)`` through the drawn effects in order, same length."""
        for p, seed in draws:
            wave = p.apply(wave, sr, seed)
        return wave



def _band_masks(
    b: int, n: int, count: int, max_width: int, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``count`` bands of 0..``max_width`` consecutive positions out of ``n``, drawn per item.  # (B, n) bool"""
    pos = torch.arange(n, device=device).view(1, n)  # (1, n)
    mask = torch.zeros(b, n, dtype=torch.bool, device=device)  # (B, n)
    for _ in range(count):
        width = torch.randint(0, max_width + 1, (b, 1), generator=gen).to(device)
        start = (torch.rand((b, 1), generator=gen).to(device) * (n - width + 1)).long()
        mask |= (pos >= start) & (pos < start + width)
    return mask


def spec_augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """SpecAugment (Park et al. 2019): frequency and time masks, filled with each item's mean.  # (B, 1, F, T)

    The masks are drawn as (B, F) and (B, T) bands and broadcast, so the full-size work is one ``where``.
    """
    b, _, f, t = x.shape
    fill = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    freq = _band_masks(b, f, cfg.freq_masks, cfg.freq_width, gen, x.device)  # (B, F)
    frames = _band_masks(b, t, cfg.time_masks, min(cfg.time_width, t), gen, x.device)  # (B, T)
    mask = freq.view(b, 1, f, 1) | frames.view(b, 1, 1, t)  # (B, 1, F, T)
    return torch.where(mask, fill, x)


def channel_augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Recording-condition augmentation on log-mel dB: random band-limiting and an additive noise floor.

    Targets the cross-corpus gap directly (CREMA-D is band-limited and noisier than RAVDESS's studio takes).
    """
    b, _, f, _ = x.shape
    out = x
    if cfg.bandlimit_p > 0:
        hit = torch.rand(b, generator=gen) < cfg.bandlimit_p  # (B,)
        cutoff = (torch.rand(b, generator=gen) * 0.5 + 0.45) * f  # keep 45-95% of the mel bins
        bins = torch.arange(f).view(1, f)
        cut = hit.view(b, 1) & (bins >= cutoff.view(b, 1))  # (B, F)
        floor = x.amin(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        out = torch.where(cut.view(b, 1, f, 1).to(x.device), floor, out)
    if cfg.noise_p > 0:
        hit = torch.rand(b, generator=gen) < cfg.noise_p  # (B,) on the CPU: no device sync below
        lo, hi = cfg.noise_snr_db
        snr = torch.rand(b, generator=gen) * (hi - lo) + lo  # (B,)
        idx = hit.nonzero().squeeze(1)  # only the hit items pay for the power-domain sum
        if len(idx):
            snr, idx = snr[idx].to(x.device), idx.to(x.device)
            sel = out[idx]  # (H, 1, F, T)
            noise_db = (sel.amax(dim=(1, 2, 3)) - snr).view(-1, 1, 1, 1)  # peak dB - SNR
            out = out.clone() if out is x else out  # never write into the caller's batch
            out[idx] = 10.0 * torch.log10(torch.pow(10.0, sel / 10.0) + torch.pow(10.0, noise_db / 10.0))
    return out


def mixup(
    x: torch.Tensor, y: torch.Tensor, num_labels: int, alpha: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018) -> mixed inputs and soft targets ``(B, C)``."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample().item()) if alpha > 0 else 1.0
    # Beta sampling uses the global RNG, which the training module reseeds per epoch as well.
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    soft = torch.nn.functional.one_hot(y, num_labels).float()
    return lam * x + (1 - lam) * x[perm], lam * soft + (1 - lam) * soft[perm]


def mixup_values(
    x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup of inputs and real-valued targets ``(B, T)`` (dimensional ratings): the same blend of both."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample().item()) if alpha > 0 else 1.0
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def augment_spectrograms(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    x = channel_augment(x, cfg, gen)
    if cfg.specaugment:
        x = spec_augment(x, cfg, gen)
    return x


def augment_waveforms(
    wave: torch.Tensor, mask: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator, *, sample_rate: int = 16_000
) -> torch.Tensor:
    """Channel effects (:class:`WaveChannel`), random gain and additive white noise at a random SNR, on valid
    samples only.  # (B, S)"""
    b = wave.shape[0]
    out = wave
    chain = WaveChannel(cfg)
    if chain.active:  # each clip's effects from a seed the step's generator draws
        seeds = torch.randint(0, 2**31 - 1, (b,), generator=gen).tolist()
        lengths = mask.sum(1).tolist()
        out = out.clone()  # never write into the caller's batch
        for i, (seed, n) in enumerate(zip(seeds, lengths, strict=True)):
            draws = chain.draw(np.random.default_rng(seed))
            if draws and int(n) > 0:
                clip = out[i, : int(n)].detach().float().cpu().numpy()
                out[i, : int(n)] = torch.from_numpy(chain.apply(clip, sample_rate, draws)).to(out)
    if cfg.gain_db > 0:
        g = (torch.rand(b, generator=gen) * 2 - 1).to(wave.device) * cfg.gain_db
        out = out * torch.pow(10.0, g / 20.0).view(b, 1)
    if cfg.noise_p > 0:
        hit = (torch.rand(b, generator=gen) < cfg.noise_p).to(wave.device)
        lo, hi = cfg.noise_snr_db
        snr = (torch.rand(b, generator=gen) * (hi - lo) + lo).to(wave.device)
        m = mask.to(out.dtype)
        power = (out.pow(2) * m).sum(1) / m.sum(1).clamp_min(1)  # (B,)
        sigma = torch.sqrt(power / torch.pow(10.0, snr / 10.0))
        noise = torch.randn(out.shape, generator=gen).to(wave.device) * sigma.view(b, 1) * m
        out = torch.where(hit.view(b, 1), out + noise, out)
    return out
