"""One resource request and its answer (`Call`, `Reply`), and the media types and keys the verbs share."""

from __future__ import annotations

from dataclasses import dataclass, field

from flux_azdo.sandbox.kube import access, managed
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.resources import ResourceType

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
NAMESPACE_KEY = ("", "namespaces")
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")


@dataclass
class Call:
    """One request against a resource, after routing and authorization."""

    user: access.User
    resource: ResourceType
    version: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: Texts for `Warning: 299 - "..."` response headers (unknown fields under fieldValidation=Warn).
    warnings: list[str] = field(default_factory=list)

    @property
    def accept(self) -> str:
        return self.headers.get("accept", "")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun", "") == "All"

    @property
    def scope(self) -> str:
        if self.subresource == "status":
            return managed.SCOPE_STATUS
        return managed.SCOPE_MAIN if self.resource.has_status() else managed.SCOPE_ALL

    def manager(self) -> str:
        """The field manager of a non-apply write: `fieldManager`, else the User-Agent's product, as real."""
        given = self.query.get("fieldManager")
        if given:
            return given
        agent = self.headers.get("user-agent", "")
        return agent.split("/")[0][:128] or "unknown"

    def on_main_endpoint(self) -> Call:
        """The same call addressed to the object itself (a /scale write updates the object)."""
        return Call(self.user, self.resource, self.version, self.namespace, self.name, "", self.query, self.headers)


@dataclass
class Reply:
    code: int
    body: JsonObj
    content_type: str = "application/json"
    #: Bytes to send instead of `body` as JSON (the protobuf OpenAPI v2 document).
    raw: bytes | None = None


def wants(accept: str, kind: str) -> bool:
    """Whether the Accept header asks for a meta.k8s.io rendering (`as=Table`, `as=PartialObjectMetadata`)."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == kind and params.get("g") == "meta.k8s.io":
            return True
    return False
