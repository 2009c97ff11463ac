"""The cluster preflight against the sandbox API server: reachability, version, rights, an existing Flux, the path."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from flux_azdo.azdo.preflight.report import CheckItem
from flux_azdo.cluster.apply import apply_objects, parse_objects
from flux_azdo.cluster.checks import (
    AKS_FLUXCONFIG_CRD,
    ExistingFlux,
    cluster_checks,
    existing_flux,
    kubernetes_version_check,
    normalise_path,
)
from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.manifests.distribution import Distribution
from flux_azdo.manifests.install import InstallOptions, generate_components
from flux_azdo.sandbox.kube import AccessRule, KubeApiServer
from flux_azdo.sandbox.runtime import Sandbox

NS = "flux-system"
KEYS = ["cluster", "kubernetes-version", "cluster-rbac", "existing-flux", "path-guard"]


@pytest.fixture
def kube(cluster_sandbox: Sandbox) -> KubeApiServer:
    assert cluster_sandbox.kube is not None
    return cluster_sandbox.kube


@pytest.fixture
def cluster(cluster_sandbox: Sandbox) -> Iterator[Cluster]:
    with Cluster(ClusterAccess(kubeconfig=cluster_sandbox.kubeconfig_path)) as connected:
        yield connected


def connect_as(kube: KubeApiServer, tmp_path: Path, name: str, rules: Sequence[AccessRule]) -> Cluster:
    path = tmp_path / f"{name}.kubeconfig"
    kube.write_kubeconfig(path, token=kube.add_user(name, rules))
    return Cluster(ClusterAccess(kubeconfig=path))


def install_flux_crds(cluster: Cluster, sample: Distribution, **labels: str) -> None:
    """The sample distribution's CRDs and namespace; `labels` go on the GitRepository CRD (managed_by=...)."""
    objects = [
        obj
        for obj in parse_objects(generate_components(sample, InstallOptions()))
        if obj["kind"] in ("CustomResourceDefinition", "Namespace")
    ]
    for obj in objects:
        if obj["metadata"]["name"] == "gitrepositories.source.toolkit.fluxcd.io":
            obj["metadata"]["labels"].update({f"app.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()})
    apply_objects(cluster, objects)


def fluxconfig_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": AKS_FLUXCONFIG_CRD},
        "spec": {
            "group": "clusterconfig.azure.com",
            "names": {
                "kind": "FluxConfig",
                "listKind": "FluxConfigList",
                "plural": "fluxconfigs",
                "singular": "fluxconfig",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def agent_deployment(name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/component": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"mcr.microsoft.com/azurearck8s/{name}:1.0.0"}]},
            },
        },
    }


def kustomization(path: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": NS, "namespace": NS},
        "spec": {
            "interval": "10m0s",
            "path": path,
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": NS},
        },
    }


def checks(
    cluster: Cluster, *, path: str = "clusters/prod", flux_version: str = "v2.7.0", force: bool = False
) -> dict[str, list[CheckItem]]:
    items = cluster_checks(cluster, namespace=NS, name=NS, path=path, flux_version=flux_version, force=force)
    by_key: dict[str, list[CheckItem]] = {}
    for item in items:
        by_key.setdefault(item.key, []).append(item)
    assert list(by_key) == KEYS
    return by_key


def only(items: list[CheckItem]) -> CheckItem:
    assert len(items) == 1, items
    return items[0]


# ------------------------------------------------------------------------------------------------ existing Flux


def test_no_flux_on_a_fresh_cluster(cluster: Cluster) -> None:
    assert existing_flux(cluster, NS) is None


def test_our_flux_is_found_with_its_version(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample)

    found = existing_flux(cluster, NS)

    assert found == ExistingFlux(version=sample.version, managed_by=None, aks_extension=False, part_of="flux")
    assert found.managed_by_flux


def test_flux_managed_by_helm_is_found(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample, managed_by="Helm", version="v2.3.0")

    found = existing_flux(cluster, NS)

    assert found is not None
    assert (found.managed_by, found.version, found.aks_extension) == ("Helm", "v2.3.0", False)
    assert not found.managed_by_flux


def test_aks_extension_is_found_by_its_fluxconfig_crd(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample)
    apply_objects(cluster, [fluxconfig_crd()])

    found = existing_flux(cluster, NS)

    assert found is not None and found.aks_extension
    assert not found.managed_by_flux


def test_aks_extension_is_found_by_its_agent(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample)
    apply_objects(cluster, [agent_deployment("fluxconfig-agent")])

    found = existing_flux(cluster, NS)

    assert found is not None and found.aks_extension


# ------------------------------------------------------------------------------------------------ cluster_checks


def test_admin_on_a_fresh_cluster_passes(cluster: Cluster) -> None:
    found = checks(cluster)

    assert all(only(items).status == "ok" for items in found.values()), found
    assert "Kubernetes v1.32.4" in only(found["cluster"]).message
    assert ">= 1.32.0" in only(found["kubernetes-version"]).message
    assert only(found["existing-flux"]).message == "Flux is not installed on this cluster"


def test_user_without_crd_rights_fails_naming_them(kube: KubeApiServer, tmp_path: Path) -> None:
    rules = [AccessRule(verbs=["*"], api_groups=["", "rbac.authorization.k8s.io", "apps"], resources=["*"])]
    with connect_as(kube, tmp_path, "no-crds", rules) as limited:
        found = checks(limited)

    rbac = only(found["cluster-rbac"])
    assert rbac.status == "fail"
    assert "may not create customresourcedefinitions.apiextensions.k8s.io" in rbac.message
    assert rbac.fix is not None and "cluster-admin" in rbac.fix and "--admin" in rbac.fix
    # It cannot read CRDs either: the existing-Flux check says it could not look instead of guessing.
    assert only(found["existing-flux"]).status == "warn"
    assert "not checked" in only(found["existing-flux"]).message


def test_each_missing_right_is_its_own_failure(kube: KubeApiServer, tmp_path: Path) -> None:
    rules = [AccessRule(verbs=["get", "list"])]
    with connect_as(kube, tmp_path, "reader", rules) as reader:
        found = checks(reader)

    messages = [item.message for item in found["cluster-rbac"]]
    assert [item.status for item in found["cluster-rbac"]] == ["fail"] * 4
    assert "create customresourcedefinitions.apiextensions.k8s.io" in messages[0]
    assert "create clusterrolebindings.rbac.authorization.k8s.io" in messages[1]
    assert "create namespaces" in messages[2]
    assert "create secrets in namespace flux-system" in messages[3]
    assert only(found["existing-flux"]).status == "ok"  # reading is allowed


def test_creator_who_is_not_cluster_admin_is_warned(kube: KubeApiServer, tmp_path: Path) -> None:
    rules = [
        AccessRule(
            verbs=["get", "list", "create"], api_groups=["", "apiextensions.k8s.io", "rbac.authorization.k8s.io"]
        )
    ]
    with connect_as(kube, tmp_path, "creator", rules) as creator:
        found = checks(creator)

    rbac = only(found["cluster-rbac"])
    assert rbac.status == "warn"
    assert "not cluster-admin" in rbac.message


def test_kubernetes_older_than_flux_supports_fails(tmp_path: Path) -> None:
    with KubeApiServer(version="v1.20.0") as old:
        path = tmp_path / "old.kubeconfig"
        old.write_kubeconfig(path)
        with Cluster(ClusterAccess(kubeconfig=path)) as cluster:
            found = checks(cluster, flux_version="v2.9.4")

    version = only(found["kubernetes-version"])
    assert version.status == "fail"
    assert version.message == "Kubernetes v1.20.0 is older than Flux v2.9.4 supports (>= 1.33.0)"
    assert version.fix == "upgrade the cluster to Kubernetes 1.33 or later"
    assert only(found["cluster"]).status == "ok"


def test_older_kubernetes_gets_the_newest_flux_that_supports_it() -> None:
    item = kubernetes_version_check("v1.30.2", "2.9.4")

    assert item.status == "fail"
    assert item.fix is not None and "Flux v2.5 (--version)" in item.fix and "supports 1.30" in item.fix


@pytest.mark.parametrize(
    ("server", "flux", "status"),
    [
        ("v1.33.0", "v2.9.4", "ok"),
        ("v1.33.0-rc.1", "v2.8.0", "ok"),  # Flux's constraint is >=1.33.0-0: pre-releases count
        ("v1.32.9-eks-1234", "v2.8.0", "fail"),
        ("v1.28.1+k3s1", "v2.4.0", "ok"),
        ("v1.27.9", "v2.4.0", "fail"),
        ("v1.34.1", "v0.0.0-sample", "warn"),  # no known minimum
        ("v1.34.1", "v2.10.0", "warn"),
        ("unknown", "v2.9.4", "warn"),
    ],
)
def test_version_table(server: str, flux: str, status: str) -> None:
    assert kubernetes_version_check(server, flux).status == status


def test_unreachable_cluster_fails_and_skips_the_rest(tmp_path: Path) -> None:
    gone = KubeApiServer()
    with gone:
        path = tmp_path / "gone.kubeconfig"
        gone.write_kubeconfig(path)
    with Cluster(ClusterAccess(kubeconfig=path, timeout=5)) as cluster:
        found = checks(cluster)

    assert only(found["cluster"]).status == "fail"
    assert only(found["cluster"]).fix
    assert [only(found[key]).status for key in KEYS[1:]] == ["skip"] * 4
    assert [only(found[key]).message for key in KEYS[1:]] == [
        f"{name}: not checked: the API server did not answer"
        for name in ("Kubernetes version", "cluster rights (RBAC)", "existing Flux", "Kustomization path")
    ]


def test_helm_managed_flux_stops_the_run_unless_forced(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample, managed_by="Helm", version="v2.3.0")

    refused = only(checks(cluster)["existing-flux"])
    forced = only(checks(cluster, force=True)["existing-flux"])

    assert refused.status == "fail"
    assert refused.message == "Flux v2.3.0 has been installed on this cluster with Helm"
    assert refused.fix is not None and "--force" in refused.fix
    assert forced.status == "warn"
    assert "--force" in forced.message


def test_aks_extension_stops_the_run_with_the_uninstall_command(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample)
    apply_objects(cluster, [fluxconfig_crd()])

    item = only(checks(cluster)["existing-flux"])

    assert item.status == "fail"
    assert "AKS microsoft.flux extension" in item.message
    assert item.fix is not None
    assert "az k8s-extension delete" in item.fix and "--name flux" in item.fix and "--force" in item.fix


def test_same_flux_version_is_taken_over(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample, version="v2.7.0")

    item = only(checks(cluster, flux_version="v2.7.0")["existing-flux"])

    assert item == CheckItem("existing-flux", "ok", "Flux v2.7.0 is installed; bootstrap will take it over")


def test_newer_installed_flux_warns_of_a_downgrade(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample, version="v2.9.4")

    item = only(checks(cluster, flux_version="v2.7.0")["existing-flux"])

    assert item.status == "warn"
    assert "downgrade" in item.message


# ------------------------------------------------------------------------------------------------ path guard


@pytest.mark.parametrize("path", ["clusters/prod", "./clusters/prod", "clusters/prod/", "./clusters/prod/"])
def test_same_path_passes_the_guard(cluster: Cluster, sample: Distribution, path: str) -> None:
    install_flux_crds(cluster, sample)
    apply_objects(cluster, [kustomization("./clusters/prod")])

    item = only(checks(cluster, path=path)["path-guard"])

    assert item.status == "ok"
    assert "already syncs ./clusters/prod" in item.message


def test_different_path_fails_with_fluxs_words(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample)
    apply_objects(cluster, [kustomization("./clusters/prod")])

    item = only(checks(cluster, path="clusters/staging")["path-guard"])

    assert item.status == "fail"
    assert item.message == (
        'sync path configuration ("clusters/staging") would overwrite path ("./clusters/prod") of existing Kustomization'
    )
    assert item.fix is not None
    assert "--path=clusters/prod" in item.fix and "kubectl delete kustomization -n flux-system flux-system" in item.fix


def test_path_guard_reads_the_live_object(cluster: Cluster, sample: Distribution) -> None:
    install_flux_crds(cluster, sample)
    apply_objects(cluster, [kustomization("./clusters/prod")])
    api = kubernetes.client.CustomObjectsApi(cluster.api_client)
    live = api.get_namespaced_custom_object("kustomize.toolkit.fluxcd.io", "v1", NS, "kustomizations", NS)
    changed = copy.deepcopy(live)
    changed["spec"]["path"] = "./clusters/staging"
    api.replace_namespaced_custom_object("kustomize.toolkit.fluxcd.io", "v1", NS, "kustomizations", NS, changed)

    assert only(checks(cluster, path="clusters/staging")["path-guard"]).status == "ok"
    assert only(checks(cluster, path="clusters/prod")["path-guard"]).status == "fail"


@pytest.mark.parametrize(
    ("given", "normal"),
    [("", "./"), ("./", "./"), ("clusters/a", "./clusters/a"), ("./clusters/a/", "./clusters/a"), ("a/", "./a")],
)
def test_normalise_path_like_flux(given: str, normal: str) -> None:
    assert normalise_path(given) == normal
