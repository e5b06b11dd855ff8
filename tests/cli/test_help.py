"""Every command's help: flags show no value type (no ``<bool>``), and every option says what it is for."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from emoshift.cli import app


def _commands() -> list[tuple[str, ...]]:
    """The path of every command (``("corpus", "index")``, ...), walked from the application's group."""
    root = typer.main.get_command(app)
    found: list[tuple[str, ...]] = []

    def walk(group, path: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                walk(cmd, (*path, name))
            else:
                found.append((*path, name))

    walk(root, ())
    return sorted(found)


COMMANDS = _commands()


def test_every_command_is_found() -> None:
    assert ("train",) in COMMANDS and ("corpus", "index") in COMMANDS and len(COMMANDS) >= 10


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "emoshift")
def test_help_shows_no_bool_metavar_and_describes_every_option(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    if not path:
        return
    root = typer.main.get_command(app)
    cmd = root
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    for param in cmd.params:
        if param.param_type_name == "option":
            assert (param.help or "").strip(), f"emoshift {' '.join(path)} {param.opts[0]} has no description"
