"""The three bootstrap files planned together: status, patches, and API support checks."""

from __future__ import annotations

import pytest

from flux_azdo.errors import UserError
from flux_azdo.manifests.distribution import Distribution, parse_distribution
from flux_azdo.manifests.install import InstallOptions
from flux_azdo.manifests.repository import WorkloadIdentity, plan_bootstrap_files
from flux_azdo.manifests.sync import SyncOptions

ADO = "https://dev.azure.com/contoso/platform/_git/fleet-infra"
ADO_SSH = "ssh://git@ssh.dev.azure.com/v3/contoso/platform/fleet-infra"
CLIENT = "6f0b1a52-5c4e-4a43-9d7e-3f5b1c0d2e11"


def test_fresh_folder_creates_three_files_then_nothing_changes(sample: Distribution) -> None:
    plan = plan_bootstrap_files(sample, InstallOptions(), SyncOptions(url=ADO, path="clusters/prod"), {})
    assert [(f.path, f.status) for f in plan.files] == [
        ("clusters/prod/flux-system/gotk-components.yaml", "create"),
        ("clusters/prod/flux-system/gotk-sync.yaml", "create"),
        ("clusters/prod/flux-system/kustomization.yaml", "create"),
    ]
    assert plan.changed and plan.findings == ()
    existing = {f.path.rsplit("/", 1)[1]: f.content for f in plan.files}
    again = plan_bootstrap_files(sample, InstallOptions(), SyncOptions(url=ADO, path="clusters/prod"), existing)
    assert [f.status for f in again.files] == ["unchanged", "unchanged", "unchanged"]  # ours, as generated
    assert not again.changed
    upgraded = plan_bootstrap_files(
        sample, InstallOptions(log_level="debug"), SyncOptions(url=ADO, path="clusters/prod"), existing
    )
    assert [f.status for f in upgraded.files] == ["update", "unchanged", "unchanged"]


def test_root_path_and_namespace_decide_the_folder(sample: Distribution) -> None:
    plan = plan_bootstrap_files(
        sample, InstallOptions(namespace="gitops"), SyncOptions(url=ADO, namespace="gitops"), {}
    )
    assert plan.directory == "gitops"
    with pytest.raises(UserError, match="namespaces differ"):
        plan_bootstrap_files(sample, InstallOptions(namespace="a"), SyncOptions(url=ADO, namespace="b"), {})


@pytest.mark.parametrize(
    "url",
    [
        ADO_SSH,
        "git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra",
        "ssh://contoso@vs-ssh.visualstudio.com/v3/contoso/platform/fleet-infra",
        # Azure DevOps Server and the sandbox offer the same RSA SHA-2 host keys on their own hosts.
        "ssh://git@127.0.0.1:2222/v3/sandbox-org/platform/fleet-infra",
        "ssh://git@tfs.example.com:22/tfs/DefaultCollection/platform/_git/fleet-infra",
        "ssh://git@tfs.example.com:22/DefaultCollection/_git/fleet-infra",
    ],
)
def test_azure_devops_ssh_gets_the_host_key_patch_in_a_new_file(sample: Distribution, url: str) -> None:
    plan = plan_bootstrap_files(sample, InstallOptions(), SyncOptions(url=url), {})
    assert "--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256" in plan.files[2].content


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@github.com/o/r",
        "ssh://git@git.example.com/v3/o/p",  # v3 without the four names is not Azure DevOps
        "ssh://git@git.example.com/v3/o/p/r/x",
        "ssh://git@git.example.com/_git/r",  # no collection before _git
        ADO,
        "http://127.0.0.1:8080/sandbox-org/platform/_git/fleet-infra",
    ],
)
def test_other_ssh_hosts_and_https_get_no_patch(sample: Distribution, url: str) -> None:
    sync = SyncOptions(url=url, allow_insecure_http=True)
    assert "patches" not in plan_bootstrap_files(sample, InstallOptions(), sync, {}).files[2].content


def test_the_ssh_patch_follows_the_path_when_ssh_hostname_names_another_host(sample: Distribution) -> None:
    """--ssh-hostname changes where the cluster connects, not what the repository is."""
    sync = SyncOptions(url="ssh://git@127.0.0.1:2222/v3/o/p/r", ssh_hostname="git.internal:2222")
    assert "--ssh-hostkey-algos" in plan_bootstrap_files(sample, InstallOptions(), sync, {}).files[2].content


def test_a_user_kustomization_on_an_azure_devops_server_ssh_url_is_reported_without_the_patch(
    sample: Distribution,
) -> None:
    user = "resources: [gotk-components.yaml, gotk-sync.yaml]\n"
    sync = SyncOptions(url="ssh://git@127.0.0.1:2222/v3/sandbox-org/platform/fleet-infra")
    plan = plan_bootstrap_files(sample, InstallOptions(), sync, {"kustomization.yaml": user})
    assert plan.files[2].status == "keep" and len(plan.findings) == 1
    assert "Azure DevOps SSH" in plan.findings[0].problem


def test_user_kustomization_is_kept_and_a_missing_patch_reported(sample: Distribution) -> None:
    user = "# production\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n"
    plan = plan_bootstrap_files(sample, InstallOptions(), SyncOptions(url=ADO_SSH), {"kustomization.yaml": user})
    assert plan.files[2].content == user and plan.files[2].status == "keep"
    assert len(plan.findings) == 1 and "Azure DevOps SSH" in plan.findings[0].problem


def test_workload_identity_patches_and_their_requirements(sample: Distribution) -> None:
    sync = SyncOptions(url=ADO, provider="azure")
    plan = plan_bootstrap_files(sample, InstallOptions(), sync, {}, WorkloadIdentity(CLIENT))
    assert f"azure.workload.identity/client-id: {CLIENT}" in plan.files[2].content
    assert "provider: azure" in plan.files[1].content
    with pytest.raises(UserError, match="--provider azure needs --azure-client-id"):
        plan_bootstrap_files(sample, InstallOptions(), sync, {})
    user = "resources: [gotk-components.yaml, gotk-sync.yaml]\n"
    plan = plan_bootstrap_files(sample, InstallOptions(), sync, {"kustomization.yaml": user})
    assert "workload identity" in plan.findings[0].problem


def test_api_support_is_read_from_the_distribution(sample: Distribution, sample_text: str) -> None:
    no_provider = parse_distribution(
        sample_text.replace("- generic\n                - azure\n", "- generic\n", 1), "old"
    )
    with pytest.raises(
        UserError,
        match=r"cannot use --provider azure: its GitRepository API has no Azure provider \(added in Flux v2.4.0\)",
    ):
        plan_bootstrap_files(
            no_provider, InstallOptions(), SyncOptions(url=ADO, provider="azure"), {}, WorkloadIdentity(CLIENT)
        )
    no_sparse = parse_distribution(sample_text.replace("sparseCheckout:", "sparseCheckoutX:"), "old")
    with pytest.raises(UserError, match="cannot use --sparse-checkout"):
        plan_bootstrap_files(no_sparse, InstallOptions(), SyncOptions(url=ADO, sparse_checkout=("a",)), {})


TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
#: The auth modes whose kustomization.yaml differ: a PAT, workload identity (with and without a tenant), SSH.
MODES: dict[str, tuple[SyncOptions, WorkloadIdentity | None]] = {
    "pat": (SyncOptions(url=ADO), None),
    "workload identity": (SyncOptions(url=ADO, provider="azure"), WorkloadIdentity(CLIENT)),
    "workload identity, tenant": (SyncOptions(url=ADO, provider="azure"), WorkloadIdentity(CLIENT, TENANT)),
    "ssh": (SyncOptions(url=ADO_SSH), None),
}


def folder_after(sample: Distribution, mode: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """`<path>/flux-system/` as a bootstrap in `mode` leaves it (with `extra` files there before it)."""
    sync, identity = MODES[mode]
    plan = plan_bootstrap_files(sample, InstallOptions(), sync, extra or {}, identity)
    return {**(extra or {}), **{f.path.rsplit("/", 1)[1]: f.content for f in plan.files}}


@pytest.mark.parametrize("before", list(MODES))
@pytest.mark.parametrize("after", list(MODES))
def test_switching_the_auth_mode_rewrites_our_own_kustomization(sample: Distribution, before: str, after: str) -> None:
    """Re-running bootstrap with another credential: the file is still exactly as we wrote it, so it is ours and
    gets what the new mode needs, as a new file would (a PAT to workload identity is the move users ask for)."""
    existing = folder_after(sample, before)
    sync, identity = MODES[after]
    plan = plan_bootstrap_files(sample, InstallOptions(), sync, existing, identity)
    fresh = plan_bootstrap_files(sample, InstallOptions(), sync, {}, identity)
    kustomization = plan.files[2]
    assert plan.findings == ()
    assert kustomization.content == fresh.files[2].content
    assert kustomization.status == ("unchanged" if before == after else "update")


def test_a_folder_with_more_resources_is_recognised_with_them(sample: Distribution) -> None:
    extra = {"policies.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\n"}
    existing = folder_after(sample, "pat", extra)
    assert "- policies.yaml\n" in existing["kustomization.yaml"]
    sync, identity = MODES["workload identity"]
    plan = plan_bootstrap_files(sample, InstallOptions(), sync, existing, identity)
    assert plan.files[2].status == "update" and "- policies.yaml\n" in plan.files[2].content
    # A file added to the folder later and not listed: the kustomization.yaml is no longer what we would write
    # for this folder, so it is the user's.
    later = {**existing, "apps.yaml": extra["policies.yaml"]}
    kept = plan_bootstrap_files(sample, InstallOptions(), sync, later, identity)
    assert kept.files[2].status == "keep" and kept.files[2].content == existing["kustomization.yaml"]


def test_workload_identity_keeps_the_ids_our_file_names_unless_given_others(sample: Distribution) -> None:
    existing = folder_after(sample, "workload identity, tenant")
    sync = SyncOptions(url=ADO, provider="azure")
    same = plan_bootstrap_files(sample, InstallOptions(), sync, existing)  # no --azure-client-id this time
    assert same.files[2].status == "unchanged" and same.findings == ()
    other = "0d3c2b1a-0000-4000-8000-00000000abcd"
    moved = plan_bootstrap_files(sample, InstallOptions(), sync, existing, WorkloadIdentity(other))
    assert moved.files[2].status == "update"
    assert f"client-id: {other}\n" in moved.files[2].content and "tenant-id" not in moved.files[2].content
    with pytest.raises(UserError, match="--provider azure needs --azure-client-id"):
        plan_bootstrap_files(sample, InstallOptions(), sync, folder_after(sample, "pat"))


@pytest.mark.parametrize("before", list(MODES))
def test_a_one_character_edit_makes_the_file_the_users(sample: Distribution, before: str) -> None:
    """Kept byte for byte, with what the new mode needs reported, as Flux keeps a user's file."""
    existing = folder_after(sample, before)
    text = existing["kustomization.yaml"]
    # Each one character, none changing what kustomize reads: a trailing space, a wider list indent, a comment.
    edits = [text + " ", text.replace("\n- ", "\n-  ", 1), "#" + text]
    after, lacking = ("ssh", "SSH") if "workload" in before else ("workload identity", "workload identity")
    sync, identity = MODES[after]
    for edited in edits:
        folder = {**existing, "kustomization.yaml": edited}
        plan = plan_bootstrap_files(sample, InstallOptions(), sync, folder, identity)
        assert plan.files[2].status == "keep" and plan.files[2].content == edited
        assert len(plan.findings) == 1 and lacking in plan.findings[0].problem
