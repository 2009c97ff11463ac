"""The sandbox's simulated Azure Pipelines agent (`flux_azdo.sandbox.pipelines_agent`): its pure parts (the
logging command parser, the environment it builds, the log view with its ordered masking), how it runs a task (both
streams as one, the cancel and what is left of the task afterwards, only the connections the inputs name), its
boundary (it never loads the product), and `flux-azdo sandbox up --azure`, the sandbox Azure that pipelines with
AzureRM connections talk to, started and stopped from the command line.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flux_azdo.sandbox.daemon import read_env, running_pid
from flux_azdo.sandbox.pipelines_agent import (
    AgentLog,
    Endpoint,
    SimulatedAgent,
    agent_process_environment,
    display_name,
    endpoint_environment,
    env_name,
    inputs_environment,
    kubeconfig_endpoint,
    live_processes,
    parse_command,
    parse_run,
    referenced_ids,
    secret_forms,
    task_header,
)
from flux_azdo.sandbox.runtime import Sandbox
from support.agent import pipeline_sandbox, simulated_agent

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


def test_the_parser_is_as_strict_as_the_agents() -> None:
    """Command.TryParse: keys keep their spaces, `key=` and `=value` are dropped, the name must be area.event."""
    found = parse_command("##vso[task.setvariable variable=a; isOutput=true;issecret=;=orphan]v")

    assert found is not None
    assert dict(found.properties) == {"variable": "a", " isoutput": "true"}
    assert parse_command("##vso[setvariable variable=a]v") is None
    assert parse_command("##vso[task.set.variable variable=a]v") is None
    assert parse_command("##vso[ task.setvariable variable=a]v") is None
    dotted = parse_command("##vso[task..complete result=Succeeded]")  # empty parts are no parts
    assert dotted is not None and dotted.name == "task.complete"


def test_a_failing_command_fails_the_step_and_an_unparsable_one_is_logged_after_a_warning(tmp_path: Path) -> None:
    output = "\n".join(
        [
            "##vso[task.setvariable isoutput=true]no variable",
            "##vso[task.setvariable variable=result]changed",
            "##vso[task.complete result=succeeded]not a TaskResult name",
            "##vso[nosuch.thing]x",
            "a ##vso without brackets",
            "##vso[task.complete result=Succeeded]done",
        ]
    )
    run = parse_run(0, output, "", tmp_path)

    assert run.outputs == {"result": "changed"}
    assert run.result == "Succeeded" and run.step_result == "Failed"
    assert run.failed_commands == [output.splitlines()[0], output.splitlines()[2]]
    view = run.view
    assert view[0].startswith("Error: Unable to process command '##vso[task.setvariable isoutput=true]no variable'")
    assert view[1] == "Error: Required field 'variable' is missing in ##vso[task.setvariable] command."
    assert view[3] == "Error: Command doesn't have valid result value."
    assert view[4].startswith("Warning: Cannot find command extension for ##vso[nosuch.command].")
    assert view[5].startswith("Warning: 'a ##vso without brackets' contains logging command keyword '##vso'")
    assert view[6:] == ["a ##vso without brackets"]


def test_results_merge_as_the_agent_merges_them(tmp_path: Path) -> None:
    failed_then_succeeded = "##vso[task.complete result=Failed]\n##vso[task.complete result=Succeeded]\n"
    issues_then_canceled = "##vso[task.complete result=Canceled]\n##vso[task.complete result=Failed]\n"

    assert parse_run(0, failed_then_succeeded, "", tmp_path).result == "Failed"
    assert parse_run(0, issues_then_canceled, "", tmp_path).result == "Canceled"
    assert parse_run(0, "##vso[task.complete result=SucceededWithIssues]", "", tmp_path).step_result == (
        "SucceededWithIssues"
    )


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


# ----- running a task ------------------------------------------------------------------------------------------

FAKE_TASK: dict[str, Any] = {
    "name": "Fake",
    "friendlyName": "Fake task",
    "instanceNameFormat": "Fake",
    "version": {"Major": 1, "Minor": 0, "Patch": 0},
    "inputs": [
        {"name": "connection", "type": "connectedService:kubernetes", "defaultValue": ""},
        {"name": "subscription", "type": "connectedService:AzureRM", "defaultValue": ""},
        {"name": "key", "type": "secureFile", "defaultValue": ""},
        {"name": "text", "type": "string", "defaultValue": ""},
    ],
    "execution": {"Node24": {"target": "other.js"}, "Node20_1": {"target": "main.js", "argumentFormat": ""}},
}

#: A task whose Python child ignores SIGINT and SIGTERM and outlives node, holding the output pipe open.
ORPHAN_TASK = """
const child = require('child_process').spawn(process.env.PYTHON3, ['-c', `
import os, signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("child", os.getpid(), flush=True)
time.sleep(600)
`], { stdio: 'inherit' });
"""

#: A task that writes a secret on stderr before it registers it on stdout, then a command on stderr.
STDERR_TASK = """
process.stderr.write('early ' + process.env.INPUT_TEXT + '\\n');
setTimeout(() => {
    process.stdout.write('##vso[task.setsecret]' + process.env.INPUT_TEXT + '\\n');
    process.stdout.write('later ' + process.env.INPUT_TEXT + '\\n');
    process.stderr.write('##vso[task.setvariable variable=fromStderr]yes\\n');
}, 300);
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pipeline_sandbox(tmp_path_factory.mktemp("agent-sandbox")) as running:
        yield running


def fake_agent(tmp_path: Path, sandbox: Sandbox, script: str = "") -> SimulatedAgent:
    task = tmp_path / "task"
    task.mkdir()
    (task / "task.json").write_text(json.dumps(FAKE_TASK), encoding="utf-8")
    (task / "main.js").write_text(script, encoding="utf-8")
    environ = agent_process_environment(tmp_path / "home", tmp_path / "cache", sandbox)
    environ["PYTHON3"] = sys.executable
    return SimulatedAgent(task, tmp_path / "work", sandbox, base_env=environ)


def state(pid: int) -> str:
    """The process's state letter from /proc, "" once it is gone (a zombie is "Z": dead, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2]


def test_the_step_gets_only_the_connections_and_secure_files_its_inputs_name(tmp_path: Path, sandbox: Sandbox) -> None:
    agent = fake_agent(tmp_path, sandbox)
    first, second, other = (kubeconfig_endpoint("k", endpoint_id=str(uuid.uuid4()).upper()) for _ in range(3))
    file_id = str(uuid.uuid4())
    step = {"connection": f" {first.id} ,{{{second.id}}},not-a-guid", "key": file_id}

    environ, _ = agent.environment(step, endpoints=[first, second], secure_files={file_id: ("k.key", "ticket")})

    assert referenced_ids(FAKE_TASK, step) == {first.id.lower(), second.id.lower()}
    assert sorted(name for name in environ if name.startswith("ENDPOINT_URL_")) == sorted(
        ["ENDPOINT_URL_SYSTEMVSSCONNECTION", f"ENDPOINT_URL_{first.id.lower()}", f"ENDPOINT_URL_{second.id.lower()}"]
    )
    assert environ[f"SECUREFILE_TICKET_{file_id}"] == "ticket"
    with pytest.raises(ValueError, match="names no service connection"):
        agent.environment(step, endpoints=[first, other])
    with pytest.raises(ValueError, match="names no secure file"):
        agent.environment({"connection": first.id}, endpoints=[first], secure_files={file_id: ("k.key", "t")})


def test_the_job_variables_are_listed_in_vsts_public_variables_and_node_runs_the_node20_target(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    agent = fake_agent(tmp_path, sandbox)

    environ, temp = agent.environment({})

    names = json.loads(environ["VSTS_PUBLIC_VARIABLES"])
    assert "System.CollectionUri" in names and "Agent.TempDirectory" in names
    assert all(env_name(name) in environ for name in names)
    assert environ["AGENT_TEMPDIRECTORY"] == str(temp) and environ["agent.jobstatus"] == "Succeeded"
    assert agent.command() == ["node", str(agent.task_dir / "main.js")]


def test_stdout_and_stderr_are_read_as_one_stream_in_arrival_order(tmp_path: Path, sandbox: Sandbox) -> None:
    secret = "a-secret-of-some-length"
    agent = fake_agent(tmp_path, sandbox, STDERR_TASK)
    live: list[str] = []

    run = agent.run({"text": secret}, on_line=live.append, timeout=60)

    assert (
        live
        == run.lines
        == [
            f"early {secret}",
            f"##vso[task.setsecret]{secret}",
            f"later {secret}",
            "##vso[task.setvariable variable=fromStderr]yes",
        ]
    )
    assert run.leaks([secret]) == ["log: a form of a-se..."]  # the stderr line came before the registration
    assert run.view == [f"early {secret}", "later ***"]
    assert run.outputs == {"fromStderr": "yes"}
    assert run.stderr == f"early {secret}\n##vso[task.setvariable variable=fromStderr]yes\n"
    assert live_processes(agent.process_group or 0) == []


def test_a_cancel_leaves_no_process_of_the_task_even_one_that_ignores_the_signals(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Node dies on SIGINT, its Python child ignores SIGINT and SIGTERM and keeps the output pipe open: the read
    loop ends all the same, and the child is killed with the task's process group."""
    agent = fake_agent(tmp_path, sandbox, ORPHAN_TASK)
    children: list[int] = []

    def cancel_when_the_child_runs(line: str) -> None:
        if line.startswith("child "):
            children.append(int(line.split()[1]))
            raise KeyboardInterrupt  # Ctrl-C in the agent's caller

    with pytest.raises(KeyboardInterrupt):
        agent.run({}, on_line=cancel_when_the_child_runs, cancel_grace=(0.5, 0.5), timeout=120)

    assert children and state(children[0]) in ("", "Z")
    assert agent.process_group is not None and live_processes(agent.process_group) == []


def test_a_timeout_ends_the_run_with_timeout_expired_and_no_process_left(tmp_path: Path, sandbox: Sandbox) -> None:
    agent = fake_agent(tmp_path, sandbox, ORPHAN_TASK)

    with pytest.raises(subprocess.TimeoutExpired):
        agent.run({}, timeout=1, cancel_grace=(0.5, 0.5))

    assert agent.process_group is not None and live_processes(agent.process_group) == []


def test_the_real_task_blocked_on_a_silent_api_server_times_out_and_leaves_nothing_running(
    tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> None:
    """The staged task with a Kubernetes service connection to a port that accepts connections and never answers:
    the run times out, node and Python are cancelled, nothing of the task is left."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{silent.getsockname()[1]}"}}],
        "users": [{"name": "u", "user": {"token": "a-token-nobody-checks"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    endpoint = kubeconfig_endpoint(json.dumps(kubeconfig))
    agent = simulated_agent(tmp_path_factory, sandbox)
    step = {
        "action": "check",
        "kubernetesServiceConnection": endpoint.id,
        "repositoryUrl": sandbox.repository.name,
        "allowInsecureHttp": True,
        "pythonPath": sys.executable,
    }
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            agent.run(step, endpoints=[endpoint], timeout=12)
    finally:
        silent.close()

    assert agent.process_group is not None and live_processes(agent.process_group) == []


# ----- the log view and its masking --------------------------------------------------------------------------------


def test_the_log_masks_only_after_a_secret_is_registered_and_never_shows_the_registration() -> None:
    log = AgentLog()
    shown = [
        text
        for line in ["early s3cr3t-value", "##vso[task.setsecret]s3cr3t-value", "late s3cr3t-value"]
        for text in log.feed(line)
    ]

    assert shown == ["early s3cr3t-value", "late ***"]


def test_groups_and_issues_are_shown_as_the_log_view_shows_them_and_progress_and_completion_are_not() -> None:
    """The agent logs neither task.setprogress nor task.complete's message (ExecutionContext.Progress updates the
    timeline record only)."""
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
        "##vso[task.complete result=Succeeded]all done",
    ]
    shown = [text for line in lines for text in log.feed(line)] + log.close()

    assert shown == [
        "▼ cloning",
        "  inside",
        "  Warning: careful",
        "  Error: broken",
        "Warning: 'text with ##vso but no command' contains logging command keyword '##vso', but it's not a legal "
        "command. Please see the list of accepted commands: https://go.microsoft.com/fwlink/?LinkId=817296",
        "text with ##vso but no command",
    ]
    assert (log.progress, log.result, log.result_message) == ([10, 100], "Succeeded", "all done")


def test_a_secret_variable_masks_what_follows_it(tmp_path: Path) -> None:
    output = "##vso[task.setvariable variable=token;issecret=true]tok-3n-value\nsaid tok-3n-value\n"
    run = parse_run(0, output, "", tmp_path)

    assert run.view == ["said ***"]
    assert run.leaks(["tok-3n-value"]) == []


def test_stderr_is_one_stream_with_stdout_so_a_secret_on_stderr_before_its_registration_leaks(
    tmp_path: Path,
) -> None:
    secret = "a-token-of-some-length"
    stdout = f"##vso[task.setsecret]{secret}\nlater {secret}\n"
    stderr = f"early {secret}\n##vso[task.setvariable variable=fromStderr]yes\n"
    output = f"early {secret}\n##vso[task.setsecret]{secret}\nlater {secret}\n##vso[task.setvariable variable=fromStderr]yes\n"

    run = parse_run(0, stdout, stderr, tmp_path, output=output)

    assert run.leaks([secret]) == ["log: a form of a-to..."]
    assert run.masked_log().splitlines() == [
        f"early {secret}",
        "later ***",
        "##vso[task.setvariable variable=fromStderr]yes",
    ]
    assert run.outputs == {"fromStderr": "yes"}  # a command on stderr is processed too
    assert (run.stdout, run.stderr) == (stdout, stderr)


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
