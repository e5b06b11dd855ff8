"""Log-mel spectrograms: the configuration, a librosa-exact filterbank, and three ways to compute them.

* :func:`log_mel` - one waveform (numpy) -> ``(n_mels, frames)`` float32, resampling first when needed.
* :func:`log_mel_many` - many waveforms of different lengths in one STFT call (what fills the feature cache).
* :func:`log_mel_batch` / :class:`LogMel` - a padded ``(B, samples)`` tensor on CPU or GPU (models, predict).

All of them compute exactly what ``librosa.feature.melspectrogram(..., center=True, pad_mode="constant")``
followed by ``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80)`` computes: a periodic Hann window of
``win_length`` centred in ``n_fft``, zero padding of ``n_fft // 2`` at both ends, a Slaney-style mel
filterbank (``htk=False, norm="slaney"``), and ``top_db`` clipping relative to each utterance's own peak.
librosa itself is a dev dependency (tests, benchmark) and is never imported here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from emoshift.config.features import FeatureConfig
from emoshift.core import audio

AMIN = 1e-10  # power floor before log10, as librosa.power_to_db(amin=1e-10)


# ----------------------------------------------------------------------------------------------------------
# Mel filterbank: a port of librosa.filters.mel(htk=False, norm="slaney") (itself the Slaney Auditory Toolbox).


def hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per 6.4x)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(
        hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-300) / min_log_hz) / logstep, hz / f_sp
    )


def mel_to_hz(mel: float | np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` float64 triangular filters, equal to librosa.filters.mel's up to rounding."""
    n_fft, n_mels = cfg.fft_size, cfg.n_mels
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / cfg.sample_rate)  # (F,)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.fmax_hz), n_mels + 2))  # (n_mels + 2,)
    widths = np.diff(edges)  # (n_mels + 1,)
    ramps = edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, F)
    lower = -ramps[:-2] / widths[:-1, None]  # rising edge of filter i
    upper = ramps[2:] / widths[1:, None]  # falling edge of filter i
    weights = np.maximum(0.0, np.minimum(lower, upper))
    # Slaney normalisation: each triangle has unit area in Hz, so bands carry comparable energy.
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


@functools.lru_cache(maxsize=32)
def _window(cfg: FeatureConfig, device: str, dtype: torch.dtype) -> Tensor:
    """Periodic Hann window ``(win_length,)``; torch.stft centres it in n_fft with zeros, as librosa does."""
    return torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64).to(
        device=device, dtype=dtype
    )


@functools.lru_cache(maxsize=32)
def _filterbank_t(cfg: FeatureConfig, device: str, dtype: torch.dtype) -> Tensor:
    """The mel filterbank transposed, ``(n_fft // 2 + 1, n_mels)``, ready for ``power @ fb_t``."""
    return torch.from_numpy(mel_filterbank(cfg).T.copy()).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------
# The computation, shared by every entry point.


def _mel_power(x: Tensor, cfg: FeatureConfig, window: Tensor, fb_t: Tensor, *, center: bool = True) -> Tensor:
    """``(..., samples)`` -> mel power ``(..., frames, n_mels)``: centred zero-padded STFT, |X|^p, filterbank.

    ``center=False`` when the caller has already put ``n_fft // 2`` zeros at both ends (saves a copy).

    The STFT runs in ``window.dtype`` and the filterbank in ``fb_t.dtype``. float64 STFT + float32 rest is
    what librosa effectively computes (it multiplies float32 frames by a float64 window, so numpy's FFT runs
    in float64 before the spectrum is rounded to complex64); a float32 FFT is off by up to ~1e-3 dB in bands
    60 dB below their frame's loudest, which is why the cache does not use one.
    """
    spec = torch.stft(
        x.to(window.dtype),
        n_fft=cfg.fft_size,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=window,
        center=center,
        pad_mode="constant",
        return_complex=True,
    )  # (..., F, T) complex; torch lays it out time-major, so the transpose below is free
    spec = torch.view_as_real(spec.transpose(-1, -2)).square_()  # (..., T, F, 2): re^2, im^2 in place
    power = spec[..., 0] + spec[..., 1]  # (..., T, F) = |X|^2, without a sqrt
    if cfg.power != 2.0:
        power = power.pow(cfg.power / 2.0)
    return power.to(fb_t.dtype) @ fb_t  # (..., T, n_mels)


def _to_db_(mel: Tensor, top_db: float | None) -> Tensor:
    """In place: 10*log10(max(S, amin)), then clip at (peak - top_db) over all of ``mel`` (one utterance)."""
    mel.clamp_(min=AMIN).log10_().mul_(10.0)
    if top_db is not None:
        mel.clamp_(min=float(mel.max()) - top_db)
    return mel


def _pack(lengths: Sequence[int], cfg: FeatureConfig) -> tuple[list[int], list[int], int]:
    """Place signals end to end, separated by zeros, so one STFT computes every signal's own frames.

    Signal ``i`` starts at sample ``starts[i]`` (a multiple of the hop, so its frames line up with the packed
    signal's frames) and is followed by enough zeros that no window straddles two signals: its last window
    ends, and the next signal's first window starts, in the gap. Each signal then sees exactly the zero
    padding a centred STFT of it alone would see. Returns (starts, frames per signal, total samples).
    """
    hop, n_fft = cfg.hop_length, cfg.fft_size
    starts, frames, pos = [], [], 0
    for n in lengths:
        nf = cfg.frames_for_samples(n)
        starts.append(pos)
        frames.append(nf)
        last_window_end = pos + (nf - 1) * hop - n_fft // 2 + n_fft
        nxt = max(pos + n + n_fft // 2, last_window_end)
        pos = -(-nxt // hop) * hop  # round up to the hop
    return starts, frames, pos


def log_mel_many(
    waves: Sequence[np.ndarray], cfg: FeatureConfig, *, stft_dtype: torch.dtype = torch.float64
) -> tuple[np.ndarray, list[int]]:
    """Log-mel of many waveforms (already at ``cfg.sample_rate``) with one STFT and one matmul.

    Returns ``(features, frames)``: ``features`` is ``(sum(frames), n_mels)`` float32, the utterances one
    after another with *time first*, which is the byte layout of the cache; utterance ``i`` is rows
    ``sum(frames[:i]) : sum(frames[:i + 1])`` and its spectrogram is the transpose of that block.
    """
    if not waves:
        return np.zeros((0, cfg.n_mels), np.float32), []
    lengths = [len(w) for w in waves]
    if min(lengths) == 0:
        raise ValueError("cannot compute the spectrogram of an empty waveform")
    starts, frames, total = _pack(lengths, cfg)
    pad = cfg.fft_size // 2  # the centred STFT's zero padding, written here rather than copied by torch.stft
    packed = torch.zeros(pad + total + pad, dtype=stft_dtype)  # (S,)
    for s, w in zip(starts, waves, strict=True):
        packed[pad + s : pad + s + len(w)] = torch.from_numpy(np.asarray(w))
    window, fb_t = _window(cfg, "cpu", stft_dtype), _filterbank_t(cfg, "cpu", torch.float32)
    mel = _mel_power(packed, cfg, window, fb_t, center=False)  # (T_packed, n_mels) float32
    out = np.empty((sum(frames), cfg.n_mels), dtype=np.float32)
    row = 0
    for s, nf in zip(starts, frames, strict=True):
        t0 = s // cfg.hop_length
        out[row : row + nf] = _to_db_(mel[t0 : t0 + nf], cfg.top_db).numpy()
        row += nf
    return out, frames


def log_mel(
    wave: np.ndarray, sr: int, cfg: FeatureConfig | None = None, *, stft_dtype: torch.dtype = torch.float64
) -> np.ndarray:
    """Log-mel spectrogram ``(n_mels, frames)`` float32 of a mono waveform, resampled to cfg.sample_rate first.

    Equal to the cached features of the same waveform, and to librosa's (within ~2e-5 dB).
    """
    cfg = cfg or FeatureConfig()
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (samples,), got shape {wave.shape}")
    if sr != cfg.sample_rate:
        wave = audio.resample(np.ascontiguousarray(wave, dtype=np.float32), sr, cfg.sample_rate)
    feats, _ = log_mel_many([wave], cfg, stft_dtype=stft_dtype)  # (frames, n_mels)
    return np.ascontiguousarray(feats.T)


# ----------------------------------------------------------------------------------------------------------
# Padded batches as tensors, on any device: the nn.Module used inside models, and a functional wrapper.


class LogMel(nn.Module):
    """``(B, samples)`` waveforms at ``cfg.sample_rate`` -> ``(B, n_mels, frames)`` log-mel, on the input's device.

    ``lengths`` (B,) gives each row's true length in samples (default: all full). Frames past a row's length
    are filled with that row's floor (its peak - top_db, or its minimum when top_db is None), and top_db is
    measured over the row's own frames only, so each row equals :func:`log_mel` of the unpadded waveform.
    ``dtype`` is the computation's precision, ``stft_dtype`` the STFT's (default: ``dtype``): all float32
    is fastest on a GPU and within ~2e-3 dB of the cached features; ``stft_dtype=torch.float64`` matches
    them to ~1e-5 dB. The window and filterbank are non-persistent buffers: they follow ``.to(device)`` but
    stay out of checkpoints, being derived from ``cfg``.
    """

    def __init__(
        self,
        cfg: FeatureConfig | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        stft_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg or FeatureConfig()
        self.register_buffer(
            "window", _window(self.cfg, "cpu", stft_dtype or dtype).clone(), persistent=False
        )
        self.register_buffer("fb_t", _filterbank_t(self.cfg, "cpu", dtype).clone(), persistent=False)
        self.window: Tensor  # (win_length,)
        self.fb_t: Tensor  # (F, n_mels)

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Valid frames per row for sample lengths (B,)."""
        n_fft = self.cfg.fft_size
        return 1 + torch.div(lengths + 2 * (n_fft // 2) - n_fft, self.cfg.hop_length, rounding_mode="floor")

    def forward(self, waves: Tensor, lengths: Tensor | None = None) -> Tensor:
        if waves.ndim != 2:
            raise ValueError(f"LogMel expects waves of shape (B, samples), got {tuple(waves.shape)}")
        mel = _mel_power(waves, self.cfg, self.window, self.fb_t)  # (B, T, n_mels)
        db = 10.0 * torch.log10(mel.clamp(min=AMIN))  # (B, T, n_mels)
        if lengths is None:
            valid = torch.ones(db.shape[:2], dtype=torch.bool, device=db.device)  # (B, T)
        else:
            frames = self.frame_lengths(torch.as_tensor(lengths, device=db.device))  # (B,)
            valid = torch.arange(db.shape[1], device=db.device)[None, :] < frames[:, None]  # (B, T)
        mask = valid[:, :, None]  # (B, T, 1)
        if self.cfg.top_db is not None:
            peak = db.masked_fill(~mask, -torch.inf).amax(dim=(1, 2))  # (B,)
            floor = peak - self.cfg.top_db
            db = torch.maximum(db, floor[:, None, None])
        else:
            floor = db.masked_fill(~mask, torch.inf).amin(dim=(1, 2))  # (B,)
        db = torch.where(mask, db, floor[:, None, None])
        return db.transpose(1, 2).contiguous()  # (B, n_mels, T)


@functools.lru_cache(maxsize=8)
def _module(cfg: FeatureConfig, device: str, dtype: torch.dtype, stft_dtype: torch.dtype | None) -> LogMel:
    return LogMel(cfg, dtype=dtype, stft_dtype=stft_dtype).to(device)


def log_mel_batch(
    waves: Tensor,
    lengths: Tensor | Sequence[int] | None,
    cfg: FeatureConfig | None = None,
    device: str | torch.device | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    stft_dtype: torch.dtype | None = None,
) -> Tensor:
    """Padded batch ``(B, S)`` at ``cfg.sample_rate`` -> ``(B, n_mels, T)`` on ``device`` (default: waves').

    ``lengths`` (B,) are true lengths in samples (None = all S). ``T = cfg.frames_for_samples(S)``; frames
    past a row's own count hold that row's floor value. Precision as :class:`LogMel`.
    """
    cfg = cfg or FeatureConfig()
    dev = torch.device(device) if device is not None else waves.device
    module = _module(cfg, str(dev), dtype, stft_dtype)
    lens = None if lengths is None else torch.as_tensor(lengths, dtype=torch.long, device=dev)
    with torch.no_grad():
        return module(waves.to(dev), lens)
