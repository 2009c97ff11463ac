"""The environment git runs with: the token only in a scoped header variable, nothing inherited that could redirect
it, no prompts, a private folder that disappears."""

from __future__ import annotations

import base64
import re
import stat
import subprocess
from pathlib import Path

import pytest
from git_checks import rsa_key

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.errors import UserError
from flux_azdo.git import GitAuth, SshAuth, TokenAuth, git_environment
from flux_azdo.git.auth import git_context

URL = "https://dev.azure.com/contoso/Fleet%20Ops/_git/fleet-infra"
PAT = "p" * 52


def refused(url: str, auth: GitAuth, temp_parent: Path | None = None) -> str:
    with pytest.raises(UserError) as caught, git_environment(url, auth, temp_parent=temp_parent):
        pass
    return caught.value.message


def config_entries(env: dict[str, str]) -> dict[str, str]:
    return {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}


def test_token_goes_into_a_header_scoped_to_the_repository(tmp_path: Path) -> None:
    token = AzureDevOpsToken(PAT)
    scope = "http.https://dev.azure.com/contoso/Fleet%20Ops/_git/fleet-infra.extraHeader"
    with git_environment(URL, TokenAuth(token), temp_parent=tmp_path) as env:
        entries = config_entries(env)
        assert entries[scope] == "Authorization: Basic " + base64.b64encode(f":{PAT}".encode()).decode()
        assert [key for key in entries if key.lower().endswith(".extraheader")] == [scope]
        assert entries["credential.helper"] == ""
        holders = [name for name, value in env.items() if any(form in value for form in token.secret_forms())]
        header_key = next(name for name, value in env.items() if value == scope)
        assert holders == [header_key.replace("KEY", "VALUE")]
        # No redirects (the header would follow them), only the network transports, stalls dropped.
        assert entries["http.followRedirects"] == "false"
        assert entries["protocol.allow"] == "never"
        assert [entries[f"protocol.{name}.allow"] for name in ("https", "http", "ssh")] == ["always"] * 3
        assert (entries["http.lowSpeedLimit"], entries["http.lowSpeedTime"]) == ("1000", "60")
        assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_NOSYSTEM"] == "1"
        assert Path(env["GIT_ASKPASS"]).name == "true"
        home = Path(env["HOME"])
        assert home.parent.parent == tmp_path and Path(env["XDG_CONFIG_HOME"]).is_relative_to(home)
        assert stat.S_IMODE(home.parent.stat().st_mode) == 0o700
        assert list(home.parent.iterdir()) == [home]  # nothing written for a token
    assert list(tmp_path.iterdir()) == []


def test_bearer_token_and_user_info_in_the_url(tmp_path: Path) -> None:
    token = AzureDevOpsToken("eyJ.job.token", "bearer", "job-token")
    with git_environment("https://contoso@dev.azure.com/contoso/p/_git/r/", TokenAuth(token)) as env:
        entries = config_entries(env)
        assert (
            entries["http.https://dev.azure.com/contoso/p/_git/r.extraHeader"] == "Authorization: Bearer eyJ.job.token"
        )


def test_a_password_in_the_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = refused(f"https://user:{PAT}@dev.azure.com/o/p/_git/r", None, temp_parent=tmp_path)
    assert PAT not in message and "remove it from the URL" in message
    assert list(tmp_path.iterdir()) == []


def test_auth_must_match_the_transport() -> None:
    assert re.search("SSH key was given for an https URL", refused(URL, SshAuth(b"key", known_hosts="x")))
    assert re.search(
        "token was given for an SSH URL", refused("git@ssh.dev.azure.com:v3/o/p/r", TokenAuth(AzureDevOpsToken(PAT)))
    )
    with pytest.raises(UserError, match="not valid"), git_environment("--upload-pack=touch /tmp/x", None):
        pass
    # Transports other than https and http never get a token; file, git and local paths do not run at all.
    for url in ("file:///srv/git/fleet.git", "/srv/git/fleet.git", "git://example.org/fleet"):
        message = refused(url, TokenAuth(AzureDevOpsToken(PAT)))
        assert "not supported" in message or "not a URL" in message, message
    # `ext::` reads as an scp-like SSH address (host "ext") and git gets it as ssh://ext/...: never a token.
    assert "token was given for an SSH URL" in refused("ext::sh -c x", TokenAuth(AzureDevOpsToken(PAT)))


def test_tls_verification_cannot_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_SSL_NO_VERIFY", "1")
    message = refused(URL, TokenAuth(AzureDevOpsToken(PAT)))
    assert message.startswith("GIT_SSL_NO_VERIFY is set") and "GIT_SSL_CAINFO" in message


def test_inherited_variables_are_dropped_except_tls_and_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = {
        "GIT_CONFIG_PARAMETERS": "'url.https://evil.example/.insteadof'='https://dev.azure.com/'",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "url.https://evil.example/.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://dev.azure.com/",
        "GIT_SSH_COMMAND": "ssh -o ProxyCommand=evil",
        "GIT_TRACE_CURL": "/tmp/trace",
        "GIT_DIR": "/somewhere/.git",
        "SSH_AUTH_SOCK": "/tmp/agent.sock",
        "SSH_ASKPASS": "/usr/bin/ssh-askpass",
    }
    kept = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "localhost", "GIT_SSL_CAINFO": "/etc/corp-ca.pem"}
    monkeypatch.delenv("GIT_SSL_NO_VERIFY", raising=False)
    for name, value in {**hostile, **kept}.items():
        monkeypatch.setenv(name, value)
    with git_context(URL, TokenAuth(AzureDevOpsToken(PAT))) as context:
        env = context.env
        for name in hostile:
            assert name not in env or env[name] != hostile[name], name
        for name, value in kept.items():
            assert env[name] == value
        # For GitPython, which merges its env over os.environ, the dropped ones are overridden.
        overrides = context.overrides()
        assert overrides["GIT_SSH_COMMAND"] == "" and overrides["SSH_AUTH_SOCK"] == ""
        assert overrides["GIT_DIR"] == str(context.directory / "no-repository")
        assert config_entries(env)["credential.helper"] == ""  # ours: resets the helper list
        assert not any("evil" in value for value in overrides.values())


def test_directory_is_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), git_environment(URL, TokenAuth(AzureDevOpsToken(PAT)), temp_parent=tmp_path):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_ssh_key_copy_known_hosts_and_command(tmp_path: Path) -> None:
    private, _ = rsa_key()
    known = "[ssh.example.org]:2222 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n"
    auth = SshAuth(private, None, known, ("rsa-sha2-512",))
    with git_environment("ssh://git@ssh.example.org:2222/team/repo.git", auth, temp_parent=tmp_path) as env:
        (directory,) = tmp_path.iterdir()
        assert (directory / "known_hosts").read_text() == known
        assert stat.S_IMODE((directory / "identity").stat().st_mode) == 0o600
        command = env["GIT_SSH_COMMAND"]
        assert "-o HostKeyAlgorithms=rsa-sha2-512 " in command
        # An RSA key signs with what --ssh-hostkey-algos names (one flag for both, as the issue says).
        assert "-o PubkeyAcceptedAlgorithms=rsa-sha2-512 " in command
        assert "-o ConnectTimeout=30 " in command
        assert "-o ServerAliveInterval=15 -o ServerAliveCountMax=3 " in command
        assert "BatchMode=yes" in command and env["GIT_SSH_VARIANT"] == "ssh"
        # The shell git uses sees the key path as one word.
        words = subprocess.run(
            ["sh", "-c", f'for w in {command}; do echo "$w"; done'], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert f'IdentityFile="{directory / "identity"}"' in words
    assert list(tmp_path.iterdir()) == []


def test_ssh_timeout_and_signature_algorithms_follow_the_parameters(tmp_path: Path) -> None:
    private, _ = rsa_key()
    url = "ssh://git@ssh.example.org:2222/team/repo.git"
    known = "[ssh.example.org]:2222 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n"
    with git_environment(url, SshAuth(private, None, known, ("ssh-ed25519",)), timeout=4.5) as env:
        command = env["GIT_SSH_COMMAND"]
        # No RSA algorithm named: the RSA key still signs with SHA-2 (never SHA-1 by default).
        assert "-o HostKeyAlgorithms=ssh-ed25519 " in command
        assert "-o PubkeyAcceptedAlgorithms=rsa-sha2-512,rsa-sha2-256 " in command
        assert "-o ConnectTimeout=5 " in command
    with git_environment(url, SshAuth(private, None, known, ("rsa-sha2-256", "ssh-rsa")), timeout=600) as env:
        assert "-o PubkeyAcceptedAlgorithms=rsa-sha2-256,ssh-rsa " in env["GIT_SSH_COMMAND"]
        assert "-o ConnectTimeout=30 " in env["GIT_SSH_COMMAND"]


def test_ssh_other_key_types_keep_default_signature_algorithms(tmp_path: Path) -> None:
    """Outside Azure DevOps an ed25519 key is fine; only RSA keys are limited to SHA-2 signatures."""
    from git_checks import ed25519_key

    private, _ = ed25519_key()
    with git_environment(
        "git@git.example.org:team/repo.git", SshAuth(private, known_hosts="git.example.org x y")
    ) as env:
        assert "PubkeyAcceptedAlgorithms" not in env["GIT_SSH_COMMAND"]
    assert re.search(
        "accepts RSA SSH keys only", refused("git@ssh.dev.azure.com:v3/o/p/r", SshAuth(private, known_hosts="x"))
    )


def test_ssh_needs_known_hosts_and_algorithms(tmp_path: Path) -> None:
    private, _ = rsa_key()
    assert re.search("--ssh-known-hosts", refused("ssh://git@host.example/r", SshAuth(private), temp_parent=tmp_path))
    assert re.search(
        "--ssh-hostkey-algos is empty",
        refused("ssh://git@host.example/r", SshAuth(private, None, "x", ()), temp_parent=tmp_path),
    )
    assert re.search(
        "single line", refused("ssh://git@host.example/r", SshAuth(private, "a\nb", "x"), temp_parent=tmp_path)
    )
    assert list(tmp_path.iterdir()) == []
