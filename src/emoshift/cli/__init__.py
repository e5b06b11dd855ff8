"""The `emoshift` command line: a thin typer layer over the library.

Each area registers its commands from its own module (``emoshift/cli/<area>.py``). Heavy imports (torch,
transformers, lightning) happen inside the commands, so `emoshift --help` and `emoshift predict` start fast.

Errors: any :class:`~emoshift.core.errors.EmoshiftError` a command raises ends it as one line ``error:
<message>`` on stderr with exit code 2, here and only here (:class:`EmoshiftGroup`, so that ``main()`` and
typer's CliRunner behave the same). So does a missing module that an optional extra provides (the import sites
name their command with :func:`emoshift.core.extras.needs`; one they do not wrap gets the same line here, from
the same helper). Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from emoshift.core.errors import EmoshiftError


def _plain_flags(params: list[Any]) -> list[Any]:
    """On/off flags take no value: no ``<bool>`` type after them in the help (typer shows one on every option;
    an empty metavar shows none)."""
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


class EmoshiftGroup(TyperGroup):
    """The application's command group: turns an EmoshiftError into the one-line error and its exit code, and
    shows flags in every command's help without a value type."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and not getattr(cmd, "_emoshift_flags", False):
            get_params = cmd.get_params  # --help is made there, once per command
            cmd.get_params = lambda ctx: _plain_flags(get_params(ctx))  # type: ignore[method-assign]
            setattr(cmd, "_emoshift_flags", True)  # noqa: B010  (wrapped once)
        return cmd

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:  # ctx: a Context of the click that typer vendors
        try:
            return super().invoke(ctx)
        except (EmoshiftError, ModuleNotFoundError) as e:
            from emoshift.cli._common import print_error
            from emoshift.core.extras import missing_extra

            err = e if isinstance(e, EmoshiftError) else missing_extra(e)
            if err is None:  # not a module an extra provides: a bug, with its traceback
                raise
            print_error(str(err))
            raise typer.Exit(err.exit_code) from None


app = typer.Typer(
    cls=EmoshiftGroup,
    name="emoshift",
    help="Cross-corpus speech emotion recognition: load corpora, train, evaluate, audit, run the study.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _version(value: bool) -> None:
    if value:
        from emoshift import __version__

        typer.echo(f"emoshift {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Cross-corpus speech emotion recognition: load corpora, train, evaluate, audit, run the study."""


# Registration: importing a module adds its commands to `app`.
from emoshift.cli import (  # noqa: E402
    adapt,  # noqa: F401
    audit,  # noqa: F401
    corpus,  # noqa: F401
    export,  # noqa: F401
    features,  # noqa: F401
    predict,  # noqa: F401
    serve,  # noqa: F401
    study,  # noqa: F401
    synth,  # noqa: F401
    train,  # noqa: F401
    tune,  # noqa: F401
)


def main() -> None:
    """The ``emoshift`` command (user errors are handled by :class:`EmoshiftGroup`)."""
    app()
