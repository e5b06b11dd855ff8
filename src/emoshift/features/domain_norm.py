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
- a feature matrix ``(N, D)`` (the acoustic functionals) or stacked fixed-shape items ``(N, *shape)`` (a frozen
  encoder's pooled embeddings ``(N, L+1, 2H)``): per column (per element of an item) over the utterances
  (:func:`row_moments`; :func:`item_moments` over a store's items without holding them all), a constant column
  scaled by 1 as scikit-learn's StandardScaler does.

:func:`training_stats` is what training does with them, whatever the input: each corpus's statistics over its
training utterances, and the training corpora's pooled, which a family keeps in its model for a clip of unknown
origin.

:class:`CorpusStats` is the typed record of a set of corpora's statistics (mean, std, clips and what they were
taken over), saved as one safetensors file whose metadata holds the rest as JSON (``RUN/domain_stats.safetensors``).
It composes with ``model.speaker_norm``: corpus statistics first, then each speaker's; since both are per-bin
affine maps, a speaker's own z-scores are the same either way, and the corpus statistics are what a clip of an
unknown speaker is standardised with (docs/adaptation.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_bytes
from emoshift.features.speaker_norm import STD_FLOOR, Moments, StandardisedStore, pooled

__all__ = [
    "CorpusNormStore",
    "CorpusStats",
    "DomainStatsError",
    "frame_moments",
    "item_moments",
    "row_moments",
    "training_stats",
]

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
    """Per-column mean and std (ddof 0) of a feature matrix ``(N, D)``, or per element of stacked items
    ``(N, *shape)`` (moments shaped ``shape``); a column with std below ``ROW_FLOOR`` gets std 1 (centred only)."""
    m = np.asarray(x, dtype=np.float64)
    if m.ndim < 2 or len(m) == 0:
        raise DomainStatsError(f"corpus statistics need a non-empty (N, D) matrix, got shape {m.shape}")
    return _floored(m.mean(axis=0), m.var(axis=0))


def item_moments(store: Any, ids: Iterable[str]) -> Moments:
    """:func:`row_moments` of the fixed-shape items ``store.get(id)`` of ``ids`` (a frozen encoder's pooled
    embeddings ``(L+1, 2H)``), in float64 running sums so that a corpus is never held in memory at once:
    moments shaped as one item."""
    n = 0
    s1: Any = 0.0
    s2: Any = 0.0
    for uid in ids:
        x = np.asarray(store.get(uid), dtype=np.float64)  # (L+1, 2H)
        n += 1
        s1 = s1 + x
        s2 = s2 + np.square(x)
    if n == 0:
        raise DomainStatsError("no utterances to compute corpus statistics over")
    mean = np.asarray(s1, dtype=np.float64) / n
    return _floored(mean, np.maximum(np.asarray(s2, dtype=np.float64) / n - mean * mean, 0.0))


def _floored(mean: np.ndarray, var: np.ndarray) -> Moments:
    std = np.sqrt(var)
    return Moments(mean, np.where(std < ROW_FLOOR, 1.0, std))


def training_stats(
    stores: Mapping[str, Any],
    trained: Mapping[str, Sequence[str]],
    moments: Callable[[Any, list[str]], Moments],
    over: str,
) -> tuple[CorpusStats, Moments]:
    """Each corpus's statistics ``moments(store, ids)`` over its training utterances ``trained[name]`` (every
    utterance of a corpus with none there: one only evaluated), and the training corpora's pooled, each weighing
    the same (all corpora's when none trained): what a clip of unknown origin gets."""
    stats = CorpusStats(over)
    for name, store in stores.items():
        ids = [i for i in trained.get(name, []) if i in store] or list(store.ids)
        stats.add(name, moments(store, ids), len(ids))
    return stats, stats.pooled([n for n in stats.moments if trained.get(n)] or None)


class CorpusNormStore(StandardisedStore):
    """One corpus's store whose ``get`` gives each input as the corpus's z-scores (``moments``: that corpus's
    statistics: per mel bin of a log-mel, per element of an embedding)."""

    def __init__(self, store: Any, moments: Moments) -> None:
        super().__init__(store)
        self.moments = moments

    def moments_of(self, utt_id: str) -> Moments:
        return self.moments


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
