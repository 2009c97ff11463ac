"""The built-in resources a Flux bootstrap (and its tests) touch, as a real 1.32 apiserver lists them.

Names, short names, categories, verbs and subresources follow the real discovery documents; merge structures
declare the associative lists of the Kubernetes API (containers by `name`, container ports by
`containerPort`+`protocol`, ...) and its atomic maps (label selectors), so managedFields look like a real
cluster's.
"""

from __future__ import annotations

from typing import Any

from flux_azdo.sandbox.kube import defaulting
from flux_azdo.sandbox.kube.resources import (
    GENERATION_SPEC,
    NO_COLLECTION_DELETE,
    ResourceType,
)
from flux_azdo.sandbox.kube.typeinfo import ATOMIC_NODE, METADATA, TypeNode, list_map, struct, with_metadata

CONTAINER = struct(
    ports=list_map("containerPort", "protocol", defaults={"protocol": "TCP"}),
    env=list_map("name"),
    volumeMounts=list_map("mountPath"),
    volumeDevices=list_map("devicePath"),
)
POD_SPEC = struct(
    containers=list_map("name", item=CONTAINER),
    initContainers=list_map("name", item=CONTAINER),
    ephemeralContainers=list_map("name", item=CONTAINER),
    volumes=list_map("name"),
    imagePullSecrets=list_map("name"),
    hostAliases=list_map("ip"),
    topologySpreadConstraints=list_map("topologyKey", "whenUnsatisfiable"),
    resourceClaims=list_map("name"),
    schedulingGates=list_map("name"),
    nodeSelector=ATOMIC_NODE,
)
POD_TEMPLATE = struct(metadata=METADATA, spec=POD_SPEC)
CONDITIONS = list_map("type")
WORKLOAD = struct(
    spec=struct(selector=ATOMIC_NODE, template=POD_TEMPLATE),
    status=struct(conditions=CONDITIONS),
)


def _root(node: TypeNode) -> TypeNode:
    return with_metadata(node)


def _kind(group: str, plural: str, kind: str, namespaced: bool, **options: Any) -> ResourceType:
    """A v1 built-in (every one here is v1) whose singular name is its lower-cased kind."""
    return ResourceType(group, ("v1",), "v1", plural, kind.lower(), kind, namespaced, **options)


def builtin_types(allocator: defaulting.ClusterIPAllocator) -> list[ResourceType]:
    rbac = "rbac.authorization.k8s.io"
    review = {"verbs": ("create",), "virtual": True}
    service_spec = struct(ports=list_map("port", "protocol", defaults={"protocol": "TCP"}), selector=ATOMIC_NODE)
    pod_status = struct(conditions=CONDITIONS, podIPs=list_map("ip"), hostIPs=list_map("ip"))
    return [
        _kind(
            "", "namespaces", "Namespace", False,
            verbs=NO_COLLECTION_DELETE, short_names=("ns",), subresources=("finalize", "status"),
            structure=_root(struct(spec=struct(finalizers=ATOMIC_NODE), status=struct(conditions=CONDITIONS))),
            returns_object_on_delete=True, defaulter=defaulting.namespace,
        ),
        _kind("", "configmaps", "ConfigMap", True, short_names=("cm",)),
        _kind("", "secrets", "Secret", True, defaulter=defaulting.secret),
        _kind(
            "", "serviceaccounts", "ServiceAccount", True, short_names=("sa",),
            structure=_root(struct(secrets=list_map("name"))), returns_object_on_delete=True,
        ),
        _kind(
            "", "services", "Service", True, short_names=("svc",), categories=("all",), subresources=("status",),
            structure=_root(struct(spec=service_spec, status=struct(conditions=CONDITIONS))),
            defaulter=defaulting.make_service_defaulter(allocator), returns_object_on_delete=True,
        ),
        _kind(
            "", "pods", "Pod", True, short_names=("po",), categories=("all",), subresources=("status",),
            structure=_root(struct(spec=POD_SPEC, status=pod_status)),
            returns_object_on_delete=True, defaulter=defaulting.pod,
        ),
        _kind("", "events", "Event", True, short_names=("ev",)),
        _kind("", "resourcequotas", "ResourceQuota", True, short_names=("quota",), subresources=("status",)),
        _kind(
            "apps", "deployments", "Deployment", True, short_names=("deploy",), categories=("all",),
            subresources=("scale", "status"), structure=_root(WORKLOAD), generation=GENERATION_SPEC,
            defaulter=defaulting.deployment,
        ),
        _kind(
            "apps", "replicasets", "ReplicaSet", True, short_names=("rs",), categories=("all",),
            subresources=("scale", "status"), structure=_root(WORKLOAD), generation=GENERATION_SPEC,
            defaulter=defaulting.replicaset,
        ),
        _kind(rbac, "clusterroles", "ClusterRole", False),
        _kind(rbac, "clusterrolebindings", "ClusterRoleBinding", False),
        _kind(rbac, "roles", "Role", True),
        _kind(rbac, "rolebindings", "RoleBinding", True),
        _kind(
            "networking.k8s.io", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",),
            structure=_root(struct(spec=struct(podSelector=ATOMIC_NODE))), generation=GENERATION_SPEC,
            defaulter=defaulting.network_policy,
        ),
        _kind(
            "apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", False,
            short_names=("crd", "crds"), categories=("api-extensions",), subresources=("status",),
            structure=_root(struct(status=struct(conditions=CONDITIONS))), generation=GENERATION_SPEC,
            returns_object_on_delete=True, defaulter=defaulting.custom_resource_definition,
        ),
        _kind("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, **review),
        _kind("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, **review),
        _kind("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", False, **review),
        _kind("coordination.k8s.io", "leases", "Lease", True),
    ]  # fmt: skip
