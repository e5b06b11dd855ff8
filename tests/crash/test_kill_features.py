"""SIGKILL in the middle of a feature-cache build, then a rebuild: the cache equals an uninterrupted build's.
Two builds of the same cache at once: both finish, the cache is whole.

Kills are timed by what is on disk, never by sleeping (tests/crash/kill.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.crash.kill import (
    FEATURES,
    any_file,
    features_of,
    files,
    kill_when,
    lock_free,
    partial_files,
    run,
    start,
)


@pytest.fixture(scope="module")
def reference_features(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    cache = tmp_path_factory.mktemp("features-ref")
    run([sys.executable, "-c", FEATURES, str(synth_tiny / "ravdess"), str(cache)])
    return features_of(cache)


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
    got = features_of(cache)
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
    got = features_of(cache)
    assert got.keys() == reference_features.keys()
    for i, feats in reference_features.items():
        np.testing.assert_array_equal(got[i], feats)
    assert partial_files(cache) == []
