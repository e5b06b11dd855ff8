"""The run directory, a contract that checks outside the repo read::

    RUN/config.yaml            resolved experiment config
    RUN/model.safetensors      weights (safetensors: nothing is unpickled to use a model)
    RUN/model.json             architecture, labels, feature config: enough to rebuild and use the model
    RUN/splits/<corpus>.csv    id, speaker, split
    RUN/log.csv                one row per epoch
    RUN/metrics/<corpus>.json  accuracy, uar, macro_f1, n, labels, per_class_recall, confusion, ci95, leaky
    RUN/predictions/<corpus>.csv
    RUN/plots/confusion_<corpus>.png, RUN/plots/curves.png
    RUN/checkpoints/           Lightning checkpoints (last.ckpt resumes an interrupted run)
    RUN/done.json              written last: the run is complete
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where weights are touched: reading model.json and paths stays torch-free
    import torch
    from torch import nn

    from emoshift.config import ExperimentConfig

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_bytes, atomic_write_json

MODEL_FORMAT = 1


class RunError(EmoshiftError):
    """A run directory is missing something or cannot be used (one-line message)."""


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> RunDir:
        return cls(Path(path))

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def weights(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def model_json(self) -> Path:
        return self.path / "model.json"

    @property
    def log(self) -> Path:
        return self.path / "log.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def done(self) -> Path:
        return self.path / "done.json"

    def split(self, corpus: str) -> Path:
        return self.path / "splits" / f"{corpus}.csv"

    def metrics(self, corpus: str) -> Path:
        return self.path / "metrics" / f"{corpus}.json"

    def predictions(self, corpus: str) -> Path:
        return self.path / "predictions" / f"{corpus}.csv"

    def confusion_plot(self, corpus: str) -> Path:
        return self.path / "plots" / f"confusion_{corpus}.png"

    @property
    def curves_plot(self) -> Path:
        return self.path / "plots" / "curves.png"

    def is_complete(self) -> bool:
        return self.done.is_file() and self.weights.is_file() and self.model_json.is_file()

    def done_info(self) -> dict[str, Any]:
        return json.loads(self.done.read_text()) if self.done.is_file() else {}

    def info(self) -> dict[str, Any]:
        if not self.model_json.is_file():
            raise RunError(f"{self.path} is not a finished run directory: {self.model_json.name} is missing")
        return json.loads(self.model_json.read_text())


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> None:
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state))


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # BatchNorm's num_batches_tracked may be absent in older files; anything else is an error.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RunError(
            f"{path}: weights do not fit the architecture in model.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def build_from_info(info: dict[str, Any]) -> nn.Module:
    """Rebuild the architecture described by model.json (random weights; load_weights fills them)."""
    from emoshift.models import get_spec

    spec = get_spec(info["model"])
    if spec.input_kind == "spectrogram":
        from emoshift.models.cnn import from_backbone_config

        return from_backbone_config(
            info["model"], info["backbone_config"], num_labels=len(info["labels"]), dropout=info.get("dropout", 0.0)
        )
    from emoshift.models import ssl as ssl_models

    return ssl_models.from_saved(info)  # type: ignore[attr-defined,no-any-return]


def load_model(run_dir: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a finished run's model for inference (eval mode) and its model.json."""
    run = RunDir.of(run_dir)
    info = run.info()
    if info.get("format", MODEL_FORMAT) > MODEL_FORMAT:
        raise RunError(f"{run.model_json}: written by a newer emoshift (format {info['format']})")
    if not run.weights.is_file():
        raise RunError(f"{run.path}: model.safetensors is missing")
    model = build_from_info(info)
    load_weights(model, run.weights)
    model.to(device).eval()
    return model, info


def write_model_json(run: RunDir, info: dict[str, Any]) -> None:
    atomic_write_json(run.model_json, {"format": MODEL_FORMAT, **info})


def load_run_config(run_dir: str | os.PathLike[str]) -> ExperimentConfig:
    """The resolved experiment config a run was trained with (RUN/config.yaml)."""
    from emoshift.config import ConfigError, load_config

    run = RunDir.of(run_dir)
    if not run.config.is_file():
        raise RunError(f"{run.path} is not a run directory (config.yaml missing)")
    try:
        return load_config(run.config)
    except ConfigError as e:
        raise RunError(f"{run.config}: {e}") from None
