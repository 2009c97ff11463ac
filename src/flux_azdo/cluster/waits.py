"""Waiting for Flux to take over: Deployments rolled out, GitRepository and Kustomization Ready at our commit.

Every wait lists the objects once and then **watches** them from the list's resourceVersion, so it reacts to a
status change within milliseconds instead of Flux's 2-second polls, and misses nothing written between the list
and the watch. A `410 Gone` (the watch history moved on) means list again; a watch that the server or our read
timeout ends is resumed from the last resourceVersion seen. The whole run shares one deadline, a
`time.monotonic()` value: every watch's `timeoutSeconds` and read timeout are bounded by what is left of it.

On failure the waits raise `WaitFailed`, a `UserError` carrying the health of each object involved (conditions,
recent Events, and for Deployments the waiting reasons of their pods' containers); `render_health` turns that
into the text to print. Ready=False and `spec.suspend` fail at once, with the controller's own message: a bad
PAT stored in the cluster shows up in seconds, not after the timeout.

The Flux waits take the revision to wait for and, optionally, `accepts`: a callable that says whether another
revision includes it (a later commit pushed on top of ours by somebody else before source-controller fetched).
The answer takes git, which this layer does not import; the caller supplies it (`bootstrap_steps.health`).
"""

from __future__ import annotations

import json
import math
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import kubernetes.watch
import urllib3
from kubernetes.client.rest import ApiException

from flux_azdo.cluster.client import Cluster
from flux_azdo.cluster.health import (
    AcceptsRevision,
    Condition,
    ObjectHealth,
    Verdict,
    artifact_revision,
    conditions_of,
    deployment_verdict,
    event_lines,
    flux_verdict,
    kustomization_waits_on_source,
    last_attempted_revision,
    normalize_revision,
    render_health,
    selects,
    waiting_containers,
)
from flux_azdo.errors import UserError

__all__ = [
    "AcceptsRevision",
    "Condition",
    "FluxKind",
    "ObjectHealth",
    "WaitFailed",
    "health_report",
    "render_health",
    "wait_for_deployments",
    "wait_for_kustomization",
    "wait_for_source",
]

T = TypeVar("T")
Objects = dict[str, dict[str, Any]]

#: The annotation `flux reconcile` sets; the controllers copy its value to status.lastHandledReconcileAt.
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
#: A watch that ends this soon after it started, with nothing received, is retried only after a pause.
_QUICK_FAILURE = 1.0


class WaitFailed(UserError):
    """A wait ended without success: the message says what did not become ready and why; `health` has the rest."""

    def __init__(self, message: str, health: Sequence[ObjectHealth] = (), *, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.health: tuple[ObjectHealth, ...] = tuple(health)


@dataclass(frozen=True)
class FluxKind:
    """A toolkit kind the bootstrap waits for: where it lives, where its revision is, how to resume it."""

    kind: str
    api_version: str
    revision_of: Callable[[Mapping[str, Any]], str]
    #: The Flux CLI command that resumes a suspended object (followed by "<name> -n <namespace>").
    resume: str
    transient: Callable[[str, str], bool] = lambda reason, message: False


GIT_REPOSITORY = FluxKind("GitRepository", "source.toolkit.fluxcd.io/v1", artifact_revision, "flux resume source git")
KUSTOMIZATION = FluxKind(
    "Kustomization",
    "kustomize.toolkit.fluxcd.io/v1",
    last_attempted_revision,
    "flux resume kustomization",
    kustomization_waits_on_source,
)
FLUX_KINDS = {item.kind: item for item in (GIT_REPOSITORY, KUSTOMIZATION)}


# -- public waits ------------------------------------------------------------------------------------------------


def wait_for_source(
    cluster: Cluster,
    namespace: str,
    name: str,
    revision: str,
    deadline: float,
    *,
    requested_at: str | None = None,
    accepts: AcceptsRevision | None = None,
) -> ObjectHealth:
    """GitRepository Ready with `status.artifact.revision` == `revision` ("<branch>@sha1:<sha>"; the legacy
    "<branch>/<sha>" is accepted). `requested_at`: the `reconcile.fluxcd.io/requestedAt` value the caller set
    after changing what the object depends on (e.g. its Secret), so an older Ready=False is not taken as the
    answer. `accepts(other)`: whether a Ready revision other than `revision` will do as well (it includes it);
    the returned health's `revision` says where the object is."""
    return _wait_for_flux(cluster, GIT_REPOSITORY, namespace, name, revision, deadline, requested_at, accepts)


def wait_for_kustomization(
    cluster: Cluster,
    namespace: str,
    name: str,
    revision: str,
    deadline: float,
    *,
    requested_at: str | None = None,
    accepts: AcceptsRevision | None = None,
) -> ObjectHealth:
    """Kustomization Ready with `status.lastAttemptedRevision` == `revision`; same rules as `wait_for_source`."""
    return _wait_for_flux(cluster, KUSTOMIZATION, namespace, name, revision, deadline, requested_at, accepts)


def wait_for_deployments(cluster: Cluster, namespace: str, names: Sequence[str], deadline: float) -> list[ObjectHealth]:
    """Every named Deployment rolled out (observedGeneration current, all replicas updated and available,
    Available=True). A missing one counts as not ready. Returns the health of each, sorted by name."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    follower = _Follower(cluster, _collection("apps/v1", "deployments", namespace), "Deployment", namespace)

    def all_ready(objects: Objects) -> bool | None:
        return True if all(deployment_verdict(objects.get(name))[0] for name in wanted) else None

    if follower.follow(deadline, all_ready):
        return [_deployment_health(namespace, name, follower.objects[name], None) for name in wanted]
    view = _NamespaceView(cluster, namespace)
    health = [_deployment_health(namespace, name, follower.objects.get(name), view) for name in wanted]
    late = "; ".join(f"{item.name}: {item.detail}" for item in health if not item.ready)
    raise WaitFailed(
        f"timed out waiting for the Deployments in '{namespace}' to be ready ({late})",
        health,
        fix="see the health report; if the cluster is only slow, raise --timeout",
    )


def health_report(
    cluster: Cluster,
    namespace: str,
    deployments: Sequence[str],
    sources: Sequence[tuple[str, str]],
) -> list[ObjectHealth]:
    """The health of the named Deployments and Flux objects (`(kind, name)`, kind GitRepository or
    Kustomization), read once (no waiting). Events and pods are read only for objects that are not ready."""
    view = _NamespaceView(cluster, namespace)
    report: list[ObjectHealth] = []
    if deployments:
        listed = view.read(_collection("apps/v1", "deployments", namespace), f"list Deployments in {namespace}")
        by_name = {str(item["metadata"]["name"]): item for item in listed}
        for name in deployments:
            obj = by_name.get(name)
            ready, _ = deployment_verdict(obj)
            report.append(_deployment_health(namespace, name, obj, None if ready else view))
    for kind_name, name in sources:
        kind = FLUX_KINDS.get(kind_name)
        if kind is None:
            raise ValueError(f"no health rule for kind {kind_name!r} (known: {', '.join(FLUX_KINDS)})")
        obj = cluster.get(kind.api_version, kind.kind, name, namespace)
        verdict = _verdict(kind, obj, None, None)
        report.append(_flux_health(kind, namespace, name, obj, verdict, None if verdict.state == "ready" else view))
    return report


# -- Flux objects ------------------------------------------------------------------------------------------------


def _verdict(
    kind: FluxKind,
    obj: Mapping[str, Any] | None,
    revision: str | None,
    requested_at: str | None,
    accepts: AcceptsRevision | None = None,
) -> Verdict:
    return flux_verdict(
        obj,
        revision_of=kind.revision_of,
        expected_revision=revision,
        requested_at=requested_at,
        transient=kind.transient,
        accepts=accepts,
    )


def _wait_for_flux(
    cluster: Cluster,
    kind: FluxKind,
    namespace: str,
    name: str,
    revision: str,
    deadline: float,
    requested_at: str | None,
    accepts: AcceptsRevision | None,
) -> ObjectHealth:
    resource = cluster.resource(kind.api_version, kind.kind)
    follower = _Follower(cluster, str(resource.path(namespace=namespace)), kind.kind, namespace, name)

    def settled(objects: Objects) -> Verdict | None:
        verdict = _verdict(kind, objects.get(name), revision, requested_at, accepts)
        return None if verdict.state == "waiting" else verdict

    verdict = follower.follow(deadline, settled)
    obj = follower.objects.get(name)
    if verdict is not None and verdict.state == "ready":
        return _flux_health(kind, namespace, name, obj, verdict, None)
    label = f"{kind.kind} '{namespace}/{name}'"
    if verdict is None:
        verdict = _verdict(kind, obj, revision, requested_at, accepts)
        health = _flux_health(kind, namespace, name, obj, verdict, _NamespaceView(cluster, namespace))
        raise WaitFailed(
            f"{label} did not become ready before the timeout: {verdict.detail}",
            (health,),
            fix="see the health report; if the controllers are only slow, raise --timeout",
        )
    health = _flux_health(kind, namespace, name, obj, verdict, _NamespaceView(cluster, namespace))
    if verdict.state == "suspended":
        raise WaitFailed(
            f"{label} is suspended",
            (health,),
            fix=f"resume it ({kind.resume} {name} -n {namespace}) and run again",
        )
    raise WaitFailed(f"{label} is not ready: {verdict.detail}", (health,))


def _flux_health(
    kind: FluxKind,
    namespace: str,
    name: str,
    obj: Mapping[str, Any] | None,
    verdict: Verdict,
    view: _NamespaceView | None,
) -> ObjectHealth:
    events: tuple[str, ...] = ()
    if view is not None and obj is not None:
        events = event_lines(view.events_of(kind.kind, name))
    detail = "" if verdict.state == "ready" else verdict.detail
    if verdict.state == "failed":
        detail = f"not ready: {verdict.detail}"
    return ObjectHealth(
        kind=kind.kind,
        namespace=namespace,
        name=name,
        ready=verdict.state == "ready",
        conditions=conditions_of(obj),
        events=events,
        waiting=(),
        found=obj is not None,
        detail=detail,
        revision=normalize_revision(kind.revision_of(obj)) if obj is not None else "",
    )


# -- Deployments -------------------------------------------------------------------------------------------------


def _deployment_health(
    namespace: str, name: str, obj: Mapping[str, Any] | None, view: _NamespaceView | None
) -> ObjectHealth:
    """`view` None: the Deployment is ready, or the caller wants no extra reads."""
    ready, detail = deployment_verdict(obj)
    events: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    if view is not None and obj is not None:
        match_labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        pods = [pod for pod in view.pods() if selects(match_labels, pod)]
        pod_names = {str(pod["metadata"]["name"]) for pod in pods}
        waiting = waiting_containers(pods)
        # A Deployment's own Events say little (ScalingReplicaSet); its ReplicaSets' (FailedCreate) and its
        # pods' (Failed to pull image ...) say why it is not ready.
        related = [e for e in view.events() if _about_deployment(e, name, pod_names)]
        events = event_lines(related, label=lambda e: _involved_label(e, name))
    return ObjectHealth(
        kind="Deployment",
        namespace=namespace,
        name=name,
        ready=ready,
        conditions=conditions_of(obj),
        events=events,
        waiting=waiting,
        found=obj is not None,
        detail="" if ready else detail,
    )


def _about_deployment(event: Mapping[str, Any], name: str, pods: set[str]) -> bool:
    involved = event.get("involvedObject") or {}
    kind, other = involved.get("kind"), str(involved.get("name") or "")
    if kind == "Deployment":
        return other == name
    if kind == "ReplicaSet":
        return other.startswith(f"{name}-")
    return kind == "Pod" and other in pods


def _involved_label(event: Mapping[str, Any], deployment: str) -> str:
    involved = event.get("involvedObject") or {}
    if involved.get("kind") == "Deployment" and involved.get("name") == deployment:
        return ""
    return f"{str(involved.get('kind') or '').lower()} {involved.get('name')}"


# -- reading ------------------------------------------------------------------------------------------------------


def _collection(api_version: str, plural: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{quote(namespace, safe='')}/{plural}"


def _get_json(cluster: Cluster, path: str, doing: str, **query: Any) -> dict[str, Any]:
    with cluster.errors(doing):
        response = cluster.dynamic.request(
            "get", path, serialize=False, _request_timeout=cluster.access.timeout, **query
        )
        body: dict[str, Any] = json.loads(response.data)
    return body


class _NamespaceView:
    """Events and pods of one namespace, read at most once per report."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._events: list[dict[str, Any]] | None = None
        self._pods: list[dict[str, Any]] | None = None

    def read(self, path: str, doing: str, **query: Any) -> list[dict[str, Any]]:
        items = _get_json(self._cluster, path, doing, **query).get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def events(self) -> list[dict[str, Any]]:
        if self._events is None:
            path = _collection("v1", "events", self._namespace)
            self._events = self.read(path, f"list Events in {self._namespace}")
        return self._events

    def events_of(self, kind: str, name: str) -> list[dict[str, Any]]:
        if self._events is not None:
            return [e for e in self._events if (e.get("involvedObject") or {}).get("name") == name]
        path = _collection("v1", "events", self._namespace)
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        return self.read(path, f"list Events of {kind} {self._namespace}/{name}", field_selector=selector)

    def pods(self) -> list[dict[str, Any]]:
        if self._pods is None:
            self._pods = self.read(_collection("v1", "pods", self._namespace), f"list Pods in {self._namespace}")
        return self._pods


class _Follower:
    """The objects of one collection (or one named object in it), kept current by list + watch."""

    def __init__(self, cluster: Cluster, path: str, kind: str, namespace: str, name: str | None = None) -> None:
        self._cluster = cluster
        self._path = path
        self._selector = f"metadata.name={name}" if name else None
        self._doing = f"watch {kind} {namespace}/{name}" if name else f"watch {kind}s in {namespace}"
        self._watcher = kubernetes.watch.Watch()
        self._version: str | None = None
        #: name -> the latest object seen.
        self.objects: Objects = {}

    def follow(self, deadline: float, decide: Callable[[Objects], T | None]) -> T | None:
        """Call `decide` on the current objects after the list and after every change; return its first
        non-None answer, or None once the deadline has passed."""
        while True:
            if self._version is None:
                self._list()
                answer = decide(self.objects)
                if answer is not None:
                    return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            answer = self._watch(remaining, deadline, decide)
            if answer is not None:
                return answer

    def _list(self) -> None:
        body = _get_json(
            self._cluster, self._path, self._doing.replace("watch", "list", 1), field_selector=self._selector
        )
        self.objects = {
            str(item["metadata"]["name"]): item for item in body.get("items") or [] if isinstance(item, dict)
        }
        self._version = str((body.get("metadata") or {}).get("resourceVersion") or "") or None
        if self._version is None:  # a server that gives no resourceVersion: watch from "now", after the list
            self._version = "0"

    def _request(self, **kwargs: Any) -> Any:
        return self._cluster.dynamic.request("get", self._path, serialize=False, **kwargs)

    def _watch(self, remaining: float, deadline: float, decide: Callable[[Objects], T | None]) -> T | None:
        started = time.monotonic()
        received = False
        stream = self._watcher.stream(
            self._request,
            resource_version=self._version,
            field_selector=self._selector,
            allow_watch_bookmarks=True,
            # The server ends the watch by then; the read timeout ends it when idle at the deadline exactly.
            timeout_seconds=max(1, math.ceil(remaining)),
            _request_timeout=(self._cluster.access.timeout, max(remaining, 0.001)),
        )
        try:
            for event in stream:
                received = True
                answer = self._apply(event, decide)
                if answer is not None:
                    return answer
                if time.monotonic() >= deadline:
                    return None
        except ApiException as error:
            if error.status == 410:  # the history moved past our resourceVersion: list again
                self._version = None
                return None
            raise self._cluster.translate(error, self._doing) from None
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError):
            # Idle until the read timeout (the deadline), or the connection dropped: resume, after a pause if the
            # stream died at once (a proxy that cuts watches must not turn this into a busy loop).
            if not received and time.monotonic() - started < _QUICK_FAILURE:
                time.sleep(max(0.0, min(_QUICK_FAILURE, deadline - time.monotonic())))
        except (urllib3.exceptions.HTTPError, ssl.SSLError, ConnectionError) as error:
            raise self._cluster.translate(error, self._doing) from None
        finally:
            stream.close()
            self._watcher.stop()
        return None

    def _apply(self, event: Mapping[str, Any], decide: Callable[[Objects], T | None]) -> T | None:
        obj = event.get("raw_object")
        if not isinstance(obj, dict):
            return None
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self._version = str(version)
        if event.get("type") == "BOOKMARK":
            return None
        name = str((obj.get("metadata") or {}).get("name") or "")
        if event.get("type") == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = obj
        return decide(self.objects)
