"""Azure Resource Manager for one subscription: resource groups, AKS managed clusters, role assignments.

Served: `GET .../resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters` (list) and
`.../managedClusters/{name}` (get), `POST .../managedClusters/{name}/listClusterUserCredential` and
`/listClusterAdminCredential` (any `api-version`, which is required as ARM requires it). Order of checks, as
ARM's front door applies them: the bearer token (401 `AuthenticationFailed` without one,
`InvalidAuthenticationToken`, `InvalidAuthenticationTokenAudience`, `ExpiredAuthenticationToken`), the api-version
(400 `MissingApiVersionParameter`), the subscription (404 `SubscriptionNotFound`), then authorization on the
requested scope *before* the resource provider looks anything up: a principal whose role is assigned on the
cluster only gets 403 `AuthorizationFailed` for a mistyped resource group, and 404 `ResourceGroupNotFound` /
`ResourceNotFound` only where it may read the scope.

Roles (built-in names, actions as their definitions list them): "Azure Kubernetes Service Cluster User Role"
(managedClusters/listClusterUserCredential/action, managedClusters/read), "Azure Kubernetes Service Cluster Admin
Role" (also listClusterAdminCredential/action), Reader (*/read), Contributor and Owner (everything). Assigned on
the subscription, a resource group or a cluster; a scope covers everything below it.

Credentials: `{"kubeconfigs": [{"name": "clusterUser"|"clusterAdmin", "value": <base64 kubeconfig>}]}`. The user
credential of an Entra-integrated cluster has the kubelogin `exec` user AKS writes (`format=exec`, the default) or
the legacy `auth-provider: azure` one (`format=azure`); a cluster without Entra integration and every admin
credential carry a static token with cluster-admin rights. A cluster with local accounts disabled refuses admin
credentials (400 BadRequest, "Getting static credential is not allowed because this cluster is set to disable
local accounts.", text seen in terraform-provider-azurerm#15489). Texts of ResourceGroupNotFound, ResourceNotFound,
AuthorizationFailed and ExpiredAuthenticationToken are those ARM sends (seen in public issue reports); the JSON
envelope is ARM's `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import base64
import datetime
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from flux_azdo.sandbox.azure.entra import ARM_AUDIENCES, Directory, TokenRejected
from flux_azdo.sandbox.azure.ids import AKS_CLIENT_APP, AKS_SERVER_APP
from flux_azdo.sandbox.azure.replies import Reply, ReplyError

CLUSTER_USER_ROLE = "Azure Kubernetes Service Cluster User Role"
CLUSTER_ADMIN_ROLE = "Azure Kubernetes Service Cluster Admin Role"
_PROVIDER = "Microsoft.ContainerService"
_READ = f"{_PROVIDER}/managedClusters/read"
_LIST_USER = f"{_PROVIDER}/managedClusters/listClusterUserCredential/action"
_LIST_ADMIN = f"{_PROVIDER}/managedClusters/listClusterAdminCredential/action"
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    CLUSTER_USER_ROLE: frozenset({_LIST_USER, _READ}),
    CLUSTER_ADMIN_ROLE: frozenset({_LIST_USER, _LIST_ADMIN, _READ}),
    "Reader": frozenset({"*/read"}),
    "Contributor": frozenset({"*"}),
    "Owner": frozenset({"*"}),
}
KUBELOGIN_INSTALL_HINT = (
    "\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\n"
    "To learn more, please go to https://aka.ms/aks/kubelogin\n"
)


@dataclass(eq=False)
class ManagedCluster:
    """An AKS cluster whose API server is `server_url` (trusting `ca_pem`); `static_token` is its local
    cluster-admin credential. `entra`: AKS-managed Entra integration; `local_accounts`: False is
    `disableLocalAccounts: true`."""

    name: str
    resource_group: str
    subscription_id: str
    server_url: str
    ca_pem: bytes | None
    static_token: str
    entra: bool = True
    local_accounts: bool = True
    location: str = "westeurope"
    kubernetes_version: str = "1.32.4"
    tenant_id: str = ""

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
            f"{_PROVIDER}/managedClusters/{self.name}"
        )


@dataclass
class ResourceGroup:
    name: str
    location: str = "westeurope"
    clusters: dict[str, ManagedCluster] = field(default_factory=dict)


@dataclass(frozen=True)
class RoleAssignment:
    principal_id: str
    role: str
    scope: str


class ResourceManager:
    """One subscription's resources and role assignments. Thread-safe."""

    def __init__(self, directory: Directory, subscription_id: str | None = None) -> None:
        self.directory = directory
        self.subscription_id = (subscription_id or str(uuid.uuid4())).lower()
        self._lock = threading.RLock()
        self._groups: dict[str, ResourceGroup] = {}
        self._assignments: list[RoleAssignment] = []

    # ----- configuration ------------------------------------------------------------------------------------

    @property
    def subscription_scope(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    def add_resource_group(self, name: str, location: str = "westeurope") -> ResourceGroup:
        with self._lock:
            existing = self._groups.get(name.lower())
            if existing is not None:
                return existing
            group = ResourceGroup(name, location)
            self._groups[name.lower()] = group
            return group

    def add_cluster(
        self,
        resource_group: str,
        name: str,
        *,
        server_url: str,
        ca_pem: bytes | None,
        static_token: str,
        entra: bool = True,
        local_accounts: bool = True,
    ) -> ManagedCluster:
        group = self.add_resource_group(resource_group)
        cluster = ManagedCluster(
            name,
            group.name,
            self.subscription_id,
            server_url,
            ca_pem,
            static_token,
            entra=entra,
            local_accounts=local_accounts,
            location=group.location,
            tenant_id=self.directory.tenant_id,
        )
        with self._lock:
            group.clusters[name.lower()] = cluster
        return cluster

    def assign_role(self, principal_id: str, role: str, scope: str) -> RoleAssignment:
        """A role assignment; `scope` is an ARM id (`cluster.id`, `/subscriptions/<id>/resourceGroups/<rg>`)."""
        if role not in ROLE_ACTIONS:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLE_ACTIONS)}")
        assignment = RoleAssignment(principal_id.lower(), role, scope.rstrip("/"))
        with self._lock:
            self._assignments.append(assignment)
        return assignment

    def remove_role(self, principal_id: str, role: str | None = None) -> None:
        with self._lock:
            self._assignments = [
                a
                for a in self._assignments
                if a.principal_id != principal_id.lower() or (role is not None and a.role != role)
            ]

    def allowed(self, principal_id: str, action: str, scope: str) -> bool:
        folded = scope.rstrip("/").lower()
        with self._lock:
            assignments = [a for a in self._assignments if a.principal_id == principal_id.lower()]
        for assignment in assignments:
            assigned = assignment.scope.lower()
            if folded != assigned and not folded.startswith(assigned + "/"):
                continue
            actions = ROLE_ACTIONS[assignment.role]
            if "*" in actions or action in actions or (action.endswith("/read") and "*/read" in actions):
                return True
        return False

    # ----- HTTP ---------------------------------------------------------------------------------------------

    def handle(self, method: str, segments: list[str], query: Mapping[str, str], authorization: str | None) -> Reply:
        try:
            return self._handle(method, segments, query, authorization)
        except ReplyError as error:
            return error.reply

    def _handle(self, method: str, segments: list[str], query: Mapping[str, str], authorization: str | None) -> Reply:
        claims = self._authenticate(authorization)
        if "api-version" not in query:
            raise _error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        lowered = [s.lower() for s in segments]
        if len(segments) < 2 or segments[1].lower() != self.subscription_id:
            shown = segments[1] if len(segments) > 1 else ""
            raise _error(404, "SubscriptionNotFound", f"The subscription '{shown}' could not be found.")
        route = lowered[2:]
        if (
            len(route) < 5
            or route[0] != "resourcegroups"
            or route[2:5] != ["providers", _PROVIDER.lower(), "managedclusters"]
        ):
            raise _no_route(method, "/" + "/".join(segments))
        group_name = segments[3]
        rest = segments[7:]
        principal = str(claims.get("oid", ""))
        appid = str(claims.get("appid", ""))
        group_scope = f"{self.subscription_scope}/resourceGroups/{group_name}"
        if not rest:
            if method != "GET":
                raise _no_route(method, "/" + "/".join(segments))
            self._authorize(principal, appid, _READ, group_scope)
            group = self._group(group_name)
            with self._lock:
                clusters = list(group.clusters.values())
            return Reply(200, {"value": [_cluster_document(c) for c in clusters]})
        name = rest[0]
        cluster_scope = f"{group_scope}/providers/{_PROVIDER}/managedClusters/{name}"
        if len(rest) == 1 and method == "GET":
            self._authorize(principal, appid, _READ, cluster_scope)
            return Reply(200, _cluster_document(self._cluster(group_name, name)))
        if len(rest) == 2 and method == "POST" and rest[1].lower() == "listclusterusercredential":
            self._authorize(principal, appid, _LIST_USER, cluster_scope)
            cluster = self._cluster(group_name, name)
            return _credentials("clusterUser", user_kubeconfig(cluster, query.get("format", "exec")))
        if len(rest) == 2 and method == "POST" and rest[1].lower() == "listclusteradmincredential":
            self._authorize(principal, appid, _LIST_ADMIN, cluster_scope)
            cluster = self._cluster(group_name, name)
            if not cluster.local_accounts:
                raise _error(
                    400,
                    "BadRequest",
                    "Getting static credential is not allowed because this cluster is set to disable local accounts.",
                )
            return _credentials("clusterAdmin", static_kubeconfig(cluster, admin=True))
        raise _no_route(method, "/" + "/".join(segments))

    def _authenticate(self, authorization: str | None) -> Mapping[str, Any]:
        if not authorization or not authorization.strip():
            raise _unauthorized("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
        try:
            return self.directory.verify_access_token(token.strip(), self.directory.arm_audiences)
        except TokenRejected as rejected:
            if rejected.reason == "audience":
                allowed = ",".join(f"'{a}'" for a in ARM_AUDIENCES)  # the sandbox's own URL is not shown
                raise _unauthorized(
                    "InvalidAuthenticationTokenAudience",
                    f"The access token has been obtained for wrong audience or resource "
                    f"'{rejected.claims.get('aud', '')}'. It should exactly match with one of the allowed "
                    f"audiences {allowed}.",
                ) from None
            if rejected.reason == "expired":
                expiry = rejected.claims.get("exp")
                now = self.directory.clock()
                raise _unauthorized(
                    "ExpiredAuthenticationToken",
                    f"The access token expiry UTC time '{_arm_time(expiry)}' is earlier than current UTC time "
                    f"'{_arm_time(now)}'.",
                ) from None
            raise _unauthorized("InvalidAuthenticationToken", "The access token is invalid.") from None

    def _authorize(self, principal: str, appid: str, action: str, scope: str) -> None:
        if self.allowed(principal, action, scope):
            return
        raise _error(
            403,
            "AuthorizationFailed",
            (
                f"The client '{appid}' with object id '{principal}' does not have authorization to perform action "
                f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please "
                "refresh your credentials."
            ),
        )

    def _group(self, name: str) -> ResourceGroup:
        with self._lock:
            group = self._groups.get(name.lower())
        if group is None:
            raise _error(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
        return group

    def _cluster(self, group_name: str, name: str) -> ManagedCluster:
        group = self._group(group_name)
        with self._lock:
            cluster = group.clusters.get(name.lower())
        if cluster is None:
            raise _error(
                404,
                "ResourceNotFound",
                (
                    f"The Resource '{_PROVIDER}/managedClusters/{name}' under resource group '{group_name}' was not "
                    "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
                ),
            )
        return cluster


# ----- documents -----------------------------------------------------------------------------------------------


def _cluster_document(cluster: ManagedCluster) -> dict[str, Any]:
    fqdn = cluster.server_url.removeprefix("https://").removeprefix("http://").split("/")[0].rsplit(":", 1)[0]
    properties: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "powerState": {"code": "Running"},
        "kubernetesVersion": cluster.kubernetes_version.removeprefix("v"),
        "currentKubernetesVersion": cluster.kubernetes_version.removeprefix("v"),
        "dnsPrefix": f"{cluster.name}-dns",
        "fqdn": fqdn,
        "azurePortalFQDN": fqdn,
        "enableRBAC": True,
        "disableLocalAccounts": not cluster.local_accounts,
        "nodeResourceGroup": f"MC_{cluster.resource_group}_{cluster.name}_{cluster.location}",
    }
    if cluster.entra:
        properties["aadProfile"] = {
            "managed": True,
            "adminGroupObjectIDs": None,
            "enableAzureRBAC": False,
            "tenantID": cluster.tenant_id,
        }
    return {
        "id": cluster.id,
        "location": cluster.location,
        "name": cluster.name,
        "type": f"{_PROVIDER}/ManagedClusters",
        "properties": properties,
        "sku": {"name": "Base", "tier": "Free"},
    }


def _credentials(name: str, kubeconfig: dict[str, Any]) -> Reply:
    text = yaml.safe_dump(kubeconfig, sort_keys=False)
    return Reply(200, {"kubeconfigs": [{"name": name, "value": base64.b64encode(text.encode()).decode()}]})


def _kubeconfig(cluster: ManagedCluster, user_name: str, context: str, user: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"server": cluster.server_url}
    if cluster.ca_pem is not None:
        entry = {"certificate-authority-data": base64.b64encode(cluster.ca_pem).decode(), **entry}
    return {
        "apiVersion": "v1",
        "clusters": [{"cluster": entry, "name": cluster.name}],
        "contexts": [{"context": {"cluster": cluster.name, "user": user_name}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user_name, "user": user}],
    }


def static_kubeconfig(cluster: ManagedCluster, *, admin: bool) -> dict[str, Any]:
    """A local account's kubeconfig (AKS also adds a client certificate; the sandbox API server takes tokens)."""
    kind = "clusterAdmin" if admin else "clusterUser"
    user_name = f"{kind}_{cluster.resource_group}_{cluster.name}"
    context = f"{cluster.name}-admin" if admin else cluster.name
    return _kubeconfig(cluster, user_name, context, {"token": cluster.static_token})


def user_kubeconfig(cluster: ManagedCluster, credential_format: str) -> dict[str, Any]:
    if not cluster.entra:
        return static_kubeconfig(cluster, admin=False)
    user_name = f"clusterUser_{cluster.resource_group}_{cluster.name}"
    if credential_format.lower() == "azure":
        user: dict[str, Any] = {
            "auth-provider": {
                "config": {
                    "apiserver-id": AKS_SERVER_APP,
                    "client-id": AKS_CLIENT_APP,
                    "config-mode": "1",
                    "environment": "AzurePublicCloud",
                    "tenant-id": cluster.tenant_id,
                },
                "name": "azure",
            }
        }
    else:
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "args": [
                    "get-token",
                    "--environment",
                    "AzurePublicCloud",
                    "--server-id",
                    AKS_SERVER_APP,
                    "--client-id",
                    AKS_CLIENT_APP,
                    "--tenant-id",
                    cluster.tenant_id,
                    "--login",
                    "devicecode",
                ],
                "command": "kubelogin",
                "env": None,
                "installHint": KUBELOGIN_INSTALL_HINT,
                "provideClusterInfo": False,
            }
        }
    return _kubeconfig(cluster, user_name, cluster.name, user)


# ----- errors --------------------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> ReplyError:
    return ReplyError(Reply(status, {"error": {"code": code, "message": message}}, headers or {}))


def _unauthorized(code: str, message: str) -> ReplyError:
    challenge = (
        'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", '
        f'error_description="{message}"'
    )
    return _error(401, code, message, {"WWW-Authenticate": challenge})


def _no_route(method: str, path: str) -> ReplyError:
    return _error(
        404,
        "NoRegisteredProviderFound" if "/providers/" not in path else "InvalidResourceType",
        f"The resource type could not be found for {method} {path}.",
    )


def _arm_time(seconds: object) -> str:
    """ARM's `M/d/yyyy h:mm:ss tt` form (`5/14/2023 1:02:03 PM`)."""
    value = float(seconds) if isinstance(seconds, (int, float)) else 0.0
    moment = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    hour = moment.hour % 12 or 12
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d}:{moment.second:02d} " + (
        "AM" if moment.hour < 12 else "PM"
    )
