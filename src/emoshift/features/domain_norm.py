"""Per-corpus standardisation of a model's inputs: ``model.domain_norm: corpus`` and ``emoshift adapt --method
corpus-norm``; the one home of the corpus statistics.

The cross-corpus literature's first lever (Schuller et al. 2010, "Cross-corpus acoustic emotion recognition:
variances and strategies"): each corpus's inputs are z-scored with that corpus's own mean and standard deviation
per input dimension, computed from its audio alone (never a label). A corpus's recording chain (microphone,
room, level, codec) shifts every input of that corpus alike; what is left after its own standardisation is how
each clip departs from that corpus's habit. Training corpora use statistics of their own training audio, a
corpus seen only at evaluation those of the evaluated utterances, and a clip of unknown origin (predict, serve,
the ONNX graph) the statistics the model holds: the training corpora's pooled (:func:`pooled`, each corpus
weighing the same), or, after ``emoshift adapt --method corpus-norm``, the target corpus's.

What the statistics are taken over depends on the input:

- log-mels (the CNNs): per mel bin over every frame of the corpus's utterances (:func:`frame_moments`), floored
  at :data:`emoshift.features.speaker_norm.STD_FLOOR` dB as per-speaker statistics are;
- a feature matrix ``(N, D)`` (the acoustic functionals, a frozen encoder's pooled embeddings): per column over
  the utterances (:func:`row_moments`), a constant column scaled by 1 as scikit-learn's StandardScaler does.

:class:`CorpusStats` is the typed record of a set of corpora's statistics (mean, std, clips and what they were
taken over), saved as one safetensors file whose metadata holds the rest as JSON (``RUN/domain_stats.safetensors``).
It composes with ``model.speaker_norm``: corpus statistics first, then each speaker's; since both are per-bin
affine maps, a speaker's own z-scores are the same either way, and the corpus statistics are what a clip of an
unknown speaker is standardised with (docs/adaptation.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_bytes
from emoshift.features.speaker_norm import STD_FLOOR, Moments, pooled

__all__ = ["CorpusNormStore", "CorpusStats", "DomainStatsError", "frame_moments", "row_moments"]

ROW_FLOOR = 1e-8  # a column (nearly) constant over a corpus is centred and scaled by 1, as StandardScaler does
STATS_KIND = "emoshift-domain-stats"


class DomainStatsError(EmoshiftError, ValueError):
    """Corpus statistics cannot be computed or read (one line, for the user)."""


def frame_moments(store: Any, ids: Iterable[str]) -> Moments:
    """Per-mel-bin mean and std over every frame of the spectrograms ``store.get(id)`` ``(n_mels, T)`` of ``ids``
    (float64 sums; std floored at ``STD_FLOOR``)."""
    n, s1, s2 = 0, 0.0, 0.0
    for uid in ids:
        x = store.get(uid).astype(np.float64)  # (n_mels, T)
        n += x.shape[1]
        s1 = s1 + x.sum(axis=1)
        s2 = s2 + np.square(x).sum(axis=1)
    if n == 0:
        raise DomainStatsError("no frames to compute corpus statistics over")
    mean = np.asarray(s1, dtype=np.float64) / n
    var = np.maximum(np.asarray(s2, dtype=np.float64) / n - mean * mean, 0.0)
    return Moments(mean, np.maximum(np.sqrt(var), STD_FLOOR))


def row_moments(x: np.ndarray) -> Moments:
    """Per-column mean and std (ddof 0) of a feature matrix ``(N, D)``; a column with std below ``ROW_FLOOR``
    gets std 1 (centred only)."""
    m = np.asarray(x, dtype=np.float64)
    if m.ndim != 2 or len(m) == 0:
        raise DomainStatsError(f"corpus statistics need a non-empty (N, D) matrix, got shape {m.shape}")
    std = m.std(axis=0)
    return Moments(m.mean(axis=0), np.where(std < ROW_FLOOR, 1.0, std))


class CorpusNormStore:
    """One corpus's log-mel store whose ``get`` gives each spectrogram as the corpus's z-scores
    ``(x - mean) / std`` per mel bin (``moments``: that corpus's statistics); ids, membership, frames and skipped files are
    the wrapped store's."""

    def __init__(self, store: Any, moments: Moments) -> None:
        self.store = store
        self.moments = moments

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
        """``(n_mels, frames)`` float32 z-scores."""
        m = self.moments
        return ((self.store.get(utt_id) - m.mean[:, None]) / m.std[:, None]).astype(np.float32)


@dataclass
class CorpusStats:
    """Named corpora's input statistics: ``moments[name]`` (mean, std per input dimension), ``clips[name]`` (the
    utterances they were taken over) and ``over`` (what a dimension is: "mel bin", "functional", "embedding")."""

    over: str
    moments: dict[str, Moments] = field(default_factory=dict)
    clips: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, moments: Moments, clips: int) -> None:
        self.moments[name] = moments
        self.clips[name] = int(clips)

    def pooled(self, names: Iterable[str] | None = None) -> Moments:
        """The statistics of the named corpora (all by default) mixed so that each weighs the same."""
        wanted = list(self.moments) if names is None else list(names)
        return pooled([self.moments[n] for n in wanted])

    # -- persistence: one safetensors file, arrays "<name>.mean" / "<name>.std", the rest as JSON metadata --
    def save(self, path: Path) -> None:
        from safetensors.numpy import save

        arrays: dict[str, np.ndarray] = {}
        for name, m in self.moments.items():
            arrays[f"{name}.mean"] = np.ascontiguousarray(m.mean, dtype=np.float64)
            arrays[f"{name}.std"] = np.ascontiguousarray(m.std, dtype=np.float64)
        meta = {"kind": STATS_KIND, "over": self.over, "corpora": list(self.moments), "clips": self.clips}
        atomic_write_bytes(path, save(arrays, metadata={"emoshift": json.dumps(meta)}))

    @classmethod
    def load(cls, path: Path) -> CorpusStats:
        from safetensors import SafetensorError, safe_open

        if not path.is_file():
            raise DomainStatsError(f"{path} not found")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {}).get("emoshift", "{}"))
                arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        except (OSError, ValueError, SafetensorError) as e:
            raise DomainStatsError(f"{path}: not readable corpus statistics ({e})") from None
        if meta.get("kind") != STATS_KIND:
            raise DomainStatsError(f"{path}: not emoshift corpus statistics")
        out = cls(str(meta.get("over", "")))
        clips: Mapping[str, int] = meta.get("clips", {})
        for name in meta.get("corpora", []):
            out.add(name, Moments(arrays[f"{name}.mean"], arrays[f"{name}.std"]), clips.get(name, 0))
        return out
