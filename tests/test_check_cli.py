"""`flux-azdo check` as a user runs it against the sandbox: flags, credentials, output, exit codes, the README."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from flux_azdo.sandbox.runtime import Sandbox
from support.cli_runs import run_cli
from support.isolation import NotATerminal, isolate_environment

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent
BUILD_SERVICE = "platform Build Service (sandbox-org)"
CREDENTIAL_VARIABLES = ("GIT_PASSWORD", "AZURE_DEVOPS_EXT_PAT", "SYSTEM_ACCESSTOKEN")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential from the machine running the tests, an isolated git, and a stdin that is not a terminal."""
    isolate_environment(monkeypatch, tmp_path / "home", unset=CREDENTIAL_VARIABLES)


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, "check", *argv)


def test_a_pat_from_git_password_is_ready(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", azdo_sandbox.pat)
    code, out, err = check(capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http")
    assert code == 0, out + err
    assert err == ""
    lines = out.splitlines()
    assert "✔ the PAT from GIT_PASSWORD works for " + azdo_sandbox.org_url in lines
    assert "✔ authenticated as Sandbox Admin (user)" in lines
    assert "✔ Sandbox Admin has Contribute (GenericContribute) on repository fleet-infra, branch main" in lines
    assert any(line.startswith("⚠️  the PAT will be stored in the cluster") for line in lines)
    assert lines[-1] == (
        f"✔ ready: nothing blocks a bootstrap of {azdo_sandbox.repo_url} on branch main (1 warning above)"
    )
    assert azdo_sandbox.pat not in out + err


def test_password_on_the_command_line_works_and_warns_about_ps(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(
        capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http", "--password", azdo_sandbox.pat
    )
    assert code == 0, out + err
    assert err.startswith("⚠️  --password is visible to other users in `ps`")
    assert "GIT_PASSWORD" in err and "--password-stdin" in err
    assert azdo_sandbox.pat not in out + err


def test_password_stdin_reads_one_line(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", NotATerminal(azdo_sandbox.pat + "\n"))
    code, out, err = check(capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http", "--password-stdin")
    assert code == 0, out + err
    assert "✔ the PAT from stdin works" in out and err == ""


def test_no_token_and_no_terminal_is_blocked_with_how_to_pass_one(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = check(capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http")
    assert code == 1
    assert "✗ no token for " in out
    assert "    fix: set GIT_PASSWORD, or pipe the token into --password-stdin, or pass --entra-auth" in out


def test_a_job_token_lacking_contribute_is_blocked_with_the_setting_and_command(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", azdo_sandbox.job_token)
    monkeypatch.setenv("GIT_PASSWORD", azdo_sandbox.job_token)
    code, out, _ = check(capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http")
    assert code == 1
    lines = out.splitlines()
    assert f"✔ authenticated as {BUILD_SERVICE} (project build service: a pipeline's job token)" in lines
    failing = lines.index(
        f"✗ {BUILD_SERVICE} lacks Contribute (GenericContribute) on repository fleet-infra, branch main: "
        "the push would be rejected (TF401027)"
    )
    assert lines[failing + 1] == (
        f'    fix: Project settings > Repositories > fleet-infra > Security > "{BUILD_SERVICE}" > Contribute: Allow'
    )
    project, repository = azdo_sandbox.project, azdo_sandbox.repository
    assert lines[failing + 2].startswith("    or run: az devops security permission update --id ")
    assert (
        f"--token repoV2/{project.id}/{repository.id} --allow-bit 4 --org {azdo_sandbox.org_url}" in lines[failing + 2]
    )
    assert lines[-1] == "✗ blocked: fix the 2 problems above, then run flux-azdo check again"
    # Every ✗ line is followed by its fix.
    for index, line in enumerate(lines[:-1]):
        if line.startswith("✗ "):
            assert lines[index + 1].startswith("    fix: "), line


def test_an_expired_pat_is_blocked(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime, timedelta, timezone

    from flux_azdo.sandbox.runtime import FULL_SCOPES

    expired = azdo_sandbox.world.issue_pat(
        azdo_sandbox.user, FULL_SCOPES, expires=datetime.now(timezone.utc) - timedelta(hours=1)
    )
    monkeypatch.setenv("GIT_PASSWORD", expired)
    code, out, _ = check(capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http")
    assert code == 1
    lines = out.splitlines()
    index = lines.index("✗ the PAT has expired")
    assert lines[index + 1].startswith(f"    fix: regenerate the PAT at {azdo_sandbox.org_url}/_usersSettings/tokens")


def test_json_output_is_the_report_and_nothing_else(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", azdo_sandbox.job_token)
    code, out, err = check(capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http", "--output", "json")
    assert code == 1 and err == ""
    document = json.loads(out)  # stdout holds the document only
    assert set(document) == {"url", "branch", "verdict", "skipped", "caller", "repository", "checks"}
    assert document["skipped"] == 0
    assert document["url"] == azdo_sandbox.repo_url and document["branch"] == "main"
    assert document["verdict"] == "blocked"
    assert document["caller"]["display_name"] == BUILD_SERVICE and document["caller"]["kind"] == "build-service"
    assert document["repository"]["name"] == "fleet-infra" and document["repository"]["default_branch"] is None
    for entry in document["checks"]:
        assert set(entry) == {"key", "status", "message", "fix", "command"}
        assert entry["status"] in ("ok", "fail", "warn", "skip")
        if entry["status"] == "fail":
            assert entry["fix"]
    contribute = next(e for e in document["checks"] if e["key"] == "permission:GENERIC_CONTRIBUTE")
    assert contribute["status"] == "fail" and "--allow-bit 4" in contribute["command"]
    assert azdo_sandbox.job_token not in out


def test_ssh_with_the_api_token_from_the_environment(
    ssh_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ssh_sandbox.ssh_url and ssh_sandbox.ssh_key_path
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", ssh_sandbox.pat)
    args = [
        "--url",
        ssh_sandbox.ssh_url,
        "--organization",
        ssh_sandbox.org_url,
        "--allow-insecure-http",
        "--private-key-file",
        str(ssh_sandbox.ssh_key_path),
        "--ssh-known-hosts",
        str(ssh_sandbox.known_hosts_path),
    ]
    code, out, err = check(capsys, *args)
    assert code == 0, out + err
    assert "✔ the PAT from AZURE_DEVOPS_EXT_PAT works" in out
    assert f"✔ git can read {ssh_sandbox.ssh_url} over SSH (RSA 3072) (empty repository)" in out.splitlines()
    # Without an API token the REST checks are skipped, saying how to enable them; git still runs.
    monkeypatch.delenv("AZURE_DEVOPS_EXT_PAT")
    code, out, err = check(capsys, *args)
    assert code == 0, out + err
    assert "– Azure DevOps checks skipped: identity, project, repository and permissions" in out.splitlines()
    assert "⚠️  push permissions not verified: no API token for Azure DevOps" in out and "AZURE_DEVOPS_EXT_PAT" in out
    assert "✔ git can read" in out


def test_an_ed25519_key_is_blocked_before_connecting(
    ssh_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert ssh_sandbox.ssh_url
    key = tmp_path / "id_ed25519"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)
    code, out, _ = check(
        capsys,
        "--url",
        ssh_sandbox.ssh_url,
        "--private-key-file",
        str(key),
        "--ssh-known-hosts",
        str(ssh_sandbox.known_hosts_path),
    )
    assert code == 1
    assert "– git access over SSH not tried: Azure DevOps refuses this key" in out.splitlines()
    assert "ssh-keygen -t rsa" in out


def test_an_rsa_key_with_a_passphrase_from_stdin(
    ssh_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert ssh_sandbox.ssh_url
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = tmp_path / "id_rsa_protected"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    key.chmod(0o600)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    ssh_sandbox.world.add_ssh_key(ssh_sandbox.user, public.decode() + " protected")
    assert ssh_sandbox.ssh is not None
    args = [
        "--url",
        ssh_sandbox.ssh_url,
        "--private-key-file",
        str(key),
        "--ssh-known-hosts",
        str(ssh_sandbox.known_hosts_path),
    ]
    monkeypatch.setattr(sys, "stdin", NotATerminal("open sesame\n"))
    code, out, err = check(capsys, *args, "--password-stdin")
    assert code == 0, out + err
    assert f"✔ git can read {ssh_sandbox.ssh_url} over SSH (RSA 2048) (empty repository)" in out.splitlines()
    # Without an API token or --organization the REST checks were skipped, and the verdict says so.
    lines = out.splitlines()
    assert "⚠️  push permissions not verified: the REST API address cannot be derived from this SSH URL" in lines
    assert lines[-1] == (
        f"✔ ready as far as checked (1 check skipped): nothing found blocks a bootstrap of {ssh_sandbox.ssh_url} on "
        "branch main (1 warning above)"
    )
    assert "open sesame" not in out + err
    # A wrong passphrase is one line naming the file and the flag, before anything connects.
    monkeypatch.setattr(sys, "stdin", NotATerminal("not-the-passphrase-42\n"))
    code, out, err = check(capsys, *args, "--password-stdin")
    assert code == 1 and out == ""
    assert err.startswith(f"✗ --private-key-file {key}: the passphrase of the SSH private key is wrong")
    assert len(err.strip().splitlines()) == 1 and "not-the-passphrase-42" not in err
    # Like `flux bootstrap git`, GIT_PASSWORD is the passphrase when no flag gives one.
    monkeypatch.setenv("GIT_PASSWORD", "open sesame")
    code, out, err = check(capsys, *args)
    assert code == 0, out + err


def test_an_scp_like_url_gets_the_username(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Nothing to connect with (no key, no API token): nothing is checked, no network is used, and the report
    says that the push permissions were not verified instead of calling it plainly ready."""
    code, out, _ = check(
        capsys, "--url", "ssh.dev.azure.com:v3/contoso/platform/fleet-infra", "-u", "git", "-o", "json"
    )
    document = json.loads(out)
    assert code == 0 and document["verdict"] == "ready" and document["skipped"] == 2
    assert document["url"] == "git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra"
    assert [(c["key"], c["status"]) for c in document["checks"]] == [
        ("token", "skip"),
        ("push-permissions", "warn"),
        ("git", "skip"),
    ]
    warning = document["checks"][1]
    assert warning["message"].startswith("push permissions not verified: ")
    assert warning["fix"].startswith("set AZURE_DEVOPS_EXT_PAT to a PAT of the SSH key's owner")
    code, out, _ = check(capsys, "--url", "ssh.dev.azure.com:v3/contoso/platform/fleet-infra")
    assert code == 0
    assert out.splitlines()[-1] == (
        "✔ ready as far as checked (2 checks skipped): nothing found blocks a bootstrap of "
        "git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra on branch main (1 warning above)"
    )


@pytest.mark.parametrize(
    ("argv", "exit_code", "message"),
    [
        (["--output", "xml"], 2, "invalid choice"),
        (["--password", "x", "--password-stdin"], 2, "either --password or --password-stdin"),
        (["--timeout", "soon"], 2, "--timeout='soon' is not a positive duration"),
        (["--branch", "bad..name"], 1, "not a valid Git branch name"),
        (["--private-key-file", "id_rsa"], 2, "--private-key-file applies to SSH URLs only, and --url is https"),
        (["--ssh-known-hosts", "known_hosts"], 2, "--ssh-known-hosts applies to SSH URLs only"),
        (["--ssh-hostkey-algos", "rsa-sha2-512"], 2, "--ssh-hostkey-algos applies to SSH URLs only"),
        (["--organization", "https://tfs.example.com/DefaultCollection"], 2, "the repository's token would be sent"),
        (["--url", "https://github.com/o/r.git", "--provider", "azure"], 2, "--provider azure is for Azure DevOps"),
        (["--url", "ssh://git@ssh.dev.azure.com/v3/o/p/r", "--provider", "azure"], 2, "works over https only"),
    ],
)
def test_mistakes_are_one_line_before_any_call(
    capsys: pytest.CaptureFixture[str], argv: list[str], exit_code: int, message: str
) -> None:
    code, out, err = check(capsys, "--url", "https://dev.azure.com/o/p/_git/r", *argv)
    assert code == exit_code
    assert out == "" and message in err and len(err.strip().splitlines()) == 1


def test_a_mistake_with_json_output_is_a_json_document_too(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, "--url", "https://dev.azure.com/o/p/_git/r", "-o", "json", "--timeout", "soon")
    assert code == 2
    assert json.loads(out) == {
        "verdict": "error",
        "error": "--timeout='soon' is not a positive duration: use e.g. 30s or 2m",
        "fix": None,
    }
    assert err == "✗ --timeout='soon' is not a positive duration: use e.g. 30s or 2m\n"


def test_a_token_too_short_to_be_one_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", "hunter2")
    code, out, err = check(capsys, "--url", "https://dev.azure.com/o/p/_git/r")
    assert code == 1 and out == ""
    assert err == (
        "✗ the token from GIT_PASSWORD is 7 characters long, too short to be a PAT or a job token: pass the token "
        "itself\n"
    )


def test_key_and_known_hosts_files_that_cannot_be_read_name_the_flag_and_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = "ssh://git@ssh.dev.azure.com/v3/o/p/r"
    missing = tmp_path / "nowhere"
    code, out, err = check(capsys, "--url", url, "--private-key-file", str(missing))
    assert code == 1 and out == ""
    assert err == (
        f"✗ --private-key-file {missing} cannot be read (No such file or directory): pass the path of the private key\n"
    )
    key = tmp_path / "id_rsa"
    key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    code, out, err = check(capsys, "--url", url, "--private-key-file", str(key), "--ssh-known-hosts", str(missing))
    assert code == 1 and out == ""
    assert err.startswith(f"✗ --ssh-known-hosts {missing} cannot be read (No such file or directory)")
    public = tmp_path / "id_rsa.pub"
    public.write_text("ssh-rsa AAAAB3NzaC1yc2E user@host\n")
    code, out, err = check(capsys, "--url", url, "--private-key-file", str(public))
    assert code == 1
    assert err.startswith(f"✗ --private-key-file {public}: the SSH key file holds a public key")


def test_a_wrong_organization_says_to_check_it(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", azdo_sandbox.pat)
    elsewhere = azdo_sandbox.org_url.rsplit("/", 1)[0] + "/other-org"
    code, out, _ = check(capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http", "--organization", elsewhere)
    assert code == 1
    lines = out.splitlines()
    failing = next(index for index, line in enumerate(lines) if line.startswith("✗ "))
    assert lines[failing] == (
        f"✗ {elsewhere} is not an Azure DevOps organisation or collection URL (its location service answered HTTP 404)"
    )
    assert lines[failing + 1].startswith(f"    fix: check --organization: {elsewhere} is not it")


def test_branch_given_as_a_ref_is_the_branch_name(
    azdo_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", azdo_sandbox.pat)
    code, out, err = check(
        capsys, "--url", azdo_sandbox.repo_url, "--allow-insecure-http", "--branch", "refs/heads/main"
    )
    assert code == 0, out + err
    assert "✔ Sandbox Admin has Contribute (GenericContribute) on repository fleet-infra, branch main" in out
    assert out.splitlines()[-1].endswith(f"{azdo_sandbox.repo_url} on branch main (1 warning above)")


def test_a_job_token_over_ssh_warns_that_it_is_not_the_key_owner(
    ssh_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ssh_sandbox.ssh_url and ssh_sandbox.ssh_key_path
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", ssh_sandbox.job_token)
    code, out, err = check(
        capsys,
        "--url",
        ssh_sandbox.ssh_url,
        "--organization",
        ssh_sandbox.org_url,
        "--allow-insecure-http",
        "--private-key-file",
        str(ssh_sandbox.ssh_key_path),
        "--ssh-known-hosts",
        str(ssh_sandbox.known_hosts_path),
    )
    assert code == 0, out + err
    lines = out.splitlines()
    assert (
        f"⚠️  the permissions below are those of {BUILD_SERVICE}, the owner of SYSTEM_ACCESSTOKEN, but the push uses "
        "the SSH key, which a build service cannot own: what the key's owner may do is not checked"
    ) in lines
    assert not [line for line in lines if line.startswith("✗ ")]
    assert any(line.startswith(f"⚠️  {BUILD_SERVICE} lacks Contribute (GenericContribute)") for line in lines)


def test_an_http_url_needs_allow_insecure_http(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, "--url", "http://127.0.0.1:9/o/p/_git/r")
    assert code == 1 and out == ""
    assert err.startswith("✗ ") and "--allow-insecure-http" in err and len(err.strip().splitlines()) == 1


# ----- the README, run as written ---------------------------------------------------------------------------------


def _readme_check_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- check-example[^>]*-->\n```sh\n(.*?)```\n<!-- end check-example -->", text, re.S)
    assert match, "README.md lost its check example block"
    return match.group(1)


def test_readme_check_example_runs_as_written(tmp_path: Path) -> None:
    root = tmp_path / "flux-check"
    script = _readme_check_example().replace("/tmp/flux-check", str(root))
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "AZURE_DEVOPS_CACHE_DIR": str(tmp_path / "sdk-cache"),
    }
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=180
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "✔ authenticated as Sandbox Admin (user)" in result.stdout
        assert "✔ ready: nothing blocks a bootstrap of" in result.stdout
        assert f'Security > "{BUILD_SERVICE}" > Contribute: Allow' in result.stdout
        assert "✗ blocked: fix the 2 problems above" in result.stdout
        assert "exit code 1" in result.stdout
    finally:
        subprocess.run(
            [sys.executable, "-m", "flux_azdo", "sandbox", "down", "--dir", str(root)],
            env=env,
            capture_output=True,
            timeout=90,
        )
