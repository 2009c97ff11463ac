"""Check a built .vsix with the running Python, the way an agent would use it (CI runs it under CPython 3.10-3.14).

    python task/check_package.py dist/flux-azdo.flux-azdo-1.0.0.vsix     (or an unpacked FluxBootstrapV1 folder)

1. Every module the product imports loads from the task folder alone: `python -I -S`, so no site-packages can
   hide a file the package forgot, and neither aiohttp, LibYAML nor the sandbox is loaded.
2. `node launcher.js` with an agent-like environment (every input's default, `action: check`, this Python as
   `pythonPath`) ends with exactly one `##vso[task.complete` line, exit code 0, no traceback, and the job token
   never printed outside `task.setsecret`.

Only the standard library is used: the Python under test has nothing installed. The task's own output is never
echoed as is (the agent running this script would obey its `##vso` commands); on a failure it is shown with
every `##` defused.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TASK_FOLDER = "FluxBootstrapV1"
JOB_TOKEN = "check-package-job-token"

IMPORT_EVERYTHING = """\
import importlib, json, sys, sysconfig
task, modules = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, task)
import task_entry
folders = task_entry.python_folders()
if isinstance(folders, str):
    print(json.dumps({"refused": folders}))
    sys.exit(0)
sys.path.remove(task)
sys.path[0:0] = folders
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = repr(error)
stdlib = sysconfig.get_paths()["stdlib"]
foreign = sorted(
    f"{name}: {module.__file__}" for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None) and not module.__file__.startswith((task, stdlib))
)
import yaml
print(json.dumps({"failed": failed, "foreign": foreign, "libyaml": yaml.__with_libyaml__,
                  "aiohttp": "aiohttp" in sys.modules,
                  "sandbox": any(m.startswith("flux_azdo.sandbox") for m in sys.modules)}))
"""


class CheckFailed(Exception):
    """What is wrong with the package, in one paragraph."""


def defused(text: str) -> str:
    """The task's output made inert for the agent that runs this script."""
    return text.replace("##", "#_#")


def task_folder(source: Path, scratch: Path) -> Path:
    """The FluxBootstrapV1 folder of a .vsix (extracted like the agent does: no file modes) or of a folder."""
    if source.is_dir():
        folder = source if (source / "task.json").is_file() else source / TASK_FOLDER
    else:
        with zipfile.ZipFile(source) as archive:
            for name in archive.namelist():
                if name.startswith(f"{TASK_FOLDER}/") and not name.endswith("/"):
                    archive.extract(name, scratch)
        folder = scratch / TASK_FOLDER
    if not (folder / "launcher.js").is_file():
        raise CheckFailed(f"{source} holds no {TASK_FOLDER} task folder")
    return folder


def product_imports(lib: Path) -> list[str]:
    """Every absolute module the product names in an import statement, at module level or inside functions."""
    modules: set[str] = set()
    for file in sorted((lib / "flux_azdo").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
    return sorted(m for m in modules if not m.startswith("flux_azdo.sandbox") and m != "__future__")


def import_report(folder: Path, python: str = sys.executable) -> dict[str, object]:
    """What importing every product module from the task folder alone gave (see IMPORT_EVERYTHING)."""
    modules = product_imports(folder / "python" / "lib")
    result = subprocess.run(
        [python, "-I", "-S", "-c", IMPORT_EVERYTHING, str(folder), json.dumps(modules)],
        capture_output=True, text=True, timeout=300, check=False, env={"PATH": os.defpath},
    )  # fmt: skip
    if result.returncode != 0:
        raise CheckFailed(f"importing the product from {folder} failed:\n{defused(result.stdout + result.stderr)}")
    report: dict[str, object] = json.loads(result.stdout)
    return report


def check_imports(folder: Path, python: str = sys.executable) -> int:
    report = import_report(folder, python)
    if "refused" in report:
        raise CheckFailed(f"task_entry.py refuses this Python: {report['refused']}")
    failed, foreign = report["failed"], report["foreign"]
    assert isinstance(failed, dict) and isinstance(foreign, list)
    problems = [f"{name}: {error}" for name, error in failed.items()]
    problems += [f"loaded from outside the task folder: {line}" for line in foreign]
    problems += [f"{what} was loaded" for what in ("libyaml", "aiohttp", "sandbox") if report[what]]
    if problems:
        raise CheckFailed("the task folder does not carry everything it imports:\n" + "\n".join(problems))
    return len(product_imports(folder / "python" / "lib"))


def agent_environment(folder: Path, temp: Path, python: str) -> dict[str, str]:
    """Every declared input's default as INPUT_*, as the agent sets them, then a `check` of a named repository."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(temp),
        "AGENT_TEMPDIRECTORY": str(temp),
        "BUILD_SOURCESDIRECTORY": str(temp),
        "SYSTEM_DEFAULTWORKINGDIRECTORY": str(temp),
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/org/",
        "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": "https://dev.azure.com/org/",
        "SYSTEM_TEAMPROJECT": "project",
        "ENDPOINT_URL_SYSTEMVSSCONNECTION": "https://dev.azure.com/org/",
        "ENDPOINT_AUTH_SCHEME_SYSTEMVSSCONNECTION": "OAuth",
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": JOB_TOKEN,
    }
    for item in json.loads((folder / "task.json").read_text(encoding="utf-8"))["inputs"]:
        value = item.get("defaultValue", "")
        env[f"INPUT_{item['name'].upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update({"INPUT_ACTION": "check", "INPUT_REPOSITORYURL": "fleet", "INPUT_PYTHONPATH": python})
    return env


def check_launcher(folder: Path, python: str = sys.executable) -> str:
    """Runs the launcher like the agent; returns the task.complete line."""
    with tempfile.TemporaryDirectory(prefix="check-package-") as temp:
        result = subprocess.run(
            ["node", str(folder / "launcher.js")], env=agent_environment(folder, Path(temp), python), cwd=temp,
            capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    output = result.stdout + result.stderr
    complete = [line for line in result.stdout.splitlines() if line.startswith("##vso[task.complete ")]
    leaked = [line for line in output.splitlines() if JOB_TOKEN in line and "task.setsecret" not in line]
    if result.returncode != 0 or len(complete) != 1 or "Traceback" in output or leaked:
        raise CheckFailed(
            f"the launcher did not run the task cleanly (exit code {result.returncode}, {len(complete)} "
            f"task.complete lines, job token printed: {bool(leaked)}):\n{defused(output)}"
        )
    return complete[0]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python task/check_package.py <file.vsix | task folder>", file=sys.stderr)
        return 2
    this = f"Python {sys.version.split()[0]} ({sys.executable})"
    with tempfile.TemporaryDirectory(prefix="check-package-") as scratch:
        try:
            folder = task_folder(Path(args[0]), Path(scratch))
            modules = check_imports(folder)
            print(f"check_package: {this}: {modules} product imports load from the task folder alone")
            complete = check_launcher(folder)
            print(f"check_package: {this}: the launcher ran the task to its end: {defused(complete)}")
        except (CheckFailed, OSError, zipfile.BadZipFile) as error:
            print(f"check_package: {this}: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
