"""kustomization.yaml in `<path>/<namespace>/`: created by us, then the user's to keep once they change it.

Flux writes it only when it is absent and never touches it again, so user patches
survive every re-bootstrap. Some of our auth modes need a patch to work at all (Azure
DevOps SSH needs RSA SHA-2 host key algorithms; workload identity needs the
source-controller service account annotated). Those patches are data here: written into
a new file, and looked for, never silently added, in a file the user already has.

One departure from Flux: a file that is still exactly what we (or Flux) generated for the folder, the plain
default or with any of our patches, is ours, and is rewritten for the current auth mode. Otherwise switching a
cluster's credential (a PAT to workload identity, say) would stop on our own file lacking our own patch. It is
recognised by rendering every variant we could have written and comparing text, so the file carries no marker
and the plain default stays byte for byte Flux's.
"""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from flux_azdo.errors import UserError
from flux_azdo.manifests.azure_devops import AZURE_DEVOPS_SSH_HOSTKEY_ALGOS
from flux_azdo.manifests.distribution import COMPONENTS_FILE
from flux_azdo.manifests.goyaml import scalar

KUSTOMIZATION_FILE = "kustomization.yaml"
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SYNC_FILE = "gotk-sync.yaml"
_HEADER = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
_GUID_HEX = "0123456789abcdefABCDEF"
WORKLOAD_IDENTITY_MARKERS = ("azure.workload.identity/client-id", "azure.workload.identity/use")
#: The annotation lines of our workload identity patch, where the IDs a generated file names are read from.
_ANNOTATION = re.compile(r"^ {8}azure\.workload\.identity/(client-id|tenant-id): (.+)$", re.M)


@dataclass(frozen=True)
class RequiredPatch:
    """A kustomize patch an auth mode cannot work without."""

    title: str
    reason: str
    entries: str  # YAML list items under `patches:`, in the file's own style
    markers: tuple[str, ...]  # each must appear in some patch for the file to count as patched

    def snippet(self) -> str:
        return "patches:\n" + self.entries


@dataclass(frozen=True)
class KustomizationFinding:
    """Something a user-owned kustomization.yaml lacks; reported, never fixed behind the user's back."""

    problem: str
    fix: str


def azure_devops_ssh_patch() -> RequiredPatch:
    """Azure DevOps offers only rsa-sha2-* host keys; source-controller must be told to accept them."""
    entries = (
        "- patch: |\n"
        "    - op: add\n"
        "      path: /spec/template/spec/containers/0/args/-\n"
        f"      value: --ssh-hostkey-algos={AZURE_DEVOPS_SSH_HOSTKEY_ALGOS}\n"
        "  target:\n"
        "    kind: Deployment\n"
        "    name: (source-controller|image-automation-controller)\n"
    )
    return RequiredPatch(
        title="Azure DevOps SSH host key algorithms",
        reason=(
            "Azure DevOps answers SSH only with rsa-sha2-512/256 host keys, so source-controller needs "
            f"--ssh-hostkey-algos={AZURE_DEVOPS_SSH_HOSTKEY_ALGOS}"
        ),
        entries=entries,
        markers=("--ssh-hostkey-algos=", "rsa-sha2-"),
    )


def _is_guid(value: str) -> bool:
    groups = value.split("-")
    return [len(g) for g in groups] == [8, 4, 4, 4, 12] and all(c in _GUID_HEX for g in groups for c in g)


def _require_guid(value: str, flag: str) -> None:
    if not _is_guid(value):
        raise UserError(f"{flag}={value!r} is not a GUID: copy the ID from the managed identity's overview page")


def workload_identity_patch(client_id: str | None, tenant_id: str | None = None) -> RequiredPatch:
    """source-controller's service account and pods, set up for Azure workload identity.

    Without a client ID the patch can only be shown (with a placeholder) and looked for, not written.
    """
    if client_id is not None:
        _require_guid(client_id, "--azure-client-id")
    if tenant_id:
        _require_guid(tenant_id, "--azure-tenant-id")
    client = scalar(client_id) if client_id else "<client ID of the managed identity>"
    tenant = f"        azure.workload.identity/tenant-id: {scalar(tenant_id)}\n" if tenant_id else ""
    entries = (
        "- patch: |\n"
        "    apiVersion: v1\n"
        "    kind: ServiceAccount\n"
        "    metadata:\n"
        "      name: source-controller\n"
        "      annotations:\n"
        f"        azure.workload.identity/client-id: {client}\n"
        f"{tenant}"
        "  target:\n"
        "    kind: ServiceAccount\n"
        "    name: source-controller\n"
        "- patch: |\n"
        "    apiVersion: apps/v1\n"
        "    kind: Deployment\n"
        "    metadata:\n"
        "      name: source-controller\n"
        "    spec:\n"
        "      template:\n"
        "        metadata:\n"
        "          labels:\n"
        '            azure.workload.identity/use: "true"\n'
        "  target:\n"
        "    kind: Deployment\n"
        "    name: source-controller\n"
    )
    return RequiredPatch(
        title="Azure workload identity for source-controller",
        reason=(
            "with --provider azure, source-controller authenticates as a managed identity: its ServiceAccount "
            "needs the azure.workload.identity/client-id annotation and its pods the azure.workload.identity/use label"
        ),
        entries=entries,
        markers=WORKLOAD_IDENTITY_MARKERS,
    )


@dataclass(frozen=True)
class GeneratedKustomization:
    """A kustomization.yaml found to be exactly one we (or Flux) wrote, and the managed identity it names, if any."""

    client_id: str | None = None
    tenant_id: str | None = None


def render_kustomization(resources: Sequence[str], patches: Sequence[RequiredPatch] = ()) -> str:
    text = _HEADER + "resources:\n" + "".join(f"- {scalar(r)}\n" for r in resources)
    if patches:
        text += "patches:\n" + "".join(p.entries for p in patches)
    return text


def _named_identity(content: str) -> tuple[str | None, str | None]:
    """The client and tenant IDs on our patch's annotation lines (unquoted); the comparison decides the rest."""
    found: dict[str, str] = {}
    for match in _ANNOTATION.finditer(content):
        try:
            value = yaml.safe_load(match.group(2))
        except yaml.YAMLError:
            continue
        if isinstance(value, str):
            found.setdefault(match.group(1), value)
    return found.get("client-id"), found.get("tenant-id")


def recognise_generated(content: str, resources: Sequence[str]) -> GeneratedKustomization | None:
    """`content` as we render it for a folder listing `resources`, with any combination of our patches.

    The workload identity patch is tried with the IDs the file itself names. Anything else, down to one character
    a user changed, answers None: the file is theirs.
    """
    client_id, tenant_id = _named_identity(content)
    identities: list[GeneratedKustomization] = [GeneratedKustomization()]
    if client_id is not None and _is_guid(client_id) and (tenant_id is None or _is_guid(tenant_id)):
        identities.append(GeneratedKustomization(client_id, tenant_id))  # IDs that are not GUIDs we never wrote
    for identity, with_ssh in itertools.product(identities, (False, True)):
        patches: list[RequiredPatch] = [azure_devops_ssh_patch()] if with_ssh else []
        if identity.client_id is not None:
            patches.append(workload_identity_patch(identity.client_id, identity.tenant_id))
        if render_kustomization(resources, patches) == content:
            return identity
    return None


def _is_kubernetes_resources(path: str, content: str) -> bool:
    # Only .yaml/.yml files (as Flux's scan), and only if every document is an object:
    # an empty placeholder listed as a resource would break `kustomize build`.
    if not path.endswith((".yaml", ".yml")):
        return False
    try:
        docs = [d for d in yaml.safe_load_all(content) if d is not None]
    except yaml.YAMLError:
        return False
    return bool(docs) and all(isinstance(d, dict) and "kind" in d and "apiVersion" in d for d in docs)


def discover_resources(files: Mapping[str, str]) -> list[str]:
    """The resources Flux lists in a new kustomization.yaml: what it finds in the folder, walked in order.

    Files that parse as Kubernetes objects are listed; a sub-folder with its own
    kustomization is listed as a folder and not entered; anything else is skipped.
    """
    kustomized_dirs = {posixpath.dirname(p) for p in files if posixpath.basename(p) in KUSTOMIZATION_NAMES}
    kustomized_dirs.discard("")
    resources: list[str] = []
    for path in sorted(files, key=lambda p: p.split("/")):
        if path in KUSTOMIZATION_NAMES:
            continue
        parents = [posixpath.join(*path.split("/")[: i + 1]) for i in range(path.count("/"))]
        owner = next((d for d in parents if d in kustomized_dirs), None)
        if owner is not None:
            if owner not in resources:
                resources.append(owner)
        elif _is_kubernetes_resources(path, files[path]):
            resources.append(path)
    return resources


def _patch_texts(doc: Mapping[str, object], files: Mapping[str, str]) -> list[str]:
    texts: list[str] = []

    def add(item: object) -> None:
        if isinstance(item, str):
            # patchesStrategicMerge items are either inline YAML or a file path.
            texts.append(files.get(posixpath.normpath(item), item))
        elif isinstance(item, Mapping):
            if isinstance(item.get("patch"), str):
                texts.append(str(item["patch"]))
            if isinstance(item.get("path"), str):
                texts.append(files.get(posixpath.normpath(str(item["path"])), ""))

    for key in ("patches", "patchesStrategicMerge", "patchesJson6902"):
        entries = doc.get(key)
        if isinstance(entries, list):
            for entry in entries:
                add(entry)
    return texts


def check_kustomization(
    content: str, files: Mapping[str, str], required: Sequence[RequiredPatch]
) -> list[KustomizationFinding]:
    """Say what a user's kustomization.yaml lacks for this bootstrap to work."""
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return [KustomizationFinding(f"{KUSTOMIZATION_FILE} is not valid YAML{where}", "fix the file by hand")]
    if not isinstance(doc, dict):
        return [KustomizationFinding(f"{KUSTOMIZATION_FILE} is not a Kustomization", "fix the file by hand")]
    findings = []
    listed = doc.get("resources")
    resources = [posixpath.normpath(r) for r in listed if isinstance(r, str)] if isinstance(listed, list) else []
    for needed in (COMPONENTS_FILE, SYNC_FILE):
        if needed not in resources:
            findings.append(
                KustomizationFinding(
                    f"{KUSTOMIZATION_FILE} does not list {needed} in its resources, so Flux will not apply it",
                    f"resources:\n- {needed}\n",
                )
            )
    texts = _patch_texts(doc, files)
    for patch in required:
        if not all(any(marker in text for text in texts) for marker in patch.markers):
            findings.append(
                KustomizationFinding(
                    f"{KUSTOMIZATION_FILE} lacks the {patch.title} patch: {patch.reason}", patch.snippet()
                )
            )
    return findings
