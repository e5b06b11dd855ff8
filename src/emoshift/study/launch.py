"""Where a fanned-out study's jobs run: a process pool on this machine, SLURM through submitit, or (for tests)
submitit's local executor with the same code path as SLURM.

:class:`LaunchOptions` is what ``emoshift study --jobs N --launcher ... --slurm-*`` asks for, validated;
:func:`make_backend` turns it into a :class:`Backend` that submits ``fn(task)`` calls and says which are done.
The scheduling itself (which job may start when) is :mod:`emoshift.study.fanout`'s.

- ``pool`` (the default): ``--jobs N`` worker processes on this machine, forked from a server that imported the
  training code once. Each takes one GPU of the visible ones (``CUDA_VISIBLE_DEVICES``, round-robin when there
  are fewer GPUs than workers) and dies with the study process (:func:`~emoshift.core.lock.die_with_parent`);
  on CPU the cores are divided among them.
- ``slurm``: every job is its own SLURM job (``submitit.SlurmExecutor``) with the ``--slurm-*`` resources;
  submitit's pickles and each job's log land in ``OUT/jobs/``. ``--jobs N`` caps how many are queued at once
  (default: no cap, so the study takes the time of its longest chain).
- ``local`` (hidden, for tests): ``submitit.LocalExecutor``, one subprocess per job, logs in ``OUT/jobs/``.

Torch-free: GPUs are counted only when a pool is started.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emoshift.core.cores import cores
from emoshift.core.errors import EmoshiftError
from emoshift.core.extras import require
from emoshift.core.overrides import explain

Launcher = Literal["pool", "slurm", "local"]
_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?$")  # [D-]H:MM[:SS]
_MEM = re.compile(r"^\d+[KMGT]?$")


class LaunchError(EmoshiftError, ValueError):
    """The --jobs / --launcher / --slurm-* options cannot be used together (one-line message)."""


def minutes(text: str | int) -> int:
    """SLURM's time limit as minutes: ``90``, ``4:00:00`` (H:MM:SS), ``1-12:00`` (D-H:MM)."""
    if isinstance(text, int) or str(text).strip().isdigit():
        value = int(text)
    else:
        m = _TIME.match(str(text).strip())
        if m is None:
            raise ValueError(f"time {text!r}: give minutes (90) or [D-]H:MM[:SS] (4:00:00)")
        days, hours, mins, secs = (int(g) if g else 0 for g in m.groups())
        value = days * 1440 + hours * 60 + mins + (1 if secs else 0)
    if value < 1:
        raise ValueError(f"time {text!r}: must be at least one minute")
    return value


class SlurmOptions(BaseModel):
    """The resources of every SLURM job of a study (``--slurm-*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str = Field(..., min_length=1)
    time_min: int = Field(default=240, ge=1, description="time limit of each job, minutes")
    gpus_per_job: int = Field(default=1, ge=0)
    cpus_per_job: int = Field(default=8, ge=1)
    mem: str | None = Field(default=None, description="memory of each job, SLURM's syntax: 32G")
    account: str | None = None

    @field_validator("time_min", mode="before")
    @classmethod
    def _time(cls, v: Any) -> int:
        return minutes(v)

    @field_validator("mem")
    @classmethod
    def _mem(cls, v: str | None) -> str | None:
        if v is not None and not _MEM.match(v.strip().upper()):
            raise ValueError(f"memory {v!r}: give SLURM's syntax, e.g. 32G or 16000M")
        return v.strip().upper() if v is not None else None

    def parameters(self, job_name: str) -> dict[str, Any]:
        """``submitit.SlurmExecutor.update_parameters`` arguments: one task on one node per job."""
        out: dict[str, Any] = {
            "job_name": job_name,
            "partition": self.partition,
            "time": self.time_min,
            "nodes": 1,
            "ntasks_per_node": 1,
            "cpus_per_task": self.cpus_per_job,
        }
        if self.gpus_per_job:
            out["gpus_per_node"] = self.gpus_per_job
        if self.mem is not None:
            out["mem"] = self.mem
        if self.account is not None:
            out["account"] = self.account
        return out


class LaunchOptions(BaseModel):
    """How a study's jobs run: ``jobs`` at once (None: 1 on this machine, no cap on SLURM) on ``launcher``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: int | None = Field(default=None, ge=1)
    launcher: Launcher = "pool"
    slurm: SlurmOptions | None = None

    @model_validator(mode="after")
    def _slurm_needs_its_options(self) -> LaunchOptions:
        if self.launcher == "slurm" and self.slurm is None:
            raise ValueError("--launcher slurm needs --slurm-partition")
        if self.launcher != "slurm" and self.slurm is not None:
            raise ValueError("--slurm-* options need --launcher slurm")
        return self

    @classmethod
    def build(cls, **data: Any) -> LaunchOptions:
        """Validated options; every problem is one :class:`LaunchError` line."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise LaunchError(explain(e, cls)) from None

    @property
    def sequential(self) -> bool:
        """One job at a time in this process: today's study runner, unchanged."""
        return self.launcher == "pool" and (self.jobs or 1) == 1

    @property
    def capacity(self) -> int | None:
        """How many jobs may be in flight at once (None: no cap)."""
        if self.launcher == "slurm":
            return self.jobs
        return self.jobs or 1

    def threads(self) -> int | None:
        """torch threads for each job: this machine's cores divided among the jobs; a SLURM job's own CPUs."""
        if self.launcher == "slurm":
            return self.slurm.cpus_per_job if self.slurm else None
        return max(1, cores() // (self.jobs or 1))


class Handle(Protocol):
    """A submitted job: a ``concurrent.futures.Future`` or a ``submitit.Job``."""

    def done(self) -> bool: ...

    def result(self) -> Any: ...


class Backend(Protocol):
    poll_s: float

    def submit(self, fn: Callable[[Any], Any], task: Any, *, name: str) -> Handle: ...

    def where(self, handle: Handle) -> str: ...

    def cancel(self, handle: Handle) -> None: ...

    def close(self, *, abort: bool = False) -> None: ...


# ---------------------------------------------------------------------------------------------------------
# A process pool on this machine


def visible_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every device torch counts."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


# What the pool's fork server imports before it forks a worker: the job's code, and torch and Lightning under it.
WORKER_PRELOAD = ["emoshift.study.fanout", "emoshift.training.train"]


def _worker_context() -> Any:
    """forkserver where the platform has it, else spawn. Each worker is forked from a server process that has
    imported :data:`WORKER_PRELOAD` once, so ``--jobs N`` pays one import of torch and Lightning (10-15 s of a
    core on a small machine) instead of N, and a pool restarted after a lost worker starts at once. The server
    is a fresh interpreter this process starts, so, as with spawn, nothing of the study process is inherited:
    not its lock, not its threads, not a CUDA context."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def _init_worker(slots: Any, parent: int, forked: bool) -> None:
    """In each pool worker, before any job: end with the study process; take one GPU slot (or hide GPUs).

    A spawned worker (``forked`` false) is the study process's own child. A forkserver's worker is the server's
    child, and the server ends when the study process does (it watches a pipe the study holds): the worker dies
    with the server, so with the study."""
    from emoshift.core.lock import die_with_parent

    server = os.getppid()
    if forked and server == 1:  # the server, so the study, already ended
        os._exit(1)
    die_with_parent(server if forked else parent)
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


class PoolBackend:
    """``jobs`` worker processes (:func:`_worker_context`: nothing of the study process, its lock included, is
    inherited)."""

    poll_s = 0.5

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None
        self._gpus: list[str] | None = None

    def _start(self) -> ProcessPoolExecutor:
        if self._gpus is None:
            self._gpus = visible_gpus()
        context = _worker_context()
        slots = context.Queue()
        for i in range(self.jobs):
            slots.put(self._gpus[i % len(self._gpus)] if self._gpus else None)
        return ProcessPoolExecutor(
            self.jobs, mp_context=context, initializer=_init_worker,
            initargs=(slots, os.getpid(), context.get_start_method() == "forkserver")
        )

    def submit(self, fn: Callable[[Any], Any], task: Any, *, name: str) -> Handle:
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = self._start()
        try:
            return self._pool.submit(fn, task)
        except BrokenProcessPool:  # a worker died (killed, out of memory): the jobs after it get a fresh pool
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(fn, task)

    def where(self, handle: Handle) -> str:
        return ""

    def cancel(self, handle: Handle) -> None:
        if isinstance(handle, Future):
            handle.cancel()

    def close(self, *, abort: bool = False) -> None:
        """Shut the pool down; ``abort`` (the study stopped on an error): end the running jobs too."""
        if self._pool is None:
            return
        if abort:  # the executor has no public way to end running workers before Python 3.14
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=not abort, cancel_futures=True)
        self._pool = None


# ---------------------------------------------------------------------------------------------------------
# submitit: SLURM, or its local executor


class SubmititBackend:
    """Each job through a submitit executor; ``parameters(name)`` gives its per-job parameters."""

    def __init__(self, executor: Any, parameters: Callable[[str], dict[str, Any]], poll_s: float) -> None:
        self.executor = executor
        self.parameters = parameters
        self.poll_s = poll_s

    def submit(self, fn: Callable[[Any], Any], task: Any, *, name: str) -> Handle:
        self.executor.update_parameters(**self.parameters(name))
        job: Handle = self.executor.submit(fn, task)
        return job

    def where(self, handle: Handle) -> str:
        return f"job {getattr(handle, 'job_id', '?')}"

    def cancel(self, handle: Handle) -> None:
        if not handle.done():
            handle.cancel(check=False)  # type: ignore[attr-defined]

    def close(self, *, abort: bool = False) -> None:
        return None  # cancel() already asked SLURM (or the local controller) to stop each running job


def slurm_executor(folder: Path) -> Any:
    """A ``submitit.SlurmExecutor`` writing into ``folder`` (``%j``: one subfolder per job)."""
    import submitit

    try:
        return submitit.SlurmExecutor(folder=os.fspath(folder / "%j"), max_num_timeout=0)
    except RuntimeError as e:  # no srun/sbatch here
        raise LaunchError(f"--launcher slurm: {e} (run the study where SLURM's commands are)") from None


def make_backend(options: LaunchOptions, folder: Path) -> Backend:
    """The backend ``options`` ask for; submitit's files (pickles, job logs) go under ``folder``."""
    if options.launcher == "pool":
        return PoolBackend(options.jobs or 1)
    require("slurm", f"--launcher {options.launcher}")
    import submitit

    if options.launcher == "slurm":
        if options.slurm is None:
            raise LaunchError("--launcher slurm needs --slurm-partition")
        return SubmititBackend(slurm_executor(folder), options.slurm.parameters, poll_s=5.0)
    local = submitit.LocalExecutor(folder=os.fspath(folder))  # one machine: its files named by job id
    week = 7 * 24 * 60  # the local executor kills a job after timeout_min (its default: 2 minutes)
    return SubmititBackend(local, lambda name: {"timeout_min": week}, poll_s=0.2)
