"""The cluster half of the preflight (`flux-azdo check --kubeconfig`, and the start of every bootstrap).

`flux bootstrap` finds most cluster problems after it has pushed to Git: a missing right fails the install, a
Kustomization that syncs another path fails the sync step (reference flux-bootstrap.md §2.7) with the components
commit already pushed, and an installation owned by Helm or the AKS extension is only noticed through an
interactive prompt (§2.1 step 5). Here every one of those is a read-only question asked before anything is written:

- `cluster`: the API server answers, and with which version;
- `kubernetes-version`: that version is one the Flux release supports (`flux check --pre`'s constraint);
- `cluster-rbac`: SelfSubjectAccessReviews for what bootstrap creates;
- `existing-flux`: a Flux that another tool manages (Helm, the AKS `microsoft.flux` extension) stops the run
  unless `--force`;
- `path-guard`: the existing Kustomization syncs the same path as the new one, normalised as Flux does.

Reads go straight to the object's URL (no discovery): a kind the cluster does not serve answers 404 like a missing
object, which is exactly "nothing there" for these questions.

Sources. The version table is `kubernetesConstraints` in fluxcd/flux2 cmd/flux/check.go at every v2.x.y tag; the
labels are those `getFluxClusterInfo` (cmd/flux/cluster_info.go) reads. The AKS extension's marks come from
Microsoft's "GitOps Flux v2" concept page (azure-arc/kubernetes/conceptual-gitops-flux2.md): it installs the
`fluxconfigs.clusterconfig.azure.com` CRD and the `fluxconfig-agent` and `fluxconfig-controller` Deployments, always
in `flux-system`. A `clusterconfig.azure.com` label or annotation on Flux's CRD is an unverified extra hint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes.client

from flux_azdo.azdo.preflight.report import CheckItem
from flux_azdo.cluster.client import Cluster, ClusterAccess, NotFound
from flux_azdo.errors import UserError

#: `flux check --pre`'s `kubernetesConstraints` (cmd/flux/check.go) at each minor's .0 tag of fluxcd/flux2; the
#: patch releases of a minor keep it. Every constraint is `>=<version>-0`, so pre-releases of that version count.
MIN_KUBERNETES: dict[tuple[int, int], tuple[int, int, int]] = {
    (2, 0): (1, 24, 0),
    (2, 1): (1, 25, 0),
    (2, 2): (1, 26, 0),
    (2, 3): (1, 28, 0),
    (2, 4): (1, 28, 0),
    (2, 5): (1, 30, 0),
    (2, 6): (1, 31, 0),
    (2, 7): (1, 32, 0),
    (2, 8): (1, 33, 0),
    (2, 9): (1, 33, 0),
}

FLUX_CRD = "gitrepositories.source.toolkit.fluxcd.io"
#: Installed by the AKS/Arc `microsoft.flux` extension with its fluxconfig-agent and fluxconfig-controller.
AKS_FLUXCONFIG_CRD = "fluxconfigs.clusterconfig.azure.com"
AKS_EXTENSION_NAMESPACE = "flux-system"
AKS_AGENTS = ("fluxconfig-agent", "fluxconfig-controller")
AKS_LABEL_MARK = "clusterconfig.azure.com"
MANAGED_BY = "app.kubernetes.io/managed-by"
VERSION_LABEL = "app.kubernetes.io/version"
PART_OF = "app.kubernetes.io/part-of"

#: The checks after `cluster`, skipped when the API server cannot be asked.
#: The checks that ask the cluster, by key, with the name a skipped one is listed under (so four skips never read
#: as one line repeated).
_UNASKED = {
    "kubernetes-version": "Kubernetes version",
    "cluster-rbac": "cluster rights (RBAC)",
    "existing-flux": "existing Flux",
    "path-guard": "Kustomization path",
}
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
_ADMIN_FIX = (
    "use a cluster-admin kubeconfig (for AKS: `az aks get-credentials --admin ...`, or a ClusterRoleBinding of "
    "the user to the cluster-admin ClusterRole)"
)
_AKS_REMOVE = (
    "remove the AKS GitOps extension first: delete its Flux configurations (`az k8s-configuration flux delete "
    "--resource-group <group> --cluster-name <cluster> --cluster-type managedClusters --name <configuration>`), "
    "then the extension (`az k8s-extension delete --resource-group <group> --cluster-name <cluster> --cluster-type "
    "managedClusters --name flux`); or pass --force to take the installation over"
)


@dataclass(frozen=True)
class ExistingFlux:
    """A Flux found on the cluster, read from the labels of its GitRepository CRD as `flux bootstrap` reads them."""

    #: `app.kubernetes.io/version` of the CRD (the Flux release), None when the label is missing.
    version: str | None
    #: `app.kubernetes.io/managed-by` of the CRD; Flux itself never sets it (Helm does: "Helm").
    managed_by: str | None
    #: The AKS/Arc `microsoft.flux` extension installed it (its FluxConfig CRD or agents are there).
    aks_extension: bool
    #: `app.kubernetes.io/part-of` ("flux" for upstream Flux; distributions put their name).
    part_of: str | None = None

    @property
    def managed_by_flux(self) -> bool:
        """Flux's own rule (installManagedByFlux): no managed-by label, or "flux"; and not the AKS extension."""
        return self.managed_by in (None, "", "flux") and not self.aks_extension

    @property
    def manager(self) -> str:
        if self.aks_extension:
            return "the AKS microsoft.flux extension"
        return self.managed_by or "flux"


def existing_flux(cluster: Cluster, namespace: str) -> ExistingFlux | None:
    """The Flux installed on the cluster, or None when its GitRepository CRD is absent.

    The AKS extension is recognised by a `clusterconfig.azure.com` label or annotation on that CRD (free, but
    unverified), else by its FluxConfig CRD, else by its agents' Deployments in flux-system (the extension always
    installs there) or in `namespace`.
    """
    crd = _read_crd(cluster, FLUX_CRD)
    if crd is None:
        return None
    metadata = crd.get("metadata") or {}
    labels: dict[str, str] = metadata.get("labels") or {}
    annotations: dict[str, str] = metadata.get("annotations") or {}
    return ExistingFlux(
        version=labels.get(VERSION_LABEL) or None,
        managed_by=labels.get(MANAGED_BY) or None,
        aks_extension=_aks_extension(cluster, namespace, [*labels, *annotations]),
        part_of=labels.get(PART_OF) or None,
    )


def _aks_extension(cluster: Cluster, namespace: str, crd_keys: list[str]) -> bool:
    """The extension's marks, cheapest first (the sources are in the module's docstring)."""
    if any(AKS_LABEL_MARK in key for key in crd_keys):
        return True
    if _read_crd(cluster, AKS_FLUXCONFIG_CRD) is not None:
        return True
    namespaces = dict.fromkeys((AKS_EXTENSION_NAMESPACE, namespace))
    return any(_read_deployment(cluster, where, agent) is not None for where in namespaces for agent in AKS_AGENTS)


def cluster_checks(
    cluster: Cluster, *, namespace: str, name: str, path: str, flux_version: str, force: bool
) -> list[CheckItem]:
    """Every cluster check, in the order the report lists them; only reads (access reviews store nothing)."""
    try:
        server_version = cluster.server_version()
    except UserError as error:
        return [CheckItem("cluster", "fail", error.message, fix=error.fix), *_skipped("the API server did not answer")]
    items = [CheckItem("cluster", "ok", f"the API server {cluster.server} answers: Kubernetes {server_version}")]
    items.append(kubernetes_version_check(server_version, flux_version))
    items.extend(_guarded("cluster-rbac", lambda: rbac_checks(cluster, namespace)))
    items.extend(_guarded("existing-flux", lambda: [existing_flux_check(cluster, namespace, flux_version, force)]))
    items.extend(_guarded("path-guard", lambda: [path_guard_check(cluster, namespace, name, path)]))
    return items


def _skipped(why: str) -> list[CheckItem]:
    """Each check that asks the cluster, skipped for `why`, named in its own line."""
    return [CheckItem(key, "skip", f"{title}: not checked: {why}") for key, title in _UNASKED.items()]


def _guarded(key: str, check: Callable[[], list[CheckItem]]) -> list[CheckItem]:
    """A check whose reads failed (403, network) is reported as a warning with the reason, not as a crash."""
    try:
        return check()
    except UserError as error:
        return [CheckItem(key, "warn", f"not checked: {error.message}", fix=error.fix)]


# ------------------------------------------------------------------------------------------------ version


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of "v1.32.4", "1.30.5-gke.1014001", "v1.29.2+k3s1"; None when it is not one."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


def minimum_kubernetes(flux_version: str) -> tuple[int, int, int] | None:
    parsed = parse_version(flux_version)
    return MIN_KUBERNETES.get(parsed[:2]) if parsed is not None else None


def kubernetes_version_check(server_version: str, flux_version: str) -> CheckItem:
    flux = _v(flux_version)
    server = parse_version(server_version)
    if server is None:
        return CheckItem(
            "kubernetes-version",
            "warn",
            f"the server version {server_version!r} cannot be compared with what Flux {flux} supports",
            fix="check the release notes of Flux for the supported Kubernetes versions",
        )
    minimum = minimum_kubernetes(flux_version)
    if minimum is None:
        newest = max(MIN_KUBERNETES)
        return CheckItem(
            "kubernetes-version",
            "warn",
            f"the minimum Kubernetes version of Flux {flux} is not known to flux-azdo "
            f"(Flux v{newest[0]}.{newest[1]} needs {_dotted(MIN_KUBERNETES[newest])} or later)",
            fix=f"check the release notes of Flux {flux} for the Kubernetes versions it supports",
        )
    if server >= minimum:
        return CheckItem(
            "kubernetes-version",
            "ok",
            f"Kubernetes {server_version} is supported by Flux {flux} (>= {_dotted(minimum)})",
        )
    supporting = [minor for minor, needed in MIN_KUBERNETES.items() if server >= needed]
    other = (
        f", or bootstrap Flux v{max(supporting)[0]}.{max(supporting)[1]} (--version), the newest release that "
        f"supports {_dotted(server[:2])}"
        if supporting
        else ""
    )
    return CheckItem(
        "kubernetes-version",
        "fail",
        f"Kubernetes {server_version} is older than Flux {flux} supports (>= {_dotted(minimum)})",
        fix=f"upgrade the cluster to Kubernetes {_dotted(minimum[:2])} or later{other}",
    )


def _v(version: str) -> str:
    """Both 2.9.4 and v2.9.4 as "v2.9.4"; anything that is not a version number as it was given."""
    text = version.strip()
    return "v" + text.removeprefix("v") if parse_version(text) is not None else text


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


# ------------------------------------------------------------------------------------------------ rights


@dataclass(frozen=True)
class _Right:
    verb: str
    group: str
    resource: str
    namespaced: bool = False
    name: str = ""

    def describe(self, namespace: str) -> str:
        where = f" in namespace {namespace}" if self.namespaced else ""
        group = f".{self.group}" if self.group else ""
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.resource}{group}{named}{where}"


#: What `flux bootstrap` creates: the CRDs, the cluster-wide RBAC of the controllers, the namespace, the secret.
REQUIRED_RIGHTS = (
    _Right("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    _Right("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    _Right("create", "", "namespaces"),
    _Right("create", "", "secrets", namespaced=True),
)
#: The controllers' ClusterRoleBinding grants cluster-admin; RBAC lets only a holder of every right (`*` on `*`)
#: or of `bind` on that ClusterRole create it.
_EVERYTHING = _Right("*", "*", "*")
_BIND_ADMIN = _Right("bind", "rbac.authorization.k8s.io", "clusterroles", name="cluster-admin")


def can(cluster: Cluster, right: _Right, namespace: str) -> bool:
    """Ask the API server with a SelfSubjectAccessReview (stores nothing)."""
    attributes: dict[str, str] = {"verb": right.verb, "group": right.group, "resource": right.resource}
    if right.namespaced:
        attributes["namespace"] = namespace
    if right.name:
        attributes["name"] = right.name
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    with cluster.errors(f"ask whether it may {right.describe(namespace)}"):
        response = kubernetes.client.AuthorizationV1Api(cluster.api_client).create_self_subject_access_review(
            body, _preload_content=False, _request_timeout=cluster.access.timeout
        )
    answer: dict[str, Any] = json.loads(response.data)
    return bool((answer.get("status") or {}).get("allowed"))


def rbac_checks(cluster: Cluster, namespace: str) -> list[CheckItem]:
    missing = [right for right in REQUIRED_RIGHTS if not can(cluster, right, namespace)]
    if missing:
        return [
            CheckItem(
                "cluster-rbac",
                "fail",
                f"the kubeconfig's user may not {right.describe(namespace)}, which bootstrap needs",
                fix=_ADMIN_FIX,
            )
            for right in missing
        ]
    if not (can(cluster, _EVERYTHING, namespace) or can(cluster, _BIND_ADMIN, namespace)):
        return [
            CheckItem(
                "cluster-rbac",
                "warn",
                "the kubeconfig's user may create the objects bootstrap creates but is not cluster-admin: the "
                "API server refuses a ClusterRoleBinding to cluster-admin (Flux's controllers get one) from a user "
                "who does not hold every right or `bind` on ClusterRole cluster-admin",
                fix=_ADMIN_FIX,
            )
        ]
    return [
        CheckItem(
            "cluster-rbac",
            "ok",
            "the kubeconfig's user may create CRDs, ClusterRoleBindings, namespaces and secrets in "
            f"{namespace} (cluster-admin)",
        )
    ]


# ------------------------------------------------------------------------------------------------ existing Flux


def existing_flux_check(cluster: Cluster, namespace: str, flux_version: str, force: bool) -> CheckItem:
    found = existing_flux(cluster, namespace)
    new = _v(flux_version)
    if found is None:
        return CheckItem("existing-flux", "ok", "Flux is not installed on this cluster")
    shown = _shown_version(found)
    if not found.managed_by_flux:
        where = (
            "by the AKS microsoft.flux extension (Azure manages it: fluxconfig-agent, FluxConfig CRD)"
            if found.aks_extension
            else f"with {found.managed_by}"
        )
        message = f"Flux {shown} has been installed on this cluster {where}"
        if force:
            return CheckItem(
                "existing-flux",
                "warn",
                f"{message}; --force: bootstrap will override the {found.manager} installation",
            )
        fix = (
            _AKS_REMOVE
            if found.aks_extension
            else f"uninstall the {found.managed_by} installation of Flux first, or pass --force to take it over"
        )
        return CheckItem("existing-flux", "fail", message, fix=fix)
    if found.version is None:
        return CheckItem("existing-flux", "ok", f"Flux {shown} is installed; bootstrap will take it over")
    installed, wanted = parse_version(found.version), parse_version(new)
    if installed is not None and wanted is not None and installed > wanted:
        return CheckItem(
            "existing-flux",
            "warn",
            f"Flux {shown} is installed; bootstrap would downgrade it to {new}",
            fix=f"pass --version {found.version} (or newer) to keep it",
        )
    if installed is not None and wanted is not None and installed < wanted:
        return CheckItem("existing-flux", "ok", f"Flux {shown} is installed; bootstrap will upgrade it to {new}")
    return CheckItem("existing-flux", "ok", f"Flux {shown} is installed; bootstrap will take it over")


def _shown_version(found: ExistingFlux) -> str:
    if found.version is None:
        return "(version unknown)"
    # Flux prints `<part-of>-<version>` for distributions other than upstream.
    if found.part_of and found.part_of != "flux":
        return f"{found.part_of}-{found.version}"
    return found.version


# ------------------------------------------------------------------------------------------------ path guard


def normalise_path(path: str) -> str:
    """Flux's normalisation (kustomizationPathDiffers): one leading "./", no trailing "/".

    Flux trims the "/" only from paths longer than two characters (to keep "./"), which also leaves "a/" as "./a/";
    trimming after the prefix keeps "./" whole without that quirk.
    """
    return "./" + path.removeprefix("./").removesuffix("/")


def path_guard_check(cluster: Cluster, namespace: str, name: str, path: str) -> CheckItem:
    kustomization = _read_kustomization(cluster, namespace, name)
    if kustomization is None:
        return CheckItem("path-guard", "ok", f"no Kustomization {namespace}/{name} yet")
    old = str((kustomization.get("spec") or {}).get("path") or "")
    if normalise_path(path) == normalise_path(old):
        return CheckItem("path-guard", "ok", f"Kustomization {namespace}/{name} already syncs {normalise_path(old)}")
    keep = old.removeprefix("./").rstrip("/")
    keep_flag = f"--path={keep}" if keep else "no --path (the repository root)"
    return CheckItem(
        "path-guard",
        "fail",
        # Flux's words (ReconcileSyncConfig), which its users search for; the fix names the object.
        f"sync path configuration ({_quoted(path)}) would overwrite path ({_quoted(old)}) of existing Kustomization",
        fix=f"bootstrap with {keep_flag}, or change the Kustomization's spec.path (or delete it: kubectl delete "
        f"kustomization -n {namespace} {name}) first",
    )


def _quoted(text: str) -> str:
    """Go's %q for ordinary text."""
    return json.dumps(text, ensure_ascii=False)


# ------------------------------------------------------------------------------------------------ reads


def _read(cluster: Cluster, doing: str, request: Callable[[], Any]) -> dict[str, Any] | None:
    try:
        with cluster.errors(doing):
            response = request()
    except NotFound:
        return None
    body: dict[str, Any] = json.loads(response.data)
    return body


def _read_crd(cluster: Cluster, name: str) -> dict[str, Any] | None:
    api = kubernetes.client.ApiextensionsV1Api(cluster.api_client)
    return _read(
        cluster,
        f"read CustomResourceDefinition {name}",
        lambda: api.read_custom_resource_definition(
            name, _preload_content=False, _request_timeout=cluster.access.timeout
        ),
    )


def _read_deployment(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    api = kubernetes.client.AppsV1Api(cluster.api_client)
    return _read(
        cluster,
        f"read Deployment {namespace}/{name}",
        lambda: api.read_namespaced_deployment(
            name, namespace, _preload_content=False, _request_timeout=cluster.access.timeout
        ),
    )


def _read_kustomization(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    api = kubernetes.client.CustomObjectsApi(cluster.api_client)
    return _read(
        cluster,
        f"read Kustomization {namespace}/{name}",
        lambda: api.get_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            namespace,
            "kustomizations",
            name,
            _preload_content=False,
            _request_timeout=cluster.access.timeout,
        ),
    )


# ----- the checks for one bootstrap target (`flux-azdo check` and the pipeline task's `check` share them) ----------


@dataclass(frozen=True)
class BootstrapTarget:
    """What a bootstrap to come would install and sync: the cluster is asked about exactly these.

    Build it with `bootstrap_target`, which checks the names before anything connects."""

    namespace: str
    name: str
    path: str
    flux_version: str


def bootstrap_target(namespace: str, name: str | None, path: str | None, flux_version: str | None) -> BootstrapTarget:
    """The target, validated as bootstrap validates it (the name defaults to the namespace, as Flux's does)."""
    from flux_azdo.manifests.flags import validate_namespace, validate_object_name
    from flux_azdo.manifests.paths import repository_path
    from flux_azdo.sources import DEFAULT_FLUX_VERSION

    validate_namespace(namespace)
    object_name = name or namespace
    validate_object_name(object_name, "--name")
    return BootstrapTarget(namespace, object_name, repository_path(path or ""), flux_version or DEFAULT_FLUX_VERSION)


def bootstrap_target_checks(
    access: Callable[[], ClusterAccess], target: BootstrapTarget, *, force: bool
) -> list[CheckItem]:
    """`cluster_checks` for `target`; a cluster that cannot even be described (`access` raises, or its kubeconfig
    does not load) is one failed item, and each check it would have run is listed as skipped."""
    try:
        cluster = Cluster(access())
    except UserError as error:
        return [CheckItem("cluster", "fail", error.message, fix=error.fix), *_skipped("no cluster to ask")]
    with cluster:
        return cluster_checks(
            cluster,
            namespace=target.namespace,
            name=target.name,
            path=target.path,
            flux_version=target.flux_version,
            force=force,
        )
