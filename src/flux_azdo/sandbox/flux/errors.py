"""The one error type reconcilers raise: a condition reason plus the message Flux would put next to it."""

from __future__ import annotations


class ReconcileError(Exception):
    """A failed reconcile step. `stalling` marks errors a retry cannot fix (Flux's `serror.Stalling`)."""

    def __init__(self, reason: str, message: str, *, stalling: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.stalling = stalling
