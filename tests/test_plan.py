"""`flux-azdo plan` and `flux-azdo check --kubeconfig` against the sandbox, driven as a user runs them.

`plan` must write nowhere: the sandbox repository's refs are compared before and after, and every request the
plan makes to the API server is counted under its own Kubernetes user (the Flux simulator's writes are not
ours), where nothing may be a write (server-side dry runs and access reviews store nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes.client
import pytest

from flux_azdo.cli import main
from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.sandbox.azure_devops import security
from flux_azdo.sandbox.kube import AccessRule
from flux_azdo.sandbox.runtime import FULL_SCOPES, Sandbox
from support.cli_runs import SSH_PATCH_KUSTOMIZATION, bootstrap_argv, git, run_cli, user_kubeconfig, writes_by
from support.isolation import isolate_environment
from support.seeding import seed

PLANNER = "planner"
FOLDER = "clusters/sandbox/flux-system"
COMPONENTS = f"{FOLDER}/gotk-components.yaml"
SYNC = f"{FOLDER}/gotk-sync.yaml"
KUSTOMIZATION = f"{FOLDER}/kustomization.yaml"
CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential or kubeconfig from the machine running the tests, an isolated HOME for git and kubectl."""
    isolate_environment(monkeypatch, tmp_path / "home")


@pytest.fixture
def kubeconfig(cluster_sandbox: Sandbox, tmp_path: Path) -> Path:
    """A user of its own with every right, for plan and bootstrap: the requests it makes are ours alone."""
    return user_kubeconfig(cluster_sandbox, PLANNER, tmp_path / "planner.kubeconfig")


def run(
    capsys: pytest.CaptureFixture[str],
    command: str,
    sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    *extra: str,
) -> tuple[int, str, str]:
    """`plan` or `bootstrap` with the same flags; later flags in `extra` override these (argparse keeps the last)."""
    return run_cli(capsys, *bootstrap_argv(command, sandbox, kubeconfig, sample_file, *extra))


def refs(sandbox: Sandbox) -> str:
    """Every ref of the sandbox's bare repository with its sha: any push or new branch changes this."""
    return git(sandbox, "for-each-ref", "--format=%(refname) %(objectname)", check=True)


def requests(sandbox: Sandbox) -> list[str]:
    assert sandbox.kube is not None
    return [
        f"{r.verb} {r.resource} {r.namespace}/{r.name}{' dry-run' if r.dry_run else ''}"
        for r in sandbox.kube.requests
        if r.user == PLANNER
    ]


def writes(sandbox: Sandbox) -> list[str]:
    return writes_by(sandbox, PLANNER)


def bootstrapped(capsys: pytest.CaptureFixture[str], sandbox: Sandbox, kubeconfig: Path, sample_file: Path) -> str:
    """A first bootstrap, then the request log emptied: what comes after is the plan's alone. The refs after it."""
    assert sandbox.kube is not None
    code, _, err = run(capsys, "bootstrap", sandbox, kubeconfig, sample_file)
    assert code == 0, err
    assert writes(sandbox), "the bootstrap wrote, as this user (else the plan's count of writes proves nothing)"
    sandbox.kube.reset_requests()
    return refs(sandbox)


def object_line(action: str, ref: str) -> str:
    return f"  {action:<10} {ref}"


def test_plan_on_an_empty_repository_and_cluster_would_create_everything_and_writes_nothing(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    before = refs(cluster_sandbox)

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file)

    assert code == 2, err
    assert err.splitlines()[0] == "► checking the repository and the cluster before any change"
    assert "✔ preflight checks passed" in err
    lines = out.splitlines()
    assert (
        lines[0]
        == f'Repository {cluster_sandbox.repo_url}, branch "main" (empty repository: the first push creates it):'
    )
    files = lines[1:4]
    assert [line.split()[0] for line in files] == ["create"] * 3
    assert [line.split()[1] for line in files] == [COMPONENTS, SYNC, KUSTOMIZATION]
    # Every file's diff against nothing, the long one cut with a count of what is left out.
    assert "--- /dev/null" in lines and f"+++ b/{SYNC}" in lines and f"+++ b/{COMPONENTS}" in lines
    assert "+  name: flux-system" in lines
    assert any(line.startswith("... ") and "more lines of this diff not shown" in line for line in lines)
    heading = next(line for line in lines if line.startswith("Cluster "))
    assert heading.startswith("Cluster https://127.0.0.1:")
    assert heading.endswith(" (Flux v0.0.0-sample, first install: bootstrap installs the components):")
    assert object_line("create", "CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io") in lines
    assert object_line("create", "Namespace/flux-system") in lines
    for controller in CONTROLLERS:
        assert object_line("create", f"Deployment/flux-system/{controller}") in lines
    assert object_line("create", "GitRepository/flux-system/flux-system") in lines
    assert object_line("create", "Kustomization/flux-system/flux-system") in lines
    assert object_line("create", "Secret/flux-system/flux-system (source secret, values not shown)") in lines
    assert not any(line.split()[:1] in (["update"], ["unchanged"]) for line in lines if line.startswith("  "))
    assert lines[-1].startswith("Bootstrap would change: files: 3 to create, 0 to update; objects: ")
    assert lines[-1].endswith("source secret: to create.")

    assert cluster_sandbox.pat not in out + err
    assert refs(cluster_sandbox) == before == ""
    assert writes(cluster_sandbox) == []
    assert any(r.endswith("dry-run") for r in requests(cluster_sandbox)), "the CRDs were asked about by dry run"
    with Cluster(ClusterAccess(cluster_sandbox.kubeconfig_path)) as admin:
        assert admin.get("v1", "Namespace", "flux-system") is None


def test_plan_as_json_gives_every_file_object_and_secret_as_data(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file, "--output", "json")

    assert code == 2, err
    plan = json.loads(out)
    assert set(plan) == {
        "url",
        "branch",
        "version",
        "cluster",
        "changed",
        "repository",
        "files",
        "install",
        "objects",
        "secret",
        "imagePullSecret",
        "summary",
    }
    assert plan["changed"] is True and plan["install"] is True and plan["repository"] == "empty"
    assert plan["url"] == cluster_sandbox.repo_url and plan["branch"] == "main"
    assert plan["cluster"].startswith("https://127.0.0.1:") and plan["version"] == "v0.0.0-sample"
    assert [(f["path"], f["status"]) for f in plan["files"]] == [
        (COMPONENTS, "create"),
        (SYNC, "create"),
        (KUSTOMIZATION, "create"),
    ]
    sync = plan["files"][1]
    assert sync["diff"].startswith(f"--- /dev/null\n+++ b/{SYNC}\n@@ -0,0 +1,")
    assert sync["removed"] == 0 and sync["added"] == sync["diff"].count("\n+") - 1
    components = plan["files"][0]
    assert components["added"] > 1000, "the whole file is in the JSON diff, not the text output's first lines"
    assert {o["action"] for o in plan["objects"]} == {"create"}
    kinds = {(o["kind"], o["namespace"], o["name"]) for o in plan["objects"]}
    assert ("Deployment", "flux-system", "source-controller") in kinds
    assert ("CustomResourceDefinition", None, "kustomizations.kustomize.toolkit.fluxcd.io") in kinds
    assert plan["secret"] == {"namespace": "flux-system", "name": "flux-system", "action": "create", "removedKeys": []}
    assert plan["imagePullSecret"] is None
    assert plan["summary"]["files"] == {"create": 3, "update": 0, "unchanged": 0}
    assert plan["summary"]["objects"]["create"] == len(plan["objects"])
    assert cluster_sandbox.pat not in out + err
    assert writes(cluster_sandbox) == []


def test_after_a_bootstrap_nothing_would_change_and_the_path_guard_still_stops_the_plan(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    after_bootstrap = bootstrapped(capsys, cluster_sandbox, kubeconfig, sample_file)

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file)

    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["unchanged"] * 3
    assert not any(line.startswith(("---", "+++", "@@")) for line in lines)
    assert any(line.startswith("  unchanged  ") and line.endswith(" objects") for line in lines)
    assert object_line("unchanged", "Secret/flux-system/flux-system (source secret, values not shown)") in lines
    assert lines[-1] == "Nothing would change: the repository and the cluster are as bootstrap would leave them."
    assert "✔ planned: nothing would change" in err
    assert refs(cluster_sandbox) == after_bootstrap
    assert writes(cluster_sandbox) == []

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file, "--path", "clusters/other")

    assert code == 1
    assert out == ""
    assert any(
        line.startswith('✗ sync path configuration ("clusters/other") would overwrite path')
        for line in err.splitlines()
    )
    assert err.splitlines()[-1].startswith("✗ a bootstrap would stop at its preflight")
    assert refs(cluster_sandbox) == after_bootstrap
    assert writes(cluster_sandbox) == []


def test_another_log_level_shows_the_components_diff_and_the_deployments_as_update(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    after_bootstrap = bootstrapped(capsys, cluster_sandbox, kubeconfig, sample_file)

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file, "--log-level", "debug")

    assert code == 2, err
    lines = out.splitlines()
    count = len(CONTROLLERS)
    assert lines[1].split() == ["update", COMPONENTS, f"(+{count}", f"-{count})"]
    assert lines[2].split() == ["unchanged", SYNC]
    assert lines[3].split() == ["unchanged", KUSTOMIZATION]
    assert f"--- a/{COMPONENTS}" in lines and f"+++ b/{COMPONENTS}" in lines
    assert lines.count("-        - --log-level=info") == count
    assert lines.count("+        - --log-level=debug") == count
    for controller in CONTROLLERS:
        assert object_line("update", f"Deployment/flux-system/{controller}") in lines
    assert not any(line.startswith("  create ") for line in lines)
    assert object_line("unchanged", "Secret/flux-system/flux-system (source secret, values not shown)") in lines
    assert lines[-1].startswith(
        f"Bootstrap would change: files: 0 to create, 1 to update; objects: 0 to create, {count} to update"
    )
    assert refs(cluster_sandbox) == after_bootstrap
    assert writes(cluster_sandbox) == []

    # The plan was right: a bootstrap with that flag makes it true, and the same plan then finds nothing.
    code, _, err = run(capsys, "bootstrap", cluster_sandbox, kubeconfig, sample_file, "--log-level", "debug")
    assert code == 0, err
    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file, "--log-level", "debug")
    assert code == 0, err + out


def test_an_extra_controller_is_planned_as_new_objects_and_a_components_update(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    after_bootstrap = bootstrapped(capsys, cluster_sandbox, kubeconfig, sample_file)

    code, out, err = run(
        capsys,
        "plan",
        cluster_sandbox,
        kubeconfig,
        sample_file,
        "--components-extra",
        "image-reflector-controller",
        "--output",
        "json",
        "--diff-lines",
        "0",
    )

    assert code == 2, err
    plan = json.loads(out)
    assert plan["install"] is False
    assert [f["status"] for f in plan["files"]] == ["update", "unchanged", "unchanged"]
    assert "+  name: image-reflector-controller" in plan["files"][0]["diff"].splitlines()
    actions = {(o["kind"], o["name"]): o["action"] for o in plan["objects"]}
    assert actions[("Deployment", "image-reflector-controller")] == "create"
    assert actions[("CustomResourceDefinition", "imagerepositories.image.toolkit.fluxcd.io")] == "create"
    assert actions[("Deployment", "source-controller")] == "unchanged"
    assert actions[("GitRepository", "flux-system")] == "unchanged"
    assert plan["secret"]["action"] == "unchanged"
    assert refs(cluster_sandbox) == after_bootstrap
    assert writes(cluster_sandbox) == []


def test_a_changed_pat_is_planned_as_a_secret_update_without_its_value(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    bootstrapped(capsys, cluster_sandbox, kubeconfig, sample_file)
    other = cluster_sandbox.world.issue_pat(cluster_sandbox.user, FULL_SCOPES)
    monkeypatch.setenv("GIT_PASSWORD", other)

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file)

    assert code == 2, err
    assert object_line("update", "Secret/flux-system/flux-system (source secret, values not shown)") in out.splitlines()
    assert out.splitlines()[-1].endswith("source secret: to update.")
    assert other not in out + err and cluster_sandbox.pat not in out + err
    assert writes(cluster_sandbox) == []


def test_an_old_credentials_key_in_the_secret_is_planned_as_its_removal(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Left from an SSH bootstrap: `identity` and `known_hosts` next to the PAT. Bootstrap's update removes them
    (and keeps ca.crt, no credential); the plan says which keys would go, never a value."""
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    bootstrapped(capsys, cluster_sandbox, kubeconfig, sample_file)
    old = {"identity": "OLD PRIVATE KEY", "known_hosts": "host ssh-rsa AAAA", "ca.crt": "PEM"}
    with Cluster(ClusterAccess(cluster_sandbox.kubeconfig_path)) as admin:
        kubernetes.client.CoreV1Api(admin.api_client).patch_namespaced_secret(
            "flux-system", "flux-system", {"stringData": old}
        )

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file)

    assert code == 2, err
    secret = (
        "Secret/flux-system/flux-system (source secret, values not shown; would remove the old identity, known_hosts)"
    )
    assert object_line("update", secret) in out.splitlines()
    assert "OLD PRIVATE KEY" not in out + err and cluster_sandbox.pat not in out + err
    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file, "--output", "json")
    assert code == 2, err
    assert json.loads(out)["secret"] == {
        "namespace": "flux-system",
        "name": "flux-system",
        "action": "update",
        "removedKeys": ["identity", "known_hosts"],
    }
    assert writes(cluster_sandbox) == []


def test_a_switch_from_a_pat_to_workload_identity_plans_the_secretref_removal_as_an_update(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bootstrap removes `secretRef` with a merge patch before its apply (a server-side apply would leave
    `secretRef: {}`, which the CRD refuses); the plan predicts that instead of failing its dry run with a 422."""
    sandbox = cluster_sandbox
    sandbox.world.allow(
        sandbox.workload_identity,
        security.repository_token(sandbox.project.id, sandbox.repository.id),
        security.GitPermission.GENERIC_READ,
    )
    monkeypatch.setenv("GIT_PASSWORD", sandbox.pat)
    before = bootstrapped(capsys, sandbox, kubeconfig, sample_file)
    azure = ("--provider", "azure", "--azure-client-id", sandbox.workload_client_id)

    code, out, err = run(capsys, "plan", sandbox, kubeconfig, sample_file, *azure)

    assert code == 2, err
    lines = out.splitlines()
    assert object_line("update", "GitRepository/flux-system/flux-system") in lines
    assert "422" not in out + err and "secretRef" not in err
    assert sandbox.pat not in out + err
    assert refs(sandbox) == before
    assert writes(sandbox) == []
    assert "patch gitrepositories flux-system/flux-system dry-run" in requests(sandbox)
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as admin:
        live = admin.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
        assert live is not None and live["spec"]["secretRef"] == {"name": "flux-system"}


def test_a_usage_mistake_in_plan_exits_1_not_2(capsys: pytest.CaptureFixture[str]) -> None:
    """2 means "something would change": a script must never read a typo as that."""
    code = main(["plan", "--url", "https://dev.azure.com/o/p/_git/r", "--diff-lines", "-3"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "--diff-lines" in err and "negative" in err
    code = main(["plan", "--url", "https://dev.azure.com/o/p/_git/r", "--timeout", "soon"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "--timeout='soon' is not a positive duration" in err


# ---------------------------------------------------------------------------------------------- check --kubeconfig


def check(capsys: pytest.CaptureFixture[str], sandbox: Sandbox, *extra: str) -> tuple[int, str, str]:
    return run_cli(capsys, "check", "--url", sandbox.repo_url, "--allow-insecure-http", *extra)


def test_check_with_a_kubeconfig_adds_the_cluster_checks(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    code, without, _ = check(capsys, cluster_sandbox)
    assert code == 0
    assert "answers: Kubernetes" not in without

    # The sandbox's API server is Kubernetes 1.32: too old for the default Flux release, fine for v2.7.
    code, out, err = check(capsys, cluster_sandbox, "--kubeconfig", str(kubeconfig))
    assert code == 1, out + err
    assert "✗ Kubernetes v1.32.4 is older than Flux v2.9.4 supports (>= 1.33.0)" in out.splitlines()

    code, out, err = check(
        capsys, cluster_sandbox, "--kubeconfig", str(kubeconfig), "--path", "clusters/sandbox", "--version", "v2.7.0"
    )

    assert code == 0, out + err
    lines = out.splitlines()
    server = next(line for line in lines if "answers: Kubernetes" in line)
    assert server.startswith("✔ the API server https://127.0.0.1:")
    assert "✔ Kubernetes v1.32.4 is supported by Flux v2.7.0 (>= 1.32.0)" in lines
    assert "✔ Flux is not installed on this cluster" in lines
    assert "✔ no Kustomization flux-system/flux-system yet" in lines
    assert lines[-1].startswith("✔ ready")
    assert writes(cluster_sandbox) == []

    code, out, _ = check(capsys, cluster_sandbox, "--kubeconfig", str(kubeconfig), "-v", "2.7.0", "--output", "json")
    assert code == 0
    report = json.loads(out)
    keys = [item["key"] for item in report["checks"]]
    assert keys[-5:] == ["cluster", "kubernetes-version", "cluster-rbac", "existing-flux", "path-guard"]
    assert report["verdict"] == "ready"


def test_check_blocks_a_user_who_may_not_create_crds(
    cluster_sandbox: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cluster_sandbox.kube is not None
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    token = cluster_sandbox.kube.add_user(
        "reader",
        [
            AccessRule(verbs=("get", "list", "watch")),
            AccessRule(verbs=("create",), api_groups=("",), resources=("namespaces", "secrets")),
            AccessRule(
                verbs=("create",), api_groups=("rbac.authorization.k8s.io",), resources=("clusterrolebindings",)
            ),
        ],
    )
    path = tmp_path / "reader.kubeconfig"
    cluster_sandbox.kube.write_kubeconfig(path, token=token)

    code, out, err = check(capsys, cluster_sandbox, "--kubeconfig", str(path), "--version", "v2.7.0")

    assert code == 1, out + err
    lines = out.splitlines()
    assert (
        "✗ the kubeconfig's user may not create customresourcedefinitions.apiextensions.k8s.io, which bootstrap needs"
    ) in lines
    assert not any("may not create namespaces" in line for line in lines)
    assert lines[-1].startswith("✗ blocked: fix the 1 problem above")

    code, out, _ = check(capsys, cluster_sandbox, "--kubeconfig", str(path), "--version", "v2.7.0", "--output", "json")
    assert code == 1
    report = json.loads(out)
    assert report["verdict"] == "blocked"
    assert [i["status"] for i in report["checks"] if i["key"] == "cluster-rbac"] == ["fail"]


def test_check_reports_an_unknown_context_as_a_failed_cluster_check(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)

    code, out, err = check(capsys, cluster_sandbox, "--kubeconfig", str(kubeconfig), "--context", "nowhere")

    assert code == 1, out + err
    lines = out.splitlines()
    failed = [line for line in lines if line.startswith("✗ ") and "nowhere" in line]
    assert failed, out
    skipped = [line for line in lines if line.endswith(": not checked: no cluster to ask")]
    assert skipped == [
        "– Kubernetes version: not checked: no cluster to ask",
        "– cluster rights (RBAC): not checked: no cluster to ask",
        "– existing Flux: not checked: no cluster to ask",
        "– Kustomization path: not checked: no cluster to ask",
    ], out
    assert lines[-1].startswith("✗ blocked")


USER_KUSTOMIZATION = SSH_PATCH_KUSTOMIZATION


def test_a_user_kustomization_with_patches_is_planned_through_kustomize(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The objects are what kustomize builds from the planned files (the patch included): after the bootstrap,
    the patched Deployment compares equal, so nothing would change; a plan without kustomize would see an update."""
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    seed(cluster_sandbox, {KUSTOMIZATION: USER_KUSTOMIZATION}, "Flux: accept rsa-sha2 host keys")
    before = refs(cluster_sandbox)

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file, "--output", "json")

    assert code == 2, err
    plan = json.loads(out)
    assert [(f["path"], f["status"]) for f in plan["files"]] == [
        (COMPONENTS, "create"),
        (SYNC, "create"),
        (KUSTOMIZATION, "unchanged"),
    ]
    assert refs(cluster_sandbox) == before
    assert writes(cluster_sandbox) == []

    bootstrapped(capsys, cluster_sandbox, kubeconfig, sample_file)
    with Cluster(ClusterAccess(cluster_sandbox.kubeconfig_path)) as admin:
        deployment = admin.get("apps/v1", "Deployment", "source-controller", "flux-system")
    assert deployment is not None
    assert (
        "--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256"
        in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    )

    code, out, err = run(capsys, "plan", cluster_sandbox, kubeconfig, sample_file)

    assert code == 0, err + out
    assert writes(cluster_sandbox) == []


def test_create_repo_plans_the_repository_it_would_create_without_creating_it(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    url = cluster_sandbox.repo_url.rsplit("/", 1)[0] + "/cluster-two"

    code, out, err = run(
        capsys, "plan", cluster_sandbox, kubeconfig, sample_file, "--url", url, "--create-repo", "--diff-lines", "0"
    )

    assert code == 2, err
    assert '✔ repository "cluster-two" would be created (--create-repo)' in err.splitlines()
    lines = out.splitlines()
    assert lines[0] == f'Repository {url}, branch "main" (the repository would be created: --create-repo):'
    assert [line.split()[0] for line in lines[1:4]] == ["create"] * 3
    assert not any(line.startswith("--- ") for line in lines)
    assert cluster_sandbox.world.find_repository(cluster_sandbox.project, "cluster-two") is None
    assert writes(cluster_sandbox) == []


def test_a_user_kustomization_without_the_ssh_patch_stops_the_plan_as_it_stops_bootstrap(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if cluster_sandbox.ssh_url is None or cluster_sandbox.ssh_key_path is None:
        pytest.skip("the sandbox's SSH endpoint needs OpenSSH's sshd")
    seed(
        cluster_sandbox,
        {KUSTOMIZATION: "# mine: the user wrote this file\n" + USER_KUSTOMIZATION.split("patches:")[0]},
        "our own file",
    )
    before = refs(cluster_sandbox)
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", cluster_sandbox.pat)

    code, out, err = run(
        capsys,
        "plan",
        cluster_sandbox,
        kubeconfig,
        sample_file,
        "--url",
        cluster_sandbox.ssh_url,
        "--private-key-file",
        str(cluster_sandbox.ssh_key_path),
        "--ssh-known-hosts",
        str(cluster_sandbox.known_hosts_path),
        "--organization",
        cluster_sandbox.org_url,
        "--ssh-hostname",
        "ssh.dev.azure.com",
    )

    assert code == 1
    assert out == ""
    assert f"✗ {KUSTOMIZATION} lacks the Azure DevOps SSH host key algorithms patch" in err
    assert "      value: --ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256" in err
    assert err.splitlines()[-1].startswith("✗ a bootstrap would stop before pushing")
    assert refs(cluster_sandbox) == before
    assert writes(cluster_sandbox) == []
