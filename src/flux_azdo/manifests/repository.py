"""The files `flux bootstrap` commits, planned together: components, sync, kustomization.

Pure: it is given the distribution, the flags and what `<path>/<namespace>/` holds
today, and answers with the content of each file and whether it would be created,
updated, left unchanged or kept as the user wrote it (kustomization.yaml only, once the user changed it).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from flux_azdo.errors import UserError
from flux_azdo.manifests.azure_devops import is_azure_devops_ssh_host
from flux_azdo.manifests.distribution import COMPONENTS_FILE, Distribution
from flux_azdo.manifests.install import InstallOptions, generate_components
from flux_azdo.manifests.kustomization import (
    KUSTOMIZATION_FILE,
    SYNC_FILE,
    GeneratedKustomization,
    KustomizationFinding,
    RequiredPatch,
    azure_devops_ssh_patch,
    check_kustomization,
    discover_resources,
    recognise_generated,
    render_kustomization,
    workload_identity_patch,
)
from flux_azdo.manifests.paths import manifests_dir
from flux_azdo.manifests.sync import SyncOptions, SyncTarget, generate_sync, is_azure_devops_repository, validate_sync

GITREPOSITORY_CRD = "gitrepositories.source.toolkit.fluxcd.io"
FileStatus = Literal["create", "update", "unchanged", "keep"]


@dataclass(frozen=True)
class WorkloadIdentity:
    """The managed identity source-controller runs as with `--provider azure`."""

    client_id: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class PlannedFile:
    path: str  # relative to the repository root
    content: str
    status: FileStatus


@dataclass(frozen=True)
class BootstrapFiles:
    directory: str
    files: tuple[PlannedFile, ...]
    findings: tuple[KustomizationFinding, ...]
    version: str
    components: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return any(f.status in ("create", "update") for f in self.files)


def _crd_property_allows(crd_text: str, prop: str, value: str | None = None) -> bool:
    """Whether a CRD schema has `prop` (and, if given, `value` in its enum)."""
    for match in re.finditer(rf"^( +){re.escape(prop)}:\n", crd_text, flags=re.M):
        if value is None:
            return True
        indent = len(match.group(1))
        for line in crd_text[match.end() :].split("\n"):
            if line.strip() and len(line) - len(line.lstrip(" ")) <= indent:
                break
            if line.strip() == f"- {value}":
                return True
    return False


def _check_api_support(dist: Distribution, sync: SyncOptions) -> None:
    crd = dist.crd(GITREPOSITORY_CRD)
    if crd is None:
        return
    if sync.provider == "azure" and not _crd_property_allows(crd.text, "provider", "azure"):
        raise UserError(
            f"Flux {dist.version} cannot use --provider azure: its GitRepository API has no Azure provider "
            "(added in Flux v2.4.0); use --version v2.4.0 or later"
        )
    if sync.sparse_checkout and not _crd_property_allows(crd.text, "sparseCheckout"):
        raise UserError(
            f"Flux {dist.version} cannot use --sparse-checkout: its GitRepository API has no sparseCheckout "
            "(added in Flux v2.6.0); use a later --version"
        )


def needs_azure_devops_ssh_patch(target: SyncTarget) -> bool:
    """Whether source-controller needs `--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256` to reach `target`.

    Azure DevOps (Services on ssh.dev.azure.com and vs-ssh.visualstudio.com, Server and the sandbox on their own
    hosts) offers only an RSA host key, signed with SHA-2, while go-git offers `ssh-rsa` (SHA-1) for the RSA key
    in known_hosts: the handshake fails without the flag. Server hosts have any name, so an Azure DevOps
    repository path over SSH (`v3/<org>/<project>/<repo>`, `.../_git/<repo>`) counts as much as the host.
    """
    if target.transport != "ssh":
        return False
    return is_azure_devops_ssh_host(target.host) or is_azure_devops_repository(target)


def _status(existing: str | None, content: str) -> FileStatus:
    if existing is None:
        return "create"
    return "unchanged" if existing == content else "update"


def _identity_to_write(given: WorkloadIdentity | None, generated: GeneratedKustomization | None) -> WorkloadIdentity:
    """The identity named on the command line; without a client ID, the one our file already names (if any)."""
    if given is not None and given.client_id:
        return given
    if generated is not None and generated.client_id:
        return WorkloadIdentity(generated.client_id, generated.tenant_id)
    return given or WorkloadIdentity()


def _required_patches(
    sync: SyncOptions, ssh: bool, identity: WorkloadIdentity, *, writing: bool
) -> list[RequiredPatch]:
    """The patches this run cannot work without: to write into our file, or to look for in the user's."""
    required: list[RequiredPatch] = []
    if ssh:
        required.append(azure_devops_ssh_patch())
    if sync.provider == "azure":
        if writing and not identity.client_id:
            raise UserError(
                "--provider azure needs --azure-client-id: the client ID of the managed identity federated with "
                "source-controller's service account, written into kustomization.yaml"
            )
        required.append(workload_identity_patch(identity.client_id, identity.tenant_id))
    return required


def plan_bootstrap_files(
    dist: Distribution,
    install: InstallOptions,
    sync: SyncOptions,
    existing: Mapping[str, str],
    identity: WorkloadIdentity | None = None,
) -> BootstrapFiles:
    """Plan `<path>/<namespace>/{gotk-components,gotk-sync,kustomization}.yaml`.

    `existing` maps file names relative to `<path>/<namespace>/` to their current text. kustomization.yaml is
    created, or updated while it is still exactly as we generated it (see `manifests.kustomization`); a file the
    user changed is kept, with findings for what this run needs and it lacks.
    """
    if install.namespace != sync.namespace:
        raise UserError("the install and sync namespaces differ: pass one --namespace")
    target, _, path = validate_sync(sync)
    components = generate_components(dist, install)
    _check_api_support(dist, sync)
    sync_text = generate_sync(sync)

    directory = manifests_dir(path, sync.namespace)
    files = [
        PlannedFile(
            posixpath.join(directory, COMPONENTS_FILE),
            components,
            _status(existing.get(COMPONENTS_FILE), components),
        ),
        PlannedFile(posixpath.join(directory, SYNC_FILE), sync_text, _status(existing.get(SYNC_FILE), sync_text)),
    ]
    kustomization_path = posixpath.join(directory, KUSTOMIZATION_FILE)
    resources = discover_resources({**existing, COMPONENTS_FILE: components, SYNC_FILE: sync_text})
    user_file = existing.get(KUSTOMIZATION_FILE)
    generated = recognise_generated(user_file, resources) if user_file is not None else None
    ssh = needs_azure_devops_ssh_patch(target)
    findings: list[KustomizationFinding] = []
    if user_file is not None and generated is None:
        required = _required_patches(sync, ssh, identity or WorkloadIdentity(), writing=False)
        findings = check_kustomization(user_file, existing, required)
        files.append(PlannedFile(kustomization_path, user_file, "keep"))
    else:
        # Ours to write (new, or still exactly as we generated it): the patches this run's auth mode needs.
        required = _required_patches(sync, ssh, _identity_to_write(identity, generated), writing=True)
        content = render_kustomization(resources, required)
        files.append(PlannedFile(kustomization_path, content, _status(user_file, content)))
    return BootstrapFiles(directory, tuple(files), tuple(findings), dist.version, install.selected_components())
