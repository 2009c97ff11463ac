"""`flux-azdo demo --task DIR` with a folder that is not what it needs (one line each, before anything starts), and
with a stand-in task (the source's task.json, a launcher.js of its own) to show what the demo prints around the
agent's log: no progress in the log, the step's result after it, empty outputs said as such, no empty sections,
and a Python for the task that is not this virtual environment. The real task's demo is in tests/test_demo.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASK_SOURCE = REPO / "task" / "FluxBootstrapV1"
FIX = "pass a staged task folder: `make task-demo` stages one in build/task-demo/FluxBootstrapV1 (or unpack the .vsix)"

#: A task that runs like the real one from the agent's side: it asks for python3, logs a group, sets its progress,
#: output variables and result, `changed` on the job's first run and `unchanged` on the second.
STAND_IN_LAUNCHER = r"""
const cp = require('child_process');
const fs = require('fs');
const path = require('path');
const probe = cp.spawnSync('python3', ['-I', '-c', 'import sys; print(sys.prefix == sys.base_prefix)'],
                           { encoding: 'utf8' });
const marker = path.join(process.env.AGENT_WORKFOLDER, 'ran-once');
const first = !fs.existsSync(marker);
fs.writeFileSync(marker, '');
console.log('python3 is a base interpreter: ' + probe.stdout.trim());
console.log('PATH=' + process.env.PATH);
console.log('##vso[task.setprogress value=50]halfway');
console.log('##[group]working');
console.log('inside');
console.log('##[endgroup]');
console.log('##vso[task.setvariable variable=result;isoutput=true]' + (first ? 'changed' : 'unchanged'));
console.log('##vso[task.setvariable variable=syncCommit;isoutput=true]' + (first ? 'abc123' : ''));
console.log('##vso[task.complete result=Succeeded;]' + (first ? 'bootstrapped' : 'nothing to do'));
"""


def demo(task: Path, tmp_path: Path, *, path: str | None = None) -> subprocess.CompletedProcess[str]:
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(exist_ok=True)
    temp.mkdir(exist_ok=True)
    env = {name: value for name, value in os.environ.items() if name not in ("KUBECONFIG", "GIT_PASSWORD")}
    env.update(HOME=str(home), TMPDIR=str(temp), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    if path is not None:
        env["PATH"] = path
    script = Path(sys.executable).with_name("flux-azdo")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flux_azdo"]
    return subprocess.run(
        [*command, "demo", "--task", str(task)],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=240,
        check=False,
    )


def staged_stand_in(folder: Path, *, version: str | None = None) -> Path:
    """The source's task.json and the stand-in launcher, laid out as a staged task whose flux_azdo is `version`
    (default: task.json's)."""
    folder.mkdir(parents=True)
    shutil.copyfile(TASK_SOURCE / "task.json", folder / "task.json")
    (folder / "launcher.js").write_text(STAND_IN_LAUNCHER, encoding="utf-8")
    declared = json.loads((folder / "task.json").read_text(encoding="utf-8"))["version"]
    package = folder / "python" / "lib" / "flux_azdo"
    package.mkdir(parents=True)
    (folder / "python" / "runtimes.json").write_text("{}", encoding="utf-8")
    staged = version or f"{declared['Major']}.{declared['Minor']}.{declared['Patch']}"
    (package / "__init__.py").write_text(f'__version__ = "{staged}"\n', encoding="utf-8")
    return folder


def assert_one_line(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line]


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    assert_one_line(demo(missing, tmp_path), f"✗ --task {missing} does not exist: {FIX}")


def test_a_folder_without_task_json_names_the_staged_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    assert_one_line(demo(empty, tmp_path), f"✗ --task {empty} holds no task.json: {FIX}")


def test_the_tasks_source_is_not_a_staged_task(tmp_path: Path) -> None:
    assert_one_line(
        demo(TASK_SOURCE, tmp_path),
        f"✗ --task {TASK_SOURCE} is the task's source, not a staged task: run `make task-demo` (it stages "
        "build/task-demo/FluxBootstrapV1 and runs this demo), or unpack the .vsix",
    )


def test_a_stale_staged_task_is_refused(tmp_path: Path) -> None:
    stale = staged_stand_in(tmp_path / "stale" / "FluxBootstrapV1", version="0.0.1")
    declared = json.loads((stale / "task.json").read_text(encoding="utf-8"))["version"]
    current = f"{declared['Major']}.{declared['Minor']}.{declared['Patch']}"

    assert_one_line(
        demo(stale, tmp_path),
        f"✗ --task {stale} is stale (task.json {current}, staged flux_azdo 0.0.1): re-stage with make task-demo",
    )


def test_a_task_staged_for_another_interpreter_names_it_instead_of_the_tasks_advice(tmp_path: Path) -> None:
    """`make task-demo` stages for its own interpreter only: run with another Python, the task would fail with
    its advice for a release folder (a UsePythonVersion@0 version, "or newer"), which this folder cannot honour."""
    task = staged_stand_in(tmp_path / "other" / "FluxBootstrapV1")
    index = {"format": 1, "minimum": "3.9", "runtimes": {"cp39-linux-x86_64": []}}
    (task / "python" / "runtimes.json").write_text(json.dumps(index), encoding="utf-8")

    result = demo(task, tmp_path)

    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    this = f"CPython {sys.version_info[0]}.{sys.version_info[1]}"
    assert line.startswith(
        f"✗ --task {task} was staged for CPython 3.9 (cp39-linux-x86_64) only, not for this {this} (cp"
    ), line
    assert f"python task/stage.py --from-venv --out {task.parent}" in line
    assert "versionSpec" not in line and "or newer" not in line


def test_the_demo_shows_the_log_as_the_agent_does_and_the_result_after_it(tmp_path: Path) -> None:
    task = staged_stand_in(tmp_path / "staged" / "FluxBootstrapV1")
    venv_bin = str(Path(sys.prefix) / "bin")
    # As with an activated virtual environment: its bin/ first on PATH.
    result = demo(task, tmp_path, path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    first, second = out.split("2. The same step again")
    # The task's python3 is a base interpreter, and the virtual environment is not on its PATH.
    assert "    python3 is a base interpreter: True" in first
    task_path = re.search(r"^    PATH=(.*)$", first, re.M)
    assert task_path is not None and venv_bin not in task_path.group(1).split(os.pathsep)
    # The agent's log: the group, and neither the progress nor the completion message.
    assert "    ▼ working\n      inside\n" in first
    assert "%]" not in out and "halfway" not in out
    assert "    Finishing: " in first
    assert "\n  Step result: Succeeded — bootstrapped\n" in first
    assert "    $(flux.syncCommit) = abc123" in first
    # The re-run: an empty output said as such; no summary was uploaded, so no section for it.
    assert "\n  Step result: Succeeded — nothing to do\n" in second
    assert "    $(flux.syncCommit) = (empty: no new commit)" in second
    assert "Summary tab" not in out
