"""REST resource locations and api-version checks, as the service's WebApi layer applies them.

Every REST resource has a location (id, area, resource name, route template) with a version range: the server's
newest version (`maxVersion`, 7.2 here), the newest *released* one (`releasedVersion`; "0.0" for resources that
only exist as previews, such as ConnectionData and ResourceAreas) and a resource version. Clients name the
version in the query (`?api-version=7.1`) or in the Accept header (`application/json;api-version=7.1`, which is
what the SDK does), and the service checks it (texts from WebApiResources):

* no version: accepted for GET (the server picks), refused for any other method with
  VssVersionNotSpecifiedException; the OPTIONS location list needs none;
* not `{Major}.{Minor}[-preview[.{ResourceVersion}]]`: VssInvalidApiResourceVersionException;
* above the server's newest: VssVersionOutOfRangeException;
* above the resource's released version without `-preview`: VssInvalidPreviewVersionException.

The version that was used is echoed in the reply's Content-Type (`application/json; charset=utf-8;
api-version=7.1-preview.1`). Resource versions inside `-preview.N` are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from flux_azdo.sandbox.azure_devops import errors

MIN_VERSION = "1.0"
MAX_VERSION = "7.2"
RELEASED_VERSION = "7.1"
PREVIEW_ONLY = "0.0"


@dataclass(frozen=True)
class Location:
    id: str
    area: str
    resource_name: str
    route_template: str
    resource_version: int
    released_version: str = RELEASED_VERSION

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "area": self.area,
            "resourceName": self.resource_name,
            "routeTemplate": self.route_template,
            "resourceVersion": self.resource_version,
            "minVersion": MIN_VERSION,
            "maxVersion": MAX_VERSION,
            "releasedVersion": self.released_version,
        }


CONNECTION_DATA = Location(
    "00d9565f-ed9c-4a06-9a50-00e7896ccab4", "Location", "ConnectionData", "_apis/{resource}", 1, PREVIEW_ONLY
)
RESOURCE_AREAS = Location(
    "e81700f7-3be2-46de-8624-2eb35882fcaa", "Location", "ResourceAreas", "_apis/{resource}/{areaId}", 1, PREVIEW_ONLY
)
PROJECTS = Location("603fe2ac-9723-48b9-88ad-09305aa6c6e1", "core", "projects", "_apis/{resource}/{*projectId}", 4)
REPOSITORIES = Location(
    "225f7195-f9c7-4d14-ab28-a83f7ff77e1f", "git", "repositories", "{project}/_apis/{area}/{resource}/{repositoryId}", 1
)
REFS = Location(
    "2d874a60-a811-4f62-9c9f-963a6ea0a55b",
    "git",
    "refs",
    "{project}/_apis/{area}/repositories/{repositoryId}/{resource}/{*filter}",
    1,
)
BRANCH_STATS = Location(
    "d5b216de-d8d5-4d32-ae76-51df755b16d3",
    "git",
    "branchStats",
    "{project}/_apis/{area}/repositories/{repositoryId}/stats/branches",
    1,
)
GIT_POLICY_CONFIGURATIONS = Location(
    "2c420070-a0a2-49cc-9639-c9f271c5ff07",
    "git",
    "policyConfigurations",
    "{project}/_apis/{area}/policy/configurations",
    1,
)
POLICY_CONFIGURATIONS = Location(
    "dad91cbe-d183-45f8-9c6e-9c1164472121",
    "policy",
    "configurations",
    "{project}/_apis/{area}/{resource}/{configurationId}",
    1,
)
PERMISSIONS = Location(
    "dd3b8bd6-c7fc-4cbd-929a-933d9c011c9d",
    "Security",
    "Permissions",
    "_apis/{resource}/{securityNamespaceId}/{permissions}",
    2,
)
PERMISSION_EVALUATION_BATCH = Location(
    "cf1faa59-1b63-4448-bf04-13d981a46f5d", "Security", "PermissionEvaluationBatch", "_apis/{area}/{resource}", 1
)

#: The pipeline OIDC token (TaskHubOidcTokenController). azure-identity's AzurePipelinesCredential calls it with
#: `api-version=7.1`, the SDK's `create_oidc_token` with `7.1-preview.1`: released in 7.1.
OIDC_TOKEN = Location(
    "69a319f4-28c1-4bfd-93e6-ea0ff5c6f1a2",
    "distributedtask",
    "oidctoken",
    "{scopeIdentifier}/_apis/{area}/hubs/{hubName}/plans/{planId}/jobs/{jobId}/{resource}",
    1,
)
#: Secure file download (`?ticket=..&download=true`), the call the agent makes for DownloadSecureFile@1.
#: UNVERIFIED: the released version; the sandbox accepts 7.1 without `-preview`.
SECURE_FILES = Location(
    "adcfd8bc-b184-43ba-bd84-7c8c6a2ff421",
    "distributedtask",
    "securefiles",
    "{project}/_apis/{area}/{resource}/{secureFileId}",
    1,
)

LOCATIONS: tuple[Location, ...] = (
    CONNECTION_DATA,
    RESOURCE_AREAS,
    PROJECTS,
    REPOSITORIES,
    REFS,
    BRANCH_STATS,
    GIT_POLICY_CONFIGURATIONS,
    POLICY_CONFIGURATIONS,
    PERMISSIONS,
    PERMISSION_EVALUATION_BATCH,
    OIDC_TOKEN,
    SECURE_FILES,
)

_VERSION = re.compile(r"^(\d+)\.(\d+)(-preview(?:\.\d+)?)?$", re.IGNORECASE)
_METHODS_WITHOUT_VERSION = frozenset({"GET", "HEAD", "OPTIONS"})


def requested_version(query: Mapping[str, str], accept: str | None) -> str | None:
    """The api-version the client asked for: the query parameter, else the Accept header's parameter."""
    if "api-version" in query:
        return query["api-version"].strip()
    for media_range in (accept or "").split(","):
        for parameter in media_range.split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "api-version":
                return value.strip()
    return None


def check(method: str, requested: str | None, location: Location) -> str:
    """The version to serve (and echo), or the service's 400 for a missing, malformed or unusable one."""
    if requested is None or requested == "":
        if method.upper() not in _METHODS_WITHOUT_VERSION:
            raise errors.version_not_specified(method.upper())
        if location.released_version == PREVIEW_ONLY:
            return f"{MAX_VERSION}-preview.{location.resource_version}"
        return location.released_version
    match = _VERSION.match(requested)
    if match is None:
        raise errors.invalid_api_version(requested)
    asked = (int(match.group(1)), int(match.group(2)))
    number = f"{asked[0]}.{asked[1]}"
    if asked > _pair(MAX_VERSION):
        raise errors.api_version_out_of_range(number, MAX_VERSION)
    if match.group(3) is None and asked > _pair(location.released_version):
        raise errors.preview_not_supplied(number)
    return requested


def _pair(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)
