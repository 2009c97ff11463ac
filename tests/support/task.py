"""The FluxBootstrap task folder, staged the way the extension ships it, for tests that run it like the agent.

`task/stage.py --from-venv` builds it offline from this interpreter's installed distributions (the release build
uses a wheelhouse for every platform instead; the layout and task_entry.py are the same). Use the session fixture
`staged_task` (import it into the test module) or `staged_task_folder(tmp_path_factory)`; both give
`<tmp>/FluxBootstrapV1`, shared by the session, so treat it as read-only and take a `light_copy` to change files.
`agent_environment` gives the INPUT_* variables the agent would set from task.json's defaults.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TASK_SOURCE = REPO / "task" / "FluxBootstrapV1"
STAGE_SCRIPT = REPO / "task" / "stage.py"
TASK_FOLDER = "FluxBootstrapV1"

_staged: dict[str, Path] = {}


def stage_task(out: Path, *, extension_root: bool = False) -> Path:
    """Run task/stage.py --from-venv (offline); returns the FluxBootstrapV1 folder (or the extension root)."""
    command = [sys.executable, str(STAGE_SCRIPT), "--from-venv"]
    command += ["--extension-root", str(out)] if extension_root else ["--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise AssertionError(f"stage.py failed ({result.returncode}): {result.stderr}{result.stdout}")
    return out if extension_root else out / TASK_FOLDER


def staged_task_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's staged task folder, built on first use."""
    if "task" not in _staged:
        _staged["task"] = stage_task(tmp_path_factory.mktemp("staged-task"))
    return _staged["task"]


@pytest.fixture(scope="session")
def staged_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return staged_task_folder(tmp_path_factory)


def light_copy(staged: Path, destination: Path, *, entry: str | None = None) -> Path:
    """A copy of the task folder without the Python packages (launcher, index, entry): cheap to change.

    `entry` replaces task_entry.py (a fake entry for launcher tests)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("task.json", "launcher.js", "task_entry.py", "icon.png"):
        shutil.copyfile(staged / name, destination / name)
    (destination / "python").mkdir(exist_ok=True)
    shutil.copyfile(staged / "python" / "runtimes.json", destination / "python" / "runtimes.json")
    if entry is not None:
        (destination / "task_entry.py").write_text(entry, encoding="utf-8")
    return destination


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise AssertionError("node is not on PATH: install Node.js 20 or newer (the agent runs the task with it)")
    return node


def task_definition() -> dict[str, object]:
    definition: dict[str, object] = json.loads((TASK_SOURCE / "task.json").read_text(encoding="utf-8"))
    return definition


def agent_environment(inputs: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """INPUT_<NAME> for every declared input (its default, then `inputs`), as the agent's LoadDefaultInputs does."""
    env = dict(os.environ if base is None else base)
    declared = task_definition()["inputs"]
    assert isinstance(declared, list)
    for item in declared:
        value = item.get("defaultValue", "")
        env[f"INPUT_{item['name'].upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    for name, value in (inputs or {}).items():
        env[f"INPUT_{name.upper()}"] = value.strip()
    return env
