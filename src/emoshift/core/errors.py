"""The one error base. Every error meant for a user derives from :class:`EmoshiftError`; its message is one
line that says what is wrong and, where it can, how to fix it. The CLI turns any of them into that line on
stderr and exit code 2 (``emoshift.cli.main``); nothing else in the package formats user errors.
"""

from __future__ import annotations


class EmoshiftError(Exception):
    """A user-facing error: bad input, a missing file, an unusable config. Its ``str`` is the whole message."""

    exit_code = 2


class TrainingInterrupted(EmoshiftError):
    """Training stopped on SIGINT / SIGTERM (:mod:`emoshift.training.fit`); the message says what a rerun
    resumes from. Whatever runs trainings one after another (a study, a k-fold run) stops with it, as with
    Ctrl-C, rather than going on to the next. Exit code 128 + the signal's number (130 for Ctrl-C, 143 for
    SIGTERM), as a shell reports a process the signal ended."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
