"""The cores a process may use: its affinity, not the machine's CPU count, and no default pool larger."""

from __future__ import annotations

import os

import pytest

from emoshift.core import cores

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this OS")


@needs_affinity
def test_cores_is_this_process_affinity() -> None:
    assert cores.cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("allowed", "default", "expected"), [(1, 2, 1), (2, 2, 2), (8, 2, 2), (4, 16, 4)])
def test_a_default_pool_is_never_larger_than_the_cores(
    monkeypatch: pytest.MonkeyPatch, allowed: int, default: int, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(allowed)), raising=False)
    assert cores.cores() == allowed
    assert cores.workers(None, default) == expected
    assert cores.workers(3, default) == 3 and cores.workers(0, default) == 0  # what the caller asked, as asked


def test_a_negative_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="workers must be >= 0, got -1"):
        cores.workers(-1, 2)


@pytest.mark.parametrize(("tasks", "expected"), [(0, 0), (8, 1), (9, 2)])
def test_a_pool_starts_only_for_more_than_one_chunk(tasks: int, expected: int) -> None:
    assert cores.pool_size(2, tasks, chunk=8) == expected
