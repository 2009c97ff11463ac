"""Objects as the client asked for them: in the requested version, as a Table, or as metadata only.

Objects are stored in their storage version; with conversion strategy None (all the CRDs here) serving another
version only changes `apiVersion`. kubectl asks for Tables (`kubectl get`), the metadata client for
PartialObjectMetadata; everyone else gets the object, and lists of built-in kinds carry `apiVersion`/`kind`
only at the top, as the Go encoder writes them.
"""

from __future__ import annotations

from flux_azdo.sandbox.kube.calls import TABLE, Call, Reply, wants
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.resources import ResourceType
from flux_azdo.sandbox.kube.tables import partial_metadata, table


def to_version(resource: ResourceType, obj: JsonObj, version: str) -> JsonObj:
    api_version = resource.api_version(version)
    if obj.get("apiVersion") == api_version:
        return obj
    return {**obj, "apiVersion": api_version}


def render(call: Call, obj: JsonObj, code: int = 200) -> Reply:
    shown = to_version(call.resource, obj, call.version)
    if wants(call.accept, "Table"):
        body = table(
            call.resource,
            call.version,
            [shown],
            resource_version=str(shown.get("metadata", {}).get("resourceVersion", "")),
            include_object=call.query.get("includeObject", "Metadata"),
        )
        return Reply(code, body, TABLE)
    if wants(call.accept, "PartialObjectMetadata"):
        return Reply(code, partial_metadata(shown), "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
    return Reply(code, shown)


def render_list(call: Call, items: list[JsonObj], list_meta: JsonObj) -> Reply:
    resource = call.resource
    shown = [to_version(resource, item, call.version) for item in items]
    if wants(call.accept, "Table"):
        body = table(
            resource,
            call.version,
            shown,
            resource_version=list_meta["resourceVersion"],
            include_object=call.query.get("includeObject", "Metadata"),
            list_meta={k: v for k, v in list_meta.items() if k != "resourceVersion"},
        )
        return Reply(200, body, TABLE)
    if wants(call.accept, "PartialObjectMetadataList"):
        body = {
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "items": [partial_metadata(item) for item in shown],
        }
        return Reply(200, body, "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")
    if not resource.custom:
        shown = [{k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in shown]
    body = {"kind": resource.list_kind, "apiVersion": resource.api_version(call.version), "metadata": list_meta}
    body["items"] = shown
    return Reply(200, body)
