"""Helpers shared by CLI modules: one-line errors with exit code 2, NAME=ROOT parsing."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error (no traceback) and exit."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_named_roots(items: list[str] | None, flag: str = "--corpus") -> dict[str, str]:
    """Parse repeated ``NAME=ROOT`` options into a dict, failing clearly on a malformed item."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, root = item.partition("=")
        if not sep or not name or not root:
            fail(f"{flag} expects NAME=ROOT (e.g. ravdess=/data/RAVDESS), got {item!r}")
        out[name.strip().lower()] = root.strip()
    return out
