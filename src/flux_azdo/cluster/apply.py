"""Server-side apply with Flux's semantics: CRDs and Namespaces first, only changed objects written.

This is what `flux bootstrap` does through fluxcd/pkg/ssa (reference flux-bootstrap.md §6.1):

1. Stage 1 applies the cluster definitions (CustomResourceDefinitions and Namespaces) and waits until every CRD is
   `Established`, because the custom resources of stage 2 cannot be stored before their type is served. The wait
   is a watch, not a poll: it returns as soon as the apiserver reports the condition.
2. Stage 2 applies everything else, in the order given (gotk-components.yaml's order).

Each object is first applied as a dry run and the result compared with the live object; an object that would not
change is not written at all. That is what makes a re-run with nothing new cost zero write requests, and gives
`plan` its create/update/unchanged answer without touching the cluster (`dry_run=True`).

The field manager is `flux` with forced ownership, so a later `flux bootstrap` or kustomize-controller takes over
the same fields without conflicts.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import kubernetes.watch
import yaml

from flux_azdo.cluster.client import Cluster, NotFound, UnknownKind
from flux_azdo.errors import UserError

ApplyAction = Literal["created", "configured", "unchanged"]

CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_KIND = "CustomResourceDefinition"
#: Written by the server or by controllers, never by us: a difference here is not a change to apply.
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")
#: Discovery lag after a CRD is Established: up to 20 x 0.1 s, only for types that stage 1 just changed.
_DISCOVERY_ATTEMPTS = 20
_DISCOVERY_PAUSE = 0.1


@dataclass(frozen=True)
class ObjectChange:
    """What apply did (or, for a dry run, would do) to one object."""

    api_version: str
    kind: str
    #: None for cluster-scoped objects.
    namespace: str | None
    name: str
    action: ApplyAction

    @property
    def ref(self) -> str:
        """`Kind/namespace/name` (`Kind/name` when cluster-scoped), as Flux prints it."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


class _Loader(yaml.SafeLoader):
    """YAML as Kubernetes reads it for objects: timestamps stay strings (JSON has no dates)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_objects(text: str) -> list[dict[str, Any]]:
    """Kubernetes objects from multi-document YAML; empty documents are skipped, `kind: List` is expanded."""
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as error:
        raise UserError(f"the manifests are not valid YAML: {' '.join(str(error).split())}") from None
    objects: list[dict[str, Any]] = []
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise UserError(f"YAML document {number} is not a Kubernetes object (a mapping with apiVersion and kind)")
        if str(document.get("kind", "")).endswith("List") and isinstance(document.get("items"), list):
            objects.extend(item for item in document["items"] if isinstance(item, dict))
        else:
            objects.append(document)
    return objects


def is_cluster_definition(obj: Mapping[str, Any]) -> bool:
    """A CRD or a Namespace: stage 1, because other objects depend on them existing (Flux's IsClusterDefinition)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = obj.get("kind")
    return (kind == CRD_KIND and group == "apiextensions.k8s.io") or (kind == "Namespace" and group == "")


def apply_objects(
    cluster: Cluster,
    objects: Sequence[Mapping[str, Any]],
    *,
    field_manager: str = "flux",
    dry_run: bool = False,
    establish_timeout: float = 60.0,
) -> list[ObjectChange]:
    """Apply `objects` in two stages; the changes come back in the order the objects were given.

    With `dry_run` nothing is stored: every request is a `dryRun=All` apply or a read. Objects that cannot be
    dry-run because stage 1 would first create what they need (their CRD or their namespace) are reported as
    "created" without a request.
    """
    bodies = [_checked(obj, index) for index, obj in enumerate(objects)]
    stage1 = [i for i, body in enumerate(bodies) if is_cluster_definition(body)]
    stage2 = [i for i, body in enumerate(bodies) if not is_cluster_definition(body)]
    results: dict[int, ObjectChange] = {}
    pending: list[str] = []
    for index in stage1:
        change, applied = _apply_one(cluster, bodies[index], field_manager, dry_run)
        results[index] = change
        if bodies[index]["kind"] == CRD_KIND and not dry_run and not _established(applied):
            pending.append(change.name)
    if pending:
        _wait_established(cluster, pending, establish_timeout)
    new_namespaces = {c.name for c in results.values() if c.kind == "Namespace" and c.action == "created"}
    changed_kinds = {
        _served_kind(bodies[i]) for i in stage1 if results[i].kind == CRD_KIND and results[i].action != "unchanged"
    }
    for index in stage2:
        body = bodies[index]
        if dry_run and (
            body["metadata"].get("namespace") in new_namespaces or not _servable(cluster, body, changed_kinds)
        ):
            # Its namespace or its type exists only after stage 1 really runs: the server cannot dry-run it yet,
            # and it cannot exist yet either.
            results[index] = _change(body, body["metadata"].get("namespace"), "created")
            continue
        results[index], _ = _apply_one(cluster, body, field_manager, dry_run, new_type=_kind_key(body) in changed_kinds)
    return [results[i] for i in range(len(bodies))]


# ---------------------------------------------------------------------------------------------- one object


def _checked(obj: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A deep, JSON-clean copy of `obj` after checking it names itself (apiVersion, kind, metadata.name)."""
    if not isinstance(obj, Mapping):
        raise UserError(f"object {index + 1} is not a mapping")
    body: dict[str, Any] = json.loads(json.dumps(obj, default=str))
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not body.get("apiVersion") or not body.get("kind") or not name:
        what = f"{body.get('kind') or 'object'} {name or ''}".strip()
        raise UserError(f"{what} (object {index + 1}) needs apiVersion, kind and metadata.name")
    return body


def _apply_one(
    cluster: Cluster, body: dict[str, Any], field_manager: str, dry_run: bool, *, new_type: bool = False
) -> tuple[ObjectChange, dict[str, Any]]:
    """Dry-run apply, compare with the live object, and apply for real only when something would change."""
    api_version, kind, name = body["apiVersion"], body["kind"], body["metadata"]["name"]
    resource = _resource(cluster, api_version, kind, new_type=new_type)
    namespace: str | None = body["metadata"].get("namespace") or None
    if resource.namespaced:
        if not namespace:
            raise UserError(
                f"{kind} {name} ({api_version}) has no metadata.namespace, and {kind} is namespaced",
                fix="set metadata.namespace in the manifest (or a namespace: in kustomization.yaml)",
            )
    else:
        namespace = None
        body["metadata"].pop("namespace", None)
    where = f"{namespace}/{name}" if namespace else name
    live = cluster.get(api_version, kind, name, namespace)
    predicted = _server_side_apply(cluster, resource, body, namespace, field_manager, dry="All", doing=where)
    if live is not None and _version(predicted) != _version(live):
        # Someone (a controller) wrote the object between our read and the dry run: compare with that version.
        live = cluster.get(api_version, kind, name, namespace)
    if live is not None and _comparable(predicted) == _comparable(live):
        return _change(body, namespace, "unchanged"), live
    action: ApplyAction = "created" if live is None else "configured"
    if dry_run:
        return _change(body, namespace, action), predicted
    applied = _server_side_apply(cluster, resource, body, namespace, field_manager, dry=None, doing=where)
    return _change(body, namespace, action), applied


def _server_side_apply(
    cluster: Cluster,
    resource: Any,
    body: dict[str, Any],
    namespace: str | None,
    field_manager: str,
    *,
    dry: str | None,
    doing: str,
) -> dict[str, Any]:
    verb = "dry-run apply" if dry else "apply"
    try:
        with cluster.errors(f"{verb} {body['kind']} {doing}"):
            response = cluster.dynamic.server_side_apply(
                resource,
                body=body,
                name=body["metadata"]["name"],
                namespace=namespace,
                field_manager=field_manager,
                force_conflicts=True,
                dry_run=dry,
                serialize=False,
                _request_timeout=cluster.access.timeout,
            )
    except NotFound as error:
        # An apply creates missing objects, so a 404 means a missing namespace (or a type that just vanished).
        raise UserError(
            error.message,
            fix=f"create the namespace {namespace} first" if namespace else "check that its CRD is installed",
        ) from None
    result: dict[str, Any] = json.loads(response.data)
    return result


def _resource(cluster: Cluster, api_version: str, kind: str, *, new_type: bool) -> Any:
    """The dynamic resource; for a type whose CRD was just applied, allow discovery a moment to catch up.

    A real apiserver publishes a new type in discovery shortly after (not always before) the CRD is Established;
    kubectl users know this as "no matches for kind" right after applying CRDs. Only that case is retried, briefly.
    """
    attempts = _DISCOVERY_ATTEMPTS if new_type else 1
    for attempt in range(attempts):
        try:
            return cluster.resource(api_version, kind)
        except UnknownKind:
            if attempt == attempts - 1:
                raise
            time.sleep(_DISCOVERY_PAUSE)
    raise AssertionError("unreachable")


def _servable(cluster: Cluster, body: Mapping[str, Any], changed_kinds: set[tuple[str, str]]) -> bool:
    """Whether the server serves the object's type now (asked only for types a changed CRD of this set defines)."""
    if _kind_key(body) not in changed_kinds:
        return True
    try:
        cluster.resource(str(body["apiVersion"]), str(body["kind"]))
    except UnknownKind:
        return False
    return True


def _comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without what the server or controllers maintain (status, managedFields, versions, ...)."""
    result = copy.deepcopy(dict(obj))
    result.pop("status", None)
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        for key in _VOLATILE_METADATA:
            metadata.pop(key, None)
    return result


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _change(body: Mapping[str, Any], namespace: str | None, action: ApplyAction) -> ObjectChange:
    return ObjectChange(body["apiVersion"], body["kind"], namespace, body["metadata"]["name"], action)


# ---------------------------------------------------------------------------------------------- CRDs


def _served_kind(crd: Mapping[str, Any]) -> tuple[str, str]:
    spec = crd.get("spec") or {}
    return str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", ""))


def _kind_key(body: Mapping[str, Any]) -> tuple[str, str]:
    return str(body.get("apiVersion", "")).rpartition("/")[0], str(body.get("kind", ""))


def _conditions(obj: Mapping[str, Any] | None) -> Iterable[Mapping[str, Any]]:
    status = (obj or {}).get("status") or {}
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    return [c for c in conditions or [] if isinstance(c, Mapping)]


def _established(crd: Mapping[str, Any] | None) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in _conditions(crd))


def _wait_established(cluster: Cluster, names: Sequence[str], timeout: float) -> None:
    """Watch each CRD until it is Established (what `kubectl wait --for=condition=Established` does)."""
    resource = cluster.resource(CRD_API_VERSION, CRD_KIND)
    deadline = time.monotonic() + timeout
    for name in names:
        last: Mapping[str, Any] | None = None
        while not _established(last):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UserError(_not_established(name, last, timeout))
            watcher = kubernetes.watch.Watch()
            events = watcher.stream(
                resource.get,
                field_selector=f"metadata.name={name}",
                timeout_seconds=max(1, math.ceil(remaining)),
                serialize=False,
                _request_timeout=remaining + cluster.access.timeout,
            )
            with cluster.errors(f"watch CustomResourceDefinition {name}"), contextlib.closing(events):
                for event in events:
                    obj = event.get("raw_object") or event.get("object")
                    if event.get("type") == "DELETED":
                        raise UserError(f"CustomResourceDefinition {name} was deleted while waiting for it")
                    if isinstance(obj, Mapping):
                        last = obj
                    if _established(last):
                        watcher.stop()
                        break


def _not_established(name: str, crd: Mapping[str, Any] | None, timeout: float) -> str:
    problems = [
        f"{c.get('type')}={c.get('status')}" + (f" ({c.get('message')})" if c.get("message") else "")
        for c in _conditions(crd)
        if c.get("status") != "True"
    ]
    detail = "; ".join(problems) or "no conditions yet"
    return f"CustomResourceDefinition {name} did not become Established within {timeout:g}s: {detail}"
