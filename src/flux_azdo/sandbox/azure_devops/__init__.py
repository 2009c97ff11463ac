"""A local Azure DevOps: REST subset, Git smart HTTP, push rules, fault injection (see `server`).

`AzureDevOpsServer` is loaded lazily: `sandbox.world` imports `security` from this package, and the server
imports the world, so an eager import here would be circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flux_azdo.sandbox.azure_devops.server import AzureDevOpsServer

__all__ = ["AzureDevOpsServer"]


def __getattr__(name: str) -> Any:
    if name == "AzureDevOpsServer":
        from flux_azdo.sandbox.azure_devops.server import AzureDevOpsServer

        return AzureDevOpsServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
