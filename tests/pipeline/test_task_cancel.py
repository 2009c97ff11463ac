"""Cancelling `FluxBootstrap@1` while it runs: the agent's first signal is SIGINT to node, which the launcher passes
on to Python.

The cluster of the service connection is a socket that accepts and never answers, so the bootstrap is certainly
still waiting on it when the signal comes. The step must end on that first signal alone (no SIGTERM, no kill):
exit code 130, no `task.complete` (the agent records the step as cancelled, never as succeeded), the run's private
folder under AGENT_TEMPDIRECTORY (the kubeconfig with the service connection's token) removed, no secret in the
log, and nothing of the task left running.

The run is started as `SimulatedAgent.run` starts it (its environment, its `node <launcher>` command, the sources
folder, a process group of its own), but without the agent's end of step: that kills whatever outlives node, which
would hide a process the task left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.sandbox.pipelines_agent import live_processes
from flux_azdo.sandbox.runtime import Sandbox
from support.agent import SAMPLE_VERSION, Endpoint, SimulatedAgent, parse_run, pipeline_sandbox, task_step
from support.processes import silent_listener

#: Bounds that only stop a broken run from hanging the suite (no timing is asserted).
HANG = 120.0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Azure DevOps for the push's preflight; the cluster is the silent listener, so no Flux simulator."""
    with pipeline_sandbox(tmp_path_factory.mktemp("sandbox"), flux=False) as running:
        yield running


class Output:
    """The task's output (stdout and stderr as one stream, as the agent reads it), read by a thread as it comes;
    `first_group` is set at the first `##[group]` line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.first_group = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("##[group]"):
                self.first_group.set()

    def text(self) -> str:
        self._thread.join(HANG)
        return "".join(line + "\n" for line in self.lines)


def descendants(root: int) -> set[int]:
    """The living (not zombie) processes below `root`, whatever their process group or session (git starts in a
    session of its own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def test_sigint_while_the_cluster_does_not_answer_ends_the_step_with_130_and_removes_the_runs_files(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    with silent_listener() as (listener, port):
        silent = dataclasses.replace(endpoint, url=f"https://127.0.0.1:{port}")
        step = task_step(sandbox, silent, clusterPat=sandbox.pat, path="clusters/sandbox", fluxVersion=SAMPLE_VERSION)
        environ, temp = agent.environment(step, endpoints=[silent], secret_variables={"clusterPat": sandbox.pat})
        process = subprocess.Popen(
            agent.command(),
            cwd=agent.sources,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        task: set[int] = set()
        connection = None
        try:
            output = Output(process)
            assert output.first_group.wait(HANG), "the task printed no group"
            listener.settimeout(HANG)
            connection, _ = listener.accept()  # the bootstrap is waiting for the cluster now
            task = descendants(process.pid)
            assert task, "node started no Python"
            private = [p.name for p in temp.iterdir() if p.is_dir() and p.name.startswith("flux-azdo-")]
            assert len(private) == 1, sorted(p.name for p in temp.iterdir())
            assert (temp / private[0] / "kubernetes").exists()  # the connection's kubeconfig, with its token

            os.kill(process.pid, signal.SIGINT)  # the agent's first signal goes to node only
            exit_code = process.wait(HANG)
            left = {pid for pid in task if alive(pid)}
            in_group = live_processes(process.pid)
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for pid in task:
                if alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if connection is not None:
                connection.close()

    run = parse_run(exit_code, output.text(), "", temp)
    assert exit_code == 130, run.stdout
    assert run.named("task.complete") == []  # cancelled: never Succeeded, nor Failed by the task
    assert any("interrupted (SIGINT)" in line for line in run.lines), run.stdout
    assert run.leftovers() == []  # the private folder and the kubeconfig in it are gone
    assert list(temp.iterdir()) == []  # and no summary either: the run did not conclude
    assert left == set() and in_group == [], (left, in_group)
    assert run.leaks([sandbox.job_token, sandbox.pat, cluster_token]) == []
    assert run.stdout.startswith("##vso[task.setsecret]")  # the secrets were registered before anything else
