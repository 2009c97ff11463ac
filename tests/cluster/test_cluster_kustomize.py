"""When kustomize is needed, which one is used, and how its failures read."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from flux_azdo.cluster.apply import parse_objects
from flux_azdo.cluster.kustomize import build, find_kustomize, needs_kustomize
from flux_azdo.errors import UserError
from flux_azdo.manifests.kustomization import render_kustomization

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    "text",
    [
        render_kustomization(["gotk-components.yaml", "gotk-sync.yaml"]),
        "resources: [gotk-sync.yaml, gotk-components.yaml]\n",
        "# Flux's file\napiVersion: kustomize.config.k8s.io/v1beta1\nkind:   Kustomization\n\nresources:\n  - gotk-components.yaml   # the controllers\n  - 'gotk-sync.yaml'\n",
    ],
)
def test_default_kustomization_needs_no_kustomize(text: str) -> None:
    assert needs_kustomize(text) is False


@pytest.mark.parametrize(
    "text",
    [
        render_kustomization(["gotk-components.yaml", "gotk-sync.yaml"]) + "patches:\n- path: ssh.yaml\n",
        "resources: [gotk-components.yaml, gotk-sync.yaml]\nnamespace: other\n",
        "resources: [gotk-components.yaml, gotk-sync.yaml, extra.yaml]\n",
        "resources: [gotk-components.yaml]\n",
        "resources: [gotk-components.yaml, gotk-components.yaml]\n",
        "kind: Component\nresources: [gotk-components.yaml, gotk-sync.yaml]\n",
        "resources: [gotk-components.yaml, gotk-sync.yaml]\nimages:\n- name: ghcr.io/fluxcd/source-controller\n  newName: acr.io/source\n",
        "resources: [unclosed\n",
        "",
        "just text\n",
    ],
)
def test_anything_else_needs_kustomize(text: str) -> None:
    assert needs_kustomize(text) is True


def test_kustomize_on_path_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kustomize = _script(bin_dir / "kustomize", "exit 0")
    _script(bin_dir / "kubectl", "exit 0")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert find_kustomize() == [str(kustomize), "build"]
    kustomize.unlink()
    assert find_kustomize() == [str(bin_dir / "kubectl"), "kustomize"]


def test_nothing_on_path_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(
        UserError,
        match=r"neither kustomize nor kubectl is on PATH.*https://kubectl.docs.kubernetes.io/installation/kustomize/.*apt-get install kubernetes-client",
    ) as caught:
        find_kustomize()
    assert "\n" not in str(caught.value) and "run.go" not in str(caught.value)


def test_explicit_path_wins_and_kubectl_is_recognised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    mine = _script(tmp_path / "my-kustomize", "exit 0")
    assert find_kustomize(mine) == [str(mine), "build"]
    kubectl = _script(tmp_path / "kubectl", "exit 0")
    assert find_kustomize(kubectl) == [str(kubectl), "kustomize"]


def test_explicit_path_must_exist_and_be_executable(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--kustomize .*nope: no such file"):
        find_kustomize(tmp_path / "nope")
    plain = tmp_path / "kustomize"
    plain.write_text("#!/bin/sh\n", encoding="utf-8")
    plain.chmod(0o644)
    with pytest.raises(UserError, match=r"is not executable.*chmod \+x"):
        find_kustomize(plain)


@needs_kubectl
def test_build_with_kubectl_and_a_private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(home / "kubeconfig-that-must-not-be-read"))
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n", encoding="utf-8"
    )
    (folder / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\nnamespace: flux-system\ncommonLabels:\n  team: x\n", encoding="utf-8"
    )
    objects = parse_objects(build(find_kustomize(), folder))
    assert objects == [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "flux-system", "labels": {"team": "x"}},
            "data": {"a": "b"},
        }
    ]
    assert os.listdir(home) == [], "the user's HOME must not be touched"


@needs_kubectl
def test_build_failure_carries_kustomizes_first_error_line(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "kustomization.yaml").write_text("resources: [missing.yaml]\n", encoding="utf-8")
    with pytest.raises(
        UserError,
        match=r"kubectl could not build .*broken: (error: )?accumulating resources.*missing.yaml.*kustomization.yaml",
    ) as caught:
        build(find_kustomize(), folder)
    assert "\n" not in str(caught.value) and "run.go" not in str(caught.value)


def test_build_timeout(tmp_path: Path) -> None:
    slow = _script(tmp_path / "kustomize", "exec sleep 30")
    with pytest.raises(UserError, match=r"kustomize did not finish building .* within 0.3s"):
        build([str(slow), "build"], tmp_path, timeout=0.3)


def test_build_failure_without_error_prefix_uses_the_first_line(tmp_path: Path) -> None:
    tool = _script(
        tmp_path / "kustomize", "echo >&2; echo 'accumulating resources: boom' >&2; echo 'Usage: x' >&2; exit 1"
    )
    with pytest.raises(UserError, match=r"kustomize could not build .*: accumulating resources: boom"):
        build([str(tool), "build"], tmp_path)
