"""The Git credentials Secret and the image pull secret, written to the sandbox's API server.

Counting happens at the server (`sandbox.kube.requests`): an unchanged Secret must cost one read and no write.
"""

from __future__ import annotations

import base64
import json
import traceback
from collections.abc import Iterator
from pathlib import Path

import kubernetes.client
import pytest

from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.cluster.secrets import (
    SourceSecretChange,
    apply_image_pull_secret,
    apply_source_secret,
    read_source_secret,
    removed_keys_note,
    stale_credential_keys,
)
from flux_azdo.errors import UserError
from flux_azdo.manifests.sourcesecret import SourceSecret, token_secret
from flux_azdo.sandbox.kube import AccessRule
from flux_azdo.sandbox.runtime import Sandbox

NS = "flux-system"
PAT = "pat-0123456789abcdefghijklmnopqrstuv"


#: Our client authenticates as this user (every right), so the Flux simulator's own requests can be told apart.
USER = "flux-azdo-test"


@pytest.fixture
def cluster(cluster_sandbox: Sandbox, tmp_path: Path) -> Iterator[Cluster]:
    assert cluster_sandbox.kube is not None
    path = tmp_path / "kubeconfig"
    cluster_sandbox.kube.write_kubeconfig(path, token=cluster_sandbox.kube.add_user(USER, [AccessRule(verbs=["*"])]))
    with Cluster(ClusterAccess(kubeconfig=path)) as connected:
        kubernetes.client.CoreV1Api(connected.api_client).create_namespace({"metadata": {"name": NS}})
        yield connected


def our_requests(sandbox: Sandbox) -> list[tuple[str, str, str]]:
    """(verb, resource, name) of every request our client sent, in order."""
    assert sandbox.kube is not None
    return [(r.verb, r.resource, r.name) for r in sandbox.kube.requests if r.user == USER]


def our_writes(sandbox: Sandbox) -> int:
    assert sandbox.kube is not None
    return sum(1 for r in sandbox.kube.requests if r.user == USER and r.is_write)


def live_secret(cluster: Cluster, name: str) -> dict[str, object]:
    response = kubernetes.client.CoreV1Api(cluster.api_client).read_namespaced_secret(name, NS, _preload_content=False)
    body: dict[str, object] = json.loads(response.data)
    return body


def test_missing_secret_is_created_with_flux_keys(cluster: Cluster) -> None:
    assert apply_source_secret(cluster, token_secret("flux-system", NS, PAT)).action == "created"

    assert read_source_secret(cluster, NS, "flux-system") == {"username": "git", "password": PAT}
    live = live_secret(cluster, "flux-system")
    assert live["type"] == "Opaque"  # no type given, as Flux writes it


def test_unchanged_secret_makes_no_write(cluster_sandbox: Sandbox, cluster: Cluster) -> None:
    secret = token_secret("flux-system", NS, PAT)
    apply_source_secret(cluster, secret)
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()

    assert apply_source_secret(cluster, secret).action == "unchanged"

    assert our_writes(cluster_sandbox) == 0
    assert our_requests(cluster_sandbox) == [("get", "secrets", "flux-system")]


def test_changed_value_is_updated(cluster_sandbox: Sandbox, cluster: Cluster) -> None:
    apply_source_secret(cluster, token_secret("flux-system", NS, PAT))
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()

    assert apply_source_secret(cluster, token_secret("flux-system", NS, PAT + "-rotated")).action == "updated"

    assert our_requests(cluster_sandbox) == [("get", "secrets", "flux-system"), ("update", "secrets", "flux-system")]
    assert read_source_secret(cluster, NS, "flux-system") == {"username": "git", "password": PAT + "-rotated"}


def test_a_switch_of_credential_removes_the_old_credentials_keys_and_keeps_the_others(
    cluster_sandbox: Sandbox, cluster: Cluster
) -> None:
    ssh = SourceSecret(
        "flux-system",
        NS,
        {
            "identity": "PRIVATE KEY",
            "identity.pub": "ssh-ed25519 AAAA",
            "known_hosts": "host ssh-rsa AAAA",
            "ca.crt": "PEM",
        },
    )
    assert apply_source_secret(cluster, ssh).action == "created"
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()

    change = apply_source_secret(cluster, token_secret("flux-system", NS, PAT))

    # Flux's update would only add the token next to the SSH keys; ours drops them in the same update.
    assert change == SourceSecretChange("updated", ("identity", "identity.pub", "known_hosts"))
    assert our_requests(cluster_sandbox) == [("get", "secrets", "flux-system"), ("update", "secrets", "flux-system")]
    assert read_source_secret(cluster, NS, "flux-system") == {"ca.crt": "PEM", "username": "git", "password": PAT}


def test_a_secret_holding_the_new_values_and_an_old_passphrase_is_updated(cluster: Cluster) -> None:
    """An SSH key with a passphrase, then the same key without: `password` alone must go (source-controller would
    try to decrypt the key with it: "decryption password incorrect")."""
    keys = {"identity": "PRIVATE KEY", "known_hosts": "host ssh-rsa AAAA"}
    apply_source_secret(cluster, SourceSecret("flux-system", NS, {**keys, "password": "old passphrase"}))

    change = apply_source_secret(cluster, SourceSecret("flux-system", NS, keys))

    assert change == SourceSecretChange("updated", ("password",))
    assert read_source_secret(cluster, NS, "flux-system") == keys
    assert apply_source_secret(cluster, SourceSecret("flux-system", NS, keys)) == SourceSecretChange("unchanged")


def test_stale_credential_keys_are_the_old_credentials_only() -> None:
    live = {"username": "git", "password": "p", "ca.crt": "PEM", "mine": "x", "bearerToken": "t"}
    assert stale_credential_keys(live, {"identity": "K", "identity.pub": "P", "known_hosts": "H"}) == (
        "username",
        "password",
        "bearerToken",
    )
    assert stale_credential_keys(live, {"username": "git", "password": "q", "bearerToken": "u"}) == ()
    assert stale_credential_keys(["ca.crt"], {"password": "q"}) == ()
    assert removed_keys_note(("identity", "known_hosts")) == " (removed the old identity, known_hosts)"
    assert removed_keys_note(()) == ""


def test_extra_keys_in_the_cluster_do_not_make_a_change(cluster_sandbox: Sandbox, cluster: Cluster) -> None:
    apply_source_secret(cluster, SourceSecret("flux-system", NS, {"ca.crt": "PEM", "password": PAT}))
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()

    assert apply_source_secret(cluster, SourceSecret("flux-system", NS, {"password": PAT})).action == "unchanged"
    assert our_writes(cluster_sandbox) == 0


def test_read_missing_secret_is_none(cluster: Cluster) -> None:
    assert read_source_secret(cluster, NS, "nothing-here") is None


def test_missing_namespace_says_so(cluster: Cluster) -> None:
    with pytest.raises(UserError) as caught:
        apply_source_secret(cluster, token_secret("flux-system", "elsewhere", PAT))
    assert "namespace elsewhere does not exist" in caught.value.message
    assert PAT not in str(caught.value)


def test_values_never_appear_in_errors(cluster_sandbox: Sandbox, tmp_path: Path) -> None:
    # A user whose name happens to be the token: the server's Forbidden message names the user, so the token
    # reaches the error text unless we remove it.
    assert cluster_sandbox.kube is not None
    token = cluster_sandbox.kube.add_user(PAT, [AccessRule(verbs=["get"], api_groups=[""], resources=["secrets"])])
    kubeconfig = tmp_path / "reader.kubeconfig"
    cluster_sandbox.kube.write_kubeconfig(kubeconfig, token=token)
    with Cluster(ClusterAccess(kubeconfig=cluster_sandbox.kubeconfig_path)) as admin:
        kubernetes.client.CoreV1Api(admin.api_client).create_namespace({"metadata": {"name": NS}})

    with Cluster(ClusterAccess(kubeconfig=kubeconfig)) as reader, pytest.raises(UserError) as caught:
        apply_source_secret(reader, token_secret("flux-system", NS, PAT))

    assert "permission denied" in caught.value.message
    assert "create" in str(caught.value)
    assert PAT not in str(caught.value)
    assert PAT not in repr(caught.value.args)
    assert PAT not in "".join(traceback.format_exception(caught.value))


# ------------------------------------------------------------------------------------------------ image pull secret


def test_image_pull_secret_is_a_dockerconfigjson(cluster: Cluster) -> None:
    action = apply_image_pull_secret(cluster, NS, "regcred", "ghcr.io/fluxcd", "robot", "registry-pass")
    assert action == "created"

    live = live_secret(cluster, "regcred")
    assert live["type"] == "kubernetes.io/dockerconfigjson"
    data = live["data"]
    assert isinstance(data, dict)
    config = json.loads(base64.b64decode(data[".dockerconfigjson"]))
    assert config == {
        "auths": {
            "ghcr.io/fluxcd": {
                "username": "robot",
                "password": "registry-pass",
                "auth": base64.b64encode(b"robot:registry-pass").decode(),
            }
        }
    }


def test_image_pull_secret_unchanged_then_updated(cluster_sandbox: Sandbox, cluster: Cluster) -> None:
    apply_image_pull_secret(cluster, NS, "regcred", "ghcr.io/fluxcd", "robot", "registry-pass")
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()

    assert apply_image_pull_secret(cluster, NS, "regcred", "ghcr.io/fluxcd", "robot", "registry-pass") == "unchanged"
    assert our_writes(cluster_sandbox) == 0

    assert apply_image_pull_secret(cluster, NS, "regcred", "ghcr.io/fluxcd", "robot", "new-pass") == "updated"
    assert our_writes(cluster_sandbox) == 1


def test_image_pull_secret_of_another_type_is_refused(cluster: Cluster) -> None:
    apply_source_secret(cluster, SourceSecret("regcred", NS, {"password": "x"}))

    with pytest.raises(UserError) as caught:
        apply_image_pull_secret(cluster, NS, "regcred", "ghcr.io/fluxcd", "robot", "registry-pass")

    assert "type Opaque" in caught.value.message
    assert caught.value.fix is not None and "kubectl delete secret -n flux-system regcred" in caught.value.fix
    assert "registry-pass" not in str(caught.value)
