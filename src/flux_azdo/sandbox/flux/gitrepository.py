"""source-controller's GitRepository reconciler, condensed to what a bootstrap can observe.

Per reconcile, as in `gitrepository_controller.go`: deletion removes the artifacts and the finalizer
`finalizers.fluxcd.io`; a missing finalizer is added first (and the object requeued); `spec.suspend` stops
there. Otherwise the object is marked Reconciling, the credentials are resolved (AuthenticationFailed on
failure), the reference is listed and fetched with `git` (GitOperationFailed, `failed to checkout and determine
revision: unable to clone '<url>': ...`), the checkout is archived, and the status gets `artifact`
(revision `<branch>@sha1:<commit>`), ArtifactInStorage and Ready (`stored artifact for revision '...'`),
`observedGeneration` and `lastHandledReconcileAt`. A failure leaves Ready=False with the reason and message of
FetchFailed, Reconciling with ProgressingWithRetry, any previous artifact in place, `observedGeneration`
unchanged, and a Warning Event; a retry follows with exponential back-off (750 ms doubling, capped by the
interval). Success requeues after `spec.interval`, and a revision already in storage is not fetched again.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from flux_azdo.sandbox.flux.cluster import JSON
from flux_azdo.sandbox.flux.components import SOURCE_CONTROLLER, ControllerRuntime
from flux_azdo.sandbox.flux.conditions import READY, SUCCEEDED, Conditions
from flux_azdo.sandbox.flux.durations import duration_seconds
from flux_azdo.sandbox.flux.errors import ReconcileError
from flux_azdo.sandbox.flux.events import NORMAL, WARNING
from flux_azdo.sandbox.flux.gitauth import CredentialResolver, GitAuth
from flux_azdo.sandbox.flux.gitfetch import Commit, GitCancelled, GitError, GitFetcher, Reference
from flux_azdo.sandbox.flux.informer import Key
from flux_azdo.sandbox.flux.reconciling import ControllerContext, ToolkitReconciler, requested_at

GROUP = "source.toolkit.fluxcd.io"
KIND = "GitRepository"
PLURAL = "gitrepositories"

ARTIFACT_IN_STORAGE = "ArtifactInStorage"
ARTIFACT_OUTDATED = "ArtifactOutdated"
FETCH_FAILED = "FetchFailed"
STORAGE_OPERATION_FAILED = "StorageOperationFailed"
GIT_OPERATION_FAILED = "GitOperationFailed"
EMPTY_REPOSITORY = "EmptyGitRepository"

#: source-controller's defaults when `spec.interval` / `spec.timeout` are unset or invalid.
DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 60.0


class GitRepositoryController(ToolkitReconciler):
    """Reconciles GitRepositories while a source-controller Deployment is Available."""

    group = GROUP
    kind = KIND
    plural = PLURAL
    component = SOURCE_CONTROLLER

    def __init__(self, context: ControllerContext, fetcher: GitFetcher) -> None:
        super().__init__(context)
        self._fetcher = fetcher
        self._credentials = CredentialResolver(context.cluster, context.options)

    def release(self, namespace: str, name: str) -> None:
        self._storage.remove(KIND, namespace, name)

    def reconcile_object(self, key: Key, path: str, obj: JSON, runtime: ControllerRuntime) -> float | None:
        interval = duration_seconds((obj.get("spec") or {}).get("interval"), DEFAULT_INTERVAL)
        try:
            ok = self._reconcile(path, obj, runtime)
        except GitCancelled:
            return None
        if ok:
            self._policy.success(key)
            return self._policy.periodic(interval)
        return self._policy.failure(key, interval)

    def _reconcile(self, path: str, obj: JSON, runtime: ControllerRuntime) -> bool:
        metadata = obj["metadata"]
        generation = int(metadata.get("generation") or 1)
        spec = obj.get("spec") or {}
        status = dict(obj.get("status") or {})
        conditions = Conditions(status.get("conditions"), generation)
        observed = int(status.get("observedGeneration") or 0)
        request = requested_at(obj)

        conditions.progressive("reconciliation in progress")
        if generation != observed:
            conditions.progressive(f"processing object: new generation {observed} -> {generation}")
            self.patch_status(path, status, conditions)
        elif request is not None and request != status.get("lastHandledReconcileAt"):
            self.patch_status(path, status, conditions)

        artifact = status.get("artifact")
        if artifact is not None and not self._storage.exists(artifact):
            artifact = None
            status["artifact"] = None
            conditions.delete(ARTIFACT_IN_STORAGE)
            conditions.progressive("building artifact: disappeared from storage", drift=True)
            self.patch_status(path, status, conditions)
        elif artifact is None:
            conditions.delete(ARTIFACT_IN_STORAGE)
            conditions.progressive("building artifact", drift=True)
            self.patch_status(path, status, conditions)

        auth: GitAuth | None = None
        try:
            auth = self._credentials.resolve(obj, runtime)
            reference = Reference.from_spec(spec.get("ref"))
            timeout = duration_seconds(spec.get("timeout"), DEFAULT_TIMEOUT)
            commit = self._fetch(obj, runtime, auth, reference, timeout, artifact, conditions, path, status)
        except ReconcileError as error:
            message = _scrub(error.message, auth)
            conditions.mark_true(FETCH_FAILED, error.reason, message)
            self._finish(path, obj, status, conditions, failure=(error.reason, message))
            return False
        recovered = conditions.is_true(FETCH_FAILED)
        conditions.delete(FETCH_FAILED)
        conditions.delete(ARTIFACT_OUTDATED)
        conditions.delete(STORAGE_OPERATION_FAILED)
        revision = str(status["artifact"]["revision"])
        conditions.mark_true(ARTIFACT_IN_STORAGE, SUCCEEDED, f"stored artifact for revision '{revision}'")
        self._finish(path, obj, status, conditions, failure=None)
        annotations = {f"{GROUP}/revision": revision, f"{GROUP}/digest": str(status["artifact"].get("digest"))}
        if commit is not None:
            message = f"stored artifact for commit '{commit}'"
            self._events.record(
                obj, NORMAL, "NewArtifact", message, component=SOURCE_CONTROLLER, annotations=annotations
            )
        elif recovered:  # same artifact, but the last attempt had failed: Flux announces the recovery
            message = f"stored artifact for commit '{revision}'"
            self._events.record(obj, NORMAL, SUCCEEDED, message, component=SOURCE_CONTROLLER, annotations=annotations)
        return True

    def _fetch(
        self,
        obj: JSON,
        runtime: ControllerRuntime,
        auth: GitAuth,
        reference: Reference,
        timeout: float,
        artifact: JSON | None,
        conditions: Conditions,
        path: str,
        status: JSON,
    ) -> str | None:
        """Bring the artifact up to date; return the new commit's short message, or None if unchanged."""
        metadata = obj["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        url = auth.url
        optimised = artifact is not None and conditions.is_true(ARTIFACT_IN_STORAGE)
        if reference.semver:
            raise ReconcileError(
                GIT_OPERATION_FAILED,
                "failed to checkout and determine revision: semver references are not simulated by the sandbox",
            )
        try:
            references = self._fetcher.remote_references(auth, timeout)
        except GitError as error:
            prefix = f"unable to list remote for '{url}'" if optimised else f"unable to clone '{url}'"
            raise ReconcileError(
                GIT_OPERATION_FAILED, f"failed to checkout and determine revision: {prefix}: {error}"
            ) from None
        wanted = reference.wanted() if (not reference.commit or reference.branch or reference.name) else None
        if not references:
            raise ReconcileError(EMPTY_REPOSITORY, "git repository is empty")
        if wanted is not None and wanted not in references:
            raise ReconcileError(
                GIT_OPERATION_FAILED,
                f"failed to checkout and determine revision: unable to clone: couldn't find remote ref "
                f"'{wanted}': git repository: '{url}'",
            )
        if optimised and wanted is not None and not reference.commit and artifact is not None:
            current = reference.revision(Commit(reference=wanted, sha=references[wanted], message=""))
            if current == artifact.get("revision"):
                return None  # no changes since last reconciliation
            conditions.mark_true(ARTIFACT_OUTDATED, "NewRevision", f"new upstream revision '{current}'")
            conditions.progressive(f"building artifact: new upstream revision '{current}'", drift=True)
            self.patch_status(path, status, conditions)
        checkout_root = Path(tempfile.mkdtemp(prefix=f"{namespace}-{name}-", dir=self._fetcher.work_dir))
        try:
            try:
                commit = self._fetcher.checkout(auth, reference, wanted, checkout_root / "src", timeout)
            except GitError as error:
                raise ReconcileError(
                    GIT_OPERATION_FAILED, f"failed to checkout and determine revision: unable to clone '{url}': {error}"
                ) from None
            revision = reference.revision(commit)
            if artifact is not None and artifact.get("revision") == revision:
                return None  # e.g. a pinned commit: fetched again, but the artifact is up to date
            host = runtime.expand((runtime.flag("storage-adv-addr") or [f"source-controller.{runtime.namespace}"])[0])
            status["artifact"] = self._storage.archive(
                KIND, namespace, name, revision, commit.sha, checkout_root / "src", host
            )
        finally:
            shutil.rmtree(checkout_root, ignore_errors=True)
        return commit.short_message()

    # -- status -----------------------------------------------------------------------------------------------

    def _finish(
        self, path: str, obj: JSON, status: JSON, conditions: Conditions, *, failure: tuple[str, str] | None
    ) -> None:
        metadata = obj["metadata"]
        if failure is None:
            conditions.delete("Reconciling")
            ready = conditions.get(ARTIFACT_IN_STORAGE) or {}
            conditions.mark_true(READY, SUCCEEDED, str(ready.get("message")))
            status["observedGeneration"] = int(metadata.get("generation") or 1)
        else:
            reason, message = failure
            conditions.retrying()
            conditions.mark_false(READY, reason, message)
        request = requested_at(obj)
        if request is not None:
            status["lastHandledReconcileAt"] = request
        self.patch_status(path, status, conditions)
        if failure is not None:
            self._events.record(obj, WARNING, failure[0], failure[1], component=SOURCE_CONTROLLER)


def _scrub(message: str, auth: GitAuth | None) -> str:
    if auth is None:
        return message
    for secret in auth.secrets():
        message = message.replace(secret, "***")
    return message
