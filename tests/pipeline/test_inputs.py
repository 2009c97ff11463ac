"""The task's inputs as the agent hands them over: `flux_azdo.pipeline.inputs` and `agent` on plain mappings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flux_azdo.errors import UserError
from flux_azdo.pipeline.agent import agent_context
from flux_azdo.pipeline.inputs import FLAG_INPUTS, SPECS, in_input_terms, read_inputs, secret_values, variable_name

TASK_JSON = Path(__file__).resolve().parents[2] / "task" / "FluxBootstrapV1" / "task.json"
BASE = {
    "INPUT_KUBERNETESSERVICECONNECTION": "7b3c2c9e-0000-4000-8000-000000000001",
    "INPUT_REPOSITORYURL": "fleet-infra",
    "INPUT_CLUSTERPAT": "a-personal-access-token-for-the-cluster",
}


def test_every_input_of_task_json_is_known_with_its_label_default_and_options() -> None:
    """SPECS repeats task.json (what the agent would have set) so a missing variable behaves the same."""
    declared = json.loads(TASK_JSON.read_text(encoding="utf-8"))["inputs"]
    assert {item["name"] for item in declared} == set(SPECS)
    for item in declared:
        spec = SPECS[item["name"]]
        assert (spec.label, spec.default) == (item["label"], item.get("defaultValue", "")), item["name"]
        assert spec.kind == item["type"], item["name"]
        editable = item.get("properties", {}).get("EditableOptions", "False") == "True"
        if item["type"] == "pickList" and not editable:
            assert set(spec.options) == set(item.get("options", {})), item["name"]


def test_defaults_trimming_and_booleans_in_any_case() -> None:
    environ = {
        **BASE,
        "INPUT_BRANCH": "  refs/heads/main \n",
        "INPUT_CREATEREPOSITORY": "TRUE",
        "INPUT_NETWORKPOLICY": "False",
        "INPUT_COMPONENTS": "source-controller,\nkustomize-controller",
        "INPUT_ACTION": "Plan",
    }
    inputs = read_inputs(environ)
    assert inputs.action == "plan"
    assert inputs.branch == "refs/heads/main"
    assert inputs.create_repository is True
    assert inputs.network_policy is False
    assert inputs.watch_all_namespaces is True  # not set: task.json's default
    assert inputs.components == ("source-controller", "kustomize-controller")
    assert inputs.timeout_seconds == 300.0
    assert BASE["INPUT_CLUSTERPAT"] not in repr(inputs)


def test_a_bad_boolean_names_the_input() -> None:
    with pytest.raises(UserError) as caught:
        read_inputs({**BASE, "INPUT_FORCE": "yes"})
    assert str(caught.value) == "input \"Force\" (force) is 'yes', not a boolean: set force to true or false"


def test_a_pick_list_value_outside_its_options_lists_them() -> None:
    with pytest.raises(UserError) as caught:
        read_inputs({**BASE, "INPUT_ACTION": "install"})
    assert str(caught.value) == (
        "input \"Action\" (action) is 'install', which is not one of its values: set action to one of: bootstrap, "
        "plan, check, uninstall, rotateCredentials"
    )


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"INPUT_REPOSITORYURL": "r", "INPUT_CLUSTERPAT": "p" * 20}, '"Kubernetes service connection"'),
        ({**BASE, "INPUT_REPOSITORYURL": ""}, '"Repository" (repositoryUrl) is required for action bootstrap'),
        ({**BASE, "INPUT_CLUSTERPAT": ""}, '"Cluster PAT" (clusterPat) is required with clusterAuth pat'),
        ({**BASE, "INPUT_GITAUTH": "pat"}, '"Git PAT" (gitPat) is required with gitAuth pat'),
        ({**BASE, "INPUT_CONNECTIONTYPE": "azureResourceManager"}, '"Azure subscription" (azureSubscription)'),
        ({**BASE, "INPUT_CLUSTERAUTH": "sshKey"}, '"SSH private key" (sshKey) is required'),
    ],
)
def test_a_missing_required_input_names_its_label_and_yaml_key(environ: dict[str, str], named: str) -> None:
    with pytest.raises(UserError) as caught:
        read_inputs(environ)
    assert named in str(caught.value)
    assert "set " in str(caught.value)


def test_what_an_action_does_not_use_is_not_required() -> None:
    check = read_inputs({**BASE, "INPUT_ACTION": "check", "INPUT_CLUSTERPAT": ""})
    assert check.action == "check"
    uninstall = read_inputs({"INPUT_ACTION": "uninstall", "INPUT_KUBERNETESSERVICECONNECTION": "x"})
    assert uninstall.repository_url == ""
    with pytest.raises(UserError, match="removeManifests"):
        read_inputs(
            {"INPUT_ACTION": "uninstall", "INPUT_KUBERNETESSERVICECONNECTION": "x", "INPUT_REMOVEMANIFESTS": "true"}
        )


def test_durations_are_checked_as_the_cli_checks_them() -> None:
    assert read_inputs({**BASE, "INPUT_TIMEOUT": "1m30s"}).timeout_seconds == 90.0
    with pytest.raises(UserError) as caught:
        read_inputs({**BASE, "INPUT_TIMEOUT": "soon"})
    assert str(caught.value) == "timeout='soon' is not a positive duration: use e.g. 30s or 2m"


def test_an_empty_file_path_arrives_as_the_sources_folder_and_means_not_given(tmp_path: Path) -> None:
    """task-lib's filePathSupplied: the agent roots an empty filePath input at the sources folder."""
    environ = {"INPUT_CONNECTIONTYPE": "kubeconfigFile", "INPUT_REPOSITORYURL": "r", "INPUT_CLUSTERPAT": "p" * 20}
    with pytest.raises(UserError, match=r'"Kubeconfig file" \(kubeconfig\) is required'):
        read_inputs({**environ, "INPUT_KUBECONFIG": f"{tmp_path}/"}, sources=tmp_path)
    given = read_inputs({**environ, "INPUT_KUBECONFIG": str(tmp_path / "kube.yaml")}, sources=tmp_path)
    assert given.kubeconfig == tmp_path / "kube.yaml"


def test_manifests_is_the_clis_manifests_with_a_relative_path_rooted_at_the_sources_folder(tmp_path: Path) -> None:
    """A string input (it may be an oci:// URL), so the agent roots nothing: the task roots a relative path at the
    sources folder as it would a filePath; an absolute path and an oci:// reference (any case) go as given."""
    assert read_inputs(BASE, sources=tmp_path).manifests is None
    assert read_inputs({**BASE, "INPUT_MANIFESTS": "  "}, sources=tmp_path).manifests is None
    cases = {
        "flux/gotk-components.yaml": str(tmp_path / "flux" / "gotk-components.yaml"),
        "flux.tar.gz": str(tmp_path / "flux.tar.gz"),
        str(tmp_path / "elsewhere"): str(tmp_path / "elsewhere"),
        "oci://mirror.example.test/fluxcd/flux-manifests": "oci://mirror.example.test/fluxcd/flux-manifests",
        "OCI://mirror.example.test/flux-manifests": "OCI://mirror.example.test/flux-manifests",
    }
    for given, expected in cases.items():
        assert read_inputs({**BASE, "INPUT_MANIFESTS": f" {given} "}, sources=tmp_path).manifests == expected
    # Outside a job (no sources folder) a relative path stays relative, as the CLI takes it.
    assert read_inputs({**BASE, "INPUT_MANIFESTS": "flux"}).manifests == "flux"
    assert in_input_terms("--manifests x: no such file; check --manifests, or --remove-manifests") == (
        "manifests x: no such file; check manifests, or removeManifests"
    )


def test_secret_inputs_are_found_unchecked_for_the_masker() -> None:
    environ = {
        "INPUT_GITPAT": " push-pat-value ",
        "INPUT_CLUSTERPAT": "cluster-pat-value",
        "INPUT_SSHKEYPASSPHRASE": "a passphrase",
        "INPUT_REGISTRYCREDENTIALS": "robot:registry-password",
        "INPUT_ACTION": "not-an-action",
    }
    assert secret_values(environ) == [
        "push-pat-value",
        "cluster-pat-value",
        "a passphrase",
        "robot:registry-password",
        "registry-password",
    ]


def test_variable_names_are_mangled_as_the_agent_mangles_them() -> None:
    assert variable_name("kubernetesServiceConnection") == "INPUT_KUBERNETESSERVICECONNECTION"
    assert variable_name("a.b c-d") == "INPUT_A_B_C-D"


def test_the_agent_context_and_what_is_missing_outside_a_job(tmp_path: Path) -> None:
    environ = {
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/org",
        "SYSTEM_TEAMPROJECT": "My Project",
        "SYSTEM_TEAMPROJECTID": "pid",
        "AGENT_TEMPDIRECTORY": str(tmp_path),
        "SYSTEM_DEFAULTWORKINGDIRECTORY": str(tmp_path / "s"),
        "SYSTEM_HOSTTYPE": "release",
        "SYSTEM_DEBUG": "True",
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "job-token-value",
    }
    agent = agent_context(environ)
    assert agent.collection_uri == "https://dev.azure.com/org/"
    assert agent.sources_directory == tmp_path / "s"
    assert (agent.debug, agent.job_token) == (True, "job-token-value")
    assert agent.oidc_request_uri == ""  # no plan and job ids: nothing to build it from
    with_ids = {**environ, "SYSTEM_PLANID": "plan", "SYSTEM_JOBID": "job"}
    assert agent_context(with_ids).oidc_request_uri == (
        "https://dev.azure.com/org/pid/_apis/distributedtask/hubs/release/plans/plan/jobs/job/oidctoken"
    )
    given = {**with_ids, "SYSTEM_OIDCREQUESTURI": "https://example.test/oidc"}
    assert agent_context(given).oidc_request_uri == "https://example.test/oidc"
    assert "job-token-value" not in repr(agent)
    for missing in ("SYSTEM_COLLECTIONURI", "SYSTEM_TEAMPROJECT", "AGENT_TEMPDIRECTORY"):
        partial = {k: v for k, v in environ.items() if k != missing}
        with pytest.raises(UserError) as caught:
            agent_context(partial)
        assert str(caught.value).startswith(f"not running in an Azure Pipelines job: {missing} is not set")


@pytest.mark.parametrize("action", ["bootstrap", "plan"])
def test_workload_identity_needs_its_client_id_before_anything_connects(action: str) -> None:
    environ = {**BASE, "INPUT_ACTION": action, "INPUT_CLUSTERAUTH": "workloadIdentity"}
    with pytest.raises(UserError) as caught:
        read_inputs(environ)
    assert str(caught.value).startswith(
        f'input "Workload identity client ID" (workloadIdentityClientId) is required with clusterAuth '
        f"workloadIdentity for action {action}"
    )
    given = read_inputs({**environ, "INPUT_WORKLOADIDENTITYCLIENTID": "00000000-0000-4000-8000-000000000001"})
    assert given.workload_identity_tenant_id == ""  # optional: the identity's own tenant


def test_every_flag_in_the_table_names_a_declared_input_and_is_replaced_as_a_whole_word() -> None:
    assert set(FLAG_INPUTS.values()) <= set(SPECS)
    text = "--namespace='X' is wrong; try --name, or az repos policy list --org https://x --branch main"
    assert (
        in_input_terms(text) == "namespace='X' is wrong; try name, or az repos policy list --org https://x branch main"
    )
    assert in_input_terms("use --provider azure") == "use clusterAuth workloadIdentity"
    assert in_input_terms("wrong passphrase, or the key is damaged; check --password") == (
        "wrong passphrase, or the key is damaged; check sshKeyPassphrase"
    )


def test_rotating_a_pat_tests_it_against_the_https_form_of_an_ssh_repository_url(tmp_path: Path) -> None:
    """A PAT travels over https: an Azure DevOps SSH repositoryUrl is compared and tested in its https form."""
    from flux_azdo.pipeline.actions import RunFiles, rotate_access
    from flux_azdo.pipeline.agent import AgentContext

    inputs = read_inputs(
        {
            **BASE,
            "INPUT_ACTION": "rotateCredentials",
            "INPUT_REPOSITORYURL": "git@ssh.dev.azure.com:v3/org/My%20Project/fleet-infra",
        }
    )
    agent = AgentContext("https://dev.azure.com/org/", "My Project", tmp_path, job_token="the-job-token-0123456789")
    access, known_hosts = rotate_access(inputs, agent, RunFiles(tmp_path, {}, lambda _secret: None))
    assert access.url == "https://dev.azure.com/org/My%20Project/_git/fleet-infra"
    assert (access.password, access.from_command_line, known_hosts) == (BASE["INPUT_CLUSTERPAT"], False, None)
