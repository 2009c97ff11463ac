"""Server-side apply with Flux's semantics, counted at the sandbox API server."""

from __future__ import annotations

import collections
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flux_azdo.cluster import Cluster, ClusterAccess
from flux_azdo.cluster.apply import ObjectChange, apply_objects, parse_objects
from flux_azdo.cluster.kustomize import build, find_kustomize
from flux_azdo.errors import UserError
from flux_azdo.manifests.distribution import Distribution
from flux_azdo.manifests.install import InstallOptions, generate_components
from flux_azdo.manifests.sync import SyncOptions, generate_sync
from flux_azdo.sandbox.kube import AccessRule, KubeApiServer
from flux_azdo.sandbox.kube.requestlog import RequestRecord
from flux_azdo.sandbox.runtime import Sandbox

#: Our client authenticates as this user, so the Flux simulator's own requests can be told apart.
USER = "flux-azdo-test"
DEFINITIONS = ("customresourcedefinitions", "namespaces")


@pytest.fixture
def kube(cluster_sandbox: Sandbox) -> KubeApiServer:
    assert cluster_sandbox.kube is not None
    return cluster_sandbox.kube


@pytest.fixture
def cluster(kube: KubeApiServer, tmp_path: Path) -> Iterator[Cluster]:
    path = tmp_path / "kubeconfig"
    kube.write_kubeconfig(path, token=kube.add_user(USER, [AccessRule(verbs=["*"])]))
    with Cluster(ClusterAccess(kubeconfig=path)) as connected:
        yield connected


@pytest.fixture(scope="module")
def components(sample: Distribution) -> list[dict[str, Any]]:
    return parse_objects(generate_components(sample, InstallOptions()))


def _ours(kube: KubeApiServer) -> list[RequestRecord]:
    return [r for r in kube.requests if r.user == USER]


def _writes(kube: KubeApiServer) -> list[RequestRecord]:
    return [r for r in _ours(kube) if r.is_write]


def _actions(changes: list[ObjectChange]) -> collections.Counter[str]:
    return collections.Counter(change.action for change in changes)


def _deployment(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


def test_first_apply_creates_everything_in_order(
    cluster: Cluster, kube: KubeApiServer, components: list[dict[str, Any]]
) -> None:
    changes = apply_objects(cluster, components)
    assert [(c.kind, c.name) for c in changes] == [(o["kind"], o["metadata"]["name"]) for o in components]
    assert _actions(changes) == {"created": len(components)}
    namespaced = {c.kind for c in changes if c.namespace}
    assert "Deployment" in namespaced and "CustomResourceDefinition" not in namespaced
    live = cluster.get("apps/v1", "Deployment", "source-controller", "flux-system")
    assert live is not None
    managers = {entry["manager"]: entry["operation"] for entry in live["metadata"]["managedFields"]}
    assert managers.get("flux") == "Apply"
    applies = [r for r in _writes(kube) if r.method == "PATCH"]
    assert applies and all(r.content_type == "application/apply-patch+yaml" for r in applies)


def test_second_apply_changes_nothing_and_writes_nothing(
    cluster: Cluster, kube: KubeApiServer, components: list[dict[str, Any]]
) -> None:
    apply_objects(cluster, components)
    kube.reset_requests()
    changes = apply_objects(cluster, components)
    assert _actions(changes) == {"unchanged": len(components)}
    assert _writes(kube) == []
    assert any(r.dry_run for r in _ours(kube)), "the comparison must come from a server-side dry run"


def test_changed_deployment_args_configure_only_that_object(
    cluster: Cluster, kube: KubeApiServer, components: list[dict[str, Any]]
) -> None:
    apply_objects(cluster, components)
    changed = copy.deepcopy(components)
    container = _deployment(changed, "kustomize-controller")["spec"]["template"]["spec"]["containers"][0]
    container["args"] = [*container["args"], "--concurrent=20"]
    kube.reset_requests()
    changes = apply_objects(cluster, changed)
    assert [(c.kind, c.name) for c in changes if c.action != "unchanged"] == [("Deployment", "kustomize-controller")]
    assert next(c for c in changes if c.ref == "Deployment/flux-system/kustomize-controller").action == "configured"
    assert [(r.resource, r.name) for r in _writes(kube)] == [("deployments", "kustomize-controller")]
    live = cluster.get("apps/v1", "Deployment", "kustomize-controller", "flux-system")
    assert live is not None and "--concurrent=20" in live["spec"]["template"]["spec"]["containers"][0]["args"]


def test_dry_run_makes_no_writes_on_an_empty_cluster(
    cluster: Cluster, kube: KubeApiServer, components: list[dict[str, Any]]
) -> None:
    sync = parse_objects(generate_sync(SyncOptions(url="https://dev.azure.com/org/project/_git/repo")))
    kube.reset_requests()
    changes = apply_objects(cluster, [*components, *sync], dry_run=True)
    assert _actions(changes) == {"created": len(components) + len(sync)}
    assert _writes(kube) == []
    assert cluster.get("v1", "Namespace", "flux-system") is None


def test_dry_run_reports_the_change_without_making_it(
    cluster: Cluster, kube: KubeApiServer, components: list[dict[str, Any]]
) -> None:
    apply_objects(cluster, components)
    changed = copy.deepcopy(components)
    _deployment(changed, "source-controller")["spec"]["replicas"] = 2
    kube.reset_requests()
    changes = apply_objects(cluster, changed, dry_run=True)
    assert [(c.name, c.action) for c in changes if c.action != "unchanged"] == [("source-controller", "configured")]
    assert _writes(kube) == []
    live = cluster.get("apps/v1", "Deployment", "source-controller", "flux-system")
    assert live is not None and live["spec"]["replicas"] == 1


def test_crds_are_established_before_stage_two(
    cluster: Cluster, kube: KubeApiServer, components: list[dict[str, Any]]
) -> None:
    """Custom resources applied in the same call as their CRDs: they are accepted only once the type is served."""
    sync = parse_objects(generate_sync(SyncOptions(url="https://dev.azure.com/org/project/_git/repo")))
    changes = apply_objects(cluster, [*components, *sync])
    assert {(c.kind, c.action) for c in changes if c.kind in ("GitRepository", "Kustomization")} == {
        ("GitRepository", "created"),
        ("Kustomization", "created"),
    }
    ours = _ours(kube)
    first_stage2 = next(i for i, r in enumerate(ours) if r.is_write and r.resource not in DEFINITIONS)
    crd_watches = [i for i, r in enumerate(ours) if r.verb == "watch" and r.resource == "customresourcedefinitions"]
    assert crd_watches and max(crd_watches) < first_stage2
    assert all(not (r.is_write and r.resource in DEFINITIONS) for r in ours[first_stage2:])
    assert cluster.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system") is not None


def test_namespaced_object_without_namespace_is_an_error(cluster: Cluster, kube: KubeApiServer) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "b"}}
    kube.reset_requests()
    with pytest.raises(UserError, match=r"ConfigMap settings \(v1\) has no metadata.namespace"):
        apply_objects(cluster, [config_map])
    assert _writes(kube) == []


def test_object_without_a_name_is_an_error(cluster: Cluster) -> None:
    with pytest.raises(UserError, match=r"ConfigMap \(object 2\) needs apiVersion, kind and metadata.name"):
        apply_objects(
            cluster,
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}},
            ],
        )


def test_invalid_object_names_it(cluster: Cluster) -> None:
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid", "namespace": "default"}}
    with pytest.raises(
        UserError, match=r"cannot dry-run apply ConfigMap default/Not_Valid: the API server answered 422"
    ):
        apply_objects(cluster, [bad])


def test_missing_namespace_is_an_error_with_a_fix(cluster: Cluster) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "nowhere"}}
    with pytest.raises(UserError, match=r"nowhere.*create the namespace nowhere first"):
        apply_objects(cluster, [config_map])


def test_user_patch_built_with_kustomize_takes_effect(
    cluster: Cluster, sample: Distribution, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = tmp_path / "clusters" / "flux-system"
    folder.mkdir(parents=True)
    (folder / "gotk-components.yaml").write_text(generate_components(sample, InstallOptions()), encoding="utf-8")
    (folder / "kustomization.yaml").write_text(
        """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- gotk-components.yaml
patches:
- patch: |
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: --concurrent=42
  target:
    kind: Deployment
    name: kustomize-controller
""",
        encoding="utf-8",
    )
    argv = find_kustomize()
    objects = parse_objects(build(argv, folder))
    changes = apply_objects(cluster, objects)
    assert {c.action for c in changes} == {"created"}
    live = cluster.get("apps/v1", "Deployment", "kustomize-controller", "flux-system")
    assert live is not None and "--concurrent=42" in live["spec"]["template"]["spec"]["containers"][0]["args"]
    other = cluster.get("apps/v1", "Deployment", "source-controller", "flux-system")
    assert other is not None and "--concurrent=42" not in other["spec"]["template"]["spec"]["containers"][0]["args"]


def test_parse_objects_skips_empty_documents_and_expands_lists() -> None:
    text = """---
# only a comment
---
apiVersion: v1
kind: Namespace
metadata:
  name: a
  annotations:
    when: 2024-01-01
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: b}
"""
    objects = parse_objects(text)
    assert [o["metadata"]["name"] for o in objects] == ["a", "b"]
    assert objects[0]["metadata"]["annotations"]["when"] == "2024-01-01"


def test_parse_objects_rejects_bad_yaml_and_scalars() -> None:
    with pytest.raises(UserError, match="not valid YAML"):
        parse_objects("a: [b\n")
    with pytest.raises(UserError, match="YAML document 2 is not a Kubernetes object"):
        parse_objects("a: b\n---\njust text\n")
