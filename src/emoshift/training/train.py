"""``train(cfg, run_dir)``: one run (:func:`emoshift.training.pipeline.train_run`: scan -> split by speaker ->
prepare -> fit -> save -> evaluate), or, for a fold method without a fold, every fold pooled
(:mod:`emoshift.training.folds`), and with ``training.seeds`` all of that once per seed, pooled
(:mod:`emoshift.training.seeds`). Re-running ``train`` on an interrupted run directory resumes it; on a complete
one it returns at once."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emoshift.config import ExperimentConfig
from emoshift.core.lock import holds_folder
from emoshift.core.rundir import RunDir
from emoshift.models import check_config
from emoshift.training.folds import runs_all_folds, train_folds
from emoshift.training.pipeline import train_run
from emoshift.training.seeds import runs_all_seeds, train_seeds


@holds_folder("run_dir")  # one writer per run directory (a second train refuses, exit 2)
def train(
    cfg: ExperimentConfig,
    run_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Train ``cfg`` into ``run_dir`` (resuming it if interrupted) and evaluate on every training corpus.

    A fold method (``data.split.method`` kfold, loso or corpus) without ``data.split.fold`` trains every fold
    into ``RUN/folds/<i>/`` and pools them (:mod:`emoshift.training.folds`); ``training.seeds`` trains that
    once per seed into ``RUN/seeds/<s>/`` and pools the seeds (:mod:`emoshift.training.seeds`); anything else is
    one run.
    """
    check_config(cfg)  # what the model registry refuses, before anything is read or written
    if runs_all_seeds(cfg):
        return train_seeds(cfg, RunDir.of(run_dir), progress=progress, callbacks=callbacks)
    if runs_all_folds(cfg):
        return train_folds(cfg, RunDir.of(run_dir), progress=progress, callbacks=callbacks)
    return train_run(cfg, run_dir, progress=progress, callbacks=callbacks)
