"""Errors a user can act on.

Every failure that comes from the user's input or environment is raised as a
`UserError`: the CLI prints its message as one line and exits with its code, with no
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        # One line, always: callers may embed text from elsewhere (file names, server replies).
        super().__init__(" ".join(message.split()))
        #: The action that repairs it, when it is kept apart from the message (reports print it on its own line).
        self.fix = " ".join(fix.split()) if fix else None

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __str__(self) -> str:
        return f"{self.message.rstrip('.:; ')}: {self.fix}" if self.fix else self.message


class UsageError(UserError):
    """The command line itself is wrong (a flag value that cannot be parsed, a missing flag)."""

    exit_code = 2
