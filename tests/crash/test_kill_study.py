"""`emoshift study` killed after a fold's first epoch and mid-epoch, then rerun: the same results as the same
experiment trained without interruption.

Kills are timed by what is on disk, never by sleeping (tests/crash/kill.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from emoshift.core.io import read_csv
from tests.crash.kill import KILLED_AT, cli, kill_when, partial_files, run, same_results, start


def test_study_killed_mid_training_resumes_to_the_same_results(
    synth_tiny: Path, tmp_path: Path
) -> None:
    config = Path(__file__).parents[2] / "configs" / "study.yaml"
    out = tmp_path / "study"
    corpora = ["--corpus", f"ravdess={synth_tiny / 'ravdess'}", "--corpus", f"crema-d={synth_tiny / 'crema-d'}"]
    sets = [a for s in ["training.epochs=2", "training.batch_size=16", "model.width_mult=0.125",
                        "features.n_mels=32", "features.crop_s=1.0", "evaluation.n_bootstrap=50", "evaluation.figures=false",
                        "training.seeds=null",  # one seed (the demo trains L2 over 3): resume over seeds is
                        # tests/training/test_seeds.py's
                        f"data.cache_dir={tmp_path / 'cache'}"] for a in ("--set", s)]
    args = cli("study", str(config), "--profile", "demo", "--only", "L2", "-q", "-o", str(out), *corpora, *sets)
    runs = out / "runs" / "L2"  # a k-fold study: each fold run writes its own log.csv under folds/<i>/

    def first_epoch() -> bool:
        return any(len(read_csv(log)) >= 1 for log in runs.rglob("log.csv"))

    kill_when(start(args), first_epoch, "the first epoch")
    # then mid-epoch: the 2nd batch of the first fold's 2nd epoch, resumed from the first epoch's last.ckpt
    killed_at = [sys.executable, "-c", KILLED_AT, "1", "train", "1", *args[3:]]
    kill_when(start(killed_at), lambda: False, "the 2nd batch of epoch 1")
    run(args)
    # the same experiment, trained without interruption
    ref = tmp_path / "ref"
    run(cli("train", "-q", str(out / "runs" / "L2" / "config.yaml"), "-o", str(ref)))
    same_results(ref, out / "runs" / "L2", ("ravdess",))  # the study evaluates crema-d on its own
    assert (out / "results.csv").is_file() and (out / "report.md").is_file()
    assert partial_files(tmp_path) == []
