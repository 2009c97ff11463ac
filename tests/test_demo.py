"""`flux-azdo demo` as a new user runs it (`make demo`): a real process, an empty HOME, no credentials, no network.
`flux-azdo demo --task DIR` (`make task-demo`) is the same for the pipeline task, on the session's staged task.

The demo starts the sandbox, bootstraps Flux into it twice and takes it all down again. These tests read what a
user reads (its output) and then look for what it could have left behind: its folder, files in HOME or the temp
folder, processes (sshd, git, the servers' threads die with the process, sshd does not). Ctrl-C and SIGTERM in the
middle of the bootstrap must clean up the same way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.leftovers import live_pids, wait_for_cleanup
from support.processes import started
from support.task import staged_task_folder

#: Variables that would point the demo at something other than its own sandbox, or hand it a credential.
FOREIGN_VARIABLES = (
    "GIT_PASSWORD",
    "AZURE_DEVOPS_EXT_PAT",
    "SYSTEM_ACCESSTOKEN",
    "KUBECONFIG",
    "AZURE_DEVOPS_CACHE_DIR",
)
#: A sandbox PAT: 52 characters of base32 (sandbox/world.py `issue_pat`).
PAT = re.compile(r"\b[a-z2-7]{52}\b")
RERUN = re.compile(r"^✔ re-run: 0 commits, 0 write requests to the API server \((\d+) requests in all\)", re.M)
FIRST_RUN = re.compile(r"^That run: 2 commits; (\d+) requests to the API server, (\d+) of them writes\.$", re.M)
STARTING = re.compile(r"^► starting the sandbox in (\S+)$", re.M)


def demo_command(*args: str) -> list[str]:
    """`flux-azdo` as `make demo` runs it (the venv's script), else the module."""
    script = Path(sys.executable).with_name("flux-azdo")
    command = [str(script), "demo"] if script.exists() else [sys.executable, "-m", "flux_azdo", "demo"]
    return [*command, *args]


def fresh_environment(tmp_path: Path) -> dict[str, str]:
    """A new user's: empty HOME and temp folder (both checked afterwards), no credential, git isolated."""
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    env = {name: value for name, value in os.environ.items() if name not in FOREIGN_VARIABLES}
    env.update(
        HOME=str(home),
        TMPDIR=str(temp),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    return env


def assert_nothing_left(tmp_path: Path, before: set[int], folder: str) -> None:
    assert not Path(folder).exists()
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == []
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "home").rglob("*")) == []
    processes, _ = wait_for_cleanup(before, str(tmp_path))
    assert processes == []


def completed_demo(tmp_path: Path, *args: str) -> tuple[str, str]:
    """The demo run to its end with a fresh environment: its output (it succeeded and said nothing on stderr)
    and the sandbox folder it said it started in."""
    demo = subprocess.run(
        demo_command(*args),
        capture_output=True,
        text=True,
        env=fresh_environment(tmp_path),
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert demo.stderr == ""
    starting = STARTING.search(demo.stdout)
    assert starting is not None
    return demo.stdout, starting.group(1)


def assert_interrupted_cleanly(
    tmp_path: Path, command: list[str], until: str, number: int, code: int, said: str
) -> None:
    """The demo signalled (`number`) once a line starts with `until`: it exits with `code`, its last error line
    is `said`, it stops the sandbox, and nothing of it is left."""
    before = live_pids()
    seen: list[str] = []
    with started(command, stdin=subprocess.DEVNULL, env=fresh_environment(tmp_path)) as process:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if line.startswith(until):
                break
        process.send_signal(number)
        rest, err = process.communicate(timeout=120)
    out = "".join(seen) + rest

    assert process.returncode == code, out + err
    assert err.splitlines()[-1] == said
    assert "► stopping the sandbox" in out
    starting = STARTING.search(out)
    assert starting is not None
    assert_nothing_left(tmp_path, before, starting.group(1))


def test_the_demo_bootstraps_flux_shows_the_result_and_a_rerun_that_changes_nothing_then_cleans_up(
    tmp_path: Path,
) -> None:
    before = live_pids()
    out, folder = completed_demo(tmp_path)

    lines = out.splitlines()
    for line in (
        "✔ Flux controller simulator running",
        '✔ committed component manifests to "main"',
        '✔ committed sync manifests to "main"',
        "✔ installed components",
    ):
        assert sum(1 for text in lines if text.startswith(line)) == 1, line
    for line in (
        "✔ preflight checks passed",
        "✔ GitRepository reconciled successfully",
        "✔ Kustomization reconciled successfully",
        "✔ all components are healthy",
    ):
        assert sum(1 for text in lines if text.startswith(line)) == 2, line
    rerun = out.index("2. The same command again")
    assert "✔ component manifests are up to date" in out[rerun:]
    assert "✔ sync manifests are up to date" in out[rerun:]
    assert "committed" not in out[rerun:]

    for name in ("gotk-components.yaml", "gotk-sync.yaml", "kustomization.yaml"):
        assert f"    clusters/demo/flux-system/{name}  (" in out
    assert "      path: ./clusters/demo" in out  # gotk-sync.yaml as committed
    head = re.search(r"^    ([0-9a-f]{7,}) Add Flux sync manifests$", out, re.M)
    assert head is not None
    for kind in ("gitrepository", "kustomization"):
        row = next(line for line in lines if line.startswith(f"    {kind}/flux-system"))
        assert f"main@sha1:{head.group(1)}" in row and "  false  " in row and "  True  " in row

    first = FIRST_RUN.search(out)
    assert first is not None and int(first.group(2)) > 0, "the first run writes: the re-run's 0 could be wrong"
    second = RERUN.search(out)
    assert second is not None and int(second.group(1)) > 0, "the re-run reads the cluster"
    assert lines[-1] == f"✔ sandbox stopped, {folder} removed: nothing is left running or on disk"
    assert "<the sandbox PAT>" in out and PAT.search(out) is None
    assert_nothing_left(tmp_path, before, folder)


@pytest.mark.parametrize(
    ("number", "code", "said"),
    [(signal.SIGINT, 130, "✗ interrupted"), (signal.SIGTERM, 143, "✗ stopped by SIGTERM")],
    ids=["ctrl-c", "sigterm"],
)
def test_interrupting_the_demo_during_the_bootstrap_still_stops_the_sandbox_and_removes_its_folder(
    tmp_path: Path, number: int, code: int, said: str
) -> None:
    # inside the first bootstrap, the sandbox up
    assert_interrupted_cleanly(tmp_path, demo_command(), "► cloning", number, code, said)


@pytest.fixture(scope="module")
def staged_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's task folder, staged offline for this interpreter as `make task-demo` stages it."""
    return staged_task_folder(tmp_path_factory)


#: A job token: the sandbox's fake JWT (sandbox/world.py `issue_job_token`).
JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
SHA = re.compile(r"^[0-9a-f]{40}$")


def test_the_task_demo_runs_the_pipeline_step_twice_changed_then_unchanged_and_shows_what_the_job_keeps(
    tmp_path: Path, staged_task: Path
) -> None:
    before = live_pids()
    out, folder = completed_demo(tmp_path, "--task", str(staged_task))

    rerun = out.index("2. The same step again")
    first, second = out[:rerun], out[rerun:]
    assert "    - task: FluxBootstrap@1" in first and "        clusterPat: $(clusterPat)" in first
    # The agent's view of the log: its header, groups with the progress, issues, no raw logging command.
    assert "    Starting: Flux bootstrap fleet-infra" in first
    assert re.search(r"^    ▼ generating component manifests$", first, re.M)
    assert "      Warning: the PAT given for the cluster will be stored in the cluster" in first
    assert "##vso[" not in out and "##[" not in out
    # The two results, and the output variables of each run.
    assert "✔ FluxBootstrap@1 Succeeded: result=changed;" in first
    assert "✔ FluxBootstrap@1 Succeeded: result=unchanged;" in second
    variables = dict(re.findall(r"^    \$\(flux\.(\w+)\) = (.*)$", first, re.M))
    assert variables["result"] == "changed" and variables["fluxVersion"] == "v0.0.0-sample"
    assert SHA.match(variables["componentsCommit"]) and SHA.match(variables["syncCommit"])
    assert variables["repositoryUrl"].endswith("/sandbox-org/platform/_git/fleet-infra")
    again = dict(re.findall(r"^    \$\(flux\.(\w+)\) = ?(.*)$", second, re.M))
    no_commit = "(empty: no new commit)"
    assert (again["result"], again["componentsCommit"], again["syncCommit"]) == ("unchanged", no_commit, no_commit)
    # The summary tab: the Markdown the task uploaded, with a link to the sync commit.
    assert re.search(r"^  Summary tab \(flux-azdo-summary-bootstrap-[0-9a-f]+\.md\):$", first, re.M)
    assert f"/commit/{variables['syncCommit']})" in first
    assert second.count("Summary tab (flux-azdo-summary-bootstrap-") == 1
    # No secret in anything the user reads.
    assert PAT.search(out) is None and JWT.search(out) is None
    assert out.count("✔ no secret readable in the log or the summary") == 2
    assert out.splitlines()[-1] == f"✔ sandbox stopped, {folder} removed: nothing is left running or on disk"
    assert_nothing_left(tmp_path, before, folder)


def test_interrupting_the_task_demo_cancels_the_step_and_stops_the_sandbox(tmp_path: Path, staged_task: Path) -> None:
    # the task runs: node, Python, the sandbox all up
    command = demo_command("--task", str(staged_task))
    assert_interrupted_cleanly(tmp_path, command, "    ▼ cloning", signal.SIGINT, 130, "✗ interrupted")


def test_the_task_demo_with_a_folder_that_is_no_task_says_how_to_get_one(tmp_path: Path) -> None:
    demo = subprocess.run(
        demo_command("--task", str(tmp_path)),
        capture_output=True,
        text=True,
        env=fresh_environment(tmp_path),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )

    assert demo.returncode == 1
    assert demo.stdout == ""
    assert demo.stderr.splitlines() == [
        f"✗ --task {tmp_path} holds no task.json: pass a staged task folder: `make task-demo` stages one in "
        "build/task-demo/FluxBootstrapV1 (or unpack the .vsix)"
    ]
