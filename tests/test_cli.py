"""The command line as a user meets it: output, files written, exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flux_azdo import __version__
from flux_azdo.cli import main
from flux_azdo.manifests.distribution import Distribution
from flux_azdo.manifests.install import InstallOptions, generate_components
from support.processes import silent_listener, started_cli

ADO = "https://dev.azure.com/contoso/platform/_git/fleet-infra"
ADO_SSH = "ssh://git@ssh.dev.azure.com/v3/contoso/platform/fleet-infra"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"flux-azdo {__version__}"
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--url", "--branch", "--path", "--components-extra", "--network-policy", "--provider", "--manifests"):
        assert flag in help_text


def test_install_export_prints_the_components(
    capsys: pytest.CaptureFixture[str], sample_file: Path, sample: Distribution
) -> None:
    code, out, err = run(
        capsys,
        "install",
        "--export",
        "--manifests",
        str(sample_file),
        "--components-extra",
        "image-reflector-controller",
        "--log-level=debug",
        "--network-policy=false",
    )
    assert code == 0 and err == ""
    expected = InstallOptions(components_extra=("image-reflector-controller",), log_level="debug", network_policy=False)
    assert out == generate_components(sample, expected)


def test_generate_writes_the_bootstrap_files_and_reports_each(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_file: Path
) -> None:
    args = [
        "generate",
        "--output-dir",
        str(tmp_path / "repo"),
        "--url",
        ADO,
        "--path",
        "clusters/prod",
        "--manifests",
        str(sample_file),
    ]
    code, _, err = run(capsys, *args)
    folder = tmp_path / "repo" / "clusters" / "prod" / "flux-system"
    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["gotk-components.yaml", "gotk-sync.yaml", "kustomization.yaml"]
    assert "✔ created clusters/prod/flux-system/gotk-sync.yaml" in err
    assert f"  url: {ADO}\n" in (folder / "gotk-sync.yaml").read_text()
    code, _out, err = run(capsys, *args)
    assert code == 0
    assert "✔ unchanged clusters/prod/flux-system/gotk-components.yaml" in err
    assert "✔ unchanged clusters/prod/flux-system/kustomization.yaml" in err  # ours, as generated
    code, _, err = run(capsys, *args, "--components-extra=image-reflector-controller,image-automation-controller")
    assert "✔ updated clusters/prod/flux-system/gotk-components.yaml" in err
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_generate_reports_a_user_kustomization_without_the_ssh_patch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_file: Path
) -> None:
    folder = tmp_path / "flux-system"
    folder.mkdir()
    user = "resources:\n- gotk-components.yaml\n- gotk-sync.yaml\n"
    (folder / "kustomization.yaml").write_text(user)
    code, _, err = run(
        capsys, "generate", "--output-dir", str(tmp_path), "--url", ADO_SSH, "--manifests", str(sample_file)
    )
    assert code == 0
    assert "⚠️  kustomization.yaml lacks the Azure DevOps SSH host key algorithms patch" in err
    assert "--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256" in err
    assert (folder / "kustomization.yaml").read_text() == user


def test_namespace_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_SYSTEM_NAMESPACE", "gitops")
    assert run(capsys, "generate", "--output-dir", str(tmp_path), "--url", ADO, "--manifests", str(sample_file))[0] == 0
    assert (tmp_path / "gitops" / "gotk-sync.yaml").is_file()
    monkeypatch.setenv("FLUX_SYSTEM_NAMESPACE", "Not_Valid")
    code, _, err = run(capsys, "generate", "--output-dir", str(tmp_path), "--url", ADO, "--manifests", str(sample_file))
    assert code == 0 and "ignoring invalid FLUX_SYSTEM_NAMESPACE" in err
    assert (tmp_path / "flux-system" / "gotk-sync.yaml").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--components", "source-controller,kustomize-controller,argo"], "component 'argo' is not available"),
        (["--components-extra", "source-controller"], "listed twice"),
        (["--components", "kustomize-controller"], "component 'source-controller' is required"),
        (["--components", "source-controller,helm-controller"], "component 'kustomize-controller' is required"),
        (["--version", "2.9.4"], "must be prefixed with 'v'"),
        (["--registry-creds", "u:p"], "--registry-creds requires --image-pull-secret"),
        (["--registry-creds", "nocolon", "--image-pull-secret", "s"], "expected 'user:password'"),
        (["--path", "../x"], "points outside the repository"),
        (["--path", "/abs/clusters"], "is absolute"),
        (["--url", "git://host/repo"], "scheme 'git' is not supported"),
        (["--url", "http://host/o/p/_git/r"], "--allow-insecure-http"),
        (["--interval", "every minute"], "is not a duration"),
        (["--version", "v2.9.4"], "is Flux v0.0.0-sample but --version asks for v2.9.4"),
        (["--provider", "azure", "--url", ADO_SSH], "needs the https URL"),
        (["--provider", "azure"], "needs --azure-client-id"),
        (["--log-level", "verbose"], "--log-level='verbose' is not supported"),
        (["--token-auth", "--url", ADO_SSH], "--token-auth needs an https URL"),
        (["-n", "Flux"], "namespace must be a valid DNS label"),
    ],
)
def test_user_mistakes_are_one_line_exit_1_and_write_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_file: Path, extra: list[str], message: str
) -> None:
    out_dir = tmp_path / "repo"
    argv = ["generate", "--output-dir", str(out_dir), "--url", ADO, "--manifests", str(sample_file), *extra]
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("✗ ") and err.count("\n") == 1 and message in err
    assert not out_dir.exists()


def test_distribution_mistakes(capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Distribution) -> None:
    not_flux = tmp_path / "not-flux.yaml"
    not_flux.write_text("apiVersion: v1\nkind: ConfigMap\n")
    code, _, err = run(capsys, "install", "--export", "--manifests", str(not_flux))
    assert code == 1 and "is not a Flux components file" in err
    four = tmp_path / "four.yaml"
    four.write_text(generate_components(sample, InstallOptions()))
    code, _, err = run(
        capsys, "install", "--export", "--manifests", str(four), "--components-extra", "image-automation-controller"
    )
    assert code == 1 and "component 'image-automation-controller' is not in the distribution" in err
    old = tmp_path / "old.yaml"
    old.write_text(four.read_text().replace("- generic\n                - azure\n", "- generic\n", 1))
    code, _, err = run(
        capsys,
        "generate",
        "--output-dir",
        str(tmp_path / "o"),
        "--url",
        ADO,
        "--manifests",
        str(old),
        "--provider",
        "azure",
        "--azure-client-id",
        "6f0b1a52-5c4e-4a43-9d7e-3f5b1c0d2e11",
    )
    assert code == 1 and "cannot use --provider azure" in err and "v2.4.0" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--output-dir", "x"],  # no --url
        ["install", "--manifests", "x"],  # no --export
        ["install", "--export", "--network-policy=maybe"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_mistakes_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("✗ ") and err.count("\n") == 1


def test_blocked_target_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_file: Path) -> None:
    folder = tmp_path / "flux-system"
    (folder / "kustomization.yaml").mkdir(parents=True)
    code, _, err = run(capsys, "generate", "--output-dir", str(tmp_path), "--url", ADO, "--manifests", str(sample_file))
    assert code == 1 and "kustomization.yaml is not a file: move it away" in err
    assert sorted(p.name for p in folder.iterdir()) == ["kustomization.yaml"]


def test_a_real_process_prints_no_traceback(tmp_path: Path, sample_file: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    bad = subprocess.run(
        [sys.executable, "-m", "flux_azdo", "generate", "--output-dir", str(tmp_path), "--url", ADO, "--interval", "x", "--manifests", str(sample_file)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def test_an_unreadable_user_kustomization_is_never_overwritten(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_file: Path
) -> None:
    folder = tmp_path / "flux-system"
    folder.mkdir()
    (folder / "kustomization.yaml").write_bytes(b"# caf\xe9\nresources: [gotk-components.yaml, gotk-sync.yaml]\n")
    code, _, err = run(capsys, "generate", "--output-dir", str(tmp_path), "--url", ADO, "--manifests", str(sample_file))
    assert code == 1 and "is not UTF-8 text" in err and err.count("\n") == 1
    assert (folder / "kustomization.yaml").read_bytes().startswith(b"# caf\xe9")
    assert sorted(p.name for p in folder.iterdir()) == ["kustomization.yaml"]


def test_many_other_files_do_not_hide_the_user_kustomization(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_file: Path
) -> None:
    folder = tmp_path / "flux-system"
    (folder / "a").mkdir(parents=True)
    for i in range(2100):
        (folder / "a" / f"{i}.yaml").write_text("x: 1\n")
    user = "resources: [gotk-components.yaml, gotk-sync.yaml, mine.yaml]\n"
    (folder / "kustomization.yaml").write_text(user)
    code, _, err = run(capsys, "generate", "--output-dir", str(tmp_path), "--url", ADO, "--manifests", str(sample_file))
    assert code == 0 and "✔ kept flux-system/kustomization.yaml" in err
    assert (folder / "kustomization.yaml").read_text() == user


def test_a_failed_write_restores_what_was_there(tmp_path: Path) -> None:
    from flux_azdo.errors import UserError
    from flux_azdo.files import write_files_atomically

    (tmp_path / "a.yaml").write_text("old a\n")
    (tmp_path / "a.yaml").chmod(0o600)
    (tmp_path / "blocker").write_text("a file where a folder should be\n")
    with pytest.raises(UserError, match="cannot write under"):
        write_files_atomically(tmp_path, {"a.yaml": "new a\n", "blocker/b.yaml": "b\n"})
    assert (tmp_path / "a.yaml").read_text() == "old a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "blocker"]
    write_files_atomically(tmp_path, {"a.yaml": "new a\n", "new/dir/c.yaml": "c\n"})
    assert (tmp_path / "a.yaml").read_text() == "new a\n" and (tmp_path / "a.yaml").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "new" / "dir" / "c.yaml").read_text() == "c\n"


def test_sigterm_ends_a_run_with_its_cleanup_and_exit_code_143(tmp_path: Path) -> None:
    """A cancelled pipeline sends SIGTERM: the CLI must unwind (finally blocks remove key copies) and say so."""
    import signal

    env = {**os.environ, "GIT_PASSWORD": "a-token-for-a-server-that-never-answers", "HOME": str(tmp_path)}
    with silent_listener() as (hanging, port):  # the run is certainly still going when signalled
        url = f"http://127.0.0.1:{port}/org/project/_git/repo"
        with started_cli("check", "--allow-insecure-http", "--timeout", "60s", "--url", url, env=env) as process:
            hanging.settimeout(30)
            connection, _ = hanging.accept()
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
            connection.close()
    assert process.returncode == 143
    assert err.strip().splitlines()[-1] == "✗ stopped by SIGTERM"
