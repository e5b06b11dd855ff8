"""What the kill tests (tests/crash/test_kill_*.py) share: the driver scripts, starting and killing them, and the
checks that a rerun equals an uninterrupted run. Each entry point's tests are a file of their own, so that
`make test`'s two workers (xdist, --dist loadfile) run them side by side.

SIGKILL at several points of each long-running entry point, then rerun: the result equals an uninterrupted
run's and no partial file is left. Two builders of the same cache at once: both finish, the cache is whole.

Kills are timed by what is on disk (a temp file, a shard, a metrics file appearing), never by sleeping, so
a slow machine only slows the test. Cache drivers slow each chunk by a few ms to leave room for the kill.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emoshift.core.io import read_csv
from tests.conftest import tiny_overrides
from tests.crash.forked import Forked

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"}

FEATURES = textwrap.dedent(
    """
    import sys, time
    import emoshift.features.cache as c
    from emoshift.corpora import scan
    from emoshift.config.features import FeatureConfig
    fast = c.log_mel_many
    def slow(*a, **k):  # a slow disk: room to kill mid-build
        time.sleep(0.1)
        return fast(*a, **k)
    c.log_mel_many = slow
    sc = scan("ravdess", sys.argv[1])
    c.FeatureCache(sys.argv[2]).build("ravdess", sc.utterances, FeatureConfig(n_mels=32), workers=2)
    """
)

EMBEDDINGS = textwrap.dedent(
    """
    import sys, torch
    import emoshift.features.embedding_cache as ec
    from emoshift.corpora import scan
    from emoshift.models.ssl import hubert
    ec.SHARD_ROWS = 8  # many shards: many points to be killed between and inside
    torch.manual_seed(0)
    model = hubert(num_labels=4, preset="tiny", mode="frozen")
    sc = scan("ravdess", sys.argv[1])
    ec.EmbeddingCache(sys.argv[2]).build("ravdess", sc.utterances[:48], model, model_key="k", max_batch_seconds=4)
    """
)

# `emoshift train` with a Lightning callback that SIGKILLs it at a chosen point of an epoch: a deterministic
# mid-epoch kill point (the rerun is the plain command). argv: EPOCH STAGE BATCH emoshift-args...
KILLED_AT = textwrap.dedent(
    """
    import os, signal, sys
    import lightning as L
    import emoshift.training.fit as ml
    epoch, stage, batch = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    class Kill(L.Callback):
        def _at(self, trainer, batch_idx, where):
            if where == stage and trainer.current_epoch == epoch and batch_idx == batch:
                os.kill(os.getpid(), signal.SIGKILL)
        def on_train_batch_end(self, trainer, module, outputs, b, batch_idx):
            self._at(trainer, batch_idx, "train")
        def on_validation_batch_end(self, trainer, module, outputs, b, batch_idx, dataloader_idx=0):
            self._at(trainer, batch_idx, "val")
    build = ml.build_trainer
    def with_kill(*a, **k):
        trainer = build(*a, **k)
        trainer.callbacks.insert(0, Kill())
        return trainer
    ml.build_trainer = with_kill
    sys.argv = ["emoshift", *sys.argv[4:]]
    from emoshift.cli import main
    main()
    """
)


def start(args: list[str]) -> Forked:
    """``args`` (``python -m emoshift ...`` or ``python -c SCRIPT ...``) as a process forked from a server that
    imported the training stack once (tests/crash/forked.py): stdout dropped, stderr kept."""
    return Forked(args, ENV)


def kill_when(proc: Forked, reached: Callable[[], bool], what: str, limit: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``reached()``; fails if it ended first."""
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        if reached():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, f"ended before {what} (rc {proc.returncode}): {err[-2000:]}"


def lock_free(lock: Path, within: float = 10.0) -> bool:
    """Whether ``lock`` can be taken within a few seconds (a killed builder's pool workers must die with it)."""
    import fcntl

    deadline = time.monotonic() + within
    with open(lock, "a+b") as f:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            else:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                return True


def run(args: list[str]) -> None:
    """``args`` run to its end (as :func:`start` starts it); it must succeed."""
    proc = start(args)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-3000:]


def partial_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp"))


def files(folder: Path, pattern: str) -> set[Path]:
    """Non-empty files matching ``pattern`` under ``folder``, tolerant of a writer deleting them meanwhile."""
    found = set()
    for dirpath, _, names in os.walk(folder):  # os.walk ignores a folder removed while it walks
        for name in fnmatch.filter(names, pattern):
            with contextlib.suppress(OSError):  # gone between the listing and the stat: not there
                if os.stat(os.path.join(dirpath, name)).st_size:
                    found.add(Path(dirpath, name))
    return found


def any_file(
    folder: Path, pattern: str, at_least: int = 1, *, besides: frozenset[Path] = frozenset()
) -> Callable[[], bool]:
    """``at_least`` such files exist, not counting ``besides`` (what an earlier, killed run left)."""
    return lambda: len(files(folder, pattern) - besides) >= at_least


def features_of(cache: Path) -> dict[str, np.ndarray]:
    from emoshift.config.features import FeatureConfig
    from emoshift.features.cache import FeatureCache

    store = FeatureCache(cache).open("ravdess", FeatureConfig(n_mels=32))
    return {i: store.get(i) for i in store.ids}


def embeddings_of(cache: Path) -> dict[str, np.ndarray]:
    folder = cache / "ravdess" / "k"
    index = json.loads((folder / "index.json").read_text())
    names = {e["shard"] for e in index["entries"].values()}
    assert {p.name for p in folder.glob("emb-*.npy")} == names, "a shard the index does not name was left"
    shards = {n: np.load(folder / n) for n in names}
    return {i: shards[e["shard"]][e["row"]] for i, e in index["entries"].items()}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "emoshift", *args]


def sets(synth: Path, cache: Path) -> list[str]:
    sets = [*tiny_overrides(synth, cache), "training.epochs=2", "evaluation.corpora=[crema-d]"]
    return [a for s in sets for a in ("--set", s)]


def same_results(a: Path, b: Path, corpora: tuple[str, ...] = ("ravdess", "crema-d")) -> None:
    for corpus in corpora:
        ma = json.loads((a / "metrics" / f"{corpus}.json").read_text())
        mb = json.loads((b / "metrics" / f"{corpus}.json").read_text())
        for key in ("n", "accuracy", "uar", "macro_f1", "confusion", "ci95"):
            assert ma[key] == mb[key], (corpus, key)
    logs_a, logs_b = sorted(a.rglob("log.csv")), sorted(b.rglob("log.csv"))  # a k-fold run: one per fold
    assert [p.relative_to(a) for p in logs_a] == [p.relative_to(b) for p in logs_b] and logs_a
    for la, lb in zip(logs_a, logs_b, strict=True):
        assert [r["val_uar"] for r in read_csv(la)] == [r["val_uar"] for r in read_csv(lb)]


def same_weights_and_predictions(a: Path, b: Path) -> None:
    from safetensors.numpy import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    for corpus in ("ravdess", "crema-d"):
        assert read_csv(a / "predictions" / f"{corpus}.csv") == read_csv(b / "predictions" / f"{corpus}.csv")


def no_half_written(root: Path) -> None:
    assert partial_files(root) == []
    for p in root.rglob("*.json"):
        json.loads(p.read_text())  # every JSON whole
    for p in root.rglob("*.csv"):
        read_csv(p)
