"""The preflight behind `flux-azdo check`: what a bootstrap would need, and what is missing, before touching anything.

Flux learns about a missing permission from a failed push, after it has installed itself in the cluster. Here we
ask first: who the credential belongs to, whether the project, repository and branch exist (or may be created),
which Git permissions the Security API grants that identity on the exact branch token, whether a branch policy
blocks direct pushes, whether a PAT carries the scopes, and whether git itself can read the repository.

`run_preflight` is `gather` (facts.py: every call, errors kept as values; reads only) followed by the pure
decision modules, each a function of the request and the facts, in the order the report lists them.
"""

from __future__ import annotations

from flux_azdo.azdo.preflight.cluster import decide_cluster
from flux_azdo.azdo.preflight.facts import Answer, Facts, credential_kind, gather
from flux_azdo.azdo.preflight.git_access import decide_git
from flux_azdo.azdo.preflight.identity import decide_identity, for_the_pusher
from flux_azdo.azdo.preflight.pat_scopes import decide_scopes
from flux_azdo.azdo.preflight.permissions import decide_permissions
from flux_azdo.azdo.preflight.render import render_text
from flux_azdo.azdo.preflight.report import CheckItem, CheckReport, Status
from flux_azdo.azdo.preflight.request import ClusterCredential, PreflightRequest
from flux_azdo.azdo.preflight.resources import decide_resources

__all__ = [
    "Answer",
    "CheckItem",
    "CheckReport",
    "ClusterCredential",
    "Facts",
    "PreflightRequest",
    "Status",
    "credential_kind",
    "decide",
    "gather",
    "render_text",
    "run_preflight",
]


def run_preflight(request: PreflightRequest) -> CheckReport:
    """Every check, in order; reads only, writes nothing. Failures become items, never exceptions."""
    return decide(request, gather(request))


def decide(request: PreflightRequest, facts: Facts) -> CheckReport:
    """The report for `facts`: no I/O, so any situation can be built as data and checked."""
    about_the_push = for_the_pusher(
        request, facts, [*decide_resources(request, facts), *decide_permissions(request, facts)]
    )
    items = (
        *decide_identity(request, facts),
        *decide_scopes(request, facts),
        *about_the_push,
        *decide_git(request, facts),
        *decide_cluster(request, facts),
    )
    return CheckReport(request.url.original, request.branch, items, facts.who, facts.found_repository)
