"""The REST subset, wire-compatible with the `azure-devops` SDK (7.1.0b4) and with plain HTTP clients.

The SDK never hard-codes URLs: it reads the location list (`OPTIONS <org>/_apis`), then fills each resource's
route template with the route values. So the ids, areas, resource names and templates below are exactly the
ones the SDK asks for; a route missing here makes the SDK fail with "API resource location ... is not
registered" instead of calling a URL the real service would not have. Paths are matched case-insensitively
(the SDK writes `resourceName` verbatim, e.g. `/_apis/ConnectionData`) and segments are percent-decoded.

Which PAT scope each call needs follows the REST specification (azure-devops.md §6.1): projects `vso.project`
(or `vso.profile`), repositories/refs/policies `vso.code`, creating a repository `vso.code_manage`; location and
security calls need none. Job tokens and workload-identity tokens are not scope-limited.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from flux_azdo.sandbox.azure_devops import errors, security
from flux_azdo.sandbox.azure_devops.errors import ServiceError
from flux_azdo.sandbox.azure_devops.security import GitPermission
from flux_azdo.sandbox.world import AuthenticationFailed, BranchPolicy, Credential, Identity, Project, Repository

if TYPE_CHECKING:
    from flux_azdo.sandbox.azure_devops.server import AzureDevOpsServer, _Handler

# (id, area, resourceName, routeTemplate, resourceVersion)
LOCATIONS: tuple[tuple[str, str, str, str, int], ...] = (
    ("00d9565f-ed9c-4a06-9a50-00e7896ccab4", "Location", "ConnectionData", "_apis/{resource}", 1),
    ("e81700f7-3be2-46de-8624-2eb35882fcaa", "Location", "ResourceAreas", "_apis/{resource}/{areaId}", 1),
    ("603fe2ac-9723-48b9-88ad-09305aa6c6e1", "core", "projects", "_apis/{resource}/{*projectId}", 4),
    (
        "225f7195-f9c7-4d14-ab28-a83f7ff77e1f",
        "git",
        "repositories",
        "{project}/_apis/{area}/{resource}/{repositoryId}",
        1,
    ),
    (
        "2d874a60-a811-4f62-9c9f-963a6ea0a55b",
        "git",
        "refs",
        "{project}/_apis/{area}/repositories/{repositoryId}/{resource}/{*filter}",
        1,
    ),
    (
        "2c420070-a0a2-49cc-9639-c9f271c5ff07",
        "git",
        "policyConfigurations",
        "{project}/_apis/{area}/policy/configurations",
        1,
    ),
    (
        "dad91cbe-d183-45f8-9c6e-9c1164472121",
        "policy",
        "configurations",
        "{project}/_apis/{area}/{resource}/{configurationId}",
        1,
    ),
    (
        "dd3b8bd6-c7fc-4cbd-929a-933d9c011c9d",
        "Security",
        "Permissions",
        "_apis/{resource}/{securityNamespaceId}/{permissions}",
        2,
    ),
    ("cf1faa59-1b63-4448-bf04-13d981a46f5d", "Security", "PermissionEvaluationBatch", "_apis/{area}/{resource}", 1),
)

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

_PROJECT_SCOPES = ("vso.project", "vso.profile")
_INVALID_NAME_CHARACTERS = frozenset('/\\:*?"<>|;#$%{}+=[]')
_CODE_SCOPES = ("vso.code",)
_SERVICE_OWNER = "00025394-6065-48ca-87d9-7f5672854ef7"  # the "tfs" service owner id the service reports


def serve(handler: _Handler, owner: AzureDevOpsServer, segments: list[str], query: str) -> None:
    """Authenticate, then route one REST request (`segments`: decoded path segments, org first)."""
    if not segments:
        raise errors.resource_not_found("/")
    deployment_level = segments[0].lower() == "_apis"
    if not deployment_level and segments[0].casefold() != owner.world.org.casefold():
        raise ServiceError(
            404, f"TF400813: The organization '{segments[0]}' could not be found.", "HostNotFoundException"
        )
    try:
        credential = owner.world.authenticate_credential(handler.headers.get("Authorization"))
    except AuthenticationFailed as failure:
        raise (
            errors.pat_expired() if failure.reason == "expired" else errors.unauthenticated(failure.message)
        ) from None
    context = _Context(handler, owner, credential, dict((k.lower(), v) for k, v in parse_qsl(query)))
    path = segments if deployment_level else segments[1:]
    lowered = [s.lower() for s in path]
    route = _route(handler.command, lowered)
    if route is None:
        raise errors.resource_not_found("/" + "/".join(segments))
    function, name_positions = route
    status, document = function(context, *[path[i] for i in name_positions])
    handler.send_json(status, document)


_Route = Callable[..., tuple[int, Any]]


def _route(method: str, p: list[str]) -> tuple[_Route, list[int]] | None:
    """Map (method, lowercase segments after the org) to a handler and the positions of its name arguments."""
    n = len(p)
    if n == 1 and p[0] == "_apis" and method == "OPTIONS":
        return _options, []
    if n >= 2 and p[0] == "_apis" and method == "GET":
        if p[1] == "resourceareas" and n in (2, 3):
            return _resource_areas, list(range(2, n))
        if p[1] == "connectiondata" and n == 2:
            return _connection_data, []
        if p[1] == "projects" and n == 2:
            return _list_projects, []
        if p[1] == "projects" and n == 3:
            return _get_project, [2]
        if p[1] == "permissions" and n == 4:
            return _permissions, [2, 3]
        if p[1:3] == ["git", "repositories"] and n in (3, 4):
            return _repositories_without_project, list(range(3, n))
        if p[1:3] == ["git", "repositories"] and n >= 5 and p[4] == "refs":
            return _refs_without_project, [3]
    if n == 3 and p[:3] == ["_apis", "security", "permissionevaluationbatch"] and method == "POST":
        return _permission_batch, []
    if n >= 4 and p[1] == "_apis" and p[2] == "git" and p[3] == "repositories":
        if n == 4 and method == "GET":
            return _list_repositories, [0]
        if n == 4 and method == "POST":
            return _create_repository, [0]
        if n == 5 and method == "GET":
            return _get_repository, [0, 4]
        if n >= 6 and p[5] == "refs" and method == "GET":
            return _get_refs, [0, 4]
    if n == 5 and p[1:] == ["_apis", "git", "policy", "configurations"] and method == "GET":
        return _git_policy_configurations, [0]
    if n in (4, 5) and p[1:4] == ["_apis", "policy", "configurations"] and method == "GET":
        return _policy_configurations, list(range(0, n, 4))
    return None


class _Context:
    def __init__(self, handler: _Handler, owner: AzureDevOpsServer, credential: Credential, query: dict[str, str]):
        self.handler = handler
        self.owner = owner
        self.world = owner.world
        self.credential = credential
        self.identity = credential.identity
        self.query = query

    def require_scope(self, *scopes: str) -> None:
        if not self.credential.has_scope(*scopes):
            raise errors.not_authorized(self.identity.id)

    def body(self) -> Any:
        raw = self.handler.read_body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise errors.bad_request("The request body is not valid JSON.", "VssRequestContentException") from None

    def project(self, name_or_id: str) -> Project:
        """The route's `{project}`, hidden (404) when the caller cannot see it, like the service does."""
        project = self.world.find_project(name_or_id)
        if project is None or not self.can_see(project):
            raise _project_missing(name_or_id)
        return project

    def can_see(self, project: Project) -> bool:
        return self.world.is_member(self.identity, project)

    def readable_repository(self, project: Project | None, name_or_id: str) -> Repository:
        repository = self.world.find_repository(project, name_or_id)
        if repository is None or not self.owner.can_read(self.identity, repository):
            raise errors.repository_not_found(name_or_id)
        return repository


def _is_guid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(c in "0123456789abcdefABCDEF" for c in "".join(parts))


def _project_missing(name_or_id: str) -> ServiceError:
    return (
        errors.project_not_found_by_id(name_or_id)
        if _is_guid(name_or_id)
        else errors.project_not_found_by_name(name_or_id)
    )


def _time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _collection(items: list[Any]) -> dict[str, Any]:
    return {"count": len(items), "value": items}


# ----- location service --------------------------------------------------------------------------------------


def _options(context: _Context) -> tuple[int, Any]:
    locations = [
        {
            "id": location_id,
            "area": area,
            "resourceName": resource,
            "routeTemplate": template,
            "resourceVersion": version,
            "minVersion": "1.0",
            "maxVersion": "7.2",
            "releasedVersion": "7.1",
        }
        for location_id, area, resource, template, version in LOCATIONS
    ]
    return 200, _collection(locations)


def _resource_areas(context: _Context, area_id: str | None = None) -> tuple[int, Any]:
    location_url = context.owner.org_url + "/"
    areas = [{"id": i, "name": name, "locationUrl": location_url} for i, name in RESOURCE_AREAS]
    if area_id is not None:
        found = next((a for a in areas if a["id"] == area_id.lower()), None)
        if found is None:
            raise ServiceError(404, f"The resource area {area_id} was not found.", "ResourceAreaNotFoundException")
        return 200, found
    return 200, _collection(areas)


def identity_document(context: _Context, identity: Identity) -> dict[str, Any]:
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


def _connection_data(context: _Context) -> tuple[int, Any]:
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


def project_reference(context: _Context, project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description or None,
        "url": f"{context.owner.org_url}/_apis/projects/{project.id}",
        "state": "wellFormed",
        "revision": project.revision,
        "visibility": "private",
        "lastUpdateTime": _time(project.last_update_time),
    }


def _project_document(context: _Context, project: Project) -> dict[str, Any]:
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


def _list_projects(context: _Context) -> tuple[int, Any]:
    context.require_scope(*_PROJECT_SCOPES)
    visible = [p for p in context.world.projects() if context.can_see(p)]
    return 200, _collection(
        [{k: v for k, v in project_reference(context, p).items() if v is not None} for p in visible]
    )


def _get_project(context: _Context, name_or_id: str) -> tuple[int, Any]:
    context.require_scope(*_PROJECT_SCOPES)
    return 200, _project_document(context, context.project(name_or_id))


# ----- repositories ------------------------------------------------------------------------------------------


def repository_document(context: _Context, repository: Repository) -> dict[str, Any]:
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
            "isDisabled": False,
            "isInMaintenance": False,
        }
    )
    return document


def _size(repository: Repository) -> int:
    objects = repository.git_dir / "objects"
    return sum(path.stat().st_size for path in objects.rglob("*") if path.is_file()) if objects.exists() else 0


def _list_repositories(context: _Context, project_name: str) -> tuple[int, Any]:
    context.require_scope(*_CODE_SCOPES)
    project = context.project(project_name)
    readable = [r for r in context.world.repositories(project) if context.owner.can_read(context.identity, r)]
    readable.sort(key=lambda r: r.name.casefold())
    return 200, _collection([repository_document(context, r) for r in readable])


def _repositories_without_project(context: _Context, repository_id: str | None = None) -> tuple[int, Any]:
    """`_apis/git/repositories[/<id>]`: all readable repositories of the organisation, or one by id."""
    context.require_scope(*_CODE_SCOPES)
    if repository_id is not None:
        return 200, repository_document(context, context.readable_repository(None, repository_id))
    readable = [r for r in context.world.repositories() if context.owner.can_read(context.identity, r)]
    return 200, _collection([repository_document(context, r) for r in readable])


def _get_repository(context: _Context, project_name: str, name_or_id: str) -> tuple[int, Any]:
    context.require_scope(*_CODE_SCOPES)
    project = context.project(project_name)
    return 200, repository_document(context, context.readable_repository(project, name_or_id))


def _create_repository(context: _Context, project_name: str) -> tuple[int, Any]:
    """POST: needs `vso.code_manage` and CreateRepository on `repoV2/<projectId>`; 201 with the new repository."""
    context.require_scope("vso.code_manage")
    body = context.body()
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
            raise _project_missing(str(body_project["id"]))
        project = other
    token = security.project_token(project.id)
    if not context.world.has_permission(context.identity, token, GitPermission.CREATE_REPOSITORY):
        raise errors.needs_permission("CreateRepository", context.identity.display_name, "project")
    try:
        repository = context.world.create_repository(project, name.strip())
    except ValueError:
        raise errors.repository_name_exists(name.strip()) from None
    return 201, repository_document(context, repository)


# ----- refs --------------------------------------------------------------------------------------------------


def _get_refs(context: _Context, project_name: str, name_or_id: str) -> tuple[int, Any]:
    context.require_scope(*_CODE_SCOPES)
    project = context.project(project_name)
    return _refs(context, context.readable_repository(project, name_or_id))


def _refs_without_project(context: _Context, repository_id: str) -> tuple[int, Any]:
    context.require_scope(*_CODE_SCOPES)
    return _refs(context, context.readable_repository(None, repository_id))


def _refs(context: _Context, repository: Repository) -> tuple[int, Any]:
    """`GitRef`s sorted by name; `filter` is a prefix after `refs/` (so `heads/main` matches `heads/main-old`)."""
    name_filter = context.query.get("filter", "")
    contains = context.query.get("filtercontains", "")
    peel = context.query.get("peeltags", "").lower() == "true"
    top = int(context.query["$top"]) if context.query.get("$top", "").isdigit() else None
    base = f"{context.owner.org_url}/{repository.project.id}/_apis/git/repositories/{repository.id}/refs"
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
    return 200, _collection(refs[:top] if top is not None else refs)


def _for_each_ref(repository: Repository) -> list[tuple[str, str, str]]:
    done = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname) %(*objectname)"],
        env={"GIT_DIR": str(repository.git_dir), "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stdout.splitlines():
        name, object_id, peeled = [*line.split(" "), ""][:3]
        rows.append((name, object_id, peeled))
    return rows


# ----- policies ----------------------------------------------------------------------------------------------


def _identity_reference(context: _Context, identity: Identity | None) -> dict[str, Any]:
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


def policy_document(context: _Context, policy: BranchPolicy) -> dict[str, Any]:
    project_id = policy.repository.project.id
    url = f"{context.owner.org_url}/{project_id}/_apis/policy/configurations/{policy.id}"
    type_url = f"{context.owner.org_url}/{project_id}/_apis/policy/types/{policy.type_id}"
    return {
        "createdBy": _identity_reference(context, policy.created_by),
        "createdDate": _time(policy.created_date),
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


def _policies(context: _Context, project_name: str) -> list[BranchPolicy]:
    context.require_scope(*_CODE_SCOPES)
    project = context.project(project_name)
    repository = None
    repository_id = context.query.get("repositoryid")
    if repository_id:
        repository = context.world.find_repository(project, repository_id)
        if repository is None:
            return []
    ref_name = context.query.get("refname") or None
    found = context.world.branch_policies(project, repository, ref_name)
    policy_type = context.query.get("policytype", "").lower()
    return [p for p in found if not policy_type or p.type_id == policy_type]


def _git_policy_configurations(context: _Context, project_name: str) -> tuple[int, Any]:
    """`{project}/_apis/git/policy/configurations?repositoryId=&refName=`: policies that apply to a branch."""
    return 200, _collection([policy_document(context, p) for p in _policies(context, project_name)])


def _policy_configurations(
    context: _Context, project_name: str, configuration_id: str | None = None
) -> tuple[int, Any]:
    """`{project}/_apis/policy/configurations[/<id>]` (the same filters are accepted on the list)."""
    policies = _policies(context, project_name)
    if configuration_id is None:
        return 200, _collection([policy_document(context, p) for p in policies])
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


def _evaluate(context: _Context, token: str, bits: int, always_allow_administrators: bool) -> bool:
    if always_allow_administrators and context.world.is_administrator(context.identity, token):
        return True
    return context.world.has_permission(context.identity, token, bits)


def _permissions(context: _Context, namespace_id: str, bits_text: str) -> tuple[int, Any]:
    """`_apis/Permissions/{ns}/{bits}?tokens=a,b&delimiter=,`: one bool per token, for the caller."""
    _check_namespace(namespace_id)
    try:
        bits = int(bits_text)
    except ValueError:
        raise errors.bad_request(f"The value '{bits_text}' is not valid for permissions.") from None
    delimiter = context.query.get("delimiter") or ","
    tokens = [t for t in context.query.get("tokens", "").split(delimiter) if t]
    always = context.query.get("alwaysallowadministrators", "").lower() == "true"
    return 200, _collection([_evaluate(context, token, bits, always) for token in tokens])


def _permission_batch(context: _Context) -> tuple[int, Any]:
    """`POST _apis/Security/PermissionEvaluationBatch`: the request with each evaluation's `value` filled in."""
    body = context.body()
    if not isinstance(body, dict) or not isinstance(body.get("evaluations"), list):
        raise errors.bad_request("The evaluations of the batch must be specified.")
    always = bool(body.get("alwaysAllowAdministrators"))
    evaluations = []
    for item in body["evaluations"]:
        namespace_id = str(item.get("securityNamespaceId", ""))
        _check_namespace(namespace_id)
        value = _evaluate(context, str(item.get("token", "")), int(item.get("permissions", 0)), always)
        evaluations.append({**item, "value": value})
    return 200, {"alwaysAllowAdministrators": always, "evaluations": evaluations}
