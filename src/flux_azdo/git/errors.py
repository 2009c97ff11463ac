"""Git's failures, read from its stderr and said again as one line a user can act on.

git reports a rejected token, a missing Azure DevOps permission, a branch policy and an SSH host key mismatch in
very different places (curl, the server's `remote:` lines, `[remote rejected]` reasons, ssh's warnings). Each
becomes its own `UserError` subclass, so callers (the preflight, the CLI) can branch on the kind, and the text
names the setting or flag that fixes it.

Messages are built from git's stderr only, never from the command line: GitPython's `GitCommandError` prints
the argv, and argv or stderr may name a temporary key file. `scrub` removes the secret forms and the private
temporary folder from any text before it goes into an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from flux_azdo.azdo.security import NAMES, GitPermission, permission_by_api_name
from flux_azdo.errors import UserError
from flux_azdo.git.ssh import NEW_RSA_KEY, SSH_KEYS_PAGE

_PASSWORD_FLAGS = "--password, --password-stdin or GIT_PASSWORD"

AuthenticationReason = Literal["invalid", "expired", "missing", "not-authorized"]


class GitError(UserError):
    """A git operation failed; the message says what and how to fix it (no secret, no temporary path).

    `transient`: the connection broke or the server failed for a moment (5xx, 429, a dropped connection): the
    same command may work when tried again, and a push may even have landed.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class GitAuthenticationFailed(GitError):
    """HTTP 401: the credential was not accepted.

    `reason`, as `flux_azdo.azdo.errors.AuthenticationFailed` names them: `invalid` (wrong, revoked, or for
    another organisation), `expired`, `missing` (none was given and the server wants one), `not-authorized`
    (TF400813: a valid PAT that lacks the scope the operation needs).
    """

    def __init__(self, message: str, reason: AuthenticationReason = "invalid") -> None:
        super().__init__(message)
        self.reason: AuthenticationReason = reason


class GitPermissionDenied(GitError):
    """TF401027: the identity lacks a Git permission (`permission` is its API name, e.g. GenericContribute)."""

    def __init__(self, message: str, permission: str | None = None, identity: str | None = None) -> None:
        super().__init__(message)
        self.permission = permission
        self.identity = identity


class BranchPolicyRejected(GitError):
    """TF402455: a required branch policy forbids direct pushes."""


class HostKeyMismatch(GitError):
    """The SSH server's host key is not the pinned one, or no host key algorithm could be agreed."""


class KeyRejected(GitError):
    """The SSH server refused the private key (not registered, or a key type or signature it does not take)."""


class BranchNotFound(GitError):
    """The branch does not exist in the remote repository."""


class RepositoryNotFound(GitError):
    """The repository does not exist, or the identity may not read it (Azure DevOps does not tell them apart)."""


class PushConflict(GitError):
    """Others kept pushing to the branch; every attempt to publish on top of their work was rejected."""


def scrub(text: str, secrets: Iterable[str] = (), paths: Iterable[str] = ()) -> str:
    """`text` without any secret form and with private temporary paths replaced by `<temp>`."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    for path in sorted((p for p in paths if p), key=len, reverse=True):
        text = text.replace(path, "<temp>")
    # Belt and braces: a header line never reaches a message, whatever printed it.
    return re.sub(r"(?i)(authorization:\s*)(basic|bearer)\s+\S+", r"\1\2 ***", text)


_PERMISSION = re.compile(r"TF401027: You need the Git '([A-Za-z]+)' permission")
_IDENTITY = re.compile(r"Details: identity '([^']*)'")
_REMOTE_REF = re.compile(r"couldn't find remote ref (\S+)|Remote branch (\S+) not found")
_OFFER = re.compile(r"Their offer: (\S+)")
_NO_MATCHING = re.compile(r"no matching (.+?) found")
_REDIRECT = re.compile(r"returned error: (30[1278])")
_UNREACHABLE = (
    "Failed to connect",
    "Could not resolve host",
    "Could not resolve hostname",
    "Connection refused",
    "Connection timed out",
    "Network is unreachable",
    "No route to host",
)
# A connection that broke, or a server that failed for a moment: curl's errors without an HTTP status
# ("RPC failed; curl 56 ..."), 429 and the 5xx that mean "busy" or "down", and the ways git and ssh say that the
# other side went away. Not "RPC failed; HTTP 413": a status other than these is an answer, not a failure.
_TRANSIENT = re.compile(
    r"RPC failed; curl \d+|returned error: (?:429|50[0234])\b|remote end hung up|Empty reply from server"
    r"|unexpected disconnect|early EOF|Connection reset|transfer closed|Connection closed by"
)


def classify(
    stderr: str,
    *,
    operation: str,
    url: str,
    branch: str | None = None,
    secrets: Iterable[str] = (),
    paths: Iterable[str] = (),
    has_credentials: bool = True,
    keys_page: str | None = None,
) -> GitError:
    """The `GitError` for a failed git command, from its stderr.

    `operation` is a phrase for the message ("clone", "push to branch 'main' of"), `url` the repository URL
    without credentials; `has_credentials` False when no token or key was given (a 401 then means "missing"),
    `keys_page` the organisation's SSH keys page when known. Order matters: server verdicts (TF codes) come
    before transport-level symptoms, since a 403 with TF401027 also makes curl print "The requested URL returned
    error: 403".
    """
    text = scrub(stderr, secrets, paths)
    where = f"git {operation} {url}"
    if match := _PERMISSION.search(text):
        return _permission_denied(where, match.group(1), _IDENTITY.search(text))
    if "TF402455" in text:
        return BranchPolicyRejected(
            f"{where} was rejected by a branch policy (TF402455): pushes to "
            f"{_branch(branch)} must go through a pull request. Grant this identity "
            f"'{NAMES[GitPermission.POLICY_EXEMPT].ui}' (PolicyExempt) on the branch, or "
            "bootstrap into another branch (--branch with --create-branch) and merge it with a pull request"
        )
    if host_key := _host_key_problem(where, text):
        return host_key
    if "Permission denied (publickey" in text:
        page = f"{SSH_KEYS_PAGE} ({keys_page})" if keys_page else SSH_KEYS_PAGE
        return KeyRejected(
            f"{where} failed: the server refused the SSH key. Add its public key (the .pub file) to the "
            f"account in {page}; Azure DevOps takes RSA keys only, signed with SHA-2 (create one "
            f"with `{NEW_RSA_KEY}`)"
        )
    if "Authentication failed" in text or "returned error: 401" in text or "could not read Username" in text:
        return _authentication_failed(where, text, has_credentials)
    if match := _REDIRECT.search(text):
        return GitError(
            f"{where} failed: the server redirects to another address (HTTP {match.group(1)}), and git does not "
            "follow redirects here so that the credentials never reach another host: use the URL it redirects to "
            "as --url"
        )
    if match := _REMOTE_REF.search(text):
        name = (match.group(1) or match.group(2) or "").removeprefix("refs/heads/")
        return BranchNotFound(f"branch '{name or branch}' does not exist in {url}")
    if (
        "TF401019" in text
        or "does not appear to be a git repository" in text
        or re.search(r"repository '[^']*' not found", text)
        or "returned error: 404" in text
    ):
        return RepositoryNotFound(
            f"{where} failed: the repository does not exist or this identity may not read it (TF401019). "
            "Check the URL, create it (--create-repo), or grant the identity Read on it"
        )
    if any(symptom in text for symptom in _UNREACHABLE):
        return GitError(
            f"{where} failed: cannot reach the server ({_detail(text)}). Check the URL, the network, and the proxy "
            "variables (HTTPS_PROXY, NO_PROXY) if you need a proxy"
        )
    if "returned error: 403" in text:
        return GitPermissionDenied(
            f"{where} was refused (HTTP 403): {_detail(text)}. Check the identity's permissions on the repository"
        )
    if _TRANSIENT.search(text):
        return GitError(
            f"{where} failed: the connection broke or the server failed ({_detail(text)}). Run the command again; "
            "if it keeps failing, check the server's status and the network",
            transient=True,
        )
    return GitError(f"{where} failed: {_detail(text)}")


def _host_key_problem(where: str, text: str) -> GitError | None:
    """The host key and algorithm failures ssh reports, each with what to do."""
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return HostKeyMismatch(
            f"{where} stopped: the server's SSH host key is not the pinned one. Check that the URL names the "
            "right server (a proxy or DNS change can redirect it); if its key really changed, get the new key "
            "from the server's administrator and pass it with --ssh-known-hosts"
        )
    if "host key is known" in text or "Host key verification failed" in text:
        return HostKeyMismatch(
            f"{where} stopped: no trusted host key matches the server (host key verification failed). Pass a "
            "known_hosts file with its key (--ssh-known-hosts), verified with the server's administrator: do not "
            "trust a scan"
        )
    offer = _OFFER.search(text)
    offered = f" (the server offers {offer.group(1)})" if offer else ""
    if "no matching host key type" in text:
        return HostKeyMismatch(
            f"{where} failed: no host key algorithm in common with the server{offered}. Set --ssh-hostkey-algos to "
            "algorithms the server offers (Azure DevOps: rsa-sha2-512,rsa-sha2-256)"
        )
    if "Unable to negotiate" in text:
        missing = _NO_MATCHING.search(text)
        what = missing.group(1) if missing else "algorithm"
        return GitError(
            f"{where} failed: this OpenSSH client and the server have no {what} in common{offered}. The server's "
            "SSH settings and the installed OpenSSH do not fit together: ask the server's administrator, or use the "
            "https URL with a token"
        )
    return None


def _permission_denied(where: str, api_name: str, identity: re.Match[str] | None) -> GitPermissionDenied:
    permission = permission_by_api_name(api_name)
    ui = NAMES[permission].ui if permission is not None else api_name
    who = f" '{identity.group(1)}'" if identity else ""
    return GitPermissionDenied(
        f"{where} was refused (TF401027): the identity{who} lacks the Git permission '{ui}' ({api_name}). "
        f"Allow '{ui}' for it in Project settings > Repositories > (the repository) > Security; for a pipeline's "
        "job token that identity is '<Project> Build Service (<organization>)'",
        api_name,
        identity.group(1) if identity else None,
    )


def _authentication_failed(where: str, text: str, has_credentials: bool) -> GitAuthenticationFailed:
    if not has_credentials:
        return GitAuthenticationFailed(
            f"{where} failed: the server wants credentials and none were given. Pass a token with "
            f"{_PASSWORD_FLAGS}, or use the ssh:// URL with --private-key-file",
            "missing",
        )
    if "has expired" in text:
        return GitAuthenticationFailed(
            f"{where} failed: the token has expired. Create a new one (Code: Read & write) and pass it with "
            f"{_PASSWORD_FLAGS}",
            "expired",
        )
    if "TF400813" in text and "is not authorized" in text:
        return GitAuthenticationFailed(
            f"{where} failed: the token is valid but lacks the scope this needs. A PAT needs the scope "
            "'Code (Read & write)' (vso.code_write) to push, 'Code (Read)' to clone",
            "not-authorized",
        )
    return GitAuthenticationFailed(
        f"{where} failed: the token was rejected: wrong, expired or revoked (a pipeline's job token ends with "
        f"its job). Pass a valid one with {_PASSWORD_FLAGS}",
        "invalid",
    )


def _branch(branch: str | None) -> str:
    return f"'{branch}'" if branch else "this branch"


def _detail(text: str) -> str:
    """The lines that explain a failure (`fatal:`, `error:`, `remote:`, rejections), at most three."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    wanted = [
        line
        for line in lines
        if line.startswith(("fatal:", "error:", "remote:", "ERROR:", "!"))
        or "rejected" in line
        or "ssh:" in line
        or "Could not" in line
    ]
    chosen = (wanted or lines)[-3:]
    detail = " ".join(chosen) or "no error text"
    return detail if len(detail) <= 400 else detail[:397] + "..."
