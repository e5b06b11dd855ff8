"""The CPU cores this process may use: what every pool and thread count in emoshift is sized from.

:func:`cores` counts the CPUs in this process's affinity mask where the OS keeps one (Linux: a container's or a
SLURM job's cpuset, ``taskset``, a parent that pinned it), not the machine's CPUs. A pool larger than that only
makes its workers take turns on the same cores, paying each worker's start (a fork, openSMILE's configuration
parsed again) for nothing; :func:`workers` caps a default pool size by it.
"""

from __future__ import annotations

import os


def cores() -> int:
    """CPU cores this process may use (its affinity where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def workers(default: int) -> int:
    """A pool's size when the caller named none: ``default``, but never more processes than :func:`cores`."""
    return max(1, min(default, cores()))
