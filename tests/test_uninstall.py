"""`flux-azdo uninstall` against the sandbox: Flux bootstrapped first, then removed, with what it deployed kept.

The simulator does not apply a Kustomization's contents (bootstrap applies its own), so the workloads "Flux
deployed" are created here as kustomize-controller leaves them: labelled `kustomize.toolkit.fluxcd.io/*`, and
one owned by the Kustomization, the case the garbage collector would take along. The command runs as its own
Kubernetes user, so its requests can be told from the simulator's.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flux_azdo.cluster.apply import apply_objects, parse_objects
from flux_azdo.cluster.client import Cluster
from flux_azdo.sandbox.runtime import Sandbox
from support.cli_runs import admin_cluster, bootstrap_argv, git, run_cli, user_kubeconfig
from support.isolation import CREDENTIAL_VARIABLES, isolate_environment
from support.seeding import seed

USER = "uninstaller"
KUSTOMIZE_LABELS = {
    "kustomize.toolkit.fluxcd.io/name": "flux-system",
    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
}
WORKLOADS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: apps
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: apps
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
spec:
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers: [{name: podinfo, image: ghcr.io/stefanprodan/podinfo:6.7.0}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: apps
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
data: {greeting: hello}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: podinfo
  namespace: apps
spec:
  interval: 5m
  url: http://127.0.0.1:9/nowhere/podinfo
  ref: {branch: main}
"""
APPS_FILE = "clusters/sandbox/apps/podinfo.yaml"


class _Input(io.StringIO):
    def __init__(self, text: str, *, tty: bool) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential or kubeconfig from the machine, an isolated HOME, stdin not a terminal."""
    isolate_environment(monkeypatch, tmp_path / "home", unset=(*CREDENTIAL_VARIABLES, "FLUX_SYSTEM_NAMESPACE"))


@pytest.fixture
def kubeconfig(cluster_sandbox: Sandbox, tmp_path: Path) -> Path:
    """A kubeconfig of a user of its own with every right: the requests it makes are ours alone."""
    return user_kubeconfig(cluster_sandbox, USER, tmp_path / "uninstaller.kubeconfig")


@pytest.fixture
def cluster(cluster_sandbox: Sandbox) -> Iterator[Cluster]:
    """A separate connection (the sandbox's admin) for looking at the cluster afterwards."""
    with admin_cluster(cluster_sandbox) as connection:
        yield connection


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv)


def bootstrap(capsys: pytest.CaptureFixture[str], sandbox: Sandbox, kubeconfig: Path, sample_file: Path) -> None:
    os.environ["GIT_PASSWORD"] = sandbox.pat  # the autouse fixture removes it again after the test
    code, _, err = run(capsys, *bootstrap_argv("bootstrap", sandbox, kubeconfig, sample_file))
    del os.environ["GIT_PASSWORD"]
    assert code == 0, err


def deploy_workloads(cluster: Cluster, *, owned_by_kustomization: bool = False) -> None:
    """What kustomize-controller would have applied; optionally a ConfigMap in flux-system that names the
    Kustomization as its owner (the garbage collector deletes such dependents with their owner)."""
    apply_objects(cluster, parse_objects(WORKLOADS), field_manager="kustomize-controller")
    if owned_by_kustomization:
        owner = cluster.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "flux-system")
        assert owner is not None
        owned: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "owned-by-flux",
                "namespace": "flux-system",
                "labels": KUSTOMIZE_LABELS,
                "ownerReferences": [
                    {
                        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                        "kind": "Kustomization",
                        "name": "flux-system",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            },
            "data": {"kept": "yes"},
        }
        apply_objects(cluster, [owned], field_manager="kustomize-controller")


def items(cluster: Cluster, path: str, **query: Any) -> list[dict[str, Any]]:
    import json

    from flux_azdo.cluster.client import NotFound

    try:
        with cluster.errors(f"list {path}"):
            response = cluster.dynamic.request("get", path, serialize=False, **query)
    except NotFound:
        return []
    return list(json.loads(response.data).get("items") or [])


def names(objects: list[dict[str, Any]]) -> set[str]:
    return {str(o["metadata"]["name"]) for o in objects}


def flux_crds(cluster: Cluster) -> set[str]:
    return {
        str(crd["metadata"]["name"])
        for crd in items(cluster, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        if str(crd["spec"]["group"]).endswith(".fluxcd.io")
    }


def part_of_flux(cluster: Cluster, collection: str) -> set[str]:
    return names(items(cluster, collection, label_selector="app.kubernetes.io/part-of=flux"))


def writes(sandbox: Sandbox) -> list[tuple[str, str, str, str]]:
    """(verb, resource, namespace, name) of each write request the command made, in order."""
    assert sandbox.kube is not None
    return [(r.verb, r.resource, r.namespace, r.name) for r in sandbox.kube.requests if r.user == USER and r.is_write]


def test_uninstall_leaves_no_flux_object_behind_and_what_flux_deployed_keeps_running(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)
    deploy_workloads(cluster)
    assert flux_crds(cluster) and part_of_flux(cluster, "/apis/rbac.authorization.k8s.io/v1/clusterroles")
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()

    code, out, err = run(capsys, "uninstall", "--silent", "--kubeconfig", str(kubeconfig), "--timeout", "60s")

    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == "► suspending toolkit.fluxcd.io objects in all namespaces"
    for line in (
        "✔ GitRepository/apps/podinfo suspended",
        "✔ Kustomization/flux-system/flux-system suspended",
        "► deleting components in flux-system namespace",
        "✔ Deployment/flux-system/kustomize-controller deleted",
        "✔ ClusterRole/crd-controller-flux-system deleted",
        "✔ ClusterRoleBinding/cluster-reconciler-flux-system deleted",
        "► deleting toolkit.fluxcd.io finalizers in all namespaces",
        "✔ Kustomization/flux-system/flux-system finalizers deleted",
        "✔ GitRepository/apps/podinfo deleted",
        "► deleting toolkit.fluxcd.io custom resource definitions",
        "✔ CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io deleted",
        "◎ waiting for namespace flux-system to be deleted",
        "✔ Namespace/flux-system deleted",
    ):
        assert line in lines, f"{line!r} not in:\n{err}"
    assert lines[-1] == "✔ uninstall finished"
    assert out == ""

    assert flux_crds(cluster) == set()
    assert "flux-system" not in names(items(cluster, "/api/v1/namespaces"))
    assert part_of_flux(cluster, "/apis/rbac.authorization.k8s.io/v1/clusterroles") == set()
    assert part_of_flux(cluster, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings") == set()
    assert part_of_flux(cluster, "/apis/apps/v1/deployments") == set()
    # What Flux deployed is still there, untouched.
    assert cluster.get("apps/v1", "Deployment", "podinfo", "apps") is not None
    assert cluster.get("v1", "ConfigMap", "settings", "apps") is not None
    assert "apps" in names(items(cluster, "/api/v1/namespaces"))
    assert not any(ns == "apps" and resource != "gitrepositories" for _, resource, ns, _ in writes(cluster_sandbox))

    # The order that keeps kustomize-controller from pruning: suspended, controllers deleted, finalizers
    # removed, and only then the Kustomization deleted.
    done = writes(cluster_sandbox)
    kustomization = [i for i, w in enumerate(done) if w[1:] == ("kustomizations", "flux-system", "flux-system")]
    controller = done.index(("delete", "deployments", "flux-system", "kustomize-controller"))
    assert [done[i][0] for i in kustomization] == ["patch", "patch", "delete"]
    assert kustomization[0] < controller < kustomization[1]


def test_keep_crds_and_keep_namespace_keep_them_and_a_dependent_of_a_flux_object_is_not_garbage_collected(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)
    deploy_workloads(cluster, owned_by_kustomization=True)
    crds = flux_crds(cluster)

    code, _, err = run(
        capsys, "uninstall", "--silent", "--keep-crds", "--keep-namespace", "--kubeconfig", str(kubeconfig)
    )

    assert code == 0, err
    lines = err.splitlines()
    assert "✔ kept the toolkit.fluxcd.io custom resource definitions (--keep-crds)" in lines
    assert "✔ kept namespace flux-system (--keep-namespace)" in lines
    assert any(line.startswith("⚠️  Secret flux-system/flux-system (the Git credential) is kept") for line in lines)
    assert not any("CustomResourceDefinition/" in line or "Namespace/" in line for line in lines)
    assert flux_crds(cluster) == crds
    assert cluster.get("v1", "Namespace", "flux-system") is not None
    assert cluster.get("v1", "Secret", "flux-system", "flux-system") is not None
    # No Flux object and no component left: only the types and the namespace.
    for collection in (
        "/apis/source.toolkit.fluxcd.io/v1/gitrepositories",
        "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations",
    ):
        assert items(cluster, collection) == []
    for collection in (
        "/apis/apps/v1/namespaces/flux-system/deployments",
        "/api/v1/namespaces/flux-system/services",
        "/api/v1/namespaces/flux-system/serviceaccounts",
        "/apis/networking.k8s.io/v1/namespaces/flux-system/networkpolicies",
        "/api/v1/namespaces/flux-system/resourcequotas",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    ):
        assert part_of_flux(cluster, collection) == set(), collection
    # The Kustomization was deleted with propagationPolicy Orphan: its dependent stays, detached.
    owned = cluster.get("v1", "ConfigMap", "owned-by-flux", "flux-system")
    assert owned is not None and not owned["metadata"].get("ownerReferences")
    assert cluster.get("apps/v1", "Deployment", "podinfo", "apps") is not None

    # Nothing suspended is left to block the next bootstrap.
    bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)


def test_remove_manifests_commits_the_removal_of_the_flux_folder_only(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(cluster_sandbox, {APPS_FILE: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podinfo}\n"}, "Add podinfo")
    bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)
    before = git(cluster_sandbox, "log", "--format=%s", "refs/heads/main").splitlines()
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    argv = [
        "uninstall",
        "--silent",
        "--kubeconfig",
        str(kubeconfig),
        "--remove-manifests",
        "--url",
        cluster_sandbox.repo_url,
        "--allow-insecure-http",
        "--commit-message-appendix",
        "[skip ci]",
    ]

    code, _, err = run(capsys, *argv)

    assert code == 0, err
    after = git(cluster_sandbox, "log", "--format=%B%x00", "refs/heads/main").split("\0")
    assert len([m for m in after if m.strip()]) == len(before) + 1
    assert after[0].strip() == "Remove Flux manifests\n\n[skip ci]"
    assert git(cluster_sandbox, "ls-tree", "-r", "--name-only", "refs/heads/main").splitlines() == [APPS_FILE]
    head = git(cluster_sandbox, "rev-parse", "refs/heads/main")
    lines = err.splitlines()
    assert lines.index(f'► cloning branch "main" from Git repository "{cluster_sandbox.repo_url}"') < lines.index(
        "► suspending toolkit.fluxcd.io objects in all namespaces"
    )
    assert '► removing "clusters/sandbox/flux-system" from branch "main"' in lines
    assert f'✔ committed removal of Flux manifests to "main" ("{head}")' in lines
    assert lines[-1] == "✔ uninstall finished"
    assert cluster_sandbox.pat not in err
    assert flux_crds(cluster) == set()

    # Again: nothing left in the cluster, nothing to commit, and that is not an error.
    code, _, err = run(capsys, *argv, "--path", "clusters/sandbox")
    assert code == 0, err
    assert git(cluster_sandbox, "rev-parse", "refs/heads/main") == head
    assert '✔ "clusters/sandbox/flux-system" is not in branch "main": nothing to remove' in err.splitlines()
    assert "⚠️  found no Flux components in namespace flux-system and no Flux objects" in err.splitlines()


def test_remove_manifests_with_a_bad_token_stops_before_anything_is_deleted(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()
    monkeypatch.setenv("GIT_PASSWORD", "not-a-valid-personal-access-token")

    code, _, err = run(
        capsys,
        "uninstall",
        "--silent",
        "--kubeconfig",
        str(kubeconfig),
        "--remove-manifests",
        "--url",
        cluster_sandbox.repo_url,
        "--allow-insecure-http",
    )

    assert code == 1
    assert err.splitlines()[-1].startswith("✗ ")
    assert "suspending" not in err
    assert writes(cluster_sandbox) == []
    assert cluster.get("v1", "Namespace", "flux-system") is not None
    assert "not-a-valid-personal-access-token" not in err


def test_flux_managed_by_another_tool_is_left_alone_unless_forced(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)
    crd = "gitrepositories.source.toolkit.fluxcd.io"
    with cluster.errors("label the CRD"):
        cluster.dynamic.request(
            "patch",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}",
            body={"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"}}},
            content_type="application/merge-patch+json",
        )
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()

    code, _, err = run(capsys, "uninstall", "--silent", "--kubeconfig", str(kubeconfig))

    assert code == 1
    assert err.splitlines()[-1] == (
        "✗ Flux on this cluster is managed by Helm: it would reinstall what is deleted here: uninstall it with Helm, "
        "or pass --force"
    )
    assert writes(cluster_sandbox) == []

    code, _, err = run(capsys, "uninstall", "--silent", "--force", "--kubeconfig", str(kubeconfig))
    assert code == 0, err
    assert flux_crds(cluster) == set()


@pytest.mark.parametrize(
    ("stdin", "tty", "last_line"),
    [
        (
            "",
            False,
            "✗ uninstall asks for confirmation, and standard input is not a terminal: pass --silent to uninstall "
            "without asking",
        ),
        ("n\n", True, "✗ aborting: nothing was changed"),
        ("", True, "✗ aborting: nothing was changed"),
        ("y\n", True, "does not exist"),
    ],
    ids=["no-terminal", "no", "end-of-input", "yes"],
)
def test_without_silent_it_asks_and_never_hangs_without_a_terminal(
    stdin: str,
    tty: bool,
    last_line: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused or declined before anything connects; "y" goes on (to a kubeconfig that is not there)."""
    monkeypatch.setattr(sys, "stdin", _Input(stdin, tty=tty))
    kubeconfig = tmp_path / "nowhere.kubeconfig"

    code, out, err = run(capsys, "uninstall", "--kubeconfig", str(kubeconfig))

    assert code == 1
    if tty:
        assert err.startswith("? Are you sure you want to delete Flux and its custom resource definitions [y/N] ")
    if last_line.startswith("✗"):
        assert err.rstrip("\n").endswith(last_line)
    else:
        assert err.endswith(
            f"✗ kubeconfig {kubeconfig} does not exist: pass --kubeconfig or set KUBECONFIG; for AKS: az aks get-credentials --resource-group <group> --name <cluster>\n"
        )
    assert out == ""


def test_repository_flags_without_remove_manifests_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "uninstall", "--silent", "--url", "https://dev.azure.com/o/p/_git/r")
    assert code == 2
    assert "--url applies with --remove-manifests only" in err


def test_a_namespace_without_flux_stops_before_anything_is_changed(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`flux uninstall -n typo` deletes every Flux object and CRD of the cluster; we stop and name the namespace."""
    bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()
    crds = flux_crds(cluster)

    code, _, err = run(capsys, "uninstall", "--silent", "-n", "flux-sytem", "--kubeconfig", str(kubeconfig))

    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "✗ found no Flux controllers in namespace flux-sytem (Flux runs in: flux-system): nothing was changed: "
        "pass --namespace flux-system; --force removes the Flux objects and custom resource definitions anyway"
    )
    assert writes(cluster_sandbox) == []
    assert flux_crds(cluster) == crds
