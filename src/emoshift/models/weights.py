"""Saving and loading a run's model: safetensors weights, and the architecture rebuilt from model.json.

Nothing is unpickled: weights are safetensors, the architecture is rebuilt by the model's family from the
JSON it wrote (:meth:`emoshift.models.families.Family.rebuild`). Paths come from :class:`RunDir`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from emoshift.core.io import atomic_write_bytes
from emoshift.core.record import MODEL_FORMAT, ModelRecord, RecordError
from emoshift.core.rundir import RunDir, RunError


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


def family_of_record(info: ModelRecord) -> Any:  # a Family (models.families imports this module: no type import)
    """The family of a saved model; RunError (one line) for a model (or mode) this install does not register."""
    from emoshift.models import family_of

    try:
        return family_of(info.model, info.mode)
    except (KeyError, ValueError) as e:
        raise RunError(f"model.json: {str(e).strip(chr(39))}") from None


def build_from_info(info: ModelRecord | dict[str, Any]) -> Any:
    """Rebuild the architecture described by model.json (random weights; load_weights fills them)."""
    record = _record(info)
    family = family_of_record(record)
    try:
        return family.rebuild(record)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # a hand-edited or hostile file
        raise RunError(f"model.json does not describe a {record.model} model: {type(e).__name__}: {e}") from None


def _record(info: ModelRecord | dict[str, Any]) -> ModelRecord:
    if isinstance(info, ModelRecord):
        return info
    try:
        return ModelRecord.parse(info)
    except RecordError as e:
        raise RunError(str(e)) from None


def load_model(run_dir: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> tuple[Any, ModelRecord]:
    """Load a finished run's model for inference (eval mode) and its model.json record.

    The model is an ``nn.Module`` for neural families, the family's own object otherwise (the acoustic
    baselines), and a :class:`emoshift.models.ensemble.Ensemble` for a pooled cross-validation run (its
    model.json lists ``members``).
    """
    run = RunDir.of(run_dir)
    info = run.info()
    if info.format > MODEL_FORMAT:
        raise RunError(f"{run.model_json}: written by a newer emoshift (format {info.format})")
    if info.members is not None:
        return _load_ensemble(run, info, device), info
    family = family_of_record(info)
    try:
        model = family.load(run, info)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # a hand-edited or hostile file
        raise RunError(f"model.json does not describe a {info.model} model: {type(e).__name__}: {e}") from None
    if isinstance(model, nn.Module):
        model.to(device).eval()
    return model, info


def _load_ensemble(run: RunDir, info: ModelRecord, device: str | torch.device) -> Any:
    from emoshift.models.ensemble import Ensemble, check_members, member_paths

    paths = member_paths(run.path, info)
    members = [load_model(p, device=device) for p in paths]
    check_members(run.path, info, [m_info for _, m_info in members])
    return Ensemble(members, paths)
