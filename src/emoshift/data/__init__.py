"""Data: speaker-independent splits, datasets, samplers and length bucketing."""
