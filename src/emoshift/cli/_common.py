"""Helpers shared by CLI modules: the one error printer (``error: <message>`` on stderr), NAME=ROOT parsing, the
speech check's default."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

# Off a terminal (a log file, CI) rich would wrap at 80 columns: tables and long lines stay whole instead.
console = Console() if sys.stdout.isatty() else Console(width=240)
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


def verbose_output(cfg: Any | None = None) -> None:
    """``--verbose``: the resolved config (YAML) on stderr, and emoshift's INFO lines (each skipped file with
    its reason) from now on."""
    import logging

    if cfg is not None:
        import yaml

        print("resolved config:\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(), file=sys.stderr)
    log = logging.getLogger("emoshift")
    if not any(getattr(h, "emoshift_verbose", False) for h in log.handlers):  # once, however often called
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.emoshift_verbose = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def speech_found() -> bool:
    """Whether Silero VAD (the ``vad`` extra) is installed, so speech can be found (no import of it)."""
    from emoshift.deploy.vad import available

    return available()


def speech_check(vad: bool, vad_check: bool | None) -> bool:
    """``--vad`` / ``--vad-check`` need the ``vad`` extra (one line, exit 2, without it); the check's default
    (``vad_check`` None) is on when the extra is installed, else off with a one-line note on stderr."""
    from emoshift.core.extras import require

    if vad or vad_check:
        require("vad", "--vad" if vad else "--vad-check")
    if vad_check is not None:
        return vad_check
    if not speech_found():
        err_console.print(
            "note: no speech check (silero-vad is not installed: pip install 'emoshift[vad]'); "
            "every file gets a label", highlight=False, markup=False, soft_wrap=True,
        )
    return speech_found()
