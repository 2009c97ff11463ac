"""What can go wrong when talking to the Azure DevOps REST API, as errors a user can act on.

Each error has two parts, kept apart so a caller can show them apart (the preflight prints "fix:" on a line of
its own): `message`, one line saying what happened, and `fix`, one line with the exact action that repairs it
(a page and the option to tick, a setting, a flag). `str(error)` joins them, so a plain print still says both.
The types let callers branch on the kind of failure (a missing repository is not an outage). They are built by
`flux_azdo.azdo.error_translation` from what the SDK raised; no message or fix ever contains the token.
"""

from __future__ import annotations

from typing import Any, Literal

from flux_azdo.azdo.scopes import PAT_SCOPES
from flux_azdo.errors import UserError

AuthenticationReason = Literal["expired", "invalid", "not-authorized", "sign-in"]

#: Kept for older imports: the PAT scopes' UI names (the table lives in `flux_azdo.azdo.scopes`).
SCOPE_NAMES = {name: scope.label for name, scope in PAT_SCOPES.items()}


class AzureDevOpsError(UserError):
    """Any failed Azure DevOps call.

    `message`: what happened (one line, without the fix). `fix`: the action that repairs it (one line; None only
    when nobody can say). `status`: the HTTP status (None: no reply). `code`: the TF/VS number (`TF401027`).
    """

    def __init__(
        self, message: str, *, fix: str | None = None, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, fix=fix)
        self.status = status
        self.code = code


class AuthenticationFailed(AzureDevOpsError):
    """The service did not accept the credential for this call.

    `reason`: `expired` (the token's lifetime is over), `invalid` (wrong, revoked, or for another organisation),
    `not-authorized` (TF400813: a valid token that lacks the PAT scope this call needs, or an identity the
    organisation does not allow), `sign-in` (the service answered with a sign-in page instead of data).
    """

    def __init__(
        self,
        message: str,
        reason: AuthenticationReason,
        *,
        fix: str | None = None,
        status: int | None = 401,
        code: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix, status=status, code=code)
        self.reason: AuthenticationReason = reason


class PermissionDenied(AzureDevOpsError):
    """403 TF401027: the identity lacks a Git permission; `permission` is its API name (`CreateRepository`),
    `identity` the name the service gave for the identity."""

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        permission: str | None = None,
        identity: str | None = None,
        status: int | None = 403,
        code: str | None = "TF401027",
    ) -> None:
        super().__init__(message, fix=fix, status=status, code=code)
        self.permission = permission
        self.identity = identity


class NotFound(AzureDevOpsError):
    """404 (TF401019 repository, TF200016/VS800075 project): missing, or hidden from this identity."""


class Conflict(AzureDevOpsError):
    """409 (TF400948: a repository with that name already exists)."""


class Unavailable(AzureDevOpsError):
    """No usable answer: a timeout, a refused or dropped connection, a TLS failure, or 429/5xx after the bounded
    retries."""


_MOVED = frozenset({"ErrorTranslator", "Operation", "Replies", "Reply", "scrub_secrets"})


def __getattr__(name: str) -> Any:
    """The translation machinery moved to `flux_azdo.azdo.error_translation`; old imports keep working."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module("flux_azdo.azdo.error_translation"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
