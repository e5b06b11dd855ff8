"""The `emoshift` command line: a thin typer layer over the library.

Each area registers its commands from its own module (``emoshift/cli/<area>.py``). Heavy imports (torch,
transformers, lightning) happen inside the commands, so `emoshift --help` and `emoshift predict` start fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="emoshift",
    help="Cross-corpus speech emotion recognition: load corpora, train, evaluate, audit, run the study.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registration: importing a module adds its commands to `app`.
from emoshift.cli import (  # noqa: E402
    audit,  # noqa: F401
    corpus,  # noqa: F401
    export,  # noqa: F401
    features,  # noqa: F401
    predict,  # noqa: F401
    serve,  # noqa: F401
    study,  # noqa: F401
    synth,  # noqa: F401
    train,  # noqa: F401
)


def main() -> None:
    app()
