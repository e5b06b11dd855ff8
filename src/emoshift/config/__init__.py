"""The experiment config: one typed schema, torch-free, below every package that uses it.

Inside the package, each module imports only those above it in this list::

    features      FeatureConfig: how audio becomes a log-mel spectrogram (``features:``)
    split         SplitConfig: how a corpus is split by speaker (``data.split:``)
    experiment    ExperimentConfig and its sections, ConfigChecks, load/build/save/read

The model registry's checks of a config live in :mod:`emoshift.models` (``CONFIG_CHECKS``) and run when a config
is loaded for use (``load_config(..., checks=CONFIG_CHECKS)``): this package imports no model code.
"""

from __future__ import annotations

from emoshift.config.experiment import (
    CATEGORICAL_ONLY,
    AugmentConfig,
    ConfigChecks,
    DataConfig,
    DistillConfig,
    EvaluationConfig,
    ExperimentConfig,
    ManifestConfig,
    ModelConfig,
    StageConfig,
    Strict,
    TrackingConfig,
    TrainerConfig,
    TrainingConfig,
    build_config,
    default_cache_dir,
    load_config,
    load_run_config,
    merge,
    read_yaml,
    save_config,
)
from emoshift.config.features import FeatureConfig
from emoshift.config.split import SplitConfig
from emoshift.core.overrides import ConfigError, apply_overrides, explain, parse_override

__all__ = [
    "CATEGORICAL_ONLY",
    "AugmentConfig",
    "ConfigChecks",
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "FeatureConfig",
    "ManifestConfig",
    "ModelConfig",
    "SplitConfig",
    "StageConfig",
    "Strict",
    "TrackingConfig",
    "TrainerConfig",
    "TrainingConfig",
    "apply_overrides",
    "build_config",
    "default_cache_dir",
    "explain",
    "load_config",
    "load_run_config",
    "merge",
    "parse_override",
    "read_yaml",
    "save_config",
]
