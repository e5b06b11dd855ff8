"""How a study experiment's overlays become one config: the layers merged in order, then the ``--set`` groups,
and a multi-stage schedule (``training.stages``) fitted to ``training.epochs`` when a later layer changed the
epochs (:mod:`emoshift.study.spec` resolves experiments with these)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emoshift.config import ConfigError, apply_overrides, merge

__all__ = ["fit_stages", "fit_stages_to_epochs", "merge_layers"]


def _sets(layer: dict[str, Any], *path: str) -> bool:
    node: Any = layer
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _override_sets(items: Sequence[str], *path: str) -> bool:
    return any(_sets(apply_overrides({}, [item]), *path) for item in items)


def fit_stages(stages: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """Fit a multi-stage schedule to ``epochs``: cut it after that many epochs, or lengthen its last stage."""
    out: list[dict[str, Any]] = []
    left = epochs
    for stage in stages:
        if left <= 0:
            break
        n = min(int(stage.get("epochs", 1)), left)
        out.append({**stage, "epochs": n})
        left -= n
    if left > 0 and out:
        out[-1] = {**out[-1], "epochs": out[-1]["epochs"] + left}
    return out


def merge_layers(
    eid: str, layers: Sequence[dict[str, Any]], overrides: Sequence[list[str]]
) -> tuple[dict[str, Any], bool]:
    """Merge the overlays, then apply the ``--set`` groups; also whether ``training.epochs`` was set by a
    later layer than ``training.stages`` (then the stages are fitted to the epochs)."""
    data: dict[str, Any] = {}
    last_epochs = last_stages = -1
    for i, layer in enumerate(layers):
        data = merge(data, layer)
        last_epochs = i if _sets(layer, "training", "epochs") else last_epochs
        last_stages = i if _sets(layer, "training", "stages") else last_stages
    for i, items in enumerate(overrides, start=len(layers)):
        try:
            data = apply_overrides(data, items)
        except ConfigError as e:
            raise ConfigError(f"experiment {eid}: {e}") from None
        last_epochs = i if _override_sets(items, "training", "epochs") else last_epochs
        last_stages = i if _override_sets(items, "training", "stages") else last_stages
    return data, last_epochs > last_stages


def fit_stages_to_epochs(data: dict[str, Any]) -> list[str]:
    """Fit ``training.stages`` (in place) to ``training.epochs``; returns a note when they changed."""
    training = data.get("training") or {}
    if not isinstance(training, dict):  # build_config names what is wrong with it
        return []
    stages, epochs = training.get("stages"), training.get("epochs")
    if not isinstance(stages, list) or not stages or not isinstance(epochs, int) or epochs < 1:
        return []
    total = sum(int(s.get("epochs", 0)) for s in stages if isinstance(s, dict))
    if total == epochs or not all(isinstance(s, dict) for s in stages):
        return []
    training["stages"] = fit_stages(stages, epochs)
    return [f"training.stages fitted to training.epochs={epochs} (they lasted {total} epochs)"]
