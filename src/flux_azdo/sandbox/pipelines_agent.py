"""A simulated Azure Pipelines agent: it runs a task folder's `launcher.js` with node, as the agent's Node handler
does, and reads the task's output as the agent would. The sandbox stands in for Azure DevOps; this is its agent.

It never imports the product: the task is a subprocess and its output is text, parsed here on its own terms, so a
bug in `flux_azdo.pipeline`'s command writer cannot hide behind the same bug in a shared parser.

What it reproduces (references: /work/shared/reference/azure-devops.md §2–3, which cites the agent's sources
`Handlers/Handler.cs`, `TaskRunner.cs`, `Util/VarUtil.cs`, `Command.cs`, `WorkerCommandManager.cs`,
`ExecutionContext.cs`, `TaskCommandExtension.cs`):

* the environment (`Handler.AddInputsToEnvironment` and friends): `INPUT_<NAME>` for every input task.json declares,
  its `defaultValue` then the step's value (a YAML alias mapped to its canonical name, as the server does), trimmed,
  booleans as `true`/`false`, an empty `filePath` input as the sources folder (`BuildJobExtension.GetRootedPath`);
  names mangled as `VarUtil.ConvertToEnvVariableFormat` does (`.` and space to `_`, upper case);
* the job's variables (`SYSTEM_*`, `BUILD_*`, `AGENT_*`, `VSTS_PUBLIC_VARIABLES`), the `SystemVssConnection`
  endpoint with the job token (key `SYSTEMVSSCONNECTION`), each service connection as
  `ENDPOINT_URL_/AUTH_/AUTH_SCHEME_/AUTH_PARAMETER_/DATA_<id>` (id lower case), each secure file as
  `SECUREFILE_NAME_/TICKET_<id>`, secret variables as `SECRET_<NAME>` (the Node handler passes them);
* the process: `node <task>/launcher.js` with the sources folder as working directory, stdout and stderr read line
  by line;
* the logging commands (`Command.TryParse`): the first `##vso[` of a line starts a command, properties split on `;`
  then on the first `=`, keys case-insensitive, values and data unescaped (`%0D %0A %3B %5D %AZP25`); a processed
  command line is not logged (`WorkerCommandManager`: only `##[debug]Processed: ...` when System.Debug is on);
* the log (`ExecutionContext.Write`/`AddIssue`): each line masked with the values registered by `task.setsecret`
  *before* it, never after (the agent's masker works line by line as the output arrives); `task.logissue` is
  logged as `##[warning]`/`##[error]` plus the message; `##[group]`/`##[endgroup]` fold lines (groups do not
  nest); `task.setprogress` moves the step's progress; `task.complete` sets the result (a non-zero exit code
  fails the step too); `task.setvariable` sets the output variables; `task.uploadsummary` attaches Markdown.

`AgentRun.leaks()` looks for every readable form of a secret (base64, `user:secret` pairs, URL-encoded) in that
masked log and in the summary: the task itself, not the agent's own masking of later lines, must keep them out.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from flux_azdo.sandbox.runtime import Sandbox

#: The agent's escapes for logging command values and data (agent Command.cs / CommandStringConvertor).
_UNESCAPES = (("%0D", "\r"), ("%0A", "\n"), ("%3B", ";"), ("%5D", "]"), ("%AZP25", "%"))
#: User names a token travels with in HTTP Basic (git, the SDK).
_USERS = ("", "git", "pat", "x-access-token", "PersonalAccessToken")
#: The formatting prefixes the log viewer interprets (agent `WellKnownTags` and the group markers).
GROUP, ENDGROUP = "##[group]", "##[endgroup]"
#: How long a cancelled task gets between SIGTERM and SIGKILL (the agent waits a few seconds too).
CANCEL_GRACE = 10.0


def unescape(text: str) -> str:
    for escaped, plain in _UNESCAPES:
        text = text.replace(escaped, plain)
    return text


@dataclass(frozen=True)
class Command:
    name: str  # "task.setvariable"
    properties: Mapping[str, str]  # keys lower-cased
    data: str


def parse_command(line: str) -> Command | None:
    """A `##vso[area.event k=v;k=v]data` anywhere in the line, as the agent finds it (IndexOf)."""
    start = line.find("##vso[")
    if start < 0:
        return None
    rest = line[start + len("##vso[") :]
    end = rest.find("]")
    if end < 0:
        return None
    head, data = rest[:end], rest[end + 1 :]
    name, _, props = head.partition(" ")
    properties: dict[str, str] = {}
    for pair in props.split(";"):
        if not pair.strip():
            continue
        key, _, value = pair.partition("=")
        properties[key.strip().lower()] = unescape(value)
    return Command(name.strip().lower(), properties, unescape(data))


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


class AgentLog:
    """The step's log as the agent writes it and the web view shows it, fed one output line at a time.

    `feed` returns the lines to show for one line of output (none for a processed command): masked with what was
    registered so far, issues as `Warning:`/`Error:` lines, groups as `▼ title` with their lines indented,
    progress as `[ 40%] operation` (or, when a group with the same title follows, as `▼ title  [40%]`: the web view
    shows the percentage in the step's header). `##[debug]` lines and `task.debug` show only with `debug`; `close`
    returns what is still held back at the end.
    """

    def __init__(self, *, debug: bool = False) -> None:
        self.debug = debug
        self.secrets: list[str] = []
        self.in_group = False
        self._progress: tuple[str, str] | None = None  # (value, operation) not shown yet

    def feed(self, line: str) -> list[str]:
        line = line.rstrip("\r\n")
        progress, self._progress = self._progress, None
        if progress is not None and line.startswith(GROUP) and line[len(GROUP) :] == progress[1]:
            self.in_group = True
            return [masked(f"▼ {progress[1]}  [{progress[0]}%]", self.secrets)]
        shown = self.close() if progress is None else [self._progress_line(*progress)]
        return shown + self._line(line)

    def close(self) -> list[str]:
        progress, self._progress = self._progress, None
        return [self._progress_line(*progress)] if progress is not None else []

    def _progress_line(self, value: str, operation: str) -> str:
        return self._show(f"[{value.rjust(3)}%] {operation}".rstrip())

    def _line(self, line: str) -> list[str]:
        found = parse_command(line)
        if found is not None:
            return [self._show(text) for text in self._command(found)]
        if "##vso" in line:  # the agent warns about a command it cannot parse, and logs nothing else
            return [self._show(f"Warning: a ##vso command that does not parse: {line}")]
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

    def _command(self, found: Command) -> list[str]:
        if found.name == "task.setsecret":
            self.secrets.append(found.data)
            return []
        shown: list[str] = []
        if found.name in ("task.logissue", "task.issue"):
            kind = found.properties.get("type", "")
            shown.append(("Error: " if kind == "error" else "Warning: ") + found.data)
        elif found.name == "task.setprogress":
            self._progress = (found.properties.get("value", ""), found.data)
        elif found.name == "task.debug" and self.debug:
            shown.append("Debug: " + found.data)
        if self.debug:
            shown.append(f"Debug: Processed: ##vso[{found.name} ...]")
        return shown

    def _show(self, text: str) -> str:
        return masked(("  " if self.in_group else "") + text, self.secrets)


@dataclass
class AgentRun:
    exit_code: int
    stdout: str
    stderr: str
    temp_directory: Path
    commands: list[Command] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def named(self, name: str) -> list[Command]:
        return [c for c in self.commands if c.name == name]

    @property
    def secrets(self) -> list[str]:
        return [c.data for c in self.named("task.setsecret")]

    @property
    def issues(self) -> list[tuple[str, str]]:
        return [
            (c.properties.get("type", ""), c.data) for c in self.commands if c.name in ("task.logissue", "task.issue")
        ]

    @property
    def errors(self) -> list[str]:
        return [message for kind, message in self.issues if kind == "error"]

    @property
    def progress(self) -> list[int]:
        return [int(c.properties["value"]) for c in self.named("task.setprogress")]

    @property
    def outputs(self) -> dict[str, str]:
        return {c.properties["variable"]: c.data for c in self.named("task.setvariable")}

    @property
    def result(self) -> str | None:
        """The result `task.complete` set (the last one), None when the task never set one."""
        completes = self.named("task.complete")
        return completes[-1].properties.get("result") if completes else None

    @property
    def step_result(self) -> str:
        """The step's result as the agent records it: a non-zero exit fails it, no result means Succeeded."""
        if self.exit_code != 0:
            return "Failed"
        return self.result or "Succeeded"

    @property
    def result_message(self) -> str:
        completes = self.named("task.complete")
        return completes[-1].data if completes else ""

    @property
    def summary_path(self) -> Path | None:
        uploads = self.named("task.uploadsummary")
        return Path(uploads[-1].data) if uploads else None

    @property
    def summary(self) -> str:
        path = self.summary_path
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else ""

    def masked(self, text: str) -> str:
        """`text` as the agent's masker would log it with everything the task registered (longest value first)."""
        return masked(text, self.secrets)

    def masked_log(self) -> str:
        """stdout as the agent logs it: a `task.setsecret` line is consumed (not logged) and masks the lines after
        it, never those before; then stderr (whose order against stdout is unknown) with every registered value."""
        known: list[str] = []
        logged: list[str] = []
        for line in self.lines:
            found = parse_command(line)
            if found is not None and found.name == "task.setsecret":
                known.append(found.data)
                continue
            logged.append(masked(line, known))
        return "\n".join(logged) + "\n" + self.masked(self.stderr)

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


def parse_run(exit_code: int, stdout: str, stderr: str, temp: Path) -> AgentRun:
    run = AgentRun(exit_code, stdout, stderr, temp)
    run.commands = [c for c in (parse_command(line) for line in run.lines) if c is not None]
    return run


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


def inputs_environment(task: Mapping[str, Any], step: Mapping[str, object], sources: Path) -> dict[str, str]:
    """INPUT_* for every input `task` (task.json) declares: defaults, then the step's values (aliases mapped to
    names), trimmed; booleans as true/false; filePath inputs rooted at `sources` (empty: `sources` itself)."""
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
    kinds = {item["name"]: item["type"] for item in declared}
    environ = {}
    for name, value in values.items():
        text = value.strip()
        if kinds[name] == "filePath":
            text = str(sources / text) if text else str(sources)
        environ["INPUT_" + env_name(name)] = text
    return environ


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

    def inputs_environment(self, step: Mapping[str, object]) -> dict[str, str]:
        """INPUT_* for every declared input: defaults, then the step's values (aliases mapped to names)."""
        return inputs_environment(self.task, step, self.sources)

    def job_environment(self, *, job_token: str, debug: bool = False) -> tuple[dict[str, str], Path]:
        sandbox = self.sandbox
        collection = sandbox.org_url.rstrip("/") + "/"
        temp = self.work / "_temp"
        if temp.exists():
            shutil.rmtree(temp)
        temp.mkdir()
        oidc = ""
        if getattr(sandbox, "azure", None) is not None:
            oidc = sandbox.oidc_request_uri(self.plan_id, self.job_id)
        environ = {
            "SYSTEM_COLLECTIONURI": collection,
            "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": collection,
            "SYSTEM_TEAMPROJECT": sandbox.project.name,
            "SYSTEM_TEAMPROJECTID": sandbox.project.id,
            "SYSTEM_HOSTTYPE": "build",
            "SYSTEM_PLANID": self.plan_id,
            "SYSTEM_JOBID": self.job_id,
            "SYSTEM_DEBUG": "true" if debug else "false",
            "SYSTEM_OIDCREQUESTURI": oidc,
            "SYSTEM_DEFAULTWORKINGDIRECTORY": str(self.sources),
            "BUILD_SOURCESDIRECTORY": str(self.sources),
            "BUILD_REPOSITORY_NAME": sandbox.repository.name,
            "AGENT_TEMPDIRECTORY": str(temp),
            "AGENT_WORKFOLDER": str(self.work),
            "AGENT_OS": "Linux",
            "AGENT_JOBSTATUS": "Succeeded",
            "VSTS_PUBLIC_VARIABLES": "[]",
        }
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
        variables of the agent process itself (its PATH, say)."""
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
        return ["node", str(self.task_dir / "launcher.js")]

    def run(
        self,
        step: Mapping[str, object],
        *,
        timeout: float = 240.0,
        on_line: Callable[[str], None] | None = None,
        **options: Any,
    ) -> AgentRun:
        """Run the step to its end, as the agent's Node handler does (`options`: see `environment`); `on_line`
        gets each stdout line as it arrives (the live log). An exception while it runs (Ctrl-C) cancels the task
        as the agent does: SIGTERM, then SIGKILL after CANCEL_GRACE seconds."""
        environ, temp = self.environment(step, **options)
        self.runs += 1
        process = subprocess.Popen(
            self.command(),
            cwd=self.sources,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        stderr: list[str] = []
        reader = threading.Thread(target=_drain, args=(process.stderr, stderr), daemon=True)
        reader.start()
        timed_out = threading.Event()

        def stop_at_timeout() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(timeout, stop_at_timeout)
        timer.start()
        stdout: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                stdout.append(line)
                if on_line is not None:
                    on_line(line.rstrip("\r\n"))
            exit_code = process.wait()
        except BaseException:
            _cancel(process)
            raise
        finally:
            timer.cancel()
            reader.join(timeout=CANCEL_GRACE)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        if timed_out.is_set():
            raise subprocess.TimeoutExpired(self.command(), timeout)
        return parse_run(exit_code, "".join(stdout), "".join(stderr), temp)


def _drain(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line)


def _cancel(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the launcher forwards it to Python
        try:
            process.wait(timeout=CANCEL_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
