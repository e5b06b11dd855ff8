"""Registers the self-supervised speech encoders (built in emoshift.models.ssl) without importing transformers."""

from __future__ import annotations

from emoshift.models import ModelSpec, register_model

register_model(
    ModelSpec(
        "hubert",
        "waveform",
        "emoshift.models.ssl",
        "hubert",
        "HuBERT (transformers), default facebook/hubert-base-ls960, mean/attentive pooling + MLP head",
    )
)
register_model(
    ModelSpec(
        "ssl",
        "waveform",
        "emoshift.models.ssl",
        "ssl",
        "any transformers audio encoder (wav2vec2, WavLM, data2vec-audio, HuBERT-large, Whisper encoder)",
    )
)
