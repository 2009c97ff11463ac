"""A fake Kubernetes API server that the kubernetes client and kubectl cannot tell from a real one.

It covers what a Flux bootstrap and its tests use: discovery (legacy and aggregated), CRUD with real `Status`
errors, server-side apply with managedFields, the three patch formats, status subresources, CRDs that become
Established a moment after they are created, with schema and CEL validation and stored versions, typed
built-in objects, namespaces that terminate, watches with bookmarks, selectors, defaulting, RBAC-style users,
and a log of every request (`KubeApiServer.requests`) so tests can count what a client sent.
"""

from __future__ import annotations

from flux_azdo.sandbox.kube.access import AccessRule
from flux_azdo.sandbox.kube.requestlog import RequestRecord
from flux_azdo.sandbox.kube.server import KubeApiServer

__all__ = ["AccessRule", "KubeApiServer", "RequestRecord"]
