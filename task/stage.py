"""Stage the FluxBootstrap task folder: the launcher, the Python entry, and Python code with its dependencies.

The agent downloads the task zip for every job and must not need the network to run it, so the folder carries
the package and its whole runtime closure (pinned by constraints.txt):

    FluxBootstrapV1/{task.json, launcher.js, task_entry.py, icon.png}
    FluxBootstrapV1/python/lib/                  pure-Python distributions, shared by every interpreter
    FluxBootstrapV1/python/native/<wheel>/       one folder per compiled wheel (abi3 wheels once per platform)
    FluxBootstrapV1/python/runtimes.json         interpreter+platform -> the native folders it needs

Compiled packages cannot be merged into one tree (cryptography's `_rust.abi3.so` has the same name for x86_64 and
aarch64), hence one folder per wheel and an index that task_entry.py reads. What is left out, and why:

* `flux_azdo.sandbox`: test servers, only the demo and the tests import it.
* aiohttp and its closure: kubernetes requires it, but only `kubernetes.aio` (the asyncio client, also left out)
  imports it; the product uses the synchronous client. tests/task/test_vsix.py imports every product module from
  the staged folder to prove nothing else needs them.
* LibYAML (`yaml/_yaml*.so`) and charset_normalizer's mypyc modules: optional accelerators with a pure-Python
  fallback in the same distribution. The product and its libraries use `yaml.SafeLoader`/`safe_load`, never the C
  loaders (only the sandbox does), so PyYAML ships once instead of once per interpreter.
* `__pycache__`, tests shipped inside distributions, `RECORD`/`INSTALLER` (they describe an installation).

Modes:
    python task/stage.py --from-venv --out build/task          offline, the running interpreter's distributions
    python task/stage.py --wheelhouse build/wheelhouse --out build/task
                                                                release: Linux x86_64/aarch64, CPython 3.10-3.14
    python task/stage.py --download --wheelhouse build/wheelhouse
                                                                fill the wheelhouse (pip download, network)
    python task/stage.py --wheelhouse W --extension-root build/extension
                                                                task + vss-extension.json + overview + images for tfx

Output is deterministic: files are written in sorted order with fixed modes and timestamps.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
TASK_SOURCE = REPO / "task" / "FluxBootstrapV1"
TASK_FILES = ("task.json", "launcher.js", "task_entry.py", "icon.png")
TASK_FOLDER = "FluxBootstrapV1"
ROOT_PROJECT = "flux-azdo"

RELEASE_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
RELEASE_ARCHES = ("x86_64", "aarch64")
# Listed oldest first: pip prefers the first platform, and the oldest glibc runs on the most agents.
MANYLINUX = ("manylinux2014", "manylinux_2_28", "manylinux_2_34")
SUPPORTED_TEXT = "Linux {arches} agents (glibc) with CPython {versions}"

# Requirement edges that are never followed, with the reason (see the module docstring).
SKIPPED_REQUIREMENTS = {
    ("kubernetes", "aiohttp"): "only kubernetes.aio imports it, and kubernetes/aio is not shipped",
}
# Files left out of every distribution (POSIX paths relative to the distribution root, regular expressions).
DROPPED_FILES = (
    r"(.*/)?__pycache__/.*",
    r".*\.pyc",
    r"flux_azdo/sandbox/.*",
    r"kubernetes/aio/.*",
    r"azure/devops/issue_tests/.*",
    r"yaml/_yaml\..*",
    r"_yaml/.*",
    r"charset_normalizer/[^/]*\.(so|pyd)",
    r"[^/]+\.dist-info/(RECORD|INSTALLER|REQUESTED|direct_url\.json)",
)
_DROPPED = re.compile("|".join(f"(?:{pattern})" for pattern in DROPPED_FILES))
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")
FIXED_TIME = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01, the earliest a zip can hold


class StageError(Exception):
    """A problem the person building the task can fix; printed as one line."""


# --- the distributions to ship ---------------------------------------------------------------------------------


def marker_environment(python: str, extra: str = "", machine: str = "x86_64") -> dict[str, str]:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_release": "",
        "platform_version": "",
        "implementation_version": f"{python}.0",
        "extra": extra,
    }


def _applies(
    requirement: Requirement, pythons: Iterable[str], extras: Iterable[str], machines: Iterable[str] = RELEASE_ARCHES
) -> bool:
    if requirement.marker is None:
        return True
    marker: Marker = requirement.marker
    # Every platform shipped counts: a dependency only aarch64 needs must still be shipped.
    return any(marker.evaluate(marker_environment(p, e, m)) for p in pythons for e in ("", *extras) for m in machines)


def runtime_closure(pythons: Iterable[str], machines: Iterable[str] = RELEASE_ARCHES) -> dict[str, str]:
    """Canonical name -> installed version of every distribution flux-azdo needs at run time on `pythons`."""
    pythons = tuple(pythons)
    machines = tuple(machines)
    found: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(ROOT_PROJECT, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as error:
            raise StageError(f"{name} is not installed in {sys.prefix}: run `make .venv/.installed` first") from error
        if name != ROOT_PROJECT:
            found[name] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            child = canonicalize_name(requirement.name)
            if (name, child) in SKIPPED_REQUIREMENTS or not _applies(requirement, pythons, extras, machines):
                continue
            pending.append((child, frozenset(requirement.extras)))
    return dict(sorted(found.items()))


def constraint_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[canonicalize_name(name)] = version.strip()
    return pins


def checked_closure(pythons: Iterable[str], machines: Iterable[str] = RELEASE_ARCHES) -> dict[str, str]:
    closure = runtime_closure(pythons, machines)
    pins = constraint_pins()
    wrong = [f"{n} {v} (constraints.txt: {pins.get(n, 'not pinned')})" for n, v in closure.items() if pins.get(n) != v]
    if wrong:
        raise StageError("installed versions differ from constraints.txt: " + ", ".join(wrong) + "; reinstall the venv")
    return closure


# --- files of one distribution ---------------------------------------------------------------------------------


@dataclass
class Payload:
    """The files of one distribution as they will be shipped: relative POSIX path -> bytes."""

    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def native(self) -> bool:
        return any(path.endswith(NATIVE_SUFFIXES) for path in self.files)

    def digest(self) -> str:
        hasher = hashlib.sha256()
        for path in sorted(self.files):
            hasher.update(path.encode() + b"\0" + hashlib.sha256(self.files[path]).digest())
        return hasher.hexdigest()

    def add(self, path: str, data: bytes) -> None:
        if not _DROPPED.fullmatch(path):
            self.files[path] = data


def installed_payload(name: str) -> Payload:
    dist = importlib.metadata.distribution(name)
    payload = Payload()
    for entry in dist.files or []:
        path = PurePosixPath(str(entry))
        if path.parts and path.parts[0] == "..":
            continue  # console scripts outside site-packages
        source = Path(str(dist.locate_file(entry)))
        if source.is_file():
            payload.add(str(path), source.read_bytes())
    return payload


def project_payload() -> Payload:
    """flux_azdo from this checkout (the venv has it installed in editable mode, so RECORD has no sources)."""
    payload = Payload()
    source = REPO / "src"
    for file in sorted((source / "flux_azdo").rglob("*")):
        if file.is_file():
            payload.add(file.relative_to(source).as_posix(), file.read_bytes())
    return payload


def wheel_payload(wheel: Path) -> Payload:
    payload = Payload()
    with zipfile.ZipFile(wheel) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            parts = info.filename.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers, data: not importable
                parts = parts[2:]
            payload.add("/".join(parts), archive.read(info))
    return payload


# --- wheels in a wheelhouse ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str
    version: str
    pythons: tuple[str, ...]
    abis: tuple[str, ...]
    platforms: tuple[str, ...]

    @classmethod
    def parse(cls, path: Path) -> Wheel:
        parts = path.name[: -len(".whl")].split("-")
        if len(parts) not in (5, 6):
            raise StageError(f"{path.name} is not a wheel file name")
        name, version, pythons, abis, platforms = parts[0], parts[1], parts[-3], parts[-2], parts[-1]
        return cls(
            path, canonicalize_name(name), version, tuple(pythons.split(".")), tuple(abis.split(".")),
            tuple(platforms.split(".")),
        )  # fmt: skip

    @property
    def pure(self) -> bool:
        return self.platforms == ("any",)

    def glibc(self) -> tuple[int, int]:
        """The oldest glibc this wheel runs on (0, 0 for pure wheels)."""
        oldest: list[tuple[int, int]] = []
        for platform in self.platforms:
            legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
            match = re.match(r"manylinux_(\d+)_(\d+)_", platform)
            if match:
                oldest.append((int(match[1]), int(match[2])))
            for prefix, version in legacy.items():
                if platform.startswith(prefix + "_"):
                    oldest.append(version)
        return min(oldest) if oldest else (0, 0)

    def runs_on(self, python: str, arch: str) -> bool:
        tag = "cp" + python.replace(".", "")
        if not self.pure and not any(p.startswith("manylinux") and p.endswith("_" + arch) for p in self.platforms):
            return False
        if "none" in self.abis and self.pure:
            return any(p in ("py3", "py2", tag) or (p.startswith("py3") and len(p) > 3) for p in self.pythons)
        if "abi3" in self.abis:
            return any(p.startswith("cp3") and int(p[3:]) <= int(tag[3:]) for p in self.pythons)
        return tag in self.abis

    def preference(self) -> tuple[int, int, tuple[int, int]]:
        """Pure first, then abi3 built for the oldest Python (one copy serves every version), then oldest glibc."""
        kind = 0 if self.pure else 1 if "abi3" in self.abis else 2
        oldest_python = min((int(p[3:]) for p in self.pythons if p.startswith("cp3")), default=0)
        return kind, oldest_python, self.glibc()

    @property
    def folder(self) -> str:
        """`cryptography-50.0.2-cp39-abi3-x86_64`: the same wheel serves several interpreters from one folder."""
        arch = next((m[1] for p in self.platforms if (m := re.search(r"_(x86_64|aarch64)$", p))), "any")
        return f"{self.name}-{self.version}-{self.pythons[0]}-{self.abis[0]}-{arch}"


@functools.cache
def requires_python(wheel: Path) -> SpecifierSet:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        match = re.search(r"^Requires-Python: *(.+)$", archive.read(metadata).decode("utf-8"), re.M)
    return SpecifierSet(match[1].strip() if match else "")


def pick_wheel(wheels: list[Wheel], name: str, version: str, python: str, arch: str) -> Wheel | None:
    """The wheel of name==version for CPython `python` on `arch`; None when the distribution dropped that Python."""
    candidates = [
        w
        for w in wheels
        if w.name == name and w.version == version and w.runs_on(python, arch)
        and requires_python(w.path).contains(f"{python}.0")
    ]  # fmt: skip
    return min(candidates, key=Wheel.preference) if candidates else None


# --- building the folder -----------------------------------------------------------------------------------------


@dataclass
class Layout:
    lib: dict[str, bytes] = field(default_factory=dict)
    lib_owner: dict[str, str] = field(default_factory=dict)
    native: dict[str, Payload] = field(default_factory=dict)
    runtimes: dict[str, list[str]] = field(default_factory=dict)
    glibc: tuple[int, int] = (0, 0)
    versions: list[str] = field(default_factory=list)

    def add_pure(self, owner: str, payload: Payload) -> None:
        for path, data in payload.files.items():
            previous = self.lib.get(path)
            if previous is not None and path.endswith(".dist-info/WHEEL"):
                continue  # the tags of the variant whose pure-Python part we ship: informative only
            if previous is not None and previous != data:
                raise StageError(f"{path} differs between the copies of {owner} and {self.lib_owner[path]}")
            self.lib[path] = data
            self.lib_owner[path] = owner


def venv_layout() -> Layout:
    """The running interpreter's distributions: a folder for this interpreter only (tests, local runs)."""
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    layout = Layout(versions=[python])
    layout.add_pure(ROOT_PROJECT, project_payload())
    key = current_runtime_key()
    layout.runtimes[key] = []
    for name, version in checked_closure([python], [key.rsplit("-", 1)[-1]]).items():
        payload = installed_payload(name)
        if not payload.native:
            layout.add_pure(name, payload)
            continue
        folder = f"{name}-{version}-{key}"
        layout.native[folder] = payload
        layout.runtimes[key].append(folder)
        wheel_file = next((p for p in payload.files if p.endswith(".dist-info/WHEEL")), None)
        tags = re.findall(r"^Tag: (.+)$", payload.files[wheel_file].decode(), re.M) if wheel_file else []
        glibcs = [Wheel.parse(Path(f"x-0-{t}.whl")).glibc() for t in tags]
        layout.glibc = max(layout.glibc, min(glibcs, default=(0, 0)))
    return layout


def release_layout(wheelhouse: Path) -> Layout:
    wheels = [Wheel.parse(p) for p in sorted(wheelhouse.glob("*.whl"))]
    if not wheels:
        raise StageError(f"{wheelhouse} holds no wheels: run `make wheelhouse` first")
    closure = checked_closure(RELEASE_PYTHONS)
    layout = Layout()
    layout.add_pure(ROOT_PROJECT, project_payload())
    payloads: dict[Path, Payload] = {}
    for python in shippable_pythons(closure):
        # Every pinned distribution accepts this Python (Requires-Python), so a missing wheel is a broken
        # wheelhouse, never a reason to quietly ship fewer interpreters than the documentation promises.
        layout.versions.append(python)
        for arch in RELEASE_ARCHES:
            key = f"cp{python.replace('.', '')}-linux-{arch}"
            folders: list[str] = []
            missing: list[str] = []
            for name, version in closure.items():
                wheel = pick_wheel(wheels, name, version, python, arch)
                if wheel is None:
                    missing.append(f"{name} {version}")
                    continue
                payload = payloads.setdefault(wheel.path, wheel_payload(wheel.path))
                if not payload.native:
                    layout.add_pure(name, payload)
                    continue
                layout.native[wheel.folder] = payload
                folders.append(wheel.folder)
                layout.glibc = max(layout.glibc, wheel.glibc())
            if missing:
                raise StageError(
                    f"{wheelhouse} has no {arch} wheel for CPython {python} of {', '.join(missing)}: "
                    "run `make wheelhouse` again (delete its .complete stamp first)"
                )
            layout.runtimes[key] = sorted(folders)
    if not layout.versions:
        raise StageError(f"{wheelhouse} has no complete set of wheels for any CPython version")
    return layout


def current_runtime_key() -> str:
    """The same key task_entry.py computes (kept in step by tests/task/test_launcher.py)."""
    machine = os.uname().machine.lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    threading = "t" if "t" in getattr(sys, "abiflags", "") else ""
    return f"cp{sys.version_info[0]}{sys.version_info[1]}{threading}-{sys.platform}-{machine}"


def _files(layout: Layout) -> Iterator[tuple[str, bytes]]:
    for name in TASK_FILES:
        yield name, (TASK_SOURCE / name).read_bytes()
    for path, data in layout.lib.items():
        yield f"python/lib/{path}", data
    for folder, payload in layout.native.items():
        for path, data in payload.files.items():
            yield f"python/native/{folder}/{path}", data
    arches = sorted({key.rsplit("-", 1)[-1] for key in layout.runtimes}, reverse=True)
    index = {
        "format": 1,
        "supported": SUPPORTED_TEXT.format(arches=" and ".join(arches), versions=", ".join(layout.versions)),
        "glibc": list(layout.glibc if layout.glibc != (0, 0) else (2, 17)),
        # The oldest Python shipped: launcher.js and task_entry.py name it in their failures.
        "minimum": min(layout.versions, key=lambda v: tuple(int(p) for p in v.split("."))),
        "lib": "lib",
        "runtimes": {key: [f"native/{f}" for f in folders] for key, folders in sorted(layout.runtimes.items())},
    }
    yield "python/runtimes.json", (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()


def write_folder(layout: Layout, destination: Path) -> Path:
    """Write the task folder next to `destination` first, then move it in place: never a half-written folder."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        for relative, data in sorted(_files(layout)):
            target = work / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o644)
        for path in sorted(work.rglob("*"), reverse=True):
            if path.is_dir():
                path.chmod(0o755)
            os.utime(path, (FIXED_TIME, FIXED_TIME))
        work.chmod(0o755)
        if destination.exists():
            shutil.rmtree(destination)
        work.rename(destination)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return destination


def stage(out: Path, wheelhouse: Path | None) -> Path:
    layout = venv_layout() if wheelhouse is None else release_layout(wheelhouse)
    return write_folder(layout, out / TASK_FOLDER)


# --- the extension -------------------------------------------------------------------------------------------------


def task_version() -> str:
    version = json.loads((TASK_SOURCE / "task.json").read_text(encoding="utf-8"))["version"]
    return f"{version['Major']}.{version['Minor']}.{version['Patch']}"


def extension_manifest() -> dict[str, object]:
    manifest: dict[str, object] = json.loads((REPO / "vss-extension.json").read_text(encoding="utf-8"))
    if manifest.get("version") != task_version():
        raise StageError(
            f"vss-extension.json has version {manifest.get('version')} but task.json has {task_version()}: "
            "bump both together (the Marketplace and the agents cache by version)"
        )
    return manifest


def stage_extension(root: Path, wheelhouse: Path | None) -> Path:
    """A folder tfx can package as is: the manifest, its overview and images, and the staged task."""
    extension_manifest()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name in ("vss-extension.json", "overview.md"):
        shutil.copyfile(REPO / name, root / name)
    shutil.copytree(REPO / "images", root / "images")
    stage(root, wheelhouse)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (FIXED_TIME, FIXED_TIME))
    return root


# --- the wheelhouse --------------------------------------------------------------------------------------------


def shippable_pythons(closure: dict[str, str]) -> list[str]:
    """The release Pythons every pinned distribution accepts (their Requires-Python), saying which are dropped."""
    accepted = []
    for python in RELEASE_PYTHONS:
        refusing = []
        for name in closure:
            spec = (importlib.metadata.metadata(name).get_all("Requires-Python") or [""])[0]
            if not SpecifierSet(spec).contains(f"{python}.0"):
                refusing.append(f"{name} {closure[name]} ({spec})")
        if refusing:
            print(f"stage: CPython {python} not shipped: {', '.join(refusing)}", file=sys.stderr)
        else:
            accepted.append(python)
    return accepted


def download(wheelhouse: Path) -> None:
    """pip download every runtime distribution for every release interpreter and platform (binary wheels only)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    closure = checked_closure(RELEASE_PYTHONS)
    pins = [f"{n}=={v}" for n, v in closure.items()]
    pythons = shippable_pythons(closure)
    failed: list[str] = []
    for arch in RELEASE_ARCHES:
        platforms = [arg for tag in MANYLINUX for arg in ("--platform", f"{tag}_{arch}")]
        for python in pythons:
            command = [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                "--only-binary=:all:", "--implementation", "cp", "--python-version", python, *platforms,
                "--constraint", str(REPO / "constraints.txt"), "--dest", str(wheelhouse), *pins,
            ]  # fmt: skip
            print(f"wheelhouse: CPython {python} {arch}", flush=True)
            if subprocess.run(command, check=False).returncode != 0:
                failed.append(f"CPython {python} {arch}")
    if failed:
        # Non-zero, so that make writes no stamp and the next `make vsix` tries again.
        raise StageError(f"pip download failed for {', '.join(failed)} (see above); the wheelhouse is incomplete")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-venv", action="store_true", help="vendor the running interpreter's distributions")
    source.add_argument("--wheelhouse", type=Path, help="vendor the wheels in this folder (release)")
    parser.add_argument("--download", action="store_true", help="fill --wheelhouse with pip download")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "task", help="parent of FluxBootstrapV1")
    parser.add_argument("--extension-root", type=Path, help="also lay out the extension for tfx here")
    args = parser.parse_args(argv)
    wheelhouse = None if args.from_venv else args.wheelhouse
    try:
        if args.download:
            if wheelhouse is None:
                raise StageError("--download needs --wheelhouse")
            download(wheelhouse)
            return 0
        if args.extension_root:
            print(stage_extension(args.extension_root, wheelhouse))
        else:
            print(stage(args.out, wheelhouse))
    except StageError as error:
        print(f"stage: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
