"""The one progress helper: a rich bar on a terminal, plain lines elsewhere, nothing when disabled.

``with progress(total, "log-mel ravdess", enabled=show) as advance: ... advance(n)``; one status line (a study's
experiment, a tuning trial) is :func:`say`: styled on a terminal, plain text elsewhere.

On a terminal (stderr is a TTY) it draws a bar with done/total, files/s, elapsed time and an ETA. When stderr
is not a terminal (a log file, CI) it prints one line when the work ends (``log-mel ravdess: 960 files in
4.1 s (234.1 files/s)``), so logs get one clean line per step instead of bar redraws.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

Advance = Callable[[int], None]


def is_terminal() -> bool:
    """Whether progress goes to a terminal (stderr is a TTY)."""
    return sys.stderr.isatty()


_consoles: dict[bool, Any] = {}  # stderr? -> the rich Console of that stream, made on first use


def say(plain: str, styled: str | None = None, *, enabled: bool = True, stderr: bool = False) -> None:
    """Print one status line: ``styled`` (rich markup, text from elsewhere escaped with :func:`escape`) when the
    stream is a terminal, else ``plain`` (the same line without markup) once, flushed; nothing when disabled."""
    if not enabled:
        return
    stream = sys.stderr if stderr else sys.stdout
    if styled is None or not stream.isatty():
        print(plain, file=stream, flush=True)
        return
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr)
    _consoles[stderr].print(styled, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """``text`` from elsewhere (titles, paths, error messages) made safe inside rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _noop(n: int) -> None:
    return None


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss`` from an hour on)."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@contextlib.contextmanager
def progress(total: int, description: str, *, enabled: bool = True, unit: str = "files") -> Iterator[Advance]:
    """Yield ``advance(n)`` for ``total`` units of work; see the module docstring for what is shown."""
    if not enabled or total <= 0:
        yield _noop
        return
    if not is_terminal():
        done = [0]
        t0 = time.monotonic()

        def count(n: int) -> None:
            done[0] += n

        yield count
        dt = time.monotonic() - t0
        rate = f" ({done[0] / dt:,.1f} {unit}/s)" if dt > 0 and done[0] > 1 else ""  # no rate for one unit
        print(f"{description}: {done[0]} {unit} in {dt:.1f} s{rate}", file=sys.stderr, flush=True)
        return
    bar = _rich_bar(unit)
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _rich_bar(unit: str) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"- {unit}/s" if speed is None else f"{speed:,.1f} {unit}/s", style="progress.data.speed")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
