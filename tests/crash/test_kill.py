"""SIGKILL at several points of each long-running entry point, then rerun: the result equals an uninterrupted
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
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from emoshift.core.io import read_csv
from tests.conftest import tiny_overrides

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


def start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen[bytes], reached: Callable[[], bool], what: str, limit: float = 300) -> None:
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
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


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


# ------------------------------------------------------------------------------------------------ caches


def _features(cache: Path) -> dict[str, np.ndarray]:
    from emoshift.config.features import FeatureConfig
    from emoshift.features.cache import FeatureCache

    store = FeatureCache(cache).open("ravdess", FeatureConfig(n_mels=32))
    return {i: store.get(i) for i in store.ids}


@pytest.fixture(scope="module")
def reference_features(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    cache = tmp_path_factory.mktemp("features-ref")
    run([sys.executable, "-c", FEATURES, str(synth_tiny / "ravdess"), str(cache)])
    return _features(cache)


def test_feature_cache_killed_mid_build_then_rebuilt_equals_uninterrupted(
    synth_tiny: Path, tmp_path: Path, reference_features: dict[str, np.ndarray]
) -> None:
    cache = tmp_path / "cache"
    args = [sys.executable, "-c", FEATURES, str(synth_tiny / "ravdess"), str(cache)]
    for shards in (1, 2):  # a worker wrote its first shard; both did
        left = frozenset(files(cache, "shard-*"))  # the killed run's: the next build deletes them
        kill_when(start(args), any_file(cache, "shard-*", at_least=shards, besides=left), f"{shards} shard(s)")
        (folder,) = [p for p in cache.iterdir() if p.is_dir()]
        assert lock_free(folder / ".lock"), "the killed build's workers still hold the cache"
    run(args)
    got = _features(cache)
    assert got.keys() == reference_features.keys()
    for i, feats in reference_features.items():
        np.testing.assert_array_equal(got[i], feats)
    assert partial_files(cache) == []
    assert len(list(folder.glob("features-*.npy"))) == 1, "an interrupted build's data file was left"


def test_two_feature_cache_builds_at_once_both_finish_consistent(
    synth_tiny: Path, tmp_path: Path, reference_features: dict[str, np.ndarray]
) -> None:
    cache = tmp_path / "cache"
    args = [sys.executable, "-c", FEATURES, str(synth_tiny / "ravdess"), str(cache)]
    a, b = start(args), start(args)
    for p in (a, b):
        p.wait(timeout=600)
        assert p.returncode == 0, p.stderr.read().decode()[-2000:] if p.stderr else ""
    got = _features(cache)
    assert got.keys() == reference_features.keys()
    for i, feats in reference_features.items():
        np.testing.assert_array_equal(got[i], feats)
    assert partial_files(cache) == []


def _embeddings(cache: Path) -> dict[str, np.ndarray]:
    folder = cache / "ravdess" / "k"
    index = json.loads((folder / "index.json").read_text())
    names = {e["shard"] for e in index["entries"].values()}
    assert {p.name for p in folder.glob("emb-*.npy")} == names, "a shard the index does not name was left"
    shards = {n: np.load(folder / n) for n in names}
    return {i: shards[e["shard"]][e["row"]] for i, e in index["entries"].items()}


def test_embedding_cache_killed_then_resumed_and_concurrent_builds(synth_tiny: Path, tmp_path: Path) -> None:
    ref, cut, both = tmp_path / "ref", tmp_path / "cut", tmp_path / "both"
    run([sys.executable, "-c", EMBEDDINGS, str(synth_tiny / "ravdess"), str(ref)])
    expected = _embeddings(ref)
    assert len(expected) == 48

    args = [sys.executable, "-c", EMBEDDINGS, str(synth_tiny / "ravdess"), str(cut)]
    kill_when(start(args), any_file(cut, "emb-*.npy"), "the first shard")
    kill_when(start(args), any_file(cut, "emb-*.npy", at_least=3), "the third shard")
    run(args)
    for cache in (cut, both):
        if cache is both:  # two builders of one folder at once
            a, b = start([*args[:-1], str(both)]), start([*args[:-1], str(both)])
            for p in (a, b):
                assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:] if p.stderr else ""
        got = _embeddings(cache)
        assert got.keys() == expected.keys()
        for i, row in expected.items():
            np.testing.assert_allclose(got[i], row, rtol=1e-5, atol=1e-6)
        assert partial_files(cache) == []


# ------------------------------------------------------------------------------------------------ commands


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "emoshift", *args]


def _sets(synth: Path, cache: Path) -> list[str]:
    sets = [*tiny_overrides(synth, cache), "training.epochs=2", "evaluation.corpora=[crema-d]"]
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def reference_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("train-ref")
    run(_cli("train", "-q", "-o", str(tmp / "run"), *_sets(synth_tiny, tmp / "cache")))
    return tmp / "run"


def _same_results(a: Path, b: Path, corpora: tuple[str, ...] = ("ravdess", "crema-d")) -> None:
    for corpus in corpora:
        ma = json.loads((a / "metrics" / f"{corpus}.json").read_text())
        mb = json.loads((b / "metrics" / f"{corpus}.json").read_text())
        for key in ("n", "accuracy", "uar", "macro_f1", "confusion", "ci95"):
            assert ma[key] == mb[key], (corpus, key)
    logs_a, logs_b = sorted(a.rglob("log.csv")), sorted(b.rglob("log.csv"))  # a k-fold run: one per fold
    assert [p.relative_to(a) for p in logs_a] == [p.relative_to(b) for p in logs_b] and logs_a
    for la, lb in zip(logs_a, logs_b, strict=True):
        assert [r["val_uar"] for r in read_csv(la)] == [r["val_uar"] for r in read_csv(lb)]


def test_train_killed_in_cache_build_and_in_evaluation_resumes_to_the_same_run(
    synth_tiny: Path, tmp_path: Path, reference_run: Path
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = _cli("train", "-q", "-o", str(out), *_sets(synth_tiny, cache))
    kill_when(start(args), lambda: bool(partial_files(cache)) if cache.is_dir() else False, "the cache build")
    kill_when(start(args), lambda: (out / "metrics" / "ravdess.json").is_file(), "the first evaluation")
    assert not (out / "done.json").exists()
    run(args)
    _same_results(reference_run, out)
    assert partial_files(tmp_path) == []


def _same_weights_and_predictions(a: Path, b: Path) -> None:
    from safetensors.numpy import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    for corpus in ("ravdess", "crema-d"):
        assert read_csv(a / "predictions" / f"{corpus}.csv") == read_csv(b / "predictions" / f"{corpus}.csv")


def _no_half_written(root: Path) -> None:
    assert partial_files(root) == []
    for p in root.rglob("*.json"):
        json.loads(p.read_text())  # every JSON whole
    for p in root.rglob("*.csv"):
        read_csv(p)


def test_train_killed_mid_epoch_resumes_to_the_same_weights(
    synth_tiny: Path, tmp_path: Path, reference_run: Path
) -> None:
    out = tmp_path / "run"
    args = ["train", "-q", "-o", str(out), *_sets(synth_tiny, tmp_path / "cache")]
    # 2nd batch of epoch 0 (no checkpoint yet: the rerun starts again), 2nd batch of epoch 1 and its validation
    # (the rerun resumes from last.ckpt, written at the end of epoch 0, and replays epoch 1 from its start)
    for epoch, stage, batch in [(0, "train", 1), (1, "train", 1), (1, "val", 0)]:
        kill_when(start([sys.executable, "-c", KILLED_AT, str(epoch), stage, str(batch), *args]),
                  lambda: False, f"epoch {epoch} {stage} batch {batch}")  # it kills itself there
        rows = read_csv(out / "log.csv") if (out / "log.csv").is_file() else []
        assert len(rows) == epoch, "killed at another epoch than asked"  # epochs before it are complete
        assert not (out / "model.safetensors").exists()
        _no_half_written(out)
    run(_cli(*args))
    _same_results(reference_run, out)
    _same_weights_and_predictions(reference_run, out)  # the epoch restarts from last.ckpt: same batches
    _no_half_written(tmp_path)


def test_study_killed_mid_training_resumes_to_the_same_results(
    synth_tiny: Path, tmp_path: Path, reference_run: Path
) -> None:
    config = Path(__file__).parents[2] / "configs" / "study.yaml"
    out = tmp_path / "study"
    corpora = ["--corpus", f"ravdess={synth_tiny / 'ravdess'}", "--corpus", f"crema-d={synth_tiny / 'crema-d'}"]
    sets = [a for s in ["training.epochs=2", "training.batch_size=16", "model.width_mult=0.125",
                        "features.n_mels=32", "features.crop_s=1.0", "evaluation.n_bootstrap=50",
                        f"data.cache_dir={tmp_path / 'cache'}"] for a in ("--set", s)]
    args = _cli("study", str(config), "--profile", "demo", "--only", "L2", "-q", "-o", str(out), *corpora, *sets)
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
    run(_cli("train", "-q", str(out / "runs" / "L2" / "config.yaml"), "-o", str(ref)))
    _same_results(ref, out / "runs" / "L2", ("ravdess",))  # the study evaluates crema-d on its own
    assert (out / "results.csv").is_file() and (out / "report.md").is_file()
    assert partial_files(tmp_path) == []


def test_export_killed_then_rerun_writes_the_same_model(reference_run: Path, tmp_path: Path) -> None:
    ref, cut = tmp_path / "ref.onnx", tmp_path / "cut.onnx"
    run(_cli("export", str(reference_run), "-o", str(ref), "--max-files", "8"))
    args = _cli("export", str(reference_run), "-o", str(cut), "--max-files", "8")
    kill_when(start(args), lambda: bool(partial_files(tmp_path)), "writing the model")
    assert not cut.exists()
    run(args)
    import onnx
    from onnx import numpy_helper

    a, b = onnx.load(str(ref)), onnx.load(str(cut))  # the same graph and weights (names may differ per export)
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    wa, wb = ([numpy_helper.to_array(t) for t in m.graph.initializer] for m in (a, b))
    assert len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))
    assert partial_files(tmp_path) == []
