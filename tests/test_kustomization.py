"""kustomization.yaml: the 115-byte default, the patches our auth modes need, our own files recognised, user files
kept."""

from __future__ import annotations

import pytest
import yaml

from flux_azdo.errors import UserError
from flux_azdo.manifests.kustomization import (
    GeneratedKustomization,
    azure_devops_ssh_patch,
    check_kustomization,
    discover_resources,
    recognise_generated,
    render_kustomization,
    workload_identity_patch,
)

DEFAULT = (
    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    "- gotk-components.yaml\n- gotk-sync.yaml\n"
)
CLIENT = "6f0b1a52-5c4e-4a43-9d7e-3f5b1c0d2e11"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OBJ = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"


def test_default_is_flux_115_bytes() -> None:
    text = render_kustomization(["gotk-components.yaml", "gotk-sync.yaml"])
    assert text == DEFAULT and len(text.encode()) == 115


def test_resources_are_discovered_as_flux_walks_the_folder() -> None:
    files = {
        "gotk-components.yaml": OBJ,
        "gotk-sync.yaml": OBJ,
        "a.yaml": OBJ,
        "notes.md": "# just text\n",
        "broken.yaml": "key: [unclosed\n",
        "overlay/kustomization.yaml": "resources: []\n",
        "overlay/x.yaml": OBJ,
        "extra/b.yaml": OBJ,
        "z.json": '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}',
    }
    assert discover_resources(files) == [
        "a.yaml",
        "extra/b.yaml",
        "gotk-components.yaml",
        "gotk-sync.yaml",
        "overlay",
    ]  # as Flux's scan: .yaml/.yml only, so z.json is not listed


def test_new_file_carries_the_patches_a_mode_needs() -> None:
    text = render_kustomization(
        ["gotk-components.yaml", "gotk-sync.yaml"], [azure_devops_ssh_patch(), workload_identity_patch(CLIENT, TENANT)]
    )
    doc = yaml.safe_load(text)
    assert doc["resources"] == ["gotk-components.yaml", "gotk-sync.yaml"]
    ssh, service_account, deployment = doc["patches"]
    assert yaml.safe_load(ssh["patch"]) == [
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/args/-",
            "value": "--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256",
        }
    ]
    assert ssh["target"] == {"kind": "Deployment", "name": "(source-controller|image-automation-controller)"}
    assert yaml.safe_load(service_account["patch"])["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": CLIENT,
        "azure.workload.identity/tenant-id": TENANT,
    }
    labels = yaml.safe_load(deployment["patch"])["spec"]["template"]["metadata"]["labels"]
    assert labels == {"azure.workload.identity/use": "true"}
    # A patched file passes its own check.
    assert check_kustomization(text, {}, [azure_devops_ssh_patch(), workload_identity_patch(CLIENT)]) == []


def test_client_ids_must_be_guids() -> None:
    with pytest.raises(UserError, match="--azure-client-id='my-app' is not a GUID"):
        workload_identity_patch("my-app")
    with pytest.raises(UserError, match="--azure-tenant-id"):
        workload_identity_patch(CLIENT, "contoso.onmicrosoft.com")


def test_user_file_without_the_ssh_patch_is_reported_with_the_fix() -> None:
    user = (
        DEFAULT
        + "patches:\n- patch: |\n    - op: add\n      path: /spec/replicas\n      value: 2\n  target:\n    kind: Deployment\n"
    )
    findings = check_kustomization(user, {}, [azure_devops_ssh_patch()])
    assert len(findings) == 1
    assert "lacks the Azure DevOps SSH host key algorithms patch" in findings[0].problem
    assert "--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256" in findings[0].fix


@pytest.mark.parametrize(
    "user",
    [
        # Flux's documented form, indented lists.
        "resources:\n  - gotk-components.yaml\n  - gotk-sync.yaml\npatches:\n  - patch: |\n      - op: add\n"
        "        path: /spec/template/spec/containers/0/args/-\n        value: --ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256\n"
        "    target:\n      kind: Deployment\n      name: (source-controller|image-automation-controller)\n",
        # The patch in a file next to it.
        "resources: [gotk-components.yaml, ./gotk-sync.yaml]\npatches:\n- path: ./ssh-patch.yaml\n  target: {kind: Deployment}\n",
        # Old-style JSON 6902 patches.
        "resources: [gotk-components.yaml, gotk-sync.yaml]\npatchesJson6902:\n- target: {kind: Deployment, name: source-controller}\n"
        '  patch: \'[{"op": "add", "path": "/x", "value": "--ssh-hostkey-algos=rsa-sha2-256"}]\'\n',
    ],
)
def test_user_files_that_have_the_patch_pass(user: str) -> None:
    files = {"ssh-patch.yaml": "- op: add\n  path: /a\n  value: --ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256\n"}
    assert check_kustomization(user, files, [azure_devops_ssh_patch()]) == []


def test_user_file_missing_a_resource_or_broken_is_reported() -> None:
    findings = check_kustomization("resources:\n- gotk-components.yaml\n", {}, [])
    assert [f.problem for f in findings] == [
        "kustomization.yaml does not list gotk-sync.yaml in its resources, so Flux will not apply it"
    ]
    assert "not valid YAML at line 2" in check_kustomization("a: b\n c: [\n", {}, [])[0].problem
    assert "is not a Kustomization" in check_kustomization("- a\n", {}, [])[0].problem
    odd = check_kustomization("resources: 5\npatches: oops\n", {}, [])
    assert [f.problem.split(" in its")[0] for f in odd] == [
        "kustomization.yaml does not list gotk-components.yaml",
        "kustomization.yaml does not list gotk-sync.yaml",
    ]


def test_workload_identity_check_needs_both_annotation_and_label() -> None:
    half = DEFAULT + (
        "patches:\n- patch: |\n    apiVersion: v1\n    kind: ServiceAccount\n    metadata:\n      name: source-controller\n"
        f"      annotations:\n        azure.workload.identity/client-id: {CLIENT}\n"
    )
    findings = check_kustomization(half, {}, [workload_identity_patch(CLIENT)])
    assert len(findings) == 1 and "workload identity" in findings[0].problem


RESOURCES = ["gotk-components.yaml", "gotk-sync.yaml"]
#: Every file we write: the plain default (Flux's), and each combination of our patches.
VARIANTS: dict[str, tuple[str, GeneratedKustomization]] = {
    "default": (DEFAULT, GeneratedKustomization()),
    "ssh": (render_kustomization(RESOURCES, [azure_devops_ssh_patch()]), GeneratedKustomization()),
    "workload identity": (
        render_kustomization(RESOURCES, [workload_identity_patch(CLIENT)]),
        GeneratedKustomization(CLIENT),
    ),
    "workload identity, tenant": (
        render_kustomization(RESOURCES, [workload_identity_patch(CLIENT, TENANT)]),
        GeneratedKustomization(CLIENT, TENANT),
    ),
    "both": (
        render_kustomization(RESOURCES, [azure_devops_ssh_patch(), workload_identity_patch(CLIENT, TENANT)]),
        GeneratedKustomization(CLIENT, TENANT),
    ),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_file_we_generate_is_recognised_with_the_identity_it_names(name: str) -> None:
    text, identity = VARIANTS[name]
    assert recognise_generated(text, RESOURCES) == identity
    assert recognise_generated(text, [*RESOURCES, "apps.yaml"]) is None  # not what we write for that folder


def test_quoted_ids_are_read_as_we_quote_them() -> None:
    """The IDs are read back through YAML, so a GUID of digits only is the string it was written as."""
    client = "12345678-1234-1234-1234-123456789012"
    text = render_kustomization(RESOURCES, [workload_identity_patch(client)])
    assert recognise_generated(text, RESOURCES) == GeneratedKustomization(client)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_any_one_character_edit_makes_the_file_the_users(name: str) -> None:
    """Replaced (by a character we never write), inserted or deleted, anywhere, one character: not ours. (An ID
    edited into another GUID would be recognised, naming that identity: the IDs are read from the file.)"""
    text, _ = VARIANTS[name]
    for i in range(len(text) + 1):
        edits = [text[:i] + " " + text[i:]]
        if i < len(text):
            edits += [text[:i] + "~" + text[i + 1 :], text[:i] + text[i + 1 :]]
        for edited in edits:
            assert recognise_generated(edited, RESOURCES) is None, (i, edited)
