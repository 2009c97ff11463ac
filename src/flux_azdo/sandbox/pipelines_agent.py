"""A simulated Azure Pipelines agent: it runs a task folder's Node entry point with node, as the agent's Node handler
does, and reads the task's output as the agent would. The sandbox stands in for Azure DevOps; this is its agent.

It never imports the product: the task is a subprocess and its output is text, parsed here on its own terms, so a
bug in `flux_azdo.pipeline`'s command writer cannot hide behind the same bug in a shared parser.

What it reproduces (the agent's sources, microsoft/azure-pipelines-agent: `Handlers/Handler.cs`,
`Handlers/NodeHandler.cs`, `TaskRunner.cs`, `Util/VarUtil.cs`, `Command.cs`, `WorkerCommandManager.cs`,
`TaskCommandExtension.cs`, `ExecutionContext.cs`, Agent.Sdk `ProcessInvoker.cs`):

* the environment (`Handler.AddInputsToEnvironment` and friends): `INPUT_<NAME>` for every input task.json declares,
  its `defaultValue` then the step's value (a YAML alias mapped to its canonical name, as the server does), trimmed,
  booleans as `true`/`false`, an empty `filePath` input as the sources folder (`BuildJobExtension.GetRootedPath`);
  names mangled as `VarUtil.ConvertToEnvVariableFormat` does (`.` and space to `_`, upper case);
* the job's variables (`SYSTEM_*`, `BUILD_*`, `AGENT_*`) with their names in `VSTS_PUBLIC_VARIABLES`, the
  `SystemVssConnection` endpoint with the job token (key `SYSTEMVSSCONNECTION`), and only the service connections
  and secure files the step's inputs name (`TaskRunner`: the comma-separated GUIDs of `connectedService:*` inputs,
  of `secureFile` inputs): `ENDPOINT_URL_/AUTH_/AUTH_SCHEME_/AUTH_PARAMETER_/DATA_<id>` (id lower case),
  `SECUREFILE_NAME_/TICKET_<id>`; secret variables as `SECRET_<NAME>` (the Node handler passes them);
* the process: node runs task.json's `execution` target (`Node20_1`, else `Node24`) with the sources folder as
  working directory; stdout and stderr both go to the same handler (`NodeHandler.OnDataReceived`), so they are read
  as one stream of lines in arrival order; a cancel (an exception in the caller, or the timeout) sends node SIGINT,
  then SIGTERM after 7.5 s, then kills what is left 2.5 s later (`ProcessInvoker.CancelAndKillProcessTree`). The
  task runs in a process group of its own, and whatever of it outlives node is killed when the step ends, as the
  agent's job end kills orphans that carry its `VSTS_PROCESS_LOOKUP_ID`;
* the logging commands (`Command.TryParse`): the first `##vso[` of a line and the first `]` after it; the name must
  be `area.event`; properties split on `;` then on the first `=` (keys are not trimmed, a key or value left empty
  drops the property), keys case-insensitive, values and data unescaped (`%0D %0A %3B %5D %AZP25`). A line with
  `##vso` that does not parse is logged after a warning; a command of an unknown area gets a warning; a command that
  fails (setvariable without a variable, complete without a valid result, an issue of an unknown type) logs an
  error and fails the step (`WorkerCommandManager`). A processed command line is not logged (only
  `##[debug]Processed: ...` when System.Debug is on);
* the log (`ExecutionContext.Write`/`AddIssue`): each line masked with the values registered by `task.setsecret` (or
  `task.setvariable issecret=true`) *before* it, never after (the agent's masker works line by line as the output
  arrives); `task.logissue` is logged as `##[warning]`/`##[error]` plus the message; `##[group]`/`##[endgroup]` fold
  lines (groups do not nest). `task.setprogress` and `task.complete`'s message only update the step's timeline
  record (`ExecutionContext.Progress`): the log does not show them. `task.complete` sets the result (merged as
  `TaskResultUtil.MergeTaskResults` does; a non-zero exit code or a failed command fails the step too);
  `task.setvariable` sets the variables; `task.uploadsummary` attaches Markdown.

`AgentRun.leaks()` looks for every readable form of a secret (base64, `user:secret` pairs, URL-encoded) in that
masked log and in the summary: the task itself, not the agent's own masking of later lines, must keep them out.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import io
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from flux_azdo.sandbox.runtime import Sandbox

#: The agent's escapes for logging command values and data (agent Command.cs / CommandStringConvertor).
_UNESCAPES = (("%0D", "\r"), ("%0A", "\n"), ("%3B", ";"), ("%5D", "]"), ("%AZP25", "%"))
#: User names a token travels with in HTTP Basic (git, the SDK).
_USERS = ("", "git", "pat", "x-access-token", "PersonalAccessToken")
#: The formatting prefixes the log viewer interprets (agent `WellKnownTags` and the group markers).
GROUP, ENDGROUP = "##[group]", "##[endgroup]"
#: How long a cancelled task gets after SIGINT, then after SIGTERM, before the rest is killed (ProcessInvoker's
#: default SigintTimeout and SigtermTimeout).
SIGINT_GRACE, SIGTERM_GRACE = 7.5, 2.5
#: The whole time a cancelled task gets before it is killed.
CANCEL_GRACE = SIGINT_GRACE + SIGTERM_GRACE
#: The Node handlers of task.json's `execution`, in the order the agent prefers them here.
NODE_HANDLERS = ("Node20_1", "Node24")
#: The command areas the agent has an extension for (`IWorkerCommandExtension.CommandArea`); only `task` is
#: simulated, the others are accepted and ignored.
COMMAND_AREAS = frozenset({"task", "artifact", "build", "release", "telemetry", "codecoverage", "results"})
#: `TaskResult`, best first: `MergeTaskResults` keeps the worse of two (Canceled and later stick).
TASK_RESULTS = ("Succeeded", "SucceededWithIssues", "Failed", "Canceled", "Skipped", "Abandoned")
#: The `task` commands the agent knows and this simulation does not act on.
_OTHER_TASK_EVENTS = frozenset(
    {"logdetail", "addattachment", "uploadfile", "settaskvariable", "setendpoint", "prependpath"}
)
#: How long the end of a step waits for the killed rest of the task to be gone.
_KILL_WAIT = 10.0
_DOCS = "http://go.microsoft.com/fwlink/?LinkId=817296"
_SEE_DOCS = f"Please reference documentation ({_DOCS})"


def unescape(text: str) -> str:
    for escaped, plain in _UNESCAPES:
        text = text.replace(escaped, plain)
    return text


@dataclass(frozen=True)
class Command:
    name: str  # "task.setvariable" (area.event, lower case: the agent looks both up case-insensitively)
    properties: Mapping[str, str]  # keys lower-cased
    data: str


def parse_command(line: str) -> Command | None:
    """A `##vso[area.event k=v;k=v]data` anywhere in the line, as `Command.TryParse` reads it; None when it does not
    parse (no `##vso[`, no `]` after it, a name that is not `area.event`)."""
    start = line.find("##vso[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    info = line[start + len("##vso[") : end]
    space = info.find(" ")
    area_event = [part for part in (info if space < 0 else info[:space]).split(".") if part]
    if len(area_event) != 2:
        return None
    properties: dict[str, str] = {}
    if space > 0:
        for pair in info[space + 1 :].split(";"):
            parsed = _property(pair)
            if parsed is not None:
                properties[parsed[0].lower()] = unescape(parsed[1])
    return Command(".".join(area_event).lower(), properties, unescape(line[end + 1 :]))


def _property(pair: str) -> tuple[str, str] | None:
    """`pair.Split('=', 2, RemoveEmptyEntries)` with exactly two parts: leading `=` and the `=` run after the key are
    separators around empty entries; the key keeps its spaces."""
    key, _, value = pair.lstrip("=").partition("=")
    value = value.lstrip("=")
    return (key, value) if key and value else None


def merge_results(current: str | None, coming: str) -> str:
    """`TaskResultUtil.MergeTaskResults`: the worse result wins, and Canceled/Skipped/Abandoned stay."""
    if current is None:
        return coming
    rank = TASK_RESULTS.index
    if rank(current) > rank("Failed"):
        return current
    return coming if rank(coming) >= rank(current) else current


@dataclass(frozen=True)
class Endpoint:
    """A service connection as the server sends it to the agent."""

    id: str
    url: str
    scheme: str
    parameters: Mapping[str, str]
    data: Mapping[str, str] = field(default_factory=dict)


def masked(text: str, values: Iterable[str]) -> str:
    """`text` with every value replaced by `***`, longest value first (the agent's masker)."""
    for value in sorted(set(values), key=len, reverse=True):
        if value:
            text = text.replace(value, "***")
    return text


def secret_forms(secret: str) -> list[str]:
    """The secret, its base64 (whole and as `user:secret` for the usual users), and its URL-encoded form."""
    forms = {secret, quote(secret, safe="")}
    data = secret.encode()
    forms.add(base64.b64encode(data).decode().rstrip("="))
    for user in _USERS:
        forms.add(base64.b64encode(f"{user}:{secret}".encode()).decode().rstrip("="))
    if "\n" in secret:  # a key: its lines are what would show
        forms.update(line for line in secret.splitlines() if len(line.strip()) >= 16 and "-----" not in line)
        forms.discard(secret)
    return [form for form in forms if len(form) >= 8]


class _CommandFailed(Exception):
    """A command the agent could not process: it logs an error and fails the step."""


class AgentLog:
    """The step as the agent processes its output, fed one line at a time (stdout and stderr alike).

    `feed` returns the lines to show for one line of output, as the web view shows the log: masked with what was
    registered so far, issues as `Warning:`/`Error:` lines, groups as `▼ title` with their lines indented, nothing
    for a processed command; `##[debug]` lines and `task.debug` show only with `debug`. What the commands set is kept:
    `secrets`, `variables`, `issues`, `progress`, `results` (of task.complete), `result_message`, `summaries`,
    `failed_commands`. `close` returns what is still held back at the end (nothing: kept for callers that ask).
    """

    def __init__(self, *, debug: bool = False) -> None:
        self.debug = debug
        self.in_group = False
        self.secrets: list[str] = []
        self.variables: dict[str, str] = {}
        self.issues: list[tuple[str, str]] = []
        self.progress: list[int] = []
        self.results: list[str] = []
        self.result_message = ""
        self.summaries: list[str] = []
        self.failed_commands: list[str] = []

    def feed(self, line: str) -> list[str]:
        line = line.rstrip("\r\n")
        found = parse_command(line)
        if found is not None:
            return [self._show(text) for text in self._command(found, line)]
        if "##vso" in line:  # logged, after a warning (WorkerCommandManager: CommandKeywordDetected)
            warning = (
                f"Warning: '{line}' contains logging command keyword '##vso', but it's not a legal command. "
                "Please see the list of accepted commands: https://go.microsoft.com/fwlink/?LinkId=817296"
            )
            return [self._show(warning), self._show(line)]
        return self._line(line)

    def close(self) -> list[str]:
        return []

    @property
    def result(self) -> str | None:
        """The results of `task.complete`, merged; None when the task never set one."""
        merged: str | None = None
        for result in self.results:
            merged = merge_results(merged, result)
        return merged

    def _line(self, line: str) -> list[str]:
        if line.startswith(GROUP):
            self.in_group = True
            return [masked(f"▼ {line[len(GROUP) :]}", self.secrets)]
        if line.startswith(ENDGROUP):
            self.in_group = False
            return []
        for tag, label in (("##[error]", "Error: "), ("##[warning]", "Warning: "), ("##[section]", "")):
            if line.startswith(tag):
                return [self._show(label + line[len(tag) :])]
        if line.startswith("##[command]"):
            return [self._show(line[len("##[command]") :])]
        if line.startswith("##[debug]"):
            return [self._show("Debug: " + line[len("##[debug]") :])] if self.debug else []
        return [self._show(line)]

    def _command(self, found: Command, line: str) -> list[str]:
        area = found.name.partition(".")[0]
        if area not in COMMAND_AREAS:
            return [f"Warning: Cannot find command extension for ##vso[{area}.command]. {_SEE_DOCS}"]
        shown: list[str] = []
        if area == "task":
            try:
                shown = self._task_command(found)
            except _CommandFailed as failure:
                self.failed_commands.append(line)
                shown = [
                    f"Error: Unable to process command '{line}' successfully. Please reference documentation ({_DOCS})"
                ]
                shown.append(f"Error: {failure}")
        if self.debug and found.name != "task.debug":
            shown.append(f"Debug: Processed: {unescape(line)}")
        return shown

    def _task_command(self, found: Command) -> list[str]:
        """One `task` command, as TaskCommandExtension runs it; raises _CommandFailed where the agent throws."""
        event, properties, data = found.name.partition(".")[2], found.properties, found.data
        if event == "setsecret":
            if data:
                self.secrets.append(data)
            return []
        if event in ("logissue", "issue"):
            kind = properties.get("type")
            if kind is None:
                return ["Warning: Can't create TaskIssue from logging event."]
            if kind.lower() not in ("error", "warning"):
                raise _CommandFailed(f"issue type {kind} is not an expected issue type.")
            self.issues.append((kind.lower(), data))
            return [("Error: " if kind.lower() == "error" else "Warning: ") + data]
        if event == "setprogress":
            value = properties.get("value", "")
            self.progress.append(min(max(int(value), 0), 100) if re.fullmatch(r"[+-]?\d+", value.strip()) else 0)
            return []
        if event == "complete":
            result = properties.get("result", "")
            if result not in TASK_RESULTS:
                raise _CommandFailed("Command doesn't have valid result value.")
            self.results.append(result)
            self.result_message = data
            return []
        if event == "setvariable":
            name = properties.get("variable", "")
            if not name:
                raise _CommandFailed("Required field 'variable' is missing in ##vso[task.setvariable] command.")
            if properties.get("issecret", "").strip().lower() in ("true", "1", "$true"):
                if "\n" in data:
                    raise _CommandFailed("Secrets cannot contain multiple lines")
                if data:
                    self.secrets.append(data)
            self.variables[name] = data
            return []
        if event == "uploadsummary":
            if not data:
                raise _CommandFailed("Cannot upload summary file, summary file location is not specified.")
            self.summaries.append(data)
            return []
        if event == "debug":
            return ["Debug: " + data] if self.debug else []
        if event in _OTHER_TASK_EVENTS:
            return []
        raise _CommandFailed(
            f"##vso[task.{event}] is not a recognized command for task command extension. "
            f"Please reference documentation ({_DOCS})."
        )

    def _show(self, text: str) -> str:
        return masked(("  " if self.in_group else "") + text, self.secrets)


@dataclass
class AgentRun:
    """One step's run: the exit code, the output as the agent read it, and what the agent made of it.

    `stdout` and `stderr` are each stream's text; `output` is both in the order the agent read them (the one stream
    it processes); `lines` are its lines. Without `output` (a run parsed from captured streams), stdout comes first.
    """

    exit_code: int
    stdout: str
    stderr: str
    temp_directory: Path
    commands: list[Command] = field(default_factory=list)
    output: str | None = None
    log: AgentLog = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.output is None:
            joint = "" if not self.stdout or self.stdout.endswith(("\n", "\r")) else "\n"
            self.output = self.stdout + (joint + self.stderr if self.stderr else "")
        if not self.commands:
            self.commands = [c for c in (parse_command(line) for line in self.lines) if c is not None]
        self.log = AgentLog()
        self._view = [text for line in self.lines for text in self.log.feed(line)]

    @property
    def lines(self) -> list[str]:
        return (self.output or "").splitlines()

    def named(self, name: str) -> list[Command]:
        return [c for c in self.commands if c.name == name]

    @property
    def view(self) -> list[str]:
        """The log as the web view shows it (see AgentLog)."""
        return list(self._view)

    @property
    def secrets(self) -> list[str]:
        return list(self.log.secrets)

    @property
    def issues(self) -> list[tuple[str, str]]:
        return list(self.log.issues)

    @property
    def errors(self) -> list[str]:
        return [message for kind, message in self.issues if kind == "error"]

    @property
    def progress(self) -> list[int]:
        return list(self.log.progress)

    @property
    def outputs(self) -> dict[str, str]:
        """The variables the task set (`task.setvariable`), by name."""
        return dict(self.log.variables)

    @property
    def failed_commands(self) -> list[str]:
        """The command lines the agent could not process (each fails the step)."""
        return list(self.log.failed_commands)

    @property
    def result(self) -> str | None:
        """The result `task.complete` set (merged when set more than once), None when the task never set one."""
        return self.log.result

    @property
    def step_result(self) -> str:
        """The step's result as the agent records it: a non-zero exit or a failed command fails it, no result means
        Succeeded."""
        result = self.result or "Succeeded"
        if self.exit_code != 0 or self.log.failed_commands:
            result = merge_results(result, "Failed")
        return result

    @property
    def result_message(self) -> str:
        return self.log.result_message

    @property
    def summary_path(self) -> Path | None:
        return Path(self.log.summaries[-1]) if self.log.summaries else None

    @property
    def summary(self) -> str:
        path = self.summary_path
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else ""

    def masked(self, text: str) -> str:
        """`text` as the agent's masker would log it with everything the task registered (longest value first)."""
        return masked(text, self.secrets)

    def masked_log(self) -> str:
        """Both streams, in the order the agent read them, as it logs them: a `task.setsecret` line is consumed (not
        logged) and masks the lines after it, never those before; other lines are kept whole (commands included:
        their data may show elsewhere), masked with what was registered up to them."""
        log = AgentLog()
        logged: list[str] = []
        for line in self.lines:
            log.feed(line)
            found = parse_command(line)
            if found is None or found.name != "task.setsecret":
                logged.append(masked(line, log.secrets))
        return "\n".join(logged)

    def leaks(self, secrets: Iterable[str]) -> list[str]:
        """Each secret form that is still readable in the log (stdout and stderr) or the summary file."""
        found: list[str] = []
        log = self.masked_log()
        summary = self.summary
        for secret in secrets:
            for form in secret_forms(secret):
                if form in log:
                    found.append(f"log: a form of {secret[:4]}...")
                if form in summary:
                    found.append(f"summary: a form of {secret[:4]}...")
        return found

    def leftovers(self) -> list[str]:
        """What the run left in AGENT_TEMPDIRECTORY besides the summaries (which the agent uploads later)."""
        return sorted(p.name for p in self.temp_directory.iterdir() if not p.name.startswith("flux-azdo-summary-"))


def parse_run(exit_code: int, stdout: str, stderr: str, temp: Path, *, output: str | None = None) -> AgentRun:
    """A run from its captured streams; `output` is both in arrival order when known (else stdout, then stderr)."""
    return AgentRun(exit_code, stdout, stderr, temp, output=output)


def env_name(name: str) -> str:
    """`VarUtil.ConvertToEnvVariableFormat`: `.` and space become `_`, then upper case."""
    return name.replace(".", "_").replace(" ", "_").upper()


def endpoint_environment(endpoint: Endpoint, *, system: bool = False) -> dict[str, str]:
    """The variables `Handler.AddEndpointsToEnvironment` sets for one endpoint."""
    key = endpoint.id if system else endpoint.id.lower()
    environ = {
        f"ENDPOINT_URL_{key}": endpoint.url,
        f"ENDPOINT_AUTH_{key}": json.dumps({"parameters": dict(endpoint.parameters), "scheme": endpoint.scheme}),
        f"ENDPOINT_AUTH_SCHEME_{key}": endpoint.scheme,
    }
    for name, value in endpoint.parameters.items():
        environ[f"ENDPOINT_AUTH_PARAMETER_{key}_{env_name(name)}"] = value
    if not system:
        environ[f"ENDPOINT_DATA_{key}"] = json.dumps(dict(endpoint.data))
        for name, value in endpoint.data.items():
            environ[f"ENDPOINT_DATA_{key}_{env_name(name)}"] = value
    return environ


def input_values(task: Mapping[str, Any], step: Mapping[str, object]) -> dict[str, str]:
    """Every input `task` (task.json) declares, by its name: its default, then the step's value (by name or alias,
    case-insensitive), untrimmed; booleans as true/false. A step input the task does not declare is a KeyError."""
    declared = task["inputs"]
    names = {}
    for item in declared:
        names[item["name"].lower()] = item["name"]
        for alias in item.get("aliases", []):
            names[alias.lower()] = item["name"]
    values = {item["name"]: _input_text(item.get("defaultValue", "")) for item in declared}
    for key, value in step.items():
        name = names.get(key.lower())
        if name is None:
            raise KeyError(f"the task declares no input {key!r}")
        values[name] = _input_text(value)
    return values


def inputs_environment(task: Mapping[str, Any], step: Mapping[str, object], sources: Path) -> dict[str, str]:
    """INPUT_* for every input `task` (task.json) declares: defaults, then the step's values (aliases mapped to
    names), trimmed; booleans as true/false; filePath inputs rooted at `sources` (empty: `sources` itself)."""
    kinds = {item["name"]: item["type"] for item in task["inputs"]}
    environ = {}
    for name, value in input_values(task, step).items():
        text = value.strip()
        if kinds[name] == "filePath":
            text = str(sources / text) if text else str(sources)
        environ["INPUT_" + env_name(name)] = text
    return environ


def referenced_ids(task: Mapping[str, Any], step: Mapping[str, object], *, secure_files: bool = False) -> set[str]:
    """The ids the step's inputs name, as `TaskRunner` collects them: the values of every `connectedService:*` input
    (or, with `secure_files`, every `secureFile` input), split on `,`, each trimmed and kept when it is a GUID other
    than the empty one; returned in canonical lower-case form, whatever input's visibility (a UI matter)."""
    values = input_values(task, step)
    ids: set[str] = set()
    for item in task["inputs"]:
        kind = str(item.get("type", "")).lower()
        if (kind == "securefile") if secure_files else kind.startswith("connectedservice:"):
            for raw in values[item["name"]].split(","):
                parsed = _guid(raw)
                if parsed is not None:
                    ids.add(parsed)
    return ids


def _guid(text: str) -> str | None:
    try:
        value = uuid.UUID(text.strip())
    except ValueError:
        return None
    return None if value.int == 0 else str(value)


def _input_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def agent_process_environment(home: Path, cache_home: Path, sandbox: Sandbox) -> dict[str, str]:
    """What the agent process itself runs with: this PATH (node, git, kubectl), a HOME and cache of its own, the
    sandbox CA for Azure clients when the sandbox runs its Azure part."""
    home.mkdir(parents=True, exist_ok=True)
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "XDG_CACHE_HOME": str(cache_home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    if os.environ.get("AZURE_DEVOPS_CACHE_DIR"):
        environ["AZURE_DEVOPS_CACHE_DIR"] = os.environ["AZURE_DEVOPS_CACHE_DIR"]
    azure = getattr(sandbox, "azure", None)
    if azure is not None:
        environ["REQUESTS_CA_BUNDLE"] = str(azure.ca_file)
    return environ


def service_account_endpoint(sandbox: Sandbox, token: str, *, endpoint_id: str | None = None) -> Endpoint:
    """A Kubernetes service connection of kind Service Account for the sandbox's API server."""
    kube = sandbox.kube
    if kube is None:
        raise ValueError("the sandbox runs without its Kubernetes API server")
    ca = base64.b64encode(kube.ca_data).decode() if kube.ca_data else ""
    return Endpoint(
        endpoint_id or str(uuid.uuid4()),
        kube.url,
        "Token",
        {
            "apiToken": base64.b64encode(token.encode()).decode(),
            "serviceAccountCertificate": ca,
            "isCreatedFromSecretYaml": "true",
        },
        {"authorizationType": "ServiceAccount", "acceptUntrustedCerts": "false"},
    )


def kubeconfig_endpoint(kubeconfig: str, context: str = "", *, endpoint_id: str | None = None) -> Endpoint:
    """A Kubernetes service connection of kind KubeConfig."""
    parameters = {"kubeconfig": kubeconfig}
    if context:
        parameters["clusterContext"] = context
    return Endpoint(
        endpoint_id or str(uuid.uuid4()),
        "https://kubernetes.invalid",
        "Kubernetes",
        parameters,
        {"authorizationType": "Kubeconfig", "acceptUntrustedCerts": "false"},
    )


class SimulatedAgent:
    """One job's agent: folders under `work`, the sandbox's organisation, the task folder `task_dir`."""

    def __init__(self, task_dir: Path, work: Path, sandbox: Sandbox, *, base_env: Mapping[str, str]) -> None:
        self.task_dir = task_dir
        self.task: dict[str, Any] = json.loads((task_dir / "task.json").read_text(encoding="utf-8"))
        self.sandbox = sandbox
        self.work = work
        self.sources = work / "s"
        self.sources.mkdir(parents=True, exist_ok=True)
        self.base_env = dict(base_env)
        self.plan_id = str(uuid.uuid4())
        self.job_id = str(uuid.uuid4())
        self.runs = 0
        #: The process group of the last run (its node's pid): `live_processes` lists what is left of it.
        self.process_group: int | None = None

    def inputs_environment(self, step: Mapping[str, object]) -> dict[str, str]:
        """INPUT_* for every declared input: defaults, then the step's values (aliases mapped to names)."""
        return inputs_environment(self.task, step, self.sources)

    def job_variables(self, *, debug: bool = False) -> tuple[dict[str, str], Path]:
        """The job's public variables by their names (System.*, Build.*, Agent.*), and its AGENT_TEMPDIRECTORY,
        emptied."""
        sandbox = self.sandbox
        collection = sandbox.org_url.rstrip("/") + "/"
        temp = self.work / "_temp"
        if temp.exists():
            shutil.rmtree(temp)
        temp.mkdir()
        oidc = ""
        if getattr(sandbox, "azure", None) is not None:
            oidc = sandbox.oidc_request_uri(self.plan_id, self.job_id)
        variables = {
            "System.CollectionUri": collection,
            "System.TeamFoundationCollectionUri": collection,
            "System.TeamProject": sandbox.project.name,
            "System.TeamProjectId": sandbox.project.id,
            "System.HostType": "build",
            "System.PlanId": self.plan_id,
            "System.JobId": self.job_id,
            "System.Debug": "true" if debug else "false",
            "System.OidcRequestUri": oidc,
            "System.DefaultWorkingDirectory": str(self.sources),
            "Build.SourcesDirectory": str(self.sources),
            "Build.Repository.Name": sandbox.repository.name,
            "Agent.TempDirectory": str(temp),
            "Agent.WorkFolder": str(self.work),
            "Agent.OS": "Linux",
            "Agent.JobStatus": "Succeeded",
        }
        return variables, temp

    def job_environment(self, *, job_token: str, debug: bool = False) -> tuple[dict[str, str], Path]:
        """The job's variables as `Handler.AddVariablesToEnvironment` passes them (formatted names, their names in
        VSTS_PUBLIC_VARIABLES, agent.jobstatus also under its own name) and the SystemVssConnection endpoint."""
        variables, temp = self.job_variables(debug=debug)
        environ = {env_name(name): value for name, value in variables.items()}
        environ["agent.jobstatus"] = variables["Agent.JobStatus"]
        environ["VSTS_PUBLIC_VARIABLES"] = json.dumps(list(variables))
        collection = variables["System.CollectionUri"]
        environ.update(
            endpoint_environment(
                Endpoint("SYSTEMVSSCONNECTION", collection, "OAuth", {"AccessToken": job_token}), system=True
            )
        )
        return environ, temp

    def environment(
        self,
        step: Mapping[str, object],
        *,
        endpoints: Iterable[Endpoint] = (),
        secure_files: Mapping[str, tuple[str, str]] | None = None,
        secret_variables: Mapping[str, str] | None = None,
        job_token: str | None = None,
        debug: bool = False,
        agent_env: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, str], Path]:
        """The task's whole environment for one step, and its AGENT_TEMPDIRECTORY (emptied); `agent_env` replaces
        variables of the agent process itself (its PATH, say).

        `endpoints` and `secure_files` are what the job holds; the agent hands the task only those the step's inputs
        name, so one no input names is a mistake in the caller (ValueError): its test would prove nothing."""
        _check_referenced(
            "service connection", [e.id for e in endpoints], referenced_ids(self.task, step), "connectedService:*"
        )
        _check_referenced(
            "secure file", list(secure_files or {}), referenced_ids(self.task, step, secure_files=True), "secureFile"
        )
        token = job_token if job_token is not None else self.sandbox.job_token
        environ = {**self.base_env, **(agent_env or {})}
        job, temp = self.job_environment(job_token=token, debug=debug)
        environ.update(job)
        environ.update(self.inputs_environment(step))
        for endpoint in endpoints:
            environ.update(endpoint_environment(endpoint))
        for file_id, (name, ticket) in (secure_files or {}).items():
            environ[f"SECUREFILE_NAME_{file_id}"] = name
            environ[f"SECUREFILE_TICKET_{file_id}"] = ticket
        if secret_variables:
            for name, value in secret_variables.items():
                environ["SECRET_" + env_name(name)] = value
            environ["VSTS_SECRET_VARIABLES"] = json.dumps(list(secret_variables))
        return environ, temp

    def command(self) -> list[str]:
        """`node <task>/<target>` for the first Node handler of task.json's `execution` the agent would pick."""
        execution = self.task.get("execution") or {}
        for handler in NODE_HANDLERS:
            data = execution.get(handler)
            if isinstance(data, Mapping) and data.get("target"):
                arguments = shlex.split(str(data.get("argumentFormat") or ""))
                return ["node", str(self.task_dir / str(data["target"])), *arguments]
        raise ValueError(f"task.json's execution has no {' or '.join(NODE_HANDLERS)} handler with a target")

    def run(
        self,
        step: Mapping[str, object],
        *,
        timeout: float = 240.0,
        on_line: Callable[[str], None] | None = None,
        cancel_grace: tuple[float, float] = (SIGINT_GRACE, SIGTERM_GRACE),
        **options: Any,
    ) -> AgentRun:
        """Run the step to its end, as the agent's Node handler does (`options`: see `environment`); `on_line` gets
        each line of output (stdout and stderr, in arrival order) as it arrives: the live log.

        After `timeout` seconds (subprocess.TimeoutExpired) or an exception while it runs (Ctrl-C), the task is
        cancelled as the agent cancels it: SIGINT to node (the launcher passes it on), SIGTERM after
        `cancel_grace[0]` seconds, and `cancel_grace[1]` seconds later SIGKILL to its whole process group. Whatever
        of the task outlives node is killed when the step ends; `process_group` names the last run's group."""
        environ, temp = self.environment(step, **options)
        self.runs += 1
        command = self.command()
        process = subprocess.Popen(
            command,
            cwd=self.sources,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a process group of its own: the task's children can be found and ended
        )
        self.process_group = process.pid
        output = _MergedOutput(process)
        timed_out = False
        try:
            deadline = time.monotonic() + timeout
            if not (output.pump(deadline, on_line) and _wait_for_exit(process.pid, deadline)):
                timed_out = True
                _cancel(process, output, cancel_grace, on_line)
        except BaseException:
            _cancel(process, output, cancel_grace, None)
            raise
        finally:
            _end_process_group(process)
            output.close()
        if timed_out:
            raise subprocess.TimeoutExpired(command, timeout, output=output.text())
        return parse_run(process.returncode, output.text("stdout"), output.text("stderr"), temp, output=output.text())


def _check_referenced(kind: str, given: Iterable[str], referenced: set[str], inputs: str) -> None:
    for item in given:
        if _guid(item) not in referenced:
            raise ValueError(
                f"the step names no {kind} {item!r} in its {inputs} inputs: the agent would not pass it to the task"
            )


class _MergedOutput:
    """The task's stdout and stderr, read as the data arrives into one stream of lines (the Node handler hands both
    to the same OnDataReceived). Lines end at `\\n`, `\\r\\n` or `\\r` (.NET's ReadLine); bytes are UTF-8."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._selector = selectors.DefaultSelector()
        self._decoders: dict[str, io.IncrementalNewlineDecoder] = {}
        self._partial: dict[str, str] = {}
        self._streams: list[IO[bytes]] = []
        self.lines: list[tuple[str, str]] = []  # (stream, line), in arrival order
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr)):
            assert stream is not None
            self._streams.append(stream)
            self._selector.register(stream.fileno(), selectors.EVENT_READ, name)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            self._decoders[name] = io.IncrementalNewlineDecoder(decoder, translate=True)
            self._partial[name] = ""

    def pump(self, deadline: float, on_line: Callable[[str], None] | None) -> bool:
        """Read until both streams end (True) or the monotonic `deadline` passes (False)."""
        while self._selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for key, _ in self._selector.select(remaining):
                name = str(key.data)
                chunk = os.read(int(key.fd), 65536)
                text = self._decoders[name].decode(chunk, final=not chunk)
                *complete, self._partial[name] = (self._partial[name] + text).split("\n")
                if not chunk:
                    self._selector.unregister(key.fd)
                    if self._partial[name]:
                        complete.append(self._partial[name])
                        self._partial[name] = ""
                for line in complete:
                    self.lines.append((name, line))
                    if on_line is not None:
                        on_line(line)
        return True

    def text(self, stream: str | None = None) -> str:
        """The lines read so far (of `stream` only when given), each ending with a newline."""
        return "".join(line + "\n" for name, line in self.lines if stream is None or name == stream)

    def close(self) -> None:
        self._selector.close()
        for stream in self._streams:
            stream.close()


def _exited(pid: int) -> bool:
    """Whether the child `pid` has ended, without reaping it: until it is reaped its pid, and so its process group's
    id, cannot be reused, so the group can still be signalled safely."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_for_exit(pid: int, deadline: float) -> bool:
    while not _exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _cancel(
    process: subprocess.Popen[bytes],
    output: _MergedOutput,
    grace: tuple[float, float],
    on_line: Callable[[str], None] | None,
) -> None:
    """`ProcessInvoker.CancelAndKillProcessTree`: SIGINT, then SIGTERM, to node only (the launcher forwards them: a
    signal to the whole group would reach Python twice), each with its grace period while the output is still read;
    the caller then kills what is left with the whole group (`_end_process_group`)."""
    for number, seconds in ((signal.SIGINT, grace[0]), (signal.SIGTERM, grace[1])):
        if not _exited(process.pid):
            os.kill(process.pid, number)
        deadline = time.monotonic() + seconds
        if output.pump(deadline, on_line) and _wait_for_exit(process.pid, deadline):
            return


def _end_process_group(process: subprocess.Popen[bytes]) -> None:
    """Kill whatever is left in the task's process group (node after a cut-short cancel, children it left behind),
    then reap node. Node is not reaped before the signal, so the group's id still belongs to the task."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + _KILL_WAIT
    while live_processes(process.pid) and time.monotonic() < deadline:  # SIGKILL lands asynchronously
        time.sleep(0.02)
    process.wait()


def live_processes(group: int) -> list[int]:
    """The pids of the processes (zombies aside) in process group `group`, read from /proc."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == group:
            pids.append(int(entry.name))
    return pids


def display_name(task: Mapping[str, Any], step: Mapping[str, object]) -> str:
    """The step's name when YAML gives no `displayName`: task.json's `instanceNameFormat` with each `$(input)`
    replaced by the step's value or the input's default."""
    values = {item["name"].lower(): _input_text(item.get("defaultValue", "")) for item in task.get("inputs", [])}
    values.update({key.lower(): _input_text(value) for key, value in step.items()})
    name = str(task.get("instanceNameFormat") or task.get("friendlyName") or task.get("name", ""))
    return re.sub(r"\$\(([^)]+)\)", lambda match: values.get(match.group(1).lower(), match.group(0)), name)


def task_header(task: Mapping[str, Any], name: str) -> list[str]:
    """The lines the agent logs before a task's own output (`TaskRunner`), for the step called `name`."""
    version = task.get("version", {})
    rule = "=" * 78
    return [
        f"Starting: {name}",
        rule,
        f"Task         : {task.get('friendlyName', '')}",
        f"Description  : {task.get('description', '')}",
        f"Version      : {version.get('Major', 0)}.{version.get('Minor', 0)}.{version.get('Patch', 0)}",
        f"Author       : {task.get('author', '')}",
        f"Help         : {task.get('helpUrl', '')}",
        rule,
    ]
