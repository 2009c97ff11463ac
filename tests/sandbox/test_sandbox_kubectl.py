"""The fake Kubernetes API server driven by the real kubectl, with a real six-controller gotk-components.yaml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flux_azdo.sandbox.kube import AccessRule, KubeApiServer
from support.corpus import corpus_dir

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (apt-get install kubernetes-client)")


@pytest.fixture(scope="module")
def components() -> Path:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("golden data ../shared/flux-corpus is not next to this checkout (set FLUX_CORPUS_DIR to use it)")
    for path in sorted(corpus.rglob("gotk-components*.yaml")):
        text = path.read_text(encoding="utf-8")
        if "name: image-automation-controller" in text and text.count("\nkind: Deployment") == 6:
            return path
    pytest.skip("the corpus holds no six-controller gotk-components.yaml")


class Kubectl:
    def __init__(self, server: KubeApiServer, home: Path, token: str | None = None) -> None:
        self.kubeconfig = home / f"kubeconfig-{token[:6] if token else 'admin'}"
        server.write_kubeconfig(self.kubeconfig, token=token)
        # Its own HOME keeps kubectl's discovery cache out of the user's ~/.kube.
        self.env = {"PATH": os.environ["PATH"], "HOME": str(home)}

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        command = [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args]
        return subprocess.run(command, env=self.env, input=stdin, capture_output=True, text=True, timeout=60)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))


@pytest.fixture(scope="module")
def server() -> Iterator[KubeApiServer]:
    # The namespace controller starts at once here; the test of `kubectl delete -f` uses the real wait.
    with KubeApiServer(namespace_termination_delay=0) as running:
        yield running


@pytest.fixture(scope="module")
def kubectl(server: KubeApiServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(server, tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture(scope="module")
def installed(kubectl: Kubectl, components: Path) -> Path:
    """The components applied once, server-side, as `flux bootstrap` does, and their CRDs Established."""
    output = kubectl.ok("apply", "--server-side", "-f", str(components))
    lines = output.strip().splitlines()
    assert lines and all(line.endswith(" serverside-applied") for line in lines)
    kubectl.ok("wait", "--for=condition=established", "crd", "--all", "--timeout=10s")
    return components


def test_apply_server_side_installs_every_object(kubectl: Kubectl, installed: Path) -> None:
    text = installed.read_text(encoding="utf-8")
    crd_count = text.count("\nkind: CustomResourceDefinition")
    waited = kubectl.ok("wait", "--for=condition=established", "crd", "--all", "--timeout=10s")
    assert waited.count("condition met") == crd_count
    namespaces = kubectl.ok("get", "ns")
    assert namespaces.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["flux-system", "Active"] for line in namespaces.splitlines())
    deployments = kubectl.ok("get", "deploy", "-n", "flux-system")
    header, *rows = deployments.strip().splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert {row.split()[0] for row in rows} == {
        "source-controller",
        "kustomize-controller",
        "helm-controller",
        "notification-controller",
        "image-reflector-controller",
        "image-automation-controller",
    }
    assert all(row.split()[1] == "0/1" for row in rows)
    crds = kubectl.ok("get", "crd").strip().splitlines()
    assert crds[0].split() == ["NAME", "CREATED", "AT"]
    assert len(crds) - 1 == crd_count
    managed = kubectl.json("get", "deploy", "source-controller", "-n", "flux-system", "--show-managed-fields")
    assert [(e["manager"], e["operation"]) for e in managed["metadata"]["managedFields"]] == [("kubectl", "Apply")]


def test_second_apply_changes_nothing(kubectl: Kubectl, installed: Path) -> None:
    def versions() -> dict[str, str]:
        listed = kubectl.json("get", "deploy,sa,svc,netpol,crd", "-A")
        return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in listed["items"]}

    before = versions()
    kubectl.ok("apply", "--server-side", "-f", str(installed))
    assert versions() == before


def test_another_field_manager_conflicts_unless_forced(kubectl: Kubectl, installed: Path) -> None:
    patch = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: helm-controller
  namespace: flux-system
spec:
  replicas: 2
"""
    conflicted = kubectl("apply", "--server-side", "--field-manager=platform-team", "-f", "-", stdin=patch)
    assert conflicted.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in conflicted.stderr
    forced = kubectl.ok(
        "apply", "--server-side", "--field-manager=platform-team", "--force-conflicts", "-f", "-", stdin=patch
    )
    assert "serverside-applied" in forced
    replicas = kubectl.ok("get", "deploy", "helm-controller", "-n", "flux-system", "-o", "jsonpath={.spec.replicas}")
    assert replicas == "2"
    back = kubectl("apply", "--server-side", "-f", str(installed))
    assert back.returncode == 1
    assert 'conflict with "platform-team": .spec.replicas' in back.stderr
    kubectl.ok("apply", "--server-side", "--force-conflicts", "-f", str(installed))


def test_client_side_apply_and_a_custom_resource(kubectl: Kubectl, installed: Path) -> None:
    source = """apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: demo
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  url: https://example.com/demo.git
"""
    assert "gitrepository.source.toolkit.fluxcd.io/demo created" in kubectl.ok("apply", "-f", "-", stdin=source)
    changed = source.replace("branch: main", "branch: release")
    assert "configured" in kubectl.ok("apply", "-f", "-", stdin=changed)
    got = kubectl.json("get", "gitrepository", "demo", "-n", "flux-system")
    assert (got["spec"]["ref"]["branch"], got["metadata"]["generation"]) == ("release", 2)
    listed = kubectl.ok("get", "gitrepositories", "-n", "flux-system")
    assert listed.splitlines()[0].split()[:3] == ["NAME", "URL", "AGE"]
    broken = kubectl("apply", "-f", "-", stdin=source.replace("1m0s", "soon").replace("name: demo", "name: broken"))
    assert broken.returncode == 1
    assert 'The GitRepository "broken" is invalid' in broken.stderr
    assert 'spec.interval: Invalid value: "soon": spec.interval in body should match' in broken.stderr
    unknown = source.replace("name: demo", "name: extra") + "  colour: red\n"
    strict = kubectl("apply", "-f", "-", stdin=unknown)
    assert 'strict decoding error: unknown field "spec.colour"' in strict.stderr
    applied = kubectl("apply", "--server-side", "-f", "-", stdin=unknown)
    assert (
        "failed to create typed patch object (flux-system/extra; source.toolkit.fluxcd.io/v1, Kind=GitRepository): "
        ".spec.colour: field not declared in schema"
    ) in applied.stderr


def test_missing_kind_fails_like_a_real_cluster(kubectl: Kubectl) -> None:
    unknown = "apiVersion: example.com/v1\nkind: Nothing\nmetadata:\n  name: x\n  namespace: default\n"
    result = kubectl("apply", "-f", "-", stdin=unknown)
    assert result.returncode == 1
    assert 'no matches for kind "Nothing" in version "example.com/v1"' in result.stderr
    missing = kubectl("get", "deploy", "absent", "-n", "default")
    assert missing.stderr.strip() == 'Error from server (NotFound): deployments.apps "absent" not found'


def test_typed_commands_send_protobuf_and_are_understood(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "proto")
    kubectl.ok("-n", "proto", "create", "secret", "generic", "auth", "--from-literal=username=git")
    kubectl.ok("-n", "proto", "create", "configmap", "settings", "--from-literal=level=debug")
    kubectl.ok("-n", "proto", "create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "--port=80")
    secret = kubectl.json("-n", "proto", "get", "secret", "auth")
    assert (secret["type"], secret["data"]) == ("Opaque", {"username": "Z2l0"})
    assert kubectl.json("-n", "proto", "get", "configmap", "settings")["data"] == {"level": "debug"}
    deployment = kubectl.json("-n", "proto", "get", "deployment", "web")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}
    ]
    duplicate = kubectl("create", "namespace", "proto")
    assert duplicate.stderr.strip() == 'Error from server (AlreadyExists): namespaces "proto" already exists'


def test_status_patch_and_wait_for_a_condition(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "waiting")
    kubectl.ok("-n", "waiting", "create", "deployment", "app", "--image=busybox:1")
    status = {"status": {"conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}
    kubectl.ok(
        "-n", "waiting", "patch", "deployment", "app", "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    waited = kubectl.ok("-n", "waiting", "wait", "--for=condition=available", "deployment/app", "--timeout=5s")
    assert "condition met" in waited
    kubectl.ok("-n", "waiting", "scale", "deployment/app", "--replicas=3")
    assert kubectl.ok("-n", "waiting", "get", "deployment/app", "-o", "jsonpath={.spec.replicas}") == "3"


def test_get_watch_prints_later_changes(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "watched")
    assert KUBECTL is not None
    command = [
        KUBECTL,
        "--kubeconfig",
        str(kubectl.kubeconfig),
        "-n",
        "watched",
        "get",
        "cm",
        "-w",
        "--output-watch-events",
    ]
    with subprocess.Popen(
        command, env=kubectl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as watcher:
        try:
            assert watcher.stdout is not None
            header = watcher.stdout.readline()
            assert header.split()[:2] == ["EVENT", "NAME"]
            kubectl.ok("-n", "watched", "create", "configmap", "fresh")
            deadline = time.monotonic() + 10
            line = ""
            while time.monotonic() < deadline and "fresh" not in line:
                line = watcher.stdout.readline()
            assert line.split()[:2] == ["ADDED", "fresh"]
        finally:
            watcher.terminate()


def test_deleting_a_namespace_terminates_it_first(kubectl: Kubectl, installed: Path) -> None:
    hold = {"metadata": {"finalizers": ["example.com/hold"]}}
    kubectl.ok("-n", "flux-system", "patch", "networkpolicy", "allow-egress", "--type=merge", "-p", json.dumps(hold))
    kubectl.ok("delete", "namespace", "flux-system", "--wait=false")
    namespace = kubectl.json("get", "namespace", "flux-system")
    assert namespace["status"]["phase"] == "Terminating"
    assert namespace["metadata"]["deletionTimestamp"]
    late = kubectl("-n", "flux-system", "create", "configmap", "late")
    assert "because it is being terminated" in late.stderr
    remaining = kubectl.ok("get", "all,netpol,sa", "-n", "flux-system", "-o", "name").split()
    assert remaining == ["networkpolicy.networking.k8s.io/allow-egress"]
    release = [{"op": "remove", "path": "/metadata/finalizers"}]
    kubectl.ok("-n", "flux-system", "patch", "networkpolicy", "allow-egress", "--type=json", "-p", json.dumps(release))
    kubectl.ok("wait", "--for=delete", "namespace/flux-system", "--timeout=10s")
    gone = kubectl("get", "namespace", "flux-system")
    assert gone.stderr.strip() == 'Error from server (NotFound): namespaces "flux-system" not found'
    kubectl.ok("create", "namespace", "emptied")
    assert 'namespace "emptied" deleted' in kubectl.ok("delete", "namespace", "emptied", "--timeout=10s")


def test_delete_f_of_the_components_deletes_every_object(components: Path, tmp_path: Path) -> None:
    """The file's namespace comes first, yet every later object is still there when kubectl deletes it."""
    with KubeApiServer() as cluster:
        kubectl = Kubectl(cluster, tmp_path)
        kubectl.ok("apply", "--server-side", "-f", str(components))
        kubectl.ok("wait", "--for=condition=established", "crd", "--all", "--timeout=10s")
        documents = [d for d in yaml.safe_load_all(components.read_text(encoding="utf-8")) if d]
        # --wait=false: kubectl's own wait would then GET each of the objects at its client-side 5 requests/s.
        result = kubectl("delete", "-f", str(components), "--wait=false")
        assert (result.returncode, result.stderr) == (0, "")
        lines = result.stdout.strip().splitlines()
        assert lines[0] == 'namespace "flux-system" deleted'
        assert len(lines) == len(documents) and all(line.endswith(" deleted") for line in lines)
        kubectl.ok("wait", "--for=delete", "namespace/flux-system", "--timeout=30s")
        gone = kubectl("get", "namespace", "flux-system")
        assert gone.stderr.strip() == 'Error from server (NotFound): namespaces "flux-system" not found'
        assert kubectl.ok("get", "crd", "-o", "name") == ""


def test_auth_can_i_answers_from_the_user_rules(server: KubeApiServer, tmp_path: Path) -> None:
    token = server.add_user(
        "reader",
        [
            AccessRule(
                verbs=["get", "list", "watch"], api_groups=[""], resources=["secrets"], namespaces=["flux-system"]
            )
        ],
    )
    reader = Kubectl(server, tmp_path, token=token)
    allowed = reader("auth", "can-i", "list", "secrets", "-n", "flux-system")
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes")
    denied = reader("auth", "can-i", "create", "secrets", "-n", "flux-system")
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    elsewhere = reader("auth", "can-i", "get", "secrets", "-n", "default")
    assert elsewhere.stdout.strip() == "no"
    whoami = reader("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == "reader"
    forbidden = reader("-n", "flux-system", "create", "secret", "generic", "x", "--from-literal=a=b")
    assert forbidden.returncode == 1
    assert forbidden.stderr.strip() == (
        'error: failed to create secret secrets is forbidden: User "reader" cannot create resource "secrets" in API '
        'group "" in the namespace "flux-system"'
    )


def test_auth_can_i_list_shows_the_rules_of_a_namespace(server: KubeApiServer, tmp_path: Path) -> None:
    rules = [
        AccessRule(verbs=["get", "list"], api_groups=[""], resources=["secrets"], namespaces=["flux-system"]),
        AccessRule(verbs=["patch"], api_groups=["apps"], resources=["deployments"], resource_names=["web"]),
    ]
    lister = Kubectl(server, tmp_path, token=server.add_user("lister", rules))
    listed = lister.ok("auth", "can-i", "--list", "-n", "flux-system")
    header, *rows = listed.strip().splitlines()
    assert header.split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    table = {row.split()[0]: row.split() for row in rows}
    assert table["secrets"] == ["secrets", "[]", "[]", "[get", "list]"]
    assert table["deployments.apps"] == ["deployments.apps", "[]", "[web]", "[patch]"]
    elsewhere = lister.ok("auth", "can-i", "--list", "-n", "default")
    assert "secrets" not in {row.split()[0] for row in elsewhere.strip().splitlines()[1:]}
