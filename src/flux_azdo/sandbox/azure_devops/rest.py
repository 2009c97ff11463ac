"""The REST subset, wire-compatible with the `azure-devops` SDK (7.1.0b4) and with plain HTTP clients.

The SDK never hard-codes URLs: it reads the location list (`OPTIONS <org>/_apis`), then fills each resource's
route template with the route values. So the ids, areas, resource names and templates (`versions.LOCATIONS`) are
exactly the ones the SDK asks for; a route missing here makes the SDK fail with "API resource location ... is not
registered" instead of calling a URL the real service would not have. Paths are matched case-insensitively
(the SDK writes `resourceName` verbatim, e.g. `/_apis/ConnectionData`) and segments are percent-decoded.

Order of checks, as the service applies them: organisation (404 when the server does not host it), credentials
(401), route (404 for an unknown path, 405 when the path exists with other methods; HEAD is served as GET without
a body), api-version (400, see `versions`), then the handler's own scope and permission checks. At deployment
level (no organisation in the path) only the location list and ResourceAreas are served.

A caller without a valid credential (none, an unknown token, a revoked job token) gets the 401 only when it
sends `X-TFS-FedAuthRedirect: Suppress`, as the SDK always does (azure/devops/client.py sets
`_suppress_fedauth_redirect = True` on every client and adds the header to every call, OPTIONS included).
Without the header the service sends the caller to its sign-in page instead: `302 Found` to
`.../_signin?realm=...&reply_to=<the request URL>` with an "Object moved" HTML body, and clients that follow it
land on an HTML page answered 203 (see `sign_in_redirect`). With `server.sign_in_page = True` that 203 page is the
direct answer, header or not, which is what a client sees behind a proxy that drops the header or through an HTTP
stack that follows the redirect for it; the SDK then fails with msrest's `DeserializationError` ("Cannot
deserialize content-type: text/html"). An expired PAT is recognised by the service and keeps its JSON 401.

A disabled repository is still listed and read (`isDisabled: true`), but the calls inside it (refs, branch
stats, ref updates) answer 404 TF401019 as for a missing repository.

Pipelines: the OIDC token of a job (`POST {projectId}/_apis/distributedtask/hubs/{hub}/plans/{planId}/jobs/{jobId}/
oidctoken?serviceConnectionId=`, job token only: anything else is a 401, as a PAT gets in vsts-rest-api-specs#709;
the reply is `{"oidcToken": <jwt>}`) and secure files (`GET {project}/_apis/distributedtask/securefiles/{id}`):
with `?ticket=` the file's bytes (octet-stream) whatever `download` says, as task-lib's SecureFileHelpers call
`downloadSecureFile(project, id, ticket, false)` (the node API documents `download=false` as "the response body
contains the file stream", `true` as an attachment); without a ticket the file's metadata (JSON).

Which PAT scope each call needs follows the REST specification (azure-devops.md §6.1): projects `vso.project`
(or `vso.profile`), repositories/refs/policies `vso.code`, updating refs `vso.code_write`, creating a repository
`vso.code_manage`; location and security calls need none. Job tokens and workload-identity tokens are not
scope-limited.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from flux_azdo.sandbox.azure_devops import errors, rest_refs, security, versions
from flux_azdo.sandbox.azure_devops.errors import ServiceError
from flux_azdo.sandbox.azure_devops.rest_context import (
    CODE_SCOPES,
    PROJECT_SCOPES,
    RequestContext,
    collection,
    is_guid,
    project_missing,
    time_text,
)
from flux_azdo.sandbox.azure_devops.security import GitPermission
from flux_azdo.sandbox.azure_devops.versions import Location
from flux_azdo.sandbox.world import AuthenticationFailed, BranchPolicy, Identity, Project, Repository

if TYPE_CHECKING:
    from flux_azdo.sandbox.azure_devops.server import AzureDevOpsServer, _Handler

# Resource areas the SDK's clients look up before their first call. The service lists every area; an area
# missing from a non-empty list would make the SDK ask app.vssps.visualstudio.com, so all of them point here.
RESOURCE_AREAS: tuple[tuple[str, str], ...] = (
    ("79134c72-4a58-4b42-976c-04e7115f32bf", "core"),
    ("4e080c62-fa21-4fbc-8fef-2a10a2b38049", "git"),
    ("fb13a388-40dd-4a04-b530-013a739c72ef", "policy"),
    ("965220d5-5bb9-42cf-8d67-9b146df2a5a4", "build"),
    ("1814ab31-2f4f-4a9f-8761-f4d77dc5a5d7", "serviceendpoint"),
    ("a85b8835-c1a1-4aac-ae97-1c3d0ba72dbd", "distributedtask"),
    ("bb1e7ec9-e901-4b68-999a-de7012b920f8", "Graph"),
    ("8a3d49b8-91f0-46ef-b33d-dda338c25db3", "IMS"),
    ("8ccfef3d-2b87-4e99-8ccb-66e343d2daa8", "Profile"),
    ("0d55247a-1c47-4462-9b1f-5e2125590ee6", "account"),
    ("68ddce18-2501-45f1-a17b-7931a9922690", "MemberEntitlementManagement"),
    ("af68438b-ed04-4407-9eb6-f1dbae3f922e", "TokenAdmin"),
    ("5264459e-e5e0-4bd8-b118-0985e68a4ec5", "wit"),
    ("1d4f49f9-02b9-4e26-b826-2cdb6195f2a9", "work"),
    ("efc2f575-36ef-48e9-b672-0c6fb4a48ac5", "Release"),
    ("bf7d82a0-8aa5-4613-94ef-6172a5ea01f3", "wiki"),
    ("8aa40520-446d-40e6-89f6-9c9f9ce44c48", "tfvc"),
    ("4a933897-0488-45af-bd82-6fd3ad33f46a", "PipelinesChecks"),
    ("a81a0441-de52-4000-aa15-ff0e07bfbbaa", "pipelinePermissions"),
    ("7ab4e64e-c4d8-4f50-ae73-5ef2e21642a5", "Packaging"),
    ("c2aa639c-3ccc-4740-b3b6-ce2a1e1d984e", "Test"),
    ("c83eaf52-edf3-4034-ae11-17d38f25404c", "testresults"),
    ("7658fa33-b1bf-4580-990f-fac5896773d3", "projectanalysis"),
    ("ea48a0a1-269c-42d8-b8ad-ddc8fcdcf578", "search"),
    ("6c2b0933-3600-42ae-bf8b-93d4f7e83594", "ExtensionManagement"),
    ("8477aec9-a4c7-4bd4-a456-ba4c53c989cb", "Contribution"),
    ("69d21c00-f135-441b-b5ce-3626378e0819", "gallery"),
    ("31c84e0a-3ece-48fd-a29d-100849af99ba", "Dashboard"),
    ("94ff054d-5ee1-413d-9341-3f4a7827de2e", "Audit"),
    ("af607f94-69ba-4821-8159-f04e37b66350", "symbol"),
    ("4c83cfc1-f33a-477e-a789-29d38ffca52e", "npm"),
    ("b3be7473-68ea-4a81-bfc7-9530baaa19ad", "nuget"),
    ("6f7f8c07-ff36-473c-bcf3-bd6cc9b6c066", "maven"),
    ("92f0314b-06c5-46e0-abe7-15fd9d13276a", "pypi"),
    ("d397749b-f115-4027-b6dd-77a65dd10d21", "upack"),
    ("b40c1171-807a-493a-8f3f-5c26d5e2f5aa", "Provenance"),
    ("2e504d18-2c0c-46f8-af8f-322d2af0068a", "sbom"),
)

_INVALID_NAME_CHARACTERS = frozenset('/\\:*?"<>|;#$%{}+=[]')
_SERVICE_OWNER = "00025394-6065-48ca-87d9-7f5672854ef7"  # the "tfs" service owner id the service reports

_Function = Callable[..., tuple[int, Any]]
_OIDC_PATH = ["plans", "jobs", "oidctoken"]


@dataclass(frozen=True)
class _Endpoint:
    function: _Function
    arguments: tuple[int, ...]  # positions of the path segments passed to `function`
    location: Location | None  # None: the location list itself (needs no api-version)


def serve(handler: _Handler, owner: AzureDevOpsServer, segments: list[str], query: str) -> None:
    """Authenticate, then route one REST request (`segments`: decoded path segments, org first)."""
    if not segments:
        raise errors.resource_not_found("/")
    deployment_level = segments[0].lower() == "_apis"
    if not deployment_level and segments[0].casefold() != owner.world.org.casefold():
        raise errors.organization_not_found(segments[0])
    try:
        credential = owner.world.authenticate_credential(handler.headers.get("Authorization"))
    except AuthenticationFailed as failure:
        if failure.reason == "expired":
            raise errors.pat_expired() from None
        if owner.sign_in_page:
            handler.send_bytes(203, errors.sign_in_page_html(), "text/html; charset=utf-8")
            return
        if not _suppresses_sign_in(handler):
            sign_in_redirect(handler, owner)
            return
        raise errors.unauthenticated(failure.message) from None
    parameters = {k.lower(): v for k, v in parse_qsl(query, keep_blank_values=True)}
    context = RequestContext(handler, owner, credential, parameters)
    path = segments if deployment_level else segments[1:]
    endpoints = _deployment_endpoints(path) if deployment_level else _endpoints([s.lower() for s in path])
    if not endpoints:
        raise errors.resource_not_found("/" + "/".join(segments))
    method = "GET" if handler.command == "HEAD" else handler.command
    endpoint = endpoints.get(method)
    if endpoint is None:
        allowed = sorted(endpoints) + (["HEAD"] if "GET" in endpoints else [])
        raise errors.method_not_allowed(handler.command, allowed)
    version = None
    if endpoint.location is not None:
        requested = versions.requested_version(parameters, handler.headers.get("Accept"))
        version = versions.check(method, requested, endpoint.location)
    status, document = endpoint.function(context, *[path[i] for i in endpoint.arguments])
    if isinstance(document, RawBody):
        handler.send_bytes(status, document.data, document.content_type, dict(document.headers))
        return
    handler.send_json(status, document, api_version=version)


@dataclass(frozen=True)
class RawBody:
    """A reply that is not JSON (a secure file's bytes)."""

    data: bytes
    content_type: str = "application/octet-stream"
    headers: tuple[tuple[str, str], ...] = ()


def _suppresses_sign_in(handler: _Handler) -> bool:
    return handler.headers.get(errors.FEDAUTH_REDIRECT_HEADER, "").strip().lower() == "suppress"


def sign_in_redirect(handler: _Handler, owner: AzureDevOpsServer) -> None:
    """The service's answer to an unauthenticated request that does not suppress it: 302 to the sign-in page.

    Seen from the service: `302 Found`, `Location: https://spsprod<region>.vssps.visualstudio.com/_signin?
    realm=dev.azure.com&reply_to=<request URL>&redirect=1...`, an "Object moved" HTML body (azure-sdk-for-js
    TROUBLESHOOTING, azure-devops-docs#13661, microsoft/testfx#10983); with `X-TFS-FedAuthRedirect: Suppress` the
    same request is a 401 (azure-sdk-for-cpp#6019, azure-sdk-for-net#46135). Here the page is this server's
    `/_signin`, whatever the method (msrest follows a 302 only for GET and HEAD).
    """
    host = handler.headers.get("Host") or owner.url.removeprefix("http://")
    reply_to = f"http://{host}{handler.path}"
    query = urlencode({"realm": host.rsplit(":", 1)[0], "reply_to": reply_to, "redirect": "1"})
    location = f"{owner.url}{errors.SIGN_IN_PATH}?{query}"
    handler.send_bytes(302, errors.object_moved_html(location), "text/html; charset=utf-8", {"Location": location})


def _deployment_endpoints(path: list[str]) -> dict[str, _Endpoint]:
    """`/_apis` without an organisation: the location list and ResourceAreas, nothing that needs an org."""
    p = [s.lower() for s in path]
    if p == ["_apis"]:
        return {"OPTIONS": _Endpoint(_options, (), None)}
    if len(p) in (2, 3) and p[1] == "resourceareas":
        return {"GET": _Endpoint(_resource_areas, tuple(range(2, len(p))), versions.RESOURCE_AREAS)}
    return {}


def _endpoints(p: list[str]) -> dict[str, _Endpoint]:
    """Every method served at a path (lowercase segments after the org); empty when the path is unknown."""
    n = len(p)
    if n == 0 or p[0] == "":
        return {}
    if p == ["_apis"]:
        return {"OPTIONS": _Endpoint(_options, (), None)}
    if p[0] == "_apis":
        return _organisation_endpoints(p)
    if n >= 4 and p[1:4] == ["_apis", "git", "repositories"]:
        return _repository_endpoints(p, project=True)
    if n == 5 and p[1:] == ["_apis", "git", "policy", "configurations"]:
        return {"GET": _Endpoint(_git_policy_configurations, (0,), versions.GIT_POLICY_CONFIGURATIONS)}
    if n in (4, 5) and p[1:4] == ["_apis", "policy", "configurations"]:
        return {"GET": _Endpoint(_policy_configurations, tuple(range(0, n, 4)), versions.POLICY_CONFIGURATIONS)}
    if n == 10 and p[1:4] == ["_apis", "distributedtask", "hubs"] and [p[5], p[7], p[9]] == _OIDC_PATH:
        return {"POST": _Endpoint(_oidc_token, (0, 4, 6, 8), versions.OIDC_TOKEN)}
    if n == 5 and p[1:4] == ["_apis", "distributedtask", "securefiles"]:
        return {"GET": _Endpoint(_secure_file, (0, 4), versions.SECURE_FILES)}
    return {}


def _organisation_endpoints(p: list[str]) -> dict[str, _Endpoint]:
    """`/<org>/_apis/...` routes that take no project."""
    n = len(p)
    if p[1] == "resourceareas" and n in (2, 3):
        return {"GET": _Endpoint(_resource_areas, tuple(range(2, n)), versions.RESOURCE_AREAS)}
    if p[1] == "connectiondata" and n == 2:
        return {"GET": _Endpoint(_connection_data, (), versions.CONNECTION_DATA)}
    if p[1] == "projects" and n in (2, 3):
        function = _list_projects if n == 2 else _get_project
        return {"GET": _Endpoint(function, tuple(range(2, n)), versions.PROJECTS)}
    if p[1] == "permissions" and n == 4:
        return {"GET": _Endpoint(_permissions, (2, 3), versions.PERMISSIONS)}
    if p[1:] == ["security", "permissionevaluationbatch"]:
        return {"POST": _Endpoint(_permission_batch, (), versions.PERMISSION_EVALUATION_BATCH)}
    if n >= 3 and p[1:3] == ["git", "repositories"]:
        # The project-less form: `_apis/git/repositories[/<id>[/...]]`; shift so that `p[4]` is the repository.
        return _repository_endpoints(["", *p], project=False)
    return {}


def _repository_endpoints(p: list[str], *, project: bool) -> dict[str, _Endpoint]:
    """`{project}/_apis/git/repositories[/{repositoryId}[/refs|/stats/branches]]`; with `project=False` the
    project slot `p[0]` is empty and handlers get None for it."""
    n = len(p)
    scope = (0,) if project else ()

    def endpoint(function: _Function, location: Location, *rest: int) -> _Endpoint:
        if project:
            return _Endpoint(function, (*scope, *rest), location)
        return _Endpoint(_without_project(function), tuple(i - 1 for i in rest), location)

    if n == 4:
        if not project:
            return {"GET": _Endpoint(_repositories_without_project, (), versions.REPOSITORIES)}
        return {
            "GET": endpoint(_list_repositories, versions.REPOSITORIES),
            "POST": endpoint(_create_repository, versions.REPOSITORIES),
        }
    if n == 5:
        if not project:
            return {"GET": _Endpoint(_repositories_without_project, (3,), versions.REPOSITORIES)}
        return {"GET": endpoint(_get_repository, versions.REPOSITORIES, 4)}
    if p[5] == "refs":
        return {
            "GET": endpoint(rest_refs.get_refs, versions.REFS, 4),
            "POST": endpoint(rest_refs.update_refs, versions.REFS, 4),
        }
    if n == 7 and p[5:7] == ["stats", "branches"]:
        return {"GET": endpoint(rest_refs.branch_stats, versions.BRANCH_STATS, 4)}
    return {}


def _without_project(function: _Function) -> _Function:
    """Adapt a `(context, project, repository)` handler to the project-less route (project None)."""

    def call(context: RequestContext, *names: str) -> tuple[int, Any]:
        return function(context, None, *names)

    return call


# ----- location service --------------------------------------------------------------------------------------


def _options(context: RequestContext) -> tuple[int, Any]:
    locations = [location.as_json() for location in versions.LOCATIONS]
    return 200, collection(locations)


def _resource_areas(context: RequestContext, area_id: str | None = None) -> tuple[int, Any]:
    location_url = context.owner.org_url + "/"
    areas = [{"id": i, "name": name, "locationUrl": location_url} for i, name in RESOURCE_AREAS]
    if area_id is not None:
        found = next((a for a in areas if a["id"] == area_id.lower()), None)
        if found is None:
            raise ServiceError(404, f"The resource area {area_id} was not found.", "ResourceAreaNotFoundException")
        return 200, found
    return 200, collection(areas)


def identity_document(context: RequestContext, identity: Identity) -> dict[str, Any]:
    """The `Identity` shape ConnectionData returns for the caller."""
    return {
        "id": identity.id,
        "descriptor": identity.descriptor,
        "subjectDescriptor": identity.subject_descriptor,
        "providerDisplayName": identity.display_name,
        "isActive": True,
        "isContainer": False,
        "members": [],
        "memberOf": [],
        "memberIds": [],
        "properties": {"Account": {"$type": "System.String", "$value": identity.unique_name}},
        "resourceVersion": 2,
        "metaTypeId": 0 if identity.kind == "user" else 1,
    }


def _connection_data(context: RequestContext) -> tuple[int, Any]:
    me = identity_document(context, context.identity)
    access_point = context.owner.url + "/"
    return 200, {
        "authenticatedUser": me,
        "authorizedUser": me,
        "instanceId": context.world.org_id,
        "deploymentId": context.world.deployment_id,
        "deploymentType": "hosted",
        "locationServiceData": {
            "serviceOwner": _SERVICE_OWNER,
            "accessMappings": [
                {
                    "displayName": "Public Access Mapping",
                    "moniker": "PublicAccessMapping",
                    "accessPoint": access_point,
                    "serviceOwner": _SERVICE_OWNER,
                    "virtualDirectory": context.world.org,
                }
            ],
            "defaultAccessMappingMoniker": "PublicAccessMapping",
            "lastChangeId": 1,
            "lastChangeId64": 1,
        },
    }


# ----- projects ----------------------------------------------------------------------------------------------


def project_reference(context: RequestContext, project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description or None,
        "url": f"{context.owner.org_url}/_apis/projects/{project.id}",
        "state": "wellFormed",
        "revision": project.revision,
        "visibility": "private",
        "lastUpdateTime": time_text(project.last_update_time),
    }


def _project_document(context: RequestContext, project: Project) -> dict[str, Any]:
    document = project_reference(context, project)
    org_url = context.owner.org_url
    document["_links"] = {
        "self": {"href": document["url"]},
        "collection": {"href": f"{org_url}/_apis/projectCollections/{context.world.org_id}"},
        "web": {"href": f"{org_url}/{quote(project.name, safe='')}"},
    }
    document["defaultTeam"] = {
        "id": project.id,
        "name": f"{project.name} Team",
        "url": f"{org_url}/_apis/projects/{project.id}/teams/{project.id}",
    }
    return {k: v for k, v in document.items() if v is not None}


def _list_projects(context: RequestContext) -> tuple[int, Any]:
    context.require_scope(*PROJECT_SCOPES)
    visible = [p for p in context.world.projects() if context.can_see(p)]
    return 200, collection([{k: v for k, v in project_reference(context, p).items() if v is not None} for p in visible])


def _get_project(context: RequestContext, name_or_id: str) -> tuple[int, Any]:
    context.require_scope(*PROJECT_SCOPES)
    return 200, _project_document(context, context.project(name_or_id))


# ----- repositories ------------------------------------------------------------------------------------------


def repository_document(context: RequestContext, repository: Repository) -> dict[str, Any]:
    owner = context.owner
    project = repository.project
    web_url = owner.repo_url(repository)
    # The service's remoteUrl carries the organisation as user name (`https://org@dev.azure.com/...`).
    scheme, _, rest = web_url.partition("://")
    remote_url = f"{scheme}://{quote(context.world.org, safe='')}@{rest}"
    document: dict[str, Any] = {
        "id": repository.id,
        "name": repository.name,
        "url": f"{owner.org_url}/{project.id}/_apis/git/repositories/{repository.id}",
        "project": {k: v for k, v in project_reference(context, project).items() if v is not None},
    }
    if repository.default_branch is not None:
        document["defaultBranch"] = repository.default_branch
    document.update(
        {
            "size": _size(repository),
            "remoteUrl": remote_url,
            "sshUrl": owner.ssh_url(repository),
            "webUrl": web_url,
            "isDisabled": repository.is_disabled,
            "isInMaintenance": False,
        }
    )
    return document


def _size(repository: Repository) -> int:
    objects = repository.git_dir / "objects"
    return sum(path.stat().st_size for path in objects.rglob("*") if path.is_file()) if objects.exists() else 0


def _list_repositories(context: RequestContext, project_name: str) -> tuple[int, Any]:
    context.require_scope(*CODE_SCOPES)
    project = context.project(project_name)
    readable = [r for r in context.world.repositories(project) if context.owner.can_read(context.identity, r)]
    readable.sort(key=lambda r: r.name.casefold())
    return 200, collection([repository_document(context, r) for r in readable])


def _repositories_without_project(context: RequestContext, repository_id: str | None = None) -> tuple[int, Any]:
    """`_apis/git/repositories[/<id>]`: all readable repositories of the organisation, or one by id."""
    context.require_scope(*CODE_SCOPES)
    if repository_id is not None:
        found = context.readable_repository(None, repository_id, allow_disabled=True)
        return 200, repository_document(context, found)
    readable = [r for r in context.world.repositories() if context.owner.can_read(context.identity, r)]
    return 200, collection([repository_document(context, r) for r in readable])


def _get_repository(context: RequestContext, project_name: str, name_or_id: str) -> tuple[int, Any]:
    context.require_scope(*CODE_SCOPES)
    project = context.project(project_name)
    found = context.readable_repository(project, name_or_id, allow_disabled=True)
    return 200, repository_document(context, found)


def _create_repository(context: RequestContext, project_name: str) -> tuple[int, Any]:
    """POST: needs `vso.code_manage` and CreateRepository on `repoV2/<projectId>`; 201 with the new repository."""
    context.require_scope("vso.code_manage")
    body = context.body("repositoryToCreate")
    project = context.project(project_name)
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise errors.bad_request("The name of the repository must be specified.\r\nParameter name: name")
    if any(c in _INVALID_NAME_CHARACTERS or ord(c) < 32 for c in name) or name.strip() in (".", ".."):
        message = f"TF401025: '{name}' is not a valid name for a Git repository."
        raise errors.bad_request(message, "InvalidArgumentValueException")
    body_project = body.get("project") if isinstance(body, dict) else None
    if isinstance(body_project, dict) and body_project.get("id") and str(body_project["id"]).lower() != project.id:
        other = context.world.find_project(str(body_project["id"]))
        if other is None or not context.can_see(other):
            raise project_missing(str(body_project["id"]))
        project = other
    token = security.project_token(project.id)
    if not context.world.has_permission(context.identity, token, GitPermission.CREATE_REPOSITORY):
        raise errors.needs_permission("CreateRepository", context.identity.error_name, "project")
    try:
        repository = context.world.create_repository(project, name.strip())
    except ValueError:
        raise errors.repository_name_exists(name.strip()) from None
    return 201, repository_document(context, repository)


# ----- policies ----------------------------------------------------------------------------------------------


def _identity_reference(context: RequestContext, identity: Identity | None) -> dict[str, Any]:
    if identity is None:
        return {
            "displayName": f"Project Collection Administrators ({context.world.org})",
            "id": context.world.org_id,
            "uniqueName": f"[{context.world.org}]\\Project Collection Administrators",
            "descriptor": f"vssgp.{context.world.org_id}",
        }
    return {
        "displayName": identity.display_name,
        "id": identity.id,
        "uniqueName": identity.unique_name,
        "descriptor": identity.subject_descriptor,
    }


def policy_document(context: RequestContext, policy: BranchPolicy) -> dict[str, Any]:
    project_id = policy.repository.project.id
    url = f"{context.owner.org_url}/{project_id}/_apis/policy/configurations/{policy.id}"
    type_url = f"{context.owner.org_url}/{project_id}/_apis/policy/types/{policy.type_id}"
    return {
        "createdBy": _identity_reference(context, policy.created_by),
        "createdDate": time_text(policy.created_date),
        "isEnabled": True,
        "isBlocking": policy.blocking,
        "isDeleted": False,
        "settings": {
            "minimumApproverCount": 1,
            "creatorVoteCounts": False,
            "allowDownvotes": False,
            "resetOnSourcePush": False,
            "scope": [{"refName": policy.ref_name, "matchKind": "Exact", "repositoryId": policy.repository.id}],
        },
        "isEnterpriseManaged": False,
        "_links": {"self": {"href": url}, "policyType": {"href": type_url}},
        "revision": 1,
        "id": policy.id,
        "url": url,
        "type": {"id": policy.type_id, "url": type_url, "displayName": policy.type_display_name},
    }


def _policies(context: RequestContext, project_name: str) -> list[BranchPolicy]:
    """The policies matching the `repositoryId`/`refName`/`policyType` filters.

    The service matches a policy's scope against the filters: `repositoryId` must be a GUID (it is bound as
    one: 400 otherwise), `refName` is compared with each scope's ref name. Every policy here is scoped
    `matchKind: Exact` to one ref of one repository, so an exact, case-sensitive ref comparison is what that
    scope match amounts to; a `repositoryId` without a `refName` matches no branch-scoped policy, which is what
    the service answers too (vsts-rest-api-specs#395, azure-devops-cli-extension#1037: `{"count":0}` until a
    branch is given).
    """
    context.require_scope(*CODE_SCOPES)
    project = context.project(project_name)
    repository = None
    repository_id = context.query.get("repositoryid")
    ref_name = context.query.get("refname") or None
    if repository_id:
        if not is_guid(repository_id):
            raise errors.invalid_guid("repositoryId", repository_id)
        repository = context.world.find_repository(project, repository_id)
        if repository is None or ref_name is None:
            return []
    found = context.world.branch_policies(project, repository, ref_name)
    policy_type = context.query.get("policytype", "").lower()
    return [p for p in found if not policy_type or p.type_id == policy_type]


def _git_policy_configurations(context: RequestContext, project_name: str) -> tuple[int, Any]:
    """`{project}/_apis/git/policy/configurations?repositoryId=&refName=`: policies that apply to a branch."""
    return 200, collection([policy_document(context, p) for p in _policies(context, project_name)])


def _policy_configurations(
    context: RequestContext, project_name: str, configuration_id: str | None = None
) -> tuple[int, Any]:
    """`{project}/_apis/policy/configurations[/<id>]` (the same filters are accepted on the list)."""
    policies = _policies(context, project_name)
    if configuration_id is None:
        return 200, collection([policy_document(context, p) for p in policies])
    found = next((p for p in policies if str(p.id) == configuration_id), None)
    if found is None:
        message = f"TF400860: The policy configuration {configuration_id} does not exist."
        raise ServiceError(
            404, message, "PolicyConfigurationNotFoundException", "Microsoft.TeamFoundation.Policy.Server"
        )
    return 200, policy_document(context, found)


# ----- security ----------------------------------------------------------------------------------------------


def _check_namespace(namespace_id: str) -> None:
    if namespace_id.lower() != security.GIT_NAMESPACE_ID:
        message = f"TF50608: Unable to retrieve information for security namespace {namespace_id}."
        raise ServiceError(
            404, message, "InvalidSecurityNamespaceException", "Microsoft.TeamFoundation.Framework.Server"
        )


def _evaluate(context: RequestContext, token: str, bits: int, always_allow_administrators: bool) -> bool:
    if always_allow_administrators and context.world.is_administrator(context.identity, token):
        return True
    return context.world.has_permission(context.identity, token, bits)


def _permissions(context: RequestContext, namespace_id: str, bits_text: str) -> tuple[int, Any]:
    """`_apis/Permissions/{ns}/{bits}?tokens=a,b&delimiter=,`: one bool per token, for the caller."""
    _check_namespace(namespace_id)
    try:
        bits = int(bits_text)
    except ValueError:
        raise errors.bad_request(f"The value '{bits_text}' is not valid for permissions.") from None
    delimiter = context.query.get("delimiter") or ","
    tokens = [t for t in context.query.get("tokens", "").split(delimiter) if t]
    always = context.query.get("alwaysallowadministrators", "").lower() == "true"
    return 200, collection([_evaluate(context, token, bits, always) for token in tokens])


def _permission_batch(context: RequestContext) -> tuple[int, Any]:
    """`POST _apis/Security/PermissionEvaluationBatch`: the request with each evaluation's `value` filled in.

    A body that does not bind (not JSON, not an object) is the service's ArgumentNullException for the
    parameter; an evaluation with a wrong type (permissions not a number, token not a string) an
    ArgumentException: 400 either way, never a 500.
    """
    body = context.body("evaluationBatch")
    if not isinstance(body, dict):
        raise errors.argument_null("evaluationBatch")
    raw = body.get("evaluations")
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise errors.argument_null("evaluationBatch.Evaluations")
    always = body.get("alwaysAllowAdministrators", False)
    if not isinstance(always, bool):
        raise errors.bad_request(f"The value '{always}' is not valid for alwaysAllowAdministrators.")
    evaluations = []
    for item in raw:
        namespace_id, token, bits = item.get("securityNamespaceId"), item.get("token"), item.get("permissions", 0)
        if not isinstance(namespace_id, str):
            raise errors.argument_null("securityNamespaceId")
        if not isinstance(token, str):
            raise errors.bad_request(f"The value '{token}' is not valid for token.\r\nParameter name: token")
        if isinstance(bits, bool) or not isinstance(bits, int):
            raise errors.bad_request(f"The value '{bits}' is not valid for permissions.\r\nParameter name: permissions")
        _check_namespace(namespace_id)
        evaluations.append({**item, "value": _evaluate(context, token, bits, always)})
    return 200, {"alwaysAllowAdministrators": always, "evaluations": evaluations}


# ----- pipelines: OIDC tokens and secure files ---------------------------------------------------------------


def _oidc_token(context: RequestContext, scope: str, hub: str, plan_id: str, job_id: str) -> tuple[int, Any]:
    """The job's OIDC token for an Azure service connection of its project (job token only).

    A connection the job cannot use (unknown, or in another project) is refused with the text the service gives
    for a connection the running stage does not reference (dotnet/docker-tools#2012); the status is UNVERIFIED.
    """
    if context.credential.kind != "job":
        raise errors.unauthenticated("The OIDC token endpoint accepts the job's access token only.")
    project = context.project(scope)
    for name, value in (("planId", plan_id), ("jobId", job_id)):
        if not is_guid(value):
            raise errors.invalid_guid(name, value)
    connection_id = context.query.get("serviceconnectionid", "").strip()
    if not connection_id:
        raise errors.argument_null("serviceConnectionId")
    connection = context.world.service_connection(connection_id) if is_guid(connection_id) else None
    if connection is None or connection.project is not project:
        message = (
            f"There is no explicit reference to service connection {connection_id} from current stage "
            f"__default.__default.{hub}."
        )
        raise errors.bad_request(message, "InvalidRequestException")
    return 200, {"oidcToken": context.world.issue_oidc_token(connection)}


def _secure_file(context: RequestContext, project_name: str, file_id: str) -> tuple[int, Any]:
    """With `?ticket=`: the file's bytes, whatever `download` says (`true` adds `Content-Disposition:
    attachment`). Without a ticket: the file's metadata. A wrong id or ticket is a 404 that names the id (the
    service's exact text for either is UNVERIFIED)."""
    project = context.project(project_name)
    secure_file = context.world.secure_file(file_id) if is_guid(file_id) else None
    missing = ServiceError(
        404,
        f"Secure file {file_id} does not exist or you do not have permission to access it.",
        "SecureFileNotFoundException",
        "Microsoft.TeamFoundation.DistributedTask.WebApi",
    )
    if secure_file is None or secure_file.project is not project:
        raise missing
    ticket = context.query.get("ticket")
    if ticket is None:
        return 200, {"id": secure_file.id, "name": secure_file.name, "properties": {}}
    if not secrets.compare_digest(ticket.encode(), secure_file.ticket.encode()):
        raise missing
    headers: tuple[tuple[str, str], ...] = ()
    if context.query.get("download", "").lower() == "true":
        headers = (("Content-Disposition", f'attachment; filename="{quote(secure_file.name, safe="")}"'),)
    return 200, RawBody(secure_file.data, headers=headers)
