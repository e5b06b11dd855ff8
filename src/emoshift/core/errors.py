"""The one error base. Every error meant for a user derives from :class:`EmoshiftError`; its message is one
line that says what is wrong and, where it can, how to fix it. The CLI turns any of them into that line on
stderr and exit code 2 (``emoshift.cli.main``); nothing else in the package formats user errors.
"""

from __future__ import annotations


class EmoshiftError(Exception):
    """A user-facing error: bad input, a missing file, an unusable config. Its ``str`` is the whole message."""

    exit_code = 2
