"""SIGKILL between and inside embedding-cache shards, then a resume; two builders of one folder at once: the
embeddings equal an uninterrupted build's.

Kills are timed by what is on disk, never by sleeping (tests/crash/kill.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.crash.kill import EMBEDDINGS, any_file, embeddings_of, kill_when, partial_files, run, start


def test_embedding_cache_killed_then_resumed_and_concurrent_builds(synth_tiny: Path, tmp_path: Path) -> None:
    ref, cut, both = tmp_path / "ref", tmp_path / "cut", tmp_path / "both"
    run([sys.executable, "-c", EMBEDDINGS, str(synth_tiny / "ravdess"), str(ref)])
    expected = embeddings_of(ref)
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
        got = embeddings_of(cache)
        assert got.keys() == expected.keys()
        for i, row in expected.items():
            np.testing.assert_allclose(got[i], row, rtol=1e-5, atol=1e-6)
        assert partial_files(cache) == []
