"""emoshift: cross-corpus speech emotion recognition, honestly measured.

The public API, imported lazily so that ``import emoshift`` stays light (no torch until a name needs it)::

    import emoshift

    scan = emoshift.scan("ravdess", "/data/RAVDESS")                 # Scan: utterances, skipped files
    split = emoshift.make_split(scan.utterances, emoshift.SplitConfig())   # by speaker, never by utterance
    cfg = emoshift.load_config(None, ["data.corpora=[ravdess]", "data.roots={ravdess: /data/RAVDESS}"])
    run = emoshift.train(cfg, "runs/specialist")                     # the run-directory contract
    emoshift.evaluate_run(run, {"crema-d": "/data/CREMA-D"})         # metrics/, predictions/, plots/
    emoshift.Predictor(run).predict_file("clip.wav")

Every name below is also importable from the module that defines it (``emoshift.<layer>.<module>``);
``docs/architecture.md`` says which layer holds what.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one version string: pyproject.toml reads it (dynamic), `emoshift --version` prints it

# public name -> module that defines it (one place; `emoshift.__getattr__` imports on first use)
_API: dict[str, str] = {
    # corpora
    "scan": "emoshift.corpora",
    "list_corpora": "emoshift.corpora",
    "Utterance": "emoshift.corpora",
    "Scan": "emoshift.corpora",
    # features and data
    "log_mel": "emoshift.features",
    "FeatureConfig": "emoshift.config",
    "make_split": "emoshift.data.splits",
    "SplitConfig": "emoshift.config",
    # models
    "list_models": "emoshift.models",
    "get_model": "emoshift.models",
    # configuration
    "ExperimentConfig": "emoshift.config",
    "load_config": "emoshift.config",
    # training, evaluation, deployment
    "train": "emoshift.training.train",
    "evaluate_run": "emoshift.evaluation.evaluate",
    "Predictor": "emoshift.deploy.predict",
    "audit_run": "emoshift.evaluation.audit",
    "compare_runs": "emoshift.evaluation.compare",
    # the study
    "run_study": "emoshift.study",
    "load_study": "emoshift.study",
    # errors
    "EmoshiftError": "emoshift.core.errors",
}

__all__ = [
    "EmoshiftError",
    "ExperimentConfig",
    "FeatureConfig",
    "Predictor",
    "Scan",
    "SplitConfig",
    "Utterance",
    "audit_run",
    "compare_runs",
    "evaluate_run",
    "get_model",
    "list_corpora",
    "list_models",
    "load_config",
    "load_study",
    "log_mel",
    "make_split",
    "run_study",
    "scan",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'emoshift' has no attribute {name!r}")
    from emoshift.core.extras import needs

    with needs(f"emoshift.{name}"):  # e.g. emoshift.train in the core install: the extra to install, one line
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


if TYPE_CHECKING:  # static checkers and IDEs see the real names
    from emoshift.config import ExperimentConfig, load_config
    from emoshift.config.split import SplitConfig
    from emoshift.core.errors import EmoshiftError
    from emoshift.corpora import Scan, Utterance, list_corpora, scan
    from emoshift.data.splits import make_split
    from emoshift.deploy.predict import Predictor
    from emoshift.evaluation.audit import audit_run
    from emoshift.evaluation.compare import compare_runs
    from emoshift.evaluation.evaluate import evaluate_run
    from emoshift.features import FeatureConfig, log_mel
    from emoshift.models import get_model, list_models
    from emoshift.study import load_study, run_study
    from emoshift.training.train import train
