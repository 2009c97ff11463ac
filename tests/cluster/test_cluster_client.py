"""The cluster connection: which kubeconfig and context it uses, TLS, and the errors a user sees."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from flux_azdo.cluster import Cluster, ClusterAccess, UnknownKind
from flux_azdo.errors import UserError
from flux_azdo.sandbox.kube import AccessRule
from flux_azdo.sandbox.runtime import Sandbox


@pytest.fixture(autouse=True)
def _no_ambient_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the runner's own kubeconfig or service account."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def _config(sandbox: Sandbox) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(sandbox.kubeconfig_path.read_text(encoding="utf-8"))
    return loaded


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


def _renamed(config: dict[str, Any], name: str, **cluster: Any) -> dict[str, Any]:
    """The same kubeconfig with cluster, user and context called `name` (and cluster fields replaced)."""
    result = yaml.safe_load(yaml.safe_dump(config))
    result["clusters"][0]["name"] = result["users"][0]["name"] = result["contexts"][0]["name"] = name
    result["contexts"][0]["context"] = {"cluster": name, "user": name}
    result["clusters"][0]["cluster"].update(cluster)
    result["current-context"] = name
    return dict(result)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sandbox_kubeconfig_connects_over_verified_https(cluster_sandbox: Sandbox) -> None:
    with Cluster(ClusterAccess(kubeconfig=cluster_sandbox.kubeconfig_path)) as cluster:
        assert cluster.server.startswith("https://127.0.0.1:")
        assert cluster.api_client.configuration.verify_ssl is True
        assert cluster.context == "sandbox"
        assert cluster.server_version() == "v1.32.4"
        namespace = cluster.get("v1", "Namespace", "default")
        assert namespace is not None and namespace["metadata"]["name"] == "default"
        assert cluster.get("v1", "Namespace", "does-not-exist") is None
        assert cluster.get("v1", "ConfigMap", "nope", "default") is None


def test_every_request_gets_the_timeout(cluster_sandbox: Sandbox, tmp_path: Path) -> None:
    """A server that accepts the connection and never answers must not hang the CLI."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        path = _write(tmp_path / "kc", _renamed(_config(cluster_sandbox), "silent", server=f"https://127.0.0.1:{port}"))
        with (
            Cluster(ClusterAccess(kubeconfig=path, timeout=0.3)) as cluster,
            pytest.raises(
                UserError, match=r"cannot read the API discovery: https://127.0.0.1:\d+ did not answer within 0.3s"
            ),
        ):
            # Discovery requests come from inside the kubernetes client, which passes no timeout of its own.
            cluster.resource("apps/v1", "Deployment")


def test_unknown_kind_is_a_user_error(cluster_sandbox: Sandbox) -> None:
    with Cluster(ClusterAccess(kubeconfig=cluster_sandbox.kubeconfig_path)) as cluster:
        with pytest.raises(
            UnknownKind, match=r"does not serve GitRepository in source.toolkit.fluxcd.io/v1.*CustomResourceDefinition"
        ):
            cluster.resource("source.toolkit.fluxcd.io/v1", "GitRepository")
        assert cluster.resource("apps/v1", "Deployment").namespaced is True


def test_context_that_does_not_exist(cluster_sandbox: Sandbox) -> None:
    with pytest.raises(
        UserError, match=r"context 'prod' is not in kubeconfig .* \(it has: sandbox\).*--context"
    ) as caught:
        Cluster(ClusterAccess(kubeconfig=cluster_sandbox.kubeconfig_path, context="prod"))
    assert "\n" not in str(caught.value)


def test_kubeconfig_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(
        UserError,
        match=r"kubeconfig .*missing does not exist: pass --kubeconfig or set KUBECONFIG; for AKS: az aks get-credentials",
    ):
        Cluster(ClusterAccess(kubeconfig=tmp_path / "missing"))


def test_no_kubeconfig_anywhere_says_how_to_get_one() -> None:
    with pytest.raises(UserError, match=r"no kubeconfig found.*az aks get-credentials --resource-group"):
        Cluster(ClusterAccess())


def test_kubeconfig_in_home_is_the_default(
    cluster_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "other-home"
    (home / ".kube").mkdir(parents=True)
    _write(home / ".kube" / "config", _config(cluster_sandbox))
    monkeypatch.setenv("HOME", str(home))
    with Cluster(ClusterAccess()) as cluster:
        assert cluster.server_version() == "v1.32.4"


def test_kubeconfig_list_is_merged_like_kubectl(
    cluster_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """KUBECONFIG=a:b: missing files are skipped, the first current-context wins, every file's contexts count."""
    config = _config(cluster_sandbox)
    dead = _write(tmp_path / "dead", _renamed(config, "dead", server=f"https://127.0.0.1:{_free_port()}"))
    live = _write(tmp_path / "live", _renamed(config, "live"))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{live}:{dead}")
    with Cluster(ClusterAccess()) as cluster:
        assert cluster.context == "live"
        assert cluster.server_version() == "v1.32.4"
    with Cluster(ClusterAccess(context="dead")) as cluster, pytest.raises(UserError, match="connection refused"):
        cluster.server_version()
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{tmp_path / 'gone'}")
    with pytest.raises(UserError, match=r"none of the files in KUBECONFIG exists"):
        Cluster(ClusterAccess())


def test_server_that_refuses_connections(cluster_sandbox: Sandbox, tmp_path: Path) -> None:
    port = _free_port()
    path = _write(tmp_path / "kc", _renamed(_config(cluster_sandbox), "gone", server=f"https://127.0.0.1:{port}"))
    with Cluster(ClusterAccess(kubeconfig=path)) as cluster:
        with pytest.raises(
            UserError, match=rf"cannot connect to https://127.0.0.1:{port} \(connection refused\).*context gone"
        ) as caught:
            cluster.get("v1", "Namespace", "default")
        assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_certificate_not_trusted(cluster_sandbox: Sandbox, tmp_path: Path) -> None:
    config = _renamed(_config(cluster_sandbox), "untrusted")
    del config["clusters"][0]["cluster"]["certificate-authority-data"]
    path = _write(tmp_path / "kc", config)
    with (
        Cluster(ClusterAccess(kubeconfig=path)) as cluster,
        pytest.raises(UserError, match=r"certificate of https://127.0.0.1:\d+ is not trusted"),
    ):
        cluster.server_version()


def test_wrong_token_is_401_with_a_fix(cluster_sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "kc"
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.write_kubeconfig(path, token="not-a-valid-token")
    with (
        Cluster(ClusterAccess(kubeconfig=path)) as cluster,
        pytest.raises(
            UserError, match=r"did not accept the credentials of context sandbox \(401 Unauthorized\).*get-credentials"
        ) as caught,
    ):
        cluster.get("v1", "Namespace", "default")
    assert "not-a-valid-token" not in str(caught.value)


def test_token_without_rights_names_verb_and_resource(cluster_sandbox: Sandbox, tmp_path: Path) -> None:
    kube = cluster_sandbox.kube
    assert kube is not None
    path = tmp_path / "kc"
    kube.write_kubeconfig(path, token=kube.add_user("nobody", []))
    with Cluster(ClusterAccess(kubeconfig=path)) as cluster:
        with pytest.raises(
            UserError,
            match=r'cannot read Secret flux-system/x: permission denied: .*User "nobody" cannot get resource "secrets".*need get on secrets',
        ) as caught:
            cluster.get("v1", "Secret", "x", "flux-system")
        assert "\n" not in str(caught.value)
        with (
            pytest.raises(UserError, match=r"need list on customresourcedefinitions.apiextensions.k8s.io"),
            cluster.errors("list CRDs"),
        ):
            cluster.dynamic.get(cluster.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition"))


def test_exec_credential_plugin(cluster_sandbox: Sandbox, tmp_path: Path) -> None:
    """kubelogin-style kubeconfigs: the client runs the plugin and sends the token it prints."""
    kube = cluster_sandbox.kube
    assert kube is not None
    token = kube.add_user("exec-user", [AccessRule(verbs=["get"], resources=["namespaces"])])
    plugin = tmp_path / "fake-kubelogin"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": token},
    }
    plugin.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(credential)}\nEOF\n", encoding="utf-8")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    config = _renamed(_config(cluster_sandbox), "aks")
    config["users"][0]["user"] = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin), "args": ["get-token"]}
    }
    with Cluster(ClusterAccess(kubeconfig=_write(tmp_path / "kc", config))) as cluster:
        assert cluster.get("v1", "Namespace", "default") is not None
    kube.reset_requests()
    config["users"][0]["user"]["exec"]["command"] = str(tmp_path / "not-installed")
    with pytest.raises(UserError, match=r"credential plugin .*not-installed.* gave no credential.*kubelogin"):
        Cluster(ClusterAccess(kubeconfig=_write(tmp_path / "kc2", config)))
    assert [r for r in kube.requests if r.user == "exec-user"] == []


def test_kubeconfig_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("clusters: [unclosed\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"kubeconfig .* is not valid YAML"):
        Cluster(ClusterAccess(kubeconfig=path))


def test_close_removes_the_private_discovery_cache(cluster_sandbox: Sandbox) -> None:
    cluster = Cluster(ClusterAccess(kubeconfig=cluster_sandbox.kubeconfig_path))
    cluster.resource("apps/v1", "Deployment")
    scratch = Path(cluster._scratch)
    assert (scratch / "discovery.json").is_file()
    cluster.close()
    assert not scratch.exists()
