"""Product tests run against the sandbox: a local Azure DevOps (REST + git over HTTP), optionally its SSH endpoint.

The Kubernetes API server and the Flux simulator are off unless asked for: the Azure DevOps and Git tests do not
need them, and a sandbox without them starts in about 0.1 s. `azure=True` adds the sandbox Azure (Entra ID, ARM
with the AKS cluster "aks-sandbox" on the kube server, the deployer principal and its AzureRM service connection:
see `flux_azdo.sandbox.runtime`); it is meant with `kube=True` (without it the AKS API server is
https://127.0.0.1:1, a closed port). Azure clients trust the sandbox CA through `azure_credential_options`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.sandbox.runtime import Sandbox, SandboxOptions
from flux_azdo.sandbox.ssh import sshd_available


@contextlib.contextmanager
def running_sandbox(
    directory: Path,
    *,
    ssh: bool | str = False,
    kube: bool = False,
    flux: bool = False,
    ssh_host_key: Path | None = None,
    user_ssh_key: Path | None = None,
    deployment_ready_after: float = 0.2,
    unpullable_images: tuple[str, ...] = (),
    azure: bool = False,
) -> Iterator[Sandbox]:
    if ssh is True:
        reason = sshd_available()
        if reason is not None:
            pytest.skip(f"the SSH endpoint needs OpenSSH's sshd: {reason}")
    options = SandboxOptions(
        ssh=ssh,
        kube=kube,
        flux=flux,
        ssh_host_key=ssh_host_key,
        user_ssh_key=user_ssh_key,
        deployment_ready_after=deployment_ready_after,
        unpullable_images=unpullable_images,
        azure=azure,
    )
    with Sandbox(directory, options) as sandbox:
        yield sandbox


def azure_credential_options(sandbox: Sandbox) -> dict[str, object]:
    """Keyword arguments that point an azure-identity credential at the sandbox Entra ID.

    `disable_instance_discovery`: MSAL would otherwise ask login.microsoftonline.com whether the authority host is
    known; `connection_verify`: trust the sandbox CA (REQUESTS_CA_BUNDLE works too).
    """
    assert sandbox.azure is not None, "start the sandbox with azure=True"
    return {
        "authority": sandbox.azure.authority_host,
        "disable_instance_discovery": True,
        "connection_verify": str(sandbox.azure.ca_file),
    }
