"""The Python entry of the FluxBootstrap task, started by launcher.js as `python -u -I task_entry.py`.

The task carries its own Python packages (staged by task/stage.py) so that nothing is downloaded at run time:
`python/lib` holds the pure-Python code, `python/native/<wheel>` the compiled distributions, and
`python/runtimes.json` says which native folders belong to which interpreter and platform. This file picks the
folders for the running interpreter, puts them first on sys.path (`-I` keeps the user's site-packages and
PYTHONPATH out), and hands over to `flux_azdo.pipeline.main`. On an agent the task was not staged for it fails
the task with one line that names what is supported, instead of an ImportError deep inside cryptography.
It prints nothing on success: the pipeline code registers the secrets before any other line is written.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_FOLDER = os.path.join(HERE, "python")


def _escape_data(text: str) -> str:
    """The agent's escaping for the data part of a logging command (task-lib escapedata)."""
    return text.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def fail(message: str) -> int:
    data = _escape_data(message)
    sys.stdout.write(f"##vso[task.logissue type=error]{data}\n##vso[task.complete result=Failed;]{data}\n")
    sys.stdout.flush()
    return 1


def _machine() -> str:
    if hasattr(os, "uname"):
        machine = os.uname().machine
    else:  # Windows has no uname; platform is slower to import but only needed to name the failure.
        import platform

        machine = platform.machine()
    machine = machine.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def _glibc() -> tuple[int, int] | None:
    """The C library's version when it is glibc (the compiled wheels are manylinux: glibc only, not musl)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return None
    name, _, version = text.partition(" ")
    parts = version.split(".")
    if name != "glibc" or len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


def runtime_key() -> str:
    """`cp310-linux-x86_64`: the interpreter ABI and platform the compiled packages must match."""
    threading = "t" if "t" in getattr(sys, "abiflags", "") else ""
    implementation = "cp" if sys.implementation.name == "cpython" else sys.implementation.name
    return f"{implementation}{sys.version_info[0]}{sys.version_info[1]}{threading}-{sys.platform}-{_machine()}"


def read_index() -> dict[str, Any] | str:
    """python/runtimes.json (written by task/stage.py), or why it cannot be read."""
    try:
        with open(os.path.join(PYTHON_FOLDER, "runtimes.json"), encoding="utf-8") as file:
            index = json.load(file)
    except (OSError, ValueError) as error:
        return f"the task's Python files are missing or damaged ({error}); reinstall the extension"
    if not isinstance(index, dict) or not isinstance(index.get("runtimes"), dict):
        return "the task's python/runtimes.json is damaged; reinstall the extension"
    return index


def minimum_python(index: dict[str, Any]) -> tuple[int, int]:
    """The oldest Python the task carries packages for (`minimum` in the index; 3.10 when an older index has none)."""
    major, _, minor = str(index.get("minimum", "3.10")).partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else (3, 10)


def python_versions(index: dict[str, Any]) -> list[str]:
    """The CPython versions the task carries packages for, oldest first ("3.10", ...), from the runtime keys
    (`cp312-linux-x86_64`; free-threaded `cp313t-...` builds are not what UsePythonVersion@0 installs)."""
    found = set()
    for key in index.get("runtimes") or {}:
        abi = str(key).split("-")[0]
        digits = abi[2:]
        if abi.startswith("cp") and digits.isdigit() and len(digits) >= 2:
            found.add((int(digits[0]), int(digits[1:])))
    return [f"{major}.{minor}" for major, minor in sorted(found)]


def fix(index: dict[str, Any]) -> str:
    """The advice after every failure here: the newest Python the task carries packages for, and the range."""
    versions = python_versions(index)
    if not versions:
        return "Run the task on a Linux agent (for example vmImage ubuntu-latest) with UsePythonVersion@0."
    carried = versions[0] if len(versions) == 1 else f"{versions[0]} to {versions[-1]}"
    return (
        "Run the task on a Linux agent (for example vmImage ubuntu-latest) with UsePythonVersion@0 "
        f"(versionSpec {versions[-1]}; the task carries packages for CPython {carried})."
    )


def python_folders(index: dict[str, Any] | None = None) -> list[str] | str:
    """The sys.path entries for this interpreter, or why there are none."""
    if index is None:
        found = read_index()
        if isinstance(found, str):
            return found
        index = found
    supported = index.get("supported", "Linux agents")
    key = runtime_key()
    native = index["runtimes"].get(key)
    this = f"Python {sys.version.split()[0]} ({sys.implementation.name}) on {sys.platform} {_machine()}"
    if native is None:
        return f"FluxBootstrap runs on {supported}; this agent has {this}. {fix(index)}"
    if sys.platform == "linux":
        glibc = _glibc()
        needed = tuple(index["glibc"])
        if glibc is None or glibc < needed:
            found_libc = "musl or an unknown C library" if glibc is None else f"glibc {glibc[0]}.{glibc[1]}"
            return (
                f"FluxBootstrap needs a Linux with glibc {needed[0]}.{needed[1]} or newer; this agent has "
                f"{found_libc} (Alpine containers are not supported). {fix(index)}"
            )
    return [os.path.join(PYTHON_FOLDER, index["lib"]), *(os.path.join(PYTHON_FOLDER, path) for path in native)]


def main() -> int:
    index = read_index()
    if isinstance(index, str):
        return fail(index)
    minimum = minimum_python(index)
    if sys.version_info[:2] < minimum:  # pythonPath may name any interpreter; fail in words, not syntax
        return fail(
            f"FluxBootstrap needs Python {minimum[0]}.{minimum[1]} or newer, not {sys.version.split()[0]}. {fix(index)}"
        )
    folders = python_folders(index)
    if isinstance(folders, str):
        return fail(folders)
    sys.path[0:0] = folders
    try:
        from flux_azdo.pipeline.main import main as run_task
    except ImportError as error:
        return fail(
            f"FluxBootstrap could not load its Python code on {runtime_key()} ({error}): the task folder is "
            "incomplete; reinstall the extension, or report it if that does not help."
        )
    code: int = run_task()
    return code


if __name__ == "__main__":
    sys.exit(main())
