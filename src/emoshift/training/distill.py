"""Knowledge distillation: teacher logits for the student's training utterances, computed once and cached.

The teacher may be any architecture (a HuBERT teacher for a ResNet student too): both predict on the same
utterances, so only the label lists must agree. Logits are cached in ``TEACHER_RUN/teacher_logits/`` keyed by
the utterance ids, so several students (or a resumed student) reuse them.
The loss itself is :func:`emoshift.training.module.distillation_loss`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoshift.core.io import atomic_open
from emoshift.core.rundir import RunDir, RunError
from emoshift.data.datasets import Item
from emoshift.models.weights import load_model


def teacher_logits(
    teacher_run: str | os.PathLike[str],
    items: Sequence[Item],
    labels: Sequence[str],
    cfg: Any,
    *,
    progress: bool = False,
) -> torch.Tensor:
    """``(len(items), C)`` teacher logits aligned with ``items`` (the student's training items)."""
    from emoshift.evaluation.inference import raw_outputs

    run = RunDir.of(teacher_run)
    if not run.is_complete():
        raise RunError(f"distillation teacher {run.path} is not a finished run (train it first)")
    info = run.info()
    if info.labels != list(labels):
        raise RunError(
            f"teacher {run.path} predicts {info.labels} but the student trains on {list(labels)}: "
            "use the same label policy and corpora"
        )
    ids = [it.utt.id for it in items]
    key = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    cache = run.teacher_logits(key)
    if cache.is_file():
        arr = np.load(cache, allow_pickle=False)
        if arr.shape == (len(ids), len(labels)):
            return torch.from_numpy(arr)
    model, _ = load_model(run.path)
    kept, logits, skipped = raw_outputs(
        model, info, [it.utt for it in items], cache_dir=cfg.data.cache_dir, progress=progress, desc="teacher logits"
    )
    if skipped:
        raise RunError(f"teacher could not read {len(skipped)} training files, e.g. {skipped[0].path}: {skipped[0].reason}")
    pos = {u.id: i for i, u in enumerate(kept)}
    arr = np.stack([logits[pos[i]] for i in ids]).astype(np.float32)
    with atomic_open(Path(cache), "wb") as f:
        np.save(f, arr, allow_pickle=False)
    return torch.from_numpy(arr)
