"""launcher.js run by node the way the agent runs it: which Python it picks, what it passes on, how it fails.

Each test works in a light copy of the staged task folder whose task_entry.py is a fake that reports what it got
(or waits for a signal); interpreters on a private PATH are small shell wrappers around this test's Python, or
fakes that claim an old version.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from support.processes import started
from support.task import light_copy, node_executable, staged_task

__all__ = ["staged_task"]

FAKE_ENTRY = """\
import json, os, signal, sys, time
if os.environ.get("FAKE_MODE") == "wait":
    def stop(number, frame):
        print("got " + signal.Signals(number).name, flush=True)
        sys.exit(128 + number)
    def note(number, frame):
        print("got " + signal.Signals(number).name, flush=True)
    if os.environ.get("FAKE_HANDLE") == "1":
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if os.environ.get("FAKE_HANDLE") == "2":  # the agent's cancel: SIGINT first, SIGTERM when that did not end it
        signal.signal(signal.SIGINT, note)
        signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    time.sleep(60)
    sys.exit(0)
print(json.dumps({
    "label": os.environ.get("FAKE_PYTHON", ""),
    "executable": sys.executable,
    "isolated": sys.flags.isolated,
    "write_through": sys.stdout.write_through,
    "cwd": os.getcwd(),
    "argv": sys.argv,
    "env": dict(os.environ),
}))
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@pytest.fixture
def task(staged_task: Path, tmp_path: Path) -> Path:
    return light_copy(staged_task, tmp_path / "FluxBootstrapV1", entry=FAKE_ENTRY)


def wrapper(folder: Path, name: str, *, label: str | None = None, real: str = sys.executable) -> Path:
    """An interpreter called `name` that runs `real` (the label tells the fake entry which one ran)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\nFAKE_PYTHON={label or name} exec "{real}" "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def old_python(folder: Path, name: str, version: str, key: str | None = None) -> Path:
    """Answers every question like the launcher's probe run by that Python would: its version and runtime key."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    major, minor = version.split(".")[:2]
    key = key or f"cp{major}{minor}-linux-{os.uname().machine}"
    path.write_text(f"#!/bin/sh\necho {version} {key}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def environment(path: Path | str, **extra: str) -> dict[str, str]:
    env = {"PATH": str(path), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def launch(
    task: Path, env: Mapping[str, str], cwd: Path, *, node_options: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node_executable(), *node_options, str(task / "launcher.js")],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.stdout.count("\n") == 1, result.stdout + result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def assert_failed_task(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(lines) == 2, lines
    assert lines[0].startswith("##vso[task.logissue type=error]")
    assert lines[1].startswith("##vso[task.complete result=Failed;]")
    for needle in ("UsePythonVersion@0", *needles):
        assert needle in lines[0] and needle in lines[1], lines
    assert result.stderr == ""


def test_the_python_input_is_used_before_path(task: Path, tmp_path: Path) -> None:
    on_path = tmp_path / "path"
    wrapper(on_path, "python3")
    chosen = wrapper(tmp_path / "elsewhere", "custom-python", label="input")
    result = launch(task, environment(on_path, INPUT_PYTHONPATH=str(chosen)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert report(result)["label"] == "input"


def test_the_python_input_may_name_the_folder_of_the_interpreter(task: Path, tmp_path: Path) -> None:
    location = tmp_path / "toolcache" / "Python" / "3.12.4" / "x64"
    wrapper(location / "bin", "python3", label="pythonLocation")
    result = launch(task, environment(tmp_path / "empty", INPUT_PYTHONPATH=str(location)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert report(result)["label"] == "pythonLocation"


def test_python3_comes_first_then_python(task: Path, tmp_path: Path) -> None:
    both = tmp_path / "both"
    wrapper(both, "python3")
    wrapper(both, "python")
    assert report(launch(task, environment(both), tmp_path))["label"] == "python3"
    only_python = tmp_path / "only-python"
    wrapper(only_python, "python")
    assert report(launch(task, environment(only_python), tmp_path))["label"] == "python"


def test_an_old_python3_is_passed_over_for_a_recent_python(task: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    old_python(folder, "python3", "3.9.7")
    wrapper(folder, "python")
    assert report(launch(task, environment(folder), tmp_path))["label"] == "python"


@pytest.mark.parametrize(
    ("version", "key"),
    [
        ("3.99.0", f"cp399-linux-{os.uname().machine}"),  # newer than any the task carries packages for
        (
            f"{sys.version_info[0]}.{sys.version_info[1]}.0",
            f"cp{sys.version_info[0]}{sys.version_info[1]}t-linux-{os.uname().machine}",
        ),
        (
            f"{sys.version_info[0]}.{sys.version_info[1]}.0",
            f"cp{sys.version_info[0]}{sys.version_info[1]}-linux-riscv64",
        ),
    ],
    ids=["too-new", "free-threaded", "other-machine"],
)
def test_a_python3_the_task_has_no_packages_for_is_passed_over_for_python(
    task: Path, tmp_path: Path, version: str, key: str
) -> None:
    folder = tmp_path / "mixed"
    old_python(folder, "python3", version, key)
    wrapper(folder, "python")
    assert report(launch(task, environment(folder), tmp_path))["label"] == "python"
    alone = tmp_path / "alone"
    old_python(alone, "python3", version, key)
    assert_failed_task(
        launch(task, environment(alone), tmp_path), f"python3 is Python {version} ({key})", "carries no packages"
    )


def test_the_probe_prints_the_key_task_entry_computes(staged_task: Path) -> None:
    """The launcher's probe and task_entry.runtime_key() agree for this interpreter (the key runtimes.json uses)."""
    script = f"const l = require({json.dumps(str(staged_task / 'launcher.js'))}); process.stdout.write(l.PROBE);"
    probe = subprocess.run([node_executable(), "-e", script], capture_output=True, text=True, timeout=60, check=True)
    printed = subprocess.run(
        [sys.executable, "-I", "-c", probe.stdout], capture_output=True, text=True, timeout=60, check=True
    )
    entry = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import task_entry; print(task_entry.runtime_key())", str(staged_task)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    version, key = printed.stdout.split()
    assert version == ".".join(str(part) for part in sys.version_info[:3])
    assert key == entry.stdout.strip()
    index = json.loads((staged_task / "python" / "runtimes.json").read_text(encoding="utf-8"))
    assert key in index["runtimes"]


def test_no_python_fails_the_task_with_the_fix(task: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_failed_task(launch(task, environment(empty), tmp_path), "python3: not found", "python: not found")


def test_an_old_python_fails_the_task_with_the_fix(task: Path, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    old_python(folder, "python3", "3.9.7")
    minimum = json.loads((task / "python" / "runtimes.json").read_text(encoding="utf-8"))["minimum"]
    assert_failed_task(
        launch(task, environment(folder), tmp_path), "python3 is Python 3.9.7", f"needs Python {minimum} or newer"
    )


def test_the_advice_names_the_pythons_the_index_carries_packages_for(task: Path, tmp_path: Path) -> None:
    """Not a version written into the launcher: the newest CPython of runtimes.json, and their range (a
    free-threaded build is not one UsePythonVersion@0 installs, and 3.9 sorts before 3.10)."""
    index_file = task / "python" / "runtimes.json"
    index = json.loads(index_file.read_text(encoding="utf-8"))
    index["runtimes"] = {"cp39-linux-x86_64": [], "cp310-linux-x86_64": [], "cp313t-linux-x86_64": []}
    index["runtimes"]["cp311-linux-aarch64"] = []
    index_file.write_text(json.dumps(index), encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_failed_task(
        launch(task, environment(empty), tmp_path),
        "UsePythonVersion@0 step (versionSpec: 3.11)",
        "pythonPath input to a CPython 3.9 to 3.11 (the versions the task carries packages for)",
    )


def test_the_entrys_advice_names_the_pythons_the_index_carries_packages_for(staged_task: Path, tmp_path: Path) -> None:
    runtimes = {
        "cp310-linux-x86_64": [],
        "cp314-linux-x86_64": [],
        "cp312-linux-aarch64": [],
        "cp314t-linux-x86_64": [],
    }
    task = task_with_index(staged_task, tmp_path, minimum="3.99", runtimes=runtimes)
    line = run_entry(task, tmp_path).stdout.splitlines()[0]
    assert "UsePythonVersion@0 (versionSpec 3.14; the task carries packages for CPython 3.10 to 3.14)." in line


def test_a_wrong_python_input_fails_the_task_and_names_the_input(task: Path, tmp_path: Path) -> None:
    folder = tmp_path / "path"
    wrapper(folder, "python3")  # not used: the input wins
    old = old_python(tmp_path / "old", "python3.8", "3.8.10")
    assert_failed_task(
        launch(task, environment(folder, INPUT_PYTHONPATH=str(old)), tmp_path), "pythonPath", "Python 3.8.10"
    )
    missing = tmp_path / "no" / "python"
    assert_failed_task(launch(task, environment(folder, INPUT_PYTHONPATH=str(missing)), tmp_path), "not found")


def test_the_environment_arrives_untouched_and_python_runs_isolated_and_unbuffered(task: Path, tmp_path: Path) -> None:
    folder = tmp_path / "path"
    wrapper(folder, "python3")
    secrets = {
        "INPUT_ACTION": "bootstrap",
        "INPUT_GITPAT": "pat-value; with ] and %",
        "INPUT_SSHKNOWNHOSTS": "line one\nline two",
        "ENDPOINT_AUTH_SYSTEMVSSCONNECTION": '{"parameters":{"AccessToken":"job-token"},"scheme":"OAuth"}',
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "job-token",
        "ENDPOINT_URL_SYSTEMVSSCONNECTION": "https://dev.azure.com/org/",
        "SECRET_MYPAT": "secret variable",
        "SECUREFILE_TICKET_0e1f": "ticket",
        "PYTHONPATH": "/should/not/matter",
    }
    env = environment(folder, **secrets)
    workdir = tmp_path / "sources"
    workdir.mkdir()
    data = report(launch(task, env, workdir))
    child_env = data["env"]
    assert isinstance(child_env, dict)
    assert {k: child_env.get(k) for k in env} == env
    assert set(child_env) - set(env) <= {"FAKE_PYTHON", "PWD", "LC_CTYPE"}  # the wrapper shell, Python's locale
    assert data["isolated"] == 1
    assert data["write_through"] is True
    assert data["cwd"] == str(workdir)
    assert data["argv"] == [str(task / "task_entry.py")]


@pytest.mark.parametrize("code", [0, 1, 3, 42])
def test_the_exit_code_is_passed_on(task: Path, tmp_path: Path, code: int) -> None:
    folder = tmp_path / "path"
    wrapper(folder, "python3")
    result = launch(task, environment(folder, FAKE_EXIT=str(code)), tmp_path)
    assert result.returncode == code


@contextlib.contextmanager
def waiting_launcher(task: Path, tmp_path: Path, *, handle: str) -> Iterator[subprocess.Popen[str]]:
    """The launcher running the fake Python in its waiting mode (`handle`: how many signals it handles before it
    lets one end it), once the fake said it is ready."""
    folder = tmp_path / "path"
    wrapper(folder, "python3")
    env = environment(folder, FAKE_MODE="wait", FAKE_HANDLE=handle)
    with started(
        [node_executable(), str(task / "launcher.js")], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        yield process


@pytest.mark.parametrize(
    ("sent", "handled", "expected_line", "expected_code"),
    [
        (signal.SIGTERM, True, "got SIGTERM", 128 + signal.SIGTERM),
        (signal.SIGINT, True, "got SIGINT", 128 + signal.SIGINT),
        (signal.SIGTERM, False, None, 128 + signal.SIGTERM),
    ],
)
def test_cancellation_signals_reach_python(
    task: Path, tmp_path: Path, sent: signal.Signals, handled: bool, expected_line: str | None, expected_code: int
) -> None:
    with waiting_launcher(task, tmp_path, handle="1" if handled else "0") as process:
        process.send_signal(sent)
        out, err = process.communicate(timeout=30)
    assert process.returncode == expected_code, err
    if expected_line:
        assert out.splitlines() == [expected_line]


def test_a_second_signal_reaches_python_too(task: Path, tmp_path: Path) -> None:
    """The agent cancels with SIGINT and, when the step is still running after a grace period, sends SIGTERM."""
    with waiting_launcher(task, tmp_path, handle="2") as process:
        assert process.stdout is not None
        process.send_signal(signal.SIGINT)
        assert process.stdout.readline() == "got SIGINT\n"
        assert process.poll() is None  # Python handled it and goes on; so does the launcher
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert out.splitlines() == ["got SIGTERM"]
    assert process.returncode == 128 + signal.SIGTERM, err


def task_with_index(staged_task: Path, tmp_path: Path, **changes: object) -> Path:
    """A light copy of the staged task whose runtime index (python/runtimes.json) has `changes`."""
    task = light_copy(staged_task, tmp_path / "FluxBootstrapV1")
    index_file = task / "python" / "runtimes.json"
    index = json.loads(index_file.read_text(encoding="utf-8"))
    index.update(changes)
    index_file.write_text(json.dumps(index), encoding="utf-8")
    return task


def run_entry(task: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """task_entry.py run by this interpreter as the launcher would run it, with an empty PATH."""
    return subprocess.run(
        [sys.executable, "-u", "-I", str(task / "task_entry.py")],
        env=environment(tmp_path / "empty"), cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_real_entry_refuses_an_interpreter_the_task_was_not_staged_for(staged_task: Path, tmp_path: Path) -> None:
    this = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    task = task_with_index(
        staged_task,
        tmp_path,
        runtimes={f"{this}-linux-sparc64": []},
        supported="Linux sparc agents with CPython 3.x",
    )
    # The launcher passes such a Python over, so run the entry the way it would have (pythonPath naming a Python
    # whose probe was fooled, or an index edited by hand must still fail in words).
    result = run_entry(task, tmp_path)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines[0].startswith("##vso[task.logissue type=error]FluxBootstrap runs on Linux sparc agents")
    assert f"this agent has Python {sys.version.split()[0]}" in lines[0]
    assert lines[1].startswith("##vso[task.complete result=Failed;]")
    assert "Traceback" not in result.stdout + result.stderr
    wrapper(tmp_path / "path", "python3")
    launched = launch(task, environment(tmp_path / "path"), tmp_path)
    assert_failed_task(launched, "Linux sparc agents", "which the task carries no packages for")


def test_the_real_entry_names_the_minimum_from_the_index(staged_task: Path, tmp_path: Path) -> None:
    task = task_with_index(staged_task, tmp_path, minimum="3.99")
    result = run_entry(task, tmp_path)
    assert result.returncode == 1
    assert f"needs Python 3.99 or newer, not {sys.version.split()[0]}" in result.stdout.splitlines()[0]


def test_the_real_entry_refuses_an_older_glibc_than_the_wheels_need(staged_task: Path, tmp_path: Path) -> None:
    task = light_copy(staged_task, tmp_path / "FluxBootstrapV1")
    index_file = task / "python" / "runtimes.json"
    index = json.loads(index_file.read_text(encoding="utf-8"))
    index["glibc"] = [99, 0]
    index_file.write_text(json.dumps(index), encoding="utf-8")
    folder = tmp_path / "path"
    wrapper(folder, "python3")
    result = launch(task, environment(folder), tmp_path)
    assert result.returncode == 1
    assert "needs a Linux with glibc 99.0 or newer" in result.stdout
    assert result.stdout.splitlines()[1].startswith("##vso[task.complete result=Failed;]")


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_windows_and_macos_agents_get_a_clear_failure(task: Path, tmp_path: Path, platform: str) -> None:
    """The platform is faked with a preload script: node reports it before the launcher runs."""
    preload = tmp_path / "platform.js"
    preload.write_text(f"Object.defineProperty(process, 'platform', {{ value: '{platform}' }});\n", encoding="utf-8")
    folder = tmp_path / "path"
    wrapper(folder, "python3")
    result = launch(task, environment(folder), tmp_path, node_options=("--require", str(preload)))
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert len(lines) == 2, lines
    assert lines[0].startswith("##vso[task.logissue type=error]FluxBootstrap runs on Linux ")
    assert "Use a Linux agent" in lines[0]
    assert lines[1].startswith("##vso[task.complete result=Failed;]FluxBootstrap runs on Linux ")
