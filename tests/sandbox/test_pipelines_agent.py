"""The sandbox's simulated Azure Pipelines agent (`flux_azdo.sandbox.pipelines_agent`): its pure parts (the
logging command parser, the environment it builds, the log view with its ordered masking), its boundary (it never
loads the product), and `flux-azdo sandbox up --azure`, the sandbox Azure that pipelines with AzureRM connections
talk to, started and stopped from the command line.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from flux_azdo.sandbox.daemon import read_env, running_pid
from flux_azdo.sandbox.pipelines_agent import (
    AgentLog,
    Endpoint,
    display_name,
    endpoint_environment,
    env_name,
    inputs_environment,
    parse_command,
    parse_run,
    secret_forms,
    task_header,
)

TASK = {
    "name": "Example",
    "friendlyName": "Example task",
    "instanceNameFormat": "Example $(action) $(repositoryUrl)",
    "version": {"Major": 1, "Minor": 2, "Patch": 3},
    "author": "someone",
    "description": "does things",
    "inputs": [
        {"name": "action", "type": "pickList", "defaultValue": "bootstrap"},
        {"name": "kubernetesServiceConnection", "type": "connectedService:kubernetes", "aliases": ["k8sEndpoint"]},
        {"name": "repositoryUrl", "type": "string", "defaultValue": ""},
        {"name": "force", "type": "boolean", "defaultValue": False},
        {"name": "kubeconfig", "type": "filePath"},
        {"name": "key.file", "type": "filePath", "defaultValue": ""},
    ],
}


# ----- the logging command parser -----------------------------------------------------------------------------


def test_a_command_anywhere_in_a_line_with_its_properties_and_data_unescaped() -> None:
    found = parse_command("prefix ##vso[task.SetVariable variable=a%3Bb;IsOutput=true;;]x%0Ay%5Dz%AZP25")

    assert found is not None
    assert found.name == "task.setvariable"
    assert dict(found.properties) == {"variable": "a;b", "isoutput": "true"}
    assert found.data == "x\ny]z%"


def test_a_value_keeps_everything_after_its_first_equals_sign_and_a_line_without_a_command_is_none() -> None:
    found = parse_command("##vso[task.setprogress value=1=2]")

    assert found is not None and found.properties["value"] == "1=2" and found.data == ""
    assert parse_command("##vso[task.complete result=Succeeded") is None
    assert parse_command("plain text") is None


def test_a_run_collects_outputs_the_result_and_the_step_result() -> None:
    stdout = "\n".join(
        [
            "##vso[task.setvariable variable=result;isoutput=true]changed",
            "##vso[task.setprogress value=50]half",
            "##vso[task.logissue type=warning]careful",
            "##vso[task.complete result=SucceededWithIssues;]done",
        ]
    )
    run = parse_run(0, stdout, "", Path("/nonexistent"))

    assert run.outputs == {"result": "changed"}
    assert run.progress == [50]
    assert run.issues == [("warning", "careful")]
    assert (run.result, run.result_message, run.step_result) == ("SucceededWithIssues", "done", "SucceededWithIssues")
    assert parse_run(1, stdout, "", Path("/nonexistent")).step_result == "Failed"
    assert parse_run(0, "hello", "", Path("/nonexistent")).step_result == "Succeeded"


# ----- the environment ---------------------------------------------------------------------------------------------


def test_inputs_get_defaults_then_the_steps_values_by_name_or_alias_trimmed_with_file_paths_rooted(
    tmp_path: Path,
) -> None:
    environ = inputs_environment(
        TASK,
        {"k8sEndpoint": "ABC-123", "repositoryUrl": "  fleet  ", "FORCE": True, "kubeconfig": "conf/k"},
        tmp_path,
    )

    assert environ == {
        "INPUT_ACTION": "bootstrap",
        "INPUT_KUBERNETESSERVICECONNECTION": "ABC-123",
        "INPUT_REPOSITORYURL": "fleet",
        "INPUT_FORCE": "true",
        "INPUT_KUBECONFIG": str(tmp_path / "conf/k"),
        "INPUT_KEY_FILE": str(tmp_path),  # an empty filePath input arrives as the sources folder
    }


def test_an_input_the_task_does_not_declare_is_refused(tmp_path: Path) -> None:
    try:
        inputs_environment(TASK, {"nope": "x"}, tmp_path)
    except KeyError as error:
        assert "nope" in str(error)
    else:
        raise AssertionError("an undeclared input was accepted")


def test_endpoint_variables_keep_the_system_key_and_lower_the_ids() -> None:
    system = endpoint_environment(
        Endpoint("SYSTEMVSSCONNECTION", "http://x/", "OAuth", {"AccessToken": "t"}), system=True
    )
    other = endpoint_environment(
        Endpoint("AB-Cd", "https://k", "Token", {"api.Token": "s"}, {"authorizationType": "S"})
    )

    assert system == {
        "ENDPOINT_URL_SYSTEMVSSCONNECTION": "http://x/",
        "ENDPOINT_AUTH_SYSTEMVSSCONNECTION": json.dumps({"parameters": {"AccessToken": "t"}, "scheme": "OAuth"}),
        "ENDPOINT_AUTH_SCHEME_SYSTEMVSSCONNECTION": "OAuth",
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "t",
    }
    assert other["ENDPOINT_AUTH_PARAMETER_ab-cd_API_TOKEN"] == "s"
    assert other["ENDPOINT_DATA_ab-cd_AUTHORIZATIONTYPE"] == "S"
    assert json.loads(other["ENDPOINT_DATA_ab-cd"]) == {"authorizationType": "S"}
    assert env_name("System.Team Project-x") == "SYSTEM_TEAM_PROJECT-X"


def test_the_step_is_named_from_instance_name_format_and_the_header_names_the_task() -> None:
    name = display_name(TASK, {"repositoryUrl": "fleet"})

    assert name == "Example bootstrap fleet"
    header = task_header(TASK, name)
    assert header[0] == "Starting: Example bootstrap fleet"
    assert "Version      : 1.2.3" in header and "Task         : Example task" in header


# ----- the log view and its masking --------------------------------------------------------------------------------


def test_the_log_masks_only_after_a_secret_is_registered_and_never_shows_the_registration() -> None:
    log = AgentLog()
    shown = [
        text
        for line in ["early s3cr3t-value", "##vso[task.setsecret]s3cr3t-value", "late s3cr3t-value"]
        for text in log.feed(line)
    ]

    assert shown == ["early s3cr3t-value", "late ***"]


def test_groups_issues_and_progress_are_shown_as_the_log_view_shows_them() -> None:
    log = AgentLog()
    lines = [
        "##vso[task.setprogress value=10]cloning",
        "##[group]cloning",
        "inside",
        "##vso[task.logissue type=warning]careful",
        "##vso[task.logissue type=error]broken",
        "##[endgroup]",
        "##[debug]hidden",
        "##vso[task.debug]hidden too",
        "##vso[task.setprogress value=100]done",
        "##vso[task.setvariable variable=result;isoutput=true]changed",
        "text with ##vso but no command",
        "##vso[task.setprogress value=100]finally",
    ]
    shown = [text for line in lines for text in log.feed(line)] + log.close()

    assert shown == [
        "▼ cloning  [10%]",
        "  inside",
        "  Warning: careful",
        "  Error: broken",
        "[100%] done",
        "Warning: a ##vso command that does not parse: text with ##vso but no command",
        "[100%] finally",
    ]


def test_leaks_finds_a_secret_printed_before_its_registration_in_any_form(tmp_path: Path) -> None:
    secret = "a-token-of-some-length"
    encoded = base64.b64encode(f"git:{secret}".encode()).decode()
    stdout = f"Authorization: Basic {encoded}\n##vso[task.setsecret]{secret}\nlater {secret}\n"

    run = parse_run(0, stdout, "", tmp_path)

    assert set(run.leaks([secret])) == {"log: a form of a-to..."}  # b64(":s") is inside b64("git:s")
    assert run.masked_log().splitlines()[1] == "later ***"
    assert encoded.rstrip("=") in secret_forms(secret)


# ----- the boundary ------------------------------------------------------------------------------------------------


def test_the_agent_loads_no_product_module() -> None:
    probe = (
        "import sys, flux_azdo.sandbox.pipelines_agent\n"
        "print(sorted(m for m in sys.modules if m.startswith('flux_azdo.') and not m.startswith('flux_azdo.sandbox')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


# ----- `flux-azdo sandbox up --azure` ------------------------------------------------------------------------------


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "flux_azdo", *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def test_sandbox_up_azure_starts_entra_id_and_arm_writes_their_values_and_down_removes_everything(
    tmp_path: Path,
) -> None:
    root = tmp_path / "sb"
    try:
        up = _cli("sandbox", "up", "--dir", str(root), "--no-ssh", "--azure", home=tmp_path)
        assert up.returncode == 0, up.stderr

        values = read_env(root / "sandbox.env")
        for name in ("AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
            assert values[name], name
        assert (values["AKS_RESOURCE_GROUP"], values["AKS_CLUSTER"]) == ("flux-rg", "aks-sandbox")
        assert values["AZURE_ARM_URL"].startswith("https://127.0.0.1:")
        assert "✔ Azure: Entra ID https://127.0.0.1:" in up.stderr
        # Entra ID answers over TLS with the sandbox CA, as azure-identity would ask it.
        context = ssl.create_default_context(cafile=values["AZURE_CA_FILE"])
        url = f"{values['AZURE_AUTHORITY_HOST']}/{values['AZURE_TENANT_ID']}/v2.0/.well-known/openid-configuration"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            assert "token_endpoint" in json.loads(response.read())

        down = _cli("sandbox", "down", "--dir", str(root), home=tmp_path)
        assert down.returncode == 0, down.stderr
        assert running_pid(root) is None
        assert sorted(p.name for p in root.iterdir()) == []
    finally:
        _cli("sandbox", "down", "--dir", str(root), home=tmp_path)
