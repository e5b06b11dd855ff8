"""Training end to end on the synthetic tiny corpus: run directory contract, learning, resume, DDP."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from emoshift.config import ConfigError, load_config
from emoshift.core.io import read_csv
from emoshift.models import CONFIG_CHECKS
from emoshift.training.train import train
from tests.conftest import tiny_overrides
from tests.crash.forked import Forked

RUN_FILES = [
    "config.yaml",
    "model.safetensors",
    "model.json",
    "splits/ravdess.csv",
    "log.csv",
    "metrics/ravdess.json",
    "predictions/ravdess.csv",
    "plots/confusion_ravdess.png",
    "plots/curves.png",
    "done.json",
]


@pytest.fixture(scope="module")
def tiny_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp / "cache"), "training.epochs=8", "evaluation.corpora=[crema-d]",
                                 "evaluation.figures=true"])
    return train(cfg, tmp / "run", progress=False)


def test_run_directory_contract(tiny_run: Path) -> None:
    for rel in RUN_FILES:
        assert (tiny_run / rel).is_file(), rel
    info = json.loads((tiny_run / "model.json").read_text())
    assert info["labels"] == ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    assert info["features"]["n_mels"] == 32
    m = json.loads((tiny_run / "metrics/ravdess.json").read_text())
    for key in ("accuracy", "uar", "macro_f1", "n", "labels", "per_class_recall", "confusion", "ci95", "leaky"):
        assert key in m
    assert m["leaky"] is False and m["split"] == "test"
    if m["speakers"] < 5:  # too few test speakers for a speaker bootstrap: no interval, a reason
        assert m["ci95"] is None and m["ci95_reason"].endswith("too few for a speaker bootstrap")
    else:
        assert set(m["ci95"]) >= {"accuracy", "uar"}
    log = read_csv(tiny_run / "log.csv")
    assert [int(r["epoch"]) for r in log] == list(range(1, len(log) + 1)) and len(log) >= 1  # from 1, as shown
    assert not (tiny_run / "checkpoints").exists()  # cleaned once complete
    assert not (tiny_run / ".lock").exists()  # a finished run holds no lock file


def test_learns_above_chance_on_held_out_speakers(tiny_run: Path) -> None:
    m = json.loads((tiny_run / "metrics/ravdess.json").read_text())
    assert m["uar"] > 1 / 6 + 0.1, m["uar"]


def test_cross_corpus_evaluation_uses_every_utterance(tiny_run: Path) -> None:
    m = json.loads((tiny_run / "metrics/crema-d.json").read_text())
    assert m["split"] == "all" and m["n"] == 96 and m["leaky"] is False


def test_test_speakers_unseen_in_training(tiny_run: Path) -> None:
    split = read_csv(tiny_run / "splits/ravdess.csv")
    parts: dict[str, set[str]] = {}
    for r in split:
        parts.setdefault(r["split"], set()).add(r["speaker"])
    assert not parts["test"] & (parts["train"] | parts["val"])
    preds = read_csv(tiny_run / "predictions/ravdess.csv")
    assert {r["speaker"] for r in preds} == parts["test"]


def test_text_overlap_by_hand_and_marked_as_a_leak(tiny_run: Path, synth_tiny: Path) -> None:
    """``text_overlap``: the share of test utterances whose text a train/val utterance says; the model card
    marks it where it marks a leaky split, and the run records the texts it trained on."""
    from emoshift.corpora import scan

    said = {u.id: u.sentence for u in scan("ravdess", str(synth_tiny / "ravdess")).utterances}
    parts = {r["id"]: r["split"] for r in read_csv(tiny_run / "splits/ravdess.csv")}
    training = {said[i] for i, p in parts.items() if p != "test"}
    tested = [i for i, p in parts.items() if p == "test"]
    share = sum(said[i] in training for i in tested) / len(tested)
    m = json.loads((tiny_run / "metrics/ravdess.json").read_text())
    assert m["text_overlap"] == pytest.approx(share) and share > 0
    assert json.loads((tiny_run / "metrics/crema-d.json").read_text())["text_overlap"] == 0.0
    assert set(json.loads((tiny_run / "training_texts.json").read_text())["texts"]) == {
        "kids are talking by the door", "dogs are sitting by the door"}
    assert f"test (TEXT OVERLAP {share:.0%})" in (tiny_run / "README.md").read_text()


def test_metrics_equal_sklearn(tiny_run: Path) -> None:
    rows = read_csv(tiny_run / "predictions/ravdess.csv")
    m = json.loads((tiny_run / "metrics/ravdess.json").read_text())
    y, p = [r["true"] for r in rows], [r["pred"] for r in rows]
    assert m["n"] == len(rows)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["uar"] == pytest.approx(balanced_accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", labels=m["labels"], zero_division=0))
    probs = np.array([[float(r[f"p_{lab}"]) for lab in m["labels"]] for r in rows])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert [m["labels"][i] for i in probs.argmax(1)] == p


def test_complete_run_is_not_retrained(tiny_run: Path) -> None:
    cfg_text = (tiny_run / "config.yaml").read_text()
    before = (tiny_run / "done.json").stat().st_mtime_ns
    cfg = load_config(tiny_run / "config.yaml")
    t0 = time.time()
    train(cfg, tiny_run, progress=False)
    assert time.time() - t0 < 5
    assert (tiny_run / "done.json").stat().st_mtime_ns == before
    assert (tiny_run / "config.yaml").read_text() == cfg_text


def test_predict_cli(tiny_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from emoshift.cli import app

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    good = sorted((synth_tiny / "crema-d" / "AudioWAV").glob("*.wav"))[:2]
    res = CliRunner().invoke(app, ["predict", str(tiny_run), *map(str, good), str(bad), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [o["error"] is None for o in out] == [True, True, False]
    assert "git-LFS" in out[2]["error"]
    assert abs(sum(out[0]["probabilities"].values()) - 1) < 1e-4


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"training\.lr_schedule.*training\.schedule"):
        load_config(overrides=["training.lr_schedule=cosine"])
    with pytest.raises(ConfigError, match=r"trainer\.device.*trainer\.devices"):
        load_config(overrides=["trainer.device=2"])
    with pytest.raises(ConfigError, match="unknown model 'resnet19'"):
        load_config(overrides=["model.name=resnet19"], checks=CONFIG_CHECKS)


def _run_cli(args: list[str]) -> Forked:
    """``python -m emoshift ARGS`` as a process of its own, forked from the server that imported the training stack
    once per test worker (tests/crash/forked.py): the same entry point without 10 s of imports; stderr kept."""
    return Forked([sys.executable, "-m", "emoshift", *args], {**os.environ, "PYTHONUNBUFFERED": "1"})


def test_resume_after_kill_equals_uninterrupted(synth_tiny: Path, tmp_path: Path) -> None:
    sets = [*tiny_overrides(synth_tiny, tmp_path / "cache"), "training.epochs=5", "training.augment.specaugment=true"]
    full = train(load_config(overrides=sets), tmp_path / "full", progress=False)

    args = ["train", "-q", "-o", str(tmp_path / "cut"), *[a for s in sets for a in ("--set", s)]]
    proc = _run_cli(args)
    log = tmp_path / "cut" / "log.csv"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and len(read_csv(log)) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be interrupted"
    assert not (tmp_path / "cut" / "done.json").exists()
    assert (tmp_path / "cut" / "checkpoints" / "last.ckpt").is_file()

    resumed = train(load_config(overrides=sets), tmp_path / "cut", progress=False)
    a = json.loads((full / "metrics/ravdess.json").read_text())
    b = json.loads((resumed / "metrics/ravdess.json").read_text())
    for key in ("accuracy", "uar", "macro_f1", "confusion", "ci95"):
        assert a[key] == b[key], key
    la, lb = read_csv(full / "log.csv"), read_csv(resumed / "log.csv")
    assert [r["val_uar"] for r in la] == [r["val_uar"] for r in lb]


def test_ddp_on_cpu(synth_tiny: Path, tmp_path: Path) -> None:
    sets = [*tiny_overrides(synth_tiny, tmp_path / "cache"), "training.epochs=2",
            "trainer.devices=2", "trainer.strategy=ddp",  # the exact flags; CPU here, so gloo
            "evaluation.figures=true"]  # the whole run directory, figures too
    out = tmp_path / "ddp"
    proc = _run_cli(["train", "-q", "-o", str(out), *[a for s in sets for a in ("--set", s)]])
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-3000:]  # rank 1: `python -m emoshift.__main__`
    for rel in RUN_FILES:
        assert (out / rel).is_file(), rel
    assert len(read_csv(out / "log.csv")) == 2


# --------------------------------------------------------------------------------------------------------
# Ctrl-C / SIGTERM: stop within a batch, say so, leave whole epochs; the rerun says it resumes (issue 24)


class _SignalAt(L.Callback):
    """Sends ``signum`` to this process at the end of training (or validation) batch ``batch`` of ``epoch``
    (0-based): a signal arriving mid-epoch, at a point the test knows."""

    def __init__(self, signum: int, epoch: int, stage: str, batch: int) -> None:
        self.signum, self.epoch, self.stage, self.batch = signum, epoch, stage, batch
        self.batches_after = 0

    def _at(self, trainer, stage: str, batch_idx: int) -> None:  # type: ignore[no-untyped-def]
        if (trainer.current_epoch, stage, batch_idx) == (self.epoch, self.stage, self.batch):
            os.kill(os.getpid(), self.signum)
        elif self.batches_after or (trainer.current_epoch, stage) > (self.epoch, self.stage):
            self.batches_after += 1

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
        self._at(trainer, "train", batch_idx)

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):  # type: ignore[no-untyped-def]
        self._at(trainer, "val", batch_idx)


def test_a_signal_stops_training_within_the_batch_and_the_rerun_resumes_to_the_same_run(
    synth_tiny: Path, tmp_path: Path, cnn_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emoshift.core.errors import TrainingInterrupted

    cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp_path / "cache"), "training.epochs=2",
                                 "trainer.progress=true"])  # the epoch lines too (not a terminal: one per epoch)
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN where a shell started us in the background
    # Ctrl-C in the first epoch: nothing to keep yet, and it says so
    sigint = _SignalAt(signal.SIGINT, 0, "train", 1)
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg, out, progress=True, callbacks=[sigint])
    assert info.value.exit_code == 130 and sigint.batches_after == 0  # stopped at the batch it arrived in
    assert "SIGINT in epoch 1 of 2 (before training batch 3)" in str(info.value)
    assert "no checkpoint yet: the same command starts again" in str(info.value)
    assert "SIGINT: stopping after the current batch" in capsys.readouterr().err
    assert not (out / "log.csv").exists() and not (out / ".lock").exists()
    # SIGTERM while validating the second epoch: the first epoch is kept, logged and checkpointed
    sigterm = _SignalAt(signal.SIGTERM, 1, "val", 0)
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg, out, progress=True, callbacks=[sigterm])
    assert info.value.exit_code == 143 and sigterm.batches_after == 0
    assert "SIGTERM in epoch 2 of 2 (validating, before batch 2)" in str(info.value)
    assert "last.ckpt holds epoch 1: run the same command again to resume from epoch 2" in str(info.value)
    assert [r["epoch"] for r in read_csv(out / "log.csv")] == ["1"]
    assert (out / "checkpoints" / "last.ckpt").is_file() and not (out / "done.json").exists()
    assert signal.getsignal(signal.SIGINT) is before  # handlers given back
    capsys.readouterr()
    # the rerun says what it resumes, trains epoch 2 only, and ends where an uninterrupted run ends
    train(cfg, out, progress=True)
    err = capsys.readouterr().err
    assert f"resuming {out}: 1 epoch(s) of 2 done (last.ckpt), training from epoch 2" in err
    assert "epoch 1/2" not in err and "epoch 2/2" in err  # the logged epoch is not trained again
    assert read_csv(out / "log.csv") == [
        {**r, "seconds": got["seconds"]} for r, got in zip(read_csv(cnn_run / "log.csv"), read_csv(out / "log.csv"), strict=True)
    ]


def test_each_epochs_log_row_follows_its_checkpoint(tmp_path: Path) -> None:
    """EpochLog runs after ModelCheckpoint (Lightning orders checkpoint callbacks last, as given), so an epoch
    is logged only once last.ckpt holds it: a resumed run never trains a logged epoch again."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from emoshift.core.rundir import RunDir
    from emoshift.training.fit import EpochLog, build_trainer

    trainer = build_trainer(load_config(overrides=["trainer.progress=false"]), RunDir.of(tmp_path), progress=False)
    order = [type(cb) for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint | EpochLog)]
    assert order == [ModelCheckpoint, EpochLog]
