"""Helpers shared by CLI modules: the one error printer (``error: <message>`` on stderr), NAME=ROOT parsing."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """``error: <message>`` as one line on stderr; the message is plain text (never rich markup)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error (no traceback) and exit: for bad arguments the command itself checks.

    An :class:`~emoshift.core.errors.EmoshiftError` raised anywhere in a command needs no call here: the
    application prints it the same way, once (``emoshift.cli.EmoshiftGroup``).
    """
    print_error(message)
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
