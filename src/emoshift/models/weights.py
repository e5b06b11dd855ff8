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
from emoshift.core.rundir import MODEL_FORMAT, RunDir, RunError


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


def family_of_info(info: dict[str, Any]) -> Any:
    """The family of the model model.json describes; RunError (one line) for a model this install lacks."""
    from emoshift.models import family_of

    check_info(info)
    try:
        return family_of(info["model"], info.get("mode"))
    except (KeyError, ValueError) as e:  # a model (or mode) this install does not register
        raise RunError(f"model.json: {str(e).strip(chr(39))}") from None


def check_info(info: dict[str, Any]) -> None:
    """The keys every family reads, checked before anything is built from them (RunError, one line)."""
    if "model" not in info:
        raise RunError("model.json names no model (its 'model' key is missing)")
    if not isinstance(info["model"], str):
        raise RunError(f"model.json: 'model' must be a model name, got {info['model']!r:.40}")
    fmt = info.get("format", MODEL_FORMAT)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise RunError(f"model.json: 'format' must be an integer, got {fmt!r:.40}")
    task = info.get("task") or "categorical"  # a model.json without a task (older runs) is categorical
    if task not in ("categorical", "dimensional"):
        raise RunError(f"model.json: 'task' must be categorical or dimensional, got {task!r:.40}")
    if task == "dimensional":
        targets = info.get("targets")
        if (not isinstance(targets, list) or not targets or len(set(targets)) != len(targets)
                or not all(t in ("arousal", "valence", "dominance") for t in targets)):
            raise RunError(f"model.json: 'targets' must list distinct arousal/valence/dominance, got {targets!r:.60}")
        rng = info.get("target_range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, int | float) for v in rng)):
            raise RunError(f"model.json: 'target_range' must be [low, high], got {rng!r:.40}")
        return
    labels = info.get("labels")
    if (not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels)
            or len(set(labels)) != len(labels)):
        raise RunError(f"model.json: 'labels' must be a list of distinct label names, got {labels!r:.60}")


def build_from_info(info: dict[str, Any]) -> Any:
    """Rebuild the architecture described by model.json (random weights; load_weights fills them)."""
    family = family_of_info(info)
    try:
        return family.rebuild(info)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # a hand-edited or hostile file
        raise RunError(f"model.json does not describe a {info['model']} model: {type(e).__name__}: {e}") from None


def load_model(run_dir: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Load a finished run's model for inference (eval mode) and its model.json.

    The model is an ``nn.Module`` for neural families, the family's own object otherwise (the acoustic
    baselines), and a :class:`emoshift.models.ensemble.Ensemble` for a pooled cross-validation run (its
    model.json lists ``members``).
    """
    run = RunDir.of(run_dir)
    info = run.info()
    check_info(info)
    if info.get("format", MODEL_FORMAT) > MODEL_FORMAT:
        raise RunError(f"{run.model_json}: written by a newer emoshift (format {info['format']})")
    if "members" in info:
        return _load_ensemble(run, info, device), info
    family = family_of_info(info)
    try:
        model = family.load(run, info)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # a hand-edited or hostile file
        raise RunError(f"model.json does not describe a {info['model']} model: {type(e).__name__}: {e}") from None
    if isinstance(model, nn.Module):
        model.to(device).eval()
    return model, info


def _load_ensemble(run: RunDir, info: dict[str, Any], device: str | torch.device) -> Any:
    from emoshift.models.ensemble import Ensemble, check_members, member_paths

    paths = member_paths(run.path, info)
    members = [load_model(p, device=device) for p in paths]
    check_members(run.path, info, [m_info for _, m_info in members])
    return Ensemble(members, paths)
