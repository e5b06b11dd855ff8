"""The CPU cores this process may use: what every pool and thread count in emoshift is sized from.

:func:`cores` counts the CPUs in this process's affinity mask where the OS keeps one (Linux: a container's or a
SLURM job's cpuset, ``taskset``, a parent that pinned it), not the machine's CPUs. A pool larger than that only
makes its workers take turns on the same cores, paying each worker's start (a fork, openSMILE's configuration
parsed again) for nothing; :func:`workers` caps a default pool size by it, and :func:`pool_size` is what a
build that works in chunks starts for the work it has.
"""

from __future__ import annotations

import os


def cores() -> int:
    """CPU cores this process may use (its affinity where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def workers(requested: int | None, default: int) -> int:
    """A pool's size: ``requested`` as the caller gave it (0 or 1: in this process), or, where it named none,
    ``default`` but never more processes than :func:`cores`. A negative number is a ValueError."""
    if requested is None:
        return max(1, min(default, cores()))
    if int(requested) < 0:
        raise ValueError(f"workers must be >= 0, got {requested}")
    return int(requested)


def pool_size(workers: int, tasks: int, chunk: int) -> int:
    """Processes worth starting for ``tasks`` items done ``chunk`` at a time by ``workers``: none without work,
    none beyond this one for a single chunk."""
    if tasks == 0:
        return 0
    return max(1, workers) if tasks > chunk else 1
