"""Discovery documents: /version, /api, /apis and the per group/version resource lists, legacy and aggregated.

kubectl 1.32 asks /api and /apis for aggregated discovery (`apidiscovery.k8s.io/v2`, one document per root) and
falls back to the legacy documents only if the server answers with plain JSON; the kubernetes Python client
always reads the legacy ones. Both are generated from the same registry, so they never disagree.
"""

from __future__ import annotations

import re
from typing import Any

from flux_azdo.sandbox.kube.resources import Registry, ResourceType

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:01:38Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}


_GIT_VERSION = re.compile(r"^v?(\d+)\.(\d+)(\.\d+.*)?$")


def version_info(git_version: str) -> dict[str, str]:
    """/version for a server of `git_version` ("v1.31.2", or "1.31.2"; a suffix such as "-eks-1" is kept).

    `major` and `minor` are the numbers as strings, as the apiserver reports them; the build fields stay those
    of the release this fake follows.
    """
    match = _GIT_VERSION.match(git_version)
    if match is None:
        raise ValueError(f"not a Kubernetes version: {git_version!r} (expected e.g. v1.32.4)")
    major, minor, rest = match.groups()
    return {**VERSION_INFO, "major": major, "minor": minor, "gitVersion": f"v{major}.{minor}{rest or '.0'}"}


def aggregated_format(accept: str) -> str | None:
    """The aggregated discovery media type the client accepts (v2 preferred), or None for legacy JSON."""
    offered = []
    for part in accept.split(","):
        pieces = [piece.strip() for piece in part.split(";")]
        params = dict(piece.split("=", 1) for piece in pieces[1:] if "=" in piece)
        discovery = params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList"
        if pieces[0] == "application/json" and discovery:
            offered.append(params.get("v"))
    if "v2" in offered:
        return "v2"
    if "v2beta1" in offered:
        return "v2beta1"
    return None


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{version}", "version": version} for version in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group_entry(name, versions) for name, versions in registry.groups().items() if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, versions)}


def _resource_entry(resource: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
    }
    return _with_names(entry, resource)


def _with_names(entry: dict[str, Any], resource: ResourceType) -> dict[str, Any]:
    """Short names and categories, present only when the resource has some (legacy and aggregated alike)."""
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    return entry


def _subresource_entries(resource: ResourceType) -> list[dict[str, Any]]:
    entries = []
    for sub in resource.subresources:
        entry: dict[str, Any] = {
            "name": f"{resource.plural}/{sub}",
            "singularName": "",
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": ["update"] if sub == "finalize" else ["get", "patch", "update"],
        }
        if sub == "scale":
            entry |= {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        entries.append(entry)
    return entries


def resource_list(registry: Registry, group_name: str, version: str) -> dict[str, Any] | None:
    types = registry.in_version(group_name, version)
    if not types:
        return None
    resources = []
    for resource in sorted(types, key=lambda t: t.plural):
        resources.append(_resource_entry(resource))
        resources += _subresource_entries(resource)
    group_version = f"{group_name}/{version}" if group_name else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _aggregated_resource(resource: ResourceType, version: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource.plural,
        "responseKind": {"group": resource.group, "version": version, "kind": resource.kind},
        "scope": "Namespaced" if resource.namespaced else "Cluster",
        "singularResource": resource.singular,
        "verbs": list(resource.verbs),
    }
    _with_names(entry, resource)
    subresources = []
    for sub in resource.subresources:
        kind = (
            {"group": "autoscaling", "version": "v1", "kind": "Scale"}
            if sub == "scale"
            else {"group": resource.group, "version": version, "kind": resource.kind}
        )
        verbs = ["update"] if sub == "finalize" else ["get", "patch", "update"]
        subresources.append({"subresource": sub, "responseKind": kind, "verbs": verbs})
    if subresources:
        entry["subresources"] = subresources
    return entry


def aggregated(registry: Registry, legacy: bool, version: str) -> dict[str, Any]:
    """The APIGroupDiscoveryList of /api (`legacy`) or /apis, in apidiscovery.k8s.io `version`."""
    items = []
    for name, versions in registry.groups().items():
        if (name == "") != legacy:
            continue
        listed = []
        for served in versions:
            types = sorted(registry.in_version(name, served), key=lambda t: t.plural)
            resources = [_aggregated_resource(t, served) for t in types]
            listed.append({"version": served, "resources": resources, "freshness": "Current"})
        metadata: dict[str, Any] = {"creationTimestamp": None}
        if name:
            metadata = {"name": name, "creationTimestamp": None}
        items.append({"metadata": metadata, "versions": listed})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
