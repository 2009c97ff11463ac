"""The fake Kubernetes API server seen through the pinned kubernetes client (36.0.3) only."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from flux_azdo.sandbox.kube import AccessRule, KubeApiServer
from support.corpus import corpus_dir

CRD_GROUP = "example.fluxazdo.io"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@pytest.fixture(scope="module")
def server() -> Iterator[KubeApiServer]:
    # Deleted namespaces here need not wait the real controller's seconds; one test below checks that wait.
    with KubeApiServer(namespace_termination_delay=0.05) as running:
        yield running


def _client(server: KubeApiServer, directory: Path, token: str | None = None) -> client.ApiClient:
    path = directory / f"kubeconfig-{uuid.uuid4().hex[:8]}"
    server.write_kubeconfig(path, token=token)
    return config.new_client_from_config(config_file=str(path))


@pytest.fixture(scope="module")
def api(server: KubeApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.ApiClient]:
    with _client(server, tmp_path_factory.mktemp("kubeconfig")) as api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def _status(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def _raw(api: client.ApiClient, path: str) -> Any:
    return api.call_api(
        path, "GET", auth_settings=["BearerToken"], response_types_map={200: "object"}, _return_http_data_only=True
    )


def _only_cause(error: ApiException, message: str) -> dict[str, Any]:
    """Check that `error` is a 422 Invalid saying `message`, and return its one cause."""
    status = _status(error)
    assert (error.status, status["reason"], status["message"]) == (422, "Invalid", message)
    (cause,) = status["details"]["causes"]
    return dict(cause)


def _stream(api: client.ApiClient, path: str, **query: str) -> Any:
    """A raw streaming GET (a watch), so tests see the HTTP status and every line as sent."""
    return api.call_api(
        path, "GET", query_params=list(query.items()), auth_settings=["BearerToken"], _preload_content=False
    )


def _established(crd: Any) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _wait_established(api: client.ApiClient, name: str) -> dict[str, Any]:
    """Watch the CRD until the apiextensions controllers mark it Established (as `kubectl wait` does)."""
    extensions = client.ApiextensionsV1Api(api)
    selector = f"metadata.name={name}"
    for event in watch.Watch().stream(
        extensions.list_custom_resource_definition, field_selector=selector, timeout_seconds=10
    ):
        crd: dict[str, Any] = api.sanitize_for_serialization(event["object"])
        if _established(crd):
            return crd
    raise AssertionError(f"{name} never became Established")


def _create_crd(api: client.ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(body)
    return _wait_established(api, body["metadata"]["name"])


def _crd(plural: str, kind: str, *, scope: str = "Namespaced", versions: list[str] | None = None) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "pattern": "^(https|ssh)://"},
                    "interval": {"type": "string", "default": "1m0s"},
                    "provider": {"type": "string", "enum": ["generic", "azure"]},
                    "replicas": {"type": "integer", "minimum": 0},
                    "ref": {"type": "object", "properties": {"branch": {"type": "string"}}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "items": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                        },
                    },
                },
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    names = versions or ["v1"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": scope,
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "shortNames": [plural[:4]]},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": index == 0,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [{"name": "URL", "type": "string", "jsonPath": ".spec.url"}],
                }
                for index, version in enumerate(names)
            ],
        },
    }


@pytest.fixture(scope="module")
def widgets(api: client.ApiClient) -> str:
    """A namespaced CRD (`widgets`, served as v1 and v1beta1) for the custom-resource tests."""
    _create_crd(api, _crd("widgets", "Widget", versions=["v1", "v1beta1"]))
    return "widgets"


def _widget(name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Widget", "metadata": {"name": name, **metadata}, "spec": spec}


# ------------------------------------------------------------------------------------------------- discovery


def test_version_reports_every_field(tmp_path: Path) -> None:
    with KubeApiServer(tls=False, version="v1.30.7") as older, _client(older, tmp_path) as api_client:
        info = client.VersionApi(api_client).get_code()
    assert (info.major, info.minor, info.git_version) == ("1", "30", "v1.30.7")
    assert info.git_tree_state == "clean"
    assert (info.compiler, info.platform) == ("gc", "linux/amd64")
    assert re.fullmatch(r"[0-9a-f]{40}", info.git_commit)
    assert re.fullmatch(r"go1\.\d+\.\d+", info.go_version)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info.build_date)
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        KubeApiServer(tls=False, version="latest")


def test_discovery_answers_with_and_without_trailing_slash(api: client.ApiClient) -> None:
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {group.name for group in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "authorization.k8s.io"} <= groups
    assert {"networking.k8s.io", "coordination.k8s.io"} <= groups
    expected = {
        "/api": ("APIVersions", None),
        "/api/": ("APIVersions", None),
        "/apis": ("APIGroupList", None),
        "/apis/": ("APIGroupList", None),
        "/apis/apps": ("APIGroup", "apps"),
        "/apis/apps/": ("APIGroup", "apps"),
        "/apis/apps/v1": ("APIResourceList", "apps/v1"),
        "/apis/apps/v1/": ("APIResourceList", "apps/v1"),
        "/api/v1": ("APIResourceList", "v1"),
        "/api/v1/": ("APIResourceList", "v1"),
    }
    for path, (kind, identity) in expected.items():
        document = _raw(api, path)
        assert document["kind"] == kind, path
        if kind == "APIGroup":
            assert (document["name"], document["preferredVersion"]["groupVersion"]) == (identity, "apps/v1"), path
        if kind == "APIResourceList":
            assert document["groupVersion"] == identity, path
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core["namespaces"].namespaced is False
    assert core["namespaces"].short_names == ["ns"]
    assert core["pods"].categories == ["all"]
    assert set(core["pods/status"].verbs) == {"get", "patch", "update"}
    assert {"secrets", "configmaps", "serviceaccounts", "services", "events", "resourcequotas"} <= set(core)
    apps = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert apps["deployments"].kind == "Deployment"
    assert apps["deployments"].singular_name == "deployment"
    assert "deployments/status" in apps
    reviews = {r.name: r for r in client.AuthorizationV1Api(api).get_api_resources().resources}
    assert reviews["selfsubjectaccessreviews"].verbs == ["create"]


def test_dynamic_client_discovers_builtin_and_custom_kinds(api: client.ApiClient, widgets: str, tmp_path: Path) -> None:
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and deployments.name == "deployments"
    widget = dyn.resources.get(api_version=f"{CRD_GROUP}/v1", kind="Widget")
    assert widget.name == widgets and widget.short_names == ["widg"]


def test_aggregated_discovery_is_served_when_asked_for(api: client.ApiClient) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    response = api.call_api(
        "/apis", "GET", header_params={"Accept": accept}, auth_settings=["BearerToken"], _preload_content=False
    )
    assert response.headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    document = json.loads(response.data)
    assert (document["kind"], document["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    apps = next(item for item in document["items"] if item["metadata"]["name"] == "apps")
    deployments = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deployments["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deployments["scope"] == "Namespaced"
    assert {sub["subresource"] for sub in deployments["subresources"]} == {"status", "scale"}
    legacy = json.loads(
        api.call_api(
            "/apis",
            "GET",
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
        ).data
    )
    assert legacy["kind"] == "APIGroupList"


def test_unknown_path_is_a_not_found_status(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        _raw(api, "/apis/nothing.example.com/v1/things")
    assert caught.value.status == 404
    assert _status(caught.value)["message"] == "the server could not find the requested resource"


def test_requests_without_a_valid_token_are_unauthorized(server: KubeApiServer, tmp_path: Path) -> None:
    with _client(server, tmp_path, token="not-a-token") as bad, pytest.raises(ApiException) as caught:
        client.CoreV1Api(bad).list_namespace()
    assert caught.value.status == 401
    assert _status(caught.value) | {"metadata": {}} == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


# ------------------------------------------------------------------------------------------- CRUD and errors


def test_fresh_cluster_has_the_system_namespaces(api: client.ApiClient) -> None:
    names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
    assert {"default", "kube-system", "kube-public"} <= names


def test_create_returns_201_with_server_fields_and_duplicates_conflict(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    name = f"n-{uuid.uuid4().hex[:6]}"
    created, code, _ = core.create_namespace_with_http_info({"metadata": {"name": name}})
    assert code == 201
    assert created.status.phase == "Active"
    assert uuid.UUID(created.metadata.uid)
    assert int(created.metadata.resource_version) > 0
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.labels == {"kubernetes.io/metadata.name": name}
    with pytest.raises(ApiException) as caught:
        core.create_namespace({"metadata": {"name": name}})
    status = _status(caught.value)
    assert (caught.value.status, status["reason"]) == (409, "AlreadyExists")
    assert status["message"] == f'namespaces "{name}" already exists'
    assert status["details"] == {"name": name, "kind": "namespaces"}


def test_missing_objects_and_namespaces_are_not_found(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as caught:
        core.read_namespace("nope")
    assert _status(caught.value)["message"] == 'namespaces "nope" not found'
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(api).read_namespaced_deployment("y", "default")
    assert _status(caught.value)["message"] == 'deployments.apps "y" not found'
    assert _status(caught.value)["details"] == {"name": "y", "group": "apps", "kind": "deployments"}
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("missing", {"metadata": {"name": "s"}})
    assert caught.value.status == 404
    assert _status(caught.value)["message"] == 'namespaces "missing" not found'


def test_invalid_names_are_rejected_with_the_real_text(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "Bad_Name"}})
    status = _status(caught.value)
    assert (caught.value.status, status["reason"]) == (422, "Invalid")
    assert status["message"].startswith('Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ')
    assert "a lowercase RFC 1123 label must consist of" in status["message"]
    assert status["details"]["causes"][0]["field"] == "metadata.name"


def test_secret_string_data_becomes_base64_data(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    body = {"metadata": {"name": "auth"}, "data": {"a": base64.b64encode(b"1").decode()}, "stringData": {"b": "two"}}
    secret = core.create_namespaced_secret(namespace, body)
    assert secret.type == "Opaque"
    assert secret.string_data is None
    assert {key: base64.b64decode(value) for key, value in secret.data.items()} == {"a": b"1", "b": b"two"}


def test_deployments_get_defaults_and_generation_follows_the_spec(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
            },
        },
    }
    created = apps.create_namespaced_deployment(namespace, body)
    spec = created.spec
    assert (spec.replicas, spec.revision_history_limit, spec.progress_deadline_seconds) == (1, 10, 600)
    assert spec.strategy.type == "RollingUpdate"
    assert (spec.strategy.rolling_update.max_surge, spec.strategy.rolling_update.max_unavailable) == ("25%", "25%")
    container = spec.template.spec.containers[0]
    assert (container.image_pull_policy, container.ports[0].protocol) == ("IfNotPresent", "TCP")
    assert spec.template.spec.restart_policy == "Always"
    assert created.metadata.generation == 1
    merge = "application/merge-patch+json"
    labelled = apps.patch_namespaced_deployment(
        "web", namespace, {"metadata": {"labels": {"x": "y"}}}, _content_type=merge
    )
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}}, _content_type=merge)
    assert (scaled.metadata.generation, scaled.spec.replicas) == (2, 3)
    assert int(scaled.metadata.resource_version) > int(labelled.metadata.resource_version)


def test_replace_with_a_stale_resource_version_conflicts(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    first = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    first.data = {"a": "2"}
    second = core.replace_namespaced_config_map("cm", namespace, first)
    assert second.data == {"a": "2"}
    first.data = {"a": "3"}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("cm", namespace, first)
    status = _status(caught.value)
    assert (caught.value.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == (
        'Operation cannot be fulfilled on configmaps "cm": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert core.read_namespaced_config_map("cm", namespace).data == {"a": "2"}


def test_an_unchanged_write_keeps_the_resource_version(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "same"}, "data": {"a": "1"}})
    again = core.patch_namespaced_config_map(
        "same", namespace, {"data": {"a": "1"}}, _content_type="application/merge-patch+json"
    )
    assert again.metadata.resource_version == created.metadata.resource_version


def test_status_subresource_is_separate_from_the_main_endpoint(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "metadata": {"name": "st"},
        "spec": {
            "selector": {"matchLabels": {"app": "st"}},
            "template": {"metadata": {"labels": {"app": "st"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}},
        },
        "status": {"readyReplicas": 5},
    }
    created = apps.create_namespaced_deployment(namespace, body)
    assert created.status.ready_replicas is None
    merge = "application/merge-patch+json"
    main = apps.patch_namespaced_deployment("st", namespace, {"status": {"readyReplicas": 1}}, _content_type=merge)
    assert main.status.ready_replicas is None
    patch = {"status": {"readyReplicas": 1, "availableReplicas": 1}, "spec": {"replicas": 7}}
    status = apps.patch_namespaced_deployment_status("st", namespace, patch, _content_type=merge)
    assert (status.status.ready_replicas, status.status.available_replicas) == (1, 1)
    assert status.spec.replicas == 1
    assert status.metadata.generation == 1


def test_delete_answers_status_for_builtins_and_waits_for_finalizers(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "plain"}})
    raw = core.delete_namespaced_config_map("plain", namespace, _preload_content=False)
    assert json.loads(raw.data)["status"] == "Success"
    held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    core.create_namespaced_config_map(namespace, held)
    core.delete_namespaced_config_map("held", namespace, propagation_policy="Foreground")
    pending = core.read_namespaced_config_map("held", namespace)
    assert pending.metadata.deletion_timestamp is not None
    assert "example.com/hold" in pending.metadata.finalizers
    core.patch_namespaced_config_map(
        "held",
        namespace,
        [{"op": "replace", "path": "/metadata/finalizers", "value": []}],
        _content_type="application/json-patch+json",
    )
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("held", namespace)
    assert caught.value.status == 404


def test_secret_type_is_immutable(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "key"}, "type": "kubernetes.io/ssh-auth", "stringData": {"ssh-privatekey": "x"}},
    )
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret("key", namespace, {"type": "Opaque"}, _content_type="application/merge-patch+json")
    assert (
        _status(caught.value)["message"] == 'Secret "key" is invalid: type: Invalid value: "Opaque": field is immutable'
    )


def test_dependents_follow_their_owner(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)

    def owned_by(owner: str, name: str) -> None:
        uid = core.read_namespaced_config_map(owner, namespace).metadata.uid
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid}
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "ownerReferences": [ref]}})

    core.create_namespaced_config_map(namespace, {"metadata": {"name": "parent"}})
    owned_by("parent", "child")
    core.delete_namespaced_config_map("parent", namespace)
    _wait_for(lambda: _gone(lambda: core.read_namespaced_config_map("child", namespace)))
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "keeper"}})
    owned_by("keeper", "orphan")
    core.delete_namespaced_config_map("keeper", namespace, propagation_policy="Orphan")
    _wait_for(lambda: _gone(lambda: core.read_namespaced_config_map("keeper", namespace)))
    assert core.read_namespaced_config_map("orphan", namespace).metadata.owner_references is None


def test_services_get_a_cluster_ip(api: client.ApiClient, namespace: str) -> None:
    body = {"metadata": {"name": "svc"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
    service = client.CoreV1Api(api).create_namespaced_service(namespace, body)
    assert service.spec.cluster_ip.startswith("10.9")
    assert service.spec.cluster_ips == [service.spec.cluster_ip]
    assert (service.spec.type, service.spec.ports[0].target_port, service.spec.ports[0].protocol) == (
        "ClusterIP",
        80,
        "TCP",
    )


def test_events_are_creatable_and_selectable(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for name, target in (("e1", "pod-a"), ("e2", "pod-b")):
        event = {
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": target, "namespace": namespace},
            "reason": "Pulling",
            "message": "pulling image",
            "type": "Normal",
        }
        core.create_namespaced_event(namespace, event)
    found = core.list_namespaced_event(namespace, field_selector="involvedObject.name=pod-b")
    assert [event.metadata.name for event in found.items] == ["e2"]


# -------------------------------------------------------------------------------------------------- patches


def test_json_patch_applies_and_a_failed_test_is_invalid(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "jp"}, "data": {"a": "1"}})
    ops = [{"op": "test", "path": "/data/a", "value": "1"}, {"op": "add", "path": "/data/b", "value": "2"}]
    patched = core.patch_namespaced_config_map("jp", namespace, ops)
    assert patched.data == {"a": "1", "b": "2"}
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("jp", namespace, [{"op": "test", "path": "/data/a", "value": "9"}])
    assert (caught.value.status, _status(caught.value)["reason"]) == (422, "Invalid")


def test_strategic_merge_patch_merges_containers_by_name(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    containers = [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "image": "b:1"}]
    body = {
        "metadata": {"name": "smp"},
        "spec": {
            "selector": {"matchLabels": {"app": "smp"}},
            "template": {"metadata": {"labels": {"app": "smp"}}, "spec": {"containers": containers}},
        },
    }
    apps.create_namespaced_deployment(namespace, body)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}}}
    patched = apps.patch_namespaced_deployment(
        "smp", namespace, patch, _content_type="application/strategic-merge-patch+json"
    )
    result = {c.name: c for c in patched.spec.template.spec.containers}
    assert set(result) == {"a", "b"}
    assert [(e.name, e.value) for e in result["a"].env] == [("X", "1"), ("Y", "2")]
    assert result["a"].image == "a:1"


def test_unsupported_patch_types_are_rejected(api: client.ApiClient, namespace: str, widgets: str) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, widgets, _widget("w", {"url": "https://x"}))
    with pytest.raises(ApiException) as caught:
        api.call_api(
            f"/apis/{CRD_GROUP}/v1/namespaces/{namespace}/{widgets}/w",
            "PATCH",
            header_params={"Content-Type": "application/strategic-merge-patch+json"},
            body={"spec": {"url": "https://y"}},
            auth_settings=["BearerToken"],
            response_types_map={200: "object"},
        )
    assert caught.value.status == 415
    assert _status(caught.value)["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


# ------------------------------------------------------------------------------------------- server-side apply


def _config_map(namespace: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "owned", "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def test_server_side_apply_tracks_owners_conflicts_and_prunes(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    maps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    first = dyn.server_side_apply(maps, _config_map(namespace, {"a": "1", "b": "2"}), field_manager="alpha")
    entries = first.to_dict()["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"]) for e in entries] == [("alpha", "Apply")]
    assert entries[0]["fieldsType"] == "FieldsV1"
    assert entries[0]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}

    with pytest.raises(ApiException) as caught:
        dyn.server_side_apply(maps, _config_map(namespace, {"a": "9"}), field_manager="beta")
    status = _status(caught.value)
    assert (caught.value.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "alpha": .data.a'
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alpha"', "field": ".data.a"}
    ]

    forced = dyn.server_side_apply(maps, _config_map(namespace, {"a": "9"}), field_manager="beta", force_conflicts=True)
    owners = {e["manager"]: e["fieldsV1"] for e in forced.to_dict()["metadata"]["managedFields"]}
    assert owners == {"alpha": {"f:data": {"f:b": {}}}, "beta": {"f:data": {"f:a": {}}}}
    assert forced.data.to_dict() == {"a": "9", "b": "2"}

    # alpha stops applying b, which it alone owns: the field goes away.
    pruned = dyn.server_side_apply(maps, _config_map(namespace, {}, labels={"l": "v"}), field_manager="alpha")
    assert pruned.data.to_dict() == {"a": "9"}
    assert pruned.metadata.labels.to_dict() == {"l": "v"}


def test_apply_drops_list_items_it_no_longer_sends_and_conflicts_with_updaters(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")

    def manifest(*containers: str, replicas: int | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "selector": {"matchLabels": {"app": "ssa"}},
            "template": {
                "metadata": {"labels": {"app": "ssa"}},
                "spec": {"containers": [{"name": name, "image": f"{name}:1"} for name in containers]},
            },
        }
        if replicas is not None:
            spec["replicas"] = replicas
        metadata = {"name": "ssa", "namespace": namespace}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}

    dyn.server_side_apply(deployments, manifest("a", "b"), field_manager="ops")
    trimmed = dyn.server_side_apply(deployments, manifest("a"), field_manager="ops")
    assert [container.name for container in trimmed.spec.template.spec.containers] == ["a"]
    client.AppsV1Api(api).patch_namespaced_deployment(
        "ssa", namespace, {"spec": {"replicas": 4}}, field_manager="hpa", _content_type="application/merge-patch+json"
    )
    with pytest.raises(ApiException) as caught:
        dyn.server_side_apply(deployments, manifest("a", replicas=2), field_manager="ops")
    assert _status(caught.value)["message"] == (
        'Apply failed with 1 conflict: conflict with "hpa" using apps/v1: .spec.replicas'
    )
    shared = dyn.server_side_apply(deployments, manifest("a", replicas=4), field_manager="ops")
    owners = {e["manager"]: e["fieldsV1"] for e in shared.to_dict()["metadata"]["managedFields"]}
    assert "f:replicas" in owners["ops"]["f:spec"] and "f:replicas" in owners["hpa"]["f:spec"]


def test_server_side_apply_creates_and_honours_dry_run(api: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    maps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    dry = dyn.server_side_apply(maps, _config_map(namespace, {"a": "1"}), field_manager="m", dry_run="All")
    assert dry.data.to_dict() == {"a": "1"}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).read_namespaced_config_map("owned", namespace)
    assert caught.value.status == 404
    created = dyn.server_side_apply(maps, _config_map(namespace, {"a": "1"}), field_manager="m")
    again = dyn.server_side_apply(maps, _config_map(namespace, {"a": "1"}), field_manager="m")
    assert again.metadata.resourceVersion == created.metadata.resourceVersion


def test_apply_requires_a_field_manager(api: client.ApiClient, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).patch_namespaced_config_map(
            "x", namespace, _config_map(namespace, {}), _content_type="application/apply-patch+yaml"
        )
    assert caught.value.status == 422
    assert "fieldManager: Required value" in _status(caught.value)["message"]


def test_updates_are_recorded_per_manager(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "metadata": {"name": "mf"},
        "spec": {
            "selector": {"matchLabels": {"app": "mf"}},
            "template": {"metadata": {"labels": {"app": "mf"}}, "spec": {"containers": [{"name": "c", "image": "c"}]}},
        },
    }
    apps.create_namespaced_deployment(namespace, body, field_manager="creator")
    merge = "application/merge-patch+json"
    apps.patch_namespaced_deployment(
        "mf", namespace, {"spec": {"replicas": 2}}, field_manager="scaler", _content_type=merge
    )
    entries = apps.read_namespaced_deployment("mf", namespace).metadata.managed_fields
    owners = {entry.manager: entry for entry in entries}
    assert set(owners) == {"creator", "scaler"}
    assert owners["scaler"].fields_v1 == {"f:spec": {"f:replicas": {}}}
    assert owners["creator"].operation == "Update"
    container = owners["creator"].fields_v1["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert set(container['k:{"name":"c"}']) >= {".", "f:image", "f:name"}
    assert "f:replicas" not in owners["creator"].fields_v1["f:spec"]


# ---------------------------------------------------------------------------------------------- custom kinds


def test_crd_becomes_established_and_serves_its_kind(api: client.ApiClient, widgets: str) -> None:
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(f"{widgets}.{CRD_GROUP}")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd.status.accepted_names.kind == "Widget"
    assert crd.status.stored_versions == ["v1"]
    group = _raw(api, f"/apis/{CRD_GROUP}")
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    resources = _raw(api, f"/apis/{CRD_GROUP}/v1")["resources"]
    assert {r["name"] for r in resources} == {"widgets", "widgets/status"}


def test_custom_objects_are_defaulted_pruned_and_served_in_every_version(
    api: client.ApiClient, namespace: str, widgets: str
) -> None:
    custom = client.CustomObjectsApi(api)
    body = _widget("w1", {"url": "https://example.com", "unknown": 1, "extra": {"kept": {"deep": True}}})
    body["status"] = {"ignored": True}
    created = custom.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, widgets, body)
    assert created["spec"] == {"url": "https://example.com", "interval": "1m0s", "extra": {"kept": {"deep": True}}}
    assert "status" not in created
    assert created["metadata"]["generation"] == 1
    other = custom.get_namespaced_custom_object(CRD_GROUP, "v1beta1", namespace, widgets, "w1")
    assert other["apiVersion"] == f"{CRD_GROUP}/v1beta1"
    listed = custom.list_namespaced_custom_object(CRD_GROUP, "v1", namespace, widgets)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["w1"]
    assert listed["items"][0]["kind"] == "Widget"


def test_custom_objects_are_validated_against_the_schema(api: client.ApiClient, namespace: str, widgets: str) -> None:
    spec = {"interval": 5, "provider": "aws", "replicas": -1, "items": [{"value": "x"}], "ref": {"branch": "main"}}
    body = _widget("bad", spec)
    with pytest.raises(ApiException) as caught:
        client.CustomObjectsApi(api).create_namespaced_custom_object(CRD_GROUP, "v1", namespace, widgets, body)
    status = _status(caught.value)
    assert (caught.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["kind"] == "Widget" and status["details"]["group"] == CRD_GROUP
    causes = {(c["field"], c["reason"]): c["message"] for c in status["details"]["causes"]}
    assert causes[("spec.url", "FieldValueRequired")] == "Required value"
    assert causes[("spec.interval", "FieldValueTypeInvalid")] == (
        'Invalid value: "integer": spec.interval in body must be of type string: "integer"'
    )
    assert causes[("spec.provider", "FieldValueNotSupported")] == (
        'Unsupported value: "aws": supported values: "generic", "azure"'
    )
    assert causes[("spec.replicas", "FieldValueInvalid")] == (
        "Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
    )
    assert ("spec.items[0].name", "FieldValueRequired") in causes
    assert status["message"].startswith(f'Widget.{CRD_GROUP} "bad" is invalid: [')
    pattern = dict(body, spec={"url": "ftp://x"})
    with pytest.raises(ApiException) as caught:
        client.CustomObjectsApi(api).create_namespaced_custom_object(CRD_GROUP, "v1", namespace, widgets, pattern)
    assert _status(caught.value)["message"] == (
        f'Widget.{CRD_GROUP} "bad" is invalid: spec.url: Invalid value: "ftp://x": '
        "spec.url in body should match '^(https|ssh)://'"
    )


def test_unknown_custom_fields_warn_by_default_and_fail_when_strict(
    api: client.ApiClient, namespace: str, widgets: str
) -> None:
    custom = client.CustomObjectsApi(api)
    body = _widget("u", {"url": "ssh://x", "colour": "red"})
    created, _, headers = custom.create_namespaced_custom_object_with_http_info(
        CRD_GROUP, "v1", namespace, widgets, body
    )
    assert "colour" not in created["spec"]
    assert headers["Warning"] == '299 - "unknown field \\"spec.colour\\""'
    strict = dict(body, metadata={"name": "strict"})
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, widgets, strict, field_validation="Strict")
    assert (caught.value.status, _status(caught.value)["message"]) == (
        400,
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.colour"',
    )


def test_custom_object_status_and_generation(api: client.ApiClient, namespace: str, widgets: str) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, widgets, _widget("g", {"url": "ssh://x"}))
    status = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    with_status = custom.patch_namespaced_custom_object_status(CRD_GROUP, "v1", namespace, widgets, "g", status)
    assert with_status["status"]["conditions"][0]["type"] == "Ready"
    assert with_status["metadata"]["generation"] == 1
    spec = custom.patch_namespaced_custom_object(CRD_GROUP, "v1", namespace, widgets, "g", {"spec": {"url": "ssh://y"}})
    assert spec["metadata"]["generation"] == 2
    assert spec["status"]["conditions"][0]["status"] == "True"


def test_cluster_scoped_crd_and_deleting_a_crd_deletes_its_objects(api: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    _create_crd(api, _crd("gadgets", "Gadget", scope="Cluster"))
    body = {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Gadget", "metadata": {"name": "one"}, "spec": {"url": "ssh://x"}}
    created = custom.create_cluster_custom_object(CRD_GROUP, "v1", "gadgets", body)
    assert "namespace" not in created["metadata"]
    extensions.delete_custom_resource_definition(f"gadgets.{CRD_GROUP}")
    with pytest.raises(ApiException) as caught:
        for _ in range(200):
            custom.get_cluster_custom_object(CRD_GROUP, "v1", "gadgets", "one")
            threading.Event().wait(0.01)
    assert caught.value.status == 404
    names = [crd.metadata.name for crd in extensions.list_custom_resource_definition().items]
    assert f"gadgets.{CRD_GROUP}" not in names


# -------------------------------------------------------------------------------------------------- namespaces


def test_a_namespace_with_content_terminates_then_disappears(api: client.ApiClient, widgets: str) -> None:
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    name = f"term-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    body = _widget("held", {"url": "ssh://x"}, finalizers=["example.com/cleanup"])
    custom.create_namespaced_custom_object(CRD_GROUP, "v1", name, widgets, body)
    core.create_namespaced_config_map(name, {"metadata": {"name": "plain"}})
    deleted = core.delete_namespace(name, _preload_content=False)
    assert json.loads(deleted.data)["status"]["phase"] == "Terminating"
    terminating = core.read_namespace(name)
    assert terminating.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret(name, {"metadata": {"name": "late"}})
    status = _status(caught.value)
    assert (caught.value.status, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        f'secrets "late" is forbidden: unable to create new content in namespace {name} because it is being terminated'
    )
    assert status["details"] == {
        "name": "late",
        "kind": "secrets",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": f"namespace {name} is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }
    conditions = _wait_for(lambda: {c.type: c for c in core.read_namespace(name).status.conditions or []})
    assert "Some resources are remaining" in conditions["NamespaceContentRemaining"].message
    assert conditions["NamespaceFinalizersRemaining"].status == "True"
    custom.patch_namespaced_custom_object(CRD_GROUP, "v1", name, widgets, "held", {"metadata": {"finalizers": None}})
    _wait_for(lambda: _gone(lambda: core.read_namespace(name)))


def test_a_deleted_namespace_keeps_its_content_until_the_controller_gets_to_it(tmp_path: Path) -> None:
    slow = KubeApiServer(tls=False, namespace_termination_delay=3600)
    with slow, _client(slow, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        core.create_namespace({"metadata": {"name": "leaving"}})
        core.create_namespaced_config_map("leaving", {"metadata": {"name": "kept"}})
        core.delete_namespace("leaving")
        conditions = _wait_for(lambda: {c.type: c for c in core.read_namespace("leaving").status.conditions or []})
        namespace = core.read_namespace("leaving")
        assert (namespace.status.phase, namespace.metadata.deletion_timestamp is not None) == ("Terminating", True)
        remaining = conditions["NamespaceContentRemaining"]
        assert (remaining.status, remaining.reason) == ("True", "SomeResourcesRemain")
        assert "configmaps has 1 resource instances" in remaining.message
        assert core.read_namespaced_config_map("kept", "leaving").metadata.deletion_timestamp is None
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_config_map("leaving", {"metadata": {"name": "late"}})
        assert (caught.value.status, _status(caught.value)["details"]["causes"][0]["reason"]) == (
            403,
            "NamespaceTerminating",
        )
        core.create_namespace({"metadata": {"name": "hollow"}})
        _wait_for(lambda: core.list_namespaced_service_account("hollow").items)
        core.delete_namespaced_service_account("default", "hollow")
        core.delete_namespace("hollow")
        emptied = _wait_for(lambda: {c.type: c for c in core.read_namespace("hollow").status.conditions or []})
        content = emptied["NamespaceContentRemaining"]
        assert (content.status, content.reason, content.message) == (
            "False",
            "ContentRemoved",
            "All content successfully removed",
        )
        assert core.read_namespace("hollow").status.phase == "Terminating"


def _gone(read: Any) -> bool:
    try:
        read()
    except ApiException as error:
        return error.status == 404
    return False


def _wait_for(probe: Any, attempts: int = 300) -> Any:
    for _ in range(attempts):
        result = probe()
        if result:
            return result
        threading.Event().wait(0.01)
    raise AssertionError("condition never became true")


# ------------------------------------------------------------------------------------------------------ watch


def test_watch_streams_existing_and_later_events(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    watcher = watch.Watch()
    seen: list[tuple[str, str]] = []

    def writer() -> None:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "after"}})
        core.patch_namespaced_config_map(
            "after", namespace, {"data": {"k": "v"}}, _content_type="application/merge-patch+json"
        )
        core.delete_namespaced_config_map("after", namespace)

    thread = threading.Thread(target=writer)
    for event in watcher.stream(core.list_namespaced_config_map, namespace, timeout_seconds=5):
        name = event["object"].metadata.name
        if name not in ("before", "after"):
            continue  # kube-root-ca.crt, published into every namespace
        seen.append((event["type"], name))
        if name == "before":
            thread.start()
        if event["type"] == "DELETED":
            watcher.stop()
    thread.join()
    assert seen == [("ADDED", "before"), ("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


def test_watch_from_a_resource_version_replays_only_later_events(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "old"}})
    listed = core.list_namespaced_config_map(namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "new"}})
    watcher = watch.Watch()
    stream = watcher.stream(
        core.list_namespaced_config_map, namespace, resource_version=listed.metadata.resource_version, timeout_seconds=5
    )
    first = next(stream)
    watcher.stop()
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "new")


def test_watch_with_a_label_selector_sees_objects_leave_it(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "sel", "labels": {"tier": "web"}}})
    listed = core.list_namespaced_config_map(namespace, label_selector="tier=web")
    core.patch_namespaced_config_map(
        "sel", namespace, {"metadata": {"labels": {"tier": "db"}}}, _content_type="application/merge-patch+json"
    )
    watcher = watch.Watch()
    stream = watcher.stream(
        core.list_namespaced_config_map,
        namespace,
        label_selector="tier=web",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    )
    first = next(stream)
    watcher.stop()
    assert (first["type"], first["object"].metadata.labels) == ("DELETED", {"tier": "db"})


def test_watch_from_a_compacted_resource_version_is_expired(tmp_path: Path) -> None:
    with KubeApiServer(tls=False, history=5) as small, _client(small, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        start = core.list_namespaced_config_map("default").metadata.resource_version
        for index in range(10):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{index}"}})
        with pytest.raises(ApiException) as caught:
            list(
                watch.Watch().stream(
                    core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
                )
            )
    assert caught.value.status == 410
    assert "Expired: too old resource version" in str(caught.value.reason)


# -------------------------------------------------------------------------------------------------- selectors


def test_label_and_field_selectors(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for name, labels in (("a", {"env": "prod", "tier": "web"}), ("b", {"env": "dev"}), ("c", {})):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})

    def names(**kwargs: str) -> list[str]:
        items = core.list_namespaced_config_map(namespace, **kwargs).items
        return [item.metadata.name for item in items if item.metadata.name in ("a", "b", "c")]

    assert names(label_selector="env=prod") == ["a"]
    assert names(label_selector="env==dev") == ["b"]
    assert names(label_selector="env!=prod") == ["b", "c"]
    assert names(label_selector="env in (prod,dev)") == ["a", "b"]
    assert names(label_selector="env notin (prod)") == ["b", "c"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="!tier") == ["b", "c"]
    assert names(label_selector="env=prod,tier=web") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace, field_selector="spec.nothing=x")
    assert caught.value.status == 400


def test_pod_phase_field_selector_and_pagination(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for index in range(3):
        pod = {"metadata": {"name": f"p{index}"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        core.create_namespaced_pod(namespace, pod)
    core.patch_namespaced_pod_status(
        "p1", namespace, {"status": {"phase": "Running"}}, _content_type="application/merge-patch+json"
    )
    running = core.list_namespaced_pod(namespace, field_selector="status.phase=Running")
    assert [pod.metadata.name for pod in running.items] == ["p1"]
    page = core.list_namespaced_pod(namespace, limit=2)
    assert [pod.metadata.name for pod in page.items] == ["p0", "p1"]
    assert page.metadata.remaining_item_count == 1
    rest = core.list_namespaced_pod(namespace, limit=2, _continue=page.metadata._continue)
    assert [pod.metadata.name for pod in rest.items] == ["p2"]
    assert rest.metadata._continue is None


# ----------------------------------------------------------------------------------------------------- access


def test_limited_users_are_forbidden_and_access_reviews_agree(server: KubeApiServer, tmp_path: Path) -> None:
    rules = [
        AccessRule(verbs=["get", "list"], api_groups=[""], resources=["secrets"], namespaces=["flux-system"]),
        AccessRule(verbs=["*"], api_groups=["apps"], resources=["deployments"], resource_names=["only-this"]),
    ]
    token = server.add_user("limited", rules)
    with _client(server, tmp_path, token=token) as limited:
        core = client.CoreV1Api(limited)
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_secret("flux-system", {"metadata": {"name": "s"}})
        status = _status(caught.value)
        assert (caught.value.status, status["reason"]) == (403, "Forbidden")
        assert status["message"] == (
            'secrets is forbidden: User "limited" cannot create resource "secrets" in API group "" in the namespace '
            '"flux-system"'
        )
        with pytest.raises(ApiException) as caught:
            core.list_namespace()
        assert _status(caught.value)["message"] == (
            'namespaces is forbidden: User "limited" cannot list resource "namespaces" in API group "" at the cluster scope'
        )
        reviews = client.AuthorizationV1Api(limited)

        def can(**attributes: str) -> bool:
            review = {"spec": {"resourceAttributes": attributes}}
            answer = reviews.create_self_subject_access_review(review)
            return bool(answer.status.allowed)

        assert can(verb="list", resource="secrets", namespace="flux-system")
        assert not can(verb="create", resource="secrets", namespace="flux-system")
        assert not can(verb="get", resource="secrets", namespace="default")
        assert can(verb="patch", group="apps", resource="deployments", namespace="x", name="only-this")
        assert not can(verb="patch", group="apps", resource="deployments", namespace="x", name="other")
        assert client.VersionApi(limited).get_code().major == "1"


def test_the_admin_may_do_anything(api: client.ApiClient) -> None:
    review = {"spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}}
    answer, code, _ = client.AuthorizationV1Api(api).create_self_subject_access_review_with_http_info(review)
    assert code == 201
    assert answer.status.allowed is True


# --------------------------------------------------------------------------------------------------- lifecycle


def test_plain_http_serves_the_same_api(tmp_path: Path) -> None:
    with KubeApiServer(tls=False) as plain, _client(plain, tmp_path) as api_client:
        assert plain.url.startswith("http://127.0.0.1:")
        assert plain.ca_data is None
        assert "default" in {ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items}


def test_plain_http_without_a_token_is_the_insecure_port_but_a_wrong_token_is_refused(tmp_path: Path) -> None:
    """client-go never sends a bearer token over http, so a tokenless request there acts as the old insecure port."""
    with KubeApiServer(tls=False) as plain:
        anonymous = client.Configuration()
        anonymous.host = plain.url
        with client.ApiClient(anonymous) as api_client:
            assert "default" in {ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items}
        wrong = client.Configuration()
        wrong.host = plain.url
        wrong.api_key = {"authorization": "Bearer not-a-token"}
        with client.ApiClient(wrong) as api_client, pytest.raises(client.ApiException) as raised:
            client.CoreV1Api(api_client).list_namespace()
        assert raised.value.status == 401


def test_stop_closes_the_port_and_ends_every_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    server = KubeApiServer()
    server.start()
    with _client(server, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        core.list_namespace()
        stream = watch.Watch().stream(core.list_namespace, timeout_seconds=60)
        next(stream)
        server.stop()
        server.stop()
    port = server.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []


# ------------------------------------------------------------------------------------------ CRD lifecycle


def _versioned_crd(plural: str, kind: str, versions: list[tuple[str, bool]]) -> dict[str, Any]:
    """A CRD serving `versions` ([(name, is_storage)]), each with the same small schema."""
    body = _crd(plural, kind)
    template = body["spec"]["versions"][0]
    body["spec"]["versions"] = [dict(template, name=name, storage=storage) for name, storage in versions]
    return body


def test_a_crd_is_not_established_by_the_write_that_creates_it(tmp_path: Path) -> None:
    with KubeApiServer(tls=False, crd_establish_delay=3600) as slow, _client(slow, tmp_path) as api_client:
        created = client.ApiextensionsV1Api(api_client).create_custom_resource_definition(_crd("slows", "Slow"))
        assert created.status.conditions is None
        assert created.status.stored_versions == ["v1"]
        assert (created.status.accepted_names.kind, created.status.accepted_names.plural) == ("", "")
        with pytest.raises(ApiException) as caught:
            client.CustomObjectsApi(api_client).list_namespaced_custom_object(CRD_GROUP, "v1", "default", "slows")
        assert (caught.value.status, _status(caught.value)["message"]) == (
            404,
            "the server could not find the requested resource",
        )
        groups = {group.name for group in client.ApisApi(api_client).get_api_versions().groups}
        assert CRD_GROUP not in groups


def test_with_no_delay_a_crd_is_established_just_after_its_creation(tmp_path: Path) -> None:
    with KubeApiServer(tls=False, crd_establish_delay=0) as quick, _client(quick, tmp_path) as api_client:
        crd = _create_crd(api_client, _crd("quicks", "Quick"))
        conditions = {c["type"]: (c["status"], c["reason"]) for c in crd["status"]["conditions"]}
        assert conditions == {
            "NamesAccepted": ("True", "NoConflicts"),
            "Established": ("True", "InitialNamesAccepted"),
        }
        assert crd["status"]["acceptedNames"]["listKind"] == "QuickList"
        owners = {(e["manager"], e.get("subresource")) for e in crd["metadata"]["managedFields"]}
        assert ("kube-apiserver", "status") in owners
        body = {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Quick", "metadata": {"name": "q"}, "spec": {"url": "ssh://x"}}
        made = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            CRD_GROUP, "v1", "default", "quicks", body
        )
        assert made["metadata"]["generation"] == 1


def test_dropping_a_stored_version_is_refused_until_status_is_migrated(api: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api)
    name = f"relics.{CRD_GROUP}"
    _create_crd(api, _versioned_crd("relics", "Relic", [("v1beta1", True)]))
    moved = extensions.replace_custom_resource_definition(
        name,
        dict(_versioned_crd("relics", "Relic", [("v1", True), ("v1beta1", False)]), metadata=_metadata_of(api, name)),
    )
    assert moved.status.stored_versions == ["v1beta1", "v1"]
    only_v1 = _versioned_crd("relics", "Relic", [("v1", True)])
    with pytest.raises(ApiException) as caught:
        extensions.replace_custom_resource_definition(name, dict(only_v1, metadata=_metadata_of(api, name)))
    message = (
        f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: '
        'status.storedVersions[0]: Invalid value: "v1beta1": must appear in spec.versions'
    )
    assert _only_cause(caught.value, message) == {
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: "v1beta1": must appear in spec.versions',
        "field": "status.storedVersions[0]",
    }
    migrated = extensions.patch_custom_resource_definition_status(
        name, {"status": {"storedVersions": ["v1"]}}, _content_type=MERGE
    )
    assert migrated.status.stored_versions == ["v1"]
    dropped = extensions.replace_custom_resource_definition(name, dict(only_v1, metadata=_metadata_of(api, name)))
    assert [v.name for v in dropped.spec.versions] == ["v1"]
    assert dropped.status.stored_versions == ["v1"]


def _metadata_of(api: client.ApiClient, name: str) -> dict[str, Any]:
    live = client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    return {"name": name, "resourceVersion": live.metadata.resource_version}


# ------------------------------------------------------------------------------------ real Flux manifests


def _corpus_set(prefix: str) -> Path:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("golden data ../shared/flux-corpus is not next to this checkout (set FLUX_CORPUS_DIR to use it)")
    found = sorted(p for p in (corpus / "sets").glob(f"{prefix}*/gotk-components.yaml") if "-rc." not in str(p))
    if not found:
        pytest.skip(f"the corpus holds no {prefix}x gotk-components.yaml")
    return found[0]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _identity(doc: dict[str, Any]) -> str:
    metadata = doc["metadata"]
    return f"{doc['kind']}/{metadata.get('namespace', '')}/{metadata['name']}"


def _apply_all(
    api: client.ApiClient, docs: list[dict[str, Any]], manager: str, *, force: bool = False
) -> dict[str, str]:
    """Server-side apply as a bootstrap does: CRDs and Namespaces, wait until Established, then the rest."""
    dyn = dynamic.DynamicClient(api, cache_file=os.devnull)
    first = [doc for doc in docs if doc["kind"] in ("CustomResourceDefinition", "Namespace")]
    rest = [doc for doc in docs if doc not in first]
    versions: dict[str, str] = {}
    for batch in (first, rest):
        for doc in batch:
            resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            applied = dyn.server_side_apply(
                resource, doc, namespace=doc["metadata"].get("namespace"), field_manager=manager, force_conflicts=force
            )
            versions[_identity(doc)] = applied.metadata.resourceVersion
        for doc in batch:
            if doc["kind"] == "CustomResourceDefinition":
                versions[_identity(doc)] = _wait_established(api, doc["metadata"]["name"])["metadata"][
                    "resourceVersion"
                ]
    return versions


@pytest.mark.parametrize("release", ["v2.0.", "v2.9."])
def test_a_real_gotk_components_applies_idempotently_and_shares_with_a_second_manager(
    release: str, tmp_path: Path
) -> None:
    docs = _documents(_corpus_set(release))
    with KubeApiServer(tls=False) as fresh, _client(fresh, tmp_path) as api_client:
        first = _apply_all(api_client, docs, "flux")
        assert len(first) == len(docs)
        fresh.reset_requests()
        assert _apply_all(api_client, docs, "flux") == first
        patches = [r for r in fresh.requests if r.verb == "patch"]
        assert len(patches) == len(docs) and all(r.code == 200 for r in patches)
        shared = _apply_all(api_client, docs, "kustomize-controller")
        source = client.AppsV1Api(api_client).read_namespaced_deployment("source-controller", "flux-system")
        managers = {(entry.manager, entry.operation) for entry in source.metadata.managed_fields}
        assert managers == {("flux", "Apply"), ("kustomize-controller", "Apply")}
        assert _apply_all(api_client, docs, "kustomize-controller") == shared
        crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items
        assert crds and all(_established(api_client.sanitize_for_serialization(crd)) for crd in crds)


def test_upgrading_flux_2_0_to_2_9_is_refused_until_stored_versions_are_migrated(tmp_path: Path) -> None:
    old_docs, new_docs = _documents(_corpus_set("v2.0.")), _documents(_corpus_set("v2.9."))
    with KubeApiServer(tls=False) as cluster, _client(cluster, tmp_path) as api_client:
        _apply_all(api_client, old_docs, "flux")
        dyn = dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))
        definitions = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
        new_crds = [doc for doc in new_docs if doc["kind"] == "CustomResourceDefinition"]
        refused: dict[str, str] = {}
        for doc in new_crds:
            try:
                dyn.server_side_apply(definitions, doc, field_manager="flux", force_conflicts=True)
            except ApiException as error:
                refused[doc["metadata"]["name"]] = _status(error)["message"]
        helm = "helmreleases.helm.toolkit.fluxcd.io"
        assert refused[helm] == (
            f'CustomResourceDefinition.apiextensions.k8s.io "{helm}" is invalid: '
            'status.storedVersions[0]: Invalid value: "v2beta1": must appear in spec.versions'
        )
        assert "gitrepositories.source.toolkit.fluxcd.io" not in refused
        extensions = client.ApiextensionsV1Api(api_client)
        for doc in new_crds:
            if doc["metadata"]["name"] in refused:  # what `flux migrate` does once the objects are rewritten
                storage = next(v["name"] for v in doc["spec"]["versions"] if v["storage"])
                patch = {"status": {"storedVersions": [storage]}}
                extensions.patch_custom_resource_definition_status(doc["metadata"]["name"], patch, _content_type=MERGE)
        for doc in new_crds:
            upgraded = dyn.server_side_apply(definitions, doc, field_manager="flux", force_conflicts=True)
            storage = next(v["name"] for v in doc["spec"]["versions"] if v["storage"])
            assert upgraded.status.storedVersions == [storage]


# ----------------------------------------------------------------------------------------- request log


def test_every_request_is_recorded_with_what_the_apiserver_knows(server: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    name = f"log-{uuid.uuid4().hex[:6]}"
    server.reset_requests()
    client.VersionApi(api).get_code()
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "cm"}}, dry_run="All")
    core.create_namespaced_config_map(name, {"metadata": {"name": "cm"}})
    core.patch_namespaced_config_map("cm", name, {"data": {"a": "1"}}, _content_type=MERGE)
    core.read_namespaced_config_map("cm", name)
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("missing", name)
    core.list_namespaced_config_map(name)
    review = {"spec": {"resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": name}}}
    client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    shown = [
        (r.method, r.verb, r.resource, r.namespace, r.name, r.code, r.dry_run, r.is_write) for r in server.requests
    ]
    assert shown == [
        ("GET", "get", "", "", "", 200, False, False),
        ("POST", "create", "namespaces", "", "", 201, False, True),
        ("POST", "create", "configmaps", name, "", 201, True, False),
        ("POST", "create", "configmaps", name, "", 201, False, True),
        ("PATCH", "patch", "configmaps", name, "cm", 200, False, True),
        ("GET", "get", "configmaps", name, "cm", 200, False, False),
        ("GET", "get", "configmaps", name, "missing", 404, False, False),
        ("GET", "list", "configmaps", name, "", 200, False, False),
        ("POST", "create", "selfsubjectaccessreviews", "", "", 201, False, False),
    ]
    records = server.requests
    assert {r.user for r in records} == {"sandbox-admin"}
    assert records[0].path == "/version/"  # as the kubernetes client asks for it
    assert (records[4].path, records[4].content_type) == (f"/api/v1/namespaces/{name}/configmaps/cm", MERGE)
    assert (records[8].group, records[8].version, records[8].review) == ("authorization.k8s.io", "v1", True)
    server.reset_requests()
    assert server.requests == []


def test_unauthenticated_and_watch_requests_are_recorded(server: KubeApiServer, tmp_path: Path) -> None:
    server.reset_requests()
    with _client(server, tmp_path, token="wrong") as bad, pytest.raises(ApiException):
        client.CoreV1Api(bad).list_namespace()
    with _client(server, tmp_path) as good:
        stream = watch.Watch().stream(client.CoreV1Api(good).list_namespace, timeout_seconds=1)
        next(stream)
        stream.close()
    failed, watched = server.requests[:2]
    assert (failed.verb, failed.user, failed.code) == ("list", "", 401)
    assert (watched.verb, watched.resource, watched.user, watched.code) == ("watch", "namespaces", "sandbox-admin", 200)


# ------------------------------------------------------------------------------------- built-in field types


def _deployment(name: str, *, replicas: Any = 1, port: Any = 8080) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": port}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def test_wrongly_typed_builtin_fields_fail_to_decode(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    expected = {
        "replicas": (
            _deployment("r", replicas="2"),
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        ),
        "port": (
            _deployment("p", port="8080"),
            "json: cannot unmarshal string into Go struct field "
            "ContainerPort.spec.template.spec.containers.ports.containerPort of type int32",
        ),
        "overflow": (
            _deployment("o", replicas=2**40),
            "json: cannot unmarshal number 1099511627776 into Go struct field DeploymentSpec.spec.replicas of type int32",
        ),
    }
    for case, (body, text) in expected.items():
        with pytest.raises(ApiException) as caught:
            apps.create_namespaced_deployment(namespace, body)
        status = _status(caught.value)
        assert (caught.value.status, status["reason"]) == (400, "BadRequest"), case
        assert status["message"] == f'Deployment in version "v1" cannot be handled as a Deployment: {text}', case
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "n"}, "data": {"count": 3}})
    assert _status(caught.value)["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: '
        "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"
    )
    apps.create_namespaced_deployment(namespace, _deployment("ok"))
    fresh = api.sanitize_for_serialization(apps.read_namespaced_deployment("ok", namespace))
    fresh["spec"]["replicas"] = "3"
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("ok", namespace, fresh)
    assert caught.value.status == 400


def test_a_patch_that_mistypes_a_field_is_invalid(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("typed"))
    for patch, content_type in (
        ({"spec": {"replicas": "2"}}, MERGE),
        ([{"op": "replace", "path": "/spec/replicas", "value": "2"}], JSON_PATCH),
    ):
        with pytest.raises(ApiException) as caught:
            apps.patch_namespaced_deployment("typed", namespace, patch, _content_type=content_type)
        status = _status(caught.value)
        assert (caught.value.status, status["reason"]) == (422, "Invalid")
        message = status["message"]
        assert message.startswith(' "" is invalid: patch: Invalid value: "{')
        assert message.endswith(
            '": json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32'
        )
        assert status["details"]["causes"][0]["field"] == "patch"
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(
            "typed", namespace, {"spec": {"replicas": "2"}}, _content_type="application/strategic-merge-patch+json"
        )
    assert _status(caught.value)["message"] == (
        ' "" is invalid: patch: Invalid value: "map[spec:map[replicas:2]]": cannot convert string to int32'
    )
    assert apps.read_namespaced_deployment("typed", namespace).spec.replicas == 1


def test_server_side_apply_refuses_mistyped_fields_as_a_typed_patch(
    api: client.ApiClient, namespace: str, widgets: str
) -> None:
    dyn = dynamic.DynamicClient(api, cache_file=os.devnull)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    with pytest.raises(ApiException) as caught:
        dyn.server_side_apply(deployments, _deployment("ssa", replicas="2"), namespace=namespace, field_manager="m")
    status = _status(caught.value)
    assert (caught.value.status, status.get("reason")) == (500, None)
    assert status["message"] == (
        f"failed to create typed patch object ({namespace}/ssa; apps/v1, Kind=Deployment): "
        ".spec.replicas: expected numeric (int or float), got string"
    )
    with pytest.raises(ApiException) as caught:
        dyn.server_side_apply(deployments, _deployment("ssa", port="8080"), namespace=namespace, field_manager="m")
    assert _status(caught.value)["message"].endswith(
        '.spec.template.spec.containers[name="app"].ports[containerPort="8080",protocol="TCP"].containerPort: '
        "expected numeric (int or float), got string"
    )
    maps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"on": True}}
    with pytest.raises(ApiException) as caught:
        dyn.server_side_apply(maps, config_map, namespace=namespace, field_manager="m")
    assert _status(caught.value)["message"] == (
        f"failed to create typed patch object ({namespace}/c; /v1, Kind=ConfigMap): "
        ".data.on: expected string, got &value.valueUnstructured{Value:true}"
    )
    widget = dyn.resources.get(api_version=f"{CRD_GROUP}/v1", kind="Widget")
    with pytest.raises(ApiException) as caught:
        dyn.server_side_apply(
            widget, _widget("typed", {"url": "ssh://x", "replicas": "2"}), namespace=namespace, field_manager="m"
        )
    assert _status(caught.value)["message"].endswith(": .spec.replicas: expected numeric (int or float), got string")


def test_unchanged_means_same_type_as_well_as_same_value(api: client.ApiClient, namespace: str, widgets: str) -> None:
    custom = client.CustomObjectsApi(api)
    created = custom.create_namespaced_custom_object(
        CRD_GROUP, "v1", namespace, widgets, _widget("flags", {"url": "ssh://x", "extra": {"flag": 1}})
    )
    flipped = custom.patch_namespaced_custom_object(
        CRD_GROUP, "v1", namespace, widgets, "flags", {"spec": {"extra": {"flag": True}}}
    )
    assert flipped["spec"]["extra"]["flag"] is True
    assert flipped["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert flipped["metadata"]["generation"] == 2
    test_one = [{"op": "test", "path": "/spec/extra/flag", "value": 1}]
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            CRD_GROUP, "v1", namespace, widgets, "flags", test_one, _content_type=JSON_PATCH
        )
    assert caught.value.status == 422
    test_true = [{"op": "test", "path": "/spec/extra/flag", "value": True}]
    same = custom.patch_namespaced_custom_object(
        CRD_GROUP, "v1", namespace, widgets, "flags", test_true, _content_type=JSON_PATCH
    )
    assert same["metadata"]["resourceVersion"] == flipped["metadata"]["resourceVersion"]


# ------------------------------------------------------------------------------------------ watch details


def _lines(response: Any) -> Iterator[dict[str, Any]]:
    buffered = b""
    for chunk in response.stream(1024, decode_content=False):
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def test_a_watch_with_a_zero_or_negative_timeout_keeps_streaming(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for timeout in ("0", "-5"):
        listed = core.list_namespaced_config_map(namespace).metadata.resource_version
        response = _stream(
            api,
            f"/api/v1/namespaces/{namespace}/configmaps",
            watch="true",
            timeoutSeconds=timeout,
            resourceVersion=listed,
        )
        name = f"after-{timeout.strip('-')}"
        threading.Timer(
            0.05, lambda n=name: core.create_namespaced_config_map(namespace, {"metadata": {"name": n}})
        ).start()
        first = next(_lines(response))
        response.close()
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", name)


def test_bad_watch_parameters_are_a_plain_bad_request(api: client.ApiClient) -> None:
    cases = {
        "labelSelector": ("a=bad_", 'unable to parse requirement: values[0][a]: Invalid value: "bad_": '),
        "fieldSelector": ("spec.nothing=x", "field label not supported: spec.nothing"),
        "resourceVersion": ("abc", 'resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc"'),
        "timeoutSeconds": ("soon", 'strconv.ParseInt: parsing "soon": invalid syntax'),
    }
    for parameter, (value, text) in cases.items():
        with pytest.raises(ApiException) as caught:
            _stream(api, "/api/v1/configmaps", watch="true", **{parameter: value})
        status = json.loads(caught.value.body)
        assert (caught.value.status, status["kind"], status["reason"]) == (400, "Status", "BadRequest"), parameter
        assert status["message"].startswith(text), parameter


def test_a_quiet_kind_keeps_its_history_and_gets_bookmarks(tmp_path: Path) -> None:
    small = KubeApiServer(tls=False, history=5, watch_bookmark_interval=0.05)
    with small, _client(small, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        quiet = core.list_namespaced_config_map("default").metadata.resource_version
        for index in range(12):
            core.create_namespaced_secret("default", {"metadata": {"name": f"s{index}"}})
        busy = core.list_namespaced_secret("default").metadata.resource_version
        response = _stream(
            api_client,
            "/api/v1/namespaces/default/configmaps",
            watch="true",
            resourceVersion=quiet,
            allowWatchBookmarks="true",
            timeoutSeconds="10",
        )
        first = next(_lines(response))
        response.close()
        with pytest.raises(ApiException) as caught:
            list(
                watch.Watch().stream(core.list_namespaced_secret, "default", resource_version=quiet, timeout_seconds=1)
            )
    assert first["type"] == "BOOKMARK"
    assert first["object"]["kind"] == "ConfigMap"
    assert int(first["object"]["metadata"]["resourceVersion"]) >= int(busy)
    assert caught.value.status == 410


def test_a_watch_the_user_may_not_make_is_forbidden_before_streaming(server: KubeApiServer, tmp_path: Path) -> None:
    token = server.add_user("watcher", [AccessRule(verbs=["list"], api_groups=[""], resources=["secrets"])])
    with _client(server, tmp_path, token=token) as limited:
        client.CoreV1Api(limited).list_secret_for_all_namespaces()
        with pytest.raises(ApiException) as caught:
            _stream(limited, "/api/v1/namespaces/default/secrets", watch="true")
    assert caught.value.status == 403
    assert json.loads(caught.value.body)["message"] == (
        'secrets is forbidden: User "watcher" cannot watch resource "secrets" in API group "" in the namespace "default"'
    )


def test_concurrent_writers_and_watchers_agree_with_the_store(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    initial = api.sanitize_for_serialization(core.list_namespaced_config_map(namespace))
    start = initial["metadata"]["resourceVersion"]
    seen: dict[str, dict[str, Any]] = {item["metadata"]["name"]: item for item in initial["items"]}
    versions: list[int] = []
    done = threading.Event()

    def watcher() -> None:
        response = _stream(
            api, f"/api/v1/namespaces/{namespace}/configmaps", watch="true", resourceVersion=start, timeoutSeconds="20"
        )
        for event in _lines(response):
            obj = event["object"]
            versions.append(int(obj["metadata"]["resourceVersion"]))
            if event["type"] == "DELETED":
                seen.pop(obj["metadata"]["name"], None)
            else:
                seen[obj["metadata"]["name"]] = obj
            if obj["metadata"]["name"] == "last":
                break
        response.close()
        done.set()

    def writer(index: int) -> None:
        name = f"w{index}"
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": {"n": "0"}})
        for step in range(1, 6):
            core.patch_namespaced_config_map(name, namespace, {"data": {"n": str(step)}}, _content_type=MERGE)
        if index % 2:
            core.delete_namespaced_config_map(name, namespace)

    watching = threading.Thread(target=watcher)
    watching.start()
    writers = [threading.Thread(target=writer, args=(index,)) for index in range(6)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "last"}})
    assert done.wait(20)
    watching.join()
    listed = {item.metadata.name: item for item in core.list_namespaced_config_map(namespace).items}
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert set(seen) == set(listed)
    assert {name: obj["metadata"]["resourceVersion"] for name, obj in seen.items()} == {
        name: item.metadata.resource_version for name, item in listed.items()
    }
    assert {name: obj.get("data") for name, obj in seen.items() if name.startswith("w")} == {
        name: {"n": "5"} for name in ("w0", "w2", "w4")
    }


# ---------------------------------------------------------------------------------------- reviews and rules


def test_rules_reviews_need_a_namespace_and_list_the_users_rules(server: KubeApiServer, tmp_path: Path) -> None:
    rules = [
        AccessRule(verbs=["get", "list"], api_groups=[""], resources=["secrets"], namespaces=["flux-system"]),
        AccessRule(verbs=["patch"], api_groups=["apps"], resources=["deployments"], resource_names=["web"]),
    ]
    token = server.add_user("ruled", rules)
    with _client(server, tmp_path, token=token) as limited:
        reviews = client.AuthorizationV1Api(limited)
        with pytest.raises(ApiException) as caught:
            reviews.create_self_subject_rules_review({"spec": {}})
        assert (caught.value.status, _status(caught.value)["reason"]) == (400, "BadRequest")
        assert _status(caught.value)["message"] == "no namespace on request"
        answer = reviews.create_self_subject_rules_review({"spec": {"namespace": "flux-system"}})
        elsewhere = reviews.create_self_subject_rules_review({"spec": {"namespace": "default"}})
    rules_here = {
        (tuple(r.verbs), tuple(r.resources), tuple(r.resource_names or ())) for r in answer.status.resource_rules
    }
    assert (("get", "list"), ("secrets",), ()) in rules_here
    assert (("patch",), ("deployments",), ("web",)) in rules_here
    rules_there = {tuple(r.resources) for r in elsewhere.status.resource_rules}
    assert ("secrets",) not in rules_there and ("deployments",) in rules_there
    assert answer.status.incomplete is False


# ------------------------------------------------------------------------------------------------ small gaps


def test_the_system_namespaces_cannot_be_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name in ("default", "kube-system", "kube-public"):
        with pytest.raises(ApiException) as caught:
            core.delete_namespace(name)
        status = _status(caught.value)
        assert (caught.value.status, status["reason"]) == (403, "Forbidden")
        assert status["message"] == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        assert core.read_namespace(name).metadata.deletion_timestamp is None


def test_malformed_list_parameters_are_bad_requests(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as caught:
        _raw(api, f"/api/v1/namespaces/{namespace}/configmaps?limit=abc")
    assert (caught.value.status, _status(caught.value)["message"]) == (
        400,
        'strconv.ParseInt: parsing "abc": invalid syntax',
    )
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace, label_selector="tier in (web,-db)")
    message = _status(caught.value)["message"]
    assert caught.value.status == 400
    assert message.startswith('unable to parse requirement: values[1][tier]: Invalid value: "-db": a valid label must')
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "l", "labels": {"tier": "web_"}}})
    assert _status(caught.value)["message"].startswith(
        'ConfigMap "l" is invalid: metadata.labels: Invalid value: "web_": a valid label must be an empty string'
    )


def test_scaling_is_recorded_under_the_scale_subresource(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("scaled"), field_manager="creator")
    apps.patch_namespaced_deployment_scale(
        "scaled", namespace, {"spec": {"replicas": 3}}, field_manager="scaler", _content_type=MERGE
    )
    deployment = apps.read_namespaced_deployment("scaled", namespace)
    assert deployment.spec.replicas == 3
    entries = {entry.manager: entry for entry in deployment.metadata.managed_fields}
    assert (entries["scaler"].subresource, entries["scaler"].operation) == ("scale", "Update")
    assert entries["scaler"].fields_v1 == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in entries["creator"].fields_v1["f:spec"]


def test_a_write_naming_another_uid_fails_its_precondition(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "uid"}, "data": {"a": "1"}})
    stranger = str(uuid.uuid4())
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("uid", namespace, {"metadata": {"uid": stranger}}, _content_type=MERGE)
    status = _status(caught.value)
    assert (caught.value.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == (
        f'Operation cannot be fulfilled on configmaps "uid": StorageError: invalid object, Code: 4, '
        f"Key: /registry/configmaps/{namespace}/uid, ResourceVersion: 0, AdditionalErrorMsg: "
        f"Precondition failed: UID in precondition: {stranger}, UID in object meta: {created.metadata.uid}"
    )
    body = api.sanitize_for_serialization(created)
    body["metadata"]["uid"] = stranger
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("uid", namespace, body)
    assert caught.value.status == 409
    assert core.read_namespaced_config_map("uid", namespace).metadata.uid == created.metadata.uid


def test_deleting_a_service_account_or_service_returns_the_object(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "robot"}})
    gone = json.loads(core.delete_namespaced_service_account("robot", namespace, _preload_content=False).data)
    assert (gone["kind"], gone["metadata"]["name"]) == ("ServiceAccount", "robot")
    service = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    core.create_namespaced_service(namespace, service)
    gone = json.loads(core.delete_namespaced_service("web", namespace, _preload_content=False).data)
    assert (gone["kind"], gone["spec"]["ports"][0]["port"]) == ("Service", 80)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "plain"}})
    gone = json.loads(core.delete_namespaced_config_map("plain", namespace, _preload_content=False).data)
    assert (gone["kind"], gone["status"]) == ("Status", "Success")


def test_a_dry_run_update_returns_the_would_be_object_and_stores_nothing(
    server: KubeApiServer, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "dry"}, "data": {"a": "1"}})
    body = api.sanitize_for_serialization(created)
    body["data"] = {"a": "2"}
    server.reset_requests()
    answer = core.replace_namespaced_config_map("dry", namespace, body, dry_run="All")
    assert answer.data == {"a": "2"}
    assert answer.metadata.resource_version == created.metadata.resource_version
    stored = core.read_namespaced_config_map("dry", namespace)
    assert stored.data == {"a": "1"}
    assert stored.metadata.resource_version == created.metadata.resource_version
    assert [(r.verb, r.dry_run, r.is_write) for r in server.requests] == [
        ("update", True, False),
        ("get", False, False),
    ]


# -------------------------------------------------------------------------------------------------- CEL rules


def _ruled_crd() -> dict[str, Any]:
    """A CRD whose spec carries CEL rules of the kinds Flux uses, plus a transition rule and one out of reach."""
    body = _crd("checks", "Check")
    spec = body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["serviceAccountName"] = {"type": "string"}
    spec["properties"]["url"]["x-kubernetes-validations"] = [{"rule": "self == oldSelf", "message": "url is immutable"}]
    spec["x-kubernetes-validations"] = [
        {
            "rule": "!has(self.serviceAccountName) || (has(self.provider) && self.provider == 'azure')",
            "message": "serviceAccountName can only be set when provider is 'azure'",
        },
        {"rule": "!has(self.items) || size(self.items) <= 2", "reason": "FieldValueForbidden", "message": "too many"},
        {"rule": "self.items.all(i, i.name != 'skipped')", "message": "macros are not evaluated here"},
    ]
    return body


def test_cel_rules_are_enforced_with_the_apiservers_text(api: client.ApiClient, namespace: str) -> None:
    _create_crd(api, _ruled_crd())
    custom = client.CustomObjectsApi(api)

    def check(name: str, spec: dict[str, Any]) -> Callable[[], Any]:
        body = {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Check", "metadata": {"name": name}, "spec": spec}
        return lambda: custom.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, "checks", body)

    with pytest.raises(ApiException) as caught:
        check("sa", {"url": "ssh://x", "serviceAccountName": "robot", "provider": "generic"})()
    message = (
        f'Check.{CRD_GROUP} "sa" is invalid: spec: Invalid value: "object": '
        "serviceAccountName can only be set when provider is 'azure'"
    )
    assert _only_cause(caught.value, message) == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: \"object\": serviceAccountName can only be set when provider is 'azure'",
        "field": "spec",
    }
    items = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    with pytest.raises(ApiException) as caught:
        check("many", {"url": "ssh://x", "items": items})()
    assert _status(caught.value)["message"] == f'Check.{CRD_GROUP} "many" is invalid: spec: Forbidden: too many'
    check("azure", {"url": "ssh://x", "serviceAccountName": "robot", "provider": "azure"})()
    check("skipped", {"url": "ssh://x", "items": [{"name": "skipped"}]})()
    moved = {"spec": {"url": "ssh://y"}}
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(CRD_GROUP, "v1", namespace, "checks", "azure", moved)
    assert _status(caught.value)["message"] == (
        f'Check.{CRD_GROUP} "azure" is invalid: spec.url: Invalid value: "string": url is immutable'
    )
    labelled = {"metadata": {"labels": {"x": "y"}}}
    custom.patch_namespaced_custom_object(CRD_GROUP, "v1", namespace, "checks", "azure", labelled)
    with pytest.raises(ApiException) as caught:
        check("typed", {"url": "ssh://x", "provider": "aws", "serviceAccountName": "robot"})()
    causes = _status(caught.value)["details"]["causes"]
    assert [c["field"] for c in causes] == ["spec.provider", "<nil>"]
    assert causes[1]["message"] == (
        'Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation"
    )


def test_the_flux_2_9_git_repository_rules_hold(tmp_path: Path) -> None:
    docs = _documents(_corpus_set("v2.9."))
    crd = next(doc for doc in docs if doc["metadata"]["name"] == "gitrepositories.source.toolkit.fluxcd.io")
    with KubeApiServer(tls=False, crd_establish_delay=0) as cluster, _client(cluster, tmp_path) as api_client:
        _create_crd(api_client, crd)
        custom = client.CustomObjectsApi(api_client)
        spec = {"interval": "1m", "url": "https://dev.azure.com/org/p/_git/r", "serviceAccountName": "robot"}
        body = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "r"}}
        with pytest.raises(ApiException) as caught:
            custom.create_namespaced_custom_object(
                "source.toolkit.fluxcd.io", "v1", "default", "gitrepositories", dict(body, spec=spec)
            )
        assert _status(caught.value)["message"] == (
            'GitRepository.source.toolkit.fluxcd.io "r" is invalid: spec: Invalid value: "object": '
            "serviceAccountName can only be set when provider is 'azure' or 'aws'"
        )
        made = custom.create_namespaced_custom_object(
            "source.toolkit.fluxcd.io",
            "v1",
            "default",
            "gitrepositories",
            dict(body, spec=dict(spec, provider="azure")),
        )
        assert made["spec"]["provider"] == "azure"
