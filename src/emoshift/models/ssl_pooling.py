"""Pooling and heads of the SSL classifier (:mod:`emoshift.models.ssl`): waveform normalisation, masked
statistics over valid frames, attentive statistics pooling, the learned layer weights and the MLP head, and
:class:`FrozenHead`, the head that trains on cached per-layer statistics ``(B, L+1, 2H)``, and
:class:`EmbeddingStandardize`, the fixed per-element standardisation of those statistics a frozen model trained
with ``model.domain_norm: corpus`` holds.
"""

from __future__ import annotations

import torch
from torch import nn

STD_EPS = 1e-5  # floor of the variance before the square root (finite gradients on constant frames)


def normalize_waveform(wave: torch.Tensor, mask: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Zero mean, unit variance over each utterance's valid samples; padded samples set to 0.

    The same arithmetic as ``Wav2Vec2FeatureExtractor(do_normalize=True)`` (population variance, ``+1e-7``).
    """
    m = mask.to(wave.dtype)  # (B, S)
    n = m.sum(dim=1, keepdim=True).clamp_min(1.0)  # (B, 1)
    mean = (wave * m).sum(dim=1, keepdim=True) / n
    var = (((wave - mean) * m) ** 2).sum(dim=1, keepdim=True) / n
    return (wave - mean) / torch.sqrt(var + eps) * m  # (B, S)


def masked_mean_std(h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) std over the valid frames: ``(B, T, H)``, ``(B, T)`` bool -> ``(B, H)`` twice."""
    m = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
    n = m.sum(dim=1).clamp_min(1.0)  # (B, 1)
    mean = (h * m).sum(dim=1) / n  # (B, H)
    var = (((h - mean.unsqueeze(1)) * m) ** 2).sum(dim=1) / n
    return mean, var.clamp_min(STD_EPS).sqrt()


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018): learned frame weights -> weighted mean ++ weighted std."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, H), (B, T) -> (B, 2H)
        e = self.score(h).squeeze(-1)  # (B, T)
        e = e.masked_fill(~mask, float("-inf"))
        a = torch.softmax(e, dim=1).unsqueeze(-1)  # (B, T, 1); padded frames get weight 0
        mean = (a * h).sum(dim=1)  # (B, H)
        var = (a * (h - mean.unsqueeze(1)) ** 2).sum(dim=1)
        return torch.cat([mean, var.clamp_min(STD_EPS).sqrt()], dim=-1)


class LayerWeights(nn.Module):
    """Softmax-normalised weights over the L+1 hidden states (zeros at start = a plain average)."""

    def __init__(self, num_states: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_states))

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:  # (B, L+1, ...) -> (B, ...)
        w = torch.softmax(self.weights, dim=0).to(stacked.dtype)
        return (stacked * w.view(1, -1, *([1] * (stacked.dim() - 2)))).sum(dim=1)


def mlp(in_dim: int, hidden: int, num_labels: int, dropout: float) -> nn.Sequential:
    """Linear -> GELU -> Dropout -> Linear; ``hidden=0`` gives a linear probe (Dropout -> Linear)."""
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, num_labels))
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_labels)
    )


class EmbeddingStandardize(nn.Module):
    """A fixed standardisation of per-layer pooled statistics: ``(x - mean) / std`` with ``mean``, ``std``
    ``(L+1, 2H)`` buffers (saved with the weights, so in the ONNX graph; set by the ssl-frozen family to the
    training corpora's pooled embedding statistics, or by ``emoshift adapt --method corpus-norm`` to a target's)."""

    def __init__(self, num_states: int, dim: int) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(num_states, dim))
        self.register_buffer("std", torch.ones(num_states, dim))

    def forward(self, stats: torch.Tensor) -> torch.Tensor:  # (B, L+1, 2H) -> (B, L+1, 2H)
        return (stats - self.mean) / self.std


def head_on_stats(
    stats: torch.Tensor, layer_weights: LayerWeights | None, head: nn.Module, pooling: str, hidden_size: int
) -> torch.Tensor:
    """The frozen-mode head: per-layer pooled stats ``(B, L+1, 2H)`` -> logits ``(B, C)``."""
    x = layer_weights(stats) if layer_weights is not None else stats[:, -1]  # (B, 2H)
    if pooling == "mean":
        x = x[:, :hidden_size]  # (B, H): the mean half
    return head(x)  # type: ignore[no-any-return]


class FrozenHead(nn.Module):
    """Head trained on cached per-layer statistics ``(B, L+1, 2H)`` (mean ++ std per hidden state) -> logits.

    Applies the learned layer weights (or takes the last layer), then "mean" keeps the mean half and "stats"
    keeps mean ++ std, then the MLP. It holds the *same* modules as the :class:`SSLClassifier` it came from
    (``SSLClassifier.frozen_head()``), so training it trains the classifier's head.
    """

    def __init__(
        self, layer_weights: LayerWeights | None, head: nn.Module, *, pooling: str, hidden_size: int
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "stats"):
            raise ValueError(
                f"a head on cached embeddings supports pooling 'mean' or 'stats', got {pooling!r} "
                "(attentive pooling needs frame-level states, which the cache does not keep)"
            )
        self.layer_weights = layer_weights
        self.head = head
        self.pooling = pooling
        self.hidden_size = hidden_size

    def forward(self, stats: torch.Tensor) -> torch.Tensor:  # (B, L+1, 2H) -> (B, C)
        return head_on_stats(stats, self.layer_weights, self.head, self.pooling, self.hidden_size)
