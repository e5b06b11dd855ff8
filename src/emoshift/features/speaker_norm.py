"""Per-speaker standardisation of cached log-mels: the CNNs' ``model.speaker_norm``.

The classic cross-corpus trick (the acoustic baselines' ``speaker_norm`` does it to functionals): each
speaker's log-mels are z-scored per mel bin with that speaker's own mean and std over all their frames. That
removes what is fixed for a speaker and their recording (a voice's spectral colour, a microphone, a gain: all
additive in log-mel) and keeps how each utterance departs from that speaker's habit, which is where acted
emotion lives. The statistics use a speaker's audio only, never a label, so a test speaker is normalised with
their own unlabelled recordings (transductive, as speaker normalisation is everywhere in SER).

:class:`SpeakerNormStore` gives each spectrogram ``x`` of speaker ``s`` as ``(x - mean_s) / std_s`` (a
:class:`StandardisedStore`, the wrapper per-corpus standardisation shares: ``features.domain_norm``); the CNN
family feeds those to the model past its own standardisation (``SpectrogramClassifier.normalised``), so
augmentation (SpecAugment's fill, zero padding) works in z-score units, where 0 is the speaker's mean. The
model's fixed standardisation (:class:`emoshift.models.cnn_nets.BinStandardize`) holds the training speakers' pooled
statistics (:func:`pooled`) for a clip of an unknown speaker (predict, serve, the ONNX graph).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

STD_FLOOR = 1e-3  # dB: a bin constant within a speaker is centred, not blown up


@dataclass(frozen=True)
class Moments:
    """Per-mel-bin statistics of a set of frames."""

    mean: np.ndarray  # (n_mels,) float64
    std: np.ndarray  # (n_mels,) float64, >= STD_FLOOR


def speaker_moments(store: Any, speaker_of: Mapping[str, str]) -> dict[str, Moments]:
    """speaker -> per-bin mean and std over every frame of that speaker's utterances in ``store`` (those in
    ``speaker_of``, utterance id -> speaker; the others are not read)."""
    sums: dict[str, list[Any]] = {}
    for uid in store.ids:
        speaker = speaker_of.get(uid)
        if speaker is None:
            continue
        x = store.get(uid).astype(np.float64)  # (n_mels, T)
        acc = sums.setdefault(speaker, [0, 0.0, 0.0])
        acc[0] += x.shape[1]
        acc[1] = acc[1] + x.sum(axis=1)
        acc[2] = acc[2] + np.square(x).sum(axis=1)
    out = {}
    for speaker, (n, s1, s2) in sums.items():
        mean = s1 / n
        out[speaker] = Moments(mean, np.maximum(np.sqrt(np.maximum(s2 / n - mean * mean, 0.0)), STD_FLOOR))
    return out


def pooled(moments: Iterable[Moments]) -> Moments:
    """The statistics of a mixture in which every speaker weighs the same: the mean of their means, and the std
    from their variances plus the spread of their means."""
    ms = list(moments)
    if not ms:
        raise ValueError("no speakers to pool statistics over")
    means = np.stack([m.mean for m in ms])  # (S, n_mels)
    variances = np.stack([m.std**2 for m in ms])
    return Moments(means.mean(axis=0), np.sqrt(variances.mean(axis=0) + means.var(axis=0)))


class StandardisedStore(ABC):
    """A feature store whose ``get`` gives each input standardised, ``(x - mean) / std``, with the moments
    :meth:`moments_of` gives for it (a subclass says whose: the speaker's, the corpus's), over the input's
    leading dimensions (per mel bin of a log-mel ``(n_mels, T)``, per element of an embedding ``(L+1, 2H)``);
    ids, membership, frames and skipped files are the wrapped store's."""

    def __init__(self, store: Any) -> None:
        self.store = store

    @abstractmethod
    def moments_of(self, utt_id: str) -> Moments:
        """The statistics ``utt_id``'s input is standardised with."""

    @property
    def ids(self) -> list[str]:
        return self.store.ids  # type: ignore[no-any-return]

    @property
    def skipped(self) -> list[Any]:
        return self.store.skipped  # type: ignore[no-any-return]

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self.store

    def __len__(self) -> int:
        return len(self.store)

    def frames(self, utt_id: str) -> int:
        return self.store.frames(utt_id)  # type: ignore[no-any-return]

    def get(self, utt_id: str) -> np.ndarray:
        """The input's float32 z-scores, shaped as the wrapped store gives it."""
        x = self.store.get(utt_id)  # (n_mels, T) or (L+1, 2H)
        m = self.moments_of(utt_id)
        tail = (1,) * (x.ndim - m.mean.ndim)  # the dimensions that share a statistic (a log-mel's frames)
        return ((x - m.mean.reshape(m.mean.shape + tail)) / m.std.reshape(m.std.shape + tail)).astype(np.float32)


class SpeakerNormStore(StandardisedStore):
    """A feature store whose ``get`` gives each spectrogram ``(n_mels, frames)`` as its speaker's z-scores."""

    def __init__(self, store: Any, moments: Mapping[str, Moments], speaker_of: Mapping[str, str]) -> None:
        super().__init__(store)
        self.moments = dict(moments)
        self.speaker_of = dict(speaker_of)

    def moments_of(self, utt_id: str) -> Moments:
        return self.moments[self.speaker_of[utt_id]]
