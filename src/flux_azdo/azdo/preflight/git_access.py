"""Whether git itself can read the repository with this run's credential, and the SSH key checks before that.

git is asked last (`ls-remote`: reads refs, changes nothing) and only when its answer adds something: not when
the Azure DevOps checks already explained why the repository cannot be reached (a second, different fix for the
same cause would only confuse), and not with an SSH key Azure DevOps refuses anyway. Without the REST API (plain
git, or SSH without an API token) the refs git lists still tell whether the branch exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from flux_azdo.azdo import fixes
from flux_azdo.azdo.errors import AuthenticationFailed
from flux_azdo.azdo.preflight.facts import AZURE_KINDS, Facts, credential_kind
from flux_azdo.azdo.preflight.identity import speaks_for_push
from flux_azdo.azdo.preflight.report import CheckItem
from flux_azdo.azdo.preflight.request import PreflightRequest
from flux_azdo.azdo.preflight.resources import branch_state
from flux_azdo.errors import UserError
from flux_azdo.git.auth import GitAuth, SshAuth, TokenAuth
from flux_azdo.git.errors import (
    BranchNotFound,
    GitAuthenticationFailed,
    GitPermissionDenied,
    HostKeyMismatch,
    KeyRejected,
    RepositoryNotFound,
)
from flux_azdo.git.ssh import SshKeyInfo, require_rsa
from flux_azdo.git.workspace import RemoteState

_OVER = {"ssh": "SSH", "https": "HTTPS", "http": "HTTP"}


@dataclass(frozen=True)
class GitPlan:
    """Whether to run git, with which credential, and the lines that come before (or instead of) its answer."""

    run: bool
    auth: GitAuth
    items: tuple[CheckItem, ...] = ()


def plan_git(request: PreflightRequest, facts: Facts) -> GitPlan:
    """Decided from the request and the REST answers only, so `gather` and `decide_git` agree on it."""
    url, auth = request.url, request.git_auth
    items: list[CheckItem] = []
    if url.transport == "ssh":
        if not isinstance(auth, SshAuth) or request.ssh_key is None:
            skip = CheckItem(
                "git",
                "skip",
                "git access over SSH not tried: no key",
                fix="pass --private-key-file with the private key the bootstrap will use",
            )
            return GitPlan(False, None, (skip,))
        if url.kind in AZURE_KINDS:
            key = _rsa_key(request, request.ssh_key)
            items.append(key)
            if key.status == "fail":
                skip = CheckItem("git", "skip", "git access over SSH not tried: Azure DevOps refuses this key")
                return GitPlan(False, auth, (*items, skip))
    else:
        if auth is None and request.token is not None:
            auth = TokenAuth(request.token)
        if auth is None and url.kind in AZURE_KINDS:
            return GitPlan(False, None, (CheckItem("git", "skip", "git access not tried: Azure Repos needs a token"),))
        refused = facts.caller is not None and isinstance(facts.caller.error, AuthenticationFailed)
        if refused:
            return GitPlan(
                False, auth, (CheckItem("git", "skip", "git access not tried: the token does not work (above)"),)
            )
    explained = _explained(request, facts)
    if explained is not None:
        return GitPlan(False, auth, (*items, CheckItem("git", "skip", f"git access not tried: {explained}")))
    return GitPlan(True, auth, tuple(items))


def _explained(request: PreflightRequest, facts: Facts) -> str | None:
    """Why git would fail, when the REST checks (for the identity that pushes) have already said it."""
    if not speaks_for_push(request, facts):
        return None
    project, repository = facts.project, facts.repository
    if repository is not None:
        if repository.error is not None:
            return "the repository could not be read through the API (above)"
        if repository.value is None:
            return (
                "the repository does not exist yet"
                if request.create_repository
                else "the repository is not there (above)"
            )
        if repository.value.is_disabled:
            return "the repository is disabled"
        return None
    if project is not None and (project.error is not None or project.value is None):
        return "the project is not there (above)"
    return None


def decide_git(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    plan = plan_git(request, facts)
    items = list(plan.items)
    if not plan.run or facts.remote is None:
        return items
    url, remote = request.url, facts.remote
    if remote.error is not None or remote.value is None:
        error = remote.error or UserError(f"git ls-remote {url.original} gave no answer")
        items.append(CheckItem("git", "fail", error.message, fix=_git_fix(request, facts, error)))
        return items
    state, key = remote.value, request.ssh_key
    detail = f" ({key.algorithm.upper()} {key.bits})" if url.transport == "ssh" and key and key.bits else ""
    items.append(
        CheckItem("git", "ok", f"git can read {url.original} over {_OVER[url.transport]}{detail}{_summary(state)}")
    )
    if facts.branch_head is None and branch_state(request, facts) is None:
        items.append(_branch_from_git(request, state))
    return items


def _rsa_key(request: PreflightRequest, key: SshKeyInfo) -> CheckItem:
    try:
        require_rsa(key, request.url.host)
    except UserError as exc:
        return CheckItem("ssh-key", "fail", exc.message, fix=fixes.new_rsa_key(request.url.collection_url))
    size = f" {key.bits}" if key.bits else ""
    return CheckItem(
        "ssh-key",
        "ok",
        f"the SSH key is RSA{size} ({key.fingerprint}): Azure DevOps accepts it with rsa-sha2-512/256 signatures",
    )


def _git_fix(request: PreflightRequest, facts: Facts, error: UserError) -> str:
    url = request.url
    if isinstance(error, KeyRejected):
        return (
            f"add the public key of --private-key-file (its .pub) at {fixes.ssh_keys_page(url.collection_url)}, "
            "signed in as the account that should push"
        )
    if isinstance(error, HostKeyMismatch):
        return "check the server's host key and pass the right known_hosts file with --ssh-known-hosts"
    if isinstance(error, GitAuthenticationFailed):
        token = request.token
        kind = credential_kind(token, facts.who)
        return fixes.refused_token(kind, url.collection_url, token.origin if token else "")
    if isinstance(error, GitPermissionDenied):
        return "grant the permission the message names (see the permission checks above)"
    if isinstance(error, (RepositoryNotFound, BranchNotFound)):
        if url.transport == "ssh":
            return (
                "check the repository in --url; if it exists, give the SSH key's owner Read on it; if not, pass "
                "--create-repo"
            )
        return "check the repository in --url, or pass --create-repo"
    return "check --url and the credential, then run flux-azdo check again"


def _summary(state: RemoteState) -> str:
    if not state.heads:
        return " (empty repository)"
    count = len(state.heads)
    return f" ({count} branch{'es' if count > 1 else ''})"


def _branch_from_git(request: PreflightRequest, state: RemoteState) -> CheckItem:
    """Without the REST API (plain git, or SSH without an API token) the remote's refs still tell the branch."""
    branch = request.branch
    if branch in state.heads:
        return CheckItem("branch", "ok", f"branch {branch} exists (at {state.heads[branch][:7]})")
    if not state.heads:
        return CheckItem("branch", "ok", f"the repository is empty: the push creates {branch}")
    if request.create_branch:
        source = state.default_branch or "the default branch"
        return CheckItem(
            "branch", "ok", f"branch {branch} does not exist: --create-branch will create it from {source}"
        )
    source = state.default_branch or sorted(state.heads)[0]
    return CheckItem(
        "branch",
        "fail",
        f"branch {branch} does not exist (the default branch is {source}); Flux would fail to clone it",
        fix=f"pass --create-branch to create {branch} from {source}, or pass --branch {source}",
    )
