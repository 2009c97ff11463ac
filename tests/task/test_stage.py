"""task/stage.py: the same folder every time, the right wheel for each interpreter, and no extension whose version
disagrees with the task's.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from support.task import REPO, stage_task


@pytest.fixture(scope="module")
def stage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flux_task_stage", REPO / "task" / "stage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def fingerprint(folder: Path) -> dict[str, tuple[str, int, int]]:
    return {
        p.relative_to(folder).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
            p.stat().st_mode,
            int(p.stat().st_mtime),
        )
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of its own: the session's staged task gets __pycache__ once other tests have run it."""
    return stage_task(tmp_path_factory.mktemp("fresh"))


def test_staging_twice_gives_the_same_folder(fresh: Path, tmp_path: Path) -> None:
    again = stage_task(tmp_path / "again")
    assert fingerprint(again) == fingerprint(fresh)
    assert not list(tmp_path.glob("again/.*"))  # no work folder left next to it


def test_the_staged_folder_has_the_layout_task_entry_reads(fresh: Path) -> None:
    staged_task = fresh
    index = json.loads((staged_task / "python" / "runtimes.json").read_text(encoding="utf-8"))
    assert (staged_task / "python" / index["lib"] / "flux_azdo" / "pipeline" / "main.py").is_file()
    assert not (staged_task / "python" / "lib" / "flux_azdo" / "sandbox").exists()
    assert not (staged_task / "python" / "lib" / "kubernetes" / "aio").exists()
    assert not list((staged_task / "python").rglob("__pycache__"))
    for folders in index["runtimes"].values():
        for folder in folders:
            assert list((staged_task / "python" / folder).glob("*")), folder
    assert sorted(p.name for p in staged_task.iterdir()) == [
        "icon.png",
        "launcher.js",
        "python",
        "task.json",
        "task_entry.py",
    ]


def fake_wheel(folder: Path, filename: str, requires_python: str = ">=3.9") -> Path:
    path = folder / filename
    name, version = filename.split("-")[:2]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", f"Name: {name}\nRequires-Python: {requires_python}\n")
    return path


def test_the_wheel_for_an_interpreter(stage: ModuleType, tmp_path: Path) -> None:
    names = [
        "cryptography-50.0.2-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "cryptography-50.0.2-cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "cryptography-50.0.2-cp311-abi3-manylinux_2_34_x86_64.whl",
        "cryptography-50.0.2-cp311-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
        "cffi-2.1.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "cffi-2.1.1-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "charset_normalizer-3.5.3-cp312-cp312-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl",
        "charset_normalizer-3.5.3-py3-none-any.whl",
    ]
    wheels = [stage.Wheel.parse(fake_wheel(tmp_path, n)) for n in names]
    wheels.append(stage.Wheel.parse(fake_wheel(tmp_path, "platformdirs-4.14.8-py3-none-any.whl", ">=3.11")))

    def pick(name: str, version: str, python: str, arch: str = "x86_64") -> str | None:
        wheel = stage.pick_wheel(wheels, name, version, python, arch)
        return None if wheel is None else wheel.path.name

    # abi3 built for the oldest Python serves them all (one copy per platform), on the oldest glibc.
    assert pick("cryptography", "50.0.2", "3.13") == names[0]
    assert pick("cryptography", "50.0.2", "3.12", "aarch64") == names[3]
    assert pick("cffi", "2.1.1", "3.12") == names[5]
    assert pick("cffi", "2.1.1", "3.13") is None
    assert pick("charset-normalizer", "3.5.3", "3.12") == names[7]  # pure beats compiled
    assert pick("platformdirs", "4.14.8", "3.10") is None  # Requires-Python
    assert pick("platformdirs", "4.14.8", "3.14") == "platformdirs-4.14.8-py3-none-any.whl"
    assert stage.Wheel.parse(tmp_path / names[6]).glibc() == (2, 5)
    assert stage.Wheel.parse(tmp_path / names[3]).folder == "cryptography-50.0.2-cp311-abi3-aarch64"


def test_an_extension_whose_version_differs_from_the_task_is_refused(
    stage: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "task" / "FluxBootstrapV1", checkout / "task" / "FluxBootstrapV1")
    manifest = json.loads((REPO / "vss-extension.json").read_text(encoding="utf-8"))
    (checkout / "vss-extension.json").write_text(json.dumps({**manifest, "version": "9.9.9"}), encoding="utf-8")
    monkeypatch.setattr(stage, "REPO", checkout)
    monkeypatch.setattr(stage, "TASK_SOURCE", checkout / "task" / "FluxBootstrapV1")
    root = tmp_path / "extension"
    assert stage.main(["--from-venv", "--extension-root", str(root)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"vss-extension.json has version 9.9.9 but task.json has {stage.task_version()}" in error
    assert not root.exists()


def fake_wheelhouse(stage: ModuleType, folder: Path, *, native: str, native_arches: tuple[str, ...]) -> Path:
    """A pure stand-in wheel for every pinned runtime distribution, and `native` compiled for `native_arches` only."""
    folder.mkdir()
    for name, version in stage.checked_closure(stage.RELEASE_PYTHONS).items():
        module = name.replace("-", "_")
        if name != native:
            fake_wheel(folder, f"{module}-{version}-py3-none-any.whl")
            continue
        for python in stage.RELEASE_PYTHONS:
            tag = "cp" + python.replace(".", "")
            for arch in native_arches:
                path = fake_wheel(folder, f"{module}-{version}-{tag}-{tag}-manylinux_2_17_{arch}.whl")
                with zipfile.ZipFile(path, "a") as archive:
                    archive.writestr(f"_{module}.{tag}-{arch}-linux-gnu.so", b"\0")
    return folder


def test_a_release_without_a_wheel_for_one_platform_is_refused(stage: ModuleType, tmp_path: Path) -> None:
    """Every distribution accepts every release Python, so a hole in the wheelhouse must stop the build."""
    assert importlib.metadata.version("cffi")
    complete = fake_wheelhouse(stage, tmp_path / "complete", native="cffi", native_arches=stage.RELEASE_ARCHES)
    layout = stage.release_layout(complete)
    assert layout.versions == list(stage.RELEASE_PYTHONS)
    assert len(layout.runtimes) == len(stage.RELEASE_PYTHONS) * len(stage.RELEASE_ARCHES)
    holed = fake_wheelhouse(stage, tmp_path / "holed", native="cffi", native_arches=("x86_64",))
    with pytest.raises(stage.StageError, match=r"no aarch64 wheel for CPython 3\.10 of cffi "):
        stage.release_layout(holed)


def test_a_failed_download_fails_the_command(
    stage: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pip cannot reach an index (PIP_NO_INDEX, no network): non-zero, so make writes no stamp."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setattr(stage, "RELEASE_PYTHONS", ("3.12",))
    monkeypatch.setattr(stage, "RELEASE_ARCHES", ("x86_64",))
    assert stage.main(["--download", "--wheelhouse", str(tmp_path / "wheelhouse")]) == 1
    error = capsys.readouterr().err
    assert "stage: pip download failed for CPython 3.12 x86_64" in error


def test_markers_count_for_every_release_platform(stage: ModuleType) -> None:
    from packaging.requirements import Requirement

    only_arm = Requirement('example; platform_machine == "aarch64"')
    assert stage._applies(only_arm, ["3.12"], [])
    assert not stage._applies(only_arm, ["3.12"], [], ["x86_64"])
    assert not stage._applies(Requirement('example; python_version < "3.10"'), stage.RELEASE_PYTHONS, [])
