"""A simulated Azure Pipelines agent: runs the staged task's `launcher.js` with node, as the agent's Node handler
does, and reads its output as the agent would.

What the agent hands a task (reference azure-devops.md §2), rebuilt from task.json and the sandbox:

* `INPUT_<NAME>` for every input task.json declares: its `defaultValue`, then the step's value (by canonical name;
  a YAML alias is mapped to its name, as the server does), trimmed; booleans as `true`/`false`; an empty filePath
  input as the sources folder (`BuildJobExtension.GetRootedPath`);
* the job's variables (`SYSTEM_*`, `BUILD_*`, `AGENT_*`), the `SystemVssConnection` endpoint with the job token,
  each service connection as `ENDPOINT_URL_/AUTH_/AUTH_SCHEME_/AUTH_PARAMETER_/DATA_<id>`, each secure file as
  `SECUREFILE_NAME_/TICKET_<id>`, secret variables as `SECRET_<NAME>`.

The output is parsed independently of `flux_azdo.pipeline.commands`: the first `##vso[` of a line starts a command,
its properties are split on `;` then on the first `=`, values and data are unescaped. `AgentRun.leaks()` masks the
output as the agent does, line by line in order, each line with the values registered (`task.setsecret`) before
it, and reports every secret form still visible: a secret printed before its registration leaks, and the task
itself, not the agent's own masking, must keep secrets out of the log.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: The agent's escapes for logging command values and data (agent Command.cs / CommandStringConvertor).
_UNESCAPES = (("%0D", "\r"), ("%0A", "\n"), ("%3B", ";"), ("%5D", "]"), ("%AZP25", "%"))
#: User names a token travels with in HTTP Basic (git, the SDK).
_USERS = ("", "git", "pat", "x-access-token", "PersonalAccessToken")


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
        completes = self.named("task.complete")
        return completes[-1].properties.get("result") if completes else None

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
        return _masked(text, self.secrets)

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
            logged.append(_masked(line, known))
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


def _masked(text: str, values: Iterable[str]) -> str:
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


class SimulatedAgent:
    """One job's agent: folders under `work`, the sandbox's organisation, the staged task in `task_dir`."""

    def __init__(self, task_dir: Path, work: Path, sandbox: Any, *, base_env: Mapping[str, str]) -> None:
        self.task_dir = task_dir
        self.task = json.loads((task_dir / "task.json").read_text(encoding="utf-8"))
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
        names = {}
        for item in self.task["inputs"]:
            names[item["name"].lower()] = item["name"]
            for alias in item.get("aliases", []):
                names[alias.lower()] = item["name"]
        values = {item["name"]: str(item.get("defaultValue", "")) for item in self.task["inputs"]}
        for key, value in step.items():
            name = names.get(key.lower())
            if name is None:
                raise KeyError(f"the task declares no input {key!r}")
            values[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        kinds = {item["name"]: item["type"] for item in self.task["inputs"]}
        environ = {}
        for name, value in values.items():
            text = value.strip()
            if kinds[name] == "filePath":  # rooted at the sources folder; empty: the folder itself
                text = str(self.sources / text) if text else str(self.sources)
            environ["INPUT_" + name.replace(".", "_").replace(" ", "_").upper()] = text
        return environ

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
        for name, value in (secret_variables or {}).items():
            environ["SECRET_" + name.replace(".", "_").upper()] = value
        return environ, temp

    def command(self) -> list[str]:
        return ["node", str(self.task_dir / "launcher.js")]

    def run(self, step: Mapping[str, object], *, timeout: float = 240.0, **options: Any) -> AgentRun:
        """Run the step to its end, as the agent's Node handler does (`options`: see `environment`)."""
        environ, temp = self.environment(step, **options)
        self.runs += 1
        completed = subprocess.run(
            self.command(),
            cwd=self.sources,
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return parse_run(completed.returncode, completed.stdout, completed.stderr, temp)


def parse_run(exit_code: int, stdout: str, stderr: str, temp: Path) -> AgentRun:
    run = AgentRun(exit_code, stdout, stderr, temp)
    run.commands = [c for c in (parse_command(line) for line in run.lines) if c is not None]
    return run


def endpoint_environment(endpoint: Endpoint, *, system: bool = False) -> dict[str, str]:
    """The variables `Handler.AddEndpointsToEnvironment` sets for one endpoint."""
    key = endpoint.id if system else endpoint.id.lower()
    environ = {
        f"ENDPOINT_URL_{key}": endpoint.url,
        f"ENDPOINT_AUTH_{key}": json.dumps({"parameters": dict(endpoint.parameters), "scheme": endpoint.scheme}),
        f"ENDPOINT_AUTH_SCHEME_{key}": endpoint.scheme,
    }
    for name, value in endpoint.parameters.items():
        environ[f"ENDPOINT_AUTH_PARAMETER_{key}_{name.replace('.', '_').upper()}"] = value
    if not system:
        environ[f"ENDPOINT_DATA_{key}"] = json.dumps(dict(endpoint.data))
        for name, value in endpoint.data.items():
            environ[f"ENDPOINT_DATA_{key}_{name.replace('.', '_').upper()}"] = value
    return environ


# ----- fixtures' building blocks -----------------------------------------------------------------------------------

#: The bundled sample distribution's version: the task asks for it as `fluxVersion`, from the cache seeded below.
SAMPLE_VERSION = "v0.0.0-sample"


def seed_distribution_cache(cache_home: Path) -> None:
    """flux-azdo's OCI layer cache (XDG_CACHE_HOME) holding the sample distribution as ghcr.io's Flux manifests at
    SAMPLE_VERSION: the task finds it there and never reaches for the network, as on a warm offline agent."""
    import hashlib

    from flux_azdo.registry.cache import LayerCache
    from flux_azdo.registry.oci import DEFAULT_MANIFESTS_REPOSITORY, OciRepository
    from flux_azdo.sandbox import sample_distribution_path

    with sample_distribution_path() as path:
        data = path.read_bytes()
    repository = OciRepository.parse(DEFAULT_MANIFESTS_REPOSITORY)
    cache = LayerCache(cache_home / "flux-azdo" / "flux-manifests")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    cache.put(repository.registry, repository.repository, SAMPLE_VERSION, digest, data)


def base_environment(home: Path, cache_home: Path, sandbox: Any) -> dict[str, str]:
    """What the agent process itself runs with: a PATH with node, git and kubectl, a HOME of its own."""
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


def service_account_endpoint(sandbox: Any, token: str, *, endpoint_id: str | None = None) -> Endpoint:
    """A Kubernetes service connection of kind Service Account for the sandbox's API server."""
    ca = base64.b64encode(sandbox.kube.ca_data).decode() if sandbox.kube.ca_data else ""
    return Endpoint(
        endpoint_id or str(uuid.uuid4()),
        sandbox.kube.url,
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


def simulated_agent(tmp_path_factory: Any, sandbox: Any) -> SimulatedAgent:
    """An agent with folders of its own, the session's staged task and a warm distribution cache."""
    from support.task import staged_task_folder

    folder = tmp_path_factory.mktemp("agent")
    seed_distribution_cache(folder / "cache")
    environ = base_environment(folder / "home", folder / "cache", sandbox)
    return SimulatedAgent(staged_task_folder(tmp_path_factory), folder / "work", sandbox, base_env=environ)


def assert_clean(run: AgentRun, *secrets: str, discovered: Iterable[str] = ()) -> None:
    """Exit 0 (the result is in task.complete); no form of `secrets` (what the job hands over) or of `discovered`
    (credentials the task finds later, in a kubeconfig) readable; the job's secrets registered before any other
    line, and that first line says what runs; nothing of the run left in AGENT_TEMPDIRECTORY but its summary."""
    assert run.exit_code == 0, run.stderr
    assert run.leaks([*secrets, *discovered]) == []
    first_other = next(i for i, line in enumerate(run.lines) if "##vso[task.setsecret]" not in line)
    assert run.lines[first_other].startswith("flux-azdo ")
    early = {c.data for c in (parse_command(line) for line in run.lines[:first_other]) if c is not None}
    assert all(secret in early for secret in secrets)
    assert run.leftovers() == []
    assert run.result is not None
