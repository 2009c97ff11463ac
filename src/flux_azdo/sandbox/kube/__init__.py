"""A fake Kubernetes API server that the kubernetes client and kubectl cannot tell from a real one.

It covers what a Flux bootstrap and its tests use: discovery (legacy and aggregated), CRUD with real `Status`
errors, server-side apply with managedFields, the three patch formats, status subresources, CRDs with schema
validation, namespaces that terminate, watches, selectors, defaulting, and RBAC-style users.
"""

from __future__ import annotations

from flux_azdo.sandbox.kube.access import AccessRule
from flux_azdo.sandbox.kube.server import KubeApiServer

__all__ = ["AccessRule", "KubeApiServer"]
