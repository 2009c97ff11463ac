"""Service connections from `ENDPOINT_*` variables, and Kubernetes connections turned into kubeconfigs (pure)."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from flux_azdo.errors import UserError
from flux_azdo.pipeline.endpoints import kubeconfig_secrets, kubernetes_connection, read_endpoint

ID = "4f1c9f0e-8a5b-4c1e-9d7a-2b6f3e1a0c11"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://prod.example:6443", certificate-authority-data: QUJD}
- name: test
  cluster: {server: "https://test.example:6443"}
users:
- name: deployer
  user: {token: kube-token-of-the-deployer}
- name: admin
  user: {client-key-data: Y2xpZW50LWtleS1kYXRhLXZhbHVlCg==, client-certificate-data: Q0VSVA==}
contexts:
- name: prod
  context: {cluster: prod, user: deployer}
- name: test
  context: {cluster: test, user: admin}
current-context: test
"""


def service_account(token: str = "sa-token-value", **data: str) -> dict[str, str]:
    """As the agent sets a Kubernetes service connection of kind Service Account (parameter names upper-cased)."""
    environ = {
        f"ENDPOINT_URL_{ID}": "https://cluster.example:6443",
        f"ENDPOINT_AUTH_SCHEME_{ID}": "Token",
        f"ENDPOINT_AUTH_{ID}": json.dumps({"scheme": "Token", "parameters": {"apiToken": "ignored"}}),
        f"ENDPOINT_AUTH_PARAMETER_{ID}_APITOKEN": base64.b64encode(token.encode()).decode(),
        f"ENDPOINT_AUTH_PARAMETER_{ID}_SERVICEACCOUNTCERTIFICATE": CA,
        f"ENDPOINT_DATA_{ID}": json.dumps({"authorizationType": "ServiceAccount"}),
    }
    environ.update({f"ENDPOINT_DATA_{ID}_{key.upper()}": value for key, value in data.items()})
    return environ


def test_parameters_and_data_are_read_from_every_variable_without_regard_to_case() -> None:
    endpoint = read_endpoint(service_account(acceptUntrustedCerts="false"), ID)
    assert endpoint.url == "https://cluster.example:6443"
    assert endpoint.scheme == "Token"
    # ENDPOINT_AUTH_PARAMETER_<id>_<NAME> wins over the JSON (the agent sets both from one dictionary).
    assert endpoint.parameter("APITOKEN") == endpoint.parameter("apiToken") != "ignored"
    assert endpoint.datum("AuthorizationType") == "ServiceAccount"
    assert endpoint.datum("acceptuntrustedcerts") == "false"


def test_a_connection_the_job_does_not_have_is_one_line() -> None:
    with pytest.raises(UserError) as caught:
        read_endpoint({}, ID, input_name="kubernetesServiceConnection")
    assert str(caught.value).startswith(f"service connection {ID} (input kubernetesServiceConnection) is not available")
    assert "Pipeline permissions" in str(caught.value)


def test_a_service_account_connection_becomes_a_token_kubeconfig() -> None:
    connection = kubernetes_connection(read_endpoint(service_account(), ID))
    config = yaml.safe_load(connection.kubeconfig)
    assert config["clusters"][0]["cluster"] == {
        "server": "https://cluster.example:6443",
        "certificate-authority-data": CA,
    }
    assert config["users"][0]["user"] == {"token": "sa-token-value"}
    assert connection.context is None
    assert "sa-token-value" in connection.secrets


def test_accept_untrusted_certs_skips_the_certificate_check() -> None:
    connection = kubernetes_connection(read_endpoint(service_account(acceptUntrustedCerts="true"), ID))
    cluster = yaml.safe_load(connection.kubeconfig)["clusters"][0]["cluster"]
    assert cluster == {"server": "https://cluster.example:6443", "insecure-skip-tls-verify": True}


def test_an_azure_subscription_connection_is_read_as_a_service_account() -> None:
    environ = service_account()
    environ[f"ENDPOINT_DATA_{ID}"] = json.dumps({"authorizationType": "AzureSubscription", "clusterId": "/sub/x"})
    connection = kubernetes_connection(read_endpoint(environ, ID))
    assert connection.kind == "AzureSubscription"
    assert yaml.safe_load(connection.kubeconfig)["users"][0]["user"]["token"] == "sa-token-value"


def test_a_kubeconfig_connection_keeps_the_file_and_uses_its_cluster_context() -> None:
    environ = {
        f"ENDPOINT_URL_{ID}": "https://prod.example:6443",
        f"ENDPOINT_AUTH_{ID}": json.dumps(
            {"scheme": "Kubernetes", "parameters": {"kubeconfig": KUBECONFIG, "clusterContext": "prod"}}
        ),
        f"ENDPOINT_DATA_{ID}_AUTHORIZATIONTYPE": "Kubeconfig",
    }
    endpoint = read_endpoint(environ, ID)
    connection = kubernetes_connection(endpoint)
    assert (connection.kubeconfig, connection.context) == (KUBECONFIG, "prod")
    # The file is not one secret (its lines are ordinary YAML); its credentials are.
    assert tuple(endpoint.secrets()) == connection.secrets
    assert "kube-token-of-the-deployer" in endpoint.secrets()
    assert "client-key-data-value" in endpoint.secrets()
    assert not any("apiVersion" in secret for secret in endpoint.secrets())


def test_kubeconfig_secrets_are_the_credentials_only() -> None:
    found = kubeconfig_secrets(KUBECONFIG)
    assert found == ["kube-token-of-the-deployer", "Y2xpZW50LWtleS1kYXRhLXZhbHVlCg==", "client-key-data-value"]
    assert kubeconfig_secrets("not: [yaml") == []


def test_an_unknown_authorization_type_or_a_missing_token_says_what_to_do() -> None:
    environ = service_account()
    environ[f"ENDPOINT_DATA_{ID}"] = json.dumps({"authorizationType": "OpenIdConnect"})
    with pytest.raises(UserError, match="authorization type 'OpenIdConnect'"):
        kubernetes_connection(read_endpoint(environ, ID))
    environ = service_account()
    environ[f"ENDPOINT_AUTH_PARAMETER_{ID}_APITOKEN"] = "***not base64***"
    with pytest.raises(UserError, match="no service account token, or it is not base64"):
        kubernetes_connection(read_endpoint(environ, ID))


def test_secret_parameters_are_masked_and_the_agents_allow_list_is_not() -> None:
    environ = {
        f"ENDPOINT_URL_{ID}": "https://management.azure.com/",
        f"ENDPOINT_AUTH_SCHEME_{ID}": "ServicePrincipal",
        f"ENDPOINT_AUTH_PARAMETER_{ID}_SERVICEPRINCIPALID": "client-id-value",
        f"ENDPOINT_AUTH_PARAMETER_{ID}_SERVICEPRINCIPALKEY": "client-secret-value",
        f"ENDPOINT_AUTH_PARAMETER_{ID}_TENANTID": "tenant-id-value",
        f"ENDPOINT_AUTH_PARAMETER_{ID}_AUTHENTICATIONTYPE": "spnKey",
    }
    assert sorted(read_endpoint(environ, ID).secrets()) == ["client-id-value", "client-secret-value"]
