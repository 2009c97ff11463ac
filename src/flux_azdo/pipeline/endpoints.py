"""Service connections, as the agent hands them to a task, and Kubernetes connections turned into a kubeconfig.

For every endpoint a `connectedService:*` input names, the agent sets (reference azure-devops.md §2.4):
`ENDPOINT_URL_<id>`, `ENDPOINT_AUTH_<id>` (JSON `{"parameters": {...}, "scheme": ...}`), `ENDPOINT_AUTH_SCHEME_<id>`,
`ENDPOINT_AUTH_PARAMETER_<id>_<PARAM upper-cased>`, `ENDPOINT_DATA_<id>` (JSON) and `ENDPOINT_DATA_<id>_<KEY
upper-cased>`. `<id>` is the GUID as the input gives it (lower-case); task-lib looks parameters up without regard
to case, and so does this module.

A Kubernetes service connection is one of three kinds (data `authorizationType`), read as Microsoft's
kubernetes-common package reads them (`kubectlutility.ts`): `Kubeconfig` (parameter `kubeconfig`, the whole file,
and `clusterContext`, the context to use), `ServiceAccount` and `AzureSubscription` (the endpoint URL is the API
server, `apiToken` is the service account token in base64, `serviceAccountCertificate` the cluster's CA as
certificate-authority-data). Data `acceptUntrustedCerts` = true skips the server certificate check, as the
Kubernetes tasks do with `--insecure-skip-tls-verify`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flux_azdo.errors import UserError

#: Authorization parameters the agent does not mask (agent `MaskingUtil.IsEndpointAuthorizationParametersSecret`),
#: plus the kubeconfig, whose secret parts are masked one by one (a whole file is no single-line secret).
NOT_SECRET_PARAMETERS = frozenset(
    {
        "audience",
        "authenticationtype",
        "clustercontext",
        "expiresat",
        "iscreatedfromsecretyaml",
        "issuedat",
        "kubeconfig",
        "role",
        "scope",
        "serviceaccountcertificate",
        "tenantid",
    }
)
_EDIT_CONNECTION = "edit the service connection in Project settings > Service connections, or create it again"


@dataclass(frozen=True)
class ServiceEndpoint:
    """One service connection: its URL, authorization scheme and parameters, and data (names lower-cased)."""

    id: str
    url: str = ""
    scheme: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict, repr=False)
    data: Mapping[str, str] = field(default_factory=dict)

    def parameter(self, name: str) -> str:
        return self.parameters.get(name.lower(), "")

    def datum(self, name: str) -> str:
        return self.data.get(name.lower(), "")

    def secrets(self) -> list[str]:
        """Every value to mask: the secret parameters (and what a base64 token decodes to), the kubeconfig's
        credentials."""
        found: list[str] = []
        for name, value in self.parameters.items():
            if not value.strip():
                continue
            if name == "kubeconfig":
                found += kubeconfig_secrets(value)
            elif name not in NOT_SECRET_PARAMETERS:
                found.append(value)
                if name == "apitoken":
                    decoded = _b64decode(value)
                    if decoded:
                        found.append(decoded)
        return found


def _lookup(environ: Mapping[str, str], prefix: str, endpoint_id: str) -> str | None:
    """`<prefix><id>` with the id as given, lower-cased or upper-cased; else any case (environments are not
    case-insensitive on Linux, but a hand-made one may upper-case the id)."""
    for key in (endpoint_id, endpoint_id.lower(), endpoint_id.upper()):
        value = environ.get(prefix + key)
        if value is not None:
            return value
    wanted = (prefix + endpoint_id).upper()
    for name, value in environ.items():
        if name.upper() == wanted:
            return value
    return None


def _suffixed(environ: Mapping[str, str], prefix: str, endpoint_id: str) -> dict[str, str]:
    """`<prefix><id>_<NAME>` variables, as {name lower-cased: value}."""
    start = f"{prefix}{endpoint_id}_".upper()
    return {name[len(start) :].lower(): value for name, value in environ.items() if name.upper().startswith(start)}


def _json_object(text: str | None, what: str, endpoint_id: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise UserError(f"service connection {endpoint_id}: {what} is not JSON", fix=_EDIT_CONNECTION) from None
    return value if isinstance(value, dict) else {}


def read_endpoint(environ: Mapping[str, str], endpoint_id: str, *, input_name: str = "") -> ServiceEndpoint:
    """The endpoint `endpoint_id` (a GUID from a connectedService input), or a UserError when the job has none."""
    endpoint_id = endpoint_id.strip()
    url = _lookup(environ, "ENDPOINT_URL_", endpoint_id)
    auth = _json_object(_lookup(environ, "ENDPOINT_AUTH_", endpoint_id), "its authorization", endpoint_id)
    scheme = _lookup(environ, "ENDPOINT_AUTH_SCHEME_", endpoint_id) or str(auth.get("scheme") or "")
    parameters = {str(k).lower(): str(v) for k, v in (auth.get("parameters") or {}).items() if v is not None}
    parameters.update(_suffixed(environ, "ENDPOINT_AUTH_PARAMETER_", endpoint_id))
    data = {
        str(k).lower(): str(v)
        for k, v in _json_object(_lookup(environ, "ENDPOINT_DATA_", endpoint_id), "its data", endpoint_id).items()
        if v is not None
    }
    data.update(_suffixed(environ, "ENDPOINT_DATA_", endpoint_id))
    if url is None and not parameters and not scheme:
        named = f" (input {input_name})" if input_name else ""
        raise UserError(
            f"service connection {endpoint_id}{named} is not available to this job",
            fix="check the connection's name or id, and authorise this pipeline to use it (Project settings > "
            "Service connections > the connection > Security > Pipeline permissions)",
        )
    return ServiceEndpoint(endpoint_id, (url or "").strip(), scheme.strip(), parameters, data)


def endpoint_secrets(environ: Mapping[str, str], endpoint_id: str) -> list[str]:
    """The endpoint's secrets when the job has it, else none: main masks them before anything is printed."""
    try:
        return read_endpoint(environ, endpoint_id).secrets()
    except UserError:
        return []


# ----- Kubernetes service connections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubernetesConnection:
    """A kubeconfig for the connection, the context to use (None: its current one), and its secrets."""

    kubeconfig: str = field(repr=False)
    context: str | None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    kind: str = "Kubeconfig"


def _b64decode(text: str) -> str | None:
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8").strip() or None
    except (binascii.Error, ValueError):
        return None


def kubeconfig_secrets(text: str) -> list[str]:
    """The credentials in a kubeconfig: tokens, passwords, client keys (not the CA, not the names)."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    found: list[str] = []
    users = document.get("users") if isinstance(document, dict) else None
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        for key in ("token", "password", "client-key-data"):
            value = user.get(key)
            if isinstance(value, str) and value.strip():
                found.append(value.strip())
                if key == "client-key-data":
                    decoded = _b64decode(value)
                    if decoded:
                        found += [line for line in decoded.splitlines() if len(line) >= 8 and "-----" not in line]
    return found


def kubernetes_connection(endpoint: ServiceEndpoint) -> KubernetesConnection:
    """The kubeconfig of a Kubernetes service connection, for each of its three kinds."""
    kind = endpoint.datum("authorizationType") or ("Kubeconfig" if endpoint.parameter("kubeconfig") else "")
    insecure = endpoint.datum("acceptUntrustedCerts").lower() == "true"
    label = f"Kubernetes service connection {endpoint.id}"
    if kind.lower() == "kubeconfig":
        text = endpoint.parameter("kubeconfig")
        if not text.strip():
            raise UserError(f"the {label} has no kubeconfig", fix=_EDIT_CONNECTION)
        context = endpoint.parameter("clusterContext") or None
        if insecure:
            text = _insecure(text)
        return KubernetesConnection(text, context, tuple(kubeconfig_secrets(text)), "Kubeconfig")
    if kind.lower() in ("serviceaccount", "azuresubscription"):
        server = endpoint.url
        if not server:
            raise UserError(f"the {label} has no server URL", fix=_EDIT_CONNECTION)
        encoded = endpoint.parameter("apiToken")
        token = _b64decode(encoded) if encoded else None
        if not token:
            raise UserError(
                f"the {label} ({kind}) has no service account token, or it is not base64",
                fix=_EDIT_CONNECTION,
            )
        ca = endpoint.parameter("serviceAccountCertificate").strip()
        cluster: dict[str, Any] = {"server": server}
        if insecure:
            cluster["insecure-skip-tls-verify"] = True
        elif ca:
            cluster["certificate-authority-data"] = _certificate_data(ca)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "service-account", "user": {"token": token}}],
            "contexts": [{"name": "service-account", "context": {"cluster": "cluster", "user": "service-account"}}],
            "current-context": "service-account",
        }
        return KubernetesConnection(json.dumps(config, indent=2), None, (token, encoded), kind)
    raise UserError(
        f"the {label} has the authorization type {kind or '(none)'!r}, which flux-azdo cannot use",
        fix="use a connection of kind KubeConfig, Service Account or Azure Subscription",
    )


def _certificate_data(ca: str) -> str:
    """certificate-authority-data: the connection's value is already base64 (a PEM pasted as is is encoded)."""
    if ca.startswith("-----BEGIN"):
        return base64.b64encode(ca.encode("ascii") + b"\n").decode("ascii")
    return "".join(ca.split())


def _insecure(text: str) -> str:
    """acceptUntrustedCerts on a kubeconfig connection: every cluster skips the certificate check."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(document, dict):
        return text
    for entry in document.get("clusters") or []:
        cluster = entry.get("cluster") if isinstance(entry, dict) else None
        if isinstance(cluster, dict):
            cluster.pop("certificate-authority-data", None)
            cluster.pop("certificate-authority", None)
            cluster["insecure-skip-tls-verify"] = True
    return json.dumps(document, indent=2)
