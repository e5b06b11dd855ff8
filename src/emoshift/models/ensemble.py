"""A fold ensemble: the models of a speaker cross-validation's fold runs, predicting by mean probability
(a dimensional ensemble: the mean of its members' outputs).

``RUN/model.json`` of a pooled cross-validation run lists its members (``"members": ["folds/0", ...]``, paths
relative to RUN); :func:`emoshift.models.weights.load_model` loads each member as the normal run it is and
returns an :class:`Ensemble`. Inference (:mod:`emoshift.evaluation.inference`) averages the members'
probabilities; its "logits" are the log of that mean, so ``softmax(logits)`` is the mean probability again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunError


@dataclass(frozen=True)
class Ensemble:
    """Member models with their model.json, and their run directories (fold order)."""

    members: list[tuple[Any, ModelRecord]]
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.members)

    def to(self, device: Any) -> Ensemble:
        for model, _ in self.members:
            if hasattr(model, "to"):
                model.to(device)
        return self

    def eval(self) -> Ensemble:
        for model, _ in self.members:
            if hasattr(model, "eval"):
                model.eval()
        return self


def member_paths(run_path: Path, info: ModelRecord) -> list[Path]:
    """The member run directories model.json names (relative to the run, inside it)."""
    members = info.members
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise RunError(f"{run_path}/model.json: 'members' must be a non-empty list of fold run folders")
    out = []
    for rel in members:
        path = (run_path / rel).resolve()
        if not path.is_relative_to(run_path.resolve()) or path == run_path.resolve():
            raise RunError(f"{run_path}/model.json: member {rel!r} is not a folder inside the run directory")
        out.append(path)
    return out


def check_members(run_path: Path, info: ModelRecord, infos: list[ModelRecord]) -> None:
    """Every member must predict the ensemble's labels (or targets, on the same range), in its order, and not
    be an ensemble itself."""
    for path, member in zip(member_paths(run_path, info), infos, strict=True):
        if member.is_ensemble:
            raise RunError(f"{path}: a fold ensemble's member cannot be an ensemble itself")
        if member.labels != info.labels:
            raise RunError(f"{path}: its labels {member.labels} differ from the ensemble's {info.labels}")
        for key in ("task", "targets", "target_range"):
            mine, theirs = getattr(member, key), getattr(info, key)
            if mine != theirs:
                raise RunError(f"{path}: its {key} {mine} differs from the ensemble's {theirs}")
