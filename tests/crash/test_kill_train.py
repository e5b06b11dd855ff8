"""`emoshift train` killed in its cache build, in its evaluation and mid-epoch (train and validation batches),
then rerun: the same metrics, weights and predictions as an uninterrupted run, nothing half-written.

Kills are timed by what is on disk, never by sleeping (tests/crash/kill.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from emoshift.core.io import read_csv
from tests.crash.kill import (
    KILLED_AT,
    cli,
    kill_when,
    no_half_written,
    partial_files,
    run,
    same_results,
    same_weights_and_predictions,
    sets,
    start,
)


@pytest.fixture(scope="module")
def reference_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("train-ref")
    run(cli("train", "-q", "-o", str(tmp / "run"), *sets(synth_tiny, tmp / "cache")))
    return tmp / "run"


def test_train_killed_in_cache_build_and_in_evaluation_resumes_to_the_same_run(
    synth_tiny: Path, tmp_path: Path, reference_run: Path
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = cli("train", "-q", "-o", str(out), *sets(synth_tiny, cache))
    kill_when(start(args), lambda: bool(partial_files(cache)) if cache.is_dir() else False, "the cache build")
    kill_when(start(args), lambda: (out / "metrics" / "ravdess.json").is_file(), "the first evaluation")
    assert not (out / "done.json").exists()
    run(args)
    same_results(reference_run, out)
    assert partial_files(tmp_path) == []


def test_train_killed_mid_epoch_resumes_to_the_same_weights(
    synth_tiny: Path, tmp_path: Path, reference_run: Path
) -> None:
    out = tmp_path / "run"
    args = ["train", "-q", "-o", str(out), *sets(synth_tiny, tmp_path / "cache")]
    # 2nd batch of epoch 0 (no checkpoint yet: the rerun starts again), 2nd batch of epoch 1 and its validation
    # (the rerun resumes from last.ckpt, written at the end of epoch 0, and replays epoch 1 from its start)
    for epoch, stage, batch in [(0, "train", 1), (1, "train", 1), (1, "val", 0)]:
        kill_when(start([sys.executable, "-c", KILLED_AT, str(epoch), stage, str(batch), *args]),
                  lambda: False, f"epoch {epoch} {stage} batch {batch}")  # it kills itself there
        rows = read_csv(out / "log.csv") if (out / "log.csv").is_file() else []
        assert len(rows) == epoch, "killed at another epoch than asked"  # epochs before it are complete
        assert not (out / "model.safetensors").exists()
        no_half_written(out)
    run(cli(*args))
    same_results(reference_run, out)
    same_weights_and_predictions(reference_run, out)  # the epoch restarts from last.ckpt: same batches
    no_half_written(tmp_path)
