"""`flux-azdo demo`: a real bootstrap on this machine, then the same command again to show it changes nothing.

A new user should see what flux-azdo does without an Azure DevOps organisation, a cluster or the internet. So
the demo starts the sandbox (a local Azure DevOps with git over HTTP and SSH, a Kubernetes API server and a Flux
controller simulator, all on 127.0.0.1) in a temporary folder, runs the product's own bootstrap against it with
the sandbox user's PAT and the bundled sample distribution, shows what landed in the repository and the cluster,
and runs the same bootstrap again: the re-run's commit and write counts come from the sandbox (the repository and
the API server's request log), not from what the bootstrap says about itself. Everything is stopped and removed at
the end, also after a failure, Ctrl-C or SIGTERM (`cli.main` turns those into exceptions, so `finally` runs).

`flux-azdo demo --task DIR` shows the Azure Pipelines task the same way: DIR is a task folder (task.json,
launcher.js and the staged Python, as `python task/stage.py` lays it out or the .vsix holds it). The sandbox's
simulated agent (`flux_azdo.sandbox.pipelines_agent`) runs it as a YAML step would, with the job token pushing and
the sandbox user's PAT as the cluster's credential, and the demo shows the log as the agent shows it (groups,
issues, secrets as ***; progress and the completion message are not in the agent's log, so they follow it as the
step's result), the output variables and the summary tab, then runs the step again. DIR must be a staged task of
the current version staged for this interpreter (`make task-demo` stages build/task-demo/FluxBootstrapV1); its
Python is the base interpreter of this one, never a virtual environment whose packages would fill gaps in the
staged folder.

Only the demo, `flux-azdo sandbox` and the tests may import `flux_azdo.sandbox`; `bootstrap_options` is public
because benchmarks/run.py drives the same bootstrap, `seed_sample_distribution` because the tests' agent uses it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from flux_azdo.bootstrap import BootstrapOptions
    from flux_azdo.console import TerminalReporter
    from flux_azdo.sandbox.kube import KubeApiServer
    from flux_azdo.sandbox.pipelines_agent import AgentRun, Endpoint, SimulatedAgent
    from flux_azdo.sandbox.runtime import Sandbox

#: The Kubernetes user the demo's bootstrap runs as: its requests are counted apart from the simulator's.
DEMO_USER = "flux-azdo-demo"
#: The cluster's folder in the repository.
DEMO_PATH = "clusters/demo"
#: The whole run of one bootstrap (Flux's --timeout); the sandbox answers in well under a second.
DEMO_TIMEOUT = 120.0
_CALL_TIMEOUT = 30.0
#: Where the azure-devops SDK keeps its location cache during the demo: inside the demo's folder, so the
#: sandbox's throw-away URLs never land in the user's cache.
_SDK_CACHE_VARIABLE = "AZURE_DEVOPS_CACHE_DIR"


def register(commands: Any) -> None:
    """Add `demo` to the CLI's subcommands (`commands` is the object `add_subparsers` returned)."""
    demo = commands.add_parser(
        "demo",
        help="bootstrap Flux on a local sandbox, twice (no network, no cloud account)",
        description="Start a local Azure DevOps, Kubernetes API server and Flux simulator in a temporary folder, "
        "run `flux-azdo bootstrap` against them with the bundled sample distribution, show the repository and "
        "the cluster, run it again to show that a re-run with nothing new changes nothing, then stop the "
        "sandbox and remove the folder. With --task, run the Azure Pipelines task in that folder instead, "
        "through a simulated pipeline agent, the same way.",
    )
    demo.add_argument(
        "--task",
        metavar="DIR",
        type=Path,
        help="a staged FluxBootstrap task folder (task.json, launcher.js, python/: `make task-demo` stages "
        "build/task-demo/FluxBootstrapV1, or unpack the .vsix): run it as a pipeline step would, twice",
    )
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.task is not None:
        return run_task_demo(args.task, sys.stdout)
    return run_demo(sys.stdout)


def bootstrap_options(
    sandbox: Sandbox,
    kubeconfig: Path,
    manifests: Path,
    *,
    path: str = DEMO_PATH,
    warn: Callable[[str], None] | None = None,
) -> BootstrapOptions:
    """What `GIT_PASSWORD=<the sandbox PAT> flux-azdo bootstrap --url <sandbox repository> --allow-insecure-http
    --path <path> --manifests <manifests> --kubeconfig <kubeconfig>` runs with, built through the same public
    functions the CLI uses. The PAT goes in as GIT_PASSWORD of a private environment, never into os.environ."""
    from flux_azdo.azdo.access import AccessOptions, preflight_request
    from flux_azdo.bootstrap import BootstrapOptions
    from flux_azdo.bootstrap_steps.credentials import cluster_source_secret
    from flux_azdo.cluster.client import ClusterAccess
    from flux_azdo.manifests.install import InstallOptions
    from flux_azdo.manifests.sync import SyncOptions

    access = AccessOptions(url=sandbox.repo_url, allow_insecure_http=True, timeout=f"{_CALL_TIMEOUT}s")
    request = preflight_request(access, environ={"GIT_PASSWORD": sandbox.pat}, warn=warn)
    sync = SyncOptions(url=sandbox.repo_url, branch=request.branch, path=path, allow_insecure_http=True)
    return BootstrapOptions(
        url=request.url,
        install=InstallOptions(),
        sync=sync,
        manifests=str(manifests),
        git_auth=request.git_auth,
        api_token=request.token,
        cluster_secret=cluster_source_secret(sync, request.git_auth, request.token),
        identity=None,
        cluster=ClusterAccess(kubeconfig, None, _CALL_TIMEOUT),
        timeout=DEMO_TIMEOUT,
        call_timeout=_CALL_TIMEOUT,
    )


def add_bootstrap_user(sandbox: Sandbox, kubeconfig: Path, name: str = DEMO_USER) -> Path:
    """A cluster user of its own with every right, so the API server's log tells its requests apart."""
    from flux_azdo.sandbox.kube import AccessRule

    kube = _kube(sandbox)
    kube.write_kubeconfig(kubeconfig, token=kube.add_user(name, [AccessRule(verbs=("*",))]))
    return kubeconfig


def run_demo(out: TextIO) -> int:
    """The whole demo; every line goes to `out` (one stream keeps the narrative and the bootstrap in order)."""
    from flux_azdo.console import TerminalReporter
    from flux_azdo.git.folders import PrivateFolder

    reporter = TerminalReporter(out)
    # Made so that no interrupt can leave it behind (see flux_azdo.git.folders): one landing right after it is made
    # drops the object, which removes the folder as it is collected.
    demo_folder = PrivateFolder("flux-azdo-demo-")
    try:
        with _sdk_cache(demo_folder.path / "sdk-cache"):
            _demo(demo_folder.path, out, reporter)
    finally:
        demo_folder.remove()
    reporter.success(f"sandbox stopped, {demo_folder.path} removed: nothing is left running or on disk")
    return 0


def _demo(folder: Path, out: TextIO, reporter: TerminalReporter) -> None:
    from flux_azdo.sandbox import sample_distribution_path
    from flux_azdo.sandbox.runtime import Sandbox, SandboxOptions

    print("flux-azdo demo: Flux bootstrapped from an Azure DevOps repository, end to end, on this machine.", file=out)
    print("Everything runs on 127.0.0.1; the Flux manifests are the bundled sample: Flux's shape, not Flux.", file=out)
    print(file=out)
    reporter.action(f"starting the sandbox in {folder}")
    sandbox = Sandbox(folder / "sandbox", SandboxOptions(ssh="auto"))
    started = False
    # One try from before start() to the end: an interrupt as start() returns still stops the sandbox (a generator
    # context manager would leave that to the garbage collector, after the folder has been removed).
    try:
        _start_sandbox(sandbox)  # stops what it started when it fails half-way
        started = True
        _report_sandbox(sandbox, reporter)
        with sample_distribution_path() as sample:
            _bootstrap_twice(sandbox, folder, sample, out, reporter)
    finally:
        if started:
            reporter.action("stopping the sandbox")
        sandbox.stop()


def _start_sandbox(sandbox: Sandbox) -> None:
    from flux_azdo.errors import UserError
    from flux_azdo.sandbox.runtime import SandboxError

    try:
        sandbox.start()
    except SandboxError as exc:
        raise UserError(f"the demo's sandbox cannot start: {exc}") from None


def _bootstrap_twice(sandbox: Sandbox, folder: Path, sample: Path, out: TextIO, reporter: TerminalReporter) -> None:
    from flux_azdo.bootstrap import bootstrap

    kubeconfig = add_bootstrap_user(sandbox, folder / "demo.kubeconfig")
    options = bootstrap_options(sandbox, kubeconfig, sample, warn=reporter.warning)
    print(f"\n1. {_command_line(sandbox)}", file=out)
    print(
        "   (Two warnings are expected: the PAT is stored in the cluster, and the sample is no Flux release.)",
        file=out,
    )
    print(file=out)
    first = bootstrap(options, reporter)
    print(file=out)
    _show_repository(sandbox, out)
    _show_cluster(sandbox, out)
    requests, writes = our_requests(sandbox)
    made = sum(1 for sha in (first.components_commit, first.sync_commit) if sha)
    print(f"\nThat run: {made} commits; {requests} requests to the API server, {writes} of them writes.", file=out)

    before = _commit_count(sandbox)
    _kube(sandbox).reset_requests()
    print("\n2. The same command again, with nothing new:\n", file=out)
    bootstrap(options, reporter)
    commits = _commit_count(sandbox) - before
    requests, writes = our_requests(sandbox)
    print(file=out)
    line = (
        f"re-run: {commits} commits, {writes} write requests to the API server "
        f"({requests} requests in all), as counted by the sandbox"
    )
    (reporter.success if commits == 0 and writes == 0 else reporter.warning)(line)


def our_requests(sandbox: Sandbox, user: str = DEMO_USER) -> tuple[int, int]:
    """(requests, write requests) the API server answered for `user` since the last `reset_requests`."""
    records = [r for r in _kube(sandbox).requests if r.user == user]
    return len(records), sum(1 for r in records if r.is_write)


def _kube(sandbox: Sandbox) -> KubeApiServer:
    if sandbox.kube is None:
        raise RuntimeError("the sandbox runs without its Kubernetes API server")
    return sandbox.kube


def _report_sandbox(sandbox: Sandbox, reporter: TerminalReporter) -> None:
    reporter.success(
        f"Azure DevOps: {sandbox.org_url} (project {sandbox.project.name}, empty repository "
        f"{sandbox.repository.name}, a user with a PAT)"
    )
    if sandbox.ssh_url is not None:
        reporter.success(f"SSH endpoint: {sandbox.ssh_url}")
    else:
        reporter.warning("SSH endpoint not started (OpenSSH's sshd is not installed): the demo uses https anyway")
    if sandbox.kube is not None:
        reporter.success(f"Kubernetes API server: {sandbox.kube.url}")
    if sandbox.flux is not None:
        reporter.success("Flux controller simulator running")


def _command_line(sandbox: Sandbox) -> str:
    return (
        f"GIT_PASSWORD=<the sandbox PAT> flux-azdo bootstrap --url {sandbox.repo_url} --allow-insecure-http "
        f"--path {DEMO_PATH} --manifests <the bundled sample> --kubeconfig <a kubeconfig of its own user>"
    )


def _git(sandbox: Sandbox, *args: str) -> str:
    import subprocess

    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }
    return subprocess.run(
        ["git", "--git-dir", str(sandbox.repository.git_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout


def _commit_count(sandbox: Sandbox) -> int:
    if not _git(sandbox, "for-each-ref", "refs/heads/main").strip():
        return 0
    return int(_git(sandbox, "rev-list", "--count", "refs/heads/main"))


def _show_repository(sandbox: Sandbox, out: TextIO) -> None:
    print(f"Repository {sandbox.repository.name}, branch main:", file=out)
    for line in _git(sandbox, "log", "--format=%h %s", "refs/heads/main").splitlines():
        print(f"    {line}", file=out)
    for line in _git(sandbox, "ls-tree", "-r", "-l", "refs/heads/main").splitlines():
        meta, name = line.split("\t", 1)
        print(f"    {name}  ({meta.split()[3]} bytes)", file=out)
    sync_file = f"{DEMO_PATH}/flux-system/gotk-sync.yaml"
    print(f"\n{sync_file}:", file=out)
    for line in _git(sandbox, "show", f"refs/heads/main:{sync_file}").rstrip("\n").splitlines():
        print(f"    {line}", file=out)


def _show_cluster(sandbox: Sandbox, out: TextIO) -> None:
    """The two sync objects as `flux get all` lists them, read as the sandbox's administrator."""
    from flux_azdo.cluster.client import Cluster, ClusterAccess

    rows = [("NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE")]
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        for api_version, kind, field in (
            ("source.toolkit.fluxcd.io/v1", "GitRepository", "artifact"),
            ("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "lastAppliedRevision"),
        ):
            obj = cluster.get(api_version, kind, "flux-system", "flux-system") or {}
            status = obj.get("status") or {}
            revision = status.get(field) or ""
            if isinstance(revision, dict):
                revision = revision.get("revision", "")
            ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            suspended = str(bool((obj.get("spec") or {}).get("suspend"))).lower()
            rows.append(
                (
                    f"{kind.lower()}/flux-system",
                    str(revision),
                    suspended,
                    str(ready.get("status", "Unknown")),
                    str(ready.get("message", "")),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print("\nCluster (namespace flux-system):", file=out)
    for row in rows:
        print(
            "    " + "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4],
            file=out,
        )


@contextlib.contextmanager
def _sdk_cache(directory: Path) -> Iterator[None]:
    """The azure-devops SDK's location cache in `directory` for the block (it holds the sandbox's ports)."""
    previous = os.environ.get(_SDK_CACHE_VARIABLE)
    os.environ[_SDK_CACHE_VARIABLE] = str(directory)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_SDK_CACHE_VARIABLE, None)
        else:
            os.environ[_SDK_CACHE_VARIABLE] = previous


# ----- `flux-azdo demo --task DIR`: the Azure Pipelines task through the sandbox's simulated agent -----------------

#: The step's reference name in the YAML (`name: flux`): output variables read as $(flux.result).
STEP_NAME = "flux"
#: The Kubernetes service connection's name in the YAML step (its id is what the agent hands the task).
CONNECTION_NAME = "sandbox-cluster"
#: The cluster user the task runs as (its kubeconfig is the service connection).
PIPELINE_USER = "flux-azdo-pipeline"
#: The secret variable that holds the cluster's Git credential (`clusterPat: $(clusterPat)`).
PAT_VARIABLE = "clusterPat"
#: Where `make task-demo` stages the task (the Makefile's TASK_DEMO_ROOT) and how to get a staged folder.
TASK_DEMO_FOLDER = "build/task-demo/FluxBootstrapV1"
_TASK_FIX = f"pass a staged task folder: `make task-demo` stages one in {TASK_DEMO_FOLDER} (or unpack the .vsix)"


def seed_sample_distribution(cache_home: Path) -> None:
    """flux-azdo's OCI layer cache under `cache_home` (XDG_CACHE_HOME) holding the bundled sample as ghcr.io's Flux
    manifests at the sample's version: a task asking for that version finds it there and needs no network, as on
    a warm offline agent."""
    import hashlib

    from flux_azdo.registry.cache import LayerCache
    from flux_azdo.registry.oci import DEFAULT_MANIFESTS_REPOSITORY, OciRepository
    from flux_azdo.sandbox import SAMPLE_VERSION, sample_distribution_path

    with sample_distribution_path() as path:
        data = path.read_bytes()
    repository = OciRepository.parse(DEFAULT_MANIFESTS_REPOSITORY)
    cache = LayerCache(cache_home / "flux-azdo" / "flux-manifests")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    cache.put(repository.registry, repository.repository, SAMPLE_VERSION, digest, data)


def run_task_demo(task_dir: Path, out: TextIO) -> int:
    """The task demo; 0 when both runs succeed (changed, then unchanged) with no secret readable."""
    from flux_azdo.console import TerminalReporter
    from flux_azdo.git.folders import PrivateFolder

    task_dir = _task_folder(task_dir)
    reporter = TerminalReporter(out)
    demo_folder = PrivateFolder("flux-azdo-demo-")
    try:
        succeeded = _task_demo(task_dir, demo_folder.path, out, reporter)
    finally:
        demo_folder.remove()
    reporter.success(f"sandbox stopped, {demo_folder.path} removed: nothing is left running or on disk")
    return 0 if succeeded else 1


def _task_folder(task_dir: Path) -> Path:
    """The task folder, checked before anything starts: a user mistake is one line. The folder must be a staged
    task (task.json, launcher.js and python/ with its index), and its staged flux_azdo must be task.json's version:
    a folder staged before the last change would show old behaviour as if it were the current one."""
    import shutil

    from flux_azdo.errors import UserError

    if not task_dir.exists():
        raise UserError(f"--task {task_dir} does not exist", fix=_TASK_FIX)
    for name in ("task.json", "launcher.js"):
        if not (task_dir / name).is_file():
            raise UserError(f"--task {task_dir} holds no {name}", fix=_TASK_FIX)
    if not (task_dir / "python" / "runtimes.json").is_file():
        raise UserError(
            f"--task {task_dir} is the task's source, not a staged task",
            fix=f"run `make task-demo` (it stages {TASK_DEMO_FOLDER} and runs this demo), or unpack the .vsix",
        )
    declared, staged = _task_versions(task_dir)
    if declared != staged:
        raise UserError(
            f"--task {task_dir} is stale (task.json {declared}, staged flux_azdo {staged or 'missing'})",
            fix="re-stage with make task-demo",
        )
    staged_for = _staged_runtimes(task_dir)
    this = _runtime_key()
    if staged_for and this not in staged_for:
        # Refused here: the task's own advice (a UsePythonVersion@0 version, "or newer") is for a release folder
        # that carries every supported CPython, not for one staged for a single interpreter.
        raise UserError(
            f"--task {task_dir} was staged for {', '.join(_interpreter(k) for k in staged_for)} only, not for this "
            f"{_interpreter(this)}",
            fix="run the demo with the flux-azdo of the environment that staged it, or stage it for this Python: "
            f"python task/stage.py --from-venv --out {task_dir.parent}",
        )
    if shutil.which("node") is None:
        raise UserError("node is not on PATH", fix="install Node.js 20 or newer: the agent runs the task with it")
    return task_dir.resolve()


def _staged_runtimes(task_dir: Path) -> list[str]:
    """The interpreters python/runtimes.json carries packages for (keys as task_entry.py computes them, e.g.
    cp311-linux-x86_64); none when the index cannot be read (the task then reports the damage itself)."""
    import json

    try:
        runtimes = json.loads((task_dir / "python" / "runtimes.json").read_text(encoding="utf-8")).get("runtimes")
    except (OSError, ValueError, AttributeError):
        return []
    return sorted(str(key) for key in runtimes) if isinstance(runtimes, dict) else []


def _runtime_key() -> str:
    """This interpreter's key in runtimes.json, computed as task_entry.py computes it (its base interpreter runs the
    task and has the same version, ABI and platform)."""
    machine = os.uname().machine.lower() if hasattr(os, "uname") else ""
    machine = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    threading = "t" if "t" in getattr(sys, "abiflags", "") else ""
    implementation = "cp" if sys.implementation.name == "cpython" else sys.implementation.name
    return f"{implementation}{sys.version_info[0]}{sys.version_info[1]}{threading}-{sys.platform}-{machine}"


def _interpreter(key: str) -> str:
    """`CPython 3.11 (cp311-linux-x86_64)` for a runtimes.json key."""
    import re

    match = re.match(r"^cp(\d)(\d+)(t?)-", key)
    if match is None:
        return key
    return f"CPython {match[1]}.{match[2]}{' free-threaded' if match[3] else ''} ({key})"


def _task_versions(task_dir: Path) -> tuple[str, str]:
    """(task.json's version, the staged `flux_azdo.__version__`), read as text: the staged package is not imported
    (it may be built for another interpreter)."""
    import json
    import re

    try:
        version = json.loads((task_dir / "task.json").read_text(encoding="utf-8"))["version"]
        declared = f"{version['Major']}.{version['Minor']}.{version['Patch']}"
    except (OSError, ValueError, KeyError, TypeError):
        declared = "unreadable"
    try:
        source = (task_dir / "python" / "lib" / "flux_azdo" / "__init__.py").read_text(encoding="utf-8")
    except OSError:
        return declared, ""
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", source, re.M)
    return declared, match.group(1) if match else ""


def _task_demo(task_dir: Path, folder: Path, out: TextIO, reporter: TerminalReporter) -> bool:
    from flux_azdo.sandbox.runtime import Sandbox, SandboxOptions

    print(
        "flux-azdo demo --task: the FluxBootstrap@1 pipeline task, run by a simulated agent, on this machine.", file=out
    )
    print("Everything runs on 127.0.0.1; the Flux manifests are the bundled sample: Flux's shape, not Flux.", file=out)
    print(file=out)
    reporter.action(f"starting the sandbox in {folder}")
    # A PAT and the job token are all this step needs: no SSH endpoint, no Azure (Entra ID, ARM).
    sandbox = Sandbox(folder / "sandbox", SandboxOptions(ssh=False))
    started = False
    try:  # one try from before start() to the end, as in _demo
        _start_sandbox(sandbox)
        started = True
        reporter.success(
            f"Azure DevOps: {sandbox.org_url} (project {sandbox.project.name}, empty repository "
            f"{sandbox.repository.name}, a user with a PAT, the project's build service with a job token)"
        )
        reporter.success(f"Kubernetes API server: {_kube(sandbox).url}")
        if sandbox.flux is not None:
            reporter.success("Flux controller simulator running")
        return _run_step_twice(sandbox, task_dir, folder, out, reporter)
    finally:
        if started:
            reporter.action("stopping the sandbox")
        sandbox.stop()


def _run_step_twice(sandbox: Sandbox, task_dir: Path, folder: Path, out: TextIO, reporter: TerminalReporter) -> bool:
    from flux_azdo.sandbox.pipelines_agent import SimulatedAgent, agent_process_environment

    _let_the_build_service_push(sandbox)
    reporter.success(
        f"the build service may push to {sandbox.repository.name} (Contribute, Create branch), "
        "as a project administrator grants it"
    )
    endpoint, cluster_token = _cluster_connection(sandbox, folder / "pipeline.kubeconfig")
    reporter.success(f"Kubernetes service connection {CONNECTION_NAME}: a kubeconfig for the user {PIPELINE_USER}")

    agent_folder = folder / "agent"
    seed_sample_distribution(agent_folder / "cache")
    environ = agent_process_environment(agent_folder / "home", agent_folder / "cache", sandbox)
    (agent_folder / "tmp").mkdir()
    environ.update(
        # python3 is this interpreter's base, as after UsePythonVersion@0; temp files and the SDK's location cache
        # stay in the demo's folder.
        PATH=_task_path(agent_folder / "bin", environ["PATH"]),
        TMPDIR=str(agent_folder / "tmp"),
        AZURE_DEVOPS_CACHE_DIR=str(agent_folder / "sdk-cache"),
    )
    agent = SimulatedAgent(task_dir, agent_folder / "work", sandbox, base_env=environ)
    step = _task_step(sandbox, endpoint)
    print(
        f"\nThe pipeline's step (azure-pipelines.yml), with the secret variable {PAT_VARIABLE} = the PAT:\n", file=out
    )
    for line in _step_yaml(step):
        print(f"    {line}", file=out)
    print(
        "\nEach run's log is shown as the agent's log view shows it: ##vso commands interpreted, groups folded "
        "open (▼),\nissues as Warning:/Error:, anything registered as a secret as ***. The step's progress and "
        "completion\nmessage are not in the agent's log: the step's result follows it. Two warnings are expected: "
        "the PAT is\nstored in the cluster, and the sample is no Flux release.",
        file=out,
    )
    secrets = (sandbox.job_token, sandbox.pat, cluster_token)

    print("\n1. The job runs the step:\n", file=out)
    first = _run_step(agent, step, endpoint, sandbox, out)
    if not _reported(first, "changed", secrets, reporter):
        return False
    print("\n2. The same step again (a re-run of the pipeline), with nothing new:\n", file=out)
    second = _run_step(agent, step, endpoint, sandbox, out)
    return _reported(second, "unchanged", secrets, reporter)


def _task_path(bin_folder: Path, path: str) -> str:
    """PATH for the task: a private `bin_folder` whose python3 (and python) is the base interpreter of this one, in
    front of `path` without this interpreter's own folder. A virtual environment's interpreter would bring its
    site-packages along and fill gaps in the staged folder; the base interpreter sees only what the task stages."""
    base = Path(getattr(sys, "_base_executable", "") or sys.executable)
    bin_folder.mkdir(parents=True, exist_ok=True)
    for name in ("python3", "python"):
        (bin_folder / name).symlink_to(base)
    # A virtual environment's bin/ (on PATH when it is activated) goes; a plain interpreter's folder stays (/usr/bin
    # holds git and node too).
    own = {str(Path(sys.prefix) / "bin")} if sys.prefix != sys.base_prefix else set()
    kept = [entry for entry in path.split(os.pathsep) if entry and entry.rstrip("/") not in own]
    return os.pathsep.join([str(bin_folder), *kept])


def _let_the_build_service_push(sandbox: Sandbox) -> None:
    from flux_azdo.sandbox.azure_devops.security import GitPermission, repository_token

    token = repository_token(sandbox.project.id, sandbox.repository.id)
    sandbox.world.allow(
        sandbox.build_service, token, int(GitPermission.GENERIC_CONTRIBUTE | GitPermission.CREATE_BRANCH)
    )


def _cluster_connection(sandbox: Sandbox, kubeconfig: Path) -> tuple[Endpoint, str]:
    """A Kubernetes service connection (kind KubeConfig) for a cluster user of its own, and that user's token."""
    import uuid

    from flux_azdo.sandbox.kube import AccessRule
    from flux_azdo.sandbox.pipelines_agent import kubeconfig_endpoint

    kube = _kube(sandbox)
    token = kube.add_user(PIPELINE_USER, [AccessRule(verbs=("*",))])
    kube.write_kubeconfig(kubeconfig, token=token)
    text = kubeconfig.read_text(encoding="utf-8")
    kubeconfig.unlink()  # the connection holds it now, as Azure DevOps would
    return kubeconfig_endpoint(text, endpoint_id=str(uuid.uuid4())), token


def _task_step(sandbox: Sandbox, endpoint: Endpoint) -> dict[str, object]:
    """The step's inputs as the agent receives them: the connection's name resolved to its id, $(clusterPat)
    expanded (the agent expands macros, secret variables included)."""
    from flux_azdo.sandbox import SAMPLE_VERSION

    return {
        "connectionType": "kubernetesServiceConnection",
        "kubernetesServiceConnection": endpoint.id,
        "repositoryUrl": sandbox.repository.name,
        "allowInsecureHttp": True,
        "gitAuth": "jobToken",
        "clusterAuth": "pat",
        PAT_VARIABLE: sandbox.pat,
        "path": DEMO_PATH,
        "fluxVersion": SAMPLE_VERSION,
    }


def _step_yaml(step: dict[str, object]) -> list[str]:
    comments = {
        "kubernetesServiceConnection": "# the service connection's name",
        "allowInsecureHttp": "# the sandbox serves git over http",
        "gitAuth": "# the push: the job's own token",
        "clusterAuth": "# the cluster's Git credential: a PAT",
        "fluxVersion": "# the bundled sample, from the agent's cache",
    }
    shown = {
        **step,
        "kubernetesServiceConnection": CONNECTION_NAME,
        PAT_VARIABLE: f"$({PAT_VARIABLE})",
    }
    lines = ["- task: FluxBootstrap@1", f"  name: {STEP_NAME}", "  inputs:"]
    for name, value in shown.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        lines.append(f"    {name}: {text}  {comments.get(name, '')}".rstrip())
    return lines


def _run_step(
    agent: SimulatedAgent, step: dict[str, object], endpoint: Endpoint, sandbox: Sandbox, out: TextIO
) -> AgentRun:
    """One run of the step, its log shown live as the agent's log view shows it, then what the job keeps."""
    from flux_azdo.sandbox.pipelines_agent import AgentLog, display_name, task_header

    name = display_name(agent.task, step)
    log = AgentLog()
    for line in task_header(agent.task, name):
        print(f"    {line}", file=out)

    def show(line: str) -> None:
        for text in log.feed(line):
            print(f"    {text}", file=out)
        out.flush()

    run = agent.run(step, endpoints=[endpoint], secret_variables={PAT_VARIABLE: sandbox.pat}, on_line=show)
    for text in log.close():
        print(f"    {text}", file=out)
    print(f"    Finishing: {name}", file=out)
    # The agent's log holds neither task.setprogress nor task.complete's message: they go to the step's record.
    message = run.masked(run.result_message)
    print(f"\n  Step result: {run.step_result}" + (f" — {message}" if message else ""), file=out)
    _show_outputs(agent, run, out)
    path = run.summary_path
    if path is not None:
        print(f"\n  Summary tab ({path.name}):", file=out)
        for line in run.masked(run.summary).rstrip("\n").splitlines() or ["(empty)"]:
            print(f"    {line}".rstrip(), file=out)
    print(file=out)
    return run


#: What an empty output variable means, for those where it means something.
_EMPTY_OUTPUTS = {"componentsCommit": "(empty: no new commit)", "syncCommit": "(empty: no new commit)"}


def _show_outputs(agent: SimulatedAgent, run: AgentRun, out: TextIO) -> None:
    """The step's output variables as later steps read them, task.json's order first; nothing when none was set."""
    declared = [item["name"] for item in agent.task.get("outputVariables", [])]
    outputs = run.outputs
    names = [v for v in declared if v in outputs] + [v for v in outputs if v not in declared]
    if not names:
        return
    print(f"\n  Output variables (step {STEP_NAME}):", file=out)
    for variable in names:
        value = run.masked(outputs[variable]) or _EMPTY_OUTPUTS.get(variable, "(empty)")
        print(f"    $({STEP_NAME}.{variable}) = {value}", file=out)


def _reported(run: AgentRun, expected: str, secrets: tuple[str, ...], reporter: TerminalReporter) -> bool:
    """Say how the step ended; True when it succeeded with `result=expected` and no secret is readable."""
    result = run.outputs.get("result", "")
    if run.step_result != "Succeeded" or result != expected:
        message = run.masked(run.result_message) or f"exit code {run.exit_code}"
        reporter.failure(f"the step ended {run.step_result} with result={result or '(none)'}: {message}")
        return False
    leaks = run.leaks(secrets)
    if leaks:
        reporter.failure("a secret is readable in the step's log or summary: " + "; ".join(leaks))
        return False
    reporter.success(f"FluxBootstrap@1 {run.step_result}: result={result}; {run.masked(run.result_message)}")
    reporter.success("no secret readable in the log or the summary (the job token, the PAT, the cluster's token)")
    return True
