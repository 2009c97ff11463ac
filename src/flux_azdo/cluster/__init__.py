"""The Kubernetes side of bootstrap: connection, server-side apply, kustomize builds, secrets, waits and checks.

Nothing here prints: functions return what happened or raise `UserError`, and the orchestrator reports.
"""

from flux_azdo.cluster.client import Cluster, ClusterAccess, NotFound, UnknownKind

__all__ = ["Cluster", "ClusterAccess", "NotFound", "UnknownKind"]
