"""What "ready" means for the objects a bootstrap waits for, and the health report printed when they are not.

Pure functions over plain API dicts (no I/O of their own), so the rules can be read and tested apart from the
watches in `waits.py`. The rules are Flux's (`objectReconciled` in `pkg/bootstrap`, kstatus for Deployments) with three
corrections: a `Ready=False` condition written for an older generation (or before a reconcile we asked for) is
stale and not a failure; a Kustomization that only waits for its source to produce an artifact is not failed
either -- kustomize-controller retries it by itself as soon as the source changes; and a revision later than the
expected one counts when the caller says it includes the expected commit (`accepts`): Flux waits for exactly its
pushed head, so a push by anybody else before source-controller fetches makes it wait until the timeout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

JSON = Mapping[str, Any]
#: Whether a revision ("<branch>@sha1:<sha>", normalised) other than the expected one will do: the caller answers
#: whether it includes the expected commit. It may do I/O (git); the cluster layer only calls it.
AcceptsRevision = Callable[[str], bool]

#: How many Events of one object the report shows (the newest ones).
MAX_EVENTS = 5


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class ObjectHealth:
    """One object as the report shows it. `found` and `detail` extend the contract: a missing object is
    reported as such, and `detail` says in a few words why the object is not ready (empty when it is)."""

    kind: str
    namespace: str
    name: str
    ready: bool
    conditions: tuple[Condition, ...]
    #: "<type> <reason>: <message>", newest last, at most MAX_EVENTS.
    events: tuple[str, ...]
    #: Deployments: "<pod>/<container>: <reason>: <message> (image <image>)" for every waiting container.
    waiting: tuple[str, ...]
    found: bool = True
    detail: str = ""
    #: Flux objects: the revision they are at (GitRepository: its artifact, Kustomization: the last one attempted),
    #: normalised (`main@sha1:<sha>`); empty when there is none, and for Deployments.
    revision: str = ""


# -- conditions and revisions ------------------------------------------------------------------------------------


def conditions_of(obj: JSON | None) -> tuple[Condition, ...]:
    items = ((obj or {}).get("status") or {}).get("conditions") or []
    return tuple(
        Condition(
            type=str(item.get("type") or ""),
            status=str(item.get("status") or ""),
            reason=str(item.get("reason") or ""),
            message=" ".join(str(item.get("message") or "").split()),
        )
        for item in items
        if isinstance(item, Mapping)
    )


def find_condition(obj: JSON | None, kind: str) -> JSON | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(item, Mapping) and item.get("type") == kind:
            return item
    return None


_HEX = re.compile(r"[0-9a-f]+")


def _digest_algorithm(value: str) -> str | None:
    if _HEX.fullmatch(value):
        return {40: "sha1", 64: "sha256"}.get(len(value))
    return None


def normalize_revision(revision: str) -> str:
    """Flux's `TransformLegacyRevision`: `main/<sha>` -> `main@sha1:<sha>`, a bare `<sha>` -> `sha1:<sha>`.

    Controllers before Flux 2.0 wrote the legacy form; comparing normalised values accepts both.
    """
    if not revision or ":" in revision:
        return revision
    head, slash, tail = revision.rpartition("/")
    if slash:
        algorithm = _digest_algorithm(tail)
        if algorithm is not None:
            return f"{head}@{algorithm}:{tail}" if head != "HEAD" else f"{algorithm}:{tail}"
    algorithm = _digest_algorithm(revision)
    return f"{algorithm}:{revision}" if algorithm is not None else revision


def same_revision(observed: str, expected: str) -> bool:
    return normalize_revision(observed) == normalize_revision(expected)


# -- Flux objects ------------------------------------------------------------------------------------------------

VerdictState = Literal["ready", "waiting", "failed", "suspended"]


@dataclass(frozen=True)
class Verdict:
    """Where a wait stands: done, keep waiting (`detail` says for what), or stop at once (`detail` says why)."""

    state: VerdictState
    detail: str


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def flux_verdict(
    obj: JSON | None,
    *,
    revision_of: Callable[[JSON], str],
    expected_revision: str | None,
    requested_at: str | None = None,
    transient: Callable[[str, str], bool] = lambda reason, message: False,
    accepts: AcceptsRevision | None = None,
) -> Verdict:
    """Flux's readiness rule for a toolkit object, in Flux's order (suspend, generation, Ready, revision).

    `expected_revision` None accepts any revision (the health report). `requested_at`: the value of the
    `reconcile.fluxcd.io/requestedAt` annotation the caller set; until the controller reports it handled that
    request, its Ready condition (True or False) is left over from before the caller's change (a new Secret
    with an unchanged revision would otherwise pass as "ready" before the controller ever tried it).
    `transient(reason, message)` marks Ready=False states that the controller leaves by itself. `accepts(revision)`
    is asked about a Ready revision that differs from `expected_revision` (normalised): True makes it ready too
    (a later commit of the branch that has ours in its history), False keeps waiting.
    """
    if obj is None:
        return Verdict("waiting", "not found")
    spec = obj.get("spec") or {}
    if spec.get("suspend") is True:
        return Verdict("suspended", "suspended")
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    generation = _int_or_none(metadata.get("generation"))
    observed = _int_or_none(status.get("observedGeneration"))
    behind = observed is not None and generation is not None and observed != generation
    ready = find_condition(obj, "Ready")
    if ready is None:
        return Verdict("waiting", "no Ready condition yet (the controller has not reconciled it)")
    value = str(ready.get("status") or "")
    reason = str(ready.get("reason") or "")
    message = " ".join(str(ready.get("message") or "").split())
    if requested_at is not None and status.get("lastHandledReconcileAt") != requested_at:
        return Verdict("waiting", f"Ready={value or 'Unknown'} from before the reconcile request ({reason}): {message}")
    if value == "False":
        condition_generation = _int_or_none(ready.get("observedGeneration"))
        if condition_generation is not None and generation is not None:
            current = condition_generation >= generation
        else:
            current = not behind
        if not current:
            return Verdict("waiting", f"Ready=False for an older generation ({reason}): {message}")
        if transient(reason, message):
            return Verdict("waiting", f"Ready=False ({reason}): {message}")
        return Verdict("failed", message or reason or "Ready=False")
    if behind:
        return Verdict("waiting", f"the controller has not reconciled generation {generation} yet (at {observed})")
    if value != "True":
        return Verdict("waiting", f"Ready={value or 'Unknown'} ({reason}): {message}".rstrip(": "))
    if expected_revision is None:
        return Verdict("ready", "")
    revision = revision_of(obj)
    if same_revision(revision, expected_revision):
        return Verdict("ready", "")
    if revision and accepts is not None:
        if accepts(normalize_revision(revision)):
            return Verdict("ready", "")
        wanted = f"'{expected_revision}' or a later commit that includes it"
    else:
        wanted = f"'{expected_revision}'"
    shown = f"'{revision}'" if revision else "no revision"
    return Verdict("waiting", f"ready at {shown}, waiting for {wanted}")


def artifact_revision(obj: JSON) -> str:
    """Where source-controller reports what it fetched (GitRepository, OCIRepository, Bucket, HelmChart)."""
    return str(((obj.get("status") or {}).get("artifact") or {}).get("revision") or "")


def last_attempted_revision(obj: JSON) -> str:
    """What kustomize-controller last tried to apply (its Ready tells how that went)."""
    return str((obj.get("status") or {}).get("lastAttemptedRevision") or "")


_SOURCE_NOT_FOUND = re.compile(r'^[a-z]+\.source\.toolkit\.fluxcd\.io "[^"]*" not found$')


def kustomization_waits_on_source(reason: str, message: str) -> bool:
    """Ready=False states in which kustomize-controller only waits for its source or a dependency.

    Right after bootstrap applies a GitRepository and its Kustomization together, kustomize-controller can
    look before source-controller has stored an artifact ("Source artifact not found, retrying in 30s"); it
    reconciles again as soon as the source's artifact changes. Failing the wait on that would be a false alarm.
    """
    if reason == "DependencyNotReady":
        return True
    if reason != "ArtifactFailed":
        return False
    return message.startswith("Source ") or bool(_SOURCE_NOT_FOUND.match(message))


# -- Deployments -------------------------------------------------------------------------------------------------


def deployment_verdict(obj: JSON | None) -> tuple[bool, str]:
    """Rollout complete, as kstatus and `kubectl rollout status` see it; the reason when not."""
    if obj is None:
        return False, "deployment not found"
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = _int_or_none(metadata.get("generation")) or 0
    observed = _int_or_none(status.get("observedGeneration"))
    if observed is None or observed < generation:
        return False, "deployment not ready: the rollout has not started yet"
    wanted = _int_or_none(spec.get("replicas"))
    replicas = 1 if wanted is None else wanted
    updated = _int_or_none(status.get("updatedReplicas")) or 0
    total = _int_or_none(status.get("replicas")) or 0
    available = _int_or_none(status.get("availableReplicas")) or 0
    if updated < replicas:
        return False, f"deployment not ready: {updated} of {replicas} replicas updated"
    if total > updated:
        return False, f"deployment not ready: {total - updated} old replicas pending termination"
    if available < replicas:
        return False, f"deployment not ready: {available} of {replicas} replicas available"
    condition = find_condition(obj, "Available")
    if replicas > 0 and (condition is None or condition.get("status") != "True"):
        return False, "deployment not ready: not Available"
    return True, "deployment ready"


def selects(match_labels: Mapping[str, Any], obj: JSON) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(match_labels) and all(labels.get(key) == str(value) for key, value in match_labels.items())


def waiting_containers(pods: Iterable[JSON]) -> tuple[str, ...]:
    """Why each container of the pods is not running yet, as the kubelet reports it."""
    lines: list[str] = []
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name") or "")):
        name = str((pod.get("metadata") or {}).get("name") or "")
        status = pod.get("status") or {}
        statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        for container in statuses:
            waiting = (container.get("state") or {}).get("waiting")
            if not isinstance(waiting, Mapping):
                continue
            reason = str(waiting.get("reason") or "Waiting")
            message = " ".join(str(waiting.get("message") or "").split())
            image = str(container.get("image") or "")
            line = f"{name}/{container.get('name')}: {reason}"
            if message:
                line += f": {message}"
            if image:
                line += f" (image {image})"
            lines.append(line)
    return tuple(lines)


# -- Events ------------------------------------------------------------------------------------------------------

_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def event_time(event: JSON) -> datetime:
    """When an Event last happened (core/v1 Events fill some of these fields, events.k8s.io ones others)."""
    series = event.get("series") or {}
    metadata = event.get("metadata") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        metadata.get("creationTimestamp"),
    ):
        moment = _moment(value)
        if moment is not None:
            return moment
    return _OLDEST


def _event_order(event: JSON) -> tuple[datetime, int]:
    version = str((event.get("metadata") or {}).get("resourceVersion") or "")
    return event_time(event), int(version) if version.isdigit() else 0


def event_lines(events: Iterable[JSON], *, label: Callable[[JSON], str] | None = None) -> tuple[str, ...]:
    """The newest MAX_EVENTS Events, oldest first, one line each ("Warning Failed (x3): ...")."""
    newest = sorted(events, key=_event_order)[-MAX_EVENTS:]
    lines = []
    for event in newest:
        count = _int_or_none(event.get("count")) or _int_or_none((event.get("series") or {}).get("count")) or 1
        head = f"{event.get('type') or 'Normal'} {event.get('reason') or ''}".rstrip()
        where = label(event) if label is not None else ""
        if where:
            head += f" ({where})"
        if count > 1:
            head += f" (x{count})"
        message = " ".join(str(event.get("message") or event.get("note") or "").split())
        lines.append(f"{head}: {message}" if message else head)
    return tuple(lines)


# -- the report --------------------------------------------------------------------------------------------------


def render_health(health: Sequence[ObjectHealth]) -> str:
    """The report printed on failure: every object that is not ready, with what the cluster says about it.

    Objects that are ready are left out; an empty string means there is nothing to report.
    """
    blocks: list[str] = []
    for item in health:
        if item.ready:
            continue
        where = f"{item.namespace}/{item.name}" if item.namespace else item.name
        head = f"{item.kind} {where}: {item.detail or ('not found' if not item.found else 'not ready')}"
        lines = [head]
        if item.conditions:
            lines.append("  conditions:")
            for condition in item.conditions:
                text = f"    {condition.type}={condition.status}"
                if condition.reason:
                    text += f" {condition.reason}"
                if condition.message:
                    text += f": {condition.message}"
                lines.append(text)
        if item.events:
            lines.append("  events (newest last):")
            lines += [f"    {event}" for event in item.events]
        if item.waiting:
            lines.append("  waiting containers:")
            lines += [f"    {waiting}" for waiting in item.waiting]
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + ("\n" if blocks else "")
