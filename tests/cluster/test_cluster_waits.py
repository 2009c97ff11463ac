"""The waits of `flux_azdo.cluster.waits` against the sandbox's API server and Flux simulator.

Two kinds of cluster: `flux` has the sample distribution installed, so the simulator rolls out the Flux
Deployments and reconciles GitRepositories and Kustomizations from the sandbox repository like the controllers;
`bare` has only the Flux CRDs (no controller runs), so a test writes the status itself and controls exactly what
the wait sees and when. No timing assertions: deadlines are only used to end waits that must not succeed.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.cluster.health import (
    Condition,
    ObjectHealth,
    deployment_verdict,
    kustomization_waits_on_source,
    normalize_revision,
    render_health,
)
from flux_azdo.cluster.waits import (
    WaitFailed,
    health_report,
    wait_for_deployments,
    wait_for_kustomization,
    wait_for_source,
)
from flux_azdo.errors import UserError
from flux_azdo.sandbox.runtime import Sandbox
from support.azdo_world import GitCli, init_checkout
from support.sandboxes import running_sandbox

NS = "flux-system"
SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
COMPONENTS = ["helm-controller", "kustomize-controller", "notification-controller", "source-controller"]
PATH = "clusters/sandbox"
MERGE = "application/merge-patch+json"
SHA_A = "a" * 40
SHA_B = "b" * 40


# -- clusters -------------------------------------------------------------------------------------------------------


@dataclass
class Env:
    sandbox: Sandbox
    #: The product's view (what the waits use).
    cluster: Cluster
    #: A second connection for the test's own writes, so they never share a connection with a running wait.
    writer: Cluster
    tmp: Path

    def far(self) -> float:
        """A deadline no test reaches: a wait that succeeds or fails at once ends long before."""
        return time.monotonic() + 120.0

    def create(self, api_version: str, kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> None:
        body = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": NS, **metadata},
            "spec": spec,
        }
        self.writer.dynamic.create(self.writer.resource(api_version, kind), body=body, namespace=NS)

    def patch(self, api_version: str, kind: str, name: str, patch: dict[str, Any], *, status: bool = False) -> None:
        path = self.writer.resource(api_version, kind).path(name=name, namespace=NS) + ("/status" if status else "")
        self.writer.dynamic.request("patch", path, body=patch, content_type=MERGE)

    def set_status(self, api_version: str, kind: str, name: str, status: dict[str, Any]) -> None:
        self.patch(api_version, kind, name, {"status": status}, status=True)

    def get(self, api_version: str, kind: str, name: str) -> dict[str, Any]:
        found = self.writer.get(api_version, kind, name, NS)
        assert found is not None
        return found


def kubectl(sandbox: Sandbox, tmp: Path, *args: str, stdin: str | None = None) -> str:
    home = tmp / "kubectl-home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    command = ["kubectl", "--kubeconfig", str(sandbox.kubeconfig_path), *args]
    done = subprocess.run(command, env=env, input=stdin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def install(sandbox: Sandbox, tmp: Path, sample_text: str, *, crds_only: bool) -> None:
    """The sample distribution (or only its CRDs and Namespace, so no controller ever runs), applied and
    waited for with kubectl, independently of the product's apply."""
    text = sample_text
    if crds_only:
        documents = [
            d for d in yaml.safe_load_all(sample_text) if d and d["kind"] in ("CustomResourceDefinition", "Namespace")
        ]
        text = yaml.safe_dump_all(documents)
    kubectl(sandbox, tmp, "apply", "--server-side", "-f", "-", stdin=text)
    crds = ("crd/gitrepositories.source.toolkit.fluxcd.io", "crd/kustomizations.kustomize.toolkit.fluxcd.io")
    kubectl(sandbox, tmp, "wait", "--for=condition=Established", "--timeout=60s", *crds)


@contextlib.contextmanager
def connected(sandbox: Sandbox, tmp: Path) -> Iterator[Env]:
    access = ClusterAccess(kubeconfig=sandbox.kubeconfig_path)
    with Cluster(access) as cluster, Cluster(access) as writer:
        yield Env(sandbox, cluster, writer, tmp)


@pytest.fixture
def flux(cluster_sandbox: Sandbox, tmp_path: Path, sample_text: str) -> Iterator[Env]:
    """The sample distribution installed: the simulator plays the Flux controllers."""
    install(cluster_sandbox, tmp_path, sample_text, crds_only=False)
    with connected(cluster_sandbox, tmp_path) as env:
        yield env


@pytest.fixture
def bare(cluster_sandbox: Sandbox, tmp_path: Path, sample_text: str) -> Iterator[Env]:
    """Only the Flux CRDs: no controller runs, the test writes every status."""
    install(cluster_sandbox, tmp_path, sample_text, crds_only=True)
    with connected(cluster_sandbox, tmp_path) as env:
        yield env


# -- helpers ----------------------------------------------------------------------------------------------------------


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Test-side polling (the product never polls): until `probe` returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


class Background:
    """A wait running in a thread, so the test can change the cluster while it waits."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = call()
            except BaseException as error:
                self._error = error

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 60.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the wait did not end"
        if self._error is not None:
            raise self._error
        return self._value


def watching(env: Env, resource: str, before: int) -> None:
    """Until the wait has opened its (namespaced) watch; the simulator's informers watch cluster-wide."""

    def opened() -> bool:
        return (
            sum(
                1
                for r in env.sandbox.kube.requests
                if r.verb == "watch" and r.resource == resource and r.namespace == NS
            )
            > before
        )

    wait_until(f"a watch on {resource} in {NS}", opened)


def namespaced_watches(env: Env, resource: str) -> int:
    return sum(
        1 for r in env.sandbox.kube.requests if r.verb == "watch" and r.resource == resource and r.namespace == NS
    )


def namespaced_lists(env: Env, resource: str) -> int:
    return sum(
        1 for r in env.sandbox.kube.requests if r.verb == "list" and r.resource == resource and r.namespace == NS
    )


def push_commit(env: Env) -> str:
    """A commit on main in the sandbox repository with the cluster path in it; its Flux revision."""
    git = GitCli(env.tmp, env.sandbox.pat)
    init_checkout(git, "checkout", env.sandbox.repo_url)
    content = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"
    sha = git.commit("checkout", f"{PATH}/{NS}/kustomization.yaml", content, "Add the sandbox cluster")
    pushed = git.push("checkout", "HEAD:refs/heads/main")
    assert pushed.returncode == 0, pushed.stderr
    return f"main@sha1:{sha}"


def pat_secret(env: Env, name: str, password: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "stringData": {"username": "git", "password": password},
    }
    env.writer.dynamic.create(env.writer.resource("v1", "Secret"), body=body, namespace=NS)


def git_repository(env: Env, name: str, secret: str | None = None, **spec: Any) -> None:
    body: dict[str, Any] = {"interval": "1m0s", "url": env.sandbox.repo_url, "ref": {"branch": "main"}}
    if secret is not None:
        body["secretRef"] = {"name": secret}
    env.create(SOURCE_API, "GitRepository", name, {**body, **spec})


def kustomization(env: Env, name: str, source: str, **spec: Any) -> None:
    body = {
        "interval": "10m0s",
        "path": f"./{PATH}",
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": source},
    }
    env.create(KUSTOMIZE_API, "Kustomization", name, {**body, **spec})


def ready(status: str = "True", reason: str = "Succeeded", message: str = "", generation: int = 1) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def source_status(revision: str, condition: dict[str, Any], observed: int | None = 1, **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [condition], **extra}
    if revision:
        status["artifact"] = {
            "revision": revision,
            "digest": "sha256:" + "0" * 64,
            "lastUpdateTime": "2026-01-01T00:00:00Z",
            "path": f"gitrepository/{NS}/x/{revision.rpartition(':')[2]}.tar.gz",
            "url": f"http://source-controller.{NS}.svc.cluster.local./gitrepository/{NS}/x/latest.tar.gz",
        }
    if observed is not None:
        status["observedGeneration"] = observed
    return status


def ready_condition(health: ObjectHealth) -> Condition:
    return next(c for c in health.conditions if c.type == "Ready")


# -- with the simulated controllers ---------------------------------------------------------------------------------


def test_source_and_kustomization_become_ready_at_the_pushed_commit(flux: Env) -> None:
    revision = push_commit(flux)
    deployments = wait_for_deployments(flux.cluster, NS, list(reversed(COMPONENTS)), flux.far())
    assert [(h.name, h.ready, h.detail) for h in deployments] == [(name, True, "") for name in COMPONENTS]
    assert any(c.type == "Available" and c.status == "True" for c in deployments[0].conditions)

    pat_secret(flux, NS, flux.sandbox.pat)
    git_repository(flux, NS, secret=NS)
    kustomization(flux, NS, NS)
    source = wait_for_source(flux.cluster, NS, NS, revision, flux.far())
    applied = wait_for_kustomization(flux.cluster, NS, NS, revision, flux.far())

    assert (source.kind, source.name, source.ready, source.found) == ("GitRepository", NS, True, True)
    assert ready_condition(source).message == f"stored artifact for revision '{revision}'"
    assert flux.get(SOURCE_API, "GitRepository", NS)["status"]["artifact"]["revision"] == revision
    assert (applied.kind, applied.ready) == ("Kustomization", True)
    assert ready_condition(applied).message == f"Applied revision: {revision}"

    report = health_report(flux.cluster, NS, COMPONENTS, [("GitRepository", NS), ("Kustomization", NS)])
    assert all(item.ready for item in report) and len(report) == 6
    assert render_health(report) == ""


def test_a_bad_pat_stored_in_the_cluster_fails_at_once_with_the_controllers_message(flux: Env) -> None:
    revision = push_commit(flux)
    wrong = "wrong-pat-" + "x" * 40
    pat_secret(flux, "bad-auth", wrong)
    git_repository(flux, "bad", secret="bad-auth")

    with pytest.raises(WaitFailed) as raised:
        wait_for_source(flux.cluster, NS, "bad", revision, flux.far())

    live = ready_condition_of(flux.get(SOURCE_API, "GitRepository", "bad"))
    assert live["status"] == "False"
    message = str(raised.value)
    assert message.startswith("GitRepository 'flux-system/bad' is not ready: ")
    assert " ".join(live["message"].split()) in message
    assert "unable to clone" in message and "timeout" not in message
    assert wrong not in message
    (health,) = raised.value.health
    assert (health.kind, health.name, health.ready) == ("GitRepository", "bad", False)
    assert ready_condition(health).status == "False"
    assert any(event.startswith("Warning ") for event in health.events)
    text = render_health(raised.value.health)
    assert text.startswith("GitRepository flux-system/bad: not ready: ")
    assert "  events (newest last):" in text and wrong not in text


def test_a_suspended_object_fails_at_once(flux: Env) -> None:
    revision = push_commit(flux)
    git_repository(flux, "paused", suspend=True)
    kustomization(flux, "paused", "paused", suspend=True)

    with pytest.raises(WaitFailed) as source:
        wait_for_source(flux.cluster, NS, "paused", revision, flux.far())
    with pytest.raises(WaitFailed) as applied:
        wait_for_kustomization(flux.cluster, NS, "paused", revision, flux.far())

    assert source.value.message == "GitRepository 'flux-system/paused' is suspended"
    assert source.value.fix == "resume it (flux resume source git paused -n flux-system) and run again"
    assert applied.value.message == "Kustomization 'flux-system/paused' is suspended"
    assert "flux resume kustomization paused -n flux-system" in str(applied.value)
    assert not source.value.health[0].ready


def test_deployments_that_never_become_ready_give_a_health_report(tmp_path: Path, sample_text: str) -> None:
    unpullable = "ghcr.io/fluxcd/helm-controller"
    with running_sandbox(tmp_path / "sandbox", kube=True, flux=True, unpullable_images=(unpullable,)) as sandbox:
        install(sandbox, tmp_path, sample_text, crds_only=False)
        with connected(sandbox, tmp_path) as env:
            others = [name for name in COMPONENTS if name != "helm-controller"]
            assert all(h.ready for h in wait_for_deployments(env.cluster, NS, others, env.far()))

            def backing_off() -> bool:
                events = env.writer.dynamic.request("get", f"/api/v1/namespaces/{NS}/events", serialize=False)
                return b"Error: ImagePullBackOff" in events.data

            wait_until("helm-controller's pod in ImagePullBackOff", backing_off)
            with pytest.raises(WaitFailed) as raised:
                wait_for_deployments(env.cluster, NS, [*COMPONENTS, "extra-controller"], time.monotonic() + 0.5)

    message = str(raised.value)
    assert message.startswith("timed out waiting for the Deployments in 'flux-system' to be ready (")
    assert "helm-controller: deployment not ready: 0 of 1 replicas available" in message
    assert "extra-controller: deployment not found" in message
    assert "source-controller" not in message
    health = {item.name: item for item in raised.value.health}
    assert sorted(health) == sorted([*COMPONENTS, "extra-controller"])
    assert all(health[name].ready for name in others)
    helm = health["helm-controller"]
    assert not helm.ready and helm.found
    assert any(c.type == "Available" and c.status == "False" for c in helm.conditions)
    assert len(helm.waiting) == 1
    assert ": ImagePullBackOff: Back-off pulling image" in helm.waiting[0]
    assert f"(image {unpullable}:" in helm.waiting[0]
    assert any("Failed to pull image" in event and "not found" in event for event in helm.events)
    assert 1 <= len(helm.events) <= 5
    missing = health["extra-controller"]
    assert (missing.found, missing.ready, missing.conditions) == (False, False, ())

    text = render_health(raised.value.health)
    blocks = text.split("\nDeployment ")
    assert text.startswith("Deployment flux-system/extra-controller: deployment not found\n")
    assert blocks[1].startswith("flux-system/helm-controller: deployment not ready: 0 of 1 replicas available\n")
    assert "  waiting containers:\n    helm-controller-" in text
    assert "ImagePullBackOff" in text and "source-controller" not in text


# -- with statuses written by the test ----------------------------------------------------------------------------------


def ready_condition_of(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_the_watch_sees_a_status_change_made_right_after_the_wait_starts(bare: Env) -> None:
    revision = f"main@sha1:{SHA_A}"
    git_repository(bare, "quick")
    waiting = Background(lambda: wait_for_source(bare.cluster, NS, "quick", revision, bare.far()))
    bare.set_status(SOURCE_API, "GitRepository", "quick", source_status(revision, ready()))
    assert waiting.result().ready


def test_a_change_arrives_through_the_watch_for_an_object_created_after_the_wait_started(bare: Env) -> None:
    revision = f"main@sha1:{SHA_A}"
    before = namespaced_watches(bare, "kustomizations")
    waiting = Background(lambda: wait_for_kustomization(bare.cluster, NS, "later", revision, bare.far()))
    watching(bare, "kustomizations", before)  # listed (nothing there) and now watching
    kustomization(bare, "later", "later")
    status = {"conditions": [ready(reason="ReconciliationSucceeded")], "observedGeneration": 1}
    bare.set_status(KUSTOMIZE_API, "Kustomization", "later", {**status, "lastAttemptedRevision": revision})

    health = waiting.result()
    assert (health.name, health.ready) == ("later", True)
    assert namespaced_lists(bare, "kustomizations") == 1  # one list, then only the watch


def test_a_missing_object_is_waited_for_until_the_deadline(bare: Env) -> None:
    with pytest.raises(WaitFailed) as raised:
        wait_for_source(bare.cluster, NS, "absent", f"main@sha1:{SHA_A}", time.monotonic() + 0.3)
    assert (
        raised.value.message == "GitRepository 'flux-system/absent' did not become ready before the timeout: not found"
    )
    assert "raise --timeout" in str(raised.value)
    (health,) = raised.value.health
    assert (health.found, health.ready, health.conditions, health.events) == (False, False, (), ())
    assert render_health(raised.value.health) == "GitRepository flux-system/absent: not found\n"


def test_ready_at_another_revision_keeps_waiting_until_the_deadline(bare: Env) -> None:
    git_repository(bare, "other")
    bare.set_status(SOURCE_API, "GitRepository", "other", source_status(f"main@sha1:{SHA_B}", ready()))
    with pytest.raises(WaitFailed) as raised:
        wait_for_source(bare.cluster, NS, "other", f"main@sha1:{SHA_A}", time.monotonic() + 0.3)
    assert raised.value.message == (
        "GitRepository 'flux-system/other' did not become ready before the timeout: "
        f"ready at 'main@sha1:{SHA_B}', waiting for 'main@sha1:{SHA_A}'"
    )
    (health,) = raised.value.health
    assert not health.ready and ready_condition(health).status == "True"


def test_a_later_revision_counts_only_when_the_callable_says_it_includes_ours(bare: Env) -> None:
    """`accepts` is asked about a Ready revision other than ours (normalised, so a legacy form too): yes ends the
    wait as ready, at that revision; no keeps it waiting, and the timeout says what would have done."""
    ours, later, unrelated = f"main@sha1:{SHA_A}", f"main@sha1:{SHA_B}", f"main@sha1:{'c' * 40}"
    asked: list[str] = []

    def accepts(revision: str) -> bool:
        asked.append(revision)
        return revision == later

    git_repository(bare, "moved")
    bare.set_status(SOURCE_API, "GitRepository", "moved", source_status(unrelated, ready()))
    with pytest.raises(WaitFailed) as raised:
        wait_for_source(bare.cluster, NS, "moved", ours, time.monotonic() + 0.3, accepts=accepts)
    assert raised.value.message == (
        "GitRepository 'flux-system/moved' did not become ready before the timeout: "
        f"ready at '{unrelated}', waiting for '{ours}' or a later commit that includes it"
    )
    assert set(asked) == {unrelated}
    (health,) = raised.value.health
    assert (health.ready, health.revision) == (False, unrelated)

    waiting = Background(lambda: wait_for_source(bare.cluster, NS, "moved", ours, bare.far(), accepts=accepts))
    bare.set_status(SOURCE_API, "GitRepository", "moved", source_status(f"main/{SHA_B}", ready()))
    source = waiting.result()
    assert (source.ready, source.revision, asked[-1]) == (True, later, later)

    kustomization(bare, "moved", "moved")
    status: dict[str, Any] = {"conditions": [ready()], "observedGeneration": 1, "lastAttemptedRevision": unrelated}
    bare.set_status(KUSTOMIZE_API, "Kustomization", "moved", status)
    with pytest.raises(WaitFailed, match="or a later commit that includes it"):
        wait_for_kustomization(bare.cluster, NS, "moved", ours, time.monotonic() + 0.3, accepts=accepts)
    waiting = Background(lambda: wait_for_kustomization(bare.cluster, NS, "moved", ours, bare.far(), accepts=accepts))
    bare.set_status(KUSTOMIZE_API, "Kustomization", "moved", {**status, "lastAttemptedRevision": later})
    applied = waiting.result()
    assert (applied.kind, applied.ready, applied.revision) == ("Kustomization", True, later)

    # At our own revision the callable is not asked at all.
    asked.clear()
    bare.set_status(KUSTOMIZE_API, "Kustomization", "moved", {**status, "lastAttemptedRevision": ours})
    assert wait_for_kustomization(bare.cluster, NS, "moved", ours, bare.far(), accepts=accepts).revision == ours
    assert asked == []


def test_the_legacy_revision_form_is_accepted(bare: Env) -> None:
    git_repository(bare, "legacy")
    kustomization(bare, "legacy", "legacy")
    bare.set_status(SOURCE_API, "GitRepository", "legacy", source_status(f"main/{SHA_A}", ready()))
    status = {"conditions": [ready()], "observedGeneration": 1, "lastAttemptedRevision": f"main/{SHA_A}"}
    bare.set_status(KUSTOMIZE_API, "Kustomization", "legacy", status)
    assert wait_for_source(bare.cluster, NS, "legacy", f"main@sha1:{SHA_A}", bare.far()).ready
    assert wait_for_kustomization(bare.cluster, NS, "legacy", f"main@sha1:{SHA_A}", bare.far()).ready


def test_an_observed_generation_behind_the_generation_keeps_waiting(bare: Env) -> None:
    revision = f"main@sha1:{SHA_A}"
    git_repository(bare, "moving")
    bare.set_status(SOURCE_API, "GitRepository", "moving", source_status(revision, ready()))
    bare.patch(SOURCE_API, "GitRepository", "moving", {"spec": {"interval": "2m0s"}})  # generation 2
    assert bare.get(SOURCE_API, "GitRepository", "moving")["metadata"]["generation"] == 2

    with pytest.raises(WaitFailed) as raised:
        wait_for_source(bare.cluster, NS, "moving", revision, time.monotonic() + 0.3)
    assert raised.value.message.endswith("the controller has not reconciled generation 2 yet (at 1)")

    # A Ready=False written for generation 1 is stale as well: not a failure of the new generation.
    failed = ready("False", "GitOperationFailed", "old failure", generation=1)
    bare.set_status(SOURCE_API, "GitRepository", "moving", source_status(revision, failed))
    with pytest.raises(WaitFailed) as stale:
        wait_for_source(bare.cluster, NS, "moving", revision, time.monotonic() + 0.3)
    assert "did not become ready before the timeout: Ready=False for an older generation" in stale.value.message

    waiting = Background(lambda: wait_for_source(bare.cluster, NS, "moving", revision, bare.far()))
    bare.set_status(SOURCE_API, "GitRepository", "moving", source_status(revision, ready(generation=2), observed=2))
    assert waiting.result().ready


def test_ready_false_for_the_current_generation_fails_at_once_even_before_observed_generation_moves(bare: Env) -> None:
    git_repository(bare, "broken")
    bare.patch(SOURCE_API, "GitRepository", "broken", {"spec": {"interval": "2m0s"}})  # generation 2
    failed = ready("False", "GitOperationFailed", "failed to checkout and determine revision: boom", generation=2)
    bare.set_status(SOURCE_API, "GitRepository", "broken", source_status("", failed, observed=1))
    with pytest.raises(WaitFailed) as raised:
        wait_for_source(bare.cluster, NS, "broken", f"main@sha1:{SHA_A}", bare.far())
    assert raised.value.message == (
        "GitRepository 'flux-system/broken' is not ready: failed to checkout and determine revision: boom"
    )


def test_a_ready_false_from_before_our_reconcile_request_is_not_the_answer(bare: Env) -> None:
    revision = f"main@sha1:{SHA_A}"
    git_repository(bare, "retry")
    failed = ready("False", "AuthenticationFailed", "the old secret was wrong")
    bare.set_status(SOURCE_API, "GitRepository", "retry", source_status("", failed, lastHandledReconcileAt="1"))

    with pytest.raises(WaitFailed, match="is not ready: the old secret was wrong"):
        wait_for_source(bare.cluster, NS, "retry", revision, bare.far())  # as Flux: Ready=False fails at once

    waiting = Background(lambda: wait_for_source(bare.cluster, NS, "retry", revision, bare.far(), requested_at="2"))
    bare.set_status(SOURCE_API, "GitRepository", "retry", source_status(revision, ready(), lastHandledReconcileAt="2"))
    assert waiting.result().ready

    failed = ready("False", "AuthenticationFailed", "the new secret is wrong too")
    bare.set_status(SOURCE_API, "GitRepository", "retry", source_status("", failed, lastHandledReconcileAt="3"))
    with pytest.raises(WaitFailed, match="is not ready: the new secret is wrong too"):
        wait_for_source(bare.cluster, NS, "retry", revision, bare.far(), requested_at="3")


def test_a_kustomization_waiting_for_its_source_is_not_failed_but_a_real_failure_is(bare: Env) -> None:
    revision = f"main@sha1:{SHA_A}"
    kustomization(bare, "early", "early")
    early = ready("False", "ArtifactFailed", "Source artifact not found, retrying in 30s")
    bare.set_status(KUSTOMIZE_API, "Kustomization", "early", {"conditions": [early]})

    waiting = Background(lambda: wait_for_kustomization(bare.cluster, NS, "early", revision, bare.far()))
    done = {"conditions": [ready(reason="ReconciliationSucceeded")], "observedGeneration": 1}
    bare.set_status(KUSTOMIZE_API, "Kustomization", "early", {**done, "lastAttemptedRevision": revision})
    assert waiting.result().ready

    kustomization(bare, "wrong-path", "wrong-path")
    missing = ready("False", "ArtifactFailed", "kustomization path not found: stat /tmp/x/clusters/nope: no such file")
    bare.set_status(KUSTOMIZE_API, "Kustomization", "wrong-path", {"conditions": [missing]})
    with pytest.raises(WaitFailed) as raised:
        wait_for_kustomization(bare.cluster, NS, "wrong-path", revision, bare.far())
    assert raised.value.message == (
        "Kustomization 'flux-system/wrong-path' is not ready: "
        "kustomization path not found: stat /tmp/x/clusters/nope: no such file"
    )


def test_a_watch_whose_history_is_gone_lists_again(bare: Env) -> None:
    revision = f"main@sha1:{SHA_A}"
    git_repository(bare, "gone")
    lists, watches = namespaced_lists(bare, "gitrepositories"), namespaced_watches(bare, "gitrepositories")
    waiting = Background(lambda: wait_for_source(bare.cluster, NS, "gone", revision, bare.far()))
    watching(bare, "gitrepositories", watches)

    # More writes than the API server keeps for a kind (4096), at once: the open watch gets `410 Expired`.
    store = bare.sandbox.kube.store
    key = ("source.toolkit.fluxcd.io", "gitrepositories")
    with store.lock:
        previous = store.get(key, NS, "gone")
        assert previous is not None
        for count in range(4200):
            changed = copy.deepcopy(previous)
            changed["metadata"]["annotations"] = {"test/noise": str(count)}
            previous = store.put(key, changed, previous)
        final = copy.deepcopy(previous)
        final["status"] = source_status(revision, ready())
        store.put(key, final, previous)

    assert waiting.result().ready
    assert namespaced_lists(bare, "gitrepositories") == lists + 2  # the first list, and the one after 410


def test_an_unknown_kind_is_a_user_error(cluster_sandbox: Sandbox, tmp_path: Path) -> None:
    """Before the CRDs are installed the wait says so instead of failing with a traceback."""
    with connected(cluster_sandbox, tmp_path) as env, pytest.raises(UserError) as raised:
        wait_for_source(env.cluster, NS, NS, f"main@sha1:{SHA_A}", env.far())
    assert "does not serve GitRepository in source.toolkit.fluxcd.io/v1" in str(raised.value)


# -- the pure rules ---------------------------------------------------------------------------------------------------


def test_legacy_revisions_are_normalised_as_flux_does() -> None:
    assert normalize_revision(f"main/{SHA_A}") == f"main@sha1:{SHA_A}"
    assert normalize_revision(f"feature/x/{SHA_A}") == f"feature/x@sha1:{SHA_A}"
    assert normalize_revision(f"HEAD/{SHA_A}") == f"sha1:{SHA_A}"
    assert normalize_revision(SHA_A) == f"sha1:{SHA_A}"
    assert normalize_revision("main/" + "c" * 64) == "main@sha256:" + "c" * 64
    assert normalize_revision(f"main@sha1:{SHA_A}") == f"main@sha1:{SHA_A}"
    assert normalize_revision("main/not-a-sha") == "main/not-a-sha"
    assert normalize_revision("") == ""


def test_deployment_rollout_rules() -> None:
    def deployment(**status: Any) -> dict[str, Any]:
        available = status.pop("available_condition", "True")
        base = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
        conditions = [{"type": "Available", "status": available}]
        return {
            "metadata": {"generation": 2},
            "spec": {"replicas": 1},
            "status": {**base, "conditions": conditions, **status},
        }

    assert deployment_verdict(deployment()) == (True, "deployment ready")
    assert deployment_verdict(None) == (False, "deployment not found")
    assert (
        deployment_verdict(deployment(observedGeneration=1))[1]
        == "deployment not ready: the rollout has not started yet"
    )
    assert deployment_verdict(deployment(updatedReplicas=0))[1] == "deployment not ready: 0 of 1 replicas updated"
    assert deployment_verdict(deployment(replicas=2))[1] == "deployment not ready: 1 old replicas pending termination"
    assert deployment_verdict(deployment(availableReplicas=0))[1] == "deployment not ready: 0 of 1 replicas available"
    assert deployment_verdict(deployment(available_condition="False"))[1] == "deployment not ready: not Available"


def test_only_waiting_for_the_source_counts_as_transient() -> None:
    assert kustomization_waits_on_source("ArtifactFailed", "Source artifact not found, retrying in 30s")
    assert kustomization_waits_on_source("ArtifactFailed", "Source is not ready, artifact not found, retrying in 30s")
    assert kustomization_waits_on_source("ArtifactFailed", 'gitrepositories.source.toolkit.fluxcd.io "x" not found')
    assert kustomization_waits_on_source("DependencyNotReady", "dependency 'flux-system/infra' is not ready")
    assert not kustomization_waits_on_source("ArtifactFailed", "kustomization path not found: stat /x: no such file")
    assert not kustomization_waits_on_source("BuildFailed", "Source artifact not found")


def test_render_health_shows_only_what_is_not_ready() -> None:
    health = [
        ObjectHealth("Deployment", NS, "source-controller", True, (), (), ()),
        ObjectHealth(
            "GitRepository",
            NS,
            NS,
            False,
            (
                Condition("Ready", "False", "GitOperationFailed", "unable to clone"),
                Condition("Reconciling", "True", "ProgressingWithRetry", ""),
            ),
            ("Warning GitOperationFailed (x3): unable to clone",),
            (),
            detail="not ready: unable to clone",
        ),
        ObjectHealth("Kustomization", NS, "apps", False, (), (), (), found=False, detail="not found"),
    ]
    assert render_health(health) == (
        "GitRepository flux-system/flux-system: not ready: unable to clone\n"
        "  conditions:\n"
        "    Ready=False GitOperationFailed: unable to clone\n"
        "    Reconciling=True ProgressingWithRetry\n"
        "  events (newest last):\n"
        "    Warning GitOperationFailed (x3): unable to clone\n"
        "Kustomization flux-system/apps: not found\n"
    )
    assert render_health(health[:1]) == ""


def test_a_ready_true_from_before_our_reconcile_request_is_not_the_answer_either(bare: Env) -> None:
    """A new Secret with an unchanged revision: the old Ready=True must not pass before the controller tried it."""
    revision = f"main@sha1:{SHA_A}"
    git_repository(bare, "rotated")
    bare.set_status(
        SOURCE_API, "GitRepository", "rotated", source_status(revision, ready(), lastHandledReconcileAt="1")
    )
    before = namespaced_watches(bare, "gitrepositories")
    waiting = Background(lambda: wait_for_source(bare.cluster, NS, "rotated", revision, bare.far(), requested_at="2"))
    watching(bare, "gitrepositories", before)  # it saw the old Ready=True and kept waiting
    failed = ready("False", "AuthenticationFailed", "the rotated secret is wrong")
    bare.set_status(SOURCE_API, "GitRepository", "rotated", source_status("", failed, lastHandledReconcileAt="2"))
    with pytest.raises(WaitFailed, match="is not ready: the rotated secret is wrong"):
        waiting.result()
