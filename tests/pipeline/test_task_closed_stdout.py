"""A stdout that its reader closes while the task runs (the agent or a pipe went away) ends the run quietly.

The staged task's Python entry runs as the launcher starts it (`python -u -I task_entry.py`), its stdout a pipe.
The cluster's user is an exec credential plugin that holds the run at a known point, after the run's private
folder exists: once the plugin runs, the test closes its end of the pipe, and only then lets the plugin answer.
Every later line the task writes fails with EPIPE. Python's advice (the signal module's note on SIGPIPE) is to
point stdout at devnull and exit: no traceback on stderr, the run's folder removed all the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.agent import SAMPLE_VERSION, seed_distribution_cache
from support.task import staged_task_folder

#: Bounds that only stop a broken run from hanging the suite (no timing is asserted).
HANG = 120.0

#: An exec credential plugin: records what the agent's temp folder holds, waits for the test's go, answers a token.
PLUGIN = """
import json, os, sys, time
temp, listing, go = sys.argv[1:4]
with open(listing, "w", encoding="utf-8") as file:
    file.write("\\n".join(sorted(os.listdir(temp))))
deadline = time.monotonic() + 120
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": "a-token-nobody-checks"}}))
"""


def kubeconfig(plugin: Path, temp: Path, listing: Path, go: Path) -> str:
    user = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(plugin), str(temp), str(listing), str(go)],
        "interactiveMode": "Never",
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
            "users": [{"name": "u", "user": {"exec": user}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
    )


def test_a_stdout_closed_by_its_reader_ends_the_run_without_a_traceback_and_removes_its_files(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    entry = staged_task_folder(tmp_path_factory) / "task_entry.py"
    temp, cache, home = tmp_path / "_temp", tmp_path / "cache", tmp_path / "home"
    for folder in (temp, home):
        folder.mkdir()
    seed_distribution_cache(cache)
    plugin, listing, go = tmp_path / "plugin.py", tmp_path / "listing", tmp_path / "go"
    plugin.write_text(PLUGIN, encoding="utf-8")
    (tmp_path / "kubeconfig").write_text(kubeconfig(plugin, temp, listing, go), encoding="utf-8")
    environ = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(cache),
        "SYSTEM_COLLECTIONURI": "http://127.0.0.1:9/org/",
        "SYSTEM_TEAMPROJECT": "platform",
        "AGENT_TEMPDIRECTORY": str(temp),
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "the-job-token-0123456789",
        "INPUT_ACTION": "check",
        "INPUT_CONNECTIONTYPE": "kubeconfigFile",
        "INPUT_KUBECONFIG": str(tmp_path / "kubeconfig"),
        "INPUT_REPOSITORYURL": "fleet-infra",
        "INPUT_ALLOWINSECUREHTTP": "true",
        "INPUT_CLUSTERPAT": "the-cluster-pat-0123456789",
        "INPUT_FLUXVERSION": SAMPLE_VERSION,
        "INPUT_TIMEOUT": "20s",
    }
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-u", "-I", str(entry)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=environ,
            cwd=tmp_path,
            text=True,
        )
        try:
            assert process.stdout is not None
            first = ""
            for line in process.stdout:
                if "##vso[task.setsecret]" not in line:
                    first = line
                    break
            assert first.startswith("flux-azdo "), first
            deadline = time.monotonic() + HANG
            while not listing.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # the plugin runs: the run's folder exists
            assert listing.exists(), "the plugin never ran"
            process.stdout.close()  # the reader goes away
            go.touch()
            code = process.wait(HANG)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    errors = stderr_path.read_text(encoding="utf-8")
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
    assert code == 1
    held = listing.read_text(encoding="utf-8").split("\n")
    assert [name for name in held if name.startswith("flux-azdo-")], "the plugin ran inside the run"
    assert list(temp.iterdir()) == []
