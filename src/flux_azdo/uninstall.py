"""`flux-azdo uninstall`: remove Flux from a cluster as `flux uninstall` does, and leave what Flux deployed running.

Flux's order is: delete the controllers, strip the finalizers of every toolkit object, delete the CRDs (which takes
the objects along) and the namespace. Two gaps in it are closed here:

- a controller is not gone when its Deployment is: its pod keeps running through the grace period, and an object
  deleted meanwhile is finalized by it, with kustomize-controller pruning everything the Kustomization applied
  and helm-controller uninstalling every release. So every Flux object is **suspended first** (a suspended
  object is finalized without garbage collection), and a finalizer a dying controller adds back is stripped
  again while we wait for the object to go;
- the objects are deleted by us, after their finalizers are gone, with `propagationPolicy: Orphan`, so the
  Kubernetes garbage collector detaches anything that names a Flux object as its owner instead of deleting it.
  The CRDs go only once their objects are gone (and not at all with `--keep-crds`; the objects still go, as a
  suspended leftover would stop the next bootstrap).

Workloads Flux created carry `kustomize.toolkit.fluxcd.io/*` labels but not `app.kubernetes.io/part-of: flux`;
only objects with that label (Flux's own components) and the toolkit kinds are deleted. Deleting the namespace
deletes whatever else is in it, as with Flux; `--keep-namespace` keeps it (and the Git credential Secret in it).

`--remove-manifests` then commits the removal of `<path>/<namespace>/` through `git.Workspace.publish`. The clone
is made before anything is deleted, so a credential that cannot reach the repository stops the run before any
change; the commit is made last, so that Flux, still running, never reconciles a repository without its own
manifests (kustomize-controller would prune itself half way).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from flux_azdo.errors import UsageError, UserError

if TYPE_CHECKING:
    from flux_azdo.azdo.urls import RepositoryUrl
    from flux_azdo.bootstrap import Reporter
    from flux_azdo.cluster.client import Cluster, ClusterAccess
    from flux_azdo.console import TerminalReporter
    from flux_azdo.git.auth import GitAuth
    from flux_azdo.git.workspace import Author, Workspace

REMOVE_MESSAGE = "Remove Flux manifests"
PART_OF = "app.kubernetes.io/part-of"
INSTANCE = "app.kubernetes.io/instance"
#: Every Flux API group ends so: source/kustomize/helm/notification/image.toolkit.fluxcd.io, source.extensions...
FLUX_GROUP_SUFFIX = ".fluxcd.io"
#: Finalizers the garbage collector owns: never stripped (stripping `orphan` would let it delete dependents).
GC_FINALIZERS = frozenset({"orphan", "foregroundDeletion"})
CONFIRMATION = "Are you sure you want to delete Flux and its custom resource definitions"
#: Each API request gets at most this long, within the run's --timeout.
CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Kind:
    """A kind and where its objects live in the API (built-in, or read from a CRD)."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool
    suspendable: bool = False

    def collection(self, namespace: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def path(self, namespace: str | None, name: str) -> str:
        return f"{self.collection(namespace)}/{quote(name, safe='')}"


#: Flux's components, as `flux uninstall` deletes them (plus the ResourceQuota, which --keep-namespace would keep).
NAMESPACED_COMPONENTS = (
    Kind("Deployment", "apps/v1", "deployments", True),
    Kind("Service", "v1", "services", True),
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", True),
    Kind("ServiceAccount", "v1", "serviceaccounts", True),
    Kind("ResourceQuota", "v1", "resourcequotas", True),
)
CLUSTER_COMPONENTS = (
    Kind("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", False),
    Kind("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
)
CRD = Kind("CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions", False)
NAMESPACE = Kind("Namespace", "v1", "namespaces", False)


@dataclass(frozen=True)
class RemoveManifests:
    """`--remove-manifests`: where the bootstrap committed `<path>/<namespace>/`, and how to push its removal.

    `path` None: the `spec.path` of the Kustomization `<namespace>/<namespace>`, read before it is deleted.
    """

    url: RepositoryUrl
    branch: str
    path: str | None
    git_auth: GitAuth
    author: Author
    commit_message_appendix: str = ""


@dataclass(frozen=True)
class UninstallOptions:
    cluster: ClusterAccess
    namespace: str = "flux-system"
    keep_crds: bool = False
    keep_namespace: bool = False
    force: bool = False
    timeout: float = 300.0
    manifests: RemoveManifests | None = None

    def __post_init__(self) -> None:
        """A mistyped namespace stops here, whoever built the options (the CLI, the pipeline task)."""
        from flux_azdo.manifests.flags import validate_namespace

        validate_namespace(self.namespace)


@dataclass
class UninstallResult:
    """What was done, each object as Flux names it: `Kind/namespace/name` (`Kind/name` when cluster-scoped)."""

    suspended: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    finalizers_removed: list[str] = field(default_factory=list)
    commit: str | None = None


def label(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


# ------------------------------------------------------------------------------------------------ the run


def uninstall(options: UninstallOptions, reporter: Reporter) -> UninstallResult:
    """Remove Flux from the cluster (and its manifests from the repository); raises UserError when it stops."""
    from flux_azdo.cluster.client import Cluster

    deadline = time.monotonic() + options.timeout
    result = UninstallResult()
    with Cluster(options.cluster) as cluster, contextlib.ExitStack() as stack:
        _refuse_other_managers(cluster, options)
        _refuse_a_namespace_without_flux(cluster, options)
        kinds = flux_kinds(cluster)
        folder = None
        workspace = None
        if options.manifests is not None:
            folder = _manifests_folder(cluster, options, kinds)
            workspace = stack.enter_context(_open_workspace(options.manifests, reporter, deadline))
        run = _Run(cluster, options, reporter, result, deadline)
        run.suspend(kinds)
        run.delete_components()
        run.remove_finalizers(kinds)
        run.delete_flux_objects(kinds)
        run.delete_crds()
        run.delete_namespace()
        if not result.deleted and not result.suspended and not result.finalizers_removed:
            reporter.warning(f"found no Flux components in namespace {options.namespace} and no Flux objects")
        if workspace is not None and folder is not None and options.manifests is not None:
            result.commit = _remove_manifests(workspace, folder, options.manifests, reporter)
    reporter.success("uninstall finished")
    return result


def _refuse_a_namespace_without_flux(cluster: Cluster, options: UninstallOptions) -> None:
    """A mistyped `--namespace` must not go on to delete every Flux object and CRD of the cluster (flux does):
    without `--force`, stop when Flux's controllers run in other namespaces but not in the one named. (With no
    controllers anywhere the run goes on: it removes leftovers, and a second uninstall is a no-op.)"""
    deployments = NAMESPACED_COMPONENTS[0]
    selector = f"{PART_OF}=flux"
    if options.force or _list(cluster, deployments, options.namespace, selector)[0]:
        return
    elsewhere = sorted({str(d["metadata"].get("namespace")) for d in _list(cluster, deployments, None, selector)[0]})
    if elsewhere:
        raise UserError(
            f"found no Flux controllers in namespace {options.namespace} (Flux runs in: {', '.join(elsewhere)}): "
            "nothing was changed",
            fix=f"pass --namespace {elsewhere[0]}; --force removes the Flux objects and custom resource definitions "
            "anyway",
        )


def flux_kinds(cluster: Cluster) -> list[tuple[Kind, str]]:
    """Every kind of a Flux API group the cluster has a CRD for, with the CRD's name; the storage version, and
    whether its schema has `spec.suspend`."""
    found: list[tuple[Kind, str]] = []
    for crd in _list(cluster, CRD)[0]:
        spec = crd.get("spec") or {}
        group = str(spec.get("group") or "")
        if not is_flux_group(group):
            continue
        versions = [v for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("served")]
        if not versions:
            continue
        version = next((v for v in versions if v.get("storage")), versions[0])
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        spec_schema = (schema.get("properties") or {}).get("spec") or {}
        names = spec.get("names") or {}
        kind = Kind(
            kind=str(names.get("kind") or ""),
            api_version=f"{group}/{version.get('name')}",
            plural=str(names.get("plural") or ""),
            namespaced=spec.get("scope") != "Cluster",
            suspendable="suspend" in (spec_schema.get("properties") or {}),
        )
        found.append((kind, str(crd["metadata"]["name"])))
    return sorted(found, key=lambda item: item[1])


class _Run:
    """The cluster steps, in order; each prints Flux's lines and records what it did in `result`."""

    def __init__(
        self,
        cluster: Cluster,
        options: UninstallOptions,
        reporter: Reporter,
        result: UninstallResult,
        deadline: float,
    ) -> None:
        self.cluster = cluster
        self.options = options
        self.reporter = reporter
        self.result = result
        self.deadline = deadline

    def suspend(self, kinds: list[tuple[Kind, str]]) -> None:
        self.reporter.action("suspending toolkit.fluxcd.io objects in all namespaces")
        for kind, _ in kinds:
            if not kind.suspendable:
                continue
            for obj in _list(self.cluster, kind)[0]:
                metadata = obj["metadata"]
                if (obj.get("spec") or {}).get("suspend") is True or metadata.get("deletionTimestamp"):
                    continue
                shown = label(kind.kind, metadata.get("namespace"), metadata["name"])
                if _patch(self.cluster, kind, metadata, {"spec": {"suspend": True}}, f"suspend {shown}"):
                    self.reporter.success(f"{shown} suspended")
                    self.result.suspended.append(shown)

    def delete_components(self) -> None:
        namespace = self.options.namespace
        self.reporter.action(f"deleting components in {namespace} namespace")
        selectors: list[tuple[Kind, str | None, str]] = [
            (kind, namespace, f"{PART_OF}=flux") for kind in NAMESPACED_COMPONENTS
        ]
        selectors += [(kind, None, f"{PART_OF}=flux,{INSTANCE}={namespace}") for kind in CLUSTER_COMPONENTS]
        for kind, where, selector in selectors:
            for obj in _list(self.cluster, kind, where, selector)[0]:
                self._delete(kind, obj["metadata"], "Background")

    def remove_finalizers(self, kinds: list[tuple[Kind, str]]) -> None:
        self.reporter.action("deleting toolkit.fluxcd.io finalizers in all namespaces")
        for kind, _ in kinds:
            for obj in _list(self.cluster, kind)[0]:
                self._strip(kind, obj)

    def delete_flux_objects(self, kinds: list[tuple[Kind, str]]) -> None:
        self.reporter.action("deleting toolkit.fluxcd.io objects in all namespaces")
        for kind, _ in kinds:
            items = _list(self.cluster, kind)[0]
            for obj in items:
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(kind, obj["metadata"], "Orphan")
            wanted = {_key(obj) for obj in items}
            left = wait_until_gone(self.cluster, kind, wanted, self.deadline, on_seen=self._stripper(kind))
            if left:
                shown = ", ".join(label(kind.kind, ns, name) for ns, name in sorted(left, key=str))
                raise UserError(
                    f"uninstall did not finish within --timeout ({self.options.timeout:g}s): still there: {shown}",
                    fix="see what holds them (kubectl get <kind> -A -o yaml: finalizers), then run the command again",
                )

    def delete_crds(self) -> None:
        if self.options.keep_crds:
            self.reporter.success("kept the toolkit.fluxcd.io custom resource definitions (--keep-crds)")
            return
        self.reporter.action("deleting toolkit.fluxcd.io custom resource definitions")
        crds = [crd for crd in _list(self.cluster, CRD)[0] if is_flux_group(str((crd.get("spec") or {}).get("group")))]
        names = {str(crd["metadata"]["name"]) for crd in crds}
        for crd in crds:
            if not crd["metadata"].get("deletionTimestamp"):
                self._delete(CRD, crd["metadata"], "Background")
        left = wait_until_gone(self.cluster, CRD, {(None, name) for name in names}, self.deadline)
        if left:
            shown = ", ".join(sorted(name for _, name in left))
            raise UserError(
                f"uninstall did not finish within --timeout ({self.options.timeout:g}s): CustomResourceDefinitions "
                f"still there: {shown}",
                fix="see their status (kubectl get crd <name> -o yaml), then run the command again",
            )

    def delete_namespace(self) -> None:
        namespace = self.options.namespace
        if self.options.keep_namespace:
            self.reporter.success(f"kept namespace {namespace} (--keep-namespace)")
            self._warn_kept_secrets()
            return
        existing = self.cluster.get("v1", "Namespace", namespace)
        if existing is None:
            self.reporter.success(f"namespace {namespace} does not exist")
            return
        if not existing["metadata"].get("deletionTimestamp") and not self._delete(
            NAMESPACE, existing["metadata"], "Background", report=False
        ):
            return
        self.reporter.waiting(f"waiting for namespace {namespace} to be deleted")
        left = wait_until_gone(
            self.cluster, NAMESPACE, {(None, namespace)}, self.deadline, field_selector=f"metadata.name={namespace}"
        )
        if left:
            current = self.cluster.get("v1", "Namespace", namespace) or {}
            why = "; ".join(
                str(c.get("message"))
                for c in (current.get("status") or {}).get("conditions") or []
                if c.get("status") == "True" and c.get("message")
            )
            raise UserError(
                f"namespace {namespace} was not deleted within --timeout ({self.options.timeout:g}s)"
                + (f": {why}" if why else ""),
                fix=f"see what it still holds (kubectl get namespace {namespace} -o yaml), then run the command again",
            )
        self.reporter.success(f"Namespace/{namespace} deleted")
        self.result.deleted.append(f"Namespace/{namespace}")

    # -- one object ---------------------------------------------------------------------------------------------

    def _delete(self, kind: Kind, metadata: Mapping[str, Any], policy: str, *, report: bool = True) -> bool:
        """Delete one object (`policy`: how its dependents are treated); False when it was gone already."""
        shown = label(kind.kind, metadata.get("namespace"), metadata["name"])
        path = kind.path(metadata.get("namespace"), metadata["name"])
        if _call(self.cluster, "delete", path, f"delete {shown}", propagation_policy=policy) is None:
            return False
        if report:
            self.reporter.success(f"{shown} deleted")
            self.result.deleted.append(shown)
        return True

    def _stripper(self, kind: Kind) -> Callable[[dict[str, Any]], None]:
        return lambda obj: self._strip(kind, obj)

    def _strip(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        """Remove the finalizers a controller owns (Flux's); the garbage collector's stay."""
        metadata = obj.get("metadata") or {}
        finalizers = list(metadata.get("finalizers") or [])
        kept = [f for f in finalizers if f in GC_FINALIZERS]
        if kept == finalizers:
            return
        shown = label(kind.kind, metadata.get("namespace"), metadata["name"])
        # The resourceVersion makes it a compare-and-swap: a finalizer the garbage collector removed meanwhile is
        # not written back; on a conflict the next event (or list) brings the object again.
        body = {"metadata": {"finalizers": kept or None, "resourceVersion": metadata.get("resourceVersion")}}
        try:
            changed = _patch(self.cluster, kind, metadata, body, f"remove the finalizers of {shown}")
        except _Conflict:
            return
        if changed and shown not in self.result.finalizers_removed:
            self.reporter.success(f"{shown} finalizers deleted")
            self.result.finalizers_removed.append(shown)

    def _warn_kept_secrets(self) -> None:
        namespace = self.options.namespace
        secret = self.cluster.get("v1", "Secret", namespace, namespace)
        if secret is not None:
            self.reporter.warning(
                f"Secret {namespace}/{namespace} (the Git credential) is kept with the namespace: delete it "
                f"(kubectl -n {namespace} delete secret {namespace}) and revoke its PAT or SSH key when no longer "
                "needed"
            )


# ------------------------------------------------------------------------------------------------ API helpers


class _Conflict(Exception):
    """409: the object changed since it was read (a compare-and-swap lost); the next read brings it again."""


def is_flux_group(group: str) -> bool:
    return group == FLUX_GROUP_SUFFIX[1:] or group.endswith(FLUX_GROUP_SUFFIX)


def _key(obj: Mapping[str, Any]) -> tuple[str | None, str]:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace") or None, str(metadata.get("name")))


def _call(cluster: Cluster, method: str, path: str, doing: str, **kwargs: Any) -> Any | None:
    """One request; None when the object (or its kind) is gone (404), `_Conflict` on 409, else a UserError."""
    from kubernetes.client.rest import ApiException

    from flux_azdo.cluster.client import NotFound

    try:
        with cluster.errors(doing):
            try:
                return cluster.dynamic.request(
                    method, path, serialize=False, _request_timeout=cluster.access.timeout, **kwargs
                )
            except ApiException as error:
                if error.status == 409:
                    raise _Conflict() from None
                raise
    except NotFound:
        return None


def _list(
    cluster: Cluster, kind: Kind, namespace: str | None = None, selector: str | None = None, **query: Any
) -> tuple[list[dict[str, Any]], str | None]:
    """The items of a collection and its resourceVersion; a kind no longer served is an empty list."""
    response = _call(
        cluster, "get", kind.collection(namespace), f"list {kind.kind} objects", label_selector=selector, **query
    )
    if response is None:
        return [], None
    body: dict[str, Any] = json.loads(response.data)
    items = [item for item in body.get("items") or [] if isinstance(item, dict)]
    return items, (body.get("metadata") or {}).get("resourceVersion") or None


def _patch(cluster: Cluster, kind: Kind, metadata: Mapping[str, Any], body: dict[str, Any], doing: str) -> bool:
    """A JSON merge patch; False when the object is gone."""
    path = kind.path(metadata.get("namespace"), str(metadata["name"]))
    return _call(cluster, "patch", path, doing, body=body, content_type="application/merge-patch+json") is not None


def wait_until_gone(
    cluster: Cluster,
    kind: Kind,
    wanted: set[tuple[str | None, str]],
    deadline: float,
    *,
    field_selector: str | None = None,
    on_seen: Callable[[dict[str, Any]], None] | None = None,
) -> set[tuple[str | None, str]]:
    """Watch (never poll) until none of `wanted` (namespace, name) exists; what is left at `deadline`.

    `on_seen` is called with each of them as listed and as changed, e.g. to strip a finalizer added back.
    """
    remaining = set(wanted)

    def listed(items: list[dict[str, Any]]) -> bool:
        remaining.intersection_update(_key(obj) for obj in items)
        for obj in items:
            if on_seen is not None and _key(obj) in remaining:
                on_seen(obj)
        return not remaining

    def changed(event: str, obj: dict[str, Any]) -> bool:
        if event == "DELETED":
            remaining.discard(_key(obj))
        elif on_seen is not None and _key(obj) in remaining:
            on_seen(obj)
        return not remaining

    watch_objects(cluster, kind, deadline, listed, changed, field_selector=field_selector)
    return remaining


def watch_objects(
    cluster: Cluster,
    kind: Kind,
    deadline: float,
    listed: Callable[[list[dict[str, Any]]], bool],
    changed: Callable[[str, dict[str, Any]], bool],
    *,
    namespace: str | None = None,
    field_selector: str | None = None,
) -> bool:
    """List a collection, then watch it from the list's resourceVersion until `listed(items)` or `changed(type,
    obj)` says done (True), or `deadline` (a time.monotonic() value) passes (False). A 410 Gone lists again."""
    import kubernetes.watch
    import urllib3
    from kubernetes.client.rest import ApiException

    version: str | None = None
    path = kind.collection(namespace)

    def request(**kwargs: Any) -> Any:
        return cluster.dynamic.request("get", path, serialize=False, **kwargs)

    while True:
        if version is None:
            items, version = _list(cluster, kind, namespace, field_selector=field_selector)
            if listed(items):
                return True
            version = version or "0"
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        watcher = kubernetes.watch.Watch()
        stream = watcher.stream(
            request,
            resource_version=version,
            field_selector=field_selector,
            allow_watch_bookmarks=True,
            timeout_seconds=max(1, math.ceil(left)),
            _request_timeout=(cluster.access.timeout, left),
        )
        try:
            for event in stream:
                obj = event.get("raw_object")
                if not isinstance(obj, dict):
                    continue
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event.get("type") != "BOOKMARK" and changed(str(event.get("type")), obj):
                    return True
                if time.monotonic() >= deadline:
                    return False
        except ApiException as error:
            if error.status != 410:
                raise cluster.translate(error, f"watch {kind.kind} objects") from None
            version = None  # the history moved past our resourceVersion: list again
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError):
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))  # idle to the deadline, or dropped
        finally:
            stream.close()
            watcher.stop()


# ------------------------------------------------------------------------------------------------ checks


def _refuse_other_managers(cluster: Cluster, options: UninstallOptions) -> None:
    """Flux installed by the AKS extension or by another tool (Helm, an operator) comes back when removed here,
    and fights what is left: uninstall it with its manager, or take the risk with --force."""
    from flux_azdo.cluster.checks import existing_flux

    found = existing_flux(cluster, options.namespace)
    if found is None or found.managed_by_flux or options.force:
        return
    if found.aks_extension:
        raise UserError(
            "Flux on this cluster is the AKS microsoft.flux extension: Azure would reinstall what is deleted here",
            fix="remove it with `az k8s-extension delete --resource-group <group> --cluster-name <cluster> "
            "--cluster-type managedClusters --name flux`, or pass --force",
        )
    raise UserError(
        f"Flux on this cluster is managed by {found.managed_by}: it would reinstall what is deleted here",
        fix=f"uninstall it with {found.managed_by}, or pass --force",
    )


def _manifests_folder(cluster: Cluster, options: UninstallOptions, kinds: list[tuple[Kind, str]]) -> str:
    """`<path>/<namespace>`, with the path from --path or else from the Kustomization bootstrap created."""
    from flux_azdo.manifests.paths import manifests_dir, repository_path

    assert options.manifests is not None
    path = options.manifests.path
    namespace = options.namespace
    if path is None:
        kind = next((k for k, _ in kinds if k.kind == "Kustomization" and k.api_version.startswith("kustomize.")), None)
        found = None
        if kind is not None:
            response = _call(
                cluster, "get", kind.path(namespace, namespace), f"read Kustomization {namespace}/{namespace}"
            )
            found = json.loads(response.data) if response is not None else None
        path = ((found or {}).get("spec") or {}).get("path")
        if path is None:
            raise UserError(
                f"--remove-manifests: there is no Kustomization {namespace}/{namespace} to read the path from",
                fix="pass --path with the folder given to bootstrap (e.g. clusters/prod)",
            )
    return manifests_dir(repository_path(str(path)), namespace)


@contextlib.contextmanager
def _open_workspace(manifests: RemoveManifests, reporter: Reporter, deadline: float) -> Iterator[Workspace]:
    from flux_azdo.git.workspace import RETRY_DEADLINE, Workspace

    reporter.action(f'cloning branch "{manifests.branch}" from Git repository "{manifests.url.original}"')
    left = max(1.0, deadline - time.monotonic())
    with Workspace(
        manifests.url.git_url,
        manifests.branch,
        manifests.git_auth,
        author=manifests.author,
        timeout=min(120.0, left),
        retry_deadline=min(RETRY_DEADLINE, left),
    ) as workspace:
        reporter.success("cloned repository")
        yield workspace


def _remove_manifests(workspace: Workspace, folder: str, manifests: RemoveManifests, reporter: Reporter) -> str | None:
    """One commit removing `folder` (pushed without force, on top of what others pushed); its sha, or None."""
    from flux_azdo.bootstrap_steps.repository import commit_message
    from flux_azdo.git.workspace import Change

    message = commit_message(REMOVE_MESSAGE, manifests.commit_message_appendix)
    reporter.action(f'removing "{folder}" from branch "{manifests.branch}"')

    def produce(root: Path) -> list[Change]:
        return [Change(message, {folder: None})]

    def retrying(attempt: int, reason: str) -> None:
        reporter.waiting(f"git conflict detected, retrying on top of the new head (attempt {attempt}: {reason})")

    published = workspace.publish(produce, on_retry=retrying)
    if not published.pushed or not published.commits:
        reporter.success(f'"{folder}" is not in branch "{manifests.branch}": nothing to remove')
        return None
    sha = published.commits[-1].sha
    reporter.success(f'committed removal of Flux manifests to "{manifests.branch}" ("{sha}")')
    reporter.success(f'pushed to "{workspace.url}"')
    return sha


# ------------------------------------------------------------------------------------------------ command line


def register(commands: Any) -> None:
    """Add `uninstall` to the CLI's subcommands (`commands` is what `add_subparsers` returned)."""
    from flux_azdo.cli import _add_bool, _add_cluster_flags, _Parser

    parser: _Parser = commands.add_parser(
        "uninstall",
        help="remove Flux from the cluster, leaving what it deployed running (as `flux uninstall`)",
        description="Suspend every Flux object, delete Flux's components (Deployments, Services, ServiceAccounts, "
        "NetworkPolicies, ClusterRoles and ClusterRoleBindings labelled app.kubernetes.io/part-of=flux), remove "
        "the finalizers of the Flux objects and delete them, then the toolkit CRDs and the namespace. Workloads "
        "Flux created keep running: nothing of theirs is pruned or garbage-collected. With --remove-manifests, "
        "also commit the removal of <path>/<namespace>/ to the repository.",
    )
    group = parser.add_argument_group("cluster")
    _add_cluster_flags(group)
    group.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="namespace Flux runs in (default flux-system, or $FLUX_SYSTEM_NAMESPACE)",
    )
    group.add_argument("--keep-crds", action="store_true", help="keep the toolkit CustomResourceDefinitions")
    group.add_argument("--keep-namespace", action="store_true", help="keep the namespace (and the Secrets in it)")
    group.add_argument(
        "--force",
        action="store_true",
        help="go ahead even when Flux is managed by something else (the AKS extension, Helm)",
    )
    group.add_argument("-s", "--silent", action="store_true", help="do not ask for confirmation")
    group.add_argument("--timeout", default="5m", metavar="DURATION", help="time limit of the whole run (default 5m)")
    repo = parser.add_argument_group("repository (with --remove-manifests)")
    repo.add_argument(
        "--remove-manifests",
        action="store_true",
        help="also commit the removal of <path>/<namespace>/ (gotk-components.yaml, gotk-sync.yaml, ...)",
    )
    repo.add_argument("--url", help="Git repository URL, as given to bootstrap")
    repo.add_argument("--branch", default="main", help="branch Flux followed (default main)")
    repo.add_argument(
        "--path", default=None, help="folder given to bootstrap (default: the spec.path of the Kustomization)"
    )
    repo.add_argument(
        "--password",
        default=None,
        help="https: the PAT or job token; ssh: the passphrase of --private-key-file (default: $GIT_PASSWORD)",
    )
    repo.add_argument("--password-stdin", action="store_true", help="read --password's value from stdin")
    repo.add_argument("--entra-auth", action="store_true", help="push with a Microsoft Entra token (https)")
    repo.add_argument("--private-key-file", type=Path, metavar="FILE", help="SSH private key for an ssh:// URL")
    repo.add_argument("--ssh-known-hosts", type=Path, metavar="FILE", help="known_hosts for the SSH host")
    repo.add_argument("--ssh-hostkey-algos", action="append", metavar="LIST", help="host key algorithms for SSH")
    repo.add_argument("-u", "--username", default="git", help="user for SSH URLs without one (default git)")
    _add_bool(repo, "--allow-insecure-http", False, "allow an http:// URL (test servers only)")
    repo.add_argument("--author-name", default="Flux", help="author of the commit (default Flux)")
    repo.add_argument("--author-email", default="", help="email of the commit author (default empty)")
    repo.add_argument("--commit-message-appendix", default="", help="text added to the commit message")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from flux_azdo.console import TerminalReporter

    reporter = TerminalReporter()
    if not args.silent and not _interactive(sys.stdin):
        raise UserError(
            "uninstall asks for confirmation, and standard input is not a terminal",
            fix="pass --silent to uninstall without asking",
        )
    options = options_from_args(args, reporter)
    if not args.silent and not confirm(sys.stdin, sys.stderr, options):
        raise UserError("aborting: nothing was changed")
    uninstall(options, reporter)
    return 0


def options_from_args(args: argparse.Namespace, reporter: TerminalReporter) -> UninstallOptions:
    """Flags and environment -> UninstallOptions; every mistake found here changes nothing."""
    from flux_azdo.azdo.access import parse_timeout
    from flux_azdo.cli import _aks_cluster, _cluster_access, _namespace
    from flux_azdo.manifests.flags import validate_namespace

    _aks_cluster(args)  # a partial or conflicting set of --aks-* flags is a usage mistake, found first
    timeout = parse_timeout(args.timeout)
    namespace = _namespace(args, reporter)
    validate_namespace(namespace)  # before --aks-* asks Azure for the cluster (the options check it too)
    manifests = _remove_manifests_options(args, timeout, reporter) if args.remove_manifests else None
    if not args.remove_manifests:
        given = [flag for flag, value in (("--url", args.url), ("--path", args.path)) if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} applies with --remove-manifests only: add it, or drop {given[0]}")
    return UninstallOptions(
        cluster=_cluster_access(args, min(timeout, CALL_TIMEOUT), reporter),
        namespace=namespace,
        keep_crds=args.keep_crds,
        keep_namespace=args.keep_namespace,
        force=args.force,
        timeout=timeout,
        manifests=manifests,
    )


def _remove_manifests_options(args: argparse.Namespace, timeout: float, reporter: Reporter) -> RemoveManifests:
    from flux_azdo.azdo.access import AccessOptions, preflight_request
    from flux_azdo.cli import _csv
    from flux_azdo.git.workspace import Author

    if not args.url:
        raise UsageError("--remove-manifests needs --url: the repository bootstrap committed to")
    access = AccessOptions(
        url=args.url,
        branch=args.branch,
        password=args.password,
        password_stdin=args.password_stdin,
        entra_auth=args.entra_auth,
        private_key_file=args.private_key_file,
        ssh_known_hosts=args.ssh_known_hosts,
        ssh_hostkey_algos=_csv(args.ssh_hostkey_algos),
        username=args.username,
        allow_insecure_http=args.allow_insecure_http,
        timeout=f"{min(timeout, CALL_TIMEOUT)}s",
    )
    request = preflight_request(access, warn=reporter.warning)
    if request.git_auth is None:
        how = (
            "--private-key-file with your SSH key"
            if request.url.transport == "ssh"
            else "a token in GIT_PASSWORD or through --password-stdin"
        )
        raise UserError(f"--remove-manifests pushes a commit to {request.url.original}: pass {how}")
    return RemoveManifests(
        url=request.url,
        branch=request.branch,
        path=args.path,
        git_auth=request.git_auth,
        author=Author(args.author_name, args.author_email),
        commit_message_appendix=args.commit_message_appendix,
    )


def _interactive(stream: IO[str] | None) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def confirm(stdin: IO[str], stderr: IO[str], options: UninstallOptions) -> bool:
    """Flux's question; only "y" or "yes" goes ahead."""
    question = CONFIRMATION if not options.keep_crds else "Are you sure you want to delete Flux"
    stderr.write(f"? {question} [y/N] ")
    stderr.flush()
    line = stdin.readline()
    if not line.endswith("\n"):
        stderr.write("\n")  # end of input: the answer did not end the line
    return line.strip().lower() in ("y", "yes")
