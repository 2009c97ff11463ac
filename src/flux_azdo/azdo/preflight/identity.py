"""Whether the preflight can ask Azure DevOps at all, who the token belongs to, and whose permissions that tells.

Over https the token is also what git pushes with, so its identity is the pusher. Over SSH the push goes as the
owner of the SSH key, which no API reveals: the permissions checked are those of the API token's identity, and
that is only meaningful when the same person owns the key. A build service or a service principal cannot own SSH
keys, so for them a missing permission is reported as a warning that says so, never as a blocker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from flux_azdo.azdo import fixes
from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.errors import AuthenticationFailed
from flux_azdo.azdo.models import Caller
from flux_azdo.azdo.preflight.facts import AZURE_KINDS, TOKEN_NAMES, Facts, credential_kind, fix_of
from flux_azdo.azdo.preflight.report import CheckItem
from flux_azdo.azdo.preflight.request import PreflightRequest
from flux_azdo.azdo.urls import parse_repository_url
from flux_azdo.errors import UserError

KIND_WORDS = {
    "user": "user",
    "build-service": "project build service: a pipeline's job token",
    "collection-build-service": "project collection build service: a pipeline's job token",
    "other": "service principal or managed identity",
}
#: What a caller that cannot own SSH keys is called in a sentence.
_NOUNS = {
    "build-service": "build service",
    "collection-build-service": "build service",
    "other": "service principal or managed identity",
}


def decide_identity(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    """The token and identity lines, or why the Azure DevOps checks were not run."""
    url, token = request.url, request.token
    if url.kind not in AZURE_KINDS:
        return [
            CheckItem(
                "azure-devops",
                "skip",
                f"{url.host} is not an Azure DevOps host: only git access is checked (plain git, as flux "
                "bootstrap git)",
            )
        ]
    if url.collection_url is None or token is None:
        return _not_asked(request)
    caller = facts.caller
    if caller is None:
        return []
    if caller.error is not None or caller.value is None:
        error = caller.error
        if isinstance(error, AuthenticationFailed):
            return [_refused(request, token, error)]
        message = error.message if error is not None else "Azure DevOps did not say who the token belongs to"
        fix = "check --url and --organization" if error is None else fix_of(error, "check --url and --organization")
        if _organization_given(request) and getattr(error, "status", None) == 404:
            fix = (
                f"check --organization: {url.collection_url} is not it; give the organisation or collection that "
                "holds the repository (https://dev.azure.com/<organisation>, or https://<server>/<collection>)"
            )
        return [CheckItem("token", "fail", message, fix=fix)]
    who = caller.value
    origin = f" from {token.origin}" if token.origin else ""
    name = TOKEN_NAMES[credential_kind(token, who)]
    items = [
        CheckItem("token", "ok", f"{name}{origin} works for {url.collection_url}"),
        CheckItem("identity", "ok", f"authenticated as {who.display_name} ({KIND_WORDS[who.kind]}){_name_note(who)}"),
    ]
    if url.transport == "ssh":
        items.append(_ssh_identity(token, who))
    return items


def _name_note(caller: Caller) -> str:
    """A word on a display name the service did not give: the Security pages may list the identity otherwise."""
    if caller.name_source == "derived":
        return "; the service gave no name: this is how Azure DevOps names build services"
    if caller.name_source in ("account", "id"):
        return "; the service gave no display name: the Security pages list this identity under its own name"
    return ""


def _organization_given(request: PreflightRequest) -> bool:
    """Whether the REST address came from --organization rather than from --url itself."""
    url = request.url
    try:
        derived = parse_repository_url(url.original, allow_insecure_http=True).collection_url
    except UserError:
        return False
    return derived != url.collection_url


def _not_asked(request: PreflightRequest) -> list[CheckItem]:
    url, token = request.url, request.token
    if url.transport != "ssh":
        return [
            CheckItem(
                "token",
                "fail",
                f"no token for {url.original}: an https URL needs a PAT or a job token",
                fix="set GIT_PASSWORD, or pipe the token into --password-stdin, or pass --entra-auth",
            )
        ]
    no_collection = url.collection_url is None
    why = (
        "the REST API address cannot be derived from this SSH URL"
        if no_collection
        else "no API token for Azure DevOps (git uses the SSH key; the API needs a token)"
    )
    fix = fixes.api_token_for_ssh(organization_missing=no_collection)
    if no_collection and token is not None:
        fix = "pass --organization with the collection URL, e.g. https://server/tfs/DefaultCollection"
    return [
        CheckItem("token", "skip", "Azure DevOps checks skipped: identity, project, repository and permissions"),
        CheckItem("push-permissions", "warn", f"push permissions not verified: {why}", fix=fix),
    ]


def _refused(request: PreflightRequest, token: AzureDevOpsToken, error: AuthenticationFailed) -> CheckItem:
    collection = request.url.collection_url
    kind = credential_kind(token, None)
    fix = fixes.refused_token(kind, collection, token.origin)
    shown = "the token" if kind == "pat" else TOKEN_NAMES[kind]
    if token.origin:
        shown = f"{shown} from {token.origin}"
    if kind == "job-token":
        message = f"the job token was refused ({error.reason}): it is valid only while the job that issued it runs"
        return CheckItem("token", "fail", message, fix=fix)
    if kind == "entra":
        return CheckItem("token", "fail", f"the Microsoft Entra token was refused ({error.reason})", fix=fix)
    if error.reason == "expired":
        return CheckItem("token", "fail", "the PAT has expired", fix=fixes.regenerate_pat(collection))
    if error.reason == "sign-in":
        return CheckItem(
            "token",
            "fail",
            f"{collection} answered with a sign-in page instead of the API: {shown} was not accepted",
            fix=f"check that --url (or --organization) is your organisation's, and create a PAT for it at "
            f"{fixes.tokens_page(collection)}",
        )
    if error.reason == "not-authorized":
        return CheckItem(
            "token",
            "fail",
            f"{shown} is valid but may not use {collection} (TF400813)",
            fix="ask an organisation administrator to check the identity's access level and the "
            "Organization settings > Policies that block PATs or OAuth",
        )
    return CheckItem(
        "token", "fail", f"{collection} refused {shown}: it is wrong, revoked, or for another organisation", fix=fix
    )


def _owner(token: AzureDevOpsToken) -> str:
    if token.source == "entra":
        return f"the identity signed in through {token.origin or 'Microsoft Entra'}"
    return f"the owner of {token.origin or 'the API token'}"


def _ssh_identity(token: AzureDevOpsToken, caller: Caller) -> CheckItem:
    who = caller.display_name
    if caller.kind == "user":
        return CheckItem(
            "ssh-identity",
            "ok",
            f"the permissions below are those of {who}, {_owner(token)}; the push uses the SSH key, which must "
            f"belong to {who}",
        )
    return CheckItem(
        "ssh-identity",
        "warn",
        f"the permissions below are those of {who}, {_owner(token)}, but the push uses the SSH key, which a "
        f"{_NOUNS[caller.kind]} cannot own: what the key's owner may do is not checked",
        fix=fixes.api_token_for_ssh(organization_missing=False),
    )


def speaks_for_push(request: PreflightRequest, facts: Facts) -> bool:
    """Whether the API token's identity is the one that pushes: the same token over https, and over SSH a user,
    who is assumed to own the key (the `ssh-identity` line says so)."""
    caller = facts.who
    return caller is not None and (request.url.transport != "ssh" or caller.kind == "user")


def for_the_pusher(request: PreflightRequest, facts: Facts, items: Iterable[CheckItem]) -> list[CheckItem]:
    """`items` as they apply to the identity that pushes.

    When the API token's identity cannot be the SSH key's owner, what it lacks says nothing about the push: each
    failure becomes a warning naming both identities, with the way to check the real one instead.
    """
    caller = facts.who
    if caller is None or speaks_for_push(request, facts):
        return list(items)
    noun = _NOUNS[caller.kind]
    note = (
        f"; not a blocker: the push uses the SSH key, and {caller.display_name} cannot be its owner (a {noun} has "
        "no SSH keys)"
    )
    fix = "make sure the SSH key's owner has what this line needs; to check it, " + fixes.api_token_for_ssh(
        organization_missing=False
    )
    return [
        dataclasses.replace(item, status="warn", message=item.message + note, fix=fix, command=None)
        if item.status == "fail"
        else item
        for item in items
    ]
