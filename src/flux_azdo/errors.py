"""Errors a user can act on.

Every failure that comes from the user's input or environment is raised as a
`UserError`: the CLI prints its message as one line and exits with its code, with no
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # One line, always: callers may embed text from elsewhere (file names, server replies).
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(UserError):
    """The command line itself is wrong (a flag value that cannot be parsed, a missing flag)."""

    exit_code = 2
