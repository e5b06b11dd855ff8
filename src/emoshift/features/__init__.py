"""Features: log-mel spectrograms (matching librosa), the feature cache, the frozen-encoder embedding cache.

``emoshift.features.log_mel`` and ``emoshift.features.FeatureConfig`` are the stable names."""

from emoshift.config.features import FeatureConfig
from emoshift.features.logmel import LogMel, log_mel, log_mel_batch, log_mel_many

__all__ = ["FeatureConfig", "LogMel", "log_mel", "log_mel_batch", "log_mel_many"]
