"""The PAT's scopes, as far as its answers tell them.

A PAT cannot list its own scopes (no introspection API takes a PAT), so they are read off what happened: a 401
on the project lookup means no Project and Team (Read), on the repository lookup no Code (Read), and the two
harmless probes (an update of no refs, a repository create without a name) tell Code (Read & write) and Code
(Read, write, & manage). A probe whose answer proves nothing either way is a warning, not a failure. Job and
Entra tokens carry no PAT scopes: nothing is said about them here.
"""

from __future__ import annotations

from flux_azdo.azdo import fixes
from flux_azdo.azdo.errors import AuthenticationFailed
from flux_azdo.azdo.preflight.facts import Answer, Facts, credential_kind, fix_of
from flux_azdo.azdo.preflight.report import CheckItem
from flux_azdo.azdo.preflight.request import PreflightRequest


def decide_scopes(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    if facts.who is None or credential_kind(request.token, facts.who) != "pat":
        return []
    collection = request.url.collection_url
    items: list[CheckItem] = []
    for scope, answer in (("vso.project", facts.project), ("vso.code", facts.repository)):
        if answer is None:
            continue
        if answer.ok:
            items.append(_has(scope))
        elif isinstance(answer.error, AuthenticationFailed):
            items.append(_lacks(scope, collection))
    items += _probe("vso.code_write", facts.write_scope, collection)
    if request.create_repository:
        items += _probe("vso.code_manage", facts.manage_scope, collection)
    return items


def _has(scope: str) -> CheckItem:
    return CheckItem(f"scope:{scope}", "ok", f"the PAT has the {fixes.scope_label(scope)}")


def _lacks(scope: str, collection: str | None) -> CheckItem:
    return CheckItem(
        f"scope:{scope}",
        "fail",
        f"the PAT lacks the {fixes.scope_label(scope)}",
        fix=fixes.missing_scope(scope, collection),
    )


def _probe(scope: str, answer: Answer[bool | None] | None, collection: str | None) -> list[CheckItem]:
    if answer is None:
        return []
    if answer.error is not None:
        again = "run flux-azdo check again; if it persists, the message above is Azure DevOps' own"
        return [CheckItem(f"scope:{scope}", "fail", answer.error.message, fix=fix_of(answer.error, again))]
    if answer.value is None:
        return [
            CheckItem(
                f"scope:{scope}",
                "warn",
                f"could not tell whether the PAT has the {fixes.scope_label(scope)}: Azure DevOps' answer to the "
                "harmless probe proves neither",
                fix=fixes.unknown_scope(scope, collection),
            )
        ]
    return [_has(scope) if answer.value else _lacks(scope, collection)]
