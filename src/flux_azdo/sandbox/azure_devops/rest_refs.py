"""REST over a repository's refs: list refs, update refs (create/update/delete branches and tags), branch stats.

`POST .../refs` (SDK `update_refs`) goes through the same rules as a git push (`push_rules.PushApplier`):
CreateBranch, GenericContribute, ForcePush, branch policies, and the same side effects (default branch, creator
rights). Each `GitRefUpdate` is decided on its own and reported in a `GitRefUpdateResult` (`success`,
`updateStatus` such as `createBranchPermissionRequired`, `forcePushRequired`, `staleOldObjectId`,
`rejectedByPolicy`); the reply is 200 even when some updates were rejected, which is why pipeline tasks report
"Unable to create ref: ... UpdateStatus: 8" from a successful call. Only the best-effort mode is modelled.

`GET .../stats/branches?name=<branch>` (SDK `get_branch`) answers `GitBranchStats`: the branch's head commit and
how far it is ahead of/behind the base (the default branch unless `baseVersionDescriptor` names another); a
missing branch is 404 TF401175. Without `name` it lists every branch (SDK `get_branches`).
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flux_azdo.sandbox.azure_devops import errors
from flux_azdo.sandbox.azure_devops.push_rules import PushCommand, PushResult
from flux_azdo.sandbox.azure_devops.rest_context import (
    CODE_SCOPES,
    CODE_WRITE_SCOPES,
    RequestContext,
    collection,
    time_text,
)
from flux_azdo.sandbox.world import Repository

_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{40}$")


def get_refs(context: RequestContext, project_name: str | None, name_or_id: str) -> tuple[int, Any]:
    """`GitRef`s sorted by name; `filter` is a prefix after `refs/` (so `heads/main` matches `heads/main-old`)."""
    context.require_scope(*CODE_SCOPES)
    repository = context.repository_in_route(project_name, name_or_id)
    name_filter = context.query.get("filter", "")
    contains = context.query.get("filtercontains", "")
    peel = context.query.get("peeltags", "").lower() == "true"
    top = int(context.query["$top"]) if context.query.get("$top", "").isdigit() else None
    base = _repository_url(context, repository) + "/refs"
    refs = []
    for name, object_id, peeled in _for_each_ref(repository):
        if not name.startswith("refs/" + name_filter) or (contains and contains.lower() not in name.lower()):
            continue
        document: dict[str, Any] = {
            "name": name,
            "objectId": object_id,
            "url": f"{base}?filter={quote(name[len('refs/') :], safe='')}",
        }
        if peel and peeled:
            document["peeledObjectId"] = peeled
        refs.append(document)
    refs.sort(key=lambda r: r["name"])
    return 200, collection(refs[:top] if top is not None else refs)


def update_refs(context: RequestContext, project_name: str | None, name_or_id: str) -> tuple[int, Any]:
    """`POST .../refs`: a list of `{name, oldObjectId, newObjectId}`; needs `vso.code_write`."""
    context.require_scope(*CODE_WRITE_SCOPES)
    repository = context.repository_in_route(project_name, name_or_id)
    commands = _parse_updates(context.body("refUpdates"))
    results = context.owner.pushes.apply(context.identity, repository, commands)
    return 200, collection([_update_result(repository, result) for result in results])


def _parse_updates(body: Any) -> list[PushCommand]:
    if not isinstance(body, list) or not body:
        raise errors.bad_request("The ref updates must be a non-empty list.\r\nParameter name: refUpdates")
    commands = []
    for item in body:
        if not isinstance(item, dict):
            raise errors.bad_request("Each ref update must be an object.\r\nParameter name: refUpdates")
        name, old, new = item.get("name"), item.get("oldObjectId"), item.get("newObjectId")
        if not isinstance(name, str) or not name:
            raise errors.bad_request("The name of a ref update must be specified.\r\nParameter name: name")
        for field, value in (("oldObjectId", old), ("newObjectId", new)):
            if not isinstance(value, str) or not _OBJECT_ID.match(value):
                raise errors.bad_request(f"The value '{value}' is not a valid object id.\r\nParameter name: {field}")
        commands.append(PushCommand(str(old).lower(), str(new).lower(), name))
    return commands


def _update_result(repository: Repository, result: PushResult) -> dict[str, Any]:
    """`GitRefUpdateResult`; a policy rejection carries the TF402455 text in `customMessage`."""
    return {
        "repositoryId": repository.id,
        "name": result.ref,
        "oldObjectId": result.command.old,
        "newObjectId": result.command.new,
        "isLocked": False,
        "rejectedBy": None,
        "customMessage": result.reason if result.status == "rejectedByPolicy" else None,
        "updateStatus": result.status,
        "success": result.ok,
    }


def branch_stats(context: RequestContext, project_name: str | None, name_or_id: str) -> tuple[int, Any]:
    context.require_scope(*CODE_SCOPES)
    repository = context.repository_in_route(project_name, name_or_id)
    base = _base_revision(context, repository)
    name = context.query.get("name")
    if name is not None:
        branch = name.removeprefix("refs/heads/")
        document = _branch_document(context, repository, branch, base)
        if document is None:
            raise errors.branch_not_found(branch, repository.name)
        return 200, document
    branches = [ref.removeprefix("refs/heads/") for ref, _, _ in _for_each_ref(repository, "refs/heads/")]
    documents = [_branch_document(context, repository, branch, base) for branch in sorted(branches)]
    return 200, collection([d for d in documents if d is not None])


def _base_revision(context: RequestContext, repository: Repository) -> str | None:
    """The ref the ahead/behind counts compare with: `baseVersionDescriptor`, else the default branch."""
    version = context.query.get("baseversiondescriptor.version")
    if not version:
        return repository.default_branch
    kind = context.query.get("baseversiondescriptor.versiontype", "branch").lower()
    if kind == "commit":
        return version
    return f"refs/tags/{version}" if kind == "tag" else f"refs/heads/{version.removeprefix('refs/heads/')}"


def _branch_document(
    context: RequestContext, repository: Repository, branch: str, base: str | None
) -> dict[str, Any] | None:
    ref = f"refs/heads/{branch}"
    fields = _git(repository, "log", "-1", "--format=%H%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B", ref, "--")
    if fields is None:
        return None
    sha, author, author_email, authored, committer, committer_email, committed, message = fields.split("\0", 7)
    behind = ahead = 0
    counts = _git(repository, "rev-list", "--left-right", "--count", f"{base}...{ref}") if base else None
    if counts is not None:
        behind, ahead = (int(n) for n in counts.split())
    return {
        "commit": {
            "commitId": sha,
            "author": {"name": author, "email": author_email, "date": _iso(authored)},
            "committer": {"name": committer, "email": committer_email, "date": _iso(committed)},
            "comment": message.strip(),
            "url": f"{_repository_url(context, repository)}/commits/{sha}",
        },
        "name": branch,
        "aheadCount": ahead,
        "behindCount": behind,
        "isBaseVersion": base == ref,
    }


def _iso(text: str) -> str:
    return time_text(datetime.fromisoformat(text.strip()))


def _repository_url(context: RequestContext, repository: Repository) -> str:
    return f"{context.owner.org_url}/{repository.project.id}/_apis/git/repositories/{repository.id}"


def _git(repository: Repository, *args: str) -> str | None:
    """stdout of a git command in the repository, or None when it fails (unknown ref, empty repository)."""
    done = subprocess.run(
        ["git", *args],
        env={
            "GIT_DIR": str(repository.git_dir),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def _for_each_ref(repository: Repository, prefix: str = "") -> list[tuple[str, str, str]]:
    args = ["for-each-ref", "--format=%(refname) %(objectname) %(*objectname)"]
    if prefix:
        args.append(prefix)
    output = _git(repository, *args) or ""
    rows = []
    for line in output.splitlines():
        name, object_id, peeled = [*line.split(" "), ""][:3]
        rows.append((name, object_id, peeled))
    return rows
