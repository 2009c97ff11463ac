"""`flux-azdo demo`: a real bootstrap on this machine, then the same command again to show it changes nothing.

A new user should see what flux-azdo does without an Azure DevOps organisation, a cluster or the internet. So
the demo starts the sandbox (a local Azure DevOps with git over HTTP and SSH, a Kubernetes API server and a Flux
controller simulator, all on 127.0.0.1) in a temporary folder, runs the product's own bootstrap against it with
the sandbox user's PAT and the bundled sample distribution, shows what landed in the repository and the cluster,
and runs the same bootstrap again: the re-run's commit and write counts come from the sandbox (the repository and
the API server's request log), not from what the bootstrap says about itself. Everything is stopped and removed at
the end, also after a failure, Ctrl-C or SIGTERM (`cli.main` turns those into exceptions, so `finally` runs).

Only the demo, `flux-azdo sandbox` and the tests may import `flux_azdo.sandbox`; `bootstrap_options` is public
because benchmarks/run.py drives the same bootstrap.
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
        "sandbox and remove the folder.",
    )
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
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
