"""kustomize-controller's Kustomization reconciler, up to (not including) applying manifests.

As in `kustomization_controller.go`: finalizer first, `spec.suspend` honoured, then the source: a missing
GitRepository gives Ready=False/ArtifactFailed with the API's NotFound text; a source without artifact gives
`Source artifact not found, retrying in 30s`; `dependsOn` entries must be Ready at the same revision
(DependencyNotReady). The artifact is then read back from source-controller's storage, its digest checked and
unpacked, and `spec.path` must exist in it (`kustomization path not found: stat <dir>: no such file or
directory`). Success sets lastAttemptedRevision, lastAppliedRevision, Ready=True/ReconciliationSucceeded
`Applied revision: <revision>` and observedGeneration, with the controller's Events. Applying the manifests
is out of scope: the bootstrap under test applies them itself.

A GitRepository whose artifact revision changes re-triggers the Kustomizations that use it, as the real
controller's source watch does.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
import time
from pathlib import Path

from flux_azdo.sandbox.flux.cluster import JSON, KubeError, resource_path
from flux_azdo.sandbox.flux.components import KUSTOMIZE_CONTROLLER, ControllerRuntime
from flux_azdo.sandbox.flux.conditions import PROGRESSING, READY, RECONCILING, Conditions
from flux_azdo.sandbox.flux.durations import duration_seconds, format_duration
from flux_azdo.sandbox.flux.errors import ReconcileError
from flux_azdo.sandbox.flux.events import NORMAL, WARNING
from flux_azdo.sandbox.flux.gitrepository import GROUP as SOURCE_GROUP
from flux_azdo.sandbox.flux.gitrepository import PLURAL as SOURCE_PLURAL
from flux_azdo.sandbox.flux.informer import Key
from flux_azdo.sandbox.flux.reconciling import DEPENDENCY_REQUEUE, ControllerContext, ToolkitReconciler, requested_at

GROUP = "kustomize.toolkit.fluxcd.io"
KIND = "Kustomization"
PLURAL = "kustomizations"

ARTIFACT_FAILED = "ArtifactFailed"
DEPENDENCY_NOT_READY = "DependencyNotReady"
RECONCILIATION_SUCCEEDED = "ReconciliationSucceeded"

#: kustomize-controller's default when `spec.interval` is unset or invalid.
DEFAULT_INTERVAL = 600.0


class _Requeue(Exception):
    """Stop this reconcile with Ready=False and look again after `delay` seconds."""

    def __init__(self, reason: str, message: str, delay: float, *, event: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.delay = delay
        self.event = event


class KustomizationController(ToolkitReconciler):
    """Reconciles Kustomizations while a kustomize-controller Deployment is Available."""

    group = GROUP
    kind = KIND
    plural = PLURAL
    component = KUSTOMIZE_CONTROLLER

    def __init__(self, context: ControllerContext, work_dir: Path) -> None:
        super().__init__(context)
        self._work_dir = work_dir
        self._source_revisions: dict[Key, str | None] = {}

    def on_source_event(self, kind: str, source: JSON) -> None:
        """A GitRepository's artifact revision changed: reconcile the Kustomizations that read it."""
        metadata = source.get("metadata") or {}
        source_key = (str(metadata.get("namespace")), str(metadata.get("name")))
        revision = None if kind == "DELETED" else ((source.get("status") or {}).get("artifact") or {}).get("revision")
        with self._lock:
            if source_key in self._source_revisions and self._source_revisions[source_key] == revision:
                return
            self._source_revisions[source_key] = revision
        if self.informer is None:
            return
        for obj in self.informer.items():
            ref = (obj.get("spec") or {}).get("sourceRef") or {}
            own = obj.get("metadata") or {}
            namespace = str(ref.get("namespace") or own.get("namespace"))
            if ref.get("kind", "GitRepository") == "GitRepository" and (namespace, ref.get("name")) == source_key:
                self.queue.add((str(own.get("namespace")), str(own.get("name"))))

    # -- reconcile --------------------------------------------------------------------------------------------

    def release(self, namespace: str, name: str) -> None:
        """Nothing to drop: kustomize-controller reads source-controller's artifacts and keeps none of its own."""

    def reconcile_object(self, key: Key, path: str, obj: JSON, runtime: ControllerRuntime) -> float | None:
        metadata = obj["metadata"]
        interval, retry = _intervals(obj.get("spec") or {})
        started = time.monotonic()
        status = dict(obj.get("status") or {})
        conditions = Conditions(status.get("conditions"), int(metadata.get("generation") or 1))
        try:
            revision = self._reconcile(path, obj, status, conditions, interval=interval, retry=retry)
        except _Requeue as requeue:
            conditions.mark_false(READY, requeue.reason, requeue.message)
            self._finish(path, obj, status, conditions)
            if requeue.event:
                self._event(obj, NORMAL, requeue.reason, requeue.event, None)
            return requeue.delay
        except ReconcileError as error:
            conditions.mark_false(READY, error.reason, error.message)
            self._finish(path, obj, status, conditions)
            self._event(obj, WARNING, error.reason, error.message, status.get("lastAttemptedRevision"))
            return self._policy.clamp(retry)
        self._finish(path, obj, status, conditions)
        elapsed = format_duration(time.monotonic() - started)
        self._event(
            obj,
            NORMAL,
            RECONCILIATION_SUCCEEDED,
            f"Reconciliation finished in {elapsed}, next run in {format_duration(interval)}",
            revision,
            extra={f"{GROUP}/commit_status": "update"},
        )
        return self._policy.periodic(interval)

    def _reconcile(
        self, path: str, obj: JSON, status: JSON, conditions: Conditions, *, interval: float, retry: float
    ) -> str:
        spec = obj.get("spec") or {}
        dependency_wait = format_duration(DEPENDENCY_REQUEUE)

        source = self._source(obj, retry)
        artifact = (source.get("status") or {}).get("artifact")
        if not artifact:
            raise _Requeue(
                ARTIFACT_FAILED, f"Source artifact not found, retrying in {dependency_wait}", self._policy.dependency()
            )
        revision = str(artifact.get("revision"))
        self._check_dependencies(obj, source, revision)

        timeout = format_duration(_timeout(spec, interval))
        conditions.mark_unknown(READY, PROGRESSING, "Reconciliation in progress")
        conditions.mark_true(
            RECONCILING, PROGRESSING, f"Fetching manifests for revision {revision} with a timeout of {timeout}"
        )
        self.patch_status(path, status, conditions)

        if not self._storage.exists(artifact):
            raise _Requeue(
                ARTIFACT_FAILED,
                f"Source is not ready, artifact not found, retrying in {dependency_wait}",
                self._policy.dependency(),
            )
        if not self._storage.verify(artifact):
            raise ReconcileError(
                ARTIFACT_FAILED,
                f"failed to verify artifact: computed digest doesn't match '{artifact.get('digest')}'",
            )
        unpacked = Path(tempfile.mkdtemp(prefix="kustomization-", dir=self._work_dir))
        try:
            self._storage.extract(artifact, unpacked)
            relative = posixpath.normpath("/" + str(spec.get("path") or "")).lstrip("/")
            directory = unpacked / relative if relative else unpacked
            if not directory.exists():
                raise ReconcileError(
                    ARTIFACT_FAILED, f"kustomization path not found: stat {directory}: no such file or directory"
                )
        finally:
            shutil.rmtree(unpacked, ignore_errors=True)

        status["lastAttemptedRevision"] = revision
        conditions.mark_true(
            RECONCILING, PROGRESSING, f"Building manifests for revision {revision} with a timeout of {timeout}"
        )
        self.patch_status(path, status, conditions)
        status["lastAppliedRevision"] = revision
        conditions.mark_true(READY, RECONCILIATION_SUCCEEDED, f"Applied revision: {revision}")
        return revision

    def _source(self, obj: JSON, retry: float) -> JSON:
        metadata = obj["metadata"]
        ref = (obj.get("spec") or {}).get("sourceRef") or {}
        kind = str(ref.get("kind") or "")
        name = str(ref.get("name") or "")
        namespace = str(ref.get("namespace") or metadata.get("namespace"))
        if kind != "GitRepository":
            raise ReconcileError(ARTIFACT_FAILED, f"source `{name}` kind '{kind}' not supported")
        base = resource_path(f"{SOURCE_GROUP}/v1", SOURCE_PLURAL, namespace, name)
        try:
            source = self._cluster.get(base)
            if source is None:
                source = self._cluster.get(resource_path(f"{SOURCE_GROUP}/v1beta2", SOURCE_PLURAL, namespace, name))
        except KubeError as error:
            raise ReconcileError(
                ARTIFACT_FAILED, f"unable to get source '{namespace}/{name}': {error.message}"
            ) from None
        if source is None:
            raise _Requeue(
                ARTIFACT_FAILED, f'{SOURCE_PLURAL}.{SOURCE_GROUP} "{name}" not found', self._policy.clamp(retry)
            )
        return source

    def _check_dependencies(self, obj: JSON, source: JSON, revision: str) -> None:
        metadata = obj["metadata"]
        spec = obj.get("spec") or {}
        own_source = _source_key(obj)
        for dependency in spec.get("dependsOn") or []:
            name = str(dependency.get("name") or "")
            namespace = str(dependency.get("namespace") or metadata.get("namespace"))
            label = f"{namespace}/{name}"
            other = self._cluster.get(self.object_path(namespace, name))
            problem: str | None = None
            if other is None:
                problem = f"dependency '{label}' not found: {PLURAL}.{GROUP} \"{name}\" not found"
            else:
                other_status = other.get("status") or {}
                other_conditions = Conditions(other_status.get("conditions"), 0)
                generation = (other.get("metadata") or {}).get("generation")
                if other_status.get("observedGeneration") != generation or not other_conditions.is_true(READY):
                    problem = f"dependency '{label}' is not ready"
                elif _source_key(other) == own_source and other_status.get("lastAppliedRevision") != revision:
                    problem = f"dependency '{label}' revision is not up to date"
            if problem is not None:
                wait = format_duration(DEPENDENCY_REQUEUE)
                raise _Requeue(
                    DEPENDENCY_NOT_READY,
                    problem,
                    self._policy.dependency(),
                    event=f"Dependencies do not meet ready condition, retrying in {wait}",
                )

    # -- status and events ------------------------------------------------------------------------------------

    def _finish(self, path: str, obj: JSON, status: JSON, conditions: Conditions) -> None:
        metadata = obj["metadata"]
        request = requested_at(obj)
        if request is not None:
            status["lastHandledReconcileAt"] = request
        if conditions.is_true(READY):
            conditions.delete(RECONCILING)
            status["observedGeneration"] = int(metadata.get("generation") or 1)
        elif conditions.is_false(READY):
            conditions.retrying()
        self.patch_status(path, status, conditions)

    def _event(
        self,
        obj: JSON,
        event_type: str,
        reason: str,
        message: str,
        revision: object,
        *,
        extra: dict[str, str] | None = None,
    ) -> None:
        annotations = dict(extra or {})
        if revision:
            annotations[f"{GROUP}/revision"] = str(revision)
        self._events.record(
            obj, event_type, reason, message, component=KUSTOMIZE_CONTROLLER, annotations=annotations or None
        )


def _intervals(spec: JSON) -> tuple[float, float]:
    """`spec.interval` (10 minutes when unset) and `spec.retryInterval` (the interval when unset)."""
    interval = duration_seconds(spec.get("interval"), DEFAULT_INTERVAL)
    return interval, duration_seconds(spec.get("retryInterval"), interval)


def _timeout(spec: JSON, interval: float) -> float:
    """`GetTimeout`: spec.timeout, else interval minus 30 s, never under 30 s."""
    duration = duration_seconds(spec.get("timeout"), interval - 30.0)
    return max(duration, 30.0)


def _source_key(obj: JSON) -> tuple[str, str, str]:
    ref = (obj.get("spec") or {}).get("sourceRef") or {}
    namespace = str(ref.get("namespace") or (obj.get("metadata") or {}).get("namespace"))
    return (str(ref.get("kind") or ""), namespace, str(ref.get("name") or ""))
