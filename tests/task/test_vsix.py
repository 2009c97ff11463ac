"""The .vsix as tfx builds it (offline, with the tfx-cli pinned in package-lock.json), and the task inside it run
with the machine's own Python, outside the venv: proof that the task folder carries everything it imports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from support.task import REPO, TASK_SOURCE, agent_environment, node_executable, stage_task, task_definition

TFX = REPO / "node_modules" / "tfx-cli" / "_build" / "tfx-cli.js"
THIS_MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"


def task_version() -> str:
    version = task_definition()["version"]
    assert isinstance(version, dict)
    return f"{version['Major']}.{version['Minor']}.{version['Patch']}"


@pytest.fixture(scope="module")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TFX.is_file(), "tfx-cli is not installed: run `make node-deps` (npm ci)"
    root = stage_task(tmp_path_factory.mktemp("extension") / "root", extension_root=True)
    out = tmp_path_factory.mktemp("vsix")
    home = tmp_path_factory.mktemp("tfx-home")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "NO_COLOR": "1"}
    command = [node_executable(), str(TFX), "extension", "create", "--no-prompt", "--no-color", "--root", str(root),
               "--manifests", "vss-extension.json", "--output-path", str(out)]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    files = list(out.glob("*.vsix"))
    assert [f.name for f in files] == [f"flux-azdo.flux-azdo-{task_version()}.vsix"], result.stdout
    return files[0]


@pytest.fixture(scope="module")
def extracted(vsix: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The task folder as the agent gets it: extracted from the package (no file modes kept)."""
    target = tmp_path_factory.mktemp("agent-tasks")
    with zipfile.ZipFile(vsix) as archive:
        for name in archive.namelist():
            if name.startswith("FluxBootstrapV1/") and not name.endswith("/"):
                archive.extract(name, target)
    return target / "FluxBootstrapV1"


def system_python() -> str:
    """A Python outside the venv with this interpreter's version (the staged natives are for this version)."""
    for candidate in ("/usr/bin/python3", getattr(sys, "_base_executable", ""), "/usr/local/bin/python3"):
        if not candidate or not Path(candidate).is_file():
            continue
        probe = subprocess.run(
            [candidate, "-I", "-c", "import sys; print('%d.%d %s' % (sys.version_info[:2] + (sys.prefix,)))"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        version, _, prefix = probe.stdout.strip().partition(" ")
        if version == THIS_MINOR and Path(prefix) != Path(sys.prefix):
            return candidate
    raise AssertionError(f"no Python {THIS_MINOR} outside the venv (/usr/bin/python3 or the venv's base)")


def test_the_package_holds_the_manifest_the_task_and_its_python(vsix: Path) -> None:
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = archive.read("extension.vsixmanifest").decode()
        contributions = json.loads(archive.read("extension.vsomanifest"))
        packaged_task = json.loads(archive.read("FluxBootstrapV1/task.json"))
        for name in ("launcher.js", "task_entry.py", "icon.png"):
            assert archive.read(f"FluxBootstrapV1/{name}") == (TASK_SOURCE / name).read_bytes(), name
        index = json.loads(archive.read("FluxBootstrapV1/python/runtimes.json"))
    assert re.search(rf'<Identity [^>]*Id="flux-azdo" Publisher="flux-azdo" Version="{task_version()}"', manifest)
    assert packaged_task == task_definition()
    assert {"overview.md", "images/extension-icon.png"} <= names
    task_contributions = [c for c in contributions["contributions"] if c["type"] == "ms.vss-distributed-task.task"]
    assert [c["properties"]["name"] for c in task_contributions] == ["FluxBootstrapV1"]
    assert "FluxBootstrapV1/python/lib/flux_azdo/pipeline/main.py" in names
    assert "FluxBootstrapV1/python/lib/kubernetes/client/api_client.py" in names
    key = f"cp{sys.version_info[0]}{sys.version_info[1]}-linux-{os.uname().machine}"
    assert list(index["runtimes"]) == [key]
    for folder in index["runtimes"][key]:
        assert any(n.startswith(f"FluxBootstrapV1/python/{folder}/") for n in names), folder
    left_out = [
        n for n in names if re.search(r"/(flux_azdo/sandbox|kubernetes/aio|aiohttp|__pycache__)/|\.pyc$|/_yaml", n)
    ]
    assert left_out == []


@pytest.fixture(scope="module")
def check_package() -> ModuleType:
    """task/check_package.py, the script CI runs on the .vsix under each CPython (imported, not copied)."""
    spec = importlib.util.spec_from_file_location("flux_check_package", REPO / "task" / "check_package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_module_the_product_imports_loads_from_the_task_folder_alone(
    extracted: Path, check_package: ModuleType
) -> None:
    modules = check_package.product_imports(extracted / "python" / "lib")
    assert {"kubernetes.client", "azure.identity", "azure.devops.connection", "git", "yaml"} <= set(modules)
    report = check_package.import_report(extracted, system_python())
    assert report["failed"] == {}
    assert report["foreign"] == []  # no site-packages: everything came from the task folder or the stdlib
    assert report["libyaml"] is False
    assert report["aiohttp"] is False
    assert report["sandbox"] is False


def test_the_ci_check_passes_on_the_package_and_prints_no_command(vsix: Path) -> None:
    result = subprocess.run(
        [system_python(), str(REPO / "task" / "check_package.py"), str(vsix)],
        capture_output=True, text=True, timeout=600, check=False, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("check_package: ") == 2
    assert "##" not in result.stdout + result.stderr  # the agent running CI must not obey the task's commands


def launcher_lines(extracted: Path, env: dict[str, str], cwd: Path) -> Iterator[str]:
    result = subprocess.run(
        [node_executable(), str(extracted / "launcher.js")],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    yield from result.stdout.splitlines()


def test_the_packaged_task_runs_with_the_system_python_and_reads_its_inputs(extracted: Path, tmp_path: Path) -> None:
    temp = tmp_path / "agent-temp"
    sources = tmp_path / "s"
    temp.mkdir()
    sources.mkdir()
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AGENT_TEMPDIRECTORY": str(temp),
        "BUILD_SOURCESDIRECTORY": str(sources),
        "SYSTEM_DEFAULTWORKINGDIRECTORY": str(sources),
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/org/",
        "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": "https://dev.azure.com/org/",
        "SYSTEM_TEAMPROJECT": "project",
        "ENDPOINT_URL_SYSTEMVSSCONNECTION": "https://dev.azure.com/org/",
        "ENDPOINT_AUTH_SCHEME_SYSTEMVSSCONNECTION": "OAuth",
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "job-token-not-for-printing",
    }
    env = agent_environment({"action": "check", "repositoryUrl": "fleet", "pythonPath": system_python()}, base)
    lines = list(launcher_lines(extracted, env, sources))
    complete = [line for line in lines if line.startswith("##vso[task.complete ")]
    assert len(complete) == 1, lines
    assert complete[0].startswith("##vso[task.complete result=Failed;]")
    assert "kubernetesServiceConnection" in complete[0]  # no service connection given: read from the inputs
    assert not any("job-token-not-for-printing" in line for line in lines if "task.setsecret" not in line)
    # Only the summary stays, for the agent to upload after the step.
    assert all(re.fullmatch(r"flux-azdo-summary-check(-[0-9a-f]+)?\.md", p.name) for p in temp.iterdir())
